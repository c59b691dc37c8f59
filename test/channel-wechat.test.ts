// The WeChat Pay adapter (switch/channels/wechat/adapter.ts) against the WeChat Pay simulator over loopback
// HTTP, no mocks: code payments through every answer the real micropay gives (paid, the payer still entering
// the password then paying or giving up, system errors then a query, insufficient funds, expired / used /
// foreign codes, refusals, a repeated out_trade_no), reverse with recall=Y, refunds (partial, several, never
// more than paid, idempotent by out_refund_no), recharge orders (Native and JSAPI, idempotent, paid by the
// simulated payer, closed, expired) and their v3 notifications (twice, late, never, forged, tampered, stale),
// the daily bill read into statement rows, signatures checked both ways (a simulator with other keys is
// never believed), aborts and silence settle as `unknown` promptly, and no key or full code is ever logged.
import { createPublicKey, createVerify, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelForgedError, type IncomingNotification, type VerifiedNotification } from '../switch/channels/channel.js';
import { WechatPayCallError, WechatPayChannel, maskCode } from '../switch/channels/wechat/adapter.js';
import { parseBill } from '../switch/channels/wechat/bill.js';
import { loadWechatPayConfig } from '../switch/channels/wechat/config.js';
import { WechatPaySimulator, type NotifyDelivery } from '../switch/channels/wechat/simulator.js';
import { shanghaiDate, yuanToFen } from '../switch/channels/wechat/wire.js';
import { ConfigError } from '../switch/config.js';
import type { Logger } from '../switch/log.js';

let sim: WechatPaySimulator;
let channel: WechatPayChannel;
let logText = '';
let log: Logger;
/** The simulator's clock runs this far ahead of the adapter's (codes expire on it). */
let simAheadMs = 0;
/** Notifications the receiver got: what the adapter made of each (or the error it threw). */
const received: Array<VerifiedNotification | Error> = [];
let receiver: Server;
let notifyUrl = '';
const errorTexts: string[] = [];

const never = new AbortController().signal;
let seq = 0;
function orderNo(): string {
  seq += 1;
  return `T${Date.now().toString(36)}${seq}`.slice(0, 32);
}
function openid(): string {
  seq += 1;
  return `oPayer${seq}${'x'.repeat(22)}`.slice(0, 28);
}

function channelFor(
  target: WechatPaySimulator,
  options: Partial<ConstructorParameters<typeof WechatPayChannel>[0]> = {},
): WechatPayChannel {
  return new WechatPayChannel({
    ...sim.credentials(),
    apiBase: target.url,
    signType: 'HMAC-SHA256',
    notifyUrl,
    clientIp: '127.0.0.1',
    timeoutMs: 2000,
    log,
    ...options,
  });
}

beforeAll(async () => {
  log = pino({ level: 'trace' }, { write: (line: string) => void (logText += line) });
  sim = new WechatPaySimulator({ latencyMs: 0, now: () => Date.now() + simAheadMs });
  await sim.start();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers[name] = value;
      const notification: IncomingNotification = { headers, body: Buffer.concat(chunks).toString('utf8') };
      let ok = true;
      try {
        received.push(channel.verifyNotification(notification));
      } catch (err) {
        received.push(err as Error);
        errorTexts.push((err as Error).message);
        ok = false;
      }
      const reply = channel.notificationReply(ok);
      res.writeHead(reply.httpStatus, { 'content-type': reply.contentType }).end(reply.body);
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  notifyUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/api/v1/channels/wechat/notify`;
  channel = channelFor(sim);
});

afterAll(async () => {
  await sim.stop();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

function pay(code: string, amountFen: number, outTradeNo = orderNo()) {
  return channel.payWithCode({ outTradeNo, authCode: code, amountFen, subject: '第一食堂 一层', terminalId: 'POS-0001' }, never);
}

describe('code payments (v2 micropay, orderquery)', () => {
  it('recognises WeChat codes: 18 digits starting 10-15', () => {
    expect(channel.recognises('134567890123456789')).toBe(true);
    expect(channel.recognises('104567890123456789')).toBe(true);
    expect(channel.recognises('164567890123456789')).toBe(false);
    expect(channel.recognises('28456789012345678901')).toBe(false);
    expect(channel.recognises('13456789012345678')).toBe(false);
    expect(channel.recognises(sim.newCode(openid()))).toBe(true);
  });

  it('pays: the payer known before charging, the amount exact to the fen, the payer debited', async () => {
    const payerId = openid();
    sim.setBalance(payerId, 10_000);
    const code = sim.newCode(payerId);
    expect(await channel.payerOfCode(code, never)).toEqual({ channel: 'wechat', payerId });
    const outTradeNo = orderNo();
    const result = await pay(code, 1234, outTradeNo);
    expect(result).toMatchObject({ status: 'paid', amountFen: 1234, payer: { channel: 'wechat', payerId } });
    if (result.status !== 'paid') return;
    expect(result.channelTxnId).toMatch(/^42000\d{23}$/);
    expect(Math.abs(result.paidAtMs - Date.now())).toBeLessThan(5000);
    expect(sim.balanceOf(payerId)).toBe(10_000 - 1234);
    expect(await channel.queryPayment(outTradeNo, never)).toEqual(result);
    // The same request again (a retry of ours): the same payment, not a second one.
    expect(await pay(code, 1234, outTradeNo)).toEqual(result);
    expect(sim.balanceOf(payerId)).toBe(10_000 - 1234);
  });

  it('a code that is not WeChat, unknown, expired or used is refused; payerOfCode says code_invalid', async () => {
    expect(await pay('284567890123456789', 100)).toMatchObject({ status: 'failed', reason: 'code_invalid' });
    expect(await pay('134567890123456789', 100)).toMatchObject({ status: 'failed', reason: 'code_invalid' });
    expect(await channel.payerOfCode('134567890123456789', never)).toBe('code_invalid');
    const payerId = openid();
    const code = sim.newCode(payerId);
    expect(await pay(code, 100)).toMatchObject({ status: 'paid' });
    expect(await pay(code, 100)).toMatchObject({ status: 'failed', reason: 'code_used' });
    const old = sim.newCode(payerId);
    simAheadMs = 61_000;
    try {
      expect(await channel.payerOfCode(old, never)).toBe('code_invalid');
      expect(await pay(old, 100)).toMatchObject({ status: 'failed', reason: 'code_invalid' });
    } finally {
      simAheadMs = 0;
    }
  });

  it('insufficient funds, a frozen payer and scripted refusals are final failures', async () => {
    const poor = openid();
    sim.setBalance(poor, 99);
    expect(await pay(sim.newCode(poor), 100)).toMatchObject({ status: 'failed', reason: 'insufficient_funds', message: '余额不足' });
    expect(sim.balanceOf(poor)).toBe(99);
    const frozen = openid();
    sim.freeze(frozen);
    expect(await pay(sim.newCode(frozen), 100)).toMatchObject({ status: 'failed', reason: 'payer_refused' });
    const code = sim.newCode(openid());
    sim.script(code, ['expired']);
    expect(await pay(code, 100)).toMatchObject({ status: 'failed', reason: 'code_invalid' });
  });

  it('the payer still entering the password: paying, then paid on a later query', async () => {
    const payerId = openid();
    const code = sim.newCode(payerId);
    sim.script(code, ['paying', 'paying', 'paid']);
    const outTradeNo = orderNo();
    expect(await pay(code, 250, outTradeNo)).toEqual({ status: 'paying' });
    expect(await channel.queryPayment(outTradeNo, never)).toEqual({ status: 'paying' });
    expect(await channel.queryPayment(outTradeNo, never)).toMatchObject({ status: 'paid', amountFen: 250, payer: { payerId } });
  });

  it('the payer gives up: paying, then failed payer_cancelled', async () => {
    const code = sim.newCode(openid());
    sim.script(code, ['paying', 'cancelled']);
    const outTradeNo = orderNo();
    expect(await pay(code, 250, outTradeNo)).toEqual({ status: 'paying' });
    expect(await channel.queryPayment(outTradeNo, never)).toMatchObject({ status: 'failed', reason: 'payer_cancelled' });
  });

  it('SYSTEMERROR and BANKERROR are unknown; the query then tells; a retry of the same payment answers it', async () => {
    const payerId = openid();
    const code = sim.newCode(payerId);
    sim.script(code, ['systemerror', 'bankerror', 'paid']);
    const outTradeNo = orderNo();
    expect(await pay(code, 999, outTradeNo)).toMatchObject({ status: 'unknown' });
    expect(await channel.queryPayment(outTradeNo, never)).toMatchObject({ status: 'unknown' });
    const paid = await channel.queryPayment(outTradeNo, never);
    expect(paid).toMatchObject({ status: 'paid', amountFen: 999 });
    expect(await pay(code, 999, outTradeNo)).toEqual(paid);
    expect(await channel.queryPayment(orderNo(), never)).toEqual({ status: 'not_found' });
  });

  it('the same out_trade_no with other content is refused and changes nothing', async () => {
    const payerId = openid();
    const code = sim.newCode(payerId);
    const outTradeNo = orderNo();
    expect(await pay(code, 300, outTradeNo)).toMatchObject({ status: 'paid', amountFen: 300 });
    const before = sim.balanceOf(payerId);
    expect(await pay(sim.newCode(payerId), 301, outTradeNo)).toMatchObject({ status: 'failed', reason: 'declined' });
    expect(sim.balanceOf(payerId)).toBe(before);
    expect(sim.order(outTradeNo)).toMatchObject({ state: 'SUCCESS', amountFen: 300 });
  });

  it('HTTP 500 is unknown; a channel that does not answer is unknown within the timeout; an abort settles at once', async () => {
    const code = sim.newCode(openid());
    sim.script(code, ['http500', 'paid']);
    const outTradeNo = orderNo();
    expect(await pay(code, 100, outTradeNo)).toMatchObject({ status: 'unknown' });
    expect(await channel.queryPayment(outTradeNo, never)).toMatchObject({ status: 'paid', amountFen: 100 });

    const quick = channelFor(sim, { timeoutMs: 200 });
    const silent = sim.newCode(openid());
    sim.script(silent, ['hang', 'paid']);
    let started = Date.now();
    expect(
      await quick.payWithCode({ outTradeNo: orderNo(), authCode: silent, amountFen: 100, subject: 's', terminalId: 'POS-1' }, never),
    ).toMatchObject({
      status: 'unknown',
    });
    expect(Date.now() - started).toBeLessThan(1500);

    const aborted = sim.newCode(openid());
    sim.script(aborted, ['hang']);
    const controller = new AbortController();
    started = Date.now();
    const micropays = sim.callCount('/pay/micropay');
    const pending = channel.payWithCode(
      { outTradeNo: orderNo(), authCode: aborted, amountFen: 100, subject: 's', terminalId: 'POS-1' },
      controller.signal,
    );
    await expect.poll(() => sim.callCount('/pay/micropay')).toBe(micropays + 1);
    controller.abort();
    expect(await pending).toMatchObject({ status: 'unknown', message: expect.stringContaining('aborted') as unknown });
    expect(Date.now() - started).toBeLessThan(1000);
    sim.failNext('orderquery', 'hang');
    const controller2 = new AbortController();
    const queries = sim.callCount('/pay/orderquery');
    const query = channel.queryPayment(orderNo(), controller2.signal);
    await expect.poll(() => sim.callCount('/pay/orderquery')).toBe(queries + 1);
    controller2.abort();
    expect(await query).toMatchObject({ status: 'unknown' });
  });
});

describe('reverse and refund (v2 /secapi/)', () => {
  it('reverses an undecided payment; recall=Y asks to call again; the payer keeps the money', async () => {
    const payerId = openid();
    sim.setBalance(payerId, 5000);
    const code = sim.newCode(payerId);
    sim.script(code, ['paying']);
    const outTradeNo = orderNo();
    expect(await pay(code, 700, outTradeNo)).toEqual({ status: 'paying' });
    sim.scriptReverse(outTradeNo, ['recall', 'ok']);
    expect(await channel.cancelPayment(outTradeNo, never)).toMatchObject({ status: 'retry' });
    expect(await channel.cancelPayment(outTradeNo, never)).toEqual({ status: 'cancelled' });
    expect(await channel.queryPayment(outTradeNo, never)).toEqual({ status: 'closed' });
    expect(sim.balanceOf(payerId)).toBe(5000);
  });

  it('reversing a paid payment gives the money back; past the window it is refused; SYSTEMERROR retries', async () => {
    const payerId = openid();
    sim.setBalance(payerId, 5000);
    const outTradeNo = orderNo();
    expect(await pay(sim.newCode(payerId), 1500, outTradeNo)).toMatchObject({ status: 'paid' });
    expect(sim.balanceOf(payerId)).toBe(3500);
    sim.failNext('reverse', 'systemerror');
    expect(await channel.cancelPayment(outTradeNo, never)).toMatchObject({ status: 'retry' });
    expect(await channel.cancelPayment(outTradeNo, never)).toEqual({ status: 'cancelled' });
    expect(sim.balanceOf(payerId)).toBe(5000);
    const late = orderNo();
    expect(await pay(sim.newCode(payerId), 100, late)).toMatchObject({ status: 'paid' });
    sim.scriptReverse(late, ['expired']);
    expect(await channel.cancelPayment(late, never)).toMatchObject({
      status: 'refused',
      message: expect.stringContaining('REVERSE_EXPIRE') as unknown,
    });
    expect(await channel.cancelPayment(orderNo(), never)).toEqual({ status: 'cancelled' });
  });

  it('refunds partially, several times, never more than paid; the same out_refund_no is the same refund', async () => {
    const payerId = openid();
    sim.setBalance(payerId, 10_000);
    const outTradeNo = orderNo();
    expect(await pay(sim.newCode(payerId), 1001, outTradeNo)).toMatchObject({ status: 'paid' });
    const first = await channel.refund(
      { outTradeNo, outRefundNo: `${outTradeNo}R1`, refundFen: 400, totalFen: 1001, reason: '退菜' },
      never,
    );
    expect(first).toMatchObject({ status: 'refunded', refundFen: 400 });
    expect(
      await channel.refund({ outTradeNo, outRefundNo: `${outTradeNo}R1`, refundFen: 400, totalFen: 1001, reason: '退菜' }, never),
    ).toEqual(first);
    expect(
      await channel.refund({ outTradeNo, outRefundNo: `${outTradeNo}R1`, refundFen: 401, totalFen: 1001, reason: '退菜' }, never),
    ).toMatchObject({
      status: 'failed',
    });
    expect(
      await channel.refund({ outTradeNo, outRefundNo: `${outTradeNo}R2`, refundFen: 601, totalFen: 1001, reason: '退菜' }, never),
    ).toMatchObject({
      status: 'refunded',
      refundFen: 601,
    });
    expect(
      await channel.refund({ outTradeNo, outRefundNo: `${outTradeNo}R3`, refundFen: 1, totalFen: 1001, reason: '退菜' }, never),
    ).toMatchObject({
      status: 'failed',
    });
    expect(sim.order(outTradeNo)).toMatchObject({ refundedFen: 1001 });
    expect(sim.balanceOf(payerId)).toBe(10_000);
    sim.failNext('refund', 'http500');
    expect(
      await channel.refund({ outTradeNo, outRefundNo: `${outTradeNo}R4`, refundFen: 1, totalFen: 1001, reason: 'x' }, never),
    ).toMatchObject({
      status: 'unknown',
    });
    expect(await channel.queryPayment(outTradeNo, never)).toMatchObject({ status: 'paid', amountFen: 1001 });
  });
});

async function deliveries(promise: Promise<NotifyDelivery[]>): Promise<Array<VerifiedNotification | Error>> {
  const before = received.length;
  const replies = await promise;
  return received.slice(before, before + replies.length);
}

describe('recharge orders (v3) and notifications', () => {
  it('a Native order: code_url; the same request again is the same order; other content is refused', async () => {
    const outTradeNo = orderNo();
    const request = { outTradeNo, amountFen: 99_900, subject: '校园卡充值', expiresInSec: 900 };
    const order = await channel.createRechargeOrder(request, never);
    expect(order).toMatchObject({ kind: 'qr', qrContent: expect.stringMatching(/^weixin:\/\/wxpay\/bizpayurl\?pr=/) as unknown });
    expect(await channel.createRechargeOrder(request, never)).toEqual(order);
    await expect(channel.createRechargeOrder({ ...request, amountFen: 99_901 }, never)).rejects.toMatchObject({ outcome: 'refused' });
    expect(await channel.queryRechargeOrder(outTradeNo, never)).toEqual({ status: 'paying' });
    expect(await channel.queryPayment(outTradeNo, never)).toEqual({ status: 'paying' });
  });

  it('paid by the payer: the notification verifies with the exact amount; the query says the same', async () => {
    const outTradeNo = orderNo();
    await channel.createRechargeOrder({ outTradeNo, amountFen: 5001, subject: '校园卡充值', expiresInSec: 900 }, never);
    const payerId = openid();
    const [note] = await deliveries(sim.payOrder(outTradeNo, { payerId }));
    expect(note).toMatchObject({ outTradeNo, amountFen: 5001, paid: true, payer: { channel: 'wechat', payerId } });
    const paid = await channel.queryRechargeOrder(outTradeNo, never);
    expect(paid).toMatchObject({ status: 'paid', amountFen: 5001, channelTxnId: (note as VerifiedNotification).channelTxnId });
    expect(await channel.queryPayment(outTradeNo, never)).toMatchObject({ status: 'paid', amountFen: 5001 });
    // Closing a paid order: WeChat Pay refuses (ORDERPAID); the adapter's query after it says paid, by whom.
    expect(await channel.closeRechargeOrder(outTradeNo, never)).toMatchObject({
      status: 'paid',
      amountFen: 5001,
      channelTxnId: (note as VerifiedNotification).channelTxnId,
      payer: { channel: 'wechat', payerId },
    });
    expect(sim.order(outTradeNo)?.state).toBe('SUCCESS');
  });

  it('twice (the same notification id), late, and never (settled by query)', async () => {
    const twice = orderNo();
    await channel.createRechargeOrder({ outTradeNo: twice, amountFen: 100, subject: '充值', expiresInSec: 900 }, never);
    const notes = await deliveries(sim.payOrder(twice, { notify: { times: 2 } }));
    expect(notes).toHaveLength(2);
    expect((notes[0] as VerifiedNotification).notificationId).toBeDefined();
    expect((notes[0] as VerifiedNotification).notificationId).toBe((notes[1] as VerifiedNotification).notificationId);

    const silent = orderNo();
    await channel.createRechargeOrder({ outTradeNo: silent, amountFen: 200, subject: '充值', expiresInSec: 900 }, never);
    expect(await deliveries(sim.payOrder(silent, { notify: false }))).toEqual([]);
    expect(await channel.queryRechargeOrder(silent, never)).toMatchObject({ status: 'paid', amountFen: 200 });

    // Out of order: the later order's notification arrives first, the earlier one late.
    const early = orderNo();
    const later = orderNo();
    await channel.createRechargeOrder({ outTradeNo: early, amountFen: 300, subject: '充值', expiresInSec: 900 }, never);
    await channel.createRechargeOrder({ outTradeNo: later, amountFen: 400, subject: '充值', expiresInSec: 900 }, never);
    await sim.payOrder(early, { notify: false });
    await sim.payOrder(later, { notify: false });
    const before = received.length;
    const lateOne = sim.notify(early, { delayMs: 50 });
    await sim.notify(later);
    await lateOne;
    expect(received.slice(before).map((n) => [(n as VerifiedNotification).outTradeNo, (n as VerifiedNotification).amountFen])).toEqual([
      [later, 400],
      [early, 300],
    ]);
  });

  it('forged, tampered, stale or foreign-key notifications are ChannelForgedError and answered FAIL', async () => {
    const outTradeNo = orderNo();
    await channel.createRechargeOrder({ outTradeNo, amountFen: 800, subject: '充值', expiresInSec: 900 }, never);
    await sim.payOrder(outTradeNo, { notify: false });
    for (const forged of ['signature', 'amount', 'stale', 'serial'] as const) {
      const before = received.length;
      const replies = await sim.notify(outTradeNo, { forged });
      expect(replies).toEqual([{ status: 500, body: '{"code":"FAIL","message":"失败"}' }]);
      expect(received[before]).toBeInstanceOf(ChannelForgedError);
    }
    const good = sim.notification(outTradeNo);
    expect(channel.verifyNotification(good)).toMatchObject({ amountFen: 800 });
    // The body changed by one byte after signing.
    expect(() => channel.verifyNotification({ ...good, body: good.body.replace('"id":"', '"id":"X') })).toThrow(ChannelForgedError);
    expect(channel.notificationReply(true)).toEqual({ httpStatus: 200, contentType: 'application/json', body: '{"code":"SUCCESS"}' });
  });

  it('a JSAPI order: prepay_id and paySign signed with the merchant key over the four fields', async () => {
    const payerId = openid();
    const order = await channel.createRechargeOrder(
      { outTradeNo: orderNo(), amountFen: 1000, subject: '充值', payerId, expiresInSec: 600 },
      never,
    );
    expect(order.kind).toBe('jsapi');
    if (order.kind !== 'jsapi') return;
    expect(order.package).toMatch(/^prepay_id=wx/);
    expect(order.signType).toBe('RSA');
    const message = `${order.appId}\n${order.timeStamp}\n${order.nonceStr}\n${order.package}\n`;
    const merchantPublic = createPublicKey(sim.credentials().merchantPrivateKey);
    expect(createVerify('RSA-SHA256').update(message).verify(merchantPublic, order.paySign, 'base64')).toBe(true);
  });

  it('closed and expired orders read as closed and cannot be paid', async () => {
    const closed = orderNo();
    await channel.createRechargeOrder({ outTradeNo: closed, amountFen: 100, subject: '充值', expiresInSec: 900 }, never);
    expect(await channel.closeRechargeOrder(closed, never)).toEqual({ status: 'closed' });
    expect(await channel.queryRechargeOrder(closed, never)).toEqual({ status: 'closed' });
    // Closing again is closing a closed order: closed.
    expect(await channel.closeRechargeOrder(closed, never)).toEqual({ status: 'closed' });
    await expect(sim.payOrder(closed)).rejects.toThrow(/CLOSED/);
    const expired = orderNo();
    await channel.createRechargeOrder({ outTradeNo: expired, amountFen: 100, subject: '充值', expiresInSec: 60 }, never);
    simAheadMs = 61_000;
    try {
      expect(await channel.queryPayment(expired, never)).toEqual({ status: 'closed' });
    } finally {
      simAheadMs = 0;
    }
    expect(await channel.queryRechargeOrder(orderNo(), never)).toEqual({ status: 'not_found' });
  });

  it('close: a channel in trouble is unknown and the order stays payable; an order never made is not_found', async () => {
    const outTradeNo = orderNo();
    await channel.createRechargeOrder({ outTradeNo, amountFen: 100, subject: '充值', expiresInSec: 900 }, never);
    sim.failNext('v3', 'systemerror');
    expect(await channel.closeRechargeOrder(outTradeNo, never)).toMatchObject({
      status: 'unknown',
      message: expect.stringMatching(/500/) as unknown,
    });
    sim.failNext('v3', 'http500');
    expect(await channel.closeRechargeOrder(outTradeNo, never)).toMatchObject({ status: 'unknown' });
    expect(sim.order(outTradeNo)?.state).toBe('NOTPAY');
    sim.forgeAnswers = true;
    try {
      // A 204 signed with another key is not believed: nobody knows whether it closed.
      expect(await channel.closeRechargeOrder(outTradeNo, never)).toMatchObject({ status: 'unknown' });
    } finally {
      sim.forgeAnswers = false;
    }
    expect(await channel.closeRechargeOrder(orderNo(), never)).toEqual({ status: 'not_found' });
    expect(await channel.closeRechargeOrder(outTradeNo, never)).toEqual({ status: 'closed' });
  });
});

describe('signatures both ways', () => {
  it('a simulator with other keys is never believed: v2 unknown, v3 unknown, its notifications forged', async () => {
    const impostor = new WechatPaySimulator({
      latencyMs: 0,
      keys: { ...sim.keys, apiKey: 'Z'.repeat(32), platformPrivateKeyPem: otherPrivatePem() },
    });
    await impostor.start();
    try {
      const fooled = channelFor(impostor);
      const code = impostor.newCode(openid());
      expect(
        await fooled.payWithCode({ outTradeNo: orderNo(), authCode: code, amountFen: 100, subject: 's', terminalId: 'P' }, never),
      ).toMatchObject({
        status: 'unknown',
        message: expect.stringContaining('签名错误') as unknown,
      });
      const outTradeNo = orderNo();
      await expect(
        fooled.createRechargeOrder({ outTradeNo, amountFen: 100, subject: '充值', expiresInSec: 900 }, never),
      ).rejects.toMatchObject({
        outcome: 'unknown',
        message: expect.stringContaining('does not verify') as unknown,
      });
      await impostor.payOrder(outTradeNo, { notify: false });
      expect(() => channel.verifyNotification(impostor.notification(outTradeNo))).toThrow(ChannelForgedError);
    } finally {
      await impostor.stop();
    }
  });

  it('a signed "paid" answer whose signature is wrong is unknown, not paid', async () => {
    const payerId = openid();
    const outTradeNo = orderNo();
    sim.forgeAnswers = true;
    try {
      expect(await pay(sim.newCode(payerId), 100, outTradeNo)).toMatchObject({
        status: 'unknown',
        message: expect.stringContaining('signature') as unknown,
      });
      expect(await channel.queryPayment(outTradeNo, never)).toMatchObject({ status: 'unknown' });
    } finally {
      sim.forgeAnswers = false;
    }
    expect(await channel.queryPayment(outTradeNo, never)).toMatchObject({ status: 'paid', amountFen: 100 });
  });

  it('a request signed with a wrong API key is refused by the simulator as 签名错误', async () => {
    const wrong = channelFor(sim, { apiKey: 'Q'.repeat(32) });
    const outTradeNo = orderNo();
    expect(
      await wrong.payWithCode({ outTradeNo, authCode: sim.newCode(openid()), amountFen: 100, subject: 's', terminalId: 'P' }, never),
    ).toMatchObject({
      status: 'unknown',
    });
    expect(sim.order(outTradeNo)).toBeUndefined();
    const md5 = channelFor(sim, { signType: 'MD5' });
    expect(
      await md5.payWithCode({ outTradeNo, authCode: sim.newCode(openid()), amountFen: 100, subject: 's', terminalId: 'P' }, never),
    ).toMatchObject({
      status: 'paid',
    });
  });
});

function otherPrivatePem(): string {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

describe('daily statement (v2 downloadbill)', () => {
  it('reads the bill into rows: payments, refunds and a reversal, exact to the fen', async () => {
    const billSim = new WechatPaySimulator({ latencyMs: 0, keys: sim.keys });
    await billSim.start();
    try {
      const c = channelFor(billSim);
      const payerId = openid();
      const a = orderNo();
      const b = orderNo();
      expect(
        await c.payWithCode(
          { outTradeNo: a, authCode: billSim.newCode(payerId), amountFen: 1234, subject: '食堂,一层', terminalId: 'P' },
          never,
        ),
      ).toMatchObject({
        status: 'paid',
      });
      expect(
        await c.payWithCode({ outTradeNo: b, authCode: billSim.newCode(payerId), amountFen: 5, subject: 's', terminalId: 'P' }, never),
      ).toMatchObject({
        status: 'paid',
      });
      expect(await c.refund({ outTradeNo: a, outRefundNo: `${a}R`, refundFen: 34, totalFen: 1234, reason: 'r' }, never)).toMatchObject({
        status: 'refunded',
      });
      expect(await c.cancelPayment(b, never)).toEqual({ status: 'cancelled' });
      const today = shanghaiDate(Date.now());
      const text = billSim.bill(today);
      expect(text.split('\r\n')[1]).toMatch(/^`\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},`wx/);
      expect(text).toContain('总交易单数,应结订单总金额');
      const rows = await c.dailyStatement(today, never);
      expect(rows).toEqual(parseBill(text));
      expect(rows.map((r) => [r.outTradeNo, r.kind, r.amountFen, r.outRefundNo])).toEqual([
        [a, 'payment', 1234, undefined],
        [b, 'payment', 5, undefined],
        [a, 'refund', 34, `${a}R`],
        [b, 'refund', 5, b],
      ]);
      expect(await c.dailyStatement('2020-01-01', never)).toEqual([]);
      await expect(c.dailyStatement('20200101', never)).rejects.toThrow(/YYYY-MM-DD/);
    } finally {
      await billSim.stop();
    }
  });

  it('converts yuan exactly', () => {
    expect(yuanToFen('12.34')).toBe(1234);
    expect(yuanToFen('0.07')).toBe(7);
    expect(yuanToFen('999.9')).toBe(99_990);
    expect(yuanToFen('0.1')).toBe(10);
    expect(yuanToFen('1.005')).toBeUndefined();
    expect(yuanToFen('-1.00')).toBeUndefined();
    expect(yuanToFen('1e3')).toBeUndefined();
  });
});

describe('configuration (WECHATPAY_*)', () => {
  it('loads from files and variables; problems name the variable and never show a secret', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wechatpay-'));
    try {
      writeFileSync(join(dir, 'apiclient_key.pem'), sim.keys.merchantPrivateKeyPem);
      writeFileSync(join(dir, 'pub_key.pem'), sim.keys.platformPublicKeyPem);
      const env = {
        WECHATPAY_API_BASE: sim.url,
        WECHATPAY_MCH_ID: sim.keys.mchId,
        WECHATPAY_APP_ID: sim.keys.appId,
        WECHATPAY_API_KEY: sim.keys.apiKey,
        WECHATPAY_API_V3_KEY: sim.keys.apiV3Key,
        WECHATPAY_MCH_PRIVATE_KEY_FILE: join(dir, 'apiclient_key.pem'),
        WECHATPAY_MCH_CERT_SERIAL: sim.keys.merchantSerial,
        WECHATPAY_PLATFORM_CERT_FILE: join(dir, 'pub_key.pem'),
        WECHATPAY_PLATFORM_PUBLIC_KEY_ID: sim.keys.platformSerial,
        WECHATPAY_NOTIFY_URL: 'https://ecard.example.edu.cn/api/v1/channels/wechat/notify',
      };
      const config = loadWechatPayConfig(env);
      expect(config).toMatchObject({
        mchId: sim.keys.mchId,
        signType: 'HMAC-SHA256',
        platformSerial: sim.keys.platformSerial,
        timeoutMs: 5000,
      });
      expect(loadWechatPayConfig({})).toBeUndefined();
      let error: unknown;
      try {
        loadWechatPayConfig({
          ...env,
          WECHATPAY_API_KEY: `${sim.keys.apiKey}!`,
          WECHATPAY_SIGN_TYPE: 'SHA1',
          WECHATPAY_API_BASE: 'https://api.mch.weixin.qq.com',
        });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as Error).message;
      expect(message).toContain('WECHATPAY_API_KEY');
      expect(message).toContain('WECHATPAY_SIGN_TYPE');
      expect(message).toContain('WECHATPAY_MCH_CERT_FILE'); // https needs the client certificate for /secapi/
      expect(message).not.toContain(sim.keys.apiKey);
      expect(() => loadWechatPayConfig({ WECHATPAY_API_KEY: 'x' })).toThrow(/WECHATPAY_MCH_ID: required/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('secrets', () => {
  it('no key, signature or full payment code in the log or in error messages', () => {
    expect(logText.length).toBeGreaterThan(0);
    const k = sim.keys;
    const pemBody = (pem: string): string => pem.split('\n')[5] ?? 'unreachable';
    const secrets = [k.apiKey, k.apiV3Key, pemBody(k.merchantPrivateKeyPem), pemBody(k.platformPrivateKeyPem)];
    const all = logText + errorTexts.join('\n');
    for (const secret of secrets) expect(all).not.toContain(secret);
    expect(all).not.toMatch(/\b1[0-5]\d{16}\b/);
    expect(all).toContain('wechat pay');
    expect(maskCode('134567890123456789')).toBe('1345************89');
  });
});

it('WechatPayCallError carries the outcome', () => {
  expect(new WechatPayCallError('x', 'refused').outcome).toBe('refused');
});
