// Recharge orders end to end: the holder's API on the real uWS gateway, a real switch and Redis, and
// both channel simulators over loopback posting their signed notifications to the gateway. Money is
// credited only on a verified notification or the switch's own query, once per order, whatever arrives
// twice, late, forged, for another amount, for an order never made, or at the same time as a query; the
// audit passes after every test.
import { status as Status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { settleByQuery } from '../switch/domain/recharge-orders.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { createRechargeOrder, readRechargeOrder, rechargeOrderId } from '../switch/ledger/recharge-orders.js';
import { createLogger } from '../switch/log.js';
import { RechargeChannel } from '../proto/gen/cardswitch/v1/common.js';
import {
  RechargeOrderStatus,
  type RechargeRequest,
  type RechargeResponse,
  type RechargeOrderStateResponse,
} from '../proto/gen/cardswitch/v1/kiosk.js';
import { KIOSK_TERMINAL, kioskClient } from './helpers/clients.js';
import { call, dumpKeySpace, grpcError, openCard, readJournal, terminalMetadata, testConfig } from './helpers/switch.js';
import { freePort } from '../switch/redis/local-redis.js';

let sims: ChannelSimulators;
let app: SwitchApp;
let base = '';
let cardSeq = 0;
let kiosk: ReturnType<typeof kioskClient>;
const OTHER_KIOSK = { ...KIOSK_TERMINAL, id: 'KIOSK-D9-02', secret: 'kiosk-secret-other-0123456789' };

beforeAll(async () => {
  const port = await freePort();
  const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
  sims = await startChannelSimulators({ log, notifyBaseUrl: `http://127.0.0.1:${port}`, latencyMs: 0 });
  // The loop and the page's GET query only orders older than a minute here: what credits in these
  // tests is the notification, unless a test runs a second switch that queries at once.
  const config = testConfig('chrch', { GATEWAY_PORT: String(port), RECHARGE_QUERY_DELAY_MS: '60000', RECHARGE_SETTLE_INTERVAL_MS: '100' });
  app = await startSwitch(config, log, Date.now, { channels: sims.channels });
  base = `http://127.0.0.1:${app.gateway?.port}`;
  await app.terminals.register(KIOSK_TERMINAL);
  await app.terminals.register(OTHER_KIOSK);
  kiosk = kioskClient(app);
});
afterAll(async () => {
  kiosk.close();
  await app.stop();
  await sims.stop();
});
afterEach(async () => {
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
});

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

async function http(method: string, path: string, token: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** A fresh card bound to a fresh user, with a session: its number and access token. */
async function holder(
  openingFen = 1000,
  provider: 'wecom' | 'wechat' = 'wecom',
): Promise<{ cardNo: string; token: string; userId: string }> {
  cardSeq += 1;
  const cardNo = `7700${String(cardSeq).padStart(4, '0')}`;
  const userId = provider === 'wecom' ? `wecom:u${cardNo}` : `wechat:oPayer${cardNo}`;
  await openCard(app, cardNo, `EC${cardNo}`, openingFen, { eu: userId, sync: '1' });
  const sessions = app.gateway?.sessions;
  if (sessions === undefined) throw new Error('no gateway');
  const tokens = await sessions.start({ provider, userId }, cardNo);
  return { cardNo, token: tokens.accessToken, userId };
}

async function balanceOf(cardNo: string): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));
}

async function rechargeEntries(cardNo: string): Promise<number> {
  return (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter((e) => e.fields['k'] === 'rch' && e.fields['c'] === cardNo)
    .length;
}

async function newOrder(token: string, channel: string, amountFen: number, requestId = `req-${Math.random().toString(36).slice(2, 10)}`) {
  return http('POST', '/api/v1/ecard/recharge-orders', token, { channel, amountFen, requestId });
}

async function state(token: string, orderId: string): Promise<Record<string, unknown>> {
  const answer = await http('GET', `/api/v1/ecard/recharge-orders/${orderId}`, token);
  expect(answer.status).toBe(200);
  return answer.body;
}

async function waitFor<T>(what: string, probe: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('recharge by notification', () => {
  it('WeChat: the order answers a QR, the payer pays, the notification credits once; the state says paid', async () => {
    const { cardNo, token } = await holder(1000);
    const made = await newOrder(token, 'wechat', 50_000);
    expect(made.status).toBe(201);
    const orderId = made.body['orderId'] as string;
    expect(made.body).toMatchObject({ channel: 'wechat', amountFen: 50_000, pay: { kind: 'qr' } });
    expect((made.body['pay'] as { qrContent: string }).qrContent).toMatch(/^weixin:\/\//);
    expect(await state(token, orderId)).toMatchObject({ state: 'pending' });
    const deliveries = await sims.wechat.payOrder(orderId);
    expect(deliveries.map((d) => d.status)).toEqual([200]);
    expect(await balanceOf(cardNo)).toBe(51_000);
    expect(await rechargeEntries(cardNo)).toBe(1);
    expect(await state(token, orderId)).toMatchObject({ state: 'paid', balanceAfterFen: 51_000 });
    // The bound card's live events carry the credit (what the events WebSocket sends the page).
    const events = await app.redis.xrange(app.keys.cardEvents(cardNo), '-', '+');
    expect(events).toHaveLength(1);
    expect(events[0]?.[1].join('\n')).toMatch(/k\nrch\na\n50000\nb\n51000\nm\nx:ch:WECHAT/);
    // Another holder does not see this order.
    const other = await holder(0);
    const hidden = await http('GET', `/api/v1/ecard/recharge-orders/${orderId}`, other.token);
    expect([hidden.status, (hidden.body['error'] as { code: string }).code]).toEqual([404, 'ORDER_NOT_FOUND']);
  });

  it('WeChat inside WeChat: a holder signed in through WeChat gets JSAPI parameters for their openid', async () => {
    const { cardNo, token, userId } = await holder(0, 'wechat');
    const made = await newOrder(token, 'wechat', 1200);
    expect(made.status).toBe(201);
    expect(made.body['pay']).toMatchObject({ kind: 'jsapi', signType: 'RSA' });
    const orderId = made.body['orderId'] as string;
    expect(sims.wechat.order(orderId)?.payerId).toBe(userId.slice('wechat:'.length));
    await sims.wechat.payOrder(orderId);
    expect(await balanceOf(cardNo)).toBe(1200);
  });

  it('Alipay: a precreated QR paid by the payer is credited once by its notification', async () => {
    const { cardNo, token } = await holder(0);
    const made = await newOrder(token, 'alipay', 2345);
    expect(made.status).toBe(201);
    const orderId = made.body['orderId'] as string;
    expect((made.body['pay'] as { qrContent: string }).qrContent).toMatch(/^https:\/\/qr\.alipay\.com\//);
    const { notified } = sims.alipay.payOrder(orderId);
    expect((await notified).map((d) => d.reply)).toEqual(['success']);
    expect(await balanceOf(cardNo)).toBe(2345);
    expect(await state(token, orderId)).toMatchObject({ state: 'paid' });
  });

  it('duplicate notifications (three of each channel) credit once, and each is acknowledged', async () => {
    const w = await holder(0);
    const wOrder = (await newOrder(w.token, 'wechat', 700)).body['orderId'] as string;
    const wDeliveries = await sims.wechat.payOrder(wOrder, { notify: { times: 3 } });
    expect(wDeliveries.map((d) => d.status)).toEqual([200, 200, 200]);
    const a = await holder(0);
    const aOrder = (await newOrder(a.token, 'alipay', 800)).body['orderId'] as string;
    sims.alipay.planNotify(aOrder, { times: 3 });
    expect((await sims.alipay.payOrder(aOrder).notified).map((d) => d.reply)).toEqual(['success', 'success', 'success']);
    expect([await balanceOf(w.cardNo), await balanceOf(a.cardNo)]).toEqual([700, 800]);
    expect([await rechargeEntries(w.cardNo), await rechargeEntries(a.cardNo)]).toEqual([1, 1]);
  });

  it('out of order: a waiting notification credits nothing; the paid one credits; a late closed one changes nothing', async () => {
    const { cardNo, token } = await holder(0);
    const orderId = (await newOrder(token, 'alipay', 900)).body['orderId'] as string;
    sims.alipay.planNotify(orderId, { times: 0 });
    sims.alipay.payOrder(orderId);
    expect((await sims.alipay.notify(orderId, { status: 'WAIT_BUYER_PAY' })).map((d) => d.reply)).toEqual(['success']);
    expect(await balanceOf(cardNo)).toBe(0);
    await sims.alipay.notify(orderId);
    await sims.alipay.notify(orderId, { status: 'TRADE_CLOSED' });
    expect(await balanceOf(cardNo)).toBe(900);
    expect(await state(token, orderId)).toMatchObject({ state: 'paid' });
  });

  it('the same notification 300 times in parallel credits once', async () => {
    const { cardNo, token } = await holder(0);
    const orderId = (await newOrder(token, 'wechat', 99_900)).body['orderId'] as string;
    await sims.wechat.payOrder(orderId, { notify: false });
    const { headers, body } = sims.wechat.notification(orderId);
    const replies = await Promise.all(
      Array.from({ length: 300 }, () =>
        fetch(`${base}/api/v1/channels/wechat/notify`, { method: 'POST', headers, body }).then(
          async (r) => `${r.status} ${await r.text()}`,
        ),
      ),
    );
    expect(new Set(replies)).toEqual(new Set(['200 {"code":"SUCCESS"}']));
    expect(await balanceOf(cardNo)).toBe(99_900);
    expect(await rechargeEntries(cardNo)).toBe(1);
  });
});

describe('what credits nothing', () => {
  it('a forged signature is refused with the channel failure reply; the genuine one after it credits once', async () => {
    const { cardNo, token } = await holder(0);
    const orderId = (await newOrder(token, 'wechat', 1500)).body['orderId'] as string;
    const forged = await sims.wechat.payOrder(orderId, { notify: { forged: 'signature' } });
    expect(forged.map((d) => [d.status, d.body])).toEqual([[500, '{"code":"FAIL","message":"失败"}']]);
    const tampered = await sims.wechat.notify(orderId, { forged: 'amount' });
    expect(tampered.map((d) => d.status)).toEqual([500]);
    const alipay = await holder(0);
    const aOrder = (await newOrder(alipay.token, 'alipay', 1600)).body['orderId'] as string;
    sims.alipay.planNotify(aOrder, { forged: 'signature' });
    expect((await sims.alipay.payOrder(aOrder).notified).map((d) => d.reply)).toEqual(['fail']);
    expect([await balanceOf(cardNo), await balanceOf(alipay.cardNo)]).toEqual([0, 0]);
    expect(await state(token, orderId)).toMatchObject({ state: 'pending' });
    await sims.wechat.notify(orderId);
    await sims.alipay.notify(aOrder);
    expect([await balanceOf(cardNo), await balanceOf(alipay.cardNo)]).toEqual([1500, 1600]);
  });

  it('a verified notification for another amount than the order credits nothing and closes the order', async () => {
    const { cardNo } = await holder(0);
    // The channel has the order for 50.00 yuan, the ledger for 1.00: the channel's genuine word for another amount.
    const orderId = rechargeOrderId(app.context, cardNo, 'mismatch');
    const nowMs = Date.now();
    await createRechargeOrder(app.context, {
      cardNo,
      channel: 'WECHAT',
      orderId,
      amountFen: 100,
      expiresAtMs: nowMs + 600_000,
      dailyLimitFen: 0,
      source: 'holder',
      nowMs,
    });
    const wechat = sims.channels.get('wechat');
    await wechat?.createRechargeOrder(
      { outTradeNo: orderId, amountFen: 5000, subject: '校园卡充值', expiresInSec: 600 },
      AbortSignal.timeout(5000),
    );
    const deliveries = await sims.wechat.payOrder(orderId);
    expect(deliveries.map((d) => d.status)).toEqual([200]);
    expect(await balanceOf(cardNo)).toBe(0);
    expect(await readRechargeOrder(app.context, 'WECHAT', orderId)).toMatchObject({ state: 'C', credited: false });
  });

  it('an order paid after its card was cancelled is refunded to the payer in full, once, and closed', async () => {
    for (const channel of ['alipay', 'wechat'] as const) {
      const { cardNo, token } = await holder(0);
      const made = await newOrder(token, channel, 2500);
      expect(made.status).toBe(201);
      const orderId = made.body['orderId'] as string;
      await app.ledger.setStatus(cardNo, 'cancelled');
      const payerId = channel === 'alipay' ? sims.alipay.newPayer({ balanceFen: 2500 }) : `oPayerCancelled${cardNo}`;
      if (channel === 'wechat') sims.wechat.setBalance(payerId, 2500);
      const replies =
        channel === 'alipay'
          ? await sims.alipay.payOrder(orderId, payerId).notified
          : await sims.wechat.payOrder(orderId, { payerId, notify: { times: 2 } });
      expect(replies.length, channel).toBeGreaterThan(0);
      const payerFen = () => (channel === 'alipay' ? sims.alipay.balanceOf(payerId) : sims.wechat.balanceOf(payerId));
      await waitFor(
        `${channel} refund`,
        () => Promise.resolve(payerFen()),
        (fen) => fen === 2500,
      );
      expect(await balanceOf(cardNo), channel).toBe(0);
      expect(await rechargeEntries(cardNo), channel).toBe(0);
      expect(await state(token, orderId), channel).toMatchObject({ state: 'closed' });
    }
  });

  it('a notification for an order this switch never made credits nothing', async () => {
    const { cardNo } = await holder(0);
    const orderId = rechargeOrderId(app.context, cardNo, 'never-made');
    const alipay = sims.channels.get('alipay');
    await alipay?.createRechargeOrder(
      { outTradeNo: orderId, amountFen: 3000, subject: '校园卡充值', expiresInSec: 600 },
      AbortSignal.timeout(5000),
    );
    expect((await sims.alipay.payOrder(orderId).notified).map((d) => d.reply)).toEqual(['success']);
    expect(await balanceOf(cardNo)).toBe(0);
    expect(await rechargeEntries(cardNo)).toBe(0);
  });

  it('999.01 yuan on WeChat is refused before any order is made (the guide: at most 999 yuan a time)', async () => {
    const { token } = await holder(0);
    const before = await dumpKeySpace(app.redis, app.context.config.keyPrefix);
    const callsBefore = sims.wechat.callCount('/v3/pay/transactions/native');
    const refused = await newOrder(token, 'wechat', 99_901);
    expect(refused.status).toBe(400);
    expect(refused.body['error']).toMatchObject({
      code: 'AMOUNT_OUT_OF_RANGE',
      field: 'amountFen',
      message: '微信充值单笔金额为0.01-999.00元',
    });
    expect(sims.wechat.callCount('/v3/pay/transactions/native')).toBe(callsBefore);
    expect(await dumpKeySpace(app.redis, app.context.config.keyPrefix)).toEqual(before);
  });

  it('the same request id on the other channel is refused (409), and the first order keeps its place and its state', async () => {
    const { cardNo, token } = await holder(0);
    const first = await newOrder(token, 'wechat', 1000, 'same-req-1');
    expect(first.status).toBe(201);
    const before = await dumpKeySpace(app.redis, app.context.config.keyPrefix);
    const other = await newOrder(token, 'alipay', 1000, 'same-req-1');
    expect(other.status).toBe(409);
    expect(other.body['error']).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT' });
    // It names the request id the page sent (the order id is the switch's own).
    expect(JSON.stringify(other.body['error'])).toContain('requestId same-req-1 was already used');
    expect(await dumpKeySpace(app.redis, app.context.config.keyPrefix)).toEqual(before);
    const orderId = first.body['orderId'] as string;
    expect(await state(token, orderId)).toMatchObject({ channel: 'wechat', state: 'pending' });
    await sims.wechat.payOrder(orderId);
    await waitFor(
      'the credit',
      () => balanceOf(cardNo),
      (fen) => fen === 1000,
    );
    expect(await state(token, orderId)).toMatchObject({ channel: 'wechat', state: 'paid' });
  });

  it('a card re-bound to another user: their order with a request id the old holder used is a new order, not the old one (which the channel refuses to make for another payer)', async () => {
    const old = await holder(0, 'wechat');
    const first = await newOrder(old.token, 'wechat', 100, 'rebind-1');
    expect([first.status, (first.body['pay'] as { kind: string }).kind]).toEqual([201, 'jsapi']);
    expect((await app.ledger.ecardBinding('unbind', old.cardNo, old.userId)).code).toBe('done');
    expect((await http('GET', `/api/v1/ecard/recharge-orders/${first.body['orderId'] as string}`, old.token)).status).toBe(403);
    const newUser = `wecom:new${old.cardNo}`;
    expect((await app.ledger.ecardBinding('bind', old.cardNo, newUser)).code).toBe('done');
    const token = (await app.gateway!.sessions.start({ provider: 'wecom', userId: newUser }, old.cardNo)).accessToken;
    const second = await newOrder(token, 'wechat', 100, 'rebind-1');
    expect(second.status).toBe(201);
    expect(second.body['orderId']).not.toBe(first.body['orderId']);
    expect((second.body['pay'] as { kind: string }).kind).toBe('qr');
    // The old holder's order stays theirs as it was; the new one is paid and credited on its own.
    await sims.wechat.payOrder(second.body['orderId'] as string);
    expect(await balanceOf(old.cardNo)).toBe(100);
    expect(await state(token, first.body['orderId'] as string)).toMatchObject({ state: 'pending' });
  });

  it('the daily maximum counts unpaid orders: three of 999 yuan leave 3 yuan for a fourth', async () => {
    const { token } = await holder(0);
    for (let i = 0; i < 3; i++) expect((await newOrder(token, 'alipay', 99_900)).status).toBe(201);
    const over = await newOrder(token, 'wechat', 301);
    expect(over.status).toBe(409);
    expect(over.body['error']).toMatchObject({ code: 'DAILY_RECHARGE_LIMIT', field: 'amountFen' });
    expect((await newOrder(token, 'wechat', 300)).status).toBe(201);
  });
});

describe('recharge by query', () => {
  it('a lost notification: another switch instance (started afterwards, reading the pending orders from Redis) settles it by query, once', async () => {
    const { cardNo, token } = await holder(0);
    const wOrder = (await newOrder(token, 'wechat', 4200)).body['orderId'] as string;
    await sims.wechat.payOrder(wOrder, { notify: false });
    const aOrder = (await newOrder(token, 'alipay', 800)).body['orderId'] as string;
    sims.alipay.planNotify(aOrder, { times: 0 });
    await sims.alipay.payOrder(aOrder).notified;
    expect(await balanceOf(cardNo)).toBe(0);
    const config = testConfig('unused', { RECHARGE_QUERY_DELAY_MS: '0', RECHARGE_SETTLE_INTERVAL_MS: '50' });
    const querying = await startSwitch({ ...config, keyPrefix: app.context.config.keyPrefix }, createLogger('silent'), Date.now, {
      channels: sims.channels,
      grpc: false,
      gateway: false,
    });
    try {
      await waitFor(
        'both orders paid',
        () => balanceOf(cardNo),
        (fen) => fen === 5000,
      );
    } finally {
      await querying.stop();
    }
    expect(await state(token, wOrder)).toMatchObject({ state: 'paid' });
    expect(await state(token, aOrder)).toMatchObject({ state: 'paid' });
    expect(await rechargeEntries(cardNo)).toBe(2);
  });

  it('a notification arriving while the query settles the same order credits once (20 rounds)', async () => {
    for (let round = 0; round < 20; round++) {
      const { cardNo, token } = await holder(0);
      const orderId = (await newOrder(token, 'wechat', 100 + round)).body['orderId'] as string;
      await sims.wechat.payOrder(orderId, { notify: false });
      const order = await readRechargeOrder(app.context, 'WECHAT', orderId);
      if (order === undefined) throw new Error('no order');
      const { headers, body } = sims.wechat.notification(orderId);
      const [queried, notified] = await Promise.all([
        settleByQuery(app.context, order),
        fetch(`${base}/api/v1/channels/wechat/notify`, { method: 'POST', headers, body }).then((r) => r.status),
      ]);
      expect([queried, notified]).toEqual(['credited', 200]);
      expect(await balanceOf(cardNo)).toBe(100 + round);
      expect(await rechargeEntries(cardNo)).toBe(1);
    }
  });

  it('an order never paid is closed once the channel closes it', async () => {
    const { token } = await holder(0);
    const orderId = (await newOrder(token, 'wechat', 500)).body['orderId'] as string;
    sims.wechat.expireOrder(orderId);
    const order = await readRechargeOrder(app.context, 'WECHAT', orderId);
    if (order === undefined) throw new Error('no order');
    expect(await settleByQuery(app.context, order)).toBe('closed');
    expect(await state(token, orderId)).toMatchObject({ state: 'closed' });
  });
});

describe('Alipay 校园派 (school, name and student number typed in Alipay)', () => {
  const SCHOOL = '北京信息科技大学';

  async function student(name: string): Promise<{ cardNo: string; personNumber: string; token: string }> {
    const { cardNo, token } = await holder(0);
    const personNumber = `2026${cardNo}`;
    await app.redis.hset(app.keys.account(cardNo), 'name', name, 'sno', personNumber);
    await app.redis.set(app.keys.personNumber(personNumber), cardNo);
    return { cardNo, personNumber, token };
  }

  const notifyUrl = (): string => `${base}/api/v1/channels/alipay/notify`;

  it('the name matches the number: credited once, however often Alipay notifies', async () => {
    const { cardNo, personNumber } = await student('李四');
    const paid = sims.alipay.campusRecharge({ school: SCHOOL, name: '李四', personNumber, amountFen: 10_000 }, notifyUrl(), { times: 2 });
    expect((await paid.notified).map((d) => d.reply)).toEqual(['success', 'success']);
    expect(await balanceOf(cardNo)).toBe(10_000);
    expect(await rechargeEntries(cardNo)).toBe(1);
  });

  it('a wrong name (or an unknown number, or another school) credits nothing and the payer gets the money back', async () => {
    const { cardNo, personNumber } = await student('王五');
    const cases = [
      { school: SCHOOL, name: '王六', personNumber },
      { school: SCHOOL, name: '王五', personNumber: '1999000000' },
      { school: '另一所大学', name: '王五', personNumber },
    ];
    for (const typed of cases) {
      const payerId = sims.alipay.newPayer({ balanceFen: 5000 });
      const paid = sims.alipay.campusRecharge({ ...typed, amountFen: 5000, payerId }, notifyUrl(), { times: 2 });
      expect(
        (await paid.notified).map((d) => d.reply),
        JSON.stringify(typed),
      ).toEqual(['success', 'success']);
      expect(sims.alipay.balanceOf(payerId), JSON.stringify(typed)).toBe(5000);
    }
    expect(await balanceOf(cardNo)).toBe(0);
    expect(await rechargeEntries(cardNo)).toBe(0);
  });

  it('a payment refused and refunded stays refused when Alipay sends it again after the number is imported', async () => {
    const { cardNo } = await holder(0);
    const personNumber = `2027${cardNo}`;
    const payerId = sims.alipay.newPayer({ balanceFen: 5000 });
    const paid = sims.alipay.campusRecharge({ school: SCHOOL, name: '孙八', personNumber, amountFen: 5000, payerId }, notifyUrl());
    expect((await paid.notified).map((d) => d.reply)).toEqual(['success']);
    expect(sims.alipay.balanceOf(payerId)).toBe(5000);
    // The card office imports the number; Alipay, whose 'success' was lost, sends the payment again.
    await app.redis.hset(app.keys.account(cardNo), 'name', '孙八', 'sno', personNumber);
    await app.redis.set(app.keys.personNumber(personNumber), cardNo);
    const again = await sims.alipay.notify(paid.outTradeNo, { status: 'TRADE_SUCCESS', times: 2 });
    expect(again.map((d) => d.reply)).toEqual(['success', 'success']);
    expect(sims.alipay.balanceOf(payerId)).toBe(5000);
    expect(await balanceOf(cardNo)).toBe(0);
    expect(await rechargeEntries(cardNo)).toBe(0);
  });

  it('a payment credited stays credited (not refunded) when Alipay sends it again after the name changed', async () => {
    const { cardNo, personNumber } = await student('周九');
    const payerId = sims.alipay.newPayer({ balanceFen: 8000 });
    const paid = sims.alipay.campusRecharge({ school: SCHOOL, name: '周九', personNumber, amountFen: 8000, payerId }, notifyUrl());
    expect((await paid.notified).map((d) => d.reply)).toEqual(['success']);
    await app.redis.hset(app.keys.account(cardNo), 'name', '周玖');
    const again = await sims.alipay.notify(paid.outTradeNo, { status: 'TRADE_SUCCESS' });
    expect(again.map((d) => d.reply)).toEqual(['success']);
    expect(sims.alipay.balanceOf(payerId)).toBe(0);
    expect(await balanceOf(cardNo)).toBe(8000);
    expect(await rechargeEntries(cardNo)).toBe(1);
  });

  it("the day's maximum counts the card's unpaid QR orders: a 校园派 payment over it is refused, and the orders still credit", async () => {
    const { cardNo, personNumber, token } = await student('吴十');
    const orders: string[] = [];
    for (let i = 0; i < 3; i++) {
      const made = await newOrder(token, 'alipay', 99_900);
      expect(made.status).toBe(201);
      orders.push(made.body['orderId'] as string);
    }
    const payerId = sims.alipay.newPayer({ balanceFen: 99_900 });
    const campus = sims.alipay.campusRecharge({ school: SCHOOL, name: '吴十', personNumber, amountFen: 99_900, payerId }, notifyUrl());
    expect((await campus.notified).map((d) => d.reply)).toEqual(['success']);
    expect(sims.alipay.balanceOf(payerId)).toBe(99_900);
    for (const orderId of orders) await sims.alipay.payOrder(orderId).notified;
    expect(await balanceOf(cardNo)).toBe(3 * 99_900);
    expect(await rechargeEntries(cardNo)).toBe(3);
    // Refused over the day is refused for good: sent again, it is refunded again (idempotently), never credited.
    await sims.alipay.notify(campus.outTradeNo, { status: 'TRADE_SUCCESS' });
    expect(sims.alipay.balanceOf(payerId)).toBe(99_900);
    expect(await balanceOf(cardNo)).toBe(3 * 99_900);
  });
});

describe('the kiosk (KioskService/Recharge makes the same order; RechargeOrderState follows it)', () => {
  const md = terminalMetadata(KIOSK_TERMINAL);
  const recharge = (req: RechargeRequest, metadata = md): Promise<RechargeResponse> => call(kiosk, 'recharge', req, metadata);
  const orderState = (orderId: string, metadata = md): Promise<RechargeOrderStateResponse> =>
    call(kiosk, 'rechargeOrderState', { orderId }, metadata);

  it('answers a QR and the order id; the payment credits once and the state says so', async () => {
    const { cardNo } = await holder(10_000);
    const req = {
      cardholder: { card: { cardSerial: `EC${cardNo}` } },
      channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT,
      requestId: 'k-0001',
      amountFen: 5_000,
    };
    const made = await recharge(req);
    expect(made).toMatchObject({ cardNumber: cardNo, amountFen: 5_000, displayText: '请用微信扫码支付 50.00元' });
    expect(made.qrContent).toMatch(/^weixin:\/\//);
    expect(await recharge(req)).toMatchObject({ orderId: made.orderId, qrContent: made.qrContent });
    expect(await orderState(made.orderId)).toMatchObject({
      status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_PENDING,
      displayText: '等待支付',
    });
    await sims.wechat.payOrder(made.orderId, { notify: { times: 2 } });
    const paid = await orderState(made.orderId);
    expect(paid).toMatchObject({ status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_PAID, balanceAfterFen: 15_000, cardNumber: cardNo });
    expect(paid.displayText).toContain('微信充值成功 50.00元 余额150.00元');
    const entries = (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter(
      (e) => e.fields['k'] === 'rch' && e.fields['c'] === cardNo,
    );
    expect(entries.map((e) => [e.id, e.fields['f'], e.fields['sq']])).toEqual([[paid.transactionId, 'x:ch:WECHAT', made.orderId]]);
    // Another kiosk does not see this kiosk's order.
    const err = await grpcError(orderState(made.orderId, terminalMetadata(OTHER_KIOSK)));
    expect(err.code).toBe(Status.NOT_FOUND);
  });

  it('identifies the cardholder by student/staff number as well, and a lost card still takes a recharge', async () => {
    const { cardNo } = await holder(1_000);
    const person = `S${cardNo}`;
    await app.redis.set(app.keys.personNumber(person), cardNo);
    await app.ledger.setStatus(cardNo, 'lost');
    const made = await recharge({
      cardholder: { personNumber: person },
      channel: RechargeChannel.RECHARGE_CHANNEL_ALIPAY,
      requestId: 'k-0002',
      amountFen: 12_345,
    });
    expect(made).toMatchObject({ cardNumber: cardNo, displayText: '请用支付宝扫码支付 123.45元' });
    await sims.alipay.payOrder(made.orderId).notified;
    expect(await orderState(made.orderId)).toMatchObject({
      status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_PAID,
      balanceAfterFen: 13_345,
    });
  });

  it('refuses the counter, over 999.00 yuan on WeChat, no cardholder or an unknown card, and makes no order', async () => {
    const { cardNo } = await holder(0);
    const tap = { card: { cardSerial: `EC${cardNo}` } };
    const before = await dumpKeySpace(app.redis, app.context.config.keyPrefix);
    const refusals: [RechargeRequest, Status][] = [
      [
        { cardholder: tap, channel: RechargeChannel.RECHARGE_CHANNEL_COUNTER, requestId: 'k-bad-1', amountFen: 100 },
        Status.INVALID_ARGUMENT,
      ],
      [
        { cardholder: tap, channel: RechargeChannel.RECHARGE_CHANNEL_UNSPECIFIED, requestId: 'k-bad-2', amountFen: 100 },
        Status.INVALID_ARGUMENT,
      ],
      [
        { cardholder: tap, channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT, requestId: 'k-bad-3', amountFen: 99_901 },
        Status.INVALID_ARGUMENT,
      ],
      [{ cardholder: tap, channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT, requestId: 'bad|id', amountFen: 100 }, Status.INVALID_ARGUMENT],
      [{ cardholder: tap, channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT, requestId: 'k-bad-4', amountFen: 0 }, Status.INVALID_ARGUMENT],
      [
        { cardholder: undefined, channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT, requestId: 'k-bad-5', amountFen: 100 },
        Status.INVALID_ARGUMENT,
      ],
      [
        {
          cardholder: { card: { cardSerial: 'FFFFFFFF' } },
          channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT,
          requestId: 'k-bad-6',
          amountFen: 100,
        },
        Status.NOT_FOUND,
      ],
    ];
    for (const [req, code] of refusals) {
      const err = await grpcError(recharge(req));
      expect({ req: req.requestId, code: err.code }).toEqual({ req: req.requestId, code });
    }
    expect(await dumpKeySpace(app.redis, app.context.config.keyPrefix)).toEqual(before);
  });
});
