// One payment of PosService, for Authorize and AuthorizeStream alike: validate the request, ask the POS
// domain, map its outcome to the AuthorizeResponse (decline reasons, display texts), count it. Its own
// module so that pos-service.ts (the unary call) and authorize-stream.ts (the stream) both import it
// and neither imports the other.
import { DeclineReason, Outcome, type Credential } from '../../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeRequest, AuthorizeResponse } from '../../proto/gen/cardswitch/v1/pos.js';
import type { PaymentCode, PaymentOutcome, PosDomain } from '../domain/pos.js';
import type { Terminal } from '../domain/terminals.js';
import type { AuthorizationOutcome, CredentialKind, Metrics } from '../metrics.js';
import { formatYuan } from '../money.js';
import { CancelledError } from './errors.js';
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
  // Payment codes: {channel} is 微信 or 支付宝. 'pending' is no decline: it only gives the display text.
  pending: { reason: DeclineReason.DECLINE_REASON_UNSPECIFIED, text: '等待付款人确认，请稍候' },
  payer_not_bound: {
    reason: DeclineReason.DECLINE_REASON_PAYER_NOT_BOUND,
    text: '未绑定校园卡，未扣款。请先在校园卡电子卡“个人中心”绑定{channel}后再付款',
  },
  channel_declined: { reason: DeclineReason.DECLINE_REASON_CHANNEL_DECLINED, text: '{channel}支付失败，请换其他方式付款' },
  channel_timeout: { reason: DeclineReason.DECLINE_REASON_CHANNEL_TIMEOUT, text: '{channel}支付超时，已撤销，未扣款' },
  channel_unavailable: { reason: DeclineReason.DECLINE_REASON_CHANNEL_DECLINED, text: '{channel}暂不可用，未扣款，请稍后重试' },
};

const CHANNEL_ZH: Readonly<Record<string, string>> = { wechat: '微信', alipay: '支付宝' };

export interface PaymentLimits {
  readonly maxPaymentFen: number;
}

export interface PaymentOptions extends PaymentLimits {
  /** Counts cardswitch_authorizations_total; absent in tests that call authorizePayment directly. */
  readonly metrics?: Metrics;
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
  return paymentResponse(amountFen, outcome);
}

/** The answer to a payment (Authorize) or to QueryTransaction about one. */
export function paymentResponse(amountFen: number, outcome: PaymentOutcome): AuthorizeResponse {
  if (outcome.code === 'pin_required') return pinRequired(amountFen, outcome);
  if (outcome.channel !== undefined) return channelResponse(amountFen, outcome, outcome.channel);
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

/** A payment code's answer: no balance (the card's does not move), the channel named in the text. */
function channelResponse(amountFen: number, outcome: PaymentOutcome, channel: string): AuthorizeResponse {
  const name = CHANNEL_ZH[channel] ?? channel;
  const approved = outcome.code === 'approved';
  const pending = outcome.code === 'pending';
  const decline = approved || outcome.code === 'pin_required' ? undefined : DECLINES[outcome.code];
  return {
    outcome: approved ? Outcome.OUTCOME_APPROVED : pending ? Outcome.OUTCOME_PENDING : Outcome.OUTCOME_DECLINED,
    declineReason: decline?.reason ?? DeclineReason.DECLINE_REASON_UNSPECIFIED,
    displayText: approved ? `${name}支付成功 ${formatYuan(amountFen)}元` : (decline?.text ?? '').replace('{channel}', name),
    balanceAfterFen: 0,
    transactionId: outcome.transactionId,
    amountFen,
    cardNumber: outcome.cardNo,
    pinAttemptsLeft: 0,
    decidedAtMs: outcome.decidedAtMs,
  };
}

function declineText(
  text: string,
  outcome: { code: PaymentCode; pinAttemptsLeft: number; balanceAfterFen: number; transactionId: string },
): string {
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
