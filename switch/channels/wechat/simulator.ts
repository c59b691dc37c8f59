// A stand-in for WeChat Pay (api.mch.weixin.qq.com), for tests and development: a loopback HTTP server
// speaking the real v2 XML and v3 JSON APIs (adapter.ts lists them), signing its answers with test keys made
// at start and checking every request's signature; a bad one is answered as WeChat Pay answers it (v2:
// return_code=FAIL 签名错误, unsigned; v3: 401 SIGN_ERROR). /secapi/ is served over plain HTTP: the client
// certificate is a TLS matter the simulator leaves out.
//
// What a test (or a developer, over POST /sim/...) can tell it, each for one code or order:
//   newCode(payerId)                  a fresh 18-digit code of a simulated payer (valid 60 s, single use)
//   script(code, steps)               what happens to the payment made with that code, one step per look:
//                                     the micropay answer, then each orderquery while undecided; the last
//                                     step stays. 'paid' 'paying' 'cancelled' 'notenough' 'refused'
//                                     'systemerror' 'bankerror' 'expired' 'invalid' 'used' 'hang' 'http500'
//   scriptReverse(no, steps)          'recall' (SYSTEMERROR, recall=Y), 'expired' (REVERSE_EXPIRE), 'ok'
//   failNext(api, failure)            the next call of one API: 'hang', 'http500', 'systemerror'
//                                     (api: micropay orderquery reverse refund refundquery authcodetoopenid
//                                     downloadbill v3)
//   setBalance(payerId, fen) / freeze(payerId)
//   payOrder(no, {notify})            the simulated payer pays a recharge order (Native / JSAPI), then a
//                                     notification is sent (unless notify: false)
//   expireOrder(no)                   the order's time_expire passed: CLOSED
//   notify(no, {times, delayMs, forged})  (again) notifies: forged 'signature' | 'amount' | 'stale' | 'serial'
//   bill(date)                        the day's trade bill, as /pay/downloadbill serves it
//   addBillLine(line)                 a line on the bill that no order made (a payment or refund the
//                                     switch never saw; the same order again: a duplicate)
//   alterBillLine(no, amountFen)      the bill shows another amount for that order's payment
//                                     (reconciliation tests; also POST /sim/bill-line, /sim/alter-bill-line)
//   forgeAnswers = true               every answer from now on is signed with a wrong key
// Latency: every answer waits `latencyMs` (default 3; tests pass 0). Everything is in memory and bounded.
import { generateKeyPairSync, randomBytes, randomInt, type KeyObject, createPrivateKey, createPublicKey } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { closeLoopback, listenOnLoopback } from '../../loopback.js';
import { renderBill, type BillLine } from './bill.js';
import {
  encryptResource,
  formatRfc3339,
  formatTimeEnd,
  fromXml,
  nonceStr,
  parseFen,
  parseV3Authorization,
  rsaSign,
  rsaVerify,
  shanghaiDate,
  signV2,
  toXml,
  v3AnswerMessage,
  v3RequestMessage,
  verifyV2,
  type V2SignType,
} from './wire.js';

export type CodeStep =
  | 'paid'
  | 'paying'
  | 'cancelled'
  | 'notenough'
  | 'refused'
  | 'systemerror'
  | 'bankerror'
  | 'expired'
  | 'invalid'
  | 'used'
  | 'hang'
  | 'http500';
export type ReverseStep = 'recall' | 'expired' | 'ok';
/** A line put on the bill by a test (addBillLine): not made by any order of the simulator. */
export interface InjectedBillLine {
  readonly outTradeNo: string;
  readonly amountFen: number;
  /** Default payment. */
  readonly kind?: 'payment' | 'refund';
  /** Default now. */
  readonly atMs?: number;
  /** Default: the order's transaction_id, or a new one. */
  readonly channelTxnId?: string | undefined;
  readonly outRefundNo?: string;
}

export type SimulatedApi = 'micropay' | 'orderquery' | 'reverse' | 'refund' | 'refundquery' | 'authcodetoopenid' | 'downloadbill' | 'v3';
export type SimulatedFailure = 'hang' | 'http500' | 'systemerror';
export type ForgedNotification = 'signature' | 'amount' | 'stale' | 'serial';

export const CODE_STEPS: readonly CodeStep[] = [
  'paid',
  'paying',
  'cancelled',
  'notenough',
  'refused',
  'systemerror',
  'bankerror',
  'expired',
  'invalid',
  'used',
  'hang',
  'http500',
];
export const SIM_CODE_VALID_MS = 60_000;
/** A code payment can be reversed for this long after it was made (WeChat Pay: 7 days). */
export const SIM_REVERSE_WINDOW_MS = 7 * 86_400_000;
const MAX_ORDERS = 100_000;
const MAX_CODES = 100_000;
const MAX_STEPS = 32;
const MAX_BILL_LINES = 1_000_000;
const MAX_REQUEST_BYTES = 64 * 1024;
const DEFAULT_BALANCE_FEN = 1_000_000;

/** The keys of one merchant account and of the simulated platform (what the real ones would be). */
export interface SimulatorKeys {
  readonly appId: string;
  readonly mchId: string;
  readonly apiKey: string;
  readonly apiV3Key: string;
  readonly merchantPrivateKeyPem: string;
  readonly merchantSerial: string;
  readonly platformPrivateKeyPem: string;
  readonly platformPublicKeyPem: string;
  readonly platformSerial: string;
}

export interface WechatPaySimulatorOptions {
  /** Default 3 ms. */
  readonly latencyMs?: number;
  readonly now?: () => number;
  /** Replace some generated keys (a simulator "with a different key" shares the others). */
  readonly keys?: Partial<SimulatorKeys>;
}

export interface NotifyOptions {
  readonly times?: number;
  readonly delayMs?: number;
  readonly forged?: ForgedNotification;
}

export interface NotifyDelivery {
  readonly status: number;
  readonly body: string;
}

interface Payer {
  balanceFen: number;
  frozen: boolean;
}

interface Refund {
  readonly outRefundNo: string;
  readonly refundId: string;
  readonly refundFen: number;
  readonly atMs: number;
}

type TradeState = 'PENDING' | 'USERPAYING' | 'NOTPAY' | 'SUCCESS' | 'REFUND' | 'PAYERROR' | 'CLOSED' | 'REVOKED';

interface Order {
  readonly outTradeNo: string;
  readonly tradeType: 'MICROPAY' | 'NATIVE' | 'JSAPI';
  readonly amountFen: number;
  readonly body: string;
  readonly deviceInfo: string;
  /** What makes a repeat "the same request" (idempotency). */
  readonly fingerprint: string;
  readonly transactionId: string;
  readonly createdAtMs: number;
  payerId: string | undefined;
  state: TradeState;
  stateDesc: string;
  /** micropay: the error a repeat of the request answers once the order failed. */
  failure: { code: string; des: string } | undefined;
  steps: CodeStep[];
  paidAtMs: number | undefined;
  expiresAtMs: number | undefined;
  notifyUrl: string | undefined;
  codeUrl: string | undefined;
  prepayId: string | undefined;
  refunds: Refund[];
  reverseSteps: ReverseStep[];
}

type Answer = { readonly status: number; readonly body: string; readonly headers?: Record<string, string> } | 'hang';

function keyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

function alnum(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(length), (b) => alphabet[b % alphabet.length]).join('');
}

function digits(length: number): string {
  return Array.from({ length }, () => String(randomInt(10))).join('');
}

/** Test keys for one merchant and one platform: generated, never a real secret. */
export function generateSimulatorKeys(): SimulatorKeys {
  const merchant = keyPair();
  const platform = keyPair();
  return {
    appId: `wx${randomBytes(8).toString('hex')}`,
    mchId: `1${digits(9)}`,
    apiKey: alnum(32),
    apiV3Key: alnum(32),
    merchantPrivateKeyPem: merchant.privatePem,
    merchantSerial: randomBytes(20).toString('hex').toUpperCase(),
    platformPrivateKeyPem: platform.privatePem,
    platformPublicKeyPem: platform.publicPem,
    platformSerial: `PUB_KEY_ID_${digits(30)}`,
  };
}

export class WechatPaySimulator {
  readonly keys: SimulatorKeys;
  /** Sign every answer and notification from now on with a wrong key. */
  forgeAnswers = false;
  private latencyMs: number;
  private readonly now: () => number;
  private readonly merchantPublicKey: KeyObject;
  private readonly platformPrivateKey: KeyObject;
  private readonly payers = new Map<string, Payer>();
  private readonly codes = new Map<string, { payerId: string; issuedAtMs: number; validMs: number; used: boolean }>();
  private readonly scripts = new Map<string, CodeStep[]>();
  private readonly orders = new Map<string, Order>();
  private readonly refundsByNo = new Map<string, { outTradeNo: string; refund: Refund }>();
  private readonly failures = new Map<SimulatedApi, SimulatedFailure[]>();
  private readonly billLines: BillLine[] = [];
  private readonly calls = new Map<string, number>();
  private server: Server | undefined;
  private baseUrl = '';

  constructor(options: WechatPaySimulatorOptions = {}) {
    this.keys = { ...generateSimulatorKeys(), ...options.keys };
    this.latencyMs = options.latencyMs ?? 3;
    this.now = options.now ?? Date.now;
    this.merchantPublicKey = createPublicKey(createPrivateKey(this.keys.merchantPrivateKeyPem));
    this.platformPrivateKey = createPrivateKey(this.keys.platformPrivateKeyPem);
  }

  /** What the adapter is configured with (WechatPayConfig's keys), exactly as with the real channel. */
  credentials(): {
    appId: string;
    mchId: string;
    apiKey: string;
    apiV3Key: string;
    merchantPrivateKey: KeyObject;
    merchantSerial: string;
    merchantCertPem: undefined;
    merchantKeyPem: string;
    platformPublicKey: KeyObject;
    platformSerial: string;
  } {
    const k = this.keys;
    return {
      appId: k.appId,
      mchId: k.mchId,
      apiKey: k.apiKey,
      apiV3Key: k.apiV3Key,
      merchantPrivateKey: createPrivateKey(k.merchantPrivateKeyPem),
      merchantSerial: k.merchantSerial,
      merchantCertPem: undefined,
      merchantKeyPem: k.merchantPrivateKeyPem,
      platformPublicKey: createPublicKey(k.platformPublicKeyPem),
      platformSerial: k.platformSerial,
    };
  }

  /** Every answer from now on waits this long (the bench compares code payments that wait with ones answered at once). */
  setLatencyMs(latencyMs: number): void {
    if (!Number.isSafeInteger(latencyMs) || latencyMs < 0 || latencyMs > 60_000) throw new RangeError('latencyMs must be 0-60000');
    this.latencyMs = latencyMs;
  }

  async start(port = 0): Promise<{ url: string }> {
    if (this.server !== undefined) throw new Error('wechat pay simulator already started');
    const { server, url } = await listenOnLoopback((req, res) => void this.handle(req, res), port);
    this.server = server;
    this.baseUrl = url;
    return { url };
  }

  /** Stops listening and drops every connection, including requests held by 'hang'. */
  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    await closeLoopback(server);
  }

  get url(): string {
    if (this.baseUrl === '') throw new Error('wechat pay simulator not started');
    return this.baseUrl;
  }

  /** How many requests reached `path` (e.g. '/pay/orderquery'). */
  callCount(path: string): number {
    return this.calls.get(path) ?? 0;
  }

  // ---- control: payers and codes -------------------------------------------------------------

  /** A payment code of `payerId` (an openid of our appid), as the payer's phone shows it. */
  newCode(payerId: string, options: { validMs?: number } = {}): string {
    if (!/^[A-Za-z0-9_-]{6,64}$/.test(payerId)) throw new RangeError('payerId must be 6-64 of A-Z a-z 0-9 _ -');
    if (this.codes.size >= MAX_CODES) throw new Error(`wechat pay simulator holds ${MAX_CODES} codes`);
    this.payer(payerId);
    const code = `1${randomInt(0, 6)}${digits(16)}`;
    this.codes.set(code, { payerId, issuedAtMs: this.now(), validMs: options.validMs ?? SIM_CODE_VALID_MS, used: false });
    return code;
  }

  script(code: string, steps: readonly CodeStep[]): void {
    if (steps.length === 0 || steps.length > MAX_STEPS || steps.some((s) => !CODE_STEPS.includes(s)))
      throw new RangeError(`steps must be 1-${MAX_STEPS} of ${CODE_STEPS.join(', ')}`);
    this.scripts.set(code, [...steps]);
  }

  scriptReverse(outTradeNo: string, steps: readonly ReverseStep[]): void {
    const order = this.mustOrder(outTradeNo);
    order.reverseSteps = [...steps].slice(0, MAX_STEPS);
  }

  failNext(api: SimulatedApi, failure: SimulatedFailure): void {
    const queue = this.failures.get(api) ?? [];
    if (queue.length < MAX_STEPS) queue.push(failure);
    this.failures.set(api, queue);
  }

  setBalance(payerId: string, balanceFen: number): void {
    if (!Number.isSafeInteger(balanceFen) || balanceFen < 0) throw new RangeError('balanceFen must be a whole number of fen >= 0');
    this.payer(payerId).balanceFen = balanceFen;
  }

  freeze(payerId: string): void {
    this.payer(payerId).frozen = true;
  }

  balanceOf(payerId: string): number {
    return this.payer(payerId).balanceFen;
  }

  /** A copy of what the simulator knows of an order (tests compare). */
  order(outTradeNo: string): { state: string; amountFen: number; refundedFen: number; payerId: string | undefined } | undefined {
    const o = this.orders.get(outTradeNo);
    if (o === undefined) return undefined;
    this.expireIfDue(o);
    return { state: o.state, amountFen: o.amountFen, refundedFen: refunded(o), payerId: o.payerId };
  }

  // ---- control: recharge orders and notifications ---------------------------------------------

  /** The payer (the JSAPI order's openid, or `payerId`) pays a Native / JSAPI order; then it is notified. */
  async payOrder(outTradeNo: string, options: { payerId?: string; notify?: NotifyOptions | false } = {}): Promise<NotifyDelivery[]> {
    const order = this.mustOrder(outTradeNo);
    this.expireIfDue(order);
    if (order.state !== 'NOTPAY') throw new Error(`order ${outTradeNo} is ${order.state}, not payable`);
    const payerId = order.payerId ?? options.payerId ?? 'oSimulatedPayer000000000000';
    const payer = this.payer(payerId);
    if (payer.balanceFen < order.amountFen)
      throw new Error(`payer ${payerId} has ${payer.balanceFen} fen, the order is ${order.amountFen}`);
    payer.balanceFen -= order.amountFen;
    this.markPaid(order, payerId);
    return options.notify === false ? [] : this.notify(outTradeNo, options.notify ?? {});
  }

  expireOrder(outTradeNo: string): void {
    const order = this.mustOrder(outTradeNo);
    if (order.state === 'NOTPAY' || order.state === 'USERPAYING' || order.state === 'PENDING') order.state = 'CLOSED';
  }

  /** Posts the order's v3 notification to its notify_url `times` times (one after the other), after `delayMs`. */
  async notify(outTradeNo: string, options: NotifyOptions = {}): Promise<NotifyDelivery[]> {
    const order = this.mustOrder(outTradeNo);
    if (order.notifyUrl === undefined) throw new Error(`order ${outTradeNo} has no notify_url`);
    const times = Math.min(Math.max(options.times ?? 1, 0), 10);
    if ((options.delayMs ?? 0) > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(options.delayMs ?? 0, 60_000)));
    const deliveries: NotifyDelivery[] = [];
    for (let i = 0; i < times; i++) deliveries.push(await this.deliver(order, order.notifyUrl, options.forged));
    return deliveries;
  }

  /** The v3 notification of an order as it would be sent (headers lower-case, body), without sending it. */
  notification(outTradeNo: string, forged?: ForgedNotification): { headers: Record<string, string>; body: string } {
    return this.buildNotification(this.mustOrder(outTradeNo), forged);
  }

  /**
   * Puts a line on the bill that no order of the simulator made (reconciliation tests): a payment the
   * switch never recorded, or, with the outTradeNo of a paid order, the same payment twice.
   */
  addBillLine(line: InjectedBillLine): void {
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(line.outTradeNo)) throw new RangeError('outTradeNo must be 1-32 of A-Z a-z 0-9 _ -');
    if (!Number.isSafeInteger(line.amountFen) || line.amountFen <= 0) throw new RangeError('amountFen must be a whole number of fen > 0');
    if (this.billLines.length >= MAX_BILL_LINES) throw new Error(`wechat pay simulator holds ${MAX_BILL_LINES} bill lines`);
    const order = this.orders.get(line.outTradeNo);
    const kind = line.kind ?? 'payment';
    this.billLines.push({
      atMs: line.atMs ?? this.now(),
      appId: this.keys.appId,
      mchId: this.keys.mchId,
      deviceInfo: order?.deviceInfo ?? '',
      transactionId: line.channelTxnId ?? order?.transactionId ?? `42000${digits(23)}`,
      outTradeNo: line.outTradeNo,
      openid: order?.payerId ?? 'oSimulatedPayer000000000000',
      tradeType: order?.tradeType ?? 'MICROPAY',
      kind,
      amountFen: line.amountFen,
      body: order?.body ?? 'simulated bill line',
      ...(kind === 'refund' ? { outRefundNo: line.outRefundNo ?? `R${line.outTradeNo}`.slice(0, 32), refundId: `5${digits(27)}` } : {}),
    });
  }

  /** The bill shows `amountFen` for the payment of `outTradeNo` (every such line); answers how many lines changed. */
  alterBillLine(outTradeNo: string, amountFen: number): number {
    if (!Number.isSafeInteger(amountFen) || amountFen <= 0) throw new RangeError('amountFen must be a whole number of fen > 0');
    let changed = 0;
    for (let i = 0; i < this.billLines.length; i++) {
      const line = this.billLines[i];
      if (line === undefined || line.outTradeNo !== outTradeNo || line.kind !== 'payment') continue;
      this.billLines[i] = { ...line, amountFen };
      changed += 1;
    }
    if (changed === 0) throw new Error(`no payment of ${outTradeNo} on any bill`);
    return changed;
  }

  /** The trade bill of one day (YYYY-MM-DD, Beijing time), in WeChat Pay's text format. */
  bill(date: string): string {
    return renderBill(this.billLines.filter((line) => shanghaiDate(line.atMs) === date));
  }

  // ---- the HTTP server -----------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: string;
    try {
      body = await readBody(req);
    } catch {
      res.writeHead(413).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://sim');
    this.calls.set(url.pathname, (this.calls.get(url.pathname) ?? 0) + 1);
    let answer: Answer;
    try {
      answer = url.pathname.startsWith('/sim/') ? await this.control(req.method ?? 'GET', url, body) : this.api(req, url, body);
    } catch (err) {
      answer = { status: 400, body: JSON.stringify({ error: (err as Error).message }), headers: { 'content-type': 'application/json' } };
    }
    if (answer === 'hang') return; // held until stop() or the caller gives up
    if (this.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.latencyMs));
    if (res.destroyed) return;
    res.writeHead(answer.status, { 'content-type': 'text/xml; charset=utf-8', ...answer.headers }).end(answer.body);
  }

  private api(req: IncomingMessage, url: URL, body: string): Answer {
    if (req.method !== 'POST' && !url.pathname.startsWith('/v3/')) return this.v2Fail('请使用post方法');
    const v2: Record<string, (f: Record<string, string>) => Answer> = {
      '/pay/micropay': (f) => this.micropay(f),
      '/pay/orderquery': (f) => this.orderquery(f),
      '/secapi/pay/reverse': (f) => this.reverse(f),
      '/secapi/pay/refund': (f) => this.refund(f),
      '/pay/refundquery': (f) => this.refundquery(f),
      '/tools/authcodetoopenid': (f) => this.authcodetoopenid(f),
      '/pay/downloadbill': (f) => this.downloadbill(f),
    };
    const handler = v2[url.pathname];
    if (handler !== undefined) {
      const api = url.pathname.split('/').pop() as SimulatedApi;
      const failure = this.failures.get(api)?.shift();
      if (failure === 'hang') return 'hang';
      if (failure === 'http500') return { status: 500, body: '' };
      const fields = fromXml(body);
      if (fields === undefined) return this.v2Fail('XML格式错误');
      const problem = this.checkV2Request(fields);
      if (problem !== undefined) return this.v2Fail(problem);
      if (failure === 'systemerror')
        return this.v2Result(fields, { result_code: 'FAIL', err_code: 'SYSTEMERROR', err_code_des: '系统超时', recall: 'Y' });
      return handler(fields);
    }
    if (url.pathname.startsWith('/v3/')) return this.v3(req, url, body);
    return { status: 404, body: '' };
  }

  private checkV2Request(f: Record<string, string>): string | undefined {
    const signType: V2SignType = f['sign_type'] === 'HMAC-SHA256' ? 'HMAC-SHA256' : 'MD5';
    if (f['sign_type'] !== undefined && f['sign_type'] !== 'HMAC-SHA256' && f['sign_type'] !== 'MD5') return 'sign_type参数错误';
    if (!verifyV2(f, this.keys.apiKey, signType)) return '签名错误，请检查后再试';
    if (f['appid'] !== this.keys.appId || f['mch_id'] !== this.keys.mchId) return 'appid和mch_id不匹配';
    if (!/^[A-Za-z0-9]{1,32}$/.test(f['nonce_str'] ?? '')) return 'nonce_str参数错误';
    return undefined;
  }

  private v2Fail(message: string): Answer {
    return { status: 200, body: toXml({ return_code: 'FAIL', return_msg: message }) };
  }

  /** A signed return_code=SUCCESS answer, with the request's sign_type. */
  private v2Result(request: Record<string, string>, fields: Record<string, string>): Answer {
    const signType: V2SignType = request['sign_type'] === 'HMAC-SHA256' ? 'HMAC-SHA256' : 'MD5';
    const all: Record<string, string> = {
      return_code: 'SUCCESS',
      return_msg: 'OK',
      appid: this.keys.appId,
      mch_id: this.keys.mchId,
      nonce_str: nonceStr(),
      ...fields,
    };
    all['sign'] = signV2(all, this.forgeAnswers ? alnum(32) : this.keys.apiKey, signType);
    return { status: 200, body: toXml(all) };
  }

  // ---- v2: code payments ---------------------------------------------------------------------

  private micropay(f: Record<string, string>): Answer {
    const outTradeNo = f['out_trade_no'] ?? '';
    const amountFen = parseFen(f['total_fee']);
    const code = f['auth_code'] ?? '';
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(outTradeNo) || amountFen === undefined || amountFen <= 0 || (f['body'] ?? '') === '')
      return this.v2Result(f, { result_code: 'FAIL', err_code: 'PARAM_ERROR', err_code_des: '参数错误' });
    const existing = this.orders.get(outTradeNo);
    if (existing !== undefined) return this.micropayAgain(f, existing, `${code}|${amountFen}`);
    if (!/^1[0-5]\d{16}$/.test(code)) return this.fail(f, 'AUTH_CODE_INVALID', '请扫描微信支付授权码(以10/11/12/13/14/15为前缀的18位数字)');
    const minted = this.codes.get(code);
    const steps = this.scripts.get(code) ?? ['paid'];
    const first = steps[0] ?? 'paid';
    if (minted === undefined || first === 'invalid') return this.fail(f, 'AUTH_CODE_INVALID', '101 付款码无效,请重新扫码');
    if (minted.used || first === 'used') return this.fail(f, 'AUTH_CODE_INVALID', '101 每个二维码仅限使用一次,请刷新再试');
    if (this.now() - minted.issuedAtMs > minted.validMs || first === 'expired')
      return this.fail(f, 'AUTHCODEEXPIRE', '101 付款码已过期,请退出重试');
    if (this.orders.size >= MAX_ORDERS) return this.fail(f, 'SYSTEMERROR', '系统繁忙');
    minted.used = true;
    const order = this.newOrder({
      outTradeNo,
      tradeType: 'MICROPAY',
      amountFen,
      body: f['body'] ?? '',
      deviceInfo: f['device_info'] ?? '',
      fingerprint: `${code}|${amountFen}`,
      payerId: minted.payerId,
      state: 'PENDING',
    });
    order.steps = [...steps];
    return this.micropayAnswer(f, order, this.advance(order));
  }

  /** The same out_trade_no again: the same request is answered from the order; another is OUT_TRADE_NO_USED. */
  private micropayAgain(f: Record<string, string>, order: Order, fingerprint: string): Answer {
    if (order.tradeType !== 'MICROPAY' || order.fingerprint !== fingerprint) return this.fail(f, 'OUT_TRADE_NO_USED', '商户订单号重复');
    switch (order.state) {
      case 'SUCCESS':
      case 'REFUND':
        return this.fail(f, 'ORDERPAID', '订单已支付');
      case 'REVOKED':
        return this.fail(f, 'ORDERREVERSED', '订单已撤销');
      case 'CLOSED':
        return this.fail(f, 'ORDERCLOSED', '订单已关闭');
      case 'PAYERROR':
        return this.fail(f, order.failure?.code ?? 'TRADE_ERROR', order.failure?.des ?? order.stateDesc);
      default:
        return this.micropayAnswer(f, order, this.advance(order));
    }
  }

  private micropayAnswer(f: Record<string, string>, order: Order, step: CodeStep): Answer {
    switch (step) {
      case 'hang':
        return 'hang';
      case 'http500':
        return { status: 500, body: '' };
      case 'systemerror':
        return this.fail(f, 'SYSTEMERROR', '系统超时');
      case 'bankerror':
        return this.fail(f, 'BANKERROR', '银行系统异常');
      case 'paying':
        return this.fail(f, 'USERPAYING', '需要用户输入支付密码');
      default:
        break;
    }
    if (order.state === 'SUCCESS') return this.v2Result(f, { result_code: 'SUCCESS', ...this.paidFields(order), trade_type: 'MICROPAY' });
    return this.fail(f, order.failure?.code ?? 'TRADE_ERROR', order.failure?.des ?? order.stateDesc);
  }

  /** Takes the order's next scripted step (the last one stays) and applies what it decides. */
  private advance(order: Order): CodeStep {
    const step = (order.steps.length > 1 ? order.steps.shift() : order.steps[0]) ?? 'paid';
    const decline = (code: string, des: string): void => {
      order.state = 'PAYERROR';
      order.stateDesc = des;
      order.failure = { code, des };
    };
    switch (step) {
      case 'paid': {
        const payer = this.payer(order.payerId ?? '');
        if (payer.frozen) decline('TRADE_ERROR', '该用户账户被冻结,请用户更换付款方式');
        else if (payer.balanceFen < order.amountFen) decline('NOTENOUGH', '余额不足');
        else {
          payer.balanceFen -= order.amountFen;
          this.markPaid(order, order.payerId ?? '');
        }
        break;
      }
      case 'paying':
        order.state = 'USERPAYING';
        order.stateDesc = '需要用户输入支付密码';
        break;
      case 'cancelled':
        decline('TRADE_ERROR', '用户取消支付');
        break;
      case 'notenough':
        decline('NOTENOUGH', '余额不足');
        break;
      case 'refused':
        decline('TRADE_ERROR', '该用户账户被冻结,请用户更换付款方式');
        break;
      case 'expired':
      case 'invalid':
      case 'used':
        decline('AUTH_CODE_INVALID', '101 付款码无效,请重新扫码');
        break;
      default:
        break; // systemerror, bankerror, hang, http500: undecided for now
    }
    return step;
  }

  private orderquery(f: Record<string, string>): Answer {
    const order = this.orders.get(f['out_trade_no'] ?? '');
    if (order === undefined) return this.fail(f, 'ORDERNOTEXIST', '此交易订单号不存在');
    this.expireIfDue(order);
    if (order.state === 'PENDING' || order.state === 'USERPAYING') {
      const step = this.advance(order);
      if (step === 'hang') return 'hang';
      if (step === 'http500') return { status: 500, body: '' };
      if (step === 'systemerror' || step === 'bankerror') return this.fail(f, 'SYSTEMERROR', '系统错误');
    }
    const state = order.state === 'PENDING' ? 'USERPAYING' : order.state;
    const paid = state === 'SUCCESS' || state === 'REFUND';
    return this.v2Result(f, {
      result_code: 'SUCCESS',
      out_trade_no: order.outTradeNo,
      trade_type: order.tradeType,
      trade_state: state,
      trade_state_desc: order.stateDesc,
      total_fee: String(order.amountFen),
      ...(paid ? this.paidFields(order) : {}),
    });
  }

  private reverse(f: Record<string, string>): Answer {
    const order = this.orders.get(f['out_trade_no'] ?? '');
    if (order === undefined)
      return this.v2Result(f, { result_code: 'FAIL', err_code: 'ORDERNOTEXIST', err_code_des: '订单不存在', recall: 'N' });
    const step = (order.reverseSteps.length > 1 ? order.reverseSteps.shift() : order.reverseSteps[0]) ?? 'ok';
    if (step === 'recall')
      return this.v2Result(f, { result_code: 'FAIL', err_code: 'SYSTEMERROR', err_code_des: '系统超时,请重试', recall: 'Y' });
    if (step === 'expired' || this.now() - order.createdAtMs > SIM_REVERSE_WINDOW_MS)
      return this.v2Result(f, { result_code: 'FAIL', err_code: 'REVERSE_EXPIRE', err_code_des: '订单已超过撤销期限', recall: 'N' });
    if (order.state === 'REFUND')
      return this.v2Result(f, { result_code: 'FAIL', err_code: 'TRADE_STATE_ERROR', err_code_des: '订单已退款,不能撤销', recall: 'N' });
    if (order.state === 'SUCCESS') {
      this.payer(order.payerId ?? '').balanceFen += order.amountFen;
      this.billLines.push(this.billLine(order, 'refund', order.amountFen, { outRefundNo: order.outTradeNo, refundId: `5${digits(27)}` }));
    }
    if (order.state !== 'CLOSED') {
      order.state = 'REVOKED';
      order.stateDesc = '已撤销';
    }
    return this.v2Result(f, { result_code: 'SUCCESS', recall: 'N' });
  }

  private refund(f: Record<string, string>): Answer {
    const outRefundNo = f['out_refund_no'] ?? '';
    const refundFen = parseFen(f['refund_fee']);
    const totalFen = parseFen(f['total_fee']);
    const order = this.orders.get(f['out_trade_no'] ?? '');
    if (order === undefined) return this.fail(f, 'ORDERNOTEXIST', '订单不存在');
    if (refundFen === undefined || refundFen <= 0 || totalFen === undefined || !/^[A-Za-z0-9_|*@-]{1,64}$/.test(outRefundNo))
      return this.fail(f, 'PARAM_ERROR', '参数错误');
    const earlier = this.refundsByNo.get(outRefundNo);
    if (earlier !== undefined) {
      if (earlier.outTradeNo !== order.outTradeNo || earlier.refund.refundFen !== refundFen || totalFen !== order.amountFen)
        return this.fail(f, 'ERROR', '订单金额或退款金额与之前请求不一致，请核实后再试');
      return this.refundAnswer(f, order, earlier.refund);
    }
    if (order.state !== 'SUCCESS' && order.state !== 'REFUND') return this.fail(f, 'TRADE_STATE_ERROR', '订单状态错误');
    if (totalFen !== order.amountFen) return this.fail(f, 'ERROR', '订单金额或退款金额与之前请求不一致，请核实后再试');
    if (refunded(order) + refundFen > order.amountFen) return this.fail(f, 'ERROR', '申请退款金额超过订单可退金额');
    const refund: Refund = { outRefundNo, refundId: `5${digits(28)}`, refundFen, atMs: this.now() };
    order.refunds.push(refund);
    order.state = 'REFUND';
    order.stateDesc = '转入退款';
    this.refundsByNo.set(outRefundNo, { outTradeNo: order.outTradeNo, refund });
    this.payer(order.payerId ?? '').balanceFen += refundFen;
    this.billLines.push(this.billLine(order, 'refund', refundFen, { outRefundNo, refundId: refund.refundId }));
    return this.refundAnswer(f, order, refund);
  }

  /** /pay/refundquery by out_refund_no (the one key the switch sends): the refund, as index _0. */
  private refundquery(f: Record<string, string>): Answer {
    const earlier = this.refundsByNo.get(f['out_refund_no'] ?? '');
    if (earlier === undefined) return this.fail(f, 'REFUNDNOTEXIST', '退款订单查询失败');
    const order = this.orders.get(earlier.outTradeNo);
    return this.v2Result(f, {
      result_code: 'SUCCESS',
      transaction_id: order?.transactionId ?? '',
      out_trade_no: earlier.outTradeNo,
      total_fee: String(order?.amountFen ?? 0),
      refund_count: '1',
      out_refund_no_0: earlier.refund.outRefundNo,
      refund_id_0: earlier.refund.refundId,
      refund_fee_0: String(earlier.refund.refundFen),
      refund_status_0: 'SUCCESS',
    });
  }

  private refundAnswer(f: Record<string, string>, order: Order, refund: Refund): Answer {
    return this.v2Result(f, {
      result_code: 'SUCCESS',
      transaction_id: order.transactionId,
      out_trade_no: order.outTradeNo,
      out_refund_no: refund.outRefundNo,
      refund_id: refund.refundId,
      refund_fee: String(refund.refundFen),
      total_fee: String(order.amountFen),
      cash_fee: String(order.amountFen),
    });
  }

  private authcodetoopenid(f: Record<string, string>): Answer {
    const code = f['auth_code'] ?? '';
    const minted = this.codes.get(code);
    if (!/^1[0-5]\d{16}$/.test(code) || minted === undefined) return this.fail(f, 'AUTH_CODE_INVALID', '101 付款码无效,请重新扫码');
    if (this.now() - minted.issuedAtMs > minted.validMs) return this.fail(f, 'AUTHCODEEXPIRE', '101 付款码已过期,请退出重试');
    return this.v2Result(f, { result_code: 'SUCCESS', openid: minted.payerId });
  }

  private downloadbill(f: Record<string, string>): Answer {
    const m = /^(\d{4})(\d{2})(\d{2})$/.exec(f['bill_date'] ?? '');
    if (m === null || (f['bill_type'] ?? 'ALL') !== 'ALL')
      return { status: 200, body: toXml({ return_code: 'FAIL', return_msg: 'invalid bill_date or bill_type', error_code: '20001' }) };
    const lines = this.billLines.filter((line) => shanghaiDate(line.atMs) === `${m[1]}-${m[2]}-${m[3]}`);
    if (lines.length === 0) return { status: 200, body: toXml({ return_code: 'FAIL', return_msg: 'No Bill Exist', error_code: '20002' }) };
    return { status: 200, body: renderBill(lines), headers: { 'content-type': 'text/plain; charset=utf-8' } };
  }

  private fail(f: Record<string, string>, code: string, des: string): Answer {
    return this.v2Result(f, { result_code: 'FAIL', err_code: code, err_code_des: des });
  }

  private paidFields(order: Order): Record<string, string> {
    return {
      openid: order.payerId ?? '',
      is_subscribe: 'N',
      bank_type: 'OTHERS',
      fee_type: 'CNY',
      total_fee: String(order.amountFen),
      cash_fee: String(order.amountFen),
      transaction_id: order.transactionId,
      out_trade_no: order.outTradeNo,
      time_end: formatTimeEnd(order.paidAtMs ?? this.now()),
    };
  }

  // ---- v3: recharge orders -------------------------------------------------------------------

  private v3(req: IncomingMessage, url: URL, body: string): Answer {
    const failure = this.failures.get('v3')?.shift();
    if (failure === 'hang') return 'hang';
    if (failure === 'http500') return { status: 500, body: '' };
    if (failure === 'systemerror') return this.v3Answer(500, { code: 'SYSTEM_ERROR', message: '系统错误' });
    const auth = parseV3Authorization(req.headers['authorization']);
    const signed =
      auth !== undefined &&
      auth.mchid === this.keys.mchId &&
      auth.serial_no === this.keys.merchantSerial &&
      /^\d{1,12}$/.test(auth.timestamp) &&
      Math.abs(this.now() - Number(auth.timestamp) * 1000) <= 5 * 60_000 &&
      rsaVerify(
        v3RequestMessage(req.method ?? '', `${url.pathname}${url.search}`, auth.timestamp, auth.nonce_str, body),
        auth.signature,
        this.merchantPublicKey,
      );
    if (!signed) return this.v3Answer(401, { code: 'SIGN_ERROR', message: '签名错误' });
    const create = /^\/v3\/pay\/transactions\/(native|jsapi)$/.exec(url.pathname);
    if (create !== null && req.method === 'POST') return this.createOrder(create[1] === 'jsapi' ? 'JSAPI' : 'NATIVE', body);
    const byNo = /^\/v3\/pay\/transactions\/out-trade-no\/([A-Za-z0-9_|*-]{1,32})(\/close)?$/.exec(url.pathname);
    if (byNo === null) return this.v3Answer(404, { code: 'NOT_FOUND', message: '无效的请求地址' });
    const order = this.orders.get(byNo[1] ?? '');
    if (order === undefined) return this.v3Answer(404, { code: 'ORDER_NOT_EXIST', message: '订单不存在' });
    this.expireIfDue(order);
    if (byNo[2] === undefined) return this.v3Answer(200, this.transaction(order));
    if (order.state === 'SUCCESS' || order.state === 'REFUND') return this.v3Answer(400, { code: 'ORDERPAID', message: '订单已支付' });
    if (order.state !== 'REVOKED') order.state = 'CLOSED';
    return this.v3Answer(204, undefined);
  }

  private createOrder(tradeType: 'NATIVE' | 'JSAPI', body: string): Answer {
    const r = parseObject(body) as {
      appid?: unknown;
      mchid?: unknown;
      description?: unknown;
      out_trade_no?: unknown;
      time_expire?: unknown;
      notify_url?: unknown;
      amount?: { total?: unknown };
      payer?: { openid?: unknown };
    };
    const total = r?.amount?.total;
    const openid = r?.payer?.openid;
    const bad = (message: string): Answer => this.v3Answer(400, { code: 'PARAM_ERROR', message });
    if (r === undefined) return bad('请求体不是JSON');
    if (r.appid !== this.keys.appId || r.mchid !== this.keys.mchId)
      return this.v3Answer(400, { code: 'INVALID_REQUEST', message: 'appid和mch_id不匹配' });
    if (typeof r.out_trade_no !== 'string' || !/^[A-Za-z0-9_|*-]{6,32}$/.test(r.out_trade_no)) return bad('out_trade_no 格式错误');
    if (typeof total !== 'number' || !Number.isSafeInteger(total) || total <= 0) return bad('amount.total 必须是正整数(分)');
    if (typeof r.description !== 'string' || r.description === '' || typeof r.notify_url !== 'string' || !/^https?:\/\//.test(r.notify_url))
      return bad('description 或 notify_url 格式错误');
    if (tradeType === 'JSAPI' && (typeof openid !== 'string' || openid === '')) return bad('payer.openid 必填');
    const expiresAtMs = typeof r.time_expire === 'string' ? Date.parse(r.time_expire) : undefined;
    const fingerprint = JSON.stringify([tradeType, total, r.description, openid ?? '', r.notify_url]);
    const existing = this.orders.get(r.out_trade_no);
    if (existing !== undefined) {
      this.expireIfDue(existing);
      if (existing.fingerprint !== fingerprint) return this.v3Answer(400, { code: 'INVALID_REQUEST', message: '201 商户订单号重复' });
      if (existing.state === 'SUCCESS' || existing.state === 'REFUND')
        return this.v3Answer(400, { code: 'ORDERPAID', message: '该订单已支付' });
      if (existing.state !== 'NOTPAY') return this.v3Answer(400, { code: 'ORDER_CLOSED', message: '订单已关闭' });
      return this.v3Answer(200, tradeType === 'JSAPI' ? { prepay_id: existing.prepayId } : { code_url: existing.codeUrl });
    }
    if (this.orders.size >= MAX_ORDERS) return this.v3Answer(500, { code: 'SYSTEM_ERROR', message: '系统繁忙' });
    const order = this.newOrder({
      outTradeNo: r.out_trade_no,
      tradeType,
      amountFen: total,
      body: r.description,
      deviceInfo: '',
      fingerprint,
      payerId: typeof openid === 'string' ? openid : undefined,
      state: 'NOTPAY',
    });
    order.stateDesc = '订单未支付';
    order.notifyUrl = r.notify_url;
    order.expiresAtMs = expiresAtMs !== undefined && !Number.isNaN(expiresAtMs) ? expiresAtMs : this.now() + 2 * 3_600_000;
    order.codeUrl = `weixin://wxpay/bizpayurl?pr=${alnum(7)}`;
    order.prepayId = `wx${formatTimeEnd(this.now())}${alnum(18)}`;
    return this.v3Answer(200, tradeType === 'JSAPI' ? { prepay_id: order.prepayId } : { code_url: order.codeUrl });
  }

  private transaction(order: Order): Record<string, unknown> {
    const paid = order.state === 'SUCCESS' || order.state === 'REFUND';
    return {
      appid: this.keys.appId,
      mchid: this.keys.mchId,
      out_trade_no: order.outTradeNo,
      transaction_id: paid ? order.transactionId : undefined,
      trade_type: order.tradeType,
      trade_state: order.state === 'PENDING' ? 'USERPAYING' : order.state,
      trade_state_desc: order.stateDesc,
      bank_type: paid ? 'OTHERS' : undefined,
      success_time: paid ? formatRfc3339(order.paidAtMs ?? this.now()) : undefined,
      payer: order.payerId !== undefined ? { openid: order.payerId } : undefined,
      amount: { total: order.amountFen, payer_total: paid ? order.amountFen : undefined, currency: 'CNY', payer_currency: 'CNY' },
    };
  }

  /** A v3 answer signed with the platform key (Wechatpay-* headers), as WeChat Pay signs every answer. */
  private v3Answer(status: number, payload: unknown): Answer {
    const body = payload === undefined ? '' : JSON.stringify(payload);
    return { status, body, headers: { 'content-type': 'application/json', ...this.v3Headers(body, this.now()) } };
  }

  private v3Headers(body: string, nowMs: number, forged?: ForgedNotification): Record<string, string> {
    const timestamp = String(Math.floor(nowMs / 1000) - (forged === 'stale' ? 600 : 0));
    const nonce = alnum(32);
    const key = this.forgeAnswers || forged === 'signature' ? createPrivateKey(keyPair().privatePem) : this.platformPrivateKey;
    return {
      'request-id': alnum(24),
      'wechatpay-timestamp': timestamp,
      'wechatpay-nonce': nonce,
      'wechatpay-signature': rsaSign(v3AnswerMessage(timestamp, nonce, body), key),
      'wechatpay-serial': forged === 'serial' ? `PUB_KEY_ID_${digits(30)}` : this.keys.platformSerial,
    };
  }

  // ---- notifications -------------------------------------------------------------------------

  private buildNotification(order: Order, forged?: ForgedNotification): { headers: Record<string, string>; body: string } {
    const transaction = this.transaction(order);
    const plain = JSON.stringify(transaction);
    const envelope = (resourcePlain: string): string =>
      JSON.stringify({
        id: notificationId(order),
        create_time: formatRfc3339(this.now()),
        resource_type: 'encrypt-resource',
        event_type: order.state === 'SUCCESS' || order.state === 'REFUND' ? 'TRANSACTION.SUCCESS' : 'TRANSACTION.FAIL',
        summary: '支付成功',
        resource: encryptResource(resourcePlain, this.keys.apiV3Key, 'transaction', 'transaction'),
      });
    const body = envelope(plain);
    const headers = this.v3Headers(body, this.now(), forged);
    if (forged !== 'amount') return { headers, body };
    // Someone who holds the APIv3 key but not the platform's private key: a new resource, the old signature.
    const tampered = { ...transaction, amount: { ...(transaction['amount'] as object), total: order.amountFen * 100 } };
    return { headers, body: envelope(JSON.stringify(tampered)) };
  }

  private async deliver(order: Order, url: string, forged: ForgedNotification | undefined): Promise<NotifyDelivery> {
    const { headers, body } = this.buildNotification(order, forged);
    return new Promise<NotifyDelivery>((resolve) => {
      const req = httpRequest(url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      });
      req.setTimeout(5000, () => req.destroy(new Error('timeout')));
      req.on('error', (err) => resolve({ status: 0, body: err.message }));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8').slice(0, 4096) }));
        res.on('error', (err) => resolve({ status: 0, body: err.message }));
      });
      req.end(body);
    });
  }

  // ---- the /sim/ control routes (loopback) ---------------------------------------------------

  private async control(method: string, url: URL, body: string): Promise<Answer> {
    const json = (status: number, payload: unknown): Answer => ({
      status,
      body: JSON.stringify(payload),
      headers: { 'content-type': 'application/json' },
    });
    if (method === 'GET' && url.pathname === '/sim/bill') {
      return { status: 200, body: this.bill(url.searchParams.get('date') ?? ''), headers: { 'content-type': 'text/plain; charset=utf-8' } };
    }
    if (method !== 'POST') return json(405, { error: 'POST only (GET /sim/bill?date=YYYY-MM-DD)' });
    const r = parseObject(body) ?? {};
    const text = (name: string): string => {
      const value = r[name];
      if (typeof value !== 'string') throw new Error(`${name} must be a string`);
      return value;
    };
    switch (url.pathname) {
      case '/sim/code':
        return json(200, { code: this.newCode(text('payerId')) });
      case '/sim/script':
        this.script(text('code'), Array.isArray(r['steps']) ? (r['steps'] as CodeStep[]) : []);
        return json(200, {});
      case '/sim/balance':
        this.setBalance(text('payerId'), typeof r['balanceFen'] === 'number' ? r['balanceFen'] : -1);
        return json(200, {});
      case '/sim/pay':
        return json(200, {
          deliveries: await this.payOrder(text('outTradeNo'), { notify: (r['notify'] as NotifyOptions | false | undefined) ?? {} }),
        });
      case '/sim/notify':
        return json(200, { deliveries: await this.notify(text('outTradeNo'), r) });
      case '/sim/expire':
        this.expireOrder(text('outTradeNo'));
        return json(200, {});
      case '/sim/bill-line':
        this.addBillLine(injectedLine(r));
        return json(200, {});
      case '/sim/alter-bill-line':
        return json(200, { changed: this.alterBillLine(text('outTradeNo'), typeof r['amountFen'] === 'number' ? r['amountFen'] : -1) });
      default:
        return json(404, { error: 'unknown /sim/ route' });
    }
  }

  // ---- state ---------------------------------------------------------------------------------

  private payer(payerId: string): Payer {
    let payer = this.payers.get(payerId);
    if (payer === undefined) {
      payer = { balanceFen: DEFAULT_BALANCE_FEN, frozen: false };
      if (this.payers.size < MAX_CODES) this.payers.set(payerId, payer);
    }
    return payer;
  }

  private mustOrder(outTradeNo: string): Order {
    const order = this.orders.get(outTradeNo);
    if (order === undefined) throw new Error(`no order ${outTradeNo}`);
    return order;
  }

  private newOrder(
    init: Pick<Order, 'outTradeNo' | 'tradeType' | 'amountFen' | 'body' | 'deviceInfo' | 'fingerprint' | 'payerId' | 'state'>,
  ): Order {
    const order: Order = {
      ...init,
      transactionId: `42000${digits(23)}`,
      createdAtMs: this.now(),
      stateDesc: '',
      failure: undefined,
      steps: [],
      paidAtMs: undefined,
      expiresAtMs: undefined,
      notifyUrl: undefined,
      codeUrl: undefined,
      prepayId: undefined,
      refunds: [],
      reverseSteps: [],
    };
    this.orders.set(order.outTradeNo, order);
    return order;
  }

  private markPaid(order: Order, payerId: string): void {
    order.payerId = payerId;
    order.state = 'SUCCESS';
    order.stateDesc = '支付成功';
    order.paidAtMs = this.now();
    this.billLines.push(this.billLine(order, 'payment', order.amountFen, {}));
  }

  private expireIfDue(order: Order): void {
    if (order.state === 'NOTPAY' && order.expiresAtMs !== undefined && this.now() >= order.expiresAtMs) {
      order.state = 'CLOSED';
      order.stateDesc = '订单已关闭';
    }
  }

  private billLine(
    order: Order,
    kind: 'payment' | 'refund',
    amountFen: number,
    refund: { outRefundNo?: string; refundId?: string },
  ): BillLine {
    return {
      atMs: this.now(),
      appId: this.keys.appId,
      mchId: this.keys.mchId,
      deviceInfo: order.deviceInfo,
      transactionId: order.transactionId,
      outTradeNo: order.outTradeNo,
      openid: order.payerId ?? '',
      tradeType: order.tradeType,
      kind,
      amountFen,
      body: order.body,
      ...refund,
    };
  }
}

/** The body of POST /sim/bill-line as an InjectedBillLine (wrong types are refused by addBillLine's checks). */
function injectedLine(r: Record<string, unknown>): InjectedBillLine {
  const str = (name: string): string | undefined => (typeof r[name] === 'string' ? r[name] : undefined);
  return {
    outTradeNo: str('outTradeNo') ?? '',
    amountFen: typeof r['amountFen'] === 'number' ? r['amountFen'] : -1,
    ...(r['kind'] === 'refund' ? { kind: 'refund' as const } : {}),
    ...(typeof r['atMs'] === 'number' ? { atMs: r['atMs'] } : {}),
    ...(str('channelTxnId') === undefined ? {} : { channelTxnId: str('channelTxnId') }),
  };
}

function refunded(order: Order): number {
  return order.refunds.reduce((sum, r) => sum + r.refundFen, 0);
}

/** The same id for every delivery of one order's notification (WeChat Pay resends the same one). */
function notificationId(order: Order): string {
  return `EV-${order.transactionId}`;
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        reject(new Error('request too large'));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
