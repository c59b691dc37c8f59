// The Alipay adapter (switch/channels/alipay/adapter.ts) against the Alipay simulator over loopback HTTP,
// no mocks: code payments (paid, buyer still paying then paid or giving up, unknown then query, system
// errors, insufficient funds, expired / used / invalid codes, refusals), idempotency by out_trade_no and
// out_request_no, cancel (with retry answers), partial refunds never above the payment, recharge QR orders
// with their notifications (late, twice, never, out of order, stale, forged), signatures checked both
// ways (another simulator's key: answers unknown, notifications forged; a wrong app key: refused by the
// gateway), aborts and timeouts settling promptly as unknown, the bill read into StatementRows, the
// ALIPAY_* configuration, and no key or full payment code in the log or in any message.
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelForgedError, type PaymentChannel, type VerifiedNotification } from '../switch/channels/channel.js';
import { AlipayChannel } from '../switch/channels/alipay/adapter.js';
import { loadAlipayConfig } from '../switch/channels/alipay/config.js';
import { beijingDate } from '../switch/channels/alipay/format.js';
import { AlipaySimulator } from '../switch/channels/alipay/simulator.js';
import { ConfigError } from '../switch/config.js';
import { FailedPreconditionError } from '../switch/errors.js';

const appKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const APP_PUBLIC_PEM = appKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const APP_PRIVATE_PEM = appKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const APP_PRIVATE_B64 = appKeys.privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64');

let simOffsetMs = 0;
const sim = new AlipaySimulator({ appPublicKeyPem: APP_PUBLIC_PEM, latencyMs: 0, now: () => Date.now() + simOffsetMs });
/** Signs with its own Alipay key: the adapter configured with `sim`'s key must not believe it. */
const otherSim = new AlipaySimulator({ appPublicKeyPem: APP_PUBLIC_PEM, latencyMs: 0 });
let logText = '';
const logger = pino({ level: 'trace' }, { write: (line: string) => void (logText += line) });
const usedCodes: string[] = [];
const messages: string[] = [];
let channel: AlipayChannel;
let receiver: Server;
let notifyUrl = '';
/** Notifications as the switch's route would see them: verified (or refused) by `channel`. */
const received: { readonly body: string; readonly verified?: VerifiedNotification; readonly error?: unknown }[] = [];

const signal = (): AbortSignal => new AbortController().signal;
let seq = 0;
const id = (prefix: string): string => `${prefix}${Date.now().toString(36)}${(seq += 1)}`;
const code = (payerId?: string): string => {
  const c = sim.newCode(payerId);
  usedCodes.push(c);
  return c;
};
const payRequest = (outTradeNo: string, authCode: string, amountFen: number) => ({
  outTradeNo,
  authCode,
  amountFen,
  subject: '第一食堂 一层',
  terminalId: 'POS0001',
});
function remember<T extends { status: string; message?: string }>(result: T): T {
  if (result.message !== undefined) messages.push(result.message);
  return result;
}

beforeAll(async () => {
  await sim.start();
  await otherSim.start();
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      let ok = true;
      try {
        received.push({ body, verified: channel.verifyNotification({ headers: {}, body }) });
      } catch (error) {
        ok = false;
        received.push({ body, error });
      }
      const reply = channel.notificationReply(ok);
      res.writeHead(reply.httpStatus, { 'content-type': reply.contentType });
      res.end(reply.body);
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  notifyUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/alipay/notify`;
  channel = new AlipayChannel({ config: sim.adapterConfig({ appPrivateKeyPem: APP_PRIVATE_PEM, notifyUrl }), logger });
});

afterAll(async () => {
  await sim.stop();
  await otherSim.stop();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

describe('Alipay payment codes', () => {
  it('recognises 16-24 digit codes starting 25-30 only, and offers no payer look-up', () => {
    for (const c of ['2812345678901234', '250000000000000000', '300000000000000000000000', sim.newCode()])
      expect(channel.recognises(c)).toBe(true);
    for (const c of [
      '241234567890123456',
      '311234567890123456',
      '281234567890123',
      '2812345678901234567890123',
      '28123456789012345x',
      '134567890123456789',
    ]) {
      expect(channel.recognises(c)).toBe(false);
    }
    expect('payerOfCode' in (channel as PaymentChannel)).toBe(false);
  });

  it('pays, answers the same result for the same out_trade_no, refuses other content and a used code', async () => {
    const payer = sim.newPayer({ balanceFen: 5000 });
    const authCode = code(payer);
    const outTradeNo = id('pay');
    const paid = await channel.payWithCode(payRequest(outTradeNo, authCode, 1234), signal());
    expect(paid).toMatchObject({ status: 'paid', amountFen: 1234, payer: { channel: 'alipay', payerId: payer } });
    expect(sim.balanceOf(payer)).toBe(3766);
    const again = await channel.payWithCode(payRequest(outTradeNo, authCode, 1234), signal());
    expect(again).toEqual(paid);
    expect(sim.balanceOf(payer)).toBe(3766);
    expect(await channel.queryPayment(outTradeNo, signal())).toMatchObject({
      status: 'paid',
      amountFen: 1234,
      channelTxnId: paid.status === 'paid' ? paid.channelTxnId : '',
    });
    expect(remember(await channel.payWithCode(payRequest(outTradeNo, authCode, 1235), signal()))).toMatchObject({
      status: 'failed',
      reason: 'declined',
    });
    expect(remember(await channel.payWithCode(payRequest(outTradeNo, code(), 1234), signal()))).toMatchObject({
      status: 'unknown',
      message: expect.stringContaining('ACQ.TRADE_HAS_SUCCESS') as unknown,
    });
    const reused = remember(await channel.payWithCode(payRequest(id('pay'), authCode, 100), signal()));
    expect(reused).toMatchObject({ status: 'failed', reason: 'code_invalid' });
    expect(sim.balanceOf(payer)).toBe(3766);
  });

  it('amounts are exact to the fen at the edges', async () => {
    for (const amountFen of [1, 10, 99, 100, 101, 1999, 99_999_99]) {
      const payer = sim.newPayer({ balanceFen: amountFen });
      const result = await channel.payWithCode(payRequest(id('fen'), code(payer), amountFen), signal());
      expect(result).toMatchObject({ status: 'paid', amountFen });
      expect(sim.balanceOf(payer)).toBe(0);
    }
  });

  it('the buyer still entering their password: paying, then paid (or giving up: closed)', async () => {
    const payer = sim.newPayer({ balanceFen: 1000 });
    const authCode = code(payer);
    sim.script(authCode, ['paying', 'paying', 'paid']);
    const outTradeNo = id('wait');
    expect(await channel.payWithCode(payRequest(outTradeNo, authCode, 800), signal())).toEqual({ status: 'paying' });
    expect(sim.balanceOf(payer)).toBe(1000);
    expect(await channel.queryPayment(outTradeNo, signal())).toEqual({ status: 'paying' });
    expect(await channel.queryPayment(outTradeNo, signal())).toMatchObject({ status: 'paid', amountFen: 800, payer: { payerId: payer } });
    expect(sim.balanceOf(payer)).toBe(200);

    const quitter = code();
    sim.script(quitter, ['paying', 'gave_up']);
    const quitNo = id('quit');
    expect(await channel.payWithCode(payRequest(quitNo, quitter, 500), signal())).toEqual({ status: 'paying' });
    expect(await channel.queryPayment(quitNo, signal())).toEqual({ status: 'closed' });
    expect(await channel.cancelPayment(quitNo, signal())).toEqual({ status: 'cancelled' });
  });

  it('unknown results: 20000 with the money moved is found by query and undone by cancel', async () => {
    const payer = sim.newPayer({ balanceFen: 700 });
    const authCode = code(payer);
    sim.script(authCode, ['unknown_paid']);
    const outTradeNo = id('unk');
    expect(remember(await channel.payWithCode(payRequest(outTradeNo, authCode, 700), signal()))).toMatchObject({ status: 'unknown' });
    expect(await channel.queryPayment(outTradeNo, signal())).toMatchObject({ status: 'paid', amountFen: 700 });
    expect(sim.balanceOf(payer)).toBe(0);
    expect(await channel.cancelPayment(outTradeNo, signal())).toEqual({ status: 'cancelled' });
    expect(sim.balanceOf(payer)).toBe(700);
    expect(await channel.queryPayment(outTradeNo, signal())).toEqual({ status: 'closed' });
  });

  it('a system error before any trade: not found, cancelled, and a late retry of the id is refused', async () => {
    const authCode = code();
    sim.script(authCode, ['system_error']);
    const outTradeNo = id('sys');
    expect(remember(await channel.payWithCode(payRequest(outTradeNo, authCode, 300), signal()))).toMatchObject({ status: 'unknown' });
    expect(await channel.queryPayment(outTradeNo, signal())).toEqual({ status: 'not_found' });
    expect(await channel.cancelPayment(outTradeNo, signal())).toEqual({ status: 'cancelled' });
    expect(await channel.payWithCode(payRequest(outTradeNo, code(), 300), signal())).toMatchObject({ status: 'failed' });
    expect(await channel.queryPayment(outTradeNo, signal())).toEqual({ status: 'not_found' });
  });

  it('insufficient funds, expired / never-issued codes, a frozen payer, HTTP errors', async () => {
    const poor = sim.newPayer({ balanceFen: 100 });
    expect(await channel.payWithCode(payRequest(id('poor'), code(poor), 101), signal())).toMatchObject({
      status: 'failed',
      reason: 'insufficient_funds',
    });
    expect(sim.balanceOf(poor)).toBe(100);
    const stale = code();
    simOffsetMs = 61_000; // the code was shown more than a minute ago
    try {
      expect(await channel.payWithCode(payRequest(id('old'), stale, 100), signal())).toMatchObject({
        status: 'failed',
        reason: 'code_invalid',
      });
    } finally {
      simOffsetMs = 0;
    }
    expect(await channel.payWithCode(payRequest(id('fake'), '281111111111111111', 100), signal())).toMatchObject({
      reason: 'code_invalid',
    });
    const frozen = code();
    sim.script(frozen, ['refused']);
    expect(await channel.payWithCode(payRequest(id('frz'), frozen, 100), signal())).toMatchObject({ reason: 'payer_refused' });
    const broken = code();
    sim.script(broken, ['http_error']);
    expect(remember(await channel.payWithCode(payRequest(id('http'), broken, 100), signal()))).toMatchObject({ status: 'unknown' });
  });

  it('cancel answers retry while Alipay asks for it, refused past the window', async () => {
    const outTradeNo = id('cxl');
    await channel.payWithCode(payRequest(outTradeNo, code(), 100), signal());
    sim.scriptCancel(outTradeNo, ['retry']);
    expect(remember(await channel.cancelPayment(outTradeNo, signal()))).toMatchObject({ status: 'retry' });
    expect(await channel.cancelPayment(outTradeNo, signal())).toEqual({ status: 'cancelled' });
    expect(await channel.cancelPayment(outTradeNo, signal())).toEqual({ status: 'cancelled' });
    const late = id('late');
    await channel.payWithCode(payRequest(late, code(), 100), signal());
    sim.scriptCancel(late, ['too_late']);
    expect(remember(await channel.cancelPayment(late, signal()))).toMatchObject({ status: 'refused' });
  });
});

describe('Alipay refunds', () => {
  it('partial, several, idempotent by out_request_no, never more than paid', async () => {
    const payer = sim.newPayer({ balanceFen: 1000 });
    const outTradeNo = id('ref');
    await channel.payWithCode(payRequest(outTradeNo, code(payer), 1000), signal());
    const refund = (outRefundNo: string, refundFen: number) =>
      channel.refund({ outTradeNo, outRefundNo, refundFen, totalFen: 1000, reason: '菜品售罄' }, signal());
    const r1 = id('r1');
    expect(await refund(r1, 300)).toMatchObject({ status: 'refunded', refundFen: 300 });
    expect(sim.balanceOf(payer)).toBe(300);
    expect(await refund(r1, 300)).toMatchObject({ status: 'refunded', refundFen: 300 }); // a retry: no money moves again
    expect(sim.balanceOf(payer)).toBe(300);
    expect(remember(await refund(r1, 200))).toMatchObject({ status: 'failed' });
    expect(remember(await refund(id('r2'), 701))).toMatchObject({ status: 'failed' });
    expect(await refund(id('r3'), 700)).toMatchObject({ status: 'refunded', refundFen: 700 });
    expect(sim.balanceOf(payer)).toBe(1000);
    expect(await channel.queryPayment(outTradeNo, signal())).toEqual({ status: 'closed' });
    expect(await refund(id('r4'), 1)).toMatchObject({ status: 'failed' });
    sim.failNext('alipay.trade.refund', 'system_error');
    expect(
      remember(await channel.refund({ outTradeNo: id('nx'), outRefundNo: id('r5'), refundFen: 1, totalFen: 1, reason: '' }, signal())),
    ).toMatchObject({
      status: 'unknown',
    });
  });
});

describe('Alipay recharge orders and notifications', () => {
  const order = (outTradeNo: string, amountFen = 5000) =>
    channel.createRechargeOrder({ outTradeNo, amountFen, subject: '校园卡充值', expiresInSec: 900 }, signal());
  const of = (outTradeNo: string) => received.filter((n) => n.verified?.outTradeNo === outTradeNo);

  it('a QR order paid by a payer: one verified notification, answered success; the same order again is the same QR', async () => {
    const outTradeNo = id('rc');
    const qr = await order(outTradeNo, 5001);
    expect(qr).toMatchObject({ kind: 'qr' });
    expect(qr.kind === 'qr' && qr.qrContent.startsWith('https://qr.alipay.com/')).toBe(true);
    expect(await order(outTradeNo, 5001)).toEqual(qr);
    await expect(order(outTradeNo, 5002)).rejects.toBeInstanceOf(FailedPreconditionError);
    expect(await channel.queryPayment(outTradeNo, signal())).toEqual({ status: 'paying' });
    const payer = sim.newPayer();
    const { notified } = sim.payOrder(outTradeNo, payer);
    const deliveries = await notified;
    expect(deliveries.map((d) => [d.httpStatus, d.reply])).toEqual([[200, 'success']]);
    expect(of(outTradeNo).map((n) => n.verified)).toEqual([
      expect.objectContaining({ amountFen: 5001, paid: true, payer: { channel: 'alipay', payerId: payer } }),
    ]);
    expect(await channel.queryPayment(outTradeNo, signal())).toMatchObject({ status: 'paid', amountFen: 5001 });
    await expect(order(outTradeNo, 5001)).rejects.toBeInstanceOf(FailedPreconditionError);
  });

  it('twice (same notify_id), never, late and out of order, stale', async () => {
    const twice = id('tw');
    await order(twice);
    sim.planNotify(twice, { times: 2 });
    await sim.payOrder(twice).notified;
    const two = of(twice);
    expect(two).toHaveLength(2);
    expect(two[0]?.verified?.notificationId).toBe(two[1]?.verified?.notificationId);

    const never = id('nv');
    await order(never);
    sim.planNotify(never, { times: 0 });
    expect(await sim.payOrder(never).notified).toEqual([]);
    expect(await channel.queryPayment(never, signal())).toMatchObject({ status: 'paid', amountFen: 5000 });

    const first = id('a');
    const second = id('b');
    await order(first);
    await order(second);
    sim.planNotify(first, { delayMs: 150 });
    const slow = sim.payOrder(first).notified;
    await sim.payOrder(second).notified;
    await slow;
    const order2 = received.map((n) => n.verified?.outTradeNo).filter((n) => n === first || n === second);
    expect(order2).toEqual([second, first]);

    await sim.notify(first, { status: 'WAIT_BUYER_PAY' });
    expect(of(first).at(-1)?.verified).toMatchObject({ paid: false, amountFen: 5000 });
  });

  it('forged signature or tampered amount: ChannelForgedError, answered fail; another simulator key likewise', async () => {
    const outTradeNo = id('fg');
    await order(outTradeNo);
    sim.planNotify(outTradeNo, { times: 0 });
    await sim.payOrder(outTradeNo).notified;
    const before = received.length;
    for (const forged of ['signature', 'amount'] as const) {
      const [delivery] = await sim.notify(outTradeNo, { forged });
      expect(delivery).toMatchObject({ httpStatus: 200, reply: 'fail' });
    }
    const refused = received.slice(before);
    expect(refused).toHaveLength(2);
    for (const n of refused) expect(n.error).toBeInstanceOf(ChannelForgedError);

    const other = new AlipayChannel({
      config: otherSim.adapterConfig({ appPrivateKeyPem: APP_PRIVATE_PEM, notifyUrl: `${notifyUrl}?other` }),
      logger,
    });
    const foreign = id('fo');
    await other.createRechargeOrder({ outTradeNo: foreign, amountFen: 100, subject: '充值', expiresInSec: 900 }, signal());
    const [delivery] = await otherSim.payOrder(foreign).notified;
    expect(delivery).toMatchObject({ reply: 'fail' });
    expect(() => channel.verifyNotification({ headers: {}, body: delivery?.body ?? '' })).toThrow(ChannelForgedError);
    expect(other.verifyNotification({ headers: {}, body: delivery?.body ?? '' })).toMatchObject({ outTradeNo: foreign, paid: true });
  });

  it('an order that expires is closed, with a TRADE_CLOSED notification', async () => {
    const outTradeNo = id('ex');
    await order(outTradeNo);
    await sim.expireOrder(outTradeNo);
    expect(of(outTradeNo).at(-1)?.verified).toMatchObject({ paid: false });
    expect(await channel.queryPayment(outTradeNo, signal())).toEqual({ status: 'closed' });
  });

  it('alipay.trade.close: a waiting order is closed (TRADE_CLOSED notified) and cannot be paid; closing again is closed', async () => {
    const outTradeNo = id('cl');
    await order(outTradeNo);
    const before = sim.callCount('alipay.trade.close');
    expect(await channel.closeRechargeOrder(outTradeNo, signal())).toEqual({ status: 'closed' });
    expect(sim.callCount('alipay.trade.close')).toBe(before + 1);
    expect(await channel.queryPayment(outTradeNo, signal())).toEqual({ status: 'closed' });
    expect(() => sim.payOrder(outTradeNo)).toThrow(/TRADE_CLOSED/);
    // Alipay refuses to close a closed trade (ACQ.TRADE_STATUS_ERROR); the query after it says closed.
    expect(await channel.closeRechargeOrder(outTradeNo, signal())).toEqual({ status: 'closed' });
    await sim.drainNotifications();
    expect(of(outTradeNo).at(-1)?.verified).toMatchObject({ paid: false });
  });

  it('alipay.trade.close on a paid order answers paid (by whom, how much); never a trade is not_found; trouble is unknown', async () => {
    const paid = id('cp');
    await order(paid, 4321);
    const payer = sim.newPayer();
    sim.planNotify(paid, { times: 0 });
    await sim.payOrder(paid, payer).notified;
    expect(await channel.closeRechargeOrder(paid, signal())).toMatchObject({
      status: 'paid',
      amountFen: 4321,
      payer: { channel: 'alipay', payerId: payer },
    });
    // Alipay makes a precreated order's trade only when it is scanned: until then close finds no trade.
    expect(await channel.closeRechargeOrder(id('nt'), signal())).toEqual({ status: 'not_found' });

    const waiting = id('cu');
    await order(waiting);
    for (const mode of ['system_error', 'http_error'] as const) {
      sim.failNext('alipay.trade.close', mode);
      expect(remember(await channel.closeRechargeOrder(waiting, signal()))).toMatchObject({ status: 'unknown' });
    }
    expect(await channel.queryPayment(waiting, signal())).toEqual({ status: 'paying' });
    // The close refused, and the query after it in trouble too: unknown, not a guess.
    sim.failNext('alipay.trade.query', 'system_error');
    expect(await channel.closeRechargeOrder(paid, signal())).toMatchObject({ status: 'unknown' });
    // Closed at Alipay, but the answer was tampered with on the way: not believed (unknown); asking again tells.
    sim.failNext('alipay.trade.close', 'tampered');
    expect(remember(await channel.closeRechargeOrder(waiting, signal()))).toMatchObject({ status: 'unknown' });
    expect(await channel.closeRechargeOrder(waiting, signal())).toEqual({ status: 'closed' });
    await sim.drainNotifications();
  });
});

describe('Alipay signatures and transport', () => {
  it('an answer signed with another key is unknown; a tampered answer is unknown; a wrong app key is refused by the gateway', async () => {
    const misconfigured = new AlipayChannel({
      config: otherSim.adapterConfig({ appPrivateKeyPem: APP_PRIVATE_PEM, alipayPublicKeyPem: sim.alipayPublicKeyPem }),
      logger,
    });
    const authCode = otherSim.newCode();
    usedCodes.push(authCode);
    const outTradeNo = id('mk');
    const result = remember(await misconfigured.payWithCode(payRequest(outTradeNo, authCode, 100), signal()));
    expect(result).toMatchObject({ status: 'unknown', message: expect.stringContaining('does not verify') as unknown });

    const paidNo = id('tp');
    await channel.payWithCode(payRequest(paidNo, code(), 100), signal());
    sim.failNext('alipay.trade.query', 'tampered');
    expect(remember(await channel.queryPayment(paidNo, signal()))).toMatchObject({ status: 'unknown' });

    const wrongApp = new AlipayChannel({ config: sim.adapterConfig({ appPrivateKeyPem: otherKeyPem() }), logger });
    const refused = remember(await wrongApp.payWithCode(payRequest(id('wk'), code(), 100), signal()));
    expect(refused).toMatchObject({
      status: 'failed',
      reason: 'declined',
      message: expect.stringContaining('isv.invalid-signature') as unknown,
    });
  });

  it('an aborted call settles promptly as unknown (the payment went through: query finds it)', async () => {
    const authCode = code();
    sim.script(authCode, ['hang_paid']);
    const outTradeNo = id('ab');
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 50);
    expect(remember(await channel.payWithCode(payRequest(outTradeNo, authCode, 100), controller.signal))).toMatchObject({
      status: 'unknown',
    });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await channel.queryPayment(outTradeNo, signal())).toMatchObject({ status: 'paid' });
    const aborted = new AbortController();
    aborted.abort();
    expect(await channel.queryPayment(outTradeNo, aborted.signal)).toMatchObject({ status: 'unknown' });
  });

  it('a silent gateway is unknown after ALIPAY_TIMEOUT_MS; a closed port is unknown / retry', async () => {
    const quick = new AlipayChannel({ config: sim.adapterConfig({ appPrivateKeyPem: APP_PRIVATE_PEM, timeoutMs: 200 }), logger });
    sim.failNext('alipay.trade.query', 'hang');
    const started = Date.now();
    expect(remember(await quick.queryPayment(id('hg'), signal()))).toMatchObject({ status: 'unknown' });
    expect(Date.now() - started).toBeLessThan(1500);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const nowhere = new AlipayChannel({
      config: sim.adapterConfig({ appPrivateKeyPem: APP_PRIVATE_PEM, gatewayUrl: `http://127.0.0.1:${port}/gateway.do` }),
      logger,
    });
    expect(remember(await nowhere.payWithCode(payRequest(id('cp'), code(), 100), signal()))).toMatchObject({ status: 'unknown' });
    expect(await nowhere.cancelPayment(id('cp'), signal())).toMatchObject({ status: 'retry' });
  });
});

describe('Alipay daily statement', () => {
  it('downloads the zipped GBK bill and reads payments and refunds exactly', async () => {
    const payNo = id('bl');
    const paid = await channel.payWithCode(payRequest(payNo, code(), 2468), signal());
    if (paid.status !== 'paid') throw new Error(`not paid: ${paid.status}`);
    const outRefundNo = id('blr');
    await channel.refund({ outTradeNo: payNo, outRefundNo, refundFen: 1357, totalFen: 2468, reason: '' }, signal());
    const date = beijingDate(paid.paidAtMs);
    const tomorrow = beijingDate(paid.paidAtMs + 24 * 3600_000);
    await expect(channel.dailyStatement(tomorrow, signal())).rejects.toBeInstanceOf(FailedPreconditionError);
    const csv = sim.bill(date);
    expect(csv.startsWith('#支付宝业务明细查询')).toBe(true);
    expect(csv).toContain('24.68');
    expect(csv).toContain('-13.57');
    const rows = await channel.dailyStatement(date, signal());
    expect(rows.filter((row) => row.outTradeNo === payNo)).toEqual([
      {
        outTradeNo: payNo,
        channelTxnId: paid.channelTxnId,
        kind: 'payment',
        amountFen: 2468,
        atMs: Math.trunc(paid.paidAtMs / 1000) * 1000,
      },
      expect.objectContaining({ outTradeNo: payNo, channelTxnId: paid.channelTxnId, kind: 'refund', amountFen: 1357, outRefundNo }),
    ]);
    const payments = rows.filter((row) => row.kind === 'payment');
    expect(payments.length).toBeGreaterThan(10);
    expect(payments.every((row) => Number.isSafeInteger(row.amountFen) && row.amountFen > 0)).toBe(true);
  });
});

describe('Alipay payer authorisation (binding)', () => {
  it('the authorisation URL names the app, scope auth_base, the callback on the notify origin and the state', () => {
    const state = 'state-0123456789abcdef.signed';
    const url = new URL(channel.authorizationUrl(state));
    expect(url.origin).toBe(sim.baseUrl);
    expect(url.pathname).toBe('/oauth2/publicAppAuthorize.htm');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      app_id: sim.appId,
      scope: 'auth_base',
      redirect_uri: new URL('/api/v1/channels/alipay/oauth-callback', notifyUrl).toString(),
      state,
    });
    expect(() => channel.authorizationUrl('short')).toThrow(/state/);
    const production = new AlipayChannel({
      config: {
        ...sim.adapterConfig({ appPrivateKeyPem: APP_PRIVATE_PEM, notifyUrl: 'https://card.example.edu/x' }),
        gatewayUrl: 'https://openapi.alipay.com/gateway.do',
      },
      logger,
    });
    expect(production.authorizationUrl(state)).toMatch(
      /^https:\/\/openauth\.alipay\.com\/oauth2\/publicAppAuthorize\.htm\?.*redirect_uri=https%3A%2F%2Fcard\.example\.edu%2Fapi%2Fv1%2Fchannels%2Falipay%2Foauth-callback/,
    );
    const noNotify = new AlipayChannel({ config: sim.adapterConfig({ appPrivateKeyPem: APP_PRIVATE_PEM, notifyUrl: '' }), logger });
    expect(() => noNotify.authorizationUrl(state)).toThrow(FailedPreconditionError);
  });

  it('the simulated page redirects with an auth_code; oauth.token answers its user id once, then isv.code-invalid', async () => {
    const payer = sim.newPayer();
    const page = new URL(channel.authorizationUrl('state-0123456789abcdef'));
    page.searchParams.set('sim_payer', payer);
    const redirect = await fetch(page, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    const back = new URL(redirect.headers.get('location') ?? '');
    expect(back.pathname).toBe('/api/v1/channels/alipay/oauth-callback');
    expect(back.searchParams.get('state')).toBe('state-0123456789abcdef');
    const authCode = back.searchParams.get('auth_code') ?? '';
    usedCodes.push(authCode);
    expect(await channel.userIdOfAuthCode(authCode, signal())).toEqual({ status: 'ok', payer: { channel: 'alipay', payerId: payer } });
    const again = await channel.userIdOfAuthCode(authCode, signal());
    expect(remember(again)).toMatchObject({ status: 'invalid', message: expect.stringContaining('isv.code-invalid') as unknown });
    expect(await channel.userIdOfAuthCode('never-issued-0123456789', signal())).toMatchObject({ status: 'invalid' });
    expect(await channel.userIdOfAuthCode('not a code', signal())).toMatchObject({ status: 'invalid' });
  });

  it('a system error or an answer signed with another key is unknown (the code stays unused)', async () => {
    const payer = sim.newPayer();
    const authCode = sim.newAuthCode(payer);
    usedCodes.push(authCode);
    sim.failNext('alipay.system.oauth.token', 'system_error');
    expect(remember(await channel.userIdOfAuthCode(authCode, signal()))).toMatchObject({ status: 'unknown' });
    const believesOther = new AlipayChannel({
      config: sim.adapterConfig({ appPrivateKeyPem: APP_PRIVATE_PEM, alipayPublicKeyPem: otherSim.alipayPublicKeyPem }),
      logger,
    });
    expect(remember(await believesOther.userIdOfAuthCode(authCode, signal()))).toMatchObject({ status: 'unknown' });
    // The unbelieved answer used the code at the simulator; a fresh one works with the right key.
    const fresh = sim.newAuthCode(payer);
    usedCodes.push(fresh);
    expect(await channel.userIdOfAuthCode(fresh, signal())).toMatchObject({ status: 'ok', payer: { payerId: payer } });
  });
});

describe('Alipay configuration and secrets', () => {
  it('loads ALIPAY_* variables, names each bad one without echoing keys, and is off without an app id', () => {
    expect(loadAlipayConfig({})).toBeUndefined();
    const config = loadAlipayConfig({
      ALIPAY_APP_ID: '2021000000000001',
      ALIPAY_APP_PRIVATE_KEY: APP_PRIVATE_B64,
      ALIPAY_PUBLIC_KEY: sim.alipayPublicKeyPem,
      ALIPAY_NOTIFY_URL: 'https://pay.campus.test/alipay/notify',
      ALIPAY_TIMEOUT_MS: '3000',
    });
    expect(config).toMatchObject({ gatewayUrl: 'https://openapi.alipay.com/gateway.do', timeoutMs: 3000, sellerId: '' });
    let error: unknown;
    try {
      loadAlipayConfig({
        ALIPAY_APP_ID: '12',
        ALIPAY_APP_PRIVATE_KEY: `${APP_PRIVATE_B64.slice(0, 200)}`,
        ALIPAY_TIMEOUT_MS: 'soon',
        ALIPAY_SELLER_ID: '99',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const text = (error as ConfigError).message;
    for (const name of ['ALIPAY_APP_ID', 'ALIPAY_APP_PRIVATE_KEY', 'ALIPAY_PUBLIC_KEY', 'ALIPAY_TIMEOUT_MS', 'ALIPAY_SELLER_ID'])
      expect(text).toContain(name);
    expect(text).not.toContain(APP_PRIVATE_B64.slice(40, 80));
  });

  it('no key, no full payment code and no signature in the log or any message', () => {
    expect(logText).toContain('alipay answered'); // the log was captured at all
    const secrets = [APP_PRIVATE_B64.slice(100, 164), ...usedCodes];
    const seen = [logText, ...messages].join('\n');
    for (const secret of secrets) expect(seen).not.toContain(secret);
    expect(seen).not.toMatch(/"sign"|sign=/);
    for (const n of received) {
      const sign = new URLSearchParams(n.body).get('sign') ?? '';
      expect(sign.length).toBeGreaterThan(100);
      expect(seen).not.toContain(sign.slice(0, 40));
    }
  });
});

function otherKeyPem(): string {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}
