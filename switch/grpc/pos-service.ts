// cardswitch.v1.PosService: validate, call the POS domain, map the result. Business refusals
// (insufficient funds, lost card ...) are answers with a reason; malformed calls are gRPC errors.
// The payment itself (Authorize) is authorize.ts's, shared with the stream (authorize-stream.ts).
import type { handleUnaryCall } from '@grpc/grpc-js';
import { CardStatus, HolderType } from '../../proto/gen/cardswitch/v1/common.js';
import {
  ReverseResult as ReverseResultProto,
  type AuthorizeRequest,
  type AuthorizeResponse,
  type InquireRequest,
  type InquireResponse,
  type PosServiceServer,
  type QueryTransactionRequest,
  type ReverseRequest,
  type ReverseResponse,
} from '../../proto/gen/cardswitch/v1/pos.js';
import { maskName } from '../domain/cards.js';
import type { PosDomain } from '../domain/pos.js';
import type { WaterDomain } from '../domain/water.js';
import type { SwitchContext } from '../context.js';
import { authorizePayment, paymentResponse, type PaymentLimits, type PaymentOptions } from './authorize.js';
import type { AuthorizeStreams } from './authorize-stream.js';
import { refundHandler } from './money-handlers.js';
import { settleHandler, waterDebitHandler } from './water-handlers.js';
import type { CardStatusCode, ReverseCode } from '../ledger/ledger.js';
import { formatYuan } from '../money.js';
import { InvalidArgumentError, NotFoundError } from './errors.js';
import { callingTerminal, unary, type UnaryDeps } from './unary.js';
import { checkAmount, checkCredential, checkSequence, checkTerminalField } from './validate.js';

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

/** The PosService's domain services, each built once by app.ts. */
export interface PosServices {
  readonly pos: PosDomain;
  readonly water: WaterDomain;
  /** The open AuthorizeStreams (drained on shutdown); pays with the same `pos`. */
  readonly streams: AuthorizeStreams;
}

export function posService(ctx: SwitchContext, { pos: domain, water, streams }: PosServices): PosServiceServer {
  return {
    authorize: authorizeHandler(domain, ctx, { maxPaymentFen: ctx.config.maxPaymentFen, metrics: ctx.metrics }),
    authorizeStream: streams.handler(),
    reverse: reverseHandler(domain, ctx, ctx.config),
    inquire: inquireHandler(domain, ctx),
    refund: refundHandler(ctx),
    waterDebit: waterDebitHandler(ctx, water),
    settle: settleHandler(ctx, water),
    queryTransaction: queryTransactionHandler(domain, ctx),
  };
}

const MAX_TRANSACTION_ID_LENGTH = 64;

function queryTransactionHandler(domain: PosDomain, deps: UnaryDeps): handleUnaryCall<QueryTransactionRequest, AuthorizeResponse> {
  return unary<QueryTransactionRequest, AuthorizeResponse>(deps, 'QueryTransaction', async (req, ctx) => {
    const terminal = callingTerminal(ctx);
    checkTerminalField(req.terminalId, terminal);
    const bySequence = req.sequenceNumber !== 0;
    if (bySequence === (req.transactionId !== '')) {
      throw new InvalidArgumentError('send exactly one of sequence_number and transaction_id');
    }
    if (req.transactionId.length > MAX_TRANSACTION_ID_LENGTH) {
      throw new InvalidArgumentError(`transaction_id must be at most ${MAX_TRANSACTION_ID_LENGTH} characters`);
    }
    const by = bySequence ? { sequence: checkSequence(req.sequenceNumber, 'sequence_number') } : { transactionId: req.transactionId };
    const outcome = await domain.queryTransaction(terminal, by);
    return paymentResponse(outcome.amountFen, outcome);
  });
}

function authorizeHandler(
  domain: PosDomain,
  deps: UnaryDeps,
  options: PaymentOptions,
): handleUnaryCall<AuthorizeRequest, AuthorizeResponse> {
  return unary<AuthorizeRequest, AuthorizeResponse>(deps, 'Authorize', (req, ctx) =>
    authorizePayment(domain, options, callingTerminal(ctx), req, ctx.cancelled),
  );
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
    // A payment code's money goes back through its channel; the card balance never moved.
    const channelText = result.code === 'reversed' ? `${mapped.text}，款项原路退回` : mapped.text;
    return {
      result: mapped.result,
      balanceAfterFen: result.balanceAfterFen,
      displayText: credential.kind === 'third_party' ? channelText : `${mapped.text} 余额${formatYuan(result.balanceAfterFen)}元`,
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
