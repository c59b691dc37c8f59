// cardswitch.v1.PosService: validate, call the POS domain, map the result. Business refusals
// (insufficient funds, lost card ...) are answers with a reason; malformed calls are gRPC errors.
import type { handleUnaryCall } from '@grpc/grpc-js';
import { CardStatus, DeclineReason, HolderType, Outcome, type Credential } from '../../proto/gen/cardswitch/v1/common.js';
import {
  ReverseResult as ReverseResultProto,
  type AuthorizeRequest,
  type AuthorizeResponse,
  type InquireRequest,
  type InquireResponse,
  type PosServiceServer,
  type ReverseRequest,
  type ReverseResponse,
} from '../../proto/gen/cardswitch/v1/pos.js';
import { maskName } from '../domain/cards.js';
import type { PaymentCode, PosDomain } from '../domain/pos.js';
import type { SwitchContext } from '../context.js';
import type { AuthorizationOutcome, CredentialKind, Metrics } from '../metrics.js';
import type { Terminal } from '../domain/terminals.js';
import type { AuthorizeStreams } from './authorize-stream.js';
import { refundHandler } from './money-handlers.js';
import { settleHandler, waterDebitHandler } from './water-handlers.js';
import type { CardStatusCode, ReverseCode } from '../ledger/ledger.js';
import { formatYuan } from '../money.js';
import { CancelledError, NotFoundError } from './errors.js';
import { callingTerminal, unary, type UnaryDeps } from './unary.js';
import { checkAmount, checkCredential, checkPinField, checkSequence, checkTerminalField } from './validate.js';

const DECLINES: Record<Exclude<PaymentCode, 'approved' | 'pin_required'>, { reason: DeclineReason; text: string }> = {
  insufficient_funds: { reason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS, text: '余额不足' },
  card_lost: { reason: DeclineReason.DECLINE_REASON_CARD_LOST, text: '此卡已挂失' },
  card_frozen: { reason: DeclineReason.DECLINE_REASON_CARD_FROZEN, text: '此卡已冻结' },
  unknown_card: { reason: DeclineReason.DECLINE_REASON_UNKNOWN_CARD, text: '无效卡' },
  card_replaced: { reason: DeclineReason.DECLINE_REASON_CARD_REPLACED, text: '此卡已换卡作废' },
  already_reversed: { reason: DeclineReason.DECLINE_REASON_ALREADY_REVERSED, text: '交易已冲正' },
  daily_limit_exceeded: { reason: DeclineReason.DECLINE_REASON_DAILY_LIMIT_EXCEEDED, text: '超过当日消费限额' },
  card_cancelled: { reason: DeclineReason.DECLINE_REASON_CARD_CANCELLED, text: '此卡已注销' },
  wrong_pin: { reason: DeclineReason.DECLINE_REASON_WRONG_PIN, text: '密码错误' },
  pin_locked: { reason: DeclineReason.DECLINE_REASON_PIN_LOCKED, text: '密码已锁定，请明日再试' },
  qr_invalid: { reason: DeclineReason.DECLINE_REASON_QR_INVALID, text: '校园码无效，请刷新后重试' },
  qr_expired: { reason: DeclineReason.DECLINE_REASON_QR_EXPIRED, text: '校园码已过期，请刷新后重试' },
  qr_used: { reason: DeclineReason.DECLINE_REASON_QR_USED, text: '校园码已使用，请刷新后重试' },
};

const REVERSE_RESULTS: Record<ReverseCode, { result: ReverseResultProto; text: string }> = {
  reversed: { result: ReverseResultProto.REVERSE_RESULT_REVERSED, text: '冲正成功' },
  nothing_to_reverse: { result: ReverseResultProto.REVERSE_RESULT_NOTHING_TO_REVERSE, text: '原交易未扣款' },
  tombstoned: { result: ReverseResultProto.REVERSE_RESULT_TOMBSTONED, text: '冲正已登记' },
};

export const CARD_STATUS_TO_PROTO: Record<CardStatusCode, CardStatus> = {
  active: CardStatus.CARD_STATUS_ACTIVE,
  lost: CardStatus.CARD_STATUS_LOST,
  frozen: CardStatus.CARD_STATUS_FROZEN,
  cancelled: CardStatus.CARD_STATUS_CANCELLED,
};

export function holderTypeToProto(code: string): HolderType {
  if (code === 'S') return HolderType.HOLDER_TYPE_STUDENT;
  if (code === 'T') return HolderType.HOLDER_TYPE_STAFF;
  return HolderType.HOLDER_TYPE_UNSPECIFIED;
}

export function posService(domain: PosDomain, ctx: SwitchContext, streams: AuthorizeStreams): PosServiceServer {
  return {
    authorize: authorizeHandler(domain, ctx, { maxPaymentFen: ctx.config.maxPaymentFen, metrics: ctx.metrics }),
    authorizeStream: streams.handler(),
    reverse: reverseHandler(domain, ctx, ctx.config),
    inquire: inquireHandler(domain, ctx),
    refund: refundHandler(ctx),
    waterDebit: waterDebitHandler(ctx),
    settle: settleHandler(ctx),
  };
}

export interface PaymentLimits {
  readonly maxPaymentFen: number;
}

export interface PaymentOptions extends PaymentLimits {
  /** Counts cardswitch_authorizations_total; absent in tests that call authorizePayment directly. */
  readonly metrics?: Metrics;
}

function authorizeHandler(domain: PosDomain, deps: UnaryDeps, options: PaymentOptions): handleUnaryCall<AuthorizeRequest, AuthorizeResponse> {
  return unary<AuthorizeRequest, AuthorizeResponse>(deps, 'Authorize', (req, ctx) => authorizePayment(domain, options, callingTerminal(ctx), req, ctx.cancelled));
}

/**
 * One payment, for Authorize and AuthorizeStream alike: validate, pay, answer. Throws the refusals
 * (InvalidArgumentError ...) that become a gRPC status; business declines are answers.
 */
export async function authorizePayment(
  domain: PosDomain,
  options: PaymentOptions,
  terminal: Terminal,
  req: AuthorizeRequest,
  cancelled: () => boolean,
): Promise<AuthorizeResponse> {
  const metrics = options.metrics;
  if (metrics === undefined) return decidePayment(domain, options, terminal, req, cancelled);
  const credential = credentialKindOf(req.credential);
  try {
    const response = await decidePayment(domain, options, terminal, req, cancelled);
    metrics.authorization(outcomeLabel(response.outcome), credential);
    return response;
  } catch (err) {
    metrics.authorization('error', credential);
    throw err;
  }
}

/** The kind the request names, before validation; a request without a credential counts as a card tap. */
function credentialKindOf(credential: Credential | undefined): CredentialKind {
  if (credential?.campusQr !== undefined) return 'campus_qr';
  if (credential?.thirdParty !== undefined) return 'third_party';
  return 'card';
}

function outcomeLabel(outcome: Outcome): AuthorizationOutcome {
  if (outcome === Outcome.OUTCOME_APPROVED) return 'approved';
  if (outcome === Outcome.OUTCOME_DECLINED) return 'declined';
  if (outcome === Outcome.OUTCOME_PIN_REQUIRED) return 'pin_required';
  if (outcome === Outcome.OUTCOME_PENDING) return 'pending';
  return 'error';
}

async function decidePayment(
  domain: PosDomain,
  options: PaymentLimits,
  terminal: Terminal,
  req: AuthorizeRequest,
  cancelled: () => boolean,
): Promise<AuthorizeResponse> {
  checkTerminalField(req.terminalId, terminal);
  const sequence = checkSequence(req.sequenceNumber, 'sequence_number');
  const amountFen = checkAmount(req.amountFen, options.maxPaymentFen);
  const credential = checkCredential(req.credential);
  const pin = checkPinField(req.pin);
  // A caller that gave up (cancelled, deadline passed) gets no payment it will never hear about.
  if (cancelled()) throw new CancelledError('the call was cancelled before the payment was made; nothing was charged');
  const outcome = await domain.authorize(terminal, { sequence, amountFen, credential, pin });
  if (outcome.code === 'pin_required') return pinRequired(amountFen, outcome);
  const approved = outcome.code === 'approved';
  const decline = approved ? undefined : DECLINES[outcome.code];
  return {
    outcome: approved ? Outcome.OUTCOME_APPROVED : Outcome.OUTCOME_DECLINED,
    declineReason: decline?.reason ?? DeclineReason.DECLINE_REASON_UNSPECIFIED,
    displayText: approved
      ? `支付成功 ${formatYuan(amountFen)}元 余额${formatYuan(outcome.balanceAfterFen)}元`
      : declineText(decline?.text ?? '', outcome),
    balanceAfterFen: outcome.balanceAfterFen,
    transactionId: outcome.transactionId,
    amountFen,
    cardNumber: outcome.cardNo,
    pinAttemptsLeft: outcome.pinAttemptsLeft,
    decidedAtMs: outcome.decidedAtMs,
  };
}

function reverseHandler(domain: PosDomain, deps: UnaryDeps, options: PaymentLimits): handleUnaryCall<ReverseRequest, ReverseResponse> {
  return unary<ReverseRequest, ReverseResponse>(deps, 'Reverse', async (req, ctx) => {
    const terminal = callingTerminal(ctx);
    checkTerminalField(req.terminalId, terminal);
    const originalSequence = checkSequence(req.originalSequenceNumber, 'original_sequence_number');
    const amountFen = checkAmount(req.amountFen, options.maxPaymentFen);
    const credential = checkCredential(req.credential);
    const result = await domain.reverse(terminal, { originalSequence, amountFen, credential });
    if (result === 'unknown_card') throw new NotFoundError('no card has this credential; nothing to reverse');
    const mapped = REVERSE_RESULTS[result.code];
    return {
      result: mapped.result,
      balanceAfterFen: result.balanceAfterFen,
      displayText: `${mapped.text} 余额${formatYuan(result.balanceAfterFen)}元`,
      decidedAtMs: result.decidedAtMs,
    };
  });
}

function inquireHandler(domain: PosDomain, deps: UnaryDeps): handleUnaryCall<InquireRequest, InquireResponse> {
  return unary<InquireRequest, InquireResponse>(deps, 'Inquire', async (req, ctx) => {
    const terminal = callingTerminal(ctx);
    checkTerminalField(req.terminalId, terminal);
    const card = await domain.inquire(checkCredential(req.credential));
    if (card === undefined || card.code === 'unknown_card') return notFoundInquiry('无效卡');
    if (card.code === 'card_replaced') return notFoundInquiry('此卡已换卡作废');
    const status = card.status ?? 'active';
    return {
      found: true,
      cardNumber: card.cardNo,
      maskedName: maskName(card.name),
      status: CARD_STATUS_TO_PROTO[status],
      balanceFen: card.balanceFen,
      smallWalletFen: card.smallWalletFen,
      synced: card.synced,
      holderType: holderTypeToProto(card.holderType),
      displayText: `余额${formatYuan(card.balanceFen)}元${status === 'active' ? '' : ` ${STATUS_TEXT[status]}`}`,
    };
  });
}

const STATUS_TEXT: Record<CardStatusCode, string> = { active: '正常', lost: '已挂失', frozen: '已冻结', cancelled: '已注销' };

function notFoundInquiry(text: string): InquireResponse {
  return {
    found: false,
    cardNumber: '',
    maskedName: '',
    status: CardStatus.CARD_STATUS_UNSPECIFIED,
    balanceFen: 0,
    smallWalletFen: 0,
    synced: false,
    holderType: HolderType.HOLDER_TYPE_UNSPECIFIED,
    displayText: text,
  };
}

function declineText(text: string, outcome: { code: PaymentCode; pinAttemptsLeft: number; balanceAfterFen: number; transactionId: string }): string {
  if (outcome.code === 'wrong_pin') return `${text}，今日还可尝试${outcome.pinAttemptsLeft}次`;
  // Only ledger answers carry a balance; password refusals are decided before the ledger is asked.
  if (outcome.code === 'unknown_card' || outcome.code === 'pin_locked' || outcome.code === 'card_replaced') return text;
  // The POS learns nothing about the holder of a code it could not use (no balance on the display).
  if (outcome.code === 'qr_invalid' || outcome.code === 'qr_expired' || outcome.code === 'qr_used') return text;
  return `${text} 余额${formatYuan(outcome.balanceAfterFen)}元`;
}

function pinRequired(amountFen: number, outcome: { cardNo: string; balanceAfterFen: number; decidedAtMs: number }): AuthorizeResponse {
  const { cardNo, decidedAtMs } = outcome;
  return {
    outcome: Outcome.OUTCOME_PIN_REQUIRED,
    declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
    displayText: `请输入卡密码 ${formatYuan(amountFen)}元`,
    balanceAfterFen: outcome.balanceAfterFen,
    transactionId: '',
    amountFen,
    cardNumber: cardNo,
    pinAttemptsLeft: 0,
    decidedAtMs,
  };
}
