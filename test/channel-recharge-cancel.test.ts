// KioskService/CancelRechargeOrder: the kiosk's 取消 closes its recharge order at the channel (Alipay
// alipay.trade.close, WeChat Pay close order) and then in the ledger (recharge-order.lua 'finish': closed,
// off the pending index, its open-order place and its hold on the day's maximum given back, in one
// script). Paid before the close got there is credited once; a channel that does not answer leaves the
// order payable. Only the kiosk that made an order may close it. A close racing the payment's
// notification never loses money nor credits twice. A real switch with its gateway, Redis, and both
// channel simulators posting their signed notifications to the gateway; the audit passes after each test.
import { status as Status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { createLogger } from '../switch/log.js';
import { RechargeChannel } from '../proto/gen/cardswitch/v1/common.js';
import {
  RechargeOrderStatus,
  type CancelRechargeOrderResponse,
  type RechargeRequest,
  type RechargeResponse,
} from '../proto/gen/cardswitch/v1/kiosk.js';
import { KIOSK_TERMINAL, kioskClient } from './helpers/clients.js';
import { call, grpcError, openCard, POS_TERMINAL, readJournal, terminalMetadata, testConfig } from './helpers/switch.js';
import { freePort } from '../switch/redis/local-redis.js';

let sims: ChannelSimulators;
let app: SwitchApp;
let base = '';
let cardSeq = 0;
let kiosk: ReturnType<typeof kioskClient>;
const OTHER_KIOSK = { ...KIOSK_TERMINAL, id: 'KIOSK-D9-03', secret: 'kiosk-secret-other-0123456789' };
/** A kiosk whose terminal id is the phone orders' source: it owns none of them. */
const HOLDER_KIOSK = { ...KIOSK_TERMINAL, id: 'holder', secret: 'kiosk-secret-holder-0123456789' };
const md = terminalMetadata(KIOSK_TERMINAL);

beforeAll(async () => {
  const port = await freePort();
  const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
  sims = await startChannelSimulators({ log, notifyBaseUrl: `http://127.0.0.1:${port}`, latencyMs: 0 });
  // The state RPC and the loop ask the channel only about orders older than a minute: what moves an
  // order here is the close, the notification, or both.
  const config = testConfig('chrcx', { GATEWAY_PORT: String(port), RECHARGE_QUERY_DELAY_MS: '60000' });
  app = await startSwitch(config, log, Date.now, { channels: sims.channels });
  base = `http://127.0.0.1:${app.gateway?.port}`;
  for (const t of [KIOSK_TERMINAL, OTHER_KIOSK, HOLDER_KIOSK, POS_TERMINAL]) await app.terminals.register(t);
  kiosk = kioskClient(app);
});
afterAll(async () => {
  kiosk.close();
  await app.stop();
  await sims.stop();
});
afterEach(async () => {
  await sims.alipay.drainNotifications();
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
});

/** A fresh card with `openingFen` on it: its number and serial. */
async function card(openingFen = 1_000): Promise<{ cardNo: string; serial: string }> {
  cardSeq += 1;
  const cardNo = `7810${String(cardSeq).padStart(4, '0')}`;
  await openCard(app, cardNo, `EC${cardNo}`, openingFen, { eu: `wecom:u${cardNo}`, sync: '1' });
  return { cardNo, serial: `EC${cardNo}` };
}

const recharge = (req: RechargeRequest, metadata = md): Promise<RechargeResponse> => call(kiosk, 'recharge', req, metadata);
const cancel = (orderId: string, metadata = md): Promise<CancelRechargeOrderResponse> =>
  call(kiosk, 'cancelRechargeOrder', { orderId }, metadata);

let requestSeq = 0;
async function kioskOrder(serial: string, channel: 'wechat' | 'alipay', amountFen: number): Promise<RechargeResponse> {
  requestSeq += 1;
  return recharge({
    cardholder: { card: { cardSerial: serial } },
    channel: channel === 'wechat' ? RechargeChannel.RECHARGE_CHANNEL_WECHAT : RechargeChannel.RECHARGE_CHANNEL_ALIPAY,
    requestId: `kc-${requestSeq}`,
    amountFen,
  });
}

const balanceOf = async (cardNo: string): Promise<number> => Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));

async function credits(cardNo: string, orderId: string): Promise<number> {
  return (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter((e) => e.fields['k'] === 'rch' && e.fields['sq'] === orderId)
    .length;
}

/** The order as the ledger keeps it: its state, whether it is still among the card's open orders and pending. */
async function ledgerOrder(cardNo: string, channel: 'WECHAT' | 'ALIPAY', orderId: string) {
  const k = app.keys;
  return {
    state: await app.redis.hget(k.order(cardNo, channel, orderId), 'ost'),
    credited: (await app.redis.hget(k.order(cardNo, channel, orderId), 'ans')) !== null,
    open: (await app.redis.hexists(k.rechargeOpen(cardNo), orderId)) === 1,
    pending: (await app.redis.zscore(k.rechargePending(k.shardOf(cardNo)), `${channel}:${orderId}`)) !== null,
  };
}

describe('closed at the channel', () => {
  it('WeChat: closed there and in the ledger, its open place and day hold given back; a repeat answers the same', async () => {
    const { cardNo, serial } = await card(1_000);
    // 300.00 yuan a day: three orders of 99.90 leave 0.30; a fourth of 50.00 does not fit ...
    const orders = [];
    for (let i = 0; i < 3; i++) orders.push(await kioskOrder(serial, 'wechat', 99_900));
    const tooMuch = await grpcError(kioskOrder(serial, 'wechat', 5_000));
    expect(tooMuch.code).toBe(Status.FAILED_PRECONDITION);
    const first = orders[0] as RechargeResponse;
    expect(await ledgerOrder(cardNo, 'WECHAT', first.orderId)).toEqual({ state: 'P', credited: false, open: true, pending: true });

    const closed = await cancel(first.orderId);
    expect(closed).toMatchObject({
      orderId: first.orderId,
      status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_CLOSED,
      amountFen: 99_900,
      balanceAfterFen: 0,
      transactionId: '',
      cardNumber: cardNo,
      displayText: '已取消充值，订单已关闭，未扣款',
    });
    expect(sims.wechat.order(first.orderId)?.state).toBe('CLOSED');
    await expect(sims.wechat.payOrder(first.orderId)).rejects.toThrow(/not payable/);
    expect(await ledgerOrder(cardNo, 'WECHAT', first.orderId)).toEqual({ state: 'C', credited: false, open: false, pending: false });
    // ... and now it does: the cancelled order no longer holds its 99.90 against the day.
    expect((await kioskOrder(serial, 'wechat', 5_000)).orderId).not.toBe('');
    // Idempotent: the same answer, and the channel is not asked again: a failure planned for its next v3
    // call stays unused until the next order is made.
    sims.wechat.failNext('v3', 'http500');
    expect(await cancel(first.orderId)).toEqual(closed);
    expect((await grpcError(kioskOrder(serial, 'wechat', 100))).code).toBe(Status.UNAVAILABLE);
    const stillFails = await grpcError(kioskOrder(serial, 'alipay', 99_800));
    expect(stillFails.code).toBe(Status.FAILED_PRECONDITION);
    expect(await balanceOf(cardNo)).toBe(1_000);
  });

  it('Alipay: alipay.trade.close once; the QR cannot be paid; a second cancel does not call Alipay again', async () => {
    const { cardNo, serial } = await card(0);
    const order = await kioskOrder(serial, 'alipay', 2_000);
    const calls = sims.alipay.callCount('alipay.trade.close');
    expect(await cancel(order.orderId)).toMatchObject({ status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_CLOSED, cardNumber: cardNo });
    expect(sims.alipay.callCount('alipay.trade.close')).toBe(calls + 1);
    expect(() => sims.alipay.payOrder(order.orderId)).toThrow(/TRADE_CLOSED/);
    expect(await cancel(order.orderId)).toMatchObject({ status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_CLOSED });
    expect(sims.alipay.callCount('alipay.trade.close')).toBe(calls + 1);
    expect(await ledgerOrder(cardNo, 'ALIPAY', order.orderId)).toEqual({ state: 'C', credited: false, open: false, pending: false });
    // The RechargeOrderState RPC agrees.
    const state = await call<{ orderId: string }, { status: RechargeOrderStatus }>(
      kiosk,
      'rechargeOrderState',
      { orderId: order.orderId },
      md,
    );
    expect(state.status).toBe(RechargeOrderStatus.RECHARGE_ORDER_STATUS_CLOSED);
  });
});

describe('paid before the close got there', () => {
  for (const channel of ['wechat', 'alipay'] as const) {
    it(`${channel}: the close finds it paid and credits it once; the notification after it credits nothing more`, async () => {
      const { cardNo, serial } = await card(500);
      const order = await kioskOrder(serial, channel, 2_000);
      // Paid on the phone; the notification has not arrived yet.
      if (channel === 'wechat') await sims.wechat.payOrder(order.orderId, { notify: false });
      else {
        sims.alipay.planNotify(order.orderId, { times: 0 });
        await sims.alipay.payOrder(order.orderId).notified;
      }
      const paid = await cancel(order.orderId);
      expect(paid).toMatchObject({ status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_PAID, amountFen: 2_000, balanceAfterFen: 2_500 });
      expect(paid.displayText).toBe(`${channel === 'wechat' ? '微信' : '支付宝'}充值成功 20.00元 余额25.00元`);
      expect(paid.transactionId).not.toBe('');
      // The notification arrives now: acknowledged, nothing more credited.
      const replies =
        channel === 'wechat'
          ? (await sims.wechat.notify(order.orderId, { times: 2 })).map((d) => d.status)
          : (await sims.alipay.notify(order.orderId, { times: 2 })).map((d) => d.reply);
      expect(replies).toEqual(channel === 'wechat' ? [200, 200] : ['success', 'success']);
      expect(await balanceOf(cardNo)).toBe(2_500);
      expect(await credits(cardNo, order.orderId)).toBe(1);
      expect(await cancel(order.orderId)).toEqual(paid);
      expect(await ledgerOrder(cardNo, channel === 'wechat' ? 'WECHAT' : 'ALIPAY', order.orderId)).toMatchObject({
        credited: true,
        open: false,
        pending: false,
      });
    });
  }
});

describe('the channel does not close it', () => {
  it('WeChat not answering: the order stays pending and payable (said so), and a payment is credited', async () => {
    const { cardNo, serial } = await card(500);
    const order = await kioskOrder(serial, 'wechat', 2_000);
    sims.wechat.failNext('v3', 'http500');
    const open = await cancel(order.orderId);
    expect(open).toMatchObject({ status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_PENDING, expiresAtMs: order.expiresAtMs });
    const until = new Date(open.expiresAtMs + 8 * 3_600_000).toISOString().slice(11, 19);
    expect(open.displayText).toBe(`二维码已关闭，但微信暂未关闭订单：${until}前付款仍会充入卡中，之后不能再支付；请勿重复付款`);
    expect(await ledgerOrder(cardNo, 'WECHAT', order.orderId)).toEqual({ state: 'P', credited: false, open: true, pending: true });
    expect((await sims.wechat.payOrder(order.orderId)).map((d) => d.status)).toEqual([200]);
    expect(await balanceOf(cardNo)).toBe(2_500);
    expect(await cancel(order.orderId)).toMatchObject({ status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_PAID, balanceAfterFen: 2_500 });
  });

  it('Alipay in trouble (system error): pending; asked again once it answers, it closes', async () => {
    const { cardNo, serial } = await card(0);
    const order = await kioskOrder(serial, 'alipay', 1_000);
    sims.alipay.failNext('alipay.trade.close', 'system_error');
    expect(await cancel(order.orderId)).toMatchObject({ status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_PENDING });
    expect(await ledgerOrder(cardNo, 'ALIPAY', order.orderId)).toMatchObject({ state: 'P', open: true });
    expect(await cancel(order.orderId)).toMatchObject({ status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_CLOSED });
    expect(await ledgerOrder(cardNo, 'ALIPAY', order.orderId)).toEqual({ state: 'C', credited: false, open: false, pending: false });
  });
});

describe('who may close an order', () => {
  /** A phone order (the holder's page on the gateway): its id. */
  async function phoneOrder(cardNo: string): Promise<string> {
    const sessions = app.gateway?.sessions;
    if (sessions === undefined) throw new Error('no gateway');
    const { accessToken } = await sessions.start({ provider: 'wecom', userId: `wecom:u${cardNo}` }, cardNo);
    const res = await fetch(`${base}/api/v1/ecard/recharge-orders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'wechat', amountFen: 1_000, requestId: `ph-${cardNo}` }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { orderId: string }).orderId;
  }

  it("another kiosk's order, a phone order (even to a kiosk named 'holder'), a POS, a bad id: refused, nothing closed", async () => {
    const { cardNo, serial } = await card(0);
    const mine = await kioskOrder(serial, 'wechat', 1_000);
    const phone = await phoneOrder(cardNo);
    const refusals: [string, ReturnType<typeof terminalMetadata>, Status, string | undefined][] = [
      [mine.orderId, terminalMetadata(OTHER_KIOSK), Status.NOT_FOUND, 'ORDER_NOT_FOUND'],
      [phone, md, Status.NOT_FOUND, 'ORDER_NOT_FOUND'],
      [phone, terminalMetadata(HOLDER_KIOSK), Status.NOT_FOUND, 'ORDER_NOT_FOUND'],
      [mine.orderId, terminalMetadata(POS_TERMINAL), Status.PERMISSION_DENIED, undefined],
      ['R00', md, Status.NOT_FOUND, 'ORDER_NOT_FOUND'],
      ['bad|id', md, Status.INVALID_ARGUMENT, undefined],
      ['', md, Status.INVALID_ARGUMENT, undefined],
    ];
    for (const [orderId, metadata, code, reason] of refusals) {
      const err = await grpcError(cancel(orderId, metadata));
      expect({ orderId, code: err.code }).toEqual({ orderId, code });
      if (reason !== undefined) expect(err.metadata.get('error-reason')).toEqual([reason]);
      if (code === Status.NOT_FOUND) expect(err.details).toMatch(/找不到该充值订单|no recharge order/);
    }
    for (const orderId of [mine.orderId, phone]) {
      expect(sims.wechat.order(orderId)?.state).toBe('NOTPAY');
      expect(await ledgerOrder(cardNo, 'WECHAT', orderId)).toEqual({ state: 'P', credited: false, open: true, pending: true });
    }
    // Nor may a kiosk named 'holder' make orders in the phone's namespace.
    const reserved = await grpcError(
      recharge(
        {
          cardholder: { card: { cardSerial: serial } },
          channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT,
          requestId: `ph-${cardNo}`,
          amountFen: 1_000,
        },
        terminalMetadata(HOLDER_KIOSK),
      ),
    );
    expect(reserved.code).toBe(Status.FAILED_PRECONDITION);
    expect(reserved.metadata.get('error-reason')).toEqual(['TERMINAL_ID_RESERVED']);
    // The kiosk that made it may.
    expect(await cancel(mine.orderId)).toMatchObject({ status: RechargeOrderStatus.RECHARGE_ORDER_STATUS_CLOSED });
  });
});

describe("the order's lifetime from the kiosk's QR time (qr_timeout_sec)", () => {
  it('lives the QR time in whole minutes (at least one); out of range is refused and makes no order', async () => {
    const { cardNo, serial } = await card(0);
    const ask = (qrTimeoutSec: number, requestId: string) =>
      recharge({
        cardholder: { card: { cardSerial: serial } },
        channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT,
        requestId,
        amountFen: 1_000,
        qrTimeoutSec,
      });
    for (const bad of [0, -5, 86_401]) {
      const err = await grpcError(ask(bad, `qt-bad-${bad}`));
      expect({ bad, code: err.code }).toEqual({ bad, code: Status.INVALID_ARGUMENT });
      expect(err.details).toMatch(/qr_timeout_sec/);
    }
    expect(await app.redis.hlen(app.keys.rechargeOpen(cardNo))).toBe(0);
    const cases: [number, number][] = [
      [150, 120_000], // whole minutes, rounded down
      [30, 60_000], // at least a minute
    ];
    for (const [qrTimeoutSec, lifetimeMs] of cases) {
      const before = Date.now();
      const order = await ask(qrTimeoutSec, `qt-${qrTimeoutSec}-${cardNo}`);
      const after = Date.now();
      expect(order.expiresAtMs).toBeGreaterThanOrEqual(before + lifetimeMs - 1000);
      expect(order.expiresAtMs).toBeLessThanOrEqual(after + lifetimeMs + 1000);
      // A retry answers the order as first made, whatever QR time it says now, while a minute of it is left
      // (the QR would be gone before a payer could use it otherwise: the kiosk is told to make a new one).
      const retry = ask(900, `qt-${qrTimeoutSec}-${cardNo}`);
      if (lifetimeMs > 60_000) expect((await retry).expiresAtMs).toBe(order.expiresAtMs);
      else expect((await grpcError(retry)).metadata.get('error-reason')).toEqual(['ORDER_FINISHED']);
    }
  });
});

describe('a close racing the payment', () => {
  it('pay (notified) and close at once, 40 times on both channels: paid iff credited, once; closed iff nothing moved', async () => {
    const outcomes: Record<string, number> = {};
    for (let round = 0; round < 40; round++) {
      const channel = round % 2 === 0 ? 'wechat' : 'alipay';
      const { cardNo, serial } = await card(100);
      const order = await kioskOrder(serial, channel, 700);
      // Half the rounds: the payer pays while the close is on its way (the channel decides which came
      // first). The other half: paid already, and the notification races the close's own credit.
      const payFirst = round % 4 >= 2;
      if (payFirst) {
        if (channel === 'wechat') await sims.wechat.payOrder(order.orderId, { notify: false });
        else {
          sims.alipay.planNotify(order.orderId, { times: 0 });
          await sims.alipay.payOrder(order.orderId).notified;
        }
      }
      const pay = async (): Promise<string> => {
        // A few turns of the event loop, different each round, so the payment lands at different points of the close.
        for (let i = 0; i < (round * 7) % 23; i++) await new Promise((resolve) => setImmediate(resolve));
        try {
          if (channel === 'wechat') {
            const replies = payFirst ? await sims.wechat.notify(order.orderId) : await sims.wechat.payOrder(order.orderId);
            return replies.map((d) => d.status).join(',');
          }
          const replies = payFirst ? await sims.alipay.notify(order.orderId) : await sims.alipay.payOrder(order.orderId).notified;
          return replies.map((d) => d.reply).join(',');
        } catch (err) {
          return `refused: ${(err as Error).message}`;
        }
      };
      const [closed, paid] = await Promise.all([cancel(order.orderId), pay()]);
      await sims.alipay.drainNotifications();
      const channelPaid =
        channel === 'wechat'
          ? sims.wechat.order(order.orderId)?.state === 'SUCCESS'
          : (await sims.channels.get('alipay')?.queryPayment(order.orderId, AbortSignal.timeout(5_000)))?.status === 'paid';
      const where = { round, channel, payFirst, paid, closed: closed.status };
      const state = await ledgerOrder(cardNo, channel === 'wechat' ? 'WECHAT' : 'ALIPAY', order.orderId);
      if (channelPaid) {
        expect({
          ...where,
          answer: closed.status,
          balance: await balanceOf(cardNo),
          credits: await credits(cardNo, order.orderId),
        }).toEqual({
          ...where,
          answer: RechargeOrderStatus.RECHARGE_ORDER_STATUS_PAID,
          balance: 800,
          credits: 1,
        });
        expect(paid).not.toMatch(/refused|fail|500/);
        expect({ ...where, ...state }).toEqual({ ...where, state: 'P', credited: true, open: false, pending: false });
      } else {
        expect({
          ...where,
          answer: closed.status,
          balance: await balanceOf(cardNo),
          credits: await credits(cardNo, order.orderId),
        }).toEqual({
          ...where,
          answer: RechargeOrderStatus.RECHARGE_ORDER_STATUS_CLOSED,
          balance: 100,
          credits: 0,
        });
        expect(paid).toMatch(/^refused: /);
        expect({ ...where, ...state }).toEqual({ ...where, state: 'C', credited: false, open: false, pending: false });
      }
      const key = `${channel}:${payFirst ? 'paid first' : 'raced'}:${channelPaid ? 'paid' : 'closed'}`;
      outcomes[key] = (outcomes[key] ?? 0) + 1;
      // A resend of the notification afterwards changes nothing.
      if (channelPaid) {
        if (channel === 'wechat') await sims.wechat.notify(order.orderId);
        else await sims.alipay.notify(order.orderId);
        expect(await credits(cardNo, order.orderId)).toBe(1);
      }
    }
    // Every round paid first ends paid; the rounds raced end one way or the other, and each is checked above.
    expect((outcomes['wechat:paid first:paid'] ?? 0) + (outcomes['alipay:paid first:paid'] ?? 0)).toBe(20);
  }, 120_000);
});
