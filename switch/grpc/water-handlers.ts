// PosService/WaterDebit and PosService/Settle (the small wallet): validate, call the water domain, map
// the answer. Only water controllers may debit and only settlement POS may settle; business refusals
// (wallet empty, lost card ...) are answers with a reason, malformed calls are gRPC errors. Every
// response field is derived from the ledger's stored answer, so a retry gets the same bytes.
import type { handleUnaryCall } from '@grpc/grpc-js';
import { DeclineReason, Outcome } from '../../proto/gen/cardswitch/v1/common.js';
import type { SettleRequest, SettleResponse, WaterDebitRequest, WaterDebitResponse } from '../../proto/gen/cardswitch/v1/pos.js';
import type { SwitchContext } from '../context.js';
import type { Terminal, TerminalKind } from '../domain/terminals.js';
import type { WaterDomain } from '../domain/water.js';
import { SMALL_WALLET_CAP_FEN, type SettleCode, type SettleResult, type WaterDebitCode, type WaterDebitResult } from '../ledger/water.js';
import { formatYuan } from '../money.js';
import { InvalidArgumentError, PermissionDeniedError } from './errors.js';
import { callingTerminal, unary, type CallContext } from './unary.js';
import { checkAmount, checkCredential, checkSequence, checkTerminalField } from './validate.js';

type CardDecline = 'card_lost' | 'card_frozen' | 'unknown_card' | 'card_replaced' | 'card_cancelled';

const CARD_DECLINES: Record<CardDecline, { reason: DeclineReason; text: string }> = {
  card_lost: { reason: DeclineReason.DECLINE_REASON_CARD_LOST, text: '此卡已挂失' },
  card_frozen: { reason: DeclineReason.DECLINE_REASON_CARD_FROZEN, text: '此卡已冻结' },
  unknown_card: { reason: DeclineReason.DECLINE_REASON_UNKNOWN_CARD, text: '无效卡' },
  card_replaced: { reason: DeclineReason.DECLINE_REASON_CARD_REPLACED, text: '此卡已换卡作废' },
  card_cancelled: { reason: DeclineReason.DECLINE_REASON_CARD_CANCELLED, text: '此卡已注销' },
};

/** Both wallet refusals share one reason; the text tells the cardholder what to do. */
function waterDecline(code: Exclude<WaterDebitCode, 'approved'>, walletFen: number): { reason: DeclineReason; text: string } {
  const walletEmpty = DeclineReason.DECLINE_REASON_SMALL_WALLET_EMPTY;
  if (code === 'small_wallet_short') return { reason: walletEmpty, text: `小钱包余额不足 余额${formatYuan(walletFen)}元 请到结算机刷卡` };
  if (code === 'small_wallet_not_opened') return { reason: walletEmpty, text: '小钱包未开通 请先在结算机上刷卡' };
  return CARD_DECLINES[code];
}

/** Refuses a terminal of another kind before anything is read or written. */
function requireKind(rpc: string, kind: TerminalKind, context: CallContext): Terminal {
  const terminal = callingTerminal(context);
  if (terminal.kind !== kind) {
    const who = kind === 'water' ? 'water controllers (showers, water heaters)' : 'settlement POS';
    throw new PermissionDeniedError(`${rpc} is only for ${who}; terminal "${terminal.id}" is a ${terminal.kind} terminal`);
  }
  return terminal;
}

export function waterDebitHandler(ctx: SwitchContext, domain: WaterDomain): handleUnaryCall<WaterDebitRequest, WaterDebitResponse> {
  return unary<WaterDebitRequest, WaterDebitResponse>(ctx, 'WaterDebit', async (req, context) => {
    const terminal = requireKind('WaterDebit', 'water', context);
    checkTerminalField(req.terminalId, terminal);
    const sequence = checkSequence(req.sequenceNumber, 'sequence_number');
    const amountFen = checkAmount(req.amountFen, SMALL_WALLET_CAP_FEN, 'amount_fen', '(the small wallet holds at most 10.00)');
    const credential = checkCredential(req.credential);
    return waterDebitResponse(amountFen, await domain.debit(terminal, { sequence, amountFen, credential }));
  });
}

function waterDebitResponse(amountFen: number, result: WaterDebitResult): WaterDebitResponse {
  const approved = result.code === 'approved';
  const decline = result.code === 'approved' ? undefined : waterDecline(result.code, result.smallWalletAfterFen);
  return {
    outcome: approved ? Outcome.OUTCOME_APPROVED : Outcome.OUTCOME_DECLINED,
    declineReason: decline?.reason ?? DeclineReason.DECLINE_REASON_UNSPECIFIED,
    displayText: decline?.text ?? `扣款${formatYuan(amountFen)}元 小钱包余额${formatYuan(result.smallWalletAfterFen)}元`,
    smallWalletAfterFen: result.smallWalletAfterFen,
    transactionId: result.transactionId,
    decidedAtMs: result.decidedAtMs,
  };
}

export function settleHandler(ctx: SwitchContext, domain: WaterDomain): handleUnaryCall<SettleRequest, SettleResponse> {
  return unary<SettleRequest, SettleResponse>(ctx, 'Settle', async (req, context) => {
    const terminal = requireKind('Settle', 'settlement', context);
    checkTerminalField(req.terminalId, terminal);
    const sequence = checkSequence(req.sequenceNumber, 'sequence_number');
    const credential = checkCredential(req.credential);
    if (credential.kind !== 'card')
      throw new InvalidArgumentError('Settle accepts only a card tap: the settlement POS reads the physical card');
    return settleResponse(await domain.settle(terminal, { sequence, cardSerial: credential.serial }));
  });
}

function settleResponse(result: SettleResult): SettleResponse {
  const approved = result.code === 'approved';
  return {
    outcome: approved ? Outcome.OUTCOME_APPROVED : Outcome.OUTCOME_DECLINED,
    declineReason: approved ? DeclineReason.DECLINE_REASON_UNSPECIFIED : settleDeclineReason(result.code),
    displayText: settleText(result),
    balanceAfterFen: result.balanceAfterFen,
    spentFen: result.spentFen,
    movedToWalletFen: result.movedToWalletFen,
    smallWalletAfterFen: result.smallWalletAfterFen,
    opened: result.opened,
    decidedAtMs: result.decidedAtMs,
  };
}

function settleDeclineReason(code: Exclude<SettleCode, 'approved'>): DeclineReason {
  if (code === 'insufficient_funds') return DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS;
  return CARD_DECLINES[code].reason;
}

function settleText(r: SettleResult): string {
  const balance = `余额${formatYuan(r.balanceAfterFen)}元`;
  switch (r.code) {
    case 'approved':
      if (r.opened) return `小钱包已开通 转入${formatYuan(r.movedToWalletFen)}元 ${balance}`;
      if (r.movedToWalletFen < r.spentFen) {
        return `余额不足 本次消费${formatYuan(r.spentFen)}元 仅结算${formatYuan(r.movedToWalletFen)}元 ${balance}`;
      }
      return `结算成功 本次消费${formatYuan(r.spentFen)}元 ${balance}`;
    case 'insufficient_funds':
      if (r.spentFen === 0) return `余额不足${formatYuan(SMALL_WALLET_CAP_FEN)}元 无法开通小钱包`;
      return `余额不足 本次消费${formatYuan(r.spentFen)}元 未能结算 请充值`;
    case 'card_lost':
    case 'card_frozen':
    case 'card_cancelled':
      // Nothing is charged; the cashier sees what stays owed from the wallet, not a made-up 0.
      if (r.spentFen > 0) return `${CARD_DECLINES[r.code].text} 小钱包消费${formatYuan(r.spentFen)}元未结算`;
      return CARD_DECLINES[r.code].text;
    default:
      return CARD_DECLINES[r.code].text;
  }
}
