// WeChat Pay behind PaymentChannel (channel.ts), speaking its real APIs (wire.ts says how each is signed):
//
//   v2 XML   POST /pay/micropay            code payment            -> paid / paying (USERPAYING) / failed / unknown
//            POST /pay/orderquery          query by out_trade_no   -> trade_state
//            POST /secapi/pay/reverse      undo a code payment     (client certificate) recall=Y: call again
//            POST /secapi/pay/refund       refund, partial allowed (client certificate)
//            POST /pay/refundquery         a refund's state by out_refund_no (REFUNDNOTEXIST: none made)
//            POST /tools/authcodetoopenid  the payer's openid from the code, before charging
//            POST /pay/downloadbill        the day's trade bill (bill.ts), bill_type=ALL
//   v3 JSON  POST /v3/pay/transactions/native | jsapi              recharge orders (code_url | prepay_id)
//            GET  /v3/pay/transactions/out-trade-no/{no}?mchid=    query
//            POST /v3/pay/transactions/out-trade-no/{no}/close     close
//            notifications: signed headers, resource AES-256-GCM encrypted with the APIv3 key
//
// No SDK: wechatpay-node-v3 speaks only v3 (and its base URL is fixed); tenpay is v2 only and unmaintained
// (urllib 2, xml2js 0.4); wechatpay-axios-plugin covers v2 and v3 with a configurable base URL, but brings
// axios beside the node:http the rest of the switch uses, and reports an answer that does not verify as a
// thrown error we would have to tell apart from transport errors by its text. The signing is ~100 lines of
// node:crypto (wire.ts), shared with the simulator, and fast-xml-parser reads the XML.
//
// v2 requests are signed HMAC-SHA256 (sign_type=HMAC-SHA256) unless WECHATPAY_SIGN_TYPE=MD5; answers are
// checked with the same type. An answer that is not signed (return_code=FAIL) or does not verify is never
// believed: `unknown` for a payment, `retry` for a reverse. The bill is not signed by WeChat Pay (v2
// downloadbill returns plain text): it is read as it comes, over TLS.
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { InvalidArgumentError } from '../../errors.js';
import type { Logger } from '../../log.js';
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
import { parseBill } from './bill.js';
import type { WechatPayConfig } from './config.js';
import { clientCertAgent, exchange, header, keepAliveAgent, TransportError, type HttpAnswer } from '../http.js';
import {
  decryptResource,
  formatRfc3339,
  fromXml,
  MAX_BILL_BYTES,
  MAX_BODY_BYTES,
  nonceStr,
  parseFen,
  parseTimeEnd,
  rsaSign,
  rsaVerify,
  signV2,
  toXml,
  v3AnswerMessage,
  v3AuthorizationHeader,
  v3RequestMessage,
  verifyV2,
} from './wire.js';

export interface WechatPayChannelOptions extends WechatPayConfig {
  readonly log: Logger;
  /** Milliseconds since the epoch (notification timestamps); tests may pass their own clock. */
  readonly now?: () => number;
}

/** A recharge-order call (v3) that did not give an order: `unknown` (query before retrying) or `refused`. */
export class WechatPayCallError extends Error {
  override readonly name = 'WechatPayCallError';
  constructor(
    message: string,
    readonly outcome: 'unknown' | 'refused',
  ) {
    super(message);
  }
}

/** WeChat payment codes: 18 digits starting 10-15. */
export const WECHAT_CODE_PATTERN = /^1[0-5]\d{16}$/;
/** A notification whose timestamp is further than this from our clock is refused (replays). */
export const NOTIFICATION_MAX_AGE_MS = 5 * 60_000;
const MAX_SUBJECT_CHARS = 64;
const MAX_REFUND_REASON_CHARS = 80;
const MAX_EXPIRES_IN_SEC = 7 * 86_400;

/** "134567********89": what may be logged of a payment code. */
export function maskCode(code: string): string {
  return code.length <= 6 ? '*'.repeat(code.length) : `${code.slice(0, 4)}${'*'.repeat(code.length - 6)}${code.slice(-2)}`;
}

type V2Outcome =
  /** Verified, return_code=SUCCESS: read result_code / err_code. */
  | { readonly kind: 'ok'; readonly fields: Readonly<Record<string, string>> }
  /** Transport trouble, an unsigned refusal (return_code=FAIL) or an answer that does not verify. */
  | { readonly kind: 'unknown'; readonly message: string };

/** micropay err_code -> final failure; anything not listed (SYSTEMERROR, BANKERROR, new codes) is `unknown`. */
const MICROPAY_FAILURES: Readonly<Record<string, PaymentFailure>> = {
  NOTENOUGH: 'insufficient_funds',
  AUTHCODEEXPIRE: 'code_invalid',
  AUTH_CODE_ERROR: 'code_invalid',
  AUTH_CODE_INVALID: 'code_invalid',
  NOTSUPORTCARD: 'payer_refused',
  TRADE_ERROR: 'payer_refused',
  BUYER_MISMATCH: 'payer_refused',
  NOAUTH: 'declined',
  PARAM_ERROR: 'declined',
  ORDERCLOSED: 'declined',
  ORDERREVERSED: 'declined',
  OUT_TRADE_NO_USED: 'declined',
  INVALID_REQUEST: 'declined',
};

export class WechatPayChannel implements PaymentChannel {
  readonly name = 'wechat' as const;
  /** The merchant certificate's TLS agent (/secapi/ over https); undefined when none is configured. */
  private readonly agent: HttpsAgent | undefined;
  /** Kept-alive connections for every other call (a new connection per call costs more than the call). */
  private readonly plainAgent: HttpAgent | HttpsAgent;
  private readonly secure: boolean;
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly options: WechatPayChannelOptions) {
    this.now = options.now ?? Date.now;
    this.log = options.log.child({ channel: 'wechat' });
    this.agent =
      options.merchantCertPem !== undefined && options.merchantKeyPem !== undefined
        ? clientCertAgent(options.merchantCertPem, options.merchantKeyPem)
        : undefined;
    this.plainAgent = keepAliveAgent(options.apiBase);
    this.secure = new URL(options.apiBase).protocol === 'https:';
  }

  /** Closes the kept-alive connections (at shutdown). */
  close(): void {
    this.agent?.destroy();
    this.plainAgent.destroy();
  }

  recognises(code: string): boolean {
    return WECHAT_CODE_PATTERN.test(code);
  }

  async payerOfCode(authCode: string, signal: AbortSignal): Promise<ChannelPayer | 'code_invalid' | 'unknown'> {
    if (!this.recognises(authCode)) return 'code_invalid';
    const answer = await this.v2('/tools/authcodetoopenid', { auth_code: authCode }, signal, { code: authCode });
    if (answer.kind === 'unknown') return 'unknown';
    const f = answer.fields;
    if (f['result_code'] === 'SUCCESS' && (f['openid'] ?? '') !== '') return { channel: 'wechat', payerId: f['openid']! };
    if (MICROPAY_FAILURES[f['err_code'] ?? ''] === 'code_invalid') return 'code_invalid';
    return 'unknown';
  }

  async payWithCode(request: CodePaymentRequest, signal: AbortSignal): Promise<PaymentResult> {
    checkId('outTradeNo', request.outTradeNo);
    checkFen('amountFen', request.amountFen);
    if (!this.recognises(request.authCode)) return { status: 'failed', reason: 'code_invalid', message: '不是微信付款码' };
    const fields = {
      body: request.subject.slice(0, MAX_SUBJECT_CHARS),
      out_trade_no: request.outTradeNo,
      total_fee: String(request.amountFen),
      fee_type: 'CNY',
      spbill_create_ip: this.options.clientIp,
      auth_code: request.authCode,
      device_info: request.terminalId.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 32),
    };
    const answer = await this.v2('/pay/micropay', fields, signal, { code: request.authCode, outTradeNo: request.outTradeNo });
    if (answer.kind === 'unknown') return { status: 'unknown', message: answer.message };
    const f = answer.fields;
    if (f['result_code'] === 'SUCCESS') return this.paidFrom(f, 'micropay');
    const errCode = f['err_code'] ?? '';
    const message = f['err_code_des'] ?? errCode;
    if (errCode === 'USERPAYING') return { status: 'paying' };
    // The same out_trade_no was already paid (a retry of ours): the order's own answer says by whom and when.
    if (errCode === 'ORDERPAID') {
      const query = await this.queryPayment(request.outTradeNo, signal);
      return query.status === 'paid' ? query : { status: 'unknown', message };
    }
    const reason = MICROPAY_FAILURES[errCode];
    if (reason === undefined) return { status: 'unknown', message: `${errCode} ${message}`.trim() };
    // A code can be refused as invalid because it was already used: the channel says so only in its text.
    // Likewise a payer who gave up is a TRADE_ERROR whose text says 取消.
    const used = errCode === 'AUTH_CODE_INVALID' && /仅限使用一次|已使用/.test(message);
    const cancelled = errCode === 'TRADE_ERROR' && /取消/.test(message);
    return { status: 'failed', reason: used ? 'code_used' : cancelled ? 'payer_cancelled' : reason, message };
  }

  async queryPayment(outTradeNo: string, signal: AbortSignal): Promise<QueryResult> {
    checkId('outTradeNo', outTradeNo);
    const answer = await this.v2('/pay/orderquery', { out_trade_no: outTradeNo }, signal, { outTradeNo });
    if (answer.kind === 'unknown') return { status: 'unknown', message: answer.message };
    const f = answer.fields;
    if (f['result_code'] !== 'SUCCESS') {
      if (f['err_code'] === 'ORDERNOTEXIST') return { status: 'not_found' };
      return { status: 'unknown', message: `${f['err_code'] ?? ''} ${f['err_code_des'] ?? ''}`.trim() };
    }
    const desc = f['trade_state_desc'] ?? '';
    switch (f['trade_state']) {
      // REFUND: it was paid; refunds are the switch's own records, not a change of the payment.
      case 'SUCCESS':
      case 'REFUND':
        return this.paidFrom(f, 'orderquery');
      case 'USERPAYING':
      case 'NOTPAY':
        return { status: 'paying' };
      case 'CLOSED':
      case 'REVOKED':
        return { status: 'closed' };
      case 'PAYERROR':
        return { status: 'failed', reason: /取消/.test(desc) ? 'payer_cancelled' : 'declined', message: desc };
      default:
        return { status: 'unknown', message: `trade_state ${JSON.stringify(f['trade_state'] ?? '')}` };
    }
  }

  async cancelPayment(outTradeNo: string, signal: AbortSignal): Promise<CancelResult> {
    checkId('outTradeNo', outTradeNo);
    const answer = await this.v2('/secapi/pay/reverse', { out_trade_no: outTradeNo }, signal, { outTradeNo, secure: true });
    if (answer.kind === 'unknown') return { status: 'retry', message: answer.message };
    const f = answer.fields;
    const message = `${f['err_code'] ?? ''} ${f['err_code_des'] ?? ''}`.trim();
    if (f['recall'] === 'Y') return { status: 'retry', message: message || 'recall=Y' };
    if (f['result_code'] === 'SUCCESS') return { status: 'cancelled' };
    switch (f['err_code']) {
      case 'SYSTEMERROR':
      case 'USERPAYING':
        return { status: 'retry', message };
      // Nothing arrived under this number: nothing was taken.
      case 'ORDERNOTEXIST':
        return { status: 'cancelled' };
      default:
        return { status: 'refused', message };
    }
  }

  async refund(request: RefundRequest, signal: AbortSignal): Promise<RefundResult> {
    checkId('outTradeNo', request.outTradeNo);
    checkId('outRefundNo', request.outRefundNo);
    checkFen('refundFen', request.refundFen);
    checkFen('totalFen', request.totalFen);
    if (request.refundFen > request.totalFen)
      throw new InvalidArgumentError(`refundFen ${request.refundFen} exceeds totalFen ${request.totalFen}`);
    const fields = {
      out_trade_no: request.outTradeNo,
      out_refund_no: request.outRefundNo,
      total_fee: String(request.totalFen),
      refund_fee: String(request.refundFen),
      refund_fee_type: 'CNY',
      refund_desc: request.reason.slice(0, MAX_REFUND_REASON_CHARS),
    };
    const answer = await this.v2('/secapi/pay/refund', fields, signal, { outTradeNo: request.outTradeNo, secure: true });
    if (answer.kind === 'unknown') return { status: 'unknown', message: answer.message };
    const f = answer.fields;
    const message = `${f['err_code'] ?? ''} ${f['err_code_des'] ?? ''}`.trim();
    if (f['result_code'] === 'SUCCESS') {
      const refundFen = parseFen(f['refund_fee']);
      const refundId = f['refund_id'] ?? '';
      if (refundFen === undefined || refundId === '')
        return { status: 'unknown', message: 'refund answer without refund_id or refund_fee' };
      // The refund was accepted: WeChat Pay returns it to a balance at once, to a bank card within days.
      return { status: 'refunded', channelRefundId: refundId, refundFen };
    }
    if (['SYSTEMERROR', 'BIZERR_NEED_RETRY', 'FREQUENCY_LIMITED'].includes(f['err_code'] ?? '')) return { status: 'unknown', message };
    return { status: 'failed', message };
  }

  /** /pay/refundquery by out_refund_no: the refund's state at WeChat Pay; REFUNDNOTEXIST is 'not_found'. */
  async queryRefund(request: RefundRequest, signal: AbortSignal): Promise<RefundQueryResult> {
    checkId('outTradeNo', request.outTradeNo);
    checkId('outRefundNo', request.outRefundNo);
    const answer = await this.v2('/pay/refundquery', { out_refund_no: request.outRefundNo }, signal, { outTradeNo: request.outTradeNo });
    if (answer.kind === 'unknown') return { status: 'unknown', message: answer.message };
    const f = answer.fields;
    const message = `${f['err_code'] ?? ''} ${f['err_code_des'] ?? ''}`.trim();
    if (f['result_code'] !== 'SUCCESS')
      return f['err_code'] === 'REFUNDNOTEXIST' ? { status: 'not_found' } : { status: 'unknown', message };
    // One refund per out_refund_no: its fields carry the index _0.
    const refundFen = parseFen(f['refund_fee_0']);
    const refundId = f['refund_id_0'] ?? '';
    switch (f['refund_status_0']) {
      case 'SUCCESS':
        if (refundFen === undefined || refundId === '')
          return { status: 'unknown', message: 'refund query answer without refund_id_0 or refund_fee_0' };
        return { status: 'refunded', channelRefundId: refundId, refundFen };
      case 'PROCESSING':
        return { status: 'processing' };
      case 'REFUNDCLOSE':
      case 'CHANGE':
        return { status: 'failed', message: `refund ${f['refund_status_0']}` };
      default:
        return { status: 'unknown', message: `refund status ${f['refund_status_0'] ?? '(none)'}` };
    }
  }

  async createRechargeOrder(request: RechargeOrderRequest, signal: AbortSignal): Promise<RechargeOrder> {
    checkId('outTradeNo', request.outTradeNo);
    checkFen('amountFen', request.amountFen);
    if (!Number.isSafeInteger(request.expiresInSec) || request.expiresInSec < 60 || request.expiresInSec > MAX_EXPIRES_IN_SEC)
      throw new InvalidArgumentError(`expiresInSec must be between 60 and ${MAX_EXPIRES_IN_SEC}`);
    const jsapi = request.payerId !== undefined;
    const body = {
      appid: this.options.appId,
      mchid: this.options.mchId,
      description: request.subject.slice(0, MAX_SUBJECT_CHARS),
      out_trade_no: request.outTradeNo,
      time_expire: formatRfc3339(this.now() + request.expiresInSec * 1000),
      notify_url: this.options.notifyUrl,
      amount: { total: request.amountFen, currency: 'CNY' },
      ...(jsapi ? { payer: { openid: request.payerId } } : {}),
    };
    const answer = await this.v3('POST', `/v3/pay/transactions/${jsapi ? 'jsapi' : 'native'}`, body, signal, request.outTradeNo);
    if (!jsapi) {
      const codeUrl = (answer as { code_url?: unknown }).code_url;
      if (typeof codeUrl !== 'string' || codeUrl === '') throw new WechatPayCallError('native order answer without code_url', 'unknown');
      return { kind: 'qr', qrContent: codeUrl };
    }
    const prepayId = (answer as { prepay_id?: unknown }).prepay_id;
    if (typeof prepayId !== 'string' || prepayId === '') throw new WechatPayCallError('jsapi order answer without prepay_id', 'unknown');
    return this.jsapiParameters(prepayId);
  }

  /** What wx.requestPayment needs: paySign is RSA-SHA256 over "appId\ntimeStamp\nnonceStr\npackage\n". */
  private jsapiParameters(prepayId: string): RechargeOrder {
    const appId = this.options.appId;
    const timeStamp = String(Math.floor(this.now() / 1000));
    const nonce = nonceStr();
    const pkg = `prepay_id=${prepayId}`;
    const paySign = rsaSign(`${appId}\n${timeStamp}\n${nonce}\n${pkg}\n`, this.options.merchantPrivateKey);
    return { kind: 'jsapi', appId, timeStamp, nonceStr: nonce, package: pkg, signType: 'RSA', paySign };
  }

  /** A recharge order's state through API v3 (queryPayment's v2 orderquery reads the same orders). */
  async queryRechargeOrder(outTradeNo: string, signal: AbortSignal): Promise<QueryResult> {
    checkId('outTradeNo', outTradeNo);
    const path = `/v3/pay/transactions/out-trade-no/${outTradeNo}?mchid=${this.options.mchId}`;
    let answer: unknown;
    try {
      answer = await this.v3('GET', path, undefined, signal, outTradeNo);
    } catch (err) {
      if (err instanceof WechatPayCallError && err.outcome === 'refused' && /ORDER_NOT_EXIST|ORDERNOTEXIST/.test(err.message))
        return { status: 'not_found' };
      if (err instanceof WechatPayCallError) return { status: 'unknown', message: err.message };
      throw err;
    }
    return this.transactionResult(answer as V3Transaction);
  }

  /**
   * Closes an unpaid recharge order: 204, it can no longer be paid. A refusal (ORDERPAID, ORDER_CLOSED or
   * any other 4xx) is followed by the v3 query, which says whether it was paid or closed; ORDER_NOT_EXIST is
   * 'not_found'; a 5xx, SYSTEM_ERROR, transport trouble or an answer that does not verify is 'unknown'.
   */
  async closeRechargeOrder(outTradeNo: string, signal: AbortSignal): Promise<CloseResult> {
    checkId('outTradeNo', outTradeNo);
    try {
      await this.v3('POST', `/v3/pay/transactions/out-trade-no/${outTradeNo}/close`, { mchid: this.options.mchId }, signal, outTradeNo);
      return { status: 'closed' };
    } catch (err) {
      if (!(err instanceof WechatPayCallError)) throw err;
      if (err.outcome === 'unknown') return { status: 'unknown', message: err.message };
      if (/ORDER_NOT_EXIST|ORDERNOTEXIST/.test(err.message)) return { status: 'not_found' };
      const now = await this.queryRechargeOrder(outTradeNo, signal);
      if (now.status === 'paid' || now.status === 'closed') return now;
      const what = now.status === 'unknown' ? now.message : `trade_state ${now.status}`;
      return { status: 'unknown', message: `${err.message}; the query after it: ${what}` };
    }
  }

  private transactionResult(t: V3Transaction): QueryResult {
    switch (t.trade_state) {
      case 'SUCCESS':
      case 'REFUND': {
        const amountFen = t.amount?.total;
        const paidAtMs = Date.parse(t.success_time ?? '');
        const openid = t.payer?.openid;
        if (
          !Number.isSafeInteger(amountFen) ||
          Number.isNaN(paidAtMs) ||
          typeof openid !== 'string' ||
          typeof t.transaction_id !== 'string'
        )
          return { status: 'unknown', message: 'paid transaction without amount, time, payer or id' };
        return {
          status: 'paid',
          channelTxnId: t.transaction_id,
          payer: { channel: 'wechat', payerId: openid },
          amountFen: amountFen!,
          paidAtMs,
        };
      }
      case 'NOTPAY':
      case 'USERPAYING':
        return { status: 'paying' };
      case 'CLOSED':
      case 'REVOKED':
        return { status: 'closed' };
      case 'PAYERROR':
        return { status: 'failed', reason: 'declined', message: t.trade_state_desc ?? 'PAYERROR' };
      default:
        return { status: 'unknown', message: `trade_state ${JSON.stringify(t.trade_state ?? '')}` };
    }
  }

  verifyNotification(notification: IncomingNotification): VerifiedNotification {
    const reason = (text: string): ChannelForgedError => {
      this.log.warn({ reason: text }, 'wechat pay notification refused');
      return new ChannelForgedError(`WeChat Pay notification refused: ${text}`);
    };
    const h = notification.headers;
    const body = notification.body;
    if (body.length > MAX_BODY_BYTES) throw reason('body too large');
    const checked = this.checkV3Signature(
      h['wechatpay-timestamp'],
      h['wechatpay-nonce'],
      h['wechatpay-signature'],
      h['wechatpay-serial'],
      body,
    );
    if (checked !== undefined) throw reason(checked);
    const envelope = parseJson(body) as {
      id?: unknown;
      event_type?: unknown;
      resource?: { ciphertext?: unknown; nonce?: unknown; associated_data?: unknown };
    };
    const resource = envelope?.resource;
    if (typeof resource?.ciphertext !== 'string' || typeof resource.nonce !== 'string') throw reason('no encrypted resource');
    const plain = decryptResource(
      {
        ciphertext: resource.ciphertext,
        nonce: resource.nonce,
        associated_data: typeof resource.associated_data === 'string' ? resource.associated_data : '',
      },
      this.options.apiV3Key,
    );
    if (plain === undefined) throw reason('resource does not decrypt with the APIv3 key');
    const t = parseJson(plain) as (V3Transaction & { mchid?: unknown; appid?: unknown; out_trade_no?: unknown }) | undefined;
    if (t === undefined || t.mchid !== this.options.mchId || t.appid !== this.options.appId)
      throw reason('resource is not a transaction of this merchant');
    if (typeof t.out_trade_no !== 'string' || !CHANNEL_ID_PATTERN.test(t.out_trade_no)) throw reason('out_trade_no missing or malformed');
    const amountFen = t.amount?.total;
    if (!Number.isSafeInteger(amountFen) || amountFen! <= 0) throw reason('amount.total is not a whole positive number of fen');
    const paid = t.trade_state === 'SUCCESS';
    const paidAtMs = Date.parse(t.success_time ?? '');
    const openid = t.payer?.openid;
    return {
      outTradeNo: t.out_trade_no,
      channelTxnId: typeof t.transaction_id === 'string' ? t.transaction_id : '',
      amountFen: amountFen!,
      paid,
      payer: typeof openid === 'string' && openid !== '' ? { channel: 'wechat', payerId: openid } : undefined,
      paidAtMs: paid && !Number.isNaN(paidAtMs) ? paidAtMs : undefined,
      notificationId: typeof envelope.id === 'string' ? envelope.id : undefined,
    };
  }

  notificationReply(ok: boolean): NotificationReply {
    return ok
      ? { httpStatus: 200, contentType: 'application/json', body: '{"code":"SUCCESS"}' }
      : { httpStatus: 500, contentType: 'application/json', body: '{"code":"FAIL","message":"失败"}' };
  }

  async dailyStatement(date: string, signal: AbortSignal): Promise<readonly StatementRow[]> {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
    if (m === null) throw new InvalidArgumentError(`date must be YYYY-MM-DD, got ${JSON.stringify(date.slice(0, 40))}`);
    const fields = this.signedV2({ bill_date: `${m[1]}${m[2]}${m[3]}`, bill_type: 'ALL' });
    let answer: HttpAnswer;
    try {
      answer = await this.send('POST', '/pay/downloadbill', toXml(fields), { 'content-type': 'text/xml; charset=utf-8' }, signal, {
        maxBodyBytes: MAX_BILL_BYTES,
      });
    } catch (err) {
      if (err instanceof TransportError) throw new WechatPayCallError(`WeChat Pay /pay/downloadbill: ${err.message}`, 'unknown');
      throw err;
    }
    if (answer.status !== 200) throw new WechatPayCallError(`downloadbill answered HTTP ${answer.status}`, 'unknown');
    if (answer.body.trimStart().startsWith('<xml>')) {
      const f = fromXml(answer.body);
      // 20002 No Bill Exist: nothing was paid or refunded that day.
      if (f?.['return_code'] === 'FAIL' && /No Bill Exist/i.test(f['return_msg'] ?? '')) return [];
      throw new WechatPayCallError(
        `downloadbill refused: ${f?.['error_code'] ?? ''} ${f?.['return_msg'] ?? 'unreadable answer'}`.trim(),
        'refused',
      );
    }
    return parseBill(answer.body);
  }

  private signedV2(fields: Record<string, string>): Record<string, string> {
    const all: Record<string, string> = { appid: this.options.appId, mch_id: this.options.mchId, nonce_str: nonceStr(), ...fields };
    if (this.options.signType === 'HMAC-SHA256') all['sign_type'] = 'HMAC-SHA256';
    all['sign'] = signV2(all, this.options.apiKey, this.options.signType);
    return all;
  }

  /** One v2 call: signs, sends, reads and verifies the answer. Never throws for the channel's trouble. */
  private async v2(
    path: string,
    fields: Record<string, string>,
    signal: AbortSignal,
    context: { code?: string; outTradeNo?: string; secure?: boolean },
  ): Promise<V2Outcome> {
    const logged = { api: path, outTradeNo: context.outTradeNo, code: context.code === undefined ? undefined : maskCode(context.code) };
    let answer: HttpAnswer;
    try {
      answer = await this.send('POST', path, toXml(this.signedV2(fields)), { 'content-type': 'text/xml; charset=utf-8' }, signal, {
        secure: context.secure === true,
      });
    } catch (err) {
      if (!(err instanceof TransportError)) throw err;
      this.log.warn({ ...logged, err: err.message }, 'wechat pay call failed');
      return { kind: 'unknown', message: `WeChat Pay ${path}: ${err.message}` };
    }
    const outcome = this.readV2(path, answer);
    if (outcome.kind === 'unknown') this.log.warn({ ...logged, err: outcome.message }, 'wechat pay answer not believed');
    else this.log.debug({ ...logged, result: outcome.fields['result_code'], errCode: outcome.fields['err_code'] }, 'wechat pay answer');
    return outcome;
  }

  private readV2(path: string, answer: HttpAnswer): V2Outcome {
    if (answer.status !== 200) return { kind: 'unknown', message: `WeChat Pay ${path}: HTTP ${answer.status}` };
    const f = fromXml(answer.body);
    if (f === undefined) return { kind: 'unknown', message: `WeChat Pay ${path}: unreadable answer` };
    if (f['return_code'] !== 'SUCCESS')
      return { kind: 'unknown', message: `WeChat Pay ${path}: refused: ${f['return_msg'] ?? 'return_code FAIL'}` };
    if (!verifyV2(f, this.options.apiKey, this.options.signType))
      return { kind: 'unknown', message: `WeChat Pay ${path}: the answer's signature does not verify` };
    if (f['mch_id'] !== this.options.mchId) return { kind: 'unknown', message: `WeChat Pay ${path}: the answer is for another merchant` };
    return { kind: 'ok', fields: f };
  }

  private paidFrom(f: Readonly<Record<string, string>>, api: string): PaymentResult {
    const amountFen = parseFen(f['total_fee']);
    const paidAtMs = parseTimeEnd(f['time_end']);
    const openid = f['openid'] ?? '';
    const txn = f['transaction_id'] ?? '';
    if (amountFen === undefined || paidAtMs === undefined || openid === '' || txn === '')
      return { status: 'unknown', message: `WeChat Pay ${api}: paid answer without total_fee, time_end, openid or transaction_id` };
    return { status: 'paid', channelTxnId: txn, payer: { channel: 'wechat', payerId: openid }, amountFen, paidAtMs };
  }

  /** One v3 call: the parsed JSON answer (or {} for 204); WechatPayCallError for everything else. */
  private async v3(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal, outTradeNo: string): Promise<unknown> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const timestamp = String(Math.floor(this.now() / 1000));
    const nonce = nonceStr();
    const signature = rsaSign(v3RequestMessage(method, path, timestamp, nonce, text), this.options.merchantPrivateKey);
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': 'cardswitch',
      authorization: v3AuthorizationHeader({
        mchid: this.options.mchId,
        nonce_str: nonce,
        signature,
        timestamp,
        serial_no: this.options.merchantSerial,
      }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    };
    let answer: HttpAnswer;
    try {
      answer = await this.send(method, path, text, headers, signal, {});
    } catch (err) {
      if (!(err instanceof TransportError)) throw err;
      this.log.warn({ api: path.split('?')[0], outTradeNo, err: err.message }, 'wechat pay call failed');
      throw new WechatPayCallError(`WeChat Pay ${method} ${path.split('?')[0]}: ${err.message}`, 'unknown');
    }
    const h = answer.headers;
    const problem = this.checkV3Signature(
      header(h, 'wechatpay-timestamp'),
      header(h, 'wechatpay-nonce'),
      header(h, 'wechatpay-signature'),
      header(h, 'wechatpay-serial'),
      answer.body,
    );
    const where = `WeChat Pay ${method} ${path.split('?')[0]}`;
    if (problem !== undefined) {
      this.log.warn({ api: path.split('?')[0], outTradeNo, err: problem }, 'wechat pay answer not believed');
      throw new WechatPayCallError(`${where}: ${problem}`, 'unknown');
    }
    if (answer.status === 204) return {};
    const parsed = parseJson(answer.body) as { code?: unknown; message?: unknown } | undefined;
    if (answer.status === 200 && parsed !== undefined) return parsed;
    const detail =
      `${typeof parsed?.code === 'string' ? parsed.code : ''} ${typeof parsed?.message === 'string' ? parsed.message : ''}`.trim();
    const outcome = answer.status >= 400 && answer.status < 500 && parsed?.code !== 'SYSTEM_ERROR' ? 'refused' : 'unknown';
    throw new WechatPayCallError(`${where}: HTTP ${answer.status} ${detail}`.trim(), outcome);
  }

  /** undefined when the platform's signature over the body verifies; else what is wrong (no secret in it). */
  private checkV3Signature(
    timestamp: string | undefined,
    nonce: string | undefined,
    signature: string | undefined,
    serial: string | undefined,
    body: string,
  ): string | undefined {
    if (timestamp === undefined || nonce === undefined || signature === undefined || serial === undefined)
      return 'unsigned (no Wechatpay-* headers)';
    if (serial !== this.options.platformSerial) return `signed with an unknown key (Wechatpay-Serial ${serial.slice(0, 64)})`;
    if (!/^\d{1,12}$/.test(timestamp)) return 'Wechatpay-Timestamp is not a number';
    if (Math.abs(this.now() - Number(timestamp) * 1000) > NOTIFICATION_MAX_AGE_MS) return 'Wechatpay-Timestamp more than 5 minutes away';
    if (!rsaVerify(v3AnswerMessage(timestamp, nonce, body), signature, this.options.platformPublicKey))
      return 'the signature does not verify';
    return undefined;
  }

  private send(
    method: 'GET' | 'POST',
    path: string,
    body: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    opts: { secure?: boolean; maxBodyBytes?: number },
  ): Promise<HttpAnswer> {
    return exchange({
      method,
      url: new URL(path, this.options.apiBase),
      headers,
      body,
      timeoutMs: this.options.timeoutMs,
      maxBodyBytes: opts.maxBodyBytes ?? MAX_BODY_BYTES,
      signal,
      // The client certificate goes only over TLS (the simulators speak plain http).
      agent: opts.secure === true && this.secure && this.agent !== undefined ? this.agent : this.plainAgent,
    });
  }
}

interface V3Transaction {
  readonly trade_state?: string;
  readonly trade_state_desc?: string;
  readonly transaction_id?: string;
  readonly success_time?: string;
  readonly amount?: { readonly total?: number };
  readonly payer?: { readonly openid?: string };
}

function parseJson(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

function checkId(field: string, value: string): void {
  if (!CHANNEL_ID_PATTERN.test(value)) throw new InvalidArgumentError(`${field} must be 6-32 characters of A-Z a-z 0-9 _ -`);
}

function checkFen(field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new InvalidArgumentError(`${field} must be a whole positive number of fen, got ${value}`);
}
