// Channel-order credits (recharge.lua, through AdminService/ManualRecharge) and operator adjustments
// (AdminService/Adjust) against a real switch and Redis: money is credited exactly once per
// (channel, order id) and adjusted once per adjustment id, retries replay the first answer byte for
// byte, and every refusal changes nothing.
import { status as Status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RechargeChannel } from '../proto/gen/cardswitch/v1/common.js';
import { ManualRechargeRequest, ManualRechargeResponse, type AdjustResponse } from '../proto/gen/cardswitch/v1/admin.js';
import type { SwitchApp } from '../switch/app.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { MoneyLedger } from '../switch/ledger/money.js';
import { createRechargeOrder, rechargeOrderId } from '../switch/ledger/recharge-orders.js';
import { adminClient, operatorMetadata, startClockedSwitch, TestClock } from './helpers/clients.js';
import { call, dumpKeySpace, grpcError, openCard, readJournal, unaryBytes } from './helpers/switch.js';

const DAILY_LIMIT_FEN = 150_000;
// 2026-11-26 10:00 in campus time (UTC+8).
const START_MS = Date.UTC(2026, 10, 26, 2, 0, 0);
const MANUAL_RECHARGE = '/cardswitch.v1.AdminService/ManualRecharge';

let app: SwitchApp;
let clock: TestClock;
let admin: ReturnType<typeof adminClient>;
let cardCounter = 0;

beforeAll(async () => {
  clock = new TestClock(START_MS);
  app = await startClockedSwitch('recharge', clock, { DAILY_RECHARGE_LIMIT_FEN: String(DAILY_LIMIT_FEN) });
  admin = adminClient(app);
});
afterAll(async () => {
  admin.close();
  await app.stop();
});

/** A fresh card with its serial and person number; `shardOf` picks one in the same shard as another card (or not). */
async function newCard(
  openingFen = 10_000,
  shardOf?: { cardNo: string; same: boolean },
): Promise<{ cardNo: string; serial: string; person: string }> {
  let cardNo = '';
  do {
    cardCounter++;
    cardNo = String(20240000 + cardCounter);
  } while (shardOf !== undefined && (app.keys.shardOf(cardNo) === app.keys.shardOf(shardOf.cardNo)) !== shardOf.same);
  const serial = `AB${String(cardCounter).padStart(6, '0')}`;
  const person = `P${cardNo}`;
  await openCard(app, cardNo, serial, openingFen, { sno: person });
  await app.redis.set(app.keys.personNumber(person), cardNo);
  return { cardNo, serial, person };
}

/** ManualRecharge with its answer's bytes, to compare a retry byte for byte. */
async function creditBytes(
  cardNumber: string,
  channel: RechargeChannel,
  channelOrderId: string,
  amountFen: number,
): Promise<{ res: ManualRechargeResponse; bytes: Buffer }> {
  const request = ManualRechargeRequest.encode({ cardNumber, channel, channelOrderId, amountFen, reason: '现金充值' }).finish();
  const bytes = await unaryBytes(admin, MANUAL_RECHARGE, request, operatorMetadata());
  return { res: ManualRechargeResponse.decode(bytes), bytes };
}

function manualRecharge(
  cardNumber: string,
  channel: RechargeChannel,
  channelOrderId: string,
  amountFen: number,
  reason = '现金充值',
): Promise<ManualRechargeResponse> {
  return call(admin, 'manualRecharge', { cardNumber, channel, channelOrderId, amountFen, reason }, operatorMetadata());
}

function adjust(cardNumber: string, adjustmentId: string, amountFen: number, reason: string): Promise<AdjustResponse> {
  return call(admin, 'adjust', { cardNumber, adjustmentId, amountFen, reason }, operatorMetadata());
}

async function balance(cardNo: string): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));
}

async function entriesOf(cardNo: string) {
  return (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter((e) => e.fields['c'] === cardNo);
}

/** Balance, journal length and the whole key space: a refusal must leave all three as they were. */
async function snapshot(cardNo: string): Promise<unknown> {
  return {
    balance: await balance(cardNo),
    journalLength: await app.redis.xlen(app.keys.journalOfCard(cardNo)),
    keys: await dumpKeySpace(app.redis, app.keys.prefix),
  };
}

async function expectRefusal(cardNo: string, pending: () => Promise<unknown>, code: Status, details?: RegExp): Promise<void> {
  const before = await snapshot(cardNo);
  const err = await grpcError(pending());
  expect(err.code, err.details).toBe(code);
  if (details !== undefined) expect(err.details).toMatch(details);
  expect(await snapshot(cardNo)).toEqual(before);
}

// The exactly-once credit of a channel order (recharge.lua) through AdminService/ManualRecharge. The
// kiosk's Recharge makes a recharge order paid with a QR code instead (test/channel-recharge.test.ts),
// credited by the same script when the channel says paid.
describe('channel order credits (recharge.lua)', () => {
  it('credits a channel order once; a retry replays the first answer byte for byte and moves nothing', async () => {
    const card = await newCard(10_000);
    const first = await creditBytes(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-order-0001', 5_000);
    expect(first.res).toMatchObject({ balanceAfterFen: 15_000 });
    expect(first.res.transactionId).not.toBe('');

    const afterFirst = await snapshot(card.cardNo);
    const again = await creditBytes(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-order-0001', 5_000);
    expect(again.bytes.equals(first.bytes)).toBe(true);
    clock.nowMs += 1000;
    const later = await creditBytes(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-order-0001', 5_000);
    expect(later.bytes.equals(first.bytes)).toBe(true);
    expect(await snapshot(card.cardNo)).toEqual(afterFirst);

    const entries = (await entriesOf(card.cardNo)).filter((e) => e.fields['k'] === 'rch');
    expect(entries).toHaveLength(1);
    expect(entries[0]?.id).toBe(first.res.transactionId);
    expect(entries[0]?.fields).toMatchObject({
      a: '5000',
      f: 'x:ch:WECHAT',
      t: `a:${card.cardNo}`,
      b: '15000',
      v: '2',
      tm: 'alice',
      sq: 'wx-order-0001',
    });
    const statement = await app.redis.zrange(app.keys.statement(card.cardNo), 0, -1);
    expect(statement).toContain(`${first.res.transactionId}|rch|5000|15000|alice|wx-order-0001`);
  });

  it('refuses the same order id with another amount (ALREADY_EXISTS) and changes nothing', async () => {
    const card = await newCard();
    await manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-order-0002', 1_000);
    await expectRefusal(
      card.cardNo,
      () => manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-order-0002', 2_000),
      Status.ALREADY_EXISTS,
      /wx-order-0002/,
    );
    expect(await balance(card.cardNo)).toBe(11_000);
  });

  it('refuses the same order id for another card, in another shard or the same one', async () => {
    const card = await newCard();
    const elsewhere = await newCard(10_000, { cardNo: card.cardNo, same: false });
    const sameShard = await newCard(10_000, { cardNo: card.cardNo, same: true });
    await manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-order-0003', 1_000);
    await expectRefusal(
      elsewhere.cardNo,
      () => manualRecharge(elsewhere.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-order-0003', 1_000),
      Status.ALREADY_EXISTS,
    );
    await expectRefusal(
      sameShard.cardNo,
      () => manualRecharge(sameShard.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-order-0003', 1_000),
      Status.ALREADY_EXISTS,
    );
    // The same order id of ANOTHER channel is another order.
    const res = await manualRecharge(elsewhere.cardNo, RechargeChannel.RECHARGE_CHANNEL_ALIPAY, 'wx-order-0003', 1_000);
    expect(res.balanceAfterFen).toBe(11_000);
  });

  it('refuses a WeChat recharge over 999.00 yuan (INVALID_ARGUMENT) and changes nothing; the counter allows more', async () => {
    const card = await newCard();
    const ok = await manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-max-0001', 99_900);
    expect(ok.balanceAfterFen).toBe(109_900);
    await expectRefusal(
      card.cardNo,
      () => manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-max-0002', 99_901),
      Status.INVALID_ARGUMENT,
      /999\.00 yuan/,
    );
    await expectRefusal(
      card.cardNo,
      () => manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_ALIPAY, 'ali-max-0001', 99_901),
      Status.INVALID_ARGUMENT,
    );
    const counter = await manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_COUNTER, 'counter-0001', 40_000);
    expect(counter.balanceAfterFen).toBe(149_900);
  });

  it('refuses over the daily recharge maximum (FAILED_PRECONDITION, says what is left), changes nothing, and allows again the next campus day', async () => {
    const card = await newCard(0);
    await manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-day-0001', 99_900);
    await expectRefusal(
      card.cardNo,
      () => manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-day-0002', 50_101),
      Status.FAILED_PRECONDITION,
      /501\.00 yuan \(50100 fen\)/,
    );
    const exact = await manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-day-0003', 50_100);
    expect(exact.balanceAfterFen).toBe(DAILY_LIMIT_FEN);
    await expectRefusal(
      card.cardNo,
      () => manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_COUNTER, 'counter-day-01', 1),
      Status.FAILED_PRECONDITION,
    );
    // The refused order was not taken: it can be credited once the day allows it.
    clock.advanceDays(1);
    const nextDay = await manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-day-0002', 50_101);
    expect(nextDay.balanceAfterFen).toBe(DAILY_LIMIT_FEN + 50_101);
  });

  it('counts the campus day in UTC+8: 23:59 and 00:01 campus time are different days', async () => {
    const card = await newCard(0);
    const money = new MoneyLedger(app.keys, app.context.scripts, 3600, () => Date.UTC(2026, 11, 1, 15, 59, 0));
    const late = await money.recharge({
      cardNo: card.cardNo,
      channel: 'COUNTER',
      orderId: 'day-edge-1',
      amountFen: DAILY_LIMIT_FEN,
      source: 'test',
      reason: '',
      dailyLimitFen: DAILY_LIMIT_FEN,
    });
    expect(late.code).toBe('credited');
    expect(late.rechargeableTodayFen).toBe(0);
    const sameDay = await money.recharge({
      cardNo: card.cardNo,
      channel: 'COUNTER',
      orderId: 'day-edge-2',
      amountFen: 1,
      source: 'test',
      reason: '',
      dailyLimitFen: DAILY_LIMIT_FEN,
    });
    expect(sameDay.code).toBe('daily_limit_exceeded');
    const nextDay = new MoneyLedger(app.keys, app.context.scripts, 3600, () => Date.UTC(2026, 11, 1, 16, 1, 0));
    expect(
      (
        await nextDay.recharge({
          cardNo: card.cardNo,
          channel: 'COUNTER',
          orderId: 'day-edge-2',
          amountFen: 1,
          source: 'test',
          reason: '',
          dailyLimitFen: DAILY_LIMIT_FEN,
        })
      ).code,
    ).toBe('credited');
  });

  it("counts the card's unpaid recharge orders of the day against the maximum, and a paid order stops holding its amount", async () => {
    const card = await newCard(0);
    const nowMs = clock.now();
    const order = (orderId: string, amountFen: number) =>
      createRechargeOrder(app.context, {
        cardNo: card.cardNo,
        channel: 'ALIPAY',
        orderId,
        amountFen,
        expiresAtMs: nowMs + 600_000,
        dailyLimitFen: DAILY_LIMIT_FEN,
        source: 'holder',
        nowMs,
      });
    const unpaid = rechargeOrderId(app.context, card.cardNo, 'holder|unpaid');
    const paid = rechargeOrderId(app.context, card.cardNo, 'holder|paid');
    expect((await order(unpaid, 100_000)).code).toBe('created');
    expect((await order(paid, 30_000)).code).toBe('created');
    const counter = (orderId: string, amountFen: number) =>
      app.context.money.recharge({
        cardNo: card.cardNo,
        channel: 'COUNTER',
        orderId,
        amountFen,
        source: 'desk',
        reason: '',
        dailyLimitFen: DAILY_LIMIT_FEN,
      });
    // 1,300.00 yuan held by the two orders: 200.01 more is over the 1,500.00 of the day.
    const before = await snapshot(card.cardNo);
    expect(await counter('held-0001', 20_001)).toMatchObject({ code: 'daily_limit_exceeded', rechargeableTodayFen: 20_000 });
    expect(await snapshot(card.cardNo)).toEqual(before);
    // The order is paid (credited without a limit: its amount was held): it holds nothing any more, and
    // the day still has 200.00 yuan, not 200.00 less again.
    const credit = await app.context.money.recharge({
      cardNo: card.cardNo,
      channel: 'ALIPAY',
      orderId: paid,
      amountFen: 30_000,
      source: 'alipay',
      reason: '',
      dailyLimitFen: 0,
    });
    expect(credit.code).toBe('credited');
    expect(await app.redis.hkeys(app.keys.rechargeOpen(card.cardNo))).toEqual([unpaid]);
    expect(await counter('held-0002', 20_000)).toMatchObject({ code: 'credited', rechargeableTodayFen: 0 });
  });

  it('an order made at 23:59:59.9 and paid at 00:00:00.1 counts on the day it was made, not on the next day too', async () => {
    const card = await newCard(0);
    // 2026-12-01 23:59:59.900 and 2026-12-02 00:00:00.100, campus time.
    const lateMs = Date.UTC(2026, 11, 1, 15, 59, 59, 900);
    const nextMs = lateMs + 200;
    const orderId = rechargeOrderId(app.context, card.cardNo, 'holder|midnight');
    const made = await createRechargeOrder(app.context, {
      cardNo: card.cardNo,
      channel: 'WECHAT',
      orderId,
      amountFen: 90_000,
      expiresAtMs: lateMs + 600_000,
      dailyLimitFen: DAILY_LIMIT_FEN,
      source: 'holder',
      nowMs: lateMs,
    });
    expect(made).toMatchObject({ code: 'created', rechargeableTodayFen: DAILY_LIMIT_FEN - 90_000 });
    // Paid just after midnight: credited without a limit (its amount was held against its own day).
    const next = new MoneyLedger(app.keys, app.context.scripts, 3600, () => nextMs);
    const paid = await next.recharge({
      cardNo: card.cardNo,
      channel: 'WECHAT',
      orderId,
      amountFen: 90_000,
      source: 'wechat',
      reason: '',
      dailyLimitFen: 0,
    });
    expect(paid.code).toBe('credited');
    // The new day's maximum is whole: the order counted on 12-01, the day it was made.
    const counter = (id: string, amountFen: number) =>
      next.recharge({
        cardNo: card.cardNo,
        channel: 'COUNTER',
        orderId: id,
        amountFen,
        source: 'desk',
        reason: '',
        dailyLimitFen: DAILY_LIMIT_FEN,
      });
    expect(await counter('midnight-0001', DAILY_LIMIT_FEN)).toMatchObject({ code: 'credited', rechargeableTodayFen: 0 });
    expect((await counter('midnight-0002', 1)).code).toBe('daily_limit_exceeded');
    expect(await balance(card.cardNo)).toBe(90_000 + DAILY_LIMIT_FEN);
  });

  it("a switch whose clock is behind, just before midnight by its clock, keeps the new day's maximum another switch counted", async () => {
    const card = await newCard(0);
    // Switch A: 2026-12-03 00:00:00.100 campus time; switch B's clock runs 150 ms behind A's.
    const aMs = Date.UTC(2026, 11, 2, 16, 0, 0, 100);
    const a = new MoneyLedger(app.keys, app.context.scripts, 3600, () => aMs);
    const b = new MoneyLedger(app.keys, app.context.scripts, 3600, () => aMs - 150);
    const counter = (money: MoneyLedger, id: string, amountFen: number) =>
      money.recharge({
        cardNo: card.cardNo,
        channel: 'COUNTER',
        orderId: id,
        amountFen,
        source: 'desk',
        reason: '',
        dailyLimitFen: DAILY_LIMIT_FEN,
      });
    expect((await counter(a, 'skew-0001', DAILY_LIMIT_FEN - 1000)).code).toBe('credited');
    const order = (nowMs: number, id: string, amountFen: number) =>
      createRechargeOrder(app.context, {
        cardNo: card.cardNo,
        channel: 'ALIPAY',
        orderId: rechargeOrderId(app.context, card.cardNo, id),
        amountFen,
        expiresAtMs: nowMs + 600_000,
        dailyLimitFen: DAILY_LIMIT_FEN,
        source: 'holder',
        nowMs,
      });
    expect((await order(aMs, 'holder|skew-a', 1000)).code).toBe('created');
    // B: what A credited and ordered on 12-03 counts; nothing more fits.
    const before = await snapshot(card.cardNo);
    expect(await counter(b, 'skew-0002', 1)).toMatchObject({ code: 'daily_limit_exceeded', rechargeableTodayFen: 0 });
    expect((await order(aMs - 150, 'holder|skew-b', 1)).code).toBe('daily_limit_exceeded');
    expect(await snapshot(card.cardNo)).toEqual(before);
    expect(await counter(a, 'skew-0003', 1)).toMatchObject({ code: 'daily_limit_exceeded', rechargeableTodayFen: 0 });
    // B credits A's order when it is paid: it stays a recharge of 12-03.
    const paid = await b.recharge({
      cardNo: card.cardNo,
      channel: 'ALIPAY',
      orderId: rechargeOrderId(app.context, card.cardNo, 'holder|skew-a'),
      amountFen: 1000,
      source: 'alipay',
      reason: '',
      dailyLimitFen: 0,
    });
    expect(paid.code).toBe('credited');
    expect(await app.redis.hmget(app.keys.account(card.cardNo), 'rday', 'rsum')).toEqual(['20261203', String(DAILY_LIMIT_FEN)]);
    expect((await counter(a, 'skew-0004', 1)).code).toBe('daily_limit_exceeded');
  });

  it('an order made on the new day by a switch ahead, paid through a switch behind, is a recharge of the new day', async () => {
    const card = await newCard(0);
    const aMs = Date.UTC(2026, 11, 3, 16, 0, 0, 100); // 2026-12-04 00:00:00.100 campus time
    const orderId = rechargeOrderId(app.context, card.cardNo, 'holder|skew-paid');
    const made = await createRechargeOrder(app.context, {
      cardNo: card.cardNo,
      channel: 'WECHAT',
      orderId,
      amountFen: 50_000,
      expiresAtMs: aMs + 600_000,
      dailyLimitFen: DAILY_LIMIT_FEN,
      source: 'holder',
      nowMs: aMs,
    });
    expect(made.code).toBe('created');
    const b = new MoneyLedger(app.keys, app.context.scripts, 3600, () => aMs - 150);
    const paid = await b.recharge({
      cardNo: card.cardNo,
      channel: 'WECHAT',
      orderId,
      amountFen: 50_000,
      source: 'wechat',
      reason: '',
      dailyLimitFen: 0,
    });
    expect(paid.code).toBe('credited');
    expect(await app.redis.hmget(app.keys.account(card.cardNo), 'rday', 'rsum')).toEqual(['20261204', '50000']);
  });

  it('an order of the old day paid through a switch ahead still counts on the old day for a switch behind', async () => {
    const card = await newCard(0);
    // Switch A: 2026-12-05 00:00:00.100 campus time; switch B's clock runs 150 ms behind A's (12-04 23:59:59.950).
    const aMs = Date.UTC(2026, 11, 4, 16, 0, 0, 100);
    const bMs = aMs - 150;
    const a = new MoneyLedger(app.keys, app.context.scripts, 3600, () => aMs);
    const b = new MoneyLedger(app.keys, app.context.scripts, 3600, () => bMs);
    const orderId = rechargeOrderId(app.context, card.cardNo, 'holder|old-day');
    const made = await createRechargeOrder(app.context, {
      cardNo: card.cardNo,
      channel: 'WECHAT',
      orderId,
      amountFen: DAILY_LIMIT_FEN,
      expiresAtMs: bMs + 600_000,
      dailyLimitFen: DAILY_LIMIT_FEN,
      source: 'holder',
      nowMs: bMs,
    });
    expect(made).toMatchObject({ code: 'created', rechargeableTodayFen: 0 });
    // A (12-05 by its clock) credits the 12-04 order when it is paid.
    const paid = await a.recharge({
      cardNo: card.cardNo,
      channel: 'WECHAT',
      orderId,
      amountFen: DAILY_LIMIT_FEN,
      source: 'wechat',
      reason: '',
      dailyLimitFen: 0,
    });
    expect(paid.code).toBe('credited');
    // B, still on 12-04: that day's maximum was all taken by the order, paid or not.
    const counter = (money: MoneyLedger, id: string, amountFen: number) =>
      money.recharge({
        cardNo: card.cardNo,
        channel: 'COUNTER',
        orderId: id,
        amountFen,
        source: 'desk',
        reason: '',
        dailyLimitFen: DAILY_LIMIT_FEN,
      });
    expect((await counter(b, 'old-day-0001', 1)).code).toBe('daily_limit_exceeded');
    const another = await createRechargeOrder(app.context, {
      cardNo: card.cardNo,
      channel: 'ALIPAY',
      orderId: rechargeOrderId(app.context, card.cardNo, 'holder|old-day-b'),
      amountFen: 1,
      expiresAtMs: bMs + 600_000,
      dailyLimitFen: DAILY_LIMIT_FEN,
      source: 'holder',
      nowMs: bMs,
    });
    expect(another.code).toBe('daily_limit_exceeded');
    // A's new day is whole.
    expect(await counter(a, 'old-day-0002', DAILY_LIMIT_FEN)).toMatchObject({ code: 'credited', rechargeableTodayFen: 0 });
    expect(await balance(card.cardNo)).toBe(2 * DAILY_LIMIT_FEN);
  });

  it('keeps a refusal on the order when asked (a payment the channel took): refused for good, the next day too', async () => {
    const card = await newCard(0);
    const money = (dayOffset: number) => new MoneyLedger(app.keys, app.context.scripts, 3600, () => clock.now() + dayOffset * 86_400_000);
    const input = {
      cardNo: card.cardNo,
      channel: 'ALIPAY' as const,
      orderId: 'campus-keep-0001',
      amountFen: DAILY_LIMIT_FEN + 1,
      source: 'alipay',
      reason: '',
      dailyLimitFen: DAILY_LIMIT_FEN,
    };
    const refused = await money(0).recharge({ ...input, keepRefusal: true });
    expect(refused.code).toBe('daily_limit_exceeded');
    const before = await snapshot(card.cardNo);
    // Another day, a higher maximum: the order stays refused, nothing moves.
    expect(await money(1).recharge({ ...input, keepRefusal: true, dailyLimitFen: 0 })).toEqual(refused);
    expect(await snapshot(card.cardNo)).toEqual(before);
    // Without keepRefusal a refusal is not kept: the same order credits once allowed.
    const plain = { ...input, orderId: 'campus-plain-0001' };
    expect((await money(0).recharge(plain)).code).toBe('daily_limit_exceeded');
    expect((await money(1).recharge({ ...plain, dailyLimitFen: 0 })).code).toBe('credited');
  });

  it('credits a lost or frozen card (a loss report does not block recharge) but not a cancelled one', async () => {
    const lost = await newCard(1_000);
    await app.ledger.setStatus(lost.cardNo, 'lost');
    expect((await manualRecharge(lost.cardNo, RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-lost-0001', 2_000)).balanceAfterFen).toBe(3_000);
    const frozen = await newCard(1_000);
    await app.ledger.setStatus(frozen.cardNo, 'frozen');
    expect((await manualRecharge(frozen.cardNo, RechargeChannel.RECHARGE_CHANNEL_COUNTER, 'counter-frozen-1', 500)).balanceAfterFen).toBe(
      1_500,
    );
    const cancelled = await newCard(1_000);
    await app.ledger.setStatus(cancelled.cardNo, 'cancelled');
    await expectRefusal(
      cancelled.cardNo,
      () => manualRecharge(cancelled.cardNo, RechargeChannel.RECHARGE_CHANNEL_COUNTER, 'counter-cancel-1', 500),
      Status.FAILED_PRECONDITION,
      /cancelled/,
    );
  });

  it('refuses malformed requests with INVALID_ARGUMENT and unknown cards with NOT_FOUND, changing nothing', async () => {
    const card = await newCard();
    for (const [channel, orderId, amountFen] of [
      [RechargeChannel.RECHARGE_CHANNEL_UNSPECIFIED, 'wx-bad-0001', 100],
      [RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'bad|id', 100],
      [RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'abc', 100],
      [RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-bad-0002', 0],
      [RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-bad-0003', -100],
    ] as const) {
      await expectRefusal(card.cardNo, () => manualRecharge(card.cardNo, channel, orderId, amountFen), Status.INVALID_ARGUMENT);
    }
    await expectRefusal(
      card.cardNo,
      () => manualRecharge('99999999', RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-bad-0006', 100),
      Status.NOT_FOUND,
    );
    await expectRefusal(
      card.cardNo,
      () => manualRecharge('12a4', RechargeChannel.RECHARGE_CHANNEL_WECHAT, 'wx-bad-0007', 100),
      Status.INVALID_ARGUMENT,
    );
  });
});

describe('manual recharge (operator)', () => {
  it('credits once, records the operator in the journal, and answers a retry of the same order (from any desk) with the first result', async () => {
    const card = await newCard(0);
    const first = await manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_ALIPAY, 'ali-desk-0001', 8_800);
    expect(first.balanceAfterFen).toBe(8_800);
    const again = await manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_ALIPAY, 'ali-desk-0001', 8_800);
    expect(again).toEqual(first);
    const entries = (await entriesOf(card.cardNo)).filter((e) => e.fields['k'] === 'rch');
    expect(entries).toHaveLength(1);
    expect(entries[0]?.fields).toMatchObject({ f: 'x:ch:ALIPAY', t: `a:${card.cardNo}`, tm: 'alice', sq: 'ali-desk-0001', r: '现金充值' });
  });

  it('needs a reason of one line, and records nothing without one', async () => {
    const card = await newCard();
    await expectRefusal(
      card.cardNo,
      () => manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_COUNTER, 'counter-noreason-1', 500, '  '),
      Status.INVALID_ARGUMENT,
      /reason/,
    );
    await expectRefusal(
      card.cardNo,
      () => manualRecharge(card.cardNo, RechargeChannel.RECHARGE_CHANNEL_COUNTER, 'counter-noreason-2', 500, 'a\nb'),
      Status.INVALID_ARGUMENT,
      /one line/,
    );
  });

  it('needs an operator token', async () => {
    const card = await newCard();
    await expectRefusal(
      card.cardNo,
      () =>
        call(
          admin,
          'manualRecharge',
          { cardNumber: card.cardNo, channel: 1, channelOrderId: 'wx-noop-0001', amountFen: 1 },
          operatorMetadata('not-a-valid-token-000'),
        ),
      Status.UNAUTHENTICATED,
    );
  });
});

describe('adjust (operator)', () => {
  it('credits and debits with a reason in the journal; a retry of the same adjustment id replays it', async () => {
    const card = await newCard(1_000);
    const up = await adjust(card.cardNo, 'adj-up-0001', 2_500, '补发餐补 11月');
    expect(up.balanceAfterFen).toBe(3_500);
    const down = await adjust(card.cardNo, 'adj-down-0001', -500, '重复充值冲回');
    expect(down.balanceAfterFen).toBe(3_000);
    const afterBoth = await snapshot(card.cardNo);
    expect(await adjust(card.cardNo, 'adj-up-0001', 2_500, '补发餐补 11月')).toEqual(up);
    expect(await adjust(card.cardNo, 'adj-down-0001', -500, '重复充值冲回')).toEqual(down);
    expect(await snapshot(card.cardNo)).toEqual(afterBoth);
    const entries = (await entriesOf(card.cardNo)).filter((e) => e.fields['k'] === 'adj');
    expect(entries.map((e) => e.fields)).toEqual([
      expect.objectContaining({
        a: '2500',
        f: 'x:adj',
        t: `a:${card.cardNo}`,
        b: '3500',
        tm: 'alice',
        sq: 'adj-up-0001',
        r: '补发餐补 11月',
      }),
      expect.objectContaining({
        a: '500',
        f: `a:${card.cardNo}`,
        t: 'x:adj',
        b: '3000',
        tm: 'alice',
        sq: 'adj-down-0001',
        r: '重复充值冲回',
      }),
    ]);
    const statement = await app.redis.zrange(app.keys.statement(card.cardNo), 0, -1);
    expect(statement).toContain(`${down.transactionId}|adj|-500|3000|alice|adj-down-0001`);
  });

  it('never takes the balance below zero (FAILED_PRECONDITION) and changes nothing; down to exactly zero is allowed', async () => {
    const card = await newCard(1_000);
    await expectRefusal(
      card.cardNo,
      () => adjust(card.cardNo, 'adj-neg-0001', -1_001, '超额扣回'),
      Status.FAILED_PRECONDITION,
      /10\.00 yuan/,
    );
    expect((await adjust(card.cardNo, 'adj-neg-0001', -1_000, '超额扣回')).balanceAfterFen).toBe(0);
  });

  it('refuses the same adjustment id with another amount, reason or card (ALREADY_EXISTS)', async () => {
    const card = await newCard(1_000);
    const other = await newCard(1_000, { cardNo: card.cardNo, same: false });
    await adjust(card.cardNo, 'adj-dup-0001', 100, '差错更正');
    await expectRefusal(card.cardNo, () => adjust(card.cardNo, 'adj-dup-0001', 200, '差错更正'), Status.ALREADY_EXISTS);
    await expectRefusal(card.cardNo, () => adjust(card.cardNo, 'adj-dup-0001', 100, '另一个原因'), Status.ALREADY_EXISTS);
    await expectRefusal(other.cardNo, () => adjust(other.cardNo, 'adj-dup-0001', 100, '差错更正'), Status.ALREADY_EXISTS);
  });

  it('refuses a zero amount, a missing or over-long reason, a bad id, an unknown card', async () => {
    const card = await newCard(1_000);
    await expectRefusal(card.cardNo, () => adjust(card.cardNo, 'adj-bad-0001', 0, '零'), Status.INVALID_ARGUMENT);
    await expectRefusal(card.cardNo, () => adjust(card.cardNo, 'adj-bad-0002', 100, '   '), Status.INVALID_ARGUMENT);
    await expectRefusal(card.cardNo, () => adjust(card.cardNo, 'adj-bad-0003', 100, '原'.repeat(201)), Status.INVALID_ARGUMENT);
    await expectRefusal(card.cardNo, () => adjust(card.cardNo, 'adj bad', 100, '原因'), Status.INVALID_ARGUMENT);
    await expectRefusal(card.cardNo, () => adjust('99999998', 'adj-bad-0004', 100, '原因'), Status.NOT_FOUND);
    expect((await adjust(card.cardNo, 'adj-bad-0005', 1, '原'.repeat(200))).balanceAfterFen).toBe(1_001);
  });
});

describe('the whole ledger', () => {
  it('audits to the fen after all the recharges, refusals and adjustments above (every balance is its journal, money is conserved)', async () => {
    const report = await auditLedger(app.redis, app.keys);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.heldFen).toBe(report.netInflowFen);
  });
});
