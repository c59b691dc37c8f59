// What the switch needs from a third-party payment channel (Alipay, WeChat Pay), in its own terms.
// One adapter per channel (alipay/adapter.ts, wechat/adapter.ts) speaks the channel's real API:
// signing every request, checking the signature of every answer and notification, and mapping the
// channel's answers onto these results. The switch's domain never sees a channel's field names.
//
// What every adapter promises:
//  - amounts are integer fen on both sides (the channel's yuan strings are converted exactly, never
//    through floating point: money.ts);
//  - an answer whose signature does not verify is never believed: it is `unknown` (a payment) or a
//    ChannelForgedError (a notification), and the caller queries again;
//  - a transport failure (timeout, connection refused, HTTP 5xx, a body that cannot be read) is
//    `unknown`, never `failed`: the money may have moved, and only a query can tell;
//  - it stops promptly when `signal` aborts (the call's outcome is then `unknown`);
//  - keys, secrets, signatures and full payment codes are never logged nor put into error messages
//    (a code is logged as its first 4 and last 2 digits at most).
//
// Idempotency lives in the ids the switch chooses: `outTradeNo` (one per payment or recharge order,
// at most 32 characters of [A-Za-z0-9_-]) and `outRefundNo`. Sending the same id again is how a
// payment is retried, queried, cancelled or refunded, exactly as both channels define it.

export type ChannelName = 'alipay' | 'wechat';

export const CHANNEL_NAMES: readonly ChannelName[] = ['alipay', 'wechat'];

/** Ids the switch chooses for the channel: out_trade_no, out_refund_no. */
export const CHANNEL_ID_PATTERN = /^[A-Za-z0-9_-]{6,32}$/;

/** A payment code shown by the payer's phone and scanned by a POS (barcode payment). */
export interface CodePaymentRequest {
  readonly outTradeNo: string;
  /** The code as scanned: WeChat 18 digits (prefix 10-15), Alipay 16-24 digits (prefix 25-30). */
  readonly authCode: string;
  readonly amountFen: number;
  /** What the payer's receipt says, e.g. "第一食堂 一层". At most 64 characters. */
  readonly subject: string;
  /** The POS that scanned it (the channel's store / device field). */
  readonly terminalId: string;
}

/** Who paid, as the channel names them: Alipay buyer_user_id (2088...), WeChat openid of our appid. */
export interface ChannelPayer {
  readonly channel: ChannelName;
  readonly payerId: string;
}

export type PaymentFailure =
  | 'insufficient_funds'
  /** The code is not a valid code of this channel, or has expired (they refresh every minute). */
  | 'code_invalid'
  /** The code was already used for another payment. */
  | 'code_used'
  /** The payer's account is frozen or may not pay this merchant. */
  | 'payer_refused'
  /** The payer gave up (cancelled in the app, or did not confirm in time). */
  | 'payer_cancelled'
  /** Anything else the channel says is final and not paid. */
  | 'declined';

export type PaymentResult =
  | {
      readonly status: 'paid';
      readonly channelTxnId: string;
      readonly payer: ChannelPayer;
      readonly amountFen: number;
      readonly paidAtMs: number;
    }
  /** The payer is still confirming (WeChat USERPAYING, Alipay 10003 WAIT_BUYER_PAY): query again. */
  | { readonly status: 'paying' }
  /** Final: not paid, nothing to undo. `message` is the channel's text, safe to show to the payer. */
  | { readonly status: 'failed'; readonly reason: PaymentFailure; readonly message: string }
  /** Nobody knows yet (WeChat SYSTEMERROR / BANKERROR, Alipay 20000, timeouts): query, then cancel. */
  | { readonly status: 'unknown'; readonly message: string };

export type QueryResult =
  | PaymentResult
  /** The channel has no such order (never arrived, or arrived after we cancelled). */
  | { readonly status: 'not_found' }
  /** Closed or cancelled/reversed: not paid (or paid and given back in full). */
  | { readonly status: 'closed' };

export type CancelResult =
  /** Nothing was taken, or what was taken went back to the payer. */
  | { readonly status: 'cancelled' }
  /** The channel says: call cancel again (WeChat recall=Y, Alipay retry_flag=Y, transport trouble). */
  | { readonly status: 'retry'; readonly message: string }
  /** Final refusal (e.g. past the channel's cancel window): the switch refunds instead. */
  | { readonly status: 'refused'; readonly message: string };

/**
 * What became of closing an unpaid recharge order (Alipay alipay.trade.close, WeChat Pay close order).
 * Where the channel refuses the close (the order is no longer waiting), the adapter asks it what the
 * order is, so a close answers the truth of the order, never a guess.
 */
export type CloseResult =
  /** Closed (now, or before): it can no longer be paid. */
  | { readonly status: 'closed' }
  /** It was paid before the close got there: credit it as any paid order. */
  | Extract<PaymentResult, { readonly status: 'paid' }>
  /**
   * The channel has no such order, so nothing was closed. Alipay makes a precreated order's trade only when
   * the QR is scanned: until then its close answers ACQ.TRADE_NOT_EXIST and the QR stays payable until it
   * expires. The order is left as it is.
   */
  | { readonly status: 'not_found' }
  /** Nobody knows (transport, system error, an answer that does not verify, still paying): left as it is. */
  | { readonly status: 'unknown'; readonly message: string };

export interface RefundRequest {
  readonly outTradeNo: string;
  readonly outRefundNo: string;
  readonly refundFen: number;
  /** The payment's whole amount (WeChat asks for it). */
  readonly totalFen: number;
  readonly reason: string;
}

export type RefundResult =
  | { readonly status: 'refunded'; readonly channelRefundId: string; readonly refundFen: number }
  | { readonly status: 'processing' }
  | { readonly status: 'failed'; readonly message: string }
  | { readonly status: 'unknown'; readonly message: string };

/** A refund query's answer: the refund as the channel has it, or none under that out_refund_no (send it again). */
export type RefundQueryResult = RefundResult | { readonly status: 'not_found' };

/** A recharge order the payer pays on their phone (Alipay precreate, WeChat Native / JSAPI). */
export interface RechargeOrderRequest {
  readonly outTradeNo: string;
  readonly amountFen: number;
  readonly subject: string;
  /** WeChat JSAPI: the payer's openid of our appid; absent for a QR (Native / precreate) order. */
  readonly payerId?: string;
  /** The order expires (the channel closes it) this many seconds after it is created. */
  readonly expiresInSec: number;
}

export type RechargeOrder =
  /** A QR code's content (Alipay qr_code, WeChat code_url): the phone or kiosk draws it. */
  | { readonly kind: 'qr'; readonly qrContent: string }
  /** What the WeChat page passes to WeixinJSBridge / wx.requestPayment, signed by the adapter. */
  | {
      readonly kind: 'jsapi';
      readonly appId: string;
      readonly timeStamp: string;
      readonly nonceStr: string;
      readonly package: string;
      readonly signType: string;
      readonly paySign: string;
    };

/** A payment notification whose signature verified and whose content was read. */
export interface VerifiedNotification {
  readonly outTradeNo: string;
  readonly channelTxnId: string;
  /** What the channel says was paid; the caller compares it with the order's amount. */
  readonly amountFen: number;
  readonly paid: boolean;
  readonly payer: ChannelPayer | undefined;
  readonly paidAtMs: number | undefined;
  /** The channel's own id of this notification, when it has one (dedupe). */
  readonly notificationId: string | undefined;
}

/** What to send back to the channel for a notification: its API defines the body (and HTTP status). */
export interface NotificationReply {
  readonly httpStatus: number;
  readonly contentType: string;
  readonly body: string;
}

export interface IncomingNotification {
  /** Header names lower-case. */
  readonly headers: Readonly<Record<string, string>>;
  /** The raw body exactly as received (signatures cover the bytes). */
  readonly body: string;
}

/** One line of the channel's daily statement (bill), in the switch's terms. */
export interface StatementRow {
  readonly outTradeNo: string;
  readonly channelTxnId: string;
  readonly kind: 'payment' | 'refund';
  /** Positive: the amount paid or refunded. */
  readonly amountFen: number;
  readonly atMs: number;
  /** For a refund: its out_refund_no. */
  readonly outRefundNo?: string;
}

/** The notification did not verify (signature, timestamp, decryption or shape): credit nothing. */
export class ChannelForgedError extends Error {
  override readonly name = 'ChannelForgedError';
}

export interface PaymentChannel {
  readonly name: ChannelName;
  /** True when `code` has this channel's format (digits, length, prefix). */
  recognises(code: string): boolean;
  /**
   * The payer's id before charging, where the channel offers it (WeChat authcodetoopenid);
   * undefined where it does not (Alipay reveals the buyer only in the payment's answer).
   */
  payerOfCode?(authCode: string, signal: AbortSignal): Promise<ChannelPayer | 'code_invalid' | 'unknown'>;
  payWithCode(request: CodePaymentRequest, signal: AbortSignal): Promise<PaymentResult>;
  queryPayment(outTradeNo: string, signal: AbortSignal): Promise<QueryResult>;
  /** Undo a code payment that is undecided or was paid by someone who may not pay (Alipay trade.cancel, WeChat reverse). */
  cancelPayment(outTradeNo: string, signal: AbortSignal): Promise<CancelResult>;
  refund(request: RefundRequest, signal: AbortSignal): Promise<RefundResult>;
  /**
   * What became of a refund whose answer was lost (Alipay alipay.trade.fastpay.refund.query, WeChat Pay
   * refundquery), by its outRefundNo: 'not_found' means none was made and the same refund may be sent again.
   */
  queryRefund(request: RefundRequest, signal: AbortSignal): Promise<RefundQueryResult>;
  createRechargeOrder(request: RechargeOrderRequest, signal: AbortSignal): Promise<RechargeOrder>;
  /**
   * Closes an unpaid recharge order so that it can no longer be paid (Alipay alipay.trade.close, WeChat
   * Pay POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close). Idempotent: closing a closed order
   * answers closed; a paid one answers paid (the adapter queries it when the channel refuses the close).
   */
  closeRechargeOrder(outTradeNo: string, signal: AbortSignal): Promise<CloseResult>;
  /** Verifies and reads a payment notification; throws ChannelForgedError when it does not verify. */
  verifyNotification(notification: IncomingNotification): VerifiedNotification | Promise<VerifiedNotification>;
  /** The body the channel expects after a notification was handled (ok) or must be sent again (not ok). */
  notificationReply(ok: boolean): NotificationReply;
  /** The channel's statement of one day (YYYY-MM-DD, Asia/Shanghai), read into rows. */
  dailyStatement(date: string, signal: AbortSignal): Promise<readonly StatementRow[]>;
}
