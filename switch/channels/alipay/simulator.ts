// A stand-in for the Alipay OpenAPI gateway, for development (`npm start`, once wired) and tests: a
// loopback HTTP server (node:http) that speaks the real shapes the adapter (adapter.ts) speaks.
//
//   POST /gateway.do   common parameters in the query or the form body, biz_content in the form body.
//                      Checks app_id, sign_type RSA2, the RSA2 signature with the app public key it was
//                      given (40002 isv.invalid-signature, as Alipay answers), the timestamp (Beijing time,
//                      within 15 minutes). Answers {"<method>_response":{...},"sign":"..."} signed with
//                      its own Alipay key, generated at start (TEST keys). Methods:
//                        alipay.system.oauth.token (grant_type authorization_code),
//                        alipay.trade.pay (scene bar_code), alipay.trade.query, alipay.trade.cancel,
//                        alipay.trade.refund, alipay.trade.fastpay.refund.query, alipay.trade.precreate,
//                        alipay.trade.close, alipay.data.dataservice.bill.downloadurl.query
//                      A precreated order is a trade here from its precreate on (query answers WAIT_BUYER_PAY,
//                      close closes it); real Alipay makes the trade only when the QR is scanned and answers
//                      ACQ.TRADE_NOT_EXIST before (the adapter's 'not_found', as for an order never made):
//                      setTradeOnScan(true) (or the option tradeOnScan) makes it so here too.
//                      precreate's qr_code_timeout_express (1m-15d, or 1c: until midnight) is the QR's own
//                      expiry, counted from the precreate: a QR nobody scanned by then cannot be scanned or
//                      paid any more (scanOrder / payOrder refuse it, as Alipay's app does); time_expire
//                      (absolute) closes the order, scanned or not.
//   GET  /sim/bill/download?token=...   the zipped GBK statement (the link lives 30 s, like Alipay's)
//   GET  /oauth2/publicAppAuthorize.htm the authorisation page (openauth.alipay.com's): see newAuthCode
//
// Control (TypeScript methods, and the same as loopback HTTP routes with JSON bodies):
//   newPayer({balanceFen})            POST /sim/payer {"balanceFen":100}          -> {"payerId":"2088..."}
//   newCode(payerId?)                 POST /sim/code {"payerId":"2088..."}        -> {"authCode":"28..."}
//   newAuthCode(payerId)              POST /sim/auth-code {"payerId":"2088..."}   -> {"authCode":"..."} what the
//                                     authorisation redirect carries (alipay.system.oauth.token answers it once);
//                                     GET /oauth2/publicAppAuthorize.htm?...&sim_payer=2088... redirects with one
//   script(authCode, steps)           POST /sim/script {"authCode","steps":[...]}  what that code's payment does
//   scriptCancel(outTradeNo, steps)   POST /sim/cancel-script {"outTradeNo","steps":["retry",...]}
//   failNext(method, mode, count)     POST /sim/fail {"method","mode","count"}     system_error | http_error | hang | tampered
//   scanOrder(outTradeNo)             POST /sim/scan {"outTradeNo"}               a payer scans a recharge QR: its trade exists
//                                                                                 from now on (refused once the QR expired)
//   payOrder(outTradeNo, payerId?)    POST /sim/pay {"outTradeNo","payerId"}      a payer pays a recharge QR (scanning it first
//                                                                                 if nobody did) or a waiting trade
//   expireOrder(outTradeNo)           POST /sim/expire {"outTradeNo"}             the order closes (as at time_expire)
//   planNotify(outTradeNo, plan)      POST /sim/plan-notify {...}                 how the paid notification will go
//   campusRecharge(payment, notifyUrl)                                             a payer recharges a campus card in 校园派:
//                                                                                 a paid trade of Alipay's own out_trade_no, notified
//                                                                                 with the school, name and number the payer typed
//   notify(outTradeNo, plan)          POST /sim/notify {...}                      send notifications now
//   drainNotifications()                                                          resolves once those under way are delivered
//   bill(date)                        GET  /sim/bill?date=YYYY-MM-DD              publish that day's statement now
//                                                                                 (else a day's is ready once it ended)
//   addBillLine(line)                 POST /sim/bill-line {"outTradeNo","amountFen","kind"?,"atMs"?}
//                                                        a statement line no trade made (or a trade's twice)
//   alterBillLine(outTradeNo, fen)    POST /sim/alter-bill-line {"outTradeNo","amountFen"}
//                                                        the statement shows another amount for that payment
// Payment codes: 18 digits starting 28, valid 60 s, single use, like the real ones. A code that was never
// minted but has a script pays for a payer made on the spot. Everything is in memory and bounded.
import { createHash, createSign, createVerify, generateKeyPairSync, randomBytes, randomInt, type KeyObject } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { closeLoopback, listenOnLoopback } from '../../loopback.js';
import { zipSync } from 'fflate';
import iconv from 'iconv-lite';
import type { AlipayConfig } from './config.js';
import { parseRsaKey } from './config.js';
import { beijingDate, beijingTime, fenToYuan, isDate, parseBeijingTime, yuanToFen } from './format.js';
import { signOffLoop } from './sign.js';

/** What a payment with that code does, step by step: the first step answers trade.pay, the next ones each query. */
export type PayStep =
  | 'paid'
  | 'paying'
  | 'gave_up'
  | 'insufficient'
  | 'code_invalid'
  | 'refused'
  | 'system_error'
  /** 20000 is answered, but the money moved. */
  | 'unknown_paid'
  /** No answer at all (the caller times out), but the money moved. */
  | 'hang_paid'
  | 'http_error';
export const PAY_STEPS: readonly PayStep[] = [
  'paid',
  'paying',
  'gave_up',
  'insufficient',
  'code_invalid',
  'refused',
  'system_error',
  'unknown_paid',
  'hang_paid',
  'http_error',
];
export type CancelStep = 'retry' | 'too_late';
export type FailureMode = 'system_error' | 'http_error' | 'hang' | 'tampered';
const FAILURE_MODES: readonly FailureMode[] = ['system_error', 'http_error', 'hang', 'tampered'];
export type TradeStatus = 'WAIT_BUYER_PAY' | 'TRADE_SUCCESS' | 'TRADE_CLOSED' | 'TRADE_FINISHED';

export interface NotifyPlan {
  /** How many times the notification is sent (0: never). Default 1. */
  readonly times?: number;
  /** Wait before each sending. Default 0. */
  readonly delayMs?: number;
  /** signature: signed with another key; amount: total_amount raised by 1.00 after signing. */
  readonly forged?: 'signature' | 'amount';
  /** Send this trade_status instead of the order's (an old or out-of-order notification). */
  readonly status?: TradeStatus;
}

/** A line put on the statement by a test (addBillLine): not made by any trade of the simulator. */
export interface InjectedBillLine {
  readonly outTradeNo: string;
  readonly amountFen: number;
  /** Default payment (交易). */
  readonly kind?: 'payment' | 'refund';
  /** Default now. */
  readonly atMs?: number;
  /** Default: the trade's trade_no, or a new one. */
  readonly channelTxnId?: string | undefined;
  readonly outRefundNo?: string;
}

export interface NotifyDelivery {
  /** 0: the notify URL could not be reached. */
  readonly httpStatus: number;
  readonly reply: string;
  readonly body: string;
}

/**
 * What a payer types in Alipay 校园派 (search 校园派, 充校园卡, the school, 姓名, 学号或教工号, the amount). The notification
 * carries them as signed fields school_name, user_name and user_no (modelled: the school's agreement with Alipay
 * defines the real names).
 */
export interface CampusPayment {
  readonly school: string;
  readonly name: string;
  readonly personNumber: string;
  readonly amountFen: number;
  readonly payerId?: string;
}

export interface AlipaySimulatorOptions {
  readonly appId?: string;
  readonly sellerId?: string;
  /** The merchant app's public key (as uploaded to the platform); absent: a test app key pair is made. */
  readonly appPublicKeyPem?: string;
  /** Delay before each gateway answer. Default 3 ms. */
  readonly latencyMs?: number;
  readonly now?: () => number;
  /** A paid trade may be cancelled (money back) this long after payment. Default 24 h. */
  readonly cancelWindowMs?: number;
  /** As real Alipay: a precreated order has no trade (query, close: ACQ.TRADE_NOT_EXIST) until its QR is scanned. Default false. */
  readonly tradeOnScan?: boolean;
}

interface Payer {
  readonly id: string;
  readonly logonId: string;
  balanceFen: number;
}

interface Trade {
  readonly outTradeNo: string;
  readonly tradeNo: string;
  readonly kind: 'code' | 'qr';
  readonly authCode: string;
  readonly amountFen: number;
  readonly subject: string;
  readonly terminalId: string;
  readonly createdMs: number;
  status: TradeStatus;
  payerId: string | undefined;
  paidMs: number | undefined;
  expiresMs: number | undefined;
  /** A precreated QR: it cannot be scanned from then on (qr_code_timeout_express after the precreate). */
  qrExpiresMs: number | undefined;
  /** A precreated QR: when a payer scanned it (the trade exists from then on at real Alipay). */
  scannedMs: number | undefined;
  notifyUrl: string;
  qrCode: string;
  script: PayStep[];
  refundedFen: number;
  readonly refunds: Map<string, { readonly amountFen: number; readonly atMs: number }>;
  cancelAction: string;
  cancelRefundMs: number | undefined;
  notifyPlan: NotifyPlan | undefined;
}

type Biz = Readonly<Record<string, unknown>>;
type Reply =
  { readonly kind: 'answer'; readonly fields: Record<string, unknown> } | { readonly kind: 'hang' } | { readonly kind: 'http_error' };

const MAX_TRADES = 100_000;
const MAX_CODES = 100_000;
const MAX_PAYERS = 100_000;
/** Methods counted by callCount: the gateway has a dozen; anything past this is a caller inventing names. */
const MAX_COUNTED_METHODS = 64;
const MAX_BODY_BYTES = 64 * 1024;
const MAX_SCRIPT_STEPS = 100;
const CODE_VALID_MS = 60_000;
/** An authorisation's auth_code (Alipay: valid a short while, single use). */
const AUTH_CODE_VALID_MS = 5 * 60_000;
const BILL_LINK_VALID_MS = 30_000;
const TIMESTAMP_SKEW_MS = 15 * 60_000;
const DEFAULT_BALANCE_FEN = 1_000_000;
const DEFAULT_ORDER_EXPIRY_MS = 2 * 3600_000;

export class AlipaySimulator {
  readonly appId: string;
  readonly sellerId: string;
  /** The Alipay public key to configure the adapter with (ALIPAY_PUBLIC_KEY). */
  readonly alipayPublicKeyPem: string;
  /** Only when no app key was given: the test app's private key (ALIPAY_APP_PRIVATE_KEY). */
  readonly appPrivateKeyPem: string | undefined;
  private readonly alipayPrivateKey: KeyObject;
  private readonly appPublicKey: KeyObject;
  private latencyMs: number;
  private tradeOnScan: boolean;
  private readonly now: () => number;
  private readonly cancelWindowMs: number;
  private readonly methodCalls = new Map<string, number>();
  private readonly payers = new Map<string, Payer>();
  private readonly codes = new Map<string, { readonly payerId: string; readonly issuedMs: number; used: boolean }>();
  private readonly scripts = new Map<string, PayStep[]>();
  private readonly authCodes = new Map<string, { readonly payerId: string; readonly issuedMs: number; used: boolean }>();
  private readonly cancelScripts = new Map<string, CancelStep[]>();
  private readonly failures = new Map<string, FailureMode[]>();
  private readonly trades = new Map<string, Trade>();
  /** out_trade_no cancelled before any trade existed: a later pay with it is refused (closed). */
  private readonly closedIds = new Set<string>();
  private readonly publishedBills = new Set<string>();
  /** Lines a test put on the statement (addBillLine) and amounts it changed (alterBillLine). */
  private readonly injectedBillLines: (InjectedBillLine & { readonly atMs: number })[] = [];
  private readonly billAmounts = new Map<string, number>();
  private readonly billLinks = new Map<string, { readonly date: string; readonly expiresMs: number }>();
  private readonly deliveries = new Map<string, NotifyDelivery[]>();
  /** 校园派 trades: the fields their notifications carry besides trade_status_sync's own. */
  private readonly campusFields = new Map<string, Readonly<Record<string, string>>>();
  private readonly pendingNotifications = new Set<Promise<unknown>>();
  private server: Server | undefined;
  private baseUrlValue = '';
  private tradeSeq = 0;

  constructor(options: AlipaySimulatorOptions = {}) {
    this.appId = options.appId ?? '2021000000000001';
    this.sellerId = options.sellerId ?? '2088000000000001';
    this.latencyMs = options.latencyMs ?? 3;
    this.tradeOnScan = options.tradeOnScan ?? false;
    this.now = options.now ?? Date.now;
    this.cancelWindowMs = options.cancelWindowMs ?? 24 * 3600_000;
    const alipayKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.alipayPrivateKey = alipayKeys.privateKey;
    this.alipayPublicKeyPem = alipayKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    if (options.appPublicKeyPem === undefined) {
      const appKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
      this.appPublicKey = appKeys.publicKey;
      this.appPrivateKeyPem = appKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    } else {
      this.appPublicKey = parseRsaKey(options.appPublicKeyPem, 'public');
      this.appPrivateKeyPem = undefined;
    }
  }

  /** Listens on 127.0.0.1 (port 0: a free one); answers the base URL. */
  /** Every answer from now on waits this long (the bench compares code payments that wait with ones answered at once). */
  setLatencyMs(latencyMs: number): void {
    if (!Number.isSafeInteger(latencyMs) || latencyMs < 0 || latencyMs > 60_000) throw new RangeError('latencyMs must be 0-60000');
    this.latencyMs = latencyMs;
  }

  /** On: a precreated order has no trade until its QR is scanned (query, close: ACQ.TRADE_NOT_EXIST), as at real Alipay. */
  setTradeOnScan(on: boolean): void {
    this.tradeOnScan = on;
  }

  async start(port = 0): Promise<string> {
    const { server, url } = await listenOnLoopback((req, res) => void this.handle(req, res), port);
    this.server = server;
    this.baseUrlValue = url;
    return url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    await closeLoopback(server);
    await Promise.allSettled([...this.pendingNotifications]);
  }

  /** Resolves once every notification under way (a payment's, an expiry's, a close's) has been delivered or given up. */
  async drainNotifications(): Promise<void> {
    await Promise.allSettled([...this.pendingNotifications]);
  }

  get baseUrl(): string {
    return this.baseUrlValue;
  }

  get gatewayUrl(): string {
    return `${this.baseUrlValue}/gateway.do`;
  }

  /** The adapter's configuration for this simulator (needs appPrivateKeyPem, or pass the app's own key). */
  adapterConfig(overrides: Partial<AlipayConfig> = {}): AlipayConfig {
    return {
      gatewayUrl: this.gatewayUrl,
      appId: this.appId,
      appPrivateKeyPem: this.appPrivateKeyPem ?? '',
      alipayPublicKeyPem: this.alipayPublicKeyPem,
      notifyUrl: '',
      sellerId: this.sellerId,
      timeoutMs: 5000,
      ...overrides,
    };
  }

  // ---- control -------------------------------------------------------------------------------------

  newPayer(options: { readonly balanceFen?: number } = {}): string {
    const balanceFen = options.balanceFen ?? DEFAULT_BALANCE_FEN;
    if (!Number.isSafeInteger(balanceFen) || balanceFen < 0) throw new RangeError('balanceFen must be a whole number of fen, 0 or more');
    const id = `2088${digits(12)}`;
    bounded(this.payers, MAX_PAYERS);
    this.payers.set(id, { id, logonId: `${id.slice(4, 7)}***@campus.test`, balanceFen });
    return id;
  }

  balanceOf(payerId: string): number {
    const payer = this.payers.get(payerId);
    if (payer === undefined) throw new Error(`no simulated payer ${payerId}`);
    return payer.balanceFen;
  }

  /** A payment code for a payer (a new one with 10,000 yuan when none is named), valid 60 s, single use. */
  newCode(payerId?: string): string {
    const id = payerId ?? this.newPayer();
    if (!this.payers.has(id)) throw new Error(`no simulated payer ${id}`);
    const code = `28${digits(16)}`;
    bounded(this.codes, MAX_CODES);
    this.codes.set(code, { payerId: id, issuedMs: this.now(), used: false });
    return code;
  }

  /**
   * The auth_code Alipay gives the app's redirect_uri after `payerId` confirmed the authorisation
   * (scope auth_base); alipay.system.oauth.token turns it into the user id once, within 5 minutes.
   */
  newAuthCode(payerId: string): string {
    if (!this.payers.has(payerId)) throw new Error(`no simulated payer ${payerId}`);
    const code = randomBytes(16).toString('hex');
    bounded(this.authCodes, MAX_CODES);
    this.authCodes.set(code, { payerId, issuedMs: this.now(), used: false });
    return code;
  }

  script(authCode: string, steps: readonly PayStep[]): void {
    if (steps.length === 0 || steps.length > MAX_SCRIPT_STEPS || steps.some((s) => !PAY_STEPS.includes(s))) {
      throw new RangeError(`steps: 1 to ${MAX_SCRIPT_STEPS} of ${PAY_STEPS.join(', ')}`);
    }
    bounded(this.scripts, MAX_CODES);
    this.scripts.set(authCode, [...steps]);
  }

  scriptCancel(outTradeNo: string, steps: readonly CancelStep[]): void {
    if (steps.length > MAX_SCRIPT_STEPS || steps.some((s) => s !== 'retry' && s !== 'too_late'))
      throw new RangeError('steps: retry, too_late');
    bounded(this.cancelScripts, MAX_TRADES);
    this.cancelScripts.set(outTradeNo, [...steps]);
  }

  /** The next `count` calls of `method` fail this way before it does anything. */
  failNext(method: string, mode: FailureMode, count = 1): void {
    if (!Number.isSafeInteger(count) || count < 1 || count > MAX_SCRIPT_STEPS) throw new RangeError(`count: 1 to ${MAX_SCRIPT_STEPS}`);
    if (!FAILURE_MODES.includes(mode)) throw new RangeError(`mode: one of ${FAILURE_MODES.join(', ')}`);
    this.failures.set(method, [...(this.failures.get(method) ?? []), ...Array<FailureMode>(count).fill(mode)]);
  }

  /**
   * A payer scans a recharge QR: at real Alipay its trade exists from now on. Refused, as Alipay's app does,
   * once the QR expired (qr_code_timeout_express) or the order is closed; scanning it again changes nothing.
   */
  scanOrder(outTradeNo: string): void {
    const trade = this.trades.get(outTradeNo);
    if (trade === undefined) throw new Error(`no simulated order ${outTradeNo}`);
    if (trade.kind !== 'qr' || trade.scannedMs !== undefined) return;
    if (trade.qrExpiresMs !== undefined && this.now() >= trade.qrExpiresMs) {
      throw new Error(
        `the QR code of order ${outTradeNo} expired at ${beijingTime(trade.qrExpiresMs)} (qr_code_timeout_express): 二维码已失效`,
      );
    }
    this.expireIfDue(trade);
    if (trade.status !== 'WAIT_BUYER_PAY') throw new Error(`order ${outTradeNo} is ${trade.status}, not waiting`);
    trade.scannedMs = this.now();
  }

  /** A payer pays a waiting order (a recharge QR, scanned first if nobody did, or a code payment still waiting); answers trade_no. */
  payOrder(outTradeNo: string, payerId?: string): { readonly tradeNo: string; readonly notified: Promise<NotifyDelivery[]> } {
    const trade = this.trades.get(outTradeNo);
    if (trade === undefined) throw new Error(`no simulated order ${outTradeNo}`);
    this.scanOrder(outTradeNo);
    this.expireIfDue(trade);
    if (trade.status !== 'WAIT_BUYER_PAY') throw new Error(`order ${outTradeNo} is ${trade.status}, not waiting`);
    const payer = this.payers.get(payerId ?? trade.payerId ?? this.newPayer());
    if (payer === undefined) throw new Error(`no simulated payer ${payerId}`);
    if (payer.balanceFen < trade.amountFen) throw new Error(`payer ${payer.id} has ${payer.balanceFen} fen, not ${trade.amountFen}`);
    this.markPaid(trade, payer);
    return { tradeNo: trade.tradeNo, notified: this.autoNotify(trade) };
  }

  /** A 校园派 recharge: Alipay makes and the payer pays the trade at once; its notification goes to `notifyUrl`. */
  campusRecharge(
    payment: CampusPayment,
    notifyUrl: string,
    plan: NotifyPlan = {},
  ): { readonly outTradeNo: string; readonly tradeNo: string; readonly notified: Promise<NotifyDelivery[]> } {
    if (!Number.isSafeInteger(payment.amountFen) || payment.amountFen <= 0)
      throw new RangeError('amountFen: a positive whole number of fen');
    const outTradeNo = `XYP${beijingDate(this.now()).replaceAll('-', '')}${digits(12)}`;
    const trade = this.newTrade({
      outTradeNo,
      kind: 'qr',
      authCode: '',
      amountFen: payment.amountFen,
      subject: '校园卡充值',
      terminalId: '',
    });
    const payer = this.payers.get(payment.payerId ?? this.newPayer({ balanceFen: payment.amountFen }));
    if (payer === undefined) throw new Error(`no simulated payer ${payment.payerId}`);
    if (payer.balanceFen < trade.amountFen) throw new Error(`payer ${payer.id} has ${payer.balanceFen} fen, not ${trade.amountFen}`);
    trade.scannedMs = this.now();
    this.markPaid(trade, payer);
    trade.notifyUrl = notifyUrl;
    trade.notifyPlan = checkPlan(plan);
    bounded(this.campusFields, MAX_TRADES);
    this.campusFields.set(outTradeNo, { school_name: payment.school, user_name: payment.name, user_no: payment.personNumber });
    return { outTradeNo, tradeNo: trade.tradeNo, notified: this.autoNotify(trade) };
  }

  /** The order closes now (as at its time_expire); a notification of TRADE_CLOSED follows when it has a notify_url. */
  expireOrder(outTradeNo: string): Promise<NotifyDelivery[]> {
    const trade = this.trades.get(outTradeNo);
    if (trade === undefined) throw new Error(`no simulated order ${outTradeNo}`);
    if (trade.status !== 'WAIT_BUYER_PAY') throw new Error(`order ${outTradeNo} is ${trade.status}, not waiting`);
    trade.status = 'TRADE_CLOSED';
    return this.autoNotify(trade);
  }

  /** How the notification of this order's payment will be sent (times 0: never). */
  planNotify(outTradeNo: string, plan: NotifyPlan): void {
    const trade = this.trades.get(outTradeNo);
    if (trade === undefined) throw new Error(`no simulated order ${outTradeNo}`);
    trade.notifyPlan = checkPlan(plan);
  }

  /** Sends notifications of the order now, as the plan says; resolves with what the receiver answered. */
  notify(outTradeNo: string, plan: NotifyPlan = {}): Promise<NotifyDelivery[]> {
    const trade = this.trades.get(outTradeNo);
    if (trade === undefined) throw new Error(`no simulated order ${outTradeNo}`);
    if (trade.notifyUrl === '') throw new Error(`order ${outTradeNo} has no notify_url`);
    return this.track(this.deliver(trade, checkPlan(plan)));
  }

  /** Every notification of the order sent so far, in order. */
  notificationsOf(outTradeNo: string): readonly NotifyDelivery[] {
    return this.deliveries.get(outTradeNo) ?? [];
  }

  /**
   * Puts a line on the statement that no trade of the simulator made (reconciliation tests): a payment
   * the switch never recorded, or, with the out_trade_no of a paid trade, the same payment twice.
   */
  addBillLine(line: InjectedBillLine): void {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(line.outTradeNo)) throw new RangeError('outTradeNo must be 1-64 of A-Z a-z 0-9 _ -');
    if (!Number.isSafeInteger(line.amountFen) || line.amountFen <= 0) throw new RangeError('amountFen must be a whole number of fen > 0');
    if (this.injectedBillLines.length >= MAX_TRADES) throw new Error(`the simulator holds ${MAX_TRADES} injected statement lines`);
    this.injectedBillLines.push({ ...line, atMs: line.atMs ?? this.now() });
  }

  /** The statement shows `amountFen` for the payment of `outTradeNo` (a paid trade of the simulator). */
  alterBillLine(outTradeNo: string, amountFen: number): void {
    if (!Number.isSafeInteger(amountFen) || amountFen <= 0) throw new RangeError('amountFen must be a whole number of fen > 0');
    const trade = this.trades.get(outTradeNo);
    if (trade?.paidMs === undefined) throw new Error(`no paid trade ${outTradeNo} on any statement`);
    bounded(this.billAmounts, MAX_TRADES);
    this.billAmounts.set(outTradeNo, amountFen);
  }

  /** Publishes the statement of `date` now (before the day ended) and answers its detail CSV as text. */
  bill(date: string): string {
    if (!isDate(date)) throw new RangeError('date must be YYYY-MM-DD');
    this.publishedBills.add(date);
    return this.billDetail(date);
  }

  // ---- HTTP ----------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const body = await readBody(req);
      if (body === undefined) return send(res, 413, 'text/plain', 'body too large');
      if (url.pathname === '/gateway.do' && req.method === 'POST') return await this.gateway(url, body, res);
      if (url.pathname.startsWith('/sim/')) return await this.control(req.method ?? 'GET', url, body, res);
      if (url.pathname === '/oauth2/publicAppAuthorize.htm' && req.method === 'GET') return this.authorizePage(url, res);
      send(res, 404, 'text/plain', 'not found');
    } catch (error) {
      send(res, 400, 'application/json', JSON.stringify({ error: error instanceof Error ? error.message : String(error) }));
    }
  }

  private async control(method: string, url: URL, body: string, res: ServerResponse): Promise<void> {
    if (method === 'GET' && url.pathname === '/sim/bill') {
      return send(res, 200, 'text/csv; charset=utf-8', this.bill(url.searchParams.get('date') ?? ''));
    }
    if (method === 'GET' && url.pathname === '/sim/bill/download') return this.billDownload(url, res);
    if (method !== 'POST') return send(res, 405, 'text/plain', 'method not allowed');
    const input = JSON.parse(body === '' ? '{}' : body) as Record<string, unknown>;
    const str = (name: string): string => (typeof input[name] === 'string' ? input[name] : '');
    const optional = (name: string): string | undefined => (str(name) === '' ? undefined : str(name));
    const json = (value: unknown): void => send(res, 200, 'application/json', JSON.stringify(value));
    switch (url.pathname) {
      case '/sim/payer':
        return json({ payerId: this.newPayer({ balanceFen: typeof input.balanceFen === 'number' ? input.balanceFen : undefined }) });
      case '/sim/code':
        return json({ authCode: this.newCode(optional('payerId')) });
      case '/sim/auth-code':
        return json({ authCode: this.newAuthCode(str('payerId')) });
      case '/sim/script':
        this.script(str('authCode'), input.steps as PayStep[]);
        return json({});
      case '/sim/cancel-script':
        this.scriptCancel(str('outTradeNo'), input.steps as CancelStep[]);
        return json({});
      case '/sim/fail':
        this.failNext(str('method'), str('mode') as FailureMode, typeof input.count === 'number' ? input.count : 1);
        return json({});
      case '/sim/scan':
        this.scanOrder(str('outTradeNo'));
        return json({});
      case '/sim/pay':
        return json({ tradeNo: this.payOrder(str('outTradeNo'), optional('payerId')).tradeNo });
      case '/sim/expire':
        void this.expireOrder(str('outTradeNo'));
        return json({});
      case '/sim/plan-notify':
        this.planNotify(str('outTradeNo'), input);
        return json({});
      case '/sim/notify':
        return json({ deliveries: await this.notify(str('outTradeNo'), input) });
      case '/sim/bill-line':
        this.addBillLine({
          outTradeNo: str('outTradeNo'),
          amountFen: typeof input.amountFen === 'number' ? input.amountFen : -1,
          ...(input.kind === 'refund' ? { kind: 'refund' as const } : {}),
          ...(typeof input.atMs === 'number' ? { atMs: input.atMs } : {}),
          channelTxnId: optional('channelTxnId'),
        });
        return json({});
      case '/sim/alter-bill-line':
        this.alterBillLine(str('outTradeNo'), typeof input.amountFen === 'number' ? input.amountFen : -1);
        return json({});
      default:
        return send(res, 404, 'text/plain', 'no such control route');
    }
  }

  private async gateway(url: URL, body: string, res: ServerResponse): Promise<void> {
    const params = new Map<string, string>();
    for (const [key, value] of url.searchParams) params.set(key, value);
    for (const [key, value] of new URLSearchParams(body)) params.set(key, value);
    const method = params.get('method') ?? '';
    const reply = this.refusal(params) ?? this.dispatch(method, params);
    if (this.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.latencyMs));
    if (reply.kind === 'hang') return; // the socket stays open until the client gives up or stop()
    if (reply.kind === 'http_error') return send(res, 502, 'text/html', '<html><body>502 Bad Gateway</body></html>');
    const key = method === '' ? 'error_response' : `${method.replaceAll('.', '_')}_response`;
    const inner = JSON.stringify(reply.fields);
    // Off the event loop, as the adapter's: the simulators share the bench's process with its generator.
    const signature = await signOffLoop(inner, this.alipayPrivateKey);
    let text = `{"${key}":${inner},"sign":"${signature}"}`;
    if (this.takeFailure(method, 'tampered')) text = text.replace(/"msg":"/, '"msg":"~');
    send(res, 200, 'application/json;charset=utf-8', text);
  }

  /** Why the request is refused before its method runs (as Alipay's gateway answers), or undefined. */
  private refusal(params: ReadonlyMap<string, string>): Reply | undefined {
    const fail = (code: string, subCode: string, subMsg: string): Reply => ({
      kind: 'answer',
      fields: { code, msg: code === '40001' ? 'Missing Required Arguments' : 'Invalid Arguments', sub_code: subCode, sub_msg: subMsg },
    });
    for (const name of ['app_id', 'method', 'charset', 'sign_type', 'sign', 'timestamp', 'version']) {
      if ((params.get(name) ?? '') === '') return fail('40001', `isv.missing-${name.replace('_', '-')}`, `缺少${name}参数`);
    }
    if (params.get('app_id') !== this.appId) return fail('40002', 'isv.invalid-app-id', '无效的AppID参数');
    if (params.get('sign_type') !== 'RSA2') return fail('40002', 'isv.invalid-signature-type', '无效的签名类型');
    if (params.get('charset')?.toLowerCase() !== 'utf-8') return fail('40002', 'isv.invalid-charset', '字符集错误');
    const content = [...params.keys()]
      .filter((key) => key !== 'sign' && params.get(key) !== '')
      .sort()
      .map((key) => `${key}=${params.get(key)}`)
      .join('&');
    const verified = createVerify('RSA-SHA256')
      .update(content, 'utf8')
      .verify(this.appPublicKey, params.get('sign') ?? '', 'base64');
    if (!verified) return fail('40002', 'isv.invalid-signature', '验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配');
    const sentMs = parseBeijingTime(params.get('timestamp') ?? '');
    if (sentMs === undefined || Math.abs(sentMs - this.now()) > TIMESTAMP_SKEW_MS) {
      return fail('40002', 'isv.invalid-timestamp', '非法的时间戳参数');
    }
    return undefined;
  }

  /** How many signed requests of `method` reached the gateway (e.g. 'alipay.trade.query'), failures included. */
  callCount(method: string): number {
    return this.methodCalls.get(method) ?? 0;
  }

  private dispatch(method: string, params: ReadonlyMap<string, string>): Reply {
    if (this.methodCalls.has(method) || this.methodCalls.size < MAX_COUNTED_METHODS)
      this.methodCalls.set(method, (this.methodCalls.get(method) ?? 0) + 1);
    // The one method here without biz_content: grant_type and code are common parameters.
    if (method === 'alipay.system.oauth.token') {
      const failure = this.takeFailure(method);
      if (failure === 'hang') return { kind: 'hang' };
      if (failure === 'http_error') return { kind: 'http_error' };
      if (failure === 'system_error') return answer('20000', 'isp.unknow-error', '系统繁忙', {}, 'Service Currently Unavailable');
      return this.oauthToken(params);
    }
    let biz: Biz;
    try {
      const parsed: unknown = JSON.parse(params.get('biz_content') ?? '');
      if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object');
      biz = parsed as Biz;
    } catch {
      return answer('40002', 'isv.invalid-parameter', 'biz_content 不是合法的JSON');
    }
    const failure = this.takeFailure(method);
    if (failure === 'hang') return { kind: 'hang' };
    if (failure === 'http_error') return { kind: 'http_error' };
    if (failure === 'system_error') return answer('20000', 'ACQ.SYSTEM_ERROR', '系统异常，请稍后再试', {}, 'Service Currently Unavailable');
    switch (method) {
      case 'alipay.trade.pay':
        return this.pay(biz);
      case 'alipay.trade.query':
        return this.query(biz);
      case 'alipay.trade.cancel':
        return this.cancel(biz);
      case 'alipay.trade.refund':
        return this.refund(biz);
      case 'alipay.trade.fastpay.refund.query':
        return this.refundQuery(biz);
      case 'alipay.trade.precreate':
        return this.precreate(biz, params.get('notify_url') ?? '');
      case 'alipay.trade.close':
        return this.close(biz);
      case 'alipay.data.dataservice.bill.downloadurl.query':
        return this.billUrl(biz);
      default:
        return answer('40002', 'isv.invalid-method', '不存在的方法名');
    }
  }

  private takeFailure(method: string, only?: FailureMode): FailureMode | undefined {
    const queue = this.failures.get(method);
    if (queue === undefined || queue.length === 0) return undefined;
    if (only === undefined ? queue[0] === 'tampered' : queue[0] !== only) return undefined;
    return queue.shift();
  }

  // ---- the payer's authorisation (binding) ---------------------------------------------------------

  /** alipay.system.oauth.token, grant_type authorization_code: an auth_code (single use, 5 minutes) -> user_id. */
  private oauthToken(params: ReadonlyMap<string, string>): Reply {
    const invalid = (): Reply => answer('40002', 'isv.code-invalid', '授权码code无效', {}, 'Invalid Arguments');
    if (params.get('grant_type') !== 'authorization_code') {
      return answer('40002', 'isv.grant-type-invalid', '不支持的grant_type', {}, 'Invalid Arguments');
    }
    const grant = this.authCodes.get(params.get('code') ?? '');
    if (grant === undefined || grant.used || this.now() - grant.issuedMs > AUTH_CODE_VALID_MS) return invalid();
    grant.used = true;
    return {
      kind: 'answer',
      fields: {
        user_id: grant.payerId,
        access_token: `authusrB${randomBytes(16).toString('hex')}`,
        expires_in: 1296000,
        refresh_token: `authusrB${randomBytes(16).toString('hex')}`,
        re_expires_in: 2592000,
        auth_start: beijingTime(this.now()),
      },
    };
  }

  /** The authorisation page (publicAppAuthorize.htm): `sim_payer` confirms at once and is sent back with an auth_code. */
  private authorizePage(url: URL, res: ServerResponse): void {
    const redirect = url.searchParams.get('redirect_uri') ?? '';
    const payerId = url.searchParams.get('sim_payer') ?? '';
    if (url.searchParams.get('app_id') !== this.appId || url.searchParams.get('scope') !== 'auth_base' || !/^https?:\/\//.test(redirect)) {
      return send(res, 400, 'text/plain; charset=utf-8', '参数错误：app_id, scope=auth_base, redirect_uri');
    }
    if (!this.payers.has(payerId)) return send(res, 200, 'text/plain; charset=utf-8', 'simulator: add sim_payer=<a payer id> to confirm');
    const back = new URL(redirect);
    back.searchParams.set('app_id', this.appId);
    back.searchParams.set('source', 'alipay_wallet');
    back.searchParams.set('scope', 'auth_base');
    back.searchParams.set('auth_code', this.newAuthCode(payerId));
    back.searchParams.set('state', url.searchParams.get('state') ?? '');
    res.writeHead(302, { location: back.toString() });
    res.end();
  }

  // ---- the trade methods ---------------------------------------------------------------------------

  private pay(biz: Biz): Reply {
    const outTradeNo = field(biz, 'out_trade_no');
    const authCode = field(biz, 'auth_code');
    const amountFen = yuanToFen(field(biz, 'total_amount'));
    const subject = field(biz, 'subject');
    if (
      outTradeNo === '' ||
      authCode === '' ||
      subject === '' ||
      field(biz, 'scene') !== 'bar_code' ||
      amountFen === undefined ||
      amountFen <= 0
    ) {
      return answer('40004', 'ACQ.INVALID_PARAMETER', '参数无效', { out_trade_no: outTradeNo });
    }
    const existing = this.trades.get(outTradeNo);
    if (existing !== undefined) return this.repeatPay(existing, authCode, amountFen, subject);
    if (this.closedIds.has(outTradeNo)) return answer('40004', 'ACQ.TRADE_HAS_CLOSE', '交易已经关闭', { out_trade_no: outTradeNo });
    const script = this.scripts.get(authCode);
    this.scripts.delete(authCode);
    const code = this.codes.get(authCode);
    let payer: Payer | undefined;
    if (code !== undefined) {
      if (code.used || this.now() - code.issuedMs > CODE_VALID_MS) return invalidCode(outTradeNo);
      code.used = true;
      payer = this.payers.get(code.payerId);
    } else if (script !== undefined) {
      payer = this.payers.get(this.newPayer());
    }
    if (payer === undefined) return invalidCode(outTradeNo);
    const [first, ...rest] = script ?? [payer.balanceFen >= amountFen ? 'paid' : 'insufficient'];
    const trade = (): Trade =>
      this.newTrade({ outTradeNo, kind: 'code', authCode, amountFen, subject, terminalId: field(biz, 'terminal_id') });
    switch (first) {
      case 'paid':
      case 'unknown_paid':
      case 'hang_paid': {
        if (payer.balanceFen < amountFen) return insufficient(outTradeNo);
        const created = trade();
        this.markPaid(created, payer);
        if (first === 'hang_paid') return { kind: 'hang' };
        if (first === 'unknown_paid')
          return answer('20000', 'ACQ.SYSTEM_ERROR', '系统异常，请使用查询接口确认', { out_trade_no: outTradeNo });
        return { kind: 'answer', fields: { code: '10000', msg: 'Success', ...this.tradeFields(created) } };
      }
      case 'paying': {
        const created = trade();
        created.payerId = payer.id;
        created.script = rest;
        return { kind: 'answer', fields: { code: '10003', msg: ' order success pay inprocess', ...this.tradeFields(created) } };
      }
      case 'gave_up':
        trade().status = 'TRADE_CLOSED';
        return answer('40004', 'ACQ.TRADE_HAS_CLOSE', '交易已经关闭', { out_trade_no: outTradeNo });
      case 'insufficient':
        return insufficient(outTradeNo);
      case 'refused':
        return answer('40004', 'ACQ.BUYER_ENABLE_STATUS_FORBID', '买家状态非法，无法继续交易', { out_trade_no: outTradeNo });
      case 'system_error':
        return answer('20000', 'ACQ.SYSTEM_ERROR', '系统异常，请稍后再试', { out_trade_no: outTradeNo }, 'Service Currently Unavailable');
      case 'http_error':
        return { kind: 'http_error' };
      default:
        return invalidCode(outTradeNo);
    }
  }

  /** The same out_trade_no again: the same content answers the trade as it is; other content is refused. */
  private repeatPay(trade: Trade, authCode: string, amountFen: number, subject: string): Reply {
    this.advance(trade);
    const sameOrder = trade.kind === 'code' && trade.amountFen === amountFen && trade.subject === subject;
    const paid = trade.status === 'TRADE_SUCCESS' || trade.status === 'TRADE_FINISHED';
    if (!sameOrder) return answer('40004', 'ACQ.CONTEXT_INCONSISTENT', '交易信息被篡改', { out_trade_no: trade.outTradeNo });
    // The same order with another payer's code: paid already (by someone: query says who), or inconsistent.
    if (trade.authCode !== authCode) {
      if (paid) return answer('40004', 'ACQ.TRADE_HAS_SUCCESS', '交易已被支付', { out_trade_no: trade.outTradeNo });
      return answer('40004', 'ACQ.CONTEXT_INCONSISTENT', '交易信息被篡改', { out_trade_no: trade.outTradeNo });
    }
    if (paid) return { kind: 'answer', fields: { code: '10000', msg: 'Success', ...this.tradeFields(trade) } };
    if (trade.status === 'WAIT_BUYER_PAY')
      return { kind: 'answer', fields: { code: '10003', msg: ' order success pay inprocess', ...this.tradeFields(trade) } };
    return answer('40004', 'ACQ.TRADE_HAS_CLOSE', '交易已经关闭', { out_trade_no: trade.outTradeNo });
  }

  private query(biz: Biz): Reply {
    const trade = this.findTrade(biz);
    if (trade === undefined) return answer('40004', 'ACQ.TRADE_NOT_EXIST', '交易不存在');
    this.advance(trade);
    const fields: Record<string, unknown> = { code: '10000', msg: 'Success', ...this.tradeFields(trade), trade_status: trade.status };
    if (trade.paidMs !== undefined) fields.send_pay_date = beijingTime(trade.paidMs);
    delete fields.gmt_payment;
    return { kind: 'answer', fields };
  }

  private cancel(biz: Biz): Reply {
    const outTradeNo = field(biz, 'out_trade_no');
    if (outTradeNo === '') return answer('40004', 'ACQ.INVALID_PARAMETER', '参数无效');
    const scripted = this.cancelScripts.get(outTradeNo)?.shift();
    if (scripted === 'retry') return answer('40004', 'ACQ.SYSTEM_ERROR', '系统异常', { out_trade_no: outTradeNo, retry_flag: 'Y' });
    if (scripted === 'too_late')
      return answer('40004', 'ACQ.TRADE_CANCEL_TIME_OUT', '超过撤销时间范围', { out_trade_no: outTradeNo, retry_flag: 'N' });
    const trade = this.trades.get(outTradeNo);
    const done = (action: string, tradeNo?: string): Reply => ({
      kind: 'answer',
      fields: {
        code: '10000',
        msg: 'Success',
        out_trade_no: outTradeNo,
        ...(tradeNo ? { trade_no: tradeNo } : {}),
        retry_flag: 'N',
        action,
      },
    });
    if (trade === undefined) {
      // Nothing arrived (yet): the id is closed, so a payment arriving late is refused.
      bounded(this.closedIds, MAX_TRADES);
      this.closedIds.add(outTradeNo);
      return done('close');
    }
    this.advance(trade);
    if (trade.status === 'WAIT_BUYER_PAY') {
      trade.status = 'TRADE_CLOSED';
      trade.cancelAction = 'close';
      return done('close', trade.tradeNo);
    }
    if (trade.status === 'TRADE_CLOSED') return done(trade.cancelAction || 'close', trade.tradeNo);
    const tooLate = trade.status === 'TRADE_FINISHED' || this.now() - (trade.paidMs ?? 0) > this.cancelWindowMs;
    if (tooLate) return answer('40004', 'ACQ.TRADE_CANCEL_TIME_OUT', '超过撤销时间范围', { out_trade_no: outTradeNo, retry_flag: 'N' });
    if (trade.refundedFen > 0)
      return answer('40004', 'ACQ.TRADE_STATUS_ERROR', '交易状态不合法', { out_trade_no: outTradeNo, retry_flag: 'N' });
    const payer = this.payers.get(trade.payerId ?? '');
    if (payer !== undefined) payer.balanceFen += trade.amountFen;
    trade.status = 'TRADE_CLOSED';
    trade.cancelAction = 'refund';
    trade.cancelRefundMs = this.now();
    return done('refund', trade.tradeNo);
  }

  private refund(biz: Biz): Reply {
    const trade = this.findTrade(biz);
    const outTradeNo = field(biz, 'out_trade_no');
    if (trade === undefined) return answer('40004', 'ACQ.TRADE_NOT_EXIST', '交易不存在', { out_trade_no: outTradeNo });
    this.advance(trade);
    const outRequestNo = field(biz, 'out_request_no') || trade.outTradeNo;
    const amountFen = yuanToFen(field(biz, 'refund_amount'));
    const previous = trade.refunds.get(outRequestNo);
    const common = { out_trade_no: trade.outTradeNo, trade_no: trade.tradeNo, buyer_user_id: trade.payerId ?? '' };
    if (previous !== undefined) {
      if (previous.amountFen !== amountFen) return answer('40004', 'ACQ.DISCORDANT_REPEAT_REQUEST', '请求信息不一致', common);
      return {
        kind: 'answer',
        fields: { code: '10000', msg: 'Success', ...common, fund_change: 'N', refund_fee: fenToYuan(trade.refundedFen) },
      };
    }
    if (amountFen === undefined || amountFen <= 0) return answer('40004', 'ACQ.REASON_TRADE_REFUND_FEE_ERR', '退款金额无效', common);
    if (trade.status !== 'TRADE_SUCCESS') return answer('40004', 'ACQ.TRADE_STATUS_ERROR', '交易状态不合法', common);
    if (trade.refundedFen + amountFen > trade.amountFen) return answer('40004', 'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL', '退款金额超限', common);
    const payer = this.payers.get(trade.payerId ?? '');
    if (payer !== undefined) payer.balanceFen += amountFen;
    trade.refundedFen += amountFen;
    trade.refunds.set(outRequestNo, { amountFen, atMs: this.now() });
    if (trade.refundedFen === trade.amountFen) trade.status = 'TRADE_CLOSED';
    return {
      kind: 'answer',
      fields: {
        code: '10000',
        msg: 'Success',
        ...common,
        buyer_logon_id: this.payers.get(trade.payerId ?? '')?.logonId ?? '',
        fund_change: 'Y',
        refund_fee: fenToYuan(trade.refundedFen),
        send_back_fee: fenToYuan(amountFen),
        gmt_refund_pay: beijingTime(this.now()),
      },
    };
  }

  private refundQuery(biz: Biz): Reply {
    const trade = this.findTrade(biz);
    if (trade === undefined) return answer('40004', 'ACQ.TRADE_NOT_EXIST', '交易不存在');
    const outRequestNo = field(biz, 'out_request_no') || trade.outTradeNo;
    const refund = trade.refunds.get(outRequestNo);
    const fields: Record<string, unknown> = { code: '10000', msg: 'Success', out_trade_no: trade.outTradeNo, trade_no: trade.tradeNo };
    if (refund !== undefined) {
      Object.assign(fields, {
        out_request_no: outRequestNo,
        total_amount: fenToYuan(trade.amountFen),
        refund_amount: fenToYuan(refund.amountFen),
        refund_status: 'REFUND_SUCCESS',
        gmt_refund_pay: beijingTime(refund.atMs),
      });
    }
    return { kind: 'answer', fields };
  }

  private precreate(biz: Biz, notifyUrl: string): Reply {
    const outTradeNo = field(biz, 'out_trade_no');
    const amountFen = yuanToFen(field(biz, 'total_amount'));
    const subject = field(biz, 'subject');
    if (outTradeNo === '' || subject === '' || amountFen === undefined || amountFen <= 0) {
      return answer('40004', 'ACQ.INVALID_PARAMETER', '参数无效', { out_trade_no: outTradeNo });
    }
    const existing = this.trades.get(outTradeNo);
    if (existing !== undefined) {
      this.expireIfDue(existing);
      if (existing.kind !== 'qr' || existing.amountFen !== amountFen || existing.subject !== subject) {
        return answer('40004', 'ACQ.CONTEXT_INCONSISTENT', '交易信息被篡改', { out_trade_no: outTradeNo });
      }
      if (existing.status === 'TRADE_SUCCESS' || existing.status === 'TRADE_FINISHED') {
        return answer('40004', 'ACQ.TRADE_HAS_SUCCESS', '交易已被支付', { out_trade_no: outTradeNo });
      }
      if (existing.status === 'TRADE_CLOSED') return answer('40004', 'ACQ.TRADE_HAS_CLOSE', '交易已经关闭', { out_trade_no: outTradeNo });
      return { kind: 'answer', fields: { code: '10000', msg: 'Success', out_trade_no: outTradeNo, qr_code: existing.qrCode } };
    }
    const timeExpire = field(biz, 'time_expire');
    const expiresMs = timeExpire === '' ? this.now() + DEFAULT_ORDER_EXPIRY_MS : parseBeijingTime(timeExpire);
    if (expiresMs === undefined) return answer('40004', 'ACQ.INVALID_PARAMETER', 'time_expire 格式错误', { out_trade_no: outTradeNo });
    const qrTimeout = field(biz, 'qr_code_timeout_express');
    const qrExpiresMs = qrTimeout === '' ? undefined : relativeExpiry(qrTimeout, this.now());
    if (qrExpiresMs === null) {
      return answer('40004', 'ACQ.INVALID_PARAMETER', 'qr_code_timeout_express 格式错误（1m～15d 或 1c）', { out_trade_no: outTradeNo });
    }
    const trade = this.newTrade({ outTradeNo, kind: 'qr', authCode: '', amountFen, subject, terminalId: '' });
    trade.expiresMs = expiresMs;
    trade.qrExpiresMs = qrExpiresMs;
    trade.notifyUrl = notifyUrl;
    trade.qrCode = `https://qr.alipay.com/bax0${randomBytes(12).toString('hex')}`;
    return { kind: 'answer', fields: { code: '10000', msg: 'Success', out_trade_no: outTradeNo, qr_code: trade.qrCode } };
  }

  /** Closes a waiting trade (TRADE_CLOSED, notified like an expiry); any other state is refused, as Alipay does. */
  private close(biz: Biz): Reply {
    const trade = this.findTrade(biz);
    if (trade === undefined) return answer('40004', 'ACQ.TRADE_NOT_EXIST', '交易不存在', { out_trade_no: field(biz, 'out_trade_no') });
    this.advance(trade);
    if (trade.status !== 'WAIT_BUYER_PAY') {
      return answer('40004', 'ACQ.TRADE_STATUS_ERROR', '交易状态不合法', { out_trade_no: trade.outTradeNo, trade_no: trade.tradeNo });
    }
    trade.status = 'TRADE_CLOSED';
    void this.autoNotify(trade);
    return { kind: 'answer', fields: { code: '10000', msg: 'Success', out_trade_no: trade.outTradeNo, trade_no: trade.tradeNo } };
  }

  private billUrl(biz: Biz): Reply {
    const date = field(biz, 'bill_date');
    if (field(biz, 'bill_type') !== 'trade' || !isDate(date)) return answer('40004', 'isp.bill_type_or_date_invalid', '参数不合法');
    const ended = date < beijingDate(this.now());
    if (!ended && !this.publishedBills.has(date)) return answer('40004', 'isp.bill_not_exist', '账单不存在');
    const token = randomBytes(16).toString('hex');
    bounded(this.billLinks, 1000);
    this.billLinks.set(token, { date, expiresMs: this.now() + BILL_LINK_VALID_MS });
    const day = date.replaceAll('-', '');
    const link = new URL('/sim/bill/download', this.baseUrlValue);
    link.search = new URLSearchParams({
      token,
      fileType: 'csv.zip',
      bizDates: day,
      downloadFileName: `${this.sellerId}0156_${day}.csv.zip`,
    }).toString();
    return { kind: 'answer', fields: { code: '10000', msg: 'Success', bill_download_url: link.toString() } };
  }

  private billDownload(url: URL, res: ServerResponse): void {
    const link = this.billLinks.get(url.searchParams.get('token') ?? '');
    if (link === undefined || this.now() > link.expiresMs) return send(res, 403, 'text/plain; charset=utf-8', '下载超时，请重新下载');
    const day = link.date.replaceAll('-', '');
    const prefix = `${this.sellerId}0156_${day}`;
    const zip = zipSync({
      [`${prefix}_业务明细.csv`]: iconv.encode(this.billDetail(link.date), 'gbk'),
      [`${prefix}_业务明细(汇总).csv`]: iconv.encode(this.billSummary(link.date), 'gbk'),
    });
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': zip.byteLength });
    res.end(zip);
  }

  // ---- state ---------------------------------------------------------------------------------------

  private newTrade(init: Pick<Trade, 'outTradeNo' | 'kind' | 'authCode' | 'amountFen' | 'subject' | 'terminalId'>): Trade {
    bounded(this.trades, MAX_TRADES);
    this.tradeSeq += 1;
    const trade: Trade = {
      ...init,
      tradeNo: `${beijingDate(this.now()).replaceAll('-', '')}2200${String(this.tradeSeq).padStart(8, '0')}${digits(8)}`,
      createdMs: this.now(),
      status: 'WAIT_BUYER_PAY',
      payerId: undefined,
      paidMs: undefined,
      expiresMs: undefined,
      qrExpiresMs: undefined,
      scannedMs: undefined,
      notifyUrl: '',
      qrCode: '',
      script: [],
      refundedFen: 0,
      refunds: new Map(),
      cancelAction: '',
      cancelRefundMs: undefined,
      notifyPlan: undefined,
    };
    this.trades.set(trade.outTradeNo, trade);
    return trade;
  }

  private markPaid(trade: Trade, payer: Payer): void {
    payer.balanceFen -= trade.amountFen;
    trade.payerId = payer.id;
    trade.status = 'TRADE_SUCCESS';
    trade.paidMs = this.now();
  }

  /** A waiting trade takes its next scripted step (each query is one step of the payer's phone). */
  private advance(trade: Trade): void {
    this.expireIfDue(trade);
    if (trade.status !== 'WAIT_BUYER_PAY' || trade.kind !== 'code') return;
    const step = trade.script.shift();
    if (step === undefined || step === 'paying') return;
    const payer = this.payers.get(trade.payerId ?? '');
    if (step === 'paid' && payer !== undefined && payer.balanceFen >= trade.amountFen) {
      this.markPaid(trade, payer);
      void this.autoNotify(trade);
    } else {
      trade.status = 'TRADE_CLOSED';
    }
  }

  private expireIfDue(trade: Trade): void {
    if (trade.status !== 'WAIT_BUYER_PAY') return;
    const now = this.now();
    if (trade.expiresMs !== undefined && now >= trade.expiresMs) trade.status = 'TRADE_CLOSED';
    // A QR nobody scanned before its own expiry can never be paid.
    if (trade.scannedMs === undefined && trade.qrExpiresMs !== undefined && now >= trade.qrExpiresMs) trade.status = 'TRADE_CLOSED';
  }

  /** The trade a gateway call names; with tradeOnScan, a precreated QR nobody scanned has none yet. */
  private findTrade(biz: Biz): Trade | undefined {
    const outTradeNo = field(biz, 'out_trade_no');
    const tradeNo = field(biz, 'trade_no');
    const trade =
      outTradeNo !== '' ? this.trades.get(outTradeNo) : [...this.trades.values()].find((t) => t.tradeNo === tradeNo && tradeNo !== '');
    if (trade !== undefined && this.tradeOnScan && trade.kind === 'qr' && trade.scannedMs === undefined) return undefined;
    return trade;
  }

  private tradeFields(trade: Trade): Record<string, unknown> {
    const payer = this.payers.get(trade.payerId ?? '');
    const amount = fenToYuan(trade.amountFen);
    const paid = trade.paidMs !== undefined;
    return {
      trade_no: trade.tradeNo,
      out_trade_no: trade.outTradeNo,
      ...(payer === undefined ? {} : { buyer_logon_id: payer.logonId, buyer_user_id: payer.id }),
      total_amount: amount,
      receipt_amount: paid ? amount : '0.00',
      buyer_pay_amount: paid ? amount : '0.00',
      point_amount: '0.00',
      invoice_amount: paid ? amount : '0.00',
      ...(paid ? { gmt_payment: beijingTime(trade.paidMs ?? 0), fund_bill_list: [{ fund_channel: 'ALIPAYACCOUNT', amount }] } : {}),
    };
  }

  // ---- notifications -------------------------------------------------------------------------------

  private autoNotify(trade: Trade): Promise<NotifyDelivery[]> {
    if (trade.notifyUrl === '') return Promise.resolve([]);
    return this.track(this.deliver(trade, trade.notifyPlan ?? {}));
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.pendingNotifications.add(promise);
    void promise.finally(() => this.pendingNotifications.delete(promise));
    return promise;
  }

  private async deliver(trade: Trade, plan: NotifyPlan): Promise<NotifyDelivery[]> {
    const results: NotifyDelivery[] = [];
    for (let i = 0; i < (plan.times ?? 1); i += 1) {
      if ((plan.delayMs ?? 0) > 0) await new Promise((resolve) => setTimeout(resolve, plan.delayMs));
      if (this.server === undefined) break;
      const body = this.notificationBody(trade, plan);
      let delivery: NotifyDelivery;
      try {
        const response = await fetch(trade.notifyUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
          body,
          signal: AbortSignal.timeout(5000),
        });
        delivery = { httpStatus: response.status, reply: (await response.text()).slice(0, 1000), body };
      } catch (error) {
        delivery = { httpStatus: 0, reply: error instanceof Error ? error.message : String(error), body };
      }
      results.push(delivery);
      const log = this.deliveries.get(trade.outTradeNo) ?? [];
      if (log.length < MAX_SCRIPT_STEPS) log.push(delivery);
      this.deliveries.set(trade.outTradeNo, log);
    }
    return results;
  }

  /** trade_status_sync, form-encoded, signed (RSA2) over the sorted non-empty fields but sign and sign_type. */
  private notificationBody(trade: Trade, plan: NotifyPlan): string {
    const payer = this.payers.get(trade.payerId ?? '');
    const amount = fenToYuan(trade.amountFen);
    const fields: Record<string, string> = {
      notify_time: beijingTime(this.now()),
      notify_type: 'trade_status_sync',
      // The same notification sent again keeps its notify_id, as Alipay's resends do.
      notify_id: createHash('sha256')
        .update(`${trade.tradeNo}:${plan.status ?? trade.status}`)
        .digest('hex')
        .slice(0, 34),
      app_id: this.appId,
      charset: 'utf-8',
      version: '1.0',
      trade_no: trade.tradeNo,
      out_trade_no: trade.outTradeNo,
      seller_id: this.sellerId,
      trade_status: plan.status ?? trade.status,
      total_amount: amount,
      subject: trade.subject,
      gmt_create: beijingTime(trade.createdMs),
      ...(payer === undefined ? {} : { buyer_id: payer.id, buyer_logon_id: payer.logonId }),
      ...this.campusFields.get(trade.outTradeNo),
      ...(trade.paidMs === undefined
        ? {}
        : {
            receipt_amount: amount,
            buyer_pay_amount: amount,
            invoice_amount: amount,
            gmt_payment: beijingTime(trade.paidMs),
            fund_bill_list: JSON.stringify([{ amount, fundChannel: 'ALIPAYACCOUNT' }]),
          }),
    };
    const content = Object.keys(fields)
      .filter((key) => fields[key] !== '')
      .sort()
      .map((key) => `${key}=${fields[key]}`)
      .join('&');
    const key = plan.forged === 'signature' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : this.alipayPrivateKey;
    const sign = createSign('RSA-SHA256').update(content, 'utf8').sign(key, 'base64');
    if (plan.forged === 'amount') fields.total_amount = fenToYuan(trade.amountFen + 100);
    return new URLSearchParams({ ...fields, sign_type: 'RSA2', sign }).toString();
  }

  // ---- the statement -------------------------------------------------------------------------------

  private billLines(date: string): { readonly lines: string[]; readonly payments: number; readonly refunds: number } {
    const rows: { atMs: number; cells: string[] }[] = [];
    const onDay = (ms: number | undefined): ms is number => ms !== undefined && beijingDate(ms) === date;
    for (const trade of this.trades.values()) {
      const payer = this.payers.get(trade.payerId ?? '');
      const line = (kind: '交易' | '退款', atMs: number, amountFen: number, outRequestNo: string): string[] =>
        billCells({ trade, kind, atMs, amountFen, outRequestNo, buyer: payer?.logonId ?? '' });
      const billedFen = this.billAmounts.get(trade.outTradeNo) ?? trade.amountFen;
      if (onDay(trade.paidMs)) rows.push({ atMs: trade.paidMs, cells: line('交易', trade.paidMs, billedFen, '') });
      for (const [outRequestNo, refund] of trade.refunds) {
        if (onDay(refund.atMs)) rows.push({ atMs: refund.atMs, cells: line('退款', refund.atMs, -refund.amountFen, outRequestNo) });
      }
      if (onDay(trade.cancelRefundMs))
        rows.push({ atMs: trade.cancelRefundMs, cells: line('退款', trade.cancelRefundMs, -trade.amountFen, '') });
    }
    for (const injected of this.injectedBillLines) {
      if (!onDay(injected.atMs)) continue;
      const trade = this.trades.get(injected.outTradeNo);
      const refund = injected.kind === 'refund';
      const cells = billCells({
        trade: {
          tradeNo: injected.channelTxnId ?? trade?.tradeNo ?? `${date.replaceAll('-', '')}2200${digits(16)}`,
          outTradeNo: injected.outTradeNo,
          subject: trade?.subject ?? 'simulated bill line',
          createdMs: trade?.createdMs ?? injected.atMs,
          terminalId: trade?.terminalId ?? '',
        },
        kind: refund ? '退款' : '交易',
        atMs: injected.atMs,
        amountFen: refund ? -injected.amountFen : injected.amountFen,
        outRequestNo: refund ? (injected.outRefundNo ?? '') : '',
        buyer: '',
      });
      rows.push({ atMs: injected.atMs, cells });
    }
    rows.sort((a, b) => a.atMs - b.atMs);
    const payments = rows.filter((row) => row.cells[2] === '交易').length;
    return { lines: rows.map((row) => row.cells.map(csvCell).join(',')), payments, refunds: rows.length - payments };
  }

  private billDetail(date: string): string {
    const { lines, payments, refunds } = this.billLines(date);
    const [y, m, d] = date.split('-');
    const next = beijingDate(Date.parse(`${date}T00:00:00+08:00`) + 24 * 3600_000).split('-');
    return [
      '#支付宝业务明细查询',
      `#账号：[${this.sellerId}0156]`,
      `#起始日期：[${y}年${m}月${d}日 00:00:00]   终止日期：[${next[0]}年${next[1]}月${next[2]}日 00:00:00]`,
      '#-----------------------------------------业务明细列表----------------------------------------',
      '支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注',
      ...lines,
      '#-----------------------------------------业务明细列表结束------------------------------------',
      `#交易合计：${payments}笔，退款合计：${refunds}笔`,
      `#导出时间：[${beijingTime(this.now())}]`,
      '',
    ].join('\r\n');
  }

  private billSummary(date: string): string {
    const { payments, refunds } = this.billLines(date);
    return [
      '#支付宝业务汇总查询',
      `#账号：[${this.sellerId}0156]`,
      '门店编号,门店名称,交易订单总笔数,退款订单总笔数',
      `,,${payments},${refunds}`,
      '',
    ].join('\r\n');
  }
}

/** One line of the detail CSV (the columns of billDetail's header). */
function billCells(line: {
  readonly trade: Pick<Trade, 'tradeNo' | 'outTradeNo' | 'subject' | 'createdMs' | 'terminalId'>;
  readonly kind: '交易' | '退款';
  readonly atMs: number;
  /** Negative for a refund, as Alipay writes it. */
  readonly amountFen: number;
  readonly outRequestNo: string;
  readonly buyer: string;
}): string[] {
  const { trade, amountFen } = line;
  return [
    `${trade.tradeNo}\t`,
    `${trade.outTradeNo}\t`,
    line.kind,
    trade.subject,
    beijingTime(trade.createdMs),
    beijingTime(line.atMs),
    '',
    '',
    '',
    trade.terminalId,
    line.buyer,
    fenToYuan(amountFen),
    fenToYuan(amountFen),
    '0.00',
    '0.00',
    '0.00',
    '0.00',
    '0.00',
    '',
    '0.00',
    '0.00',
    line.outRequestNo === '' ? '' : `${line.outRequestNo}\t`,
    '0.00',
    '0.00',
    '',
  ];
}

function answer(code: string, subCode: string, subMsg: string, extra: Record<string, unknown> = {}, msg = 'Business Failed'): Reply {
  return { kind: 'answer', fields: { code, msg, sub_code: subCode, sub_msg: subMsg, ...extra } };
}

function invalidCode(outTradeNo: string): Reply {
  return answer('40004', 'ACQ.PAYMENT_AUTH_CODE_INVALID', '支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款', {
    out_trade_no: outTradeNo,
  });
}

function insufficient(outTradeNo: string): Reply {
  return answer('40004', 'ACQ.BUYER_BALANCE_NOT_ENOUGH', '买家余额不足', { out_trade_no: outTradeNo });
}

function checkPlan(plan: NotifyPlan): NotifyPlan {
  const times = plan.times ?? 1;
  const delayMs = plan.delayMs ?? 0;
  if (!Number.isSafeInteger(times) || times < 0 || times > 10) throw new RangeError('times: 0 to 10');
  if (!Number.isSafeInteger(delayMs) || delayMs < 0 || delayMs > 60_000) throw new RangeError('delayMs: 0 to 60000');
  if (plan.forged !== undefined && plan.forged !== 'signature' && plan.forged !== 'amount')
    throw new RangeError('forged: signature or amount');
  return plan;
}

function field(biz: Biz, name: string): string {
  const value = biz[name];
  return typeof value === 'string' ? value : '';
}

function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * Alipay's relative expiry (timeout_express, qr_code_timeout_express): 1m to 15d in whole m(inutes),
 * h(ours) or d(ays), or 1c (until the coming midnight, Beijing time). null when it is not one of those.
 */
function relativeExpiry(value: string, nowMs: number): number | null {
  if (value === '1c') {
    const beijing = nowMs + 8 * 3_600_000;
    return beijing - (beijing % 86_400_000) + 86_400_000 - 8 * 3_600_000;
  }
  const m = /^([1-9]\d{0,5})([mhd])$/.exec(value);
  if (m === null) return null;
  const ms = Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
  if (ms > 15 * 86_400_000) return null;
  return nowMs + ms;
}

function digits(count: number): string {
  let out = '';
  for (let i = 0; i < count; i += 1) out += String(randomInt(10));
  return out;
}

/** Drops the oldest entries so a long-running simulator stays within `max`. */
function bounded(collection: Map<string, unknown> | Set<string>, max: number): void {
  while (collection.size >= max) {
    const oldest = collection.keys().next().value;
    if (oldest === undefined) return;
    collection.delete(oldest);
  }
}

async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType });
  res.end(body);
}
