// Refund (PosService), Recharge, RechargeOrderState, CancelRechargeOrder and PayUtilityFee (KioskService), ManualRecharge and Adjust
// (AdminService): validate, call one domain function (refund.ts, kiosk.ts, recharge.ts), map the
// result to the response. Business refusals of PayUtilityFee are declined answers (like Authorize);
// the others answer a gRPC status.
//
// Fee provider: app.ts builds it once into SwitchContext.fees (the built-in simulator until a campus
// adapter exists; tests pass their own as StartOptions.feeProvider). Fees left pending by a crash or a silent provider are finished or
// given back by the recovery sweep (recoverPendingFees in domain/fees.ts), which app.ts runs at
// start-up and every FEE_RECOVERY_INTERVAL_MS.
import type { handleUnaryCall } from '@grpc/grpc-js';
import { DeclineReason, Outcome, RechargeChannel, UtilityKind } from '../../proto/gen/cardswitch/v1/common.js';
import type { RefundRequest, RefundResponse } from '../../proto/gen/cardswitch/v1/pos.js';
import {
  RechargeOrderStatus,
  type CancelRechargeOrderRequest,
  type CancelRechargeOrderResponse,
  type PayUtilityFeeRequest,
  type PayUtilityFeeResponse,
  type RechargeOrderStateRequest,
  type RechargeOrderStateResponse,
  type RechargeRequest,
  type RechargeResponse,
} from '../../proto/gen/cardswitch/v1/kiosk.js';
import type { ChannelName } from '../channels/channel.js';
import type { AdjustRequest, AdjustResponse, ManualRechargeRequest, ManualRechargeResponse } from '../../proto/gen/cardswitch/v1/admin.js';
import type { SwitchContext } from '../context.js';
import { checkCardNumber } from '../domain/cardholder.js';
import { checkFeeAmount, checkUtilityTarget } from '../domain/fees.js';
import { payUtilityFeeAtKiosk } from '../domain/kiosk.js';
import {
  cancelKioskRechargeOrder,
  kioskRechargeOrderState,
  newKioskRechargeOrder,
  type CancelOutcome,
  type OrderState,
} from '../domain/recharge-orders.js';
import { adjustBalance, checkReason, rechargeCard } from '../domain/recharge.js';
import { refundPayment } from '../domain/refund.js';
import { TERMINAL_ID_PATTERN } from '../domain/terminals.js';
import type { FeeAnswer, RechargeChannelCode, UtilityKindCode } from '../ledger/money.js';
import { formatYuan } from '../money.js';
import { PIN_PATTERN } from '../domain/password.js';
import { cardholderOf, kioskCardholder } from './kiosk-cardholder.js';
import { InvalidArgumentError, NotFoundError } from './errors.js';
import { callingOperator, callingTerminal, unary } from './unary.js';
import { checkAmount, checkSequence, checkTerminalField } from './validate.js';

const CHANNELS: ReadonlyMap<RechargeChannel, RechargeChannelCode> = new Map([
  [RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'WECHAT'],
  [RechargeChannel.RECHARGE_CHANNEL_ALIPAY, 'ALIPAY'],
  [RechargeChannel.RECHARGE_CHANNEL_COUNTER, 'COUNTER'],
]);

function checkChannel(channel: RechargeChannel): RechargeChannelCode {
  const code = CHANNELS.get(channel);
  if (code === undefined)
    throw new InvalidArgumentError('channel must be RECHARGE_CHANNEL_WECHAT, RECHARGE_CHANNEL_ALIPAY or RECHARGE_CHANNEL_COUNTER');
  return code;
}

const UTILITY_KINDS: ReadonlyMap<UtilityKind, UtilityKindCode> = new Map([
  [UtilityKind.UTILITY_KIND_NETWORK, 'network'],
  [UtilityKind.UTILITY_KIND_ELECTRICITY, 'electricity'],
]);
const UTILITY_NAMES: Readonly<Record<UtilityKindCode, string>> = { network: '网费', electricity: '电费' };

function checkUtilityKind(kind: UtilityKind): UtilityKindCode {
  const code = UTILITY_KINDS.get(kind);
  if (code === undefined) throw new InvalidArgumentError('kind must be UTILITY_KIND_NETWORK or UTILITY_KIND_ELECTRICITY');
  return code;
}

export function refundHandler(ctx: SwitchContext): handleUnaryCall<RefundRequest, RefundResponse> {
  return unary<RefundRequest, RefundResponse>(ctx, 'Refund', async (req, call) => {
    const terminal = callingTerminal(call);
    checkTerminalField(req.terminalId, terminal);
    const sequence = checkSequence(req.sequenceNumber, 'sequence_number');
    const cardNo = checkCardNumber(req.cardNumber);
    if (!TERMINAL_ID_PATTERN.test(req.originalTerminalId)) {
      throw new InvalidArgumentError(`original_terminal_id must be 1-32 of A-Z a-z 0-9 _ -, got "${req.originalTerminalId.slice(0, 40)}"`);
    }
    const originalSequence = checkSequence(req.originalSequenceNumber, 'original_sequence_number');
    if (req.originalTerminalId === terminal.id && originalSequence === sequence) {
      throw new InvalidArgumentError(
        "sequence_number is the payment's own; a refund needs a new sequence number of the refunding terminal",
      );
    }
    const amountFen = checkAmount(req.amountFen, ctx.config.maxPaymentFen);
    const result = await refundPayment(ctx, terminal, {
      sequence,
      cardNo,
      originalTerminalId: req.originalTerminalId,
      originalSequence,
      amountFen,
    });
    return {
      balanceAfterFen: result.balanceAfterFen,
      refundableLeftFen: result.refundableLeftFen,
      transactionId: result.transactionId,
      // A code payment's refund goes back to the payer's Alipay / WeChat: the card's balance is not the news.
      displayText:
        result.channel === undefined
          ? `退款成功 ${formatYuan(amountFen)}元 余额${formatYuan(result.balanceAfterFen)}元`
          : `退款成功 ${formatYuan(amountFen)}元 已原路退回${result.channel === 'wechat' ? '微信' : '支付宝'}`,
      decidedAtMs: result.decidedAtMs,
    };
  });
}

const ORDER_CHANNELS: ReadonlyMap<RechargeChannel, ChannelName> = new Map([
  [RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wechat'],
  [RechargeChannel.RECHARGE_CHANNEL_ALIPAY, 'alipay'],
]);
const ORDER_CHANNEL_ZH: Readonly<Record<ChannelName, string>> = { wechat: '微信', alipay: '支付宝' };

/** Makes a recharge order paid with a QR code the kiosk shows; the credit comes when the channel says paid. */
export function kioskRechargeHandler(ctx: SwitchContext): handleUnaryCall<RechargeRequest, RechargeResponse> {
  return unary<RechargeRequest, RechargeResponse>(ctx, 'Recharge', async (req, call) => {
    const terminal = callingTerminal(call);
    const channel = ORDER_CHANNELS.get(req.channel);
    if (channel === undefined) {
      throw new InvalidArgumentError(
        'channel must be RECHARGE_CHANNEL_WECHAT or RECHARGE_CHANNEL_ALIPAY (cash is the card office: AdminService/ManualRecharge)',
      );
    }
    const qrTimeoutSec = req.qrTimeoutSec;
    if (qrTimeoutSec !== undefined && (!Number.isSafeInteger(qrTimeoutSec) || qrTimeoutSec < 1 || qrTimeoutSec > 86_400)) {
      throw new InvalidArgumentError(
        `qr_timeout_sec is how long the kiosk shows the QR: 1 to 86400 seconds, or leave it out; got ${qrTimeoutSec}`,
      );
    }
    const order = await newKioskRechargeOrder(ctx, {
      cardholder: cardholderOf(req.cardholder),
      channel,
      requestId: req.requestId,
      amountFen: req.amountFen,
      terminalId: terminal.id,
      ...(qrTimeoutSec === undefined ? {} : { qrTimeoutSec }),
    });
    return {
      displayText: `请用${ORDER_CHANNEL_ZH[channel]}扫码支付 ${formatYuan(req.amountFen)}元`,
      cardNumber: order.cardNo,
      orderId: order.orderId,
      qrContent: order.qrContent,
      expiresAtMs: order.expiresAtMs,
      amountFen: req.amountFen,
    };
  });
}

const ORDER_STATUS: Readonly<Record<OrderState, RechargeOrderStatus>> = {
  pending: RechargeOrderStatus.RECHARGE_ORDER_STATUS_PENDING,
  paid: RechargeOrderStatus.RECHARGE_ORDER_STATUS_PAID,
  expired: RechargeOrderStatus.RECHARGE_ORDER_STATUS_EXPIRED,
  closed: RechargeOrderStatus.RECHARGE_ORDER_STATUS_CLOSED,
};

export function kioskRechargeOrderStateHandler(ctx: SwitchContext): handleUnaryCall<RechargeOrderStateRequest, RechargeOrderStateResponse> {
  return unary<RechargeOrderStateRequest, RechargeOrderStateResponse>(ctx, 'RechargeOrderState', async (req, call) => {
    const terminal = callingTerminal(call);
    if (!ORDER_ID_PATTERN.test(req.orderId)) throw new InvalidArgumentError('order_id must be the order_id Recharge answered');
    const view = await kioskRechargeOrderState(ctx, terminal.id, req.orderId);
    const balanceAfterFen = view.balanceAfterFen ?? 0;
    const text: Readonly<Record<OrderState, string>> = {
      pending: '等待支付',
      paid: paidText(view, balanceAfterFen),
      expired: '订单已过期，请重新充值',
      closed: '订单已关闭，请重新充值',
    };
    return {
      orderId: view.orderId,
      status: ORDER_STATUS[view.state],
      amountFen: view.amountFen,
      balanceAfterFen,
      transactionId: view.transactionId,
      displayText: text[view.state],
      cardNumber: view.cardNo,
      expiresAtMs: view.expiresAtMs,
    };
  });
}

const ORDER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** 取消 on the kiosk: closes the order at its channel; answers closed, paid, or still payable (see kiosk.proto). */
export function kioskCancelRechargeOrderHandler(
  ctx: SwitchContext,
): handleUnaryCall<CancelRechargeOrderRequest, CancelRechargeOrderResponse> {
  return unary<CancelRechargeOrderRequest, CancelRechargeOrderResponse>(ctx, 'CancelRechargeOrder', async (req, call) => {
    const terminal = callingTerminal(call);
    if (!ORDER_ID_PATTERN.test(req.orderId)) throw new InvalidArgumentError('order_id must be the order_id Recharge answered');
    const view = await cancelKioskRechargeOrder(ctx, terminal.id, req.orderId);
    const balanceAfterFen = view.balanceAfterFen ?? 0;
    const text: Readonly<Record<CancelOutcome, string>> = {
      closed: '已取消充值，订单已关闭，未扣款',
      paid: paidText(view, balanceAfterFen),
      open: `二维码已关闭，但${ORDER_CHANNEL_ZH[view.channel]}暂未关闭订单：${campusClock(view.expiresAtMs)}前付款仍会充入卡中，之后不能再支付；请勿重复付款`,
    };
    return {
      orderId: view.orderId,
      status: ORDER_STATUS[view.state],
      amountFen: view.amountFen,
      balanceAfterFen,
      transactionId: view.transactionId,
      displayText: text[view.outcome],
      cardNumber: view.cardNo,
      expiresAtMs: view.expiresAtMs,
    };
  });
}

/** What the kiosk shows for a paid recharge order (RechargeOrderState and CancelRechargeOrder alike). */
function paidText(view: { readonly channel: keyof typeof ORDER_CHANNEL_ZH; readonly amountFen: number }, balanceAfterFen: number): string {
  return `${ORDER_CHANNEL_ZH[view.channel]}充值成功 ${formatYuan(view.amountFen)}元 余额${formatYuan(balanceAfterFen)}元`;
}

/** HH:MM:SS in campus time (China Standard Time, UTC+8, no daylight saving). */
function campusClock(ms: number): string {
  return new Date(ms + 8 * 3_600_000).toISOString().slice(11, 19);
}

export function manualRechargeHandler(ctx: SwitchContext): handleUnaryCall<ManualRechargeRequest, ManualRechargeResponse> {
  return unary<ManualRechargeRequest, ManualRechargeResponse>(ctx, 'ManualRecharge', async (req, call) => {
    const operator = callingOperator(call);
    const cardNo = checkCardNumber(req.cardNumber);
    const channel = checkChannel(req.channel);
    const reason = checkReason(req.reason);
    const result = await rechargeCard(ctx, {
      cardNo,
      channel,
      orderId: req.channelOrderId,
      amountFen: req.amountFen,
      source: operator,
      reason,
    });
    return { balanceAfterFen: result.balanceAfterFen, transactionId: result.transactionId, decidedAtMs: result.decidedAtMs };
  });
}

export function adjustHandler(ctx: SwitchContext): handleUnaryCall<AdjustRequest, AdjustResponse> {
  return unary<AdjustRequest, AdjustResponse>(ctx, 'Adjust', async (req, call) => {
    const operator = callingOperator(call);
    const cardNo = checkCardNumber(req.cardNumber);
    const result = await adjustBalance(ctx, {
      cardNo,
      adjustmentId: req.adjustmentId,
      signedAmountFen: req.amountFen,
      reason: req.reason,
      operator,
    });
    return { balanceAfterFen: result.balanceAfterFen, transactionId: result.transactionId, decidedAtMs: result.decidedAtMs };
  });
}

export function payUtilityFeeHandler(ctx: SwitchContext): handleUnaryCall<PayUtilityFeeRequest, PayUtilityFeeResponse> {
  return unary<PayUtilityFeeRequest, PayUtilityFeeResponse>(ctx, 'PayUtilityFee', async (req, call) => {
    const sequence = checkSequence(req.sequenceNumber, 'sequence_number');
    const kind = checkUtilityKind(req.kind);
    const target = checkUtilityTarget(kind, req.networkAccount, req.building, req.room);
    const amountFen = checkFeeAmount(req.amountFen);
    if (req.password === '') throw new InvalidArgumentError('password is required (the 6-digit card password)');
    if (!PIN_PATTERN.test(req.password)) throw new InvalidArgumentError('password must be exactly 6 digits');
    const outcome = await payUtilityFeeAtKiosk(ctx, {
      ...kioskCardholder(req.cardholder, req.password, call),
      sequence,
      target,
      amountFen,
    });
    // A wrong or locked password is a declined answer, not recorded under the request key: the
    // cardholder may try again with the same sequence number.
    if (outcome.kind === 'password_refused' && outcome.reason === 'locked')
      return passwordDecline(DeclineReason.DECLINE_REASON_PIN_LOCKED, '密码已锁定，请明日再试', 0);
    if (outcome.kind === 'password_refused') {
      return passwordDecline(
        DeclineReason.DECLINE_REASON_WRONG_PIN,
        `密码错误，今日还可尝试${outcome.attemptsLeft}次`,
        outcome.attemptsLeft,
      );
    }
    return feeResponse(outcome.answer, UTILITY_NAMES[kind], amountFen);
  });
}

function passwordDecline(reason: DeclineReason, text: string, attemptsLeft: number): PayUtilityFeeResponse {
  return {
    outcome: Outcome.OUTCOME_DECLINED,
    declineReason: reason,
    displayText: text,
    balanceAfterFen: 0,
    transactionId: '',
    providerReceipt: '',
    passwordAttemptsLeft: attemptsLeft,
  };
}

type FeeDeclineCode = 'insufficient_funds' | 'card_lost' | 'card_frozen' | 'card_cancelled';
const FEE_DECLINES: Readonly<Record<FeeDeclineCode, { reason: DeclineReason; text: string }>> = {
  insufficient_funds: { reason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS, text: '余额不足' },
  card_lost: { reason: DeclineReason.DECLINE_REASON_CARD_LOST, text: '此卡已挂失' },
  card_frozen: { reason: DeclineReason.DECLINE_REASON_CARD_FROZEN, text: '此卡已冻结' },
  card_cancelled: { reason: DeclineReason.DECLINE_REASON_CARD_CANCELLED, text: '此卡已注销' },
};

/** Built only from the stored answer and the request, so a retry gets the same bytes. */
function feeResponse(answer: FeeAnswer, utilityName: string, amountFen: number): PayUtilityFeeResponse {
  const balance = `余额${formatYuan(answer.balanceAfterFen)}元`;
  const base = { balanceAfterFen: answer.balanceAfterFen, transactionId: '', providerReceipt: '', passwordAttemptsLeft: 0 };
  switch (answer.code) {
    case 'delivered':
      return {
        ...base,
        outcome: Outcome.OUTCOME_APPROVED,
        declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
        displayText: `${utilityName}缴费成功 ${formatYuan(amountFen)}元 ${balance}`,
        transactionId: answer.transactionId,
        providerReceipt: answer.detail,
      };
    case 'given_back':
      return {
        ...base,
        outcome: Outcome.OUTCOME_DECLINED,
        declineReason: DeclineReason.DECLINE_REASON_CHANNEL_DECLINED,
        displayText: `${utilityName}缴费失败（${answer.detail}），${formatYuan(amountFen)}元已退回 ${balance}`,
      };
    case 'pending':
      return {
        ...base,
        outcome: Outcome.OUTCOME_PENDING,
        declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
        displayText: `${utilityName}缴费结果待确认，请稍后用同一流水号重试查询；未到账的款项将自动退回`,
        transactionId: answer.transactionId,
      };
    case 'unknown_card':
      throw new NotFoundError('the card does not exist');
    default: {
      const decline = FEE_DECLINES[answer.code];
      return { ...base, outcome: Outcome.OUTCOME_DECLINED, declineReason: decline.reason, displayText: `${decline.text} ${balance}` };
    }
  }
}
