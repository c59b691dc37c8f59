// The Alipay channel (OpenAPI gateway, public-key mode, RSA2): barcode payments (alipay.trade.pay with
// scene bar_code), query, cancel, refund (+ alipay.trade.fastpay.refund.query to confirm a repeated one),
// recharge QR orders (alipay.trade.precreate, closed with alipay.trade.close), payment notifications (trade_status_sync) and the daily
// trade statement. What every adapter promises is in ../channel.ts. Also the payer binding of the guide
// (扫码授权): the authorisation URL the holder opens (scope auth_base), and alipay.system.oauth.token,
// which turns the auth_code Alipay redirects back with into the holder's user_id (2088...).
//
// alipay-sdk (v4) checks the signatures: checkResponseSign() an answer with the Alipay public key,
// checkNotifySignV2() a notification. Requests are signed by sign.ts exactly as its sdkExecute() signs
// them (RSA2 over the sorted parameters), without its per-call re-mapping. Its exec() is not used to
// send: it takes no AbortSignal (only a fixed timeout), it warns on the console and skips the check when
// no Alipay public key is set, and its errors quote the signature and the whole answer. So the adapter
// sends the signed form itself over node:http with a keep-alive agent (../http.ts says why not fetch),
// bounded by the caller's signal and ALIPAY_TIMEOUT_MS, whichever ends first; requires a signature on
// every answer, and writes its own messages. Alipay wants the request timestamp in Beijing time (the
// SDK's is local time), so the adapter writes it.
// Certificate mode (app_cert_sn, alipay_root_cert_sn) is not supported: public-key mode only.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { AlipaySdk } from 'alipay-sdk';
import {
  CHANNEL_ID_PATTERN,
  ChannelForgedError,
  type CancelResult,
  type ChannelPayer,
  type CloseResult,
  type CodePaymentRequest,
  type IncomingNotification,
  type NotificationReply,
  type PaymentChannel,
  type PaymentFailure,
  type PaymentResult,
  type QueryResult,
  type RechargeOrder,
  type RechargeOrderRequest,
  type RefundQueryResult,
  type RefundRequest,
  type RefundResult,
  type StatementRow,
  type VerifiedNotification,
} from '../channel.js';
import { CancelledError, FailedPreconditionError, InvalidArgumentError, UnavailableError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { exchange, keepAliveAgent, TransportError, type HttpAnswer } from '../http.js';
import { signOpenApiCall } from './sign.js';
import { billDetailFromZip, BillFormatError, MAX_BILL_ZIP_BYTES, parseBillDetail } from './bill.js';
import type { AlipayConfig } from './config.js';
import {
  ALIPAY_CODE_PATTERN,
  ALIPAY_MAX_AMOUNT_FEN,
  beijingTime,
  fenToYuan,
  isDate,
  maskCode,
  parseBeijingTime,
  yuanToFen,
} from './format.js';

export type { AlipayConfig } from './config.js';

export interface AlipayChannelOptions {
  readonly config: AlipayConfig;
  readonly logger: Logger;
  /** Milliseconds since the epoch (request timestamps, order expiry). */
  readonly now?: () => number;
}

const MAX_ANSWER_BYTES = 256 * 1024;
const MAX_NOTIFICATION_BYTES = 64 * 1024;
const MAX_SUBJECT_LENGTH = 64;
const MAX_REASON_LENGTH = 256;
/** Alipay closes a precreated order at the latest after 15 days. */
const MAX_ORDER_EXPIRY_SEC = 15 * 24 * 3600;

/** Where Alipay sends the holder back after the authorisation: the gateway's route, on ALIPAY_NOTIFY_URL's origin. */
export const ALIPAY_OAUTH_CALLBACK_PATH = '/api/v1/channels/alipay/oauth-callback';
/** The authorisation page of the open platform (public-app authorisation); the sandbox has its own. */
const OAUTH_PAGE_PATH = '/oauth2/publicAppAuthorize.htm';
const OAUTH_HOSTS: Readonly<Record<string, string>> = {
  'openapi.alipay.com': 'https://openauth.alipay.com',
  'openapi-sandbox.dl.alipaydev.com': 'https://openauth-sandbox.dl.alipaydev.com',
};
/** An auth_code is short (about 32 characters); anything longer is not one. */
const AUTH_CODE_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;
const ALIPAY_USER_ID_PATTERN = /^2088\d{12}$/;
/** The state we pass through the authorisation (signed by the caller); bounded, URL-safe. */
const OAUTH_STATE_PATTERN = /^[A-Za-z0-9._~-]{16,400}$/;

/** What alipay.system.oauth.token answered for an auth_code. */
export type AuthCodeResult =
  | { readonly status: 'ok'; readonly payer: ChannelPayer }
  /** Final: the code is wrong, expired or used (isv.code-invalid): the holder authorises again. */
  | { readonly status: 'invalid'; readonly message: string }
  /** Nobody knows (transport, system error, an answer that does not verify): the holder tries again. */
  | { readonly status: 'unknown'; readonly message: string };

/** What one gateway call gave: a verified answer's inner object, or why nobody knows. */
type Answer = { readonly ok: true; readonly body: Readonly<Record<string, unknown>> } | { readonly ok: false; readonly message: string };

/** Sub-codes of 40004 (Business Failed) answered to alipay.trade.pay, as the switch reads them. */
const PAY_FAILURES: Readonly<Record<string, PaymentFailure>> = {
  'ACQ.PAYMENT_AUTH_CODE_INVALID': 'code_invalid', // wrong, expired or already used: Alipay does not tell which
  'ACQ.BUYER_BALANCE_NOT_ENOUGH': 'insufficient_funds',
  'ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH': 'insufficient_funds',
  'ACQ.BUYER_ENABLE_STATUS_FORBID': 'payer_refused',
  'ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT': 'payer_refused',
  'ACQ.BEYOND_PAY_RESTRICTION': 'payer_refused',
  'ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR': 'payer_refused',
  'ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR': 'payer_refused',
  'ACQ.TRADE_HAS_CLOSE': 'payer_cancelled',
};

/** Sub-codes of 40004 answered to alipay.trade.close for a trade that is not waiting (paid or closed). */
const CLOSE_REFUSED_NOT_WAITING = new Set(['ACQ.TRADE_STATUS_ERROR', 'ACQ.REASON_TRADE_STATUS_INVALID', 'ACQ.REASON_ILLEGAL_STATUS']);

export class AlipayChannel implements PaymentChannel {
  readonly name = 'alipay' as const;
  private readonly sdk: AlipaySdk;
  private readonly config: AlipayConfig;
  private readonly log: Logger;
  private readonly now: () => number;
  /** The app's private key, decoded once (sign.ts signs every call with it). */
  private readonly privateKey: KeyObject;
  /** Kept-alive connections to the gateway (a new connection per call costs more than the call). */
  private readonly agent: HttpAgent | HttpsAgent;
  /** The gateway URL ending in '?' or '&': the signed common parameters follow. */
  private readonly gatewayBase: string;

  constructor(options: AlipayChannelOptions) {
    this.config = options.config;
    this.now = options.now ?? Date.now;
    this.log = options.logger.child({ channel: 'alipay' });
    this.sdk = new AlipaySdk({
      appId: this.config.appId,
      privateKey: this.config.appPrivateKeyPem,
      keyType: 'PKCS8',
      alipayPublicKey: this.config.alipayPublicKeyPem,
      signType: 'RSA2',
      gateway: this.config.gatewayUrl,
      timeout: this.config.timeoutMs,
      camelcase: false,
    });
    // alipay-sdk keeps both keys as PEM text and hands the text to node:crypto on every request, which
    // decodes the PEM each time: about 500 µs of CPU per signature here, more than the RSA signature itself
    // (loadtest/RESULTS.md, "Fifth session: third-party payments"). Its signing and checking accept a
    // KeyObject as well, so the keys are decoded once, here.
    const keys = this.sdk.config as unknown as { privateKey: KeyObject | string; alipayPublicKey?: KeyObject | string };
    this.privateKey = createPrivateKey(this.config.appPrivateKeyPem);
    keys.privateKey = this.privateKey;
    if (this.config.alipayPublicKeyPem !== '') keys.alipayPublicKey = createPublicKey(this.config.alipayPublicKeyPem);
    this.agent = keepAliveAgent(this.config.gatewayUrl);
    const gateway = new URL(this.config.gatewayUrl);
    gateway.hash = '';
    const base = gateway.toString();
    this.gatewayBase = /[?&]$/.test(base) ? base : base + (gateway.search === '' ? '?' : '&');
  }

  /** Closes the kept-alive connections to the gateway (at shutdown). */
  close(): void {
    this.agent.destroy();
  }

  recognises(code: string): boolean {
    return ALIPAY_CODE_PATTERN.test(code);
  }

  /**
   * The page the holder opens in Alipay to authorise the school's app (scope auth_base: the user id
   * only, no consent screen beyond the confirmation). Alipay redirects to the callback on
   * ALIPAY_NOTIFY_URL's origin with auth_code and `state` unchanged.
   */
  authorizationUrl(state: string): string {
    if (!OAUTH_STATE_PATTERN.test(state)) throw new InvalidArgumentError('state must be 16-400 URL-safe characters');
    if (this.config.notifyUrl === '') {
      throw new FailedPreconditionError(
        'ALIPAY_NOTIFY_URL is not set: the authorisation callback is the gateway route on its origin (' + ALIPAY_OAUTH_CALLBACK_PATH + ')',
      );
    }
    const gateway = new URL(this.config.gatewayUrl);
    const page = new URL(OAUTH_PAGE_PATH, OAUTH_HOSTS[gateway.hostname] ?? gateway.origin);
    page.search = new URLSearchParams({
      app_id: this.config.appId,
      scope: 'auth_base',
      redirect_uri: new URL(ALIPAY_OAUTH_CALLBACK_PATH, this.config.notifyUrl).toString(),
      state,
    }).toString();
    return page.toString();
  }

  /** The holder's Alipay user id for the auth_code of the authorisation redirect (alipay.system.oauth.token). */
  async userIdOfAuthCode(authCode: string, signal: AbortSignal): Promise<AuthCodeResult> {
    if (!AUTH_CODE_PATTERN.test(authCode)) return { status: 'invalid', message: 'auth_code is not an Alipay authorisation code' };
    // grant_type and code are common parameters of this method (no biz_content); the code is a credential: never logged.
    const answer = await this.call('alipay.system.oauth.token', undefined, signal, {}, false, {
      grant_type: 'authorization_code',
      code: authCode,
    });
    if (!answer.ok) return { status: 'unknown', message: answer.message };
    const body = answer.body;
    const userId = text(body.user_id);
    if (ALIPAY_USER_ID_PATTERN.test(userId)) return { status: 'ok', payer: { channel: 'alipay', payerId: userId } };
    const subCode = text(body.sub_code);
    if (subCode === 'isv.code-invalid' || subCode === 'isv.code-expired' || (text(body.code) === '40002' && subCode.startsWith('isv.')))
      return { status: 'invalid', message: channelText(body) };
    if (text(body.code) === '' && userId !== '')
      return { status: 'unknown', message: 'Alipay answered a user_id that is not 2088 + 12 digits' };
    return { status: 'unknown', message: channelText(body) };
  }

  async payWithCode(request: CodePaymentRequest, signal: AbortSignal): Promise<PaymentResult> {
    checkId('outTradeNo', request.outTradeNo);
    if (!this.recognises(request.authCode))
      throw new InvalidArgumentError('authCode is not an Alipay payment code (16-24 digits, 25-30 first)');
    checkAmount('amountFen', request.amountFen);
    checkText('subject', request.subject, MAX_SUBJECT_LENGTH);
    checkText('terminalId', request.terminalId, 32);
    const answer = await this.call(
      'alipay.trade.pay',
      {
        out_trade_no: request.outTradeNo,
        scene: 'bar_code',
        auth_code: request.authCode,
        subject: request.subject,
        total_amount: fenToYuan(request.amountFen),
        terminal_id: request.terminalId,
      },
      signal,
      { outTradeNo: request.outTradeNo, code: maskCode(request.authCode) },
    );
    if (!answer.ok) return { status: 'unknown', message: answer.message };
    const body = answer.body;
    const code = text(body.code);
    if (code === '10000') return this.paid(body, request.outTradeNo, 'gmt_payment');
    if (code === '10003') return { status: 'paying' };
    if (code === '40004') {
      const subCode = text(body.sub_code);
      // The same out_trade_no was paid before (by this code or another): only a query says by whom.
      if (subCode === 'ACQ.TRADE_HAS_SUCCESS') return { status: 'unknown', message: `${channelText(body)}: already paid, query it` };
      if (subCode === 'ACQ.SYSTEM_ERROR') return { status: 'unknown', message: channelText(body) };
      return { status: 'failed', reason: PAY_FAILURES[subCode] ?? 'declined', message: channelText(body) };
    }
    // 40001 / 40002 / 40006: the request was refused before any trade was created (nothing taken).
    if (code === '40001' || code === '40002' || code === '40006')
      return { status: 'failed', reason: 'declined', message: channelText(body) };
    return { status: 'unknown', message: channelText(body) }; // 20000 and anything new
  }

  async queryPayment(outTradeNo: string, signal: AbortSignal): Promise<QueryResult> {
    checkId('outTradeNo', outTradeNo);
    const answer = await this.call('alipay.trade.query', { out_trade_no: outTradeNo }, signal, { outTradeNo });
    if (!answer.ok) return { status: 'unknown', message: answer.message };
    const body = answer.body;
    const code = text(body.code);
    if (code === '40004' && text(body.sub_code) === 'ACQ.TRADE_NOT_EXIST') return { status: 'not_found' };
    if (code !== '10000') return { status: 'unknown', message: channelText(body) };
    switch (text(body.trade_status)) {
      case 'WAIT_BUYER_PAY':
        return { status: 'paying' };
      case 'TRADE_SUCCESS':
      case 'TRADE_FINISHED':
        return this.paid(body, outTradeNo, 'send_pay_date');
      case 'TRADE_CLOSED':
        return { status: 'closed' };
      default:
        return { status: 'unknown', message: `unknown trade_status ${JSON.stringify(text(body.trade_status))}` };
    }
  }

  async cancelPayment(outTradeNo: string, signal: AbortSignal): Promise<CancelResult> {
    checkId('outTradeNo', outTradeNo);
    const answer = await this.call('alipay.trade.cancel', { out_trade_no: outTradeNo }, signal, { outTradeNo });
    if (!answer.ok) return { status: 'retry', message: answer.message };
    const body = answer.body;
    const code = text(body.code);
    // retry_flag Y: Alipay could not finish the cancel this time and asks for the same call again.
    if (text(body.retry_flag) === 'Y' || code === '20000') return { status: 'retry', message: channelText(body) };
    if (code === '10000') return { status: 'cancelled' };
    return { status: 'refused', message: channelText(body) };
  }

  async refund(request: RefundRequest, signal: AbortSignal): Promise<RefundResult> {
    checkId('outTradeNo', request.outTradeNo);
    checkId('outRefundNo', request.outRefundNo);
    checkAmount('totalFen', request.totalFen);
    checkAmount('refundFen', request.refundFen);
    if (request.refundFen > request.totalFen) throw new InvalidArgumentError('refundFen is more than the payment (totalFen)');
    checkText('reason', request.reason, MAX_REASON_LENGTH, true);
    const context = { outTradeNo: request.outTradeNo, outRefundNo: request.outRefundNo };
    const answer = await this.call(
      'alipay.trade.refund',
      {
        out_trade_no: request.outTradeNo,
        out_request_no: request.outRefundNo,
        refund_amount: fenToYuan(request.refundFen),
        refund_reason: request.reason,
      },
      signal,
      context,
    );
    if (!answer.ok) return { status: 'unknown', message: answer.message };
    const body = answer.body;
    const code = text(body.code);
    if (code === '10000') {
      const tradeNo = text(body.trade_no);
      // fund_change N: no money moved by THIS call (a repeat of an earlier refund, or still under way):
      // Alipay says to confirm with the refund query.
      if (text(body.fund_change) === 'Y' && tradeNo !== '') {
        return { status: 'refunded', channelRefundId: refundId(tradeNo, request.outRefundNo), refundFen: request.refundFen };
      }
      return this.confirmRefund(request, signal);
    }
    if (code === '40004' && text(body.sub_code) !== 'ACQ.SYSTEM_ERROR') return { status: 'failed', message: channelText(body) };
    if (code === '40001' || code === '40002' || code === '40006') return { status: 'failed', message: channelText(body) };
    return { status: 'unknown', message: channelText(body) };
  }

  async createRechargeOrder(request: RechargeOrderRequest, signal: AbortSignal): Promise<RechargeOrder> {
    checkId('outTradeNo', request.outTradeNo);
    checkAmount('amountFen', request.amountFen);
    checkText('subject', request.subject, MAX_SUBJECT_LENGTH);
    if (!Number.isSafeInteger(request.expiresInSec) || request.expiresInSec < 60 || request.expiresInSec > MAX_ORDER_EXPIRY_SEC) {
      throw new InvalidArgumentError(`expiresInSec must be a whole number of seconds from 60 to ${MAX_ORDER_EXPIRY_SEC}`);
    }
    const answer = await this.call(
      'alipay.trade.precreate',
      {
        out_trade_no: request.outTradeNo,
        total_amount: fenToYuan(request.amountFen),
        subject: request.subject,
        time_expire: beijingTime(this.now() + request.expiresInSec * 1000),
        // The QR's own expiry, counted from when Alipay makes it: a precreated order has no trade until its
        // QR is scanned (timeout_express would count from that scan), so this is what stops a code nobody
        // scanned from being paid later. Whole minutes, rounded down: never past time_expire's minute.
        qr_code_timeout_express: `${Math.floor(request.expiresInSec / 60)}m`,
      },
      signal,
      { outTradeNo: request.outTradeNo },
      true,
    );
    if (!answer.ok) throw unavailable('the recharge order', answer.message, signal);
    const body = answer.body;
    const qrCode = text(body.qr_code);
    if (text(body.code) === '10000' && qrCode !== '') return { kind: 'qr', qrContent: qrCode };
    if (text(body.code) === '40004' && text(body.sub_code) !== 'ACQ.SYSTEM_ERROR') {
      throw new FailedPreconditionError(`Alipay refused the recharge order: ${channelText(body)}`);
    }
    throw new UnavailableError(`Alipay did not create the recharge order: ${channelText(body)}`);
  }

  /**
   * alipay.trade.close: a waiting trade is closed (10000). Refused because the trade is no longer waiting
   * (ACQ.TRADE_STATUS_ERROR and its newer names): alipay.trade.query says whether it was paid or closed.
   * ACQ.TRADE_NOT_EXIST: Alipay makes a precreated order's trade only when its QR is scanned, so nothing
   * was closed and the QR may still be paid until its time_expire ('not_found': the order is left open).
   * Never alipay.trade.cancel here: on a trade paid meanwhile it would refund a payment that the
   * notification may already have credited.
   */
  async closeRechargeOrder(outTradeNo: string, signal: AbortSignal): Promise<CloseResult> {
    checkId('outTradeNo', outTradeNo);
    const answer = await this.call('alipay.trade.close', { out_trade_no: outTradeNo }, signal, { outTradeNo });
    if (!answer.ok) return { status: 'unknown', message: answer.message };
    const body = answer.body;
    const code = text(body.code);
    if (code === '10000') {
      const answeredNo = text(body.out_trade_no);
      if (answeredNo !== '' && answeredNo !== outTradeNo) return { status: 'unknown', message: 'Alipay closed another out_trade_no' };
      return { status: 'closed' };
    }
    const subCode = text(body.sub_code);
    if (code === '40004' && subCode === 'ACQ.TRADE_NOT_EXIST') return { status: 'not_found' };
    if (code === '40004' && CLOSE_REFUSED_NOT_WAITING.has(subCode)) {
      const now = await this.queryPayment(outTradeNo, signal);
      if (now.status === 'paid' || now.status === 'closed') return now;
      const what = now.status === 'unknown' ? now.message : `trade ${now.status}`;
      return { status: 'unknown', message: `${channelText(body)}; the query after it: ${what}` };
    }
    return { status: 'unknown', message: channelText(body) };
  }

  verifyNotification(notification: IncomingNotification): VerifiedNotification {
    if (Buffer.byteLength(notification.body) > MAX_NOTIFICATION_BYTES)
      throw new ChannelForgedError('Alipay notification larger than 64 KiB');
    const fields: Record<string, string> = {};
    for (const [key, value] of new URLSearchParams(notification.body)) {
      if (key in fields) throw new ChannelForgedError(`Alipay notification repeats the field ${key}`);
      // Alipay signs the non-empty parameters only (its reference SDKs skip empty ones).
      if (value !== '') fields[key] = value;
    }
    if (fields.sign === undefined) throw new ChannelForgedError('Alipay notification without a signature');
    if (fields.sign_type !== undefined && fields.sign_type !== 'RSA2')
      throw new ChannelForgedError('Alipay notification not signed with RSA2');
    let verified = false;
    try {
      verified = this.sdk.checkNotifySignV2(fields);
    } catch {
      verified = false;
    }
    if (!verified) throw new ChannelForgedError('Alipay notification signature does not verify with the configured Alipay public key');
    if (fields.app_id !== this.config.appId) throw new ChannelForgedError('Alipay notification for another app_id');
    if (this.config.sellerId !== '' && fields.seller_id !== this.config.sellerId) {
      throw new ChannelForgedError('Alipay notification for another seller_id');
    }
    const outTradeNo = fields.out_trade_no ?? '';
    const channelTxnId = fields.trade_no ?? '';
    const amountFen = yuanToFen(fields.total_amount ?? '');
    const status = fields.trade_status ?? '';
    if (!CHANNEL_ID_PATTERN.test(outTradeNo) || channelTxnId === '' || amountFen === undefined || status === '') {
      throw new ChannelForgedError('Alipay notification without out_trade_no, trade_no, total_amount or trade_status');
    }
    const payerId = fields.buyer_id ?? fields.buyer_open_id;
    const payer: ChannelPayer | undefined = payerId === undefined ? undefined : { channel: 'alipay', payerId };
    this.log.info({ outTradeNo, tradeStatus: status, notifyId: fields.notify_id }, 'alipay notification verified');
    return {
      outTradeNo,
      channelTxnId,
      amountFen,
      paid: status === 'TRADE_SUCCESS' || status === 'TRADE_FINISHED',
      payer,
      paidAtMs: parseBeijingTime(fields.gmt_payment ?? ''),
      notificationId: fields.notify_id,
    };
  }

  notificationReply(ok: boolean): NotificationReply {
    // Alipay resends (up to 8 times over 25 hours) until the body is exactly "success".
    return { httpStatus: 200, contentType: 'text/plain; charset=utf-8', body: ok ? 'success' : 'fail' };
  }

  async dailyStatement(date: string, signal: AbortSignal): Promise<readonly StatementRow[]> {
    if (!isDate(date)) throw new InvalidArgumentError(`date must be YYYY-MM-DD, got ${JSON.stringify(date)}`);
    const answer = await this.call('alipay.data.dataservice.bill.downloadurl.query', { bill_type: 'trade', bill_date: date }, signal, {
      billDate: date,
    });
    if (!answer.ok) throw unavailable(`the statement of ${date}`, answer.message, signal);
    const body = answer.body;
    const url = text(body.bill_download_url);
    if (text(body.code) !== '10000' || url === '') {
      if (text(body.code) === '40004') throw new FailedPreconditionError(`Alipay has no statement of ${date}: ${channelText(body)}`);
      throw new UnavailableError(`Alipay did not give the statement of ${date}: ${channelText(body)}`);
    }
    // The URL carries a one-time token and is valid for 30 s: fetched at once, never logged.
    const zip = await this.download(url, signal, date);
    try {
      return parseBillDetail(billDetailFromZip(zip));
    } catch (error) {
      if (error instanceof BillFormatError) throw new UnavailableError(`Alipay statement of ${date} unreadable: ${error.message}`);
      throw error;
    }
  }

  /** What Alipay has under this out_request_no (alipay.trade.fastpay.refund.query); 'not_found' when none. */
  async queryRefund(request: RefundRequest, signal: AbortSignal): Promise<RefundQueryResult> {
    checkId('outTradeNo', request.outTradeNo);
    checkId('outRefundNo', request.outRefundNo);
    const result = await this.confirmRefund(request, signal);
    return result.status === 'unknown' && result.message.startsWith(NO_REFUND_YET) ? { status: 'not_found' } : result;
  }

  /** The refund query after a refund answered without fund_change Y. */
  private async confirmRefund(request: RefundRequest, signal: AbortSignal): Promise<RefundResult> {
    const answer = await this.call(
      'alipay.trade.fastpay.refund.query',
      { out_trade_no: request.outTradeNo, out_request_no: request.outRefundNo },
      signal,
      { outTradeNo: request.outTradeNo, outRefundNo: request.outRefundNo },
    );
    if (!answer.ok) return { status: 'unknown', message: answer.message };
    const body = answer.body;
    if (text(body.code) !== '10000') return { status: 'unknown', message: channelText(body) };
    const refundedFen = yuanToFen(text(body.refund_amount));
    const refundStatus = text(body.refund_status);
    // Alipay: an answer with the refund's data and refund_status empty or REFUND_SUCCESS is a refund made;
    // no data means none was made (send the refund again with the same out_request_no).
    if (refundedFen === undefined || (refundStatus !== '' && refundStatus !== 'REFUND_SUCCESS')) {
      return { status: 'unknown', message: `${NO_REFUND_YET}: send it again with the same outRefundNo` };
    }
    if (refundedFen !== request.refundFen) {
      return { status: 'failed', message: `outRefundNo was already used for a refund of ${fenToYuan(refundedFen)} yuan` };
    }
    return { status: 'refunded', channelRefundId: refundId(text(body.trade_no), request.outRefundNo), refundFen: refundedFen };
  }

  private paid(body: Readonly<Record<string, unknown>>, outTradeNo: string, timeField: string): PaymentResult {
    const tradeNo = text(body.trade_no);
    const payerId = text(body.buyer_user_id) || text(body.buyer_open_id);
    const amountFen = yuanToFen(text(body.total_amount));
    const answeredNo = text(body.out_trade_no);
    if (tradeNo === '' || payerId === '' || amountFen === undefined || (answeredNo !== '' && answeredNo !== outTradeNo)) {
      return { status: 'unknown', message: 'Alipay answered paid without trade_no, buyer, total_amount or with another out_trade_no' };
    }
    return {
      status: 'paid',
      channelTxnId: tradeNo,
      payer: { channel: 'alipay', payerId },
      amountFen,
      paidAtMs: parseBeijingTime(text(body[timeField])) ?? this.now(),
    };
  }

  /**
   * Signs and sends one OpenAPI call; answers the verified `<method>_response` object. Transport trouble,
   * an answer that is not JSON, unsigned or not verifying: not ok (nobody knows what happened).
   */
  private async call(
    method: string,
    bizContent: Record<string, string> | undefined,
    signal: AbortSignal,
    context: Record<string, string>,
    withNotifyUrl = false,
    commonParams: Record<string, string> = {},
  ): Promise<Answer> {
    const startedMs = this.now();
    const answer = await this.send(method, bizContent, signal, withNotifyUrl, commonParams);
    const elapsedMs = this.now() - startedMs;
    if (answer.ok) {
      const fields = { method, ...context, code: text(answer.body.code), subCode: text(answer.body.sub_code) || undefined, elapsedMs };
      this.log.debug(fields, 'alipay answered');
    } else {
      this.log.warn({ method, ...context, elapsedMs, problem: answer.message }, 'alipay call without a believable answer');
    }
    return answer;
  }

  private async send(
    method: string,
    bizContent: Record<string, string> | undefined,
    signal: AbortSignal,
    withNotifyUrl: boolean,
    commonParams: Record<string, string>,
  ): Promise<Answer> {
    if (signal.aborted) return { ok: false, message: 'cancelled before the call was sent' };
    const common: Record<string, string> = { ...commonParams, timestamp: beijingTime(this.now()) };
    if (withNotifyUrl && this.config.notifyUrl !== '') common['notify_url'] = this.config.notifyUrl;
    // As the SDKs do: the common parameters in the URL, biz_content in the form body.
    const { query, body } = await signOpenApiCall(this.config.appId, this.privateKey, method, common, bizContent);
    let answer: HttpAnswer;
    try {
      answer = await exchange({
        method: 'POST',
        url: new URL(`${this.gatewayBase}${query}`),
        headers: { 'content-type': 'application/x-www-form-urlencoded;charset=utf-8', accept: 'application/json' },
        body,
        timeoutMs: this.config.timeoutMs,
        maxBodyBytes: MAX_ANSWER_BYTES,
        signal,
        agent: this.agent,
      });
    } catch (error) {
      if (!(error instanceof TransportError)) throw error;
      return { ok: false, message: transportProblem(error, this.config.timeoutMs) };
    }
    // node:http follows no redirect: a 3xx is not an answer, as any status but 200.
    if (answer.status !== 200) return { ok: false, message: `Alipay answered HTTP ${answer.status}` };
    return this.verifiedAnswer(method, answer.body);
  }

  private verifiedAnswer(method: string, raw: string): Answer {
    let document: unknown;
    try {
      document = JSON.parse(raw);
    } catch {
      return { ok: false, message: 'Alipay answer is not JSON' };
    }
    if (!isRecord(document)) return { ok: false, message: 'Alipay answer is not a JSON object' };
    const expected = `${method.replaceAll('.', '_')}_response`;
    const key = expected in document ? expected : 'error_response' in document ? 'error_response' : undefined;
    const inner = key === undefined ? undefined : document[key];
    if (key === undefined || !isRecord(inner)) return { ok: false, message: `Alipay answer without ${expected}` };
    const sign = document.sign;
    if (typeof sign !== 'string' || sign === '') {
      return { ok: false, message: `Alipay answer not signed (${channelText(inner)}): not believed` };
    }
    try {
      this.sdk.checkResponseSign(raw, key, sign, '');
    } catch {
      return { ok: false, message: 'Alipay answer signature does not verify with the configured Alipay public key: not believed' };
    }
    return { ok: true, body: inner };
  }

  private async download(url: string, signal: AbortSignal, date: string): Promise<Uint8Array> {
    const timeout = AbortSignal.timeout(this.config.timeoutMs);
    try {
      const response = await fetch(url, { signal: AbortSignal.any([signal, timeout]), redirect: 'follow' });
      if (response.status !== 200) throw new UnavailableError(`Alipay statement of ${date}: the download answered HTTP ${response.status}`);
      return await readLimited(response, MAX_BILL_ZIP_BYTES);
    } catch (error) {
      if (error instanceof UnavailableError) throw error;
      throw unavailable(`the statement of ${date}`, fetchProblem(error, signal, timeout, this.config.timeoutMs), signal);
    }
  }
}

/** The refund query found no refund under the out_request_no (Alipay answers no refund data). */
const NO_REFUND_YET = 'Alipay has no refund under this outRefundNo yet';

function refundId(tradeNo: string, outRefundNo: string): string {
  // Alipay gives a refund no id of its own: it is named by the trade and our out_request_no.
  return `${tradeNo}/${outRefundNo}`;
}

function unavailable(what: string, message: string, signal: AbortSignal): Error {
  return signal.aborted
    ? new CancelledError(`cancelled while asking Alipay for ${what}`)
    : new UnavailableError(`Alipay: ${what}: ${message}`);
}

/** Why a call got no answer, in words that carry no URL (the URL holds the request's signature). */
function transportProblem(error: TransportError, timeoutMs: number): string {
  if (error.reason === 'aborted') return 'cancelled by the caller before Alipay answered';
  if (error.reason === 'timeout') return `no answer from Alipay within ${timeoutMs} ms`;
  return `transport error talking to Alipay (${error.code || 'error'})`;
}

/** The same for the statement's download (fetch: it follows the download URL's redirects). */
function fetchProblem(error: unknown, signal: AbortSignal, timeout: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) return 'cancelled by the caller before Alipay answered';
  if (timeout.aborted) return `no answer from Alipay within ${timeoutMs} ms`;
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : error instanceof Error ? error.name : 'error';
  return `transport error talking to Alipay (${code})`;
}

async function readLimited(response: Response, maxBytes: number): Promise<Uint8Array> {
  if (response.body === null) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  // Leaving the loop early cancels the stream (the rest of an oversized answer is not read).
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > maxBytes) throw new Error(`answer larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The channel's own words for an answer: code, sub_code and sub_msg (safe to show: no secrets). */
function channelText(body: Readonly<Record<string, unknown>>): string {
  const parts = [text(body.code), text(body.sub_code), text(body.sub_msg) || text(body.msg)].filter((part) => part !== '');
  return parts.length > 0 ? `Alipay ${parts.join(' ')}` : 'Alipay answer without a code';
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkId(field: string, value: string): void {
  if (!CHANNEL_ID_PATTERN.test(value)) throw new InvalidArgumentError(`${field} must be 6-32 of A-Z a-z 0-9 _ -`);
}

function checkAmount(field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0 || value > ALIPAY_MAX_AMOUNT_FEN) {
    throw new InvalidArgumentError(`${field} must be a whole number of fen from 1 to ${ALIPAY_MAX_AMOUNT_FEN}`);
  }
}

function checkText(field: string, value: string, maxLength: number, emptyAllowed = false): void {
  if ((!emptyAllowed && value.trim() === '') || [...value].length > maxLength) {
    throw new InvalidArgumentError(`${field} must be ${emptyAllowed ? 'at most' : '1 to'} ${maxLength} characters`);
  }
}
