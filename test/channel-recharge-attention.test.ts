// Recharge orders whose channel never gives a final answer (a system error on every query): the settlement
// loop asks again with a growing wait, a bounded number of times, then the order needs an operator (state
// A): off the loop, listed by `npm run cli -- recharge-attention`, shown by reconciliation. It stays
// creditable: the payer's late notification credits it once, and a resent one credits nothing. Real
// switch and gateway, real Redis, both channel simulators over loopback; the audit passes after each test.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { runRechargeAttentionCommand } from '../switch/cli/recharge-attention.js';
import { reconcileChannelDay } from '../switch/domain/reconcile.js';
import { newRechargeOrder, rechargeOrderState, settlePendingRechargeOrders } from '../switch/domain/recharge-orders.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { MAX_OPEN_ORDERS_PER_CARD, readRechargeOrder } from '../switch/ledger/recharge-orders.js';
import { createLogger } from '../switch/log.js';
import { testRedisUrl } from './helpers/redis.js';
import { openCard, readJournal, testConfig } from './helpers/switch.js';
import { freePort } from '../switch/redis/local-redis.js';

const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
const MAX_UNKNOWN = 3;
/** The first wait after a non-final answer; the test moves an order's time on instead of waiting. */
const RETRY_BASE_MS = 60_000;
/** The day's recharge maximum of every card here (DAILY_RECHARGE_LIMIT_FEN): 100 yuan. */
const DAILY_LIMIT_FEN = 10_000;

let sims: ChannelSimulators;
let app: SwitchApp;
let cardSeq = 0;

beforeAll(async () => {
  const port = await freePort();
  sims = await startChannelSimulators({ log, notifyBaseUrl: `http://127.0.0.1:${port}`, latencyMs: 0 });
  // The switch's own loop stays out of the way (once an hour): the test runs each sweep itself.
  const config = testConfig('chattn', {
    GATEWAY_PORT: String(port),
    RECHARGE_QUERY_DELAY_MS: '0',
    RECHARGE_SETTLE_INTERVAL_MS: '3600000',
    DAILY_RECHARGE_LIMIT_FEN: String(DAILY_LIMIT_FEN),
  });
  app = await startSwitch(config, log, Date.now, { channels: sims.channels });
});

afterAll(async () => {
  await app?.stop();
  await sims?.stop();
});

afterEach(async () => {
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
});

function sweep(): Promise<Record<string, number>> {
  return settlePendingRechargeOrders(app.context, {
    olderThanMs: 0,
    maxPerShard: 100,
    retryBaseMs: RETRY_BASE_MS,
    maxUnknownQueries: MAX_UNKNOWN,
  });
}

/** The order's place in the shard's pending index (when the loop asks next), or null when it is not there. */
async function pendingScore(cardNo: string, channel: string, orderId: string): Promise<number | null> {
  const score = await app.redis.zscore(app.keys.rechargePending(app.keys.shardOf(cardNo)), `${channel}:${orderId}`);
  return score === null ? null : Number(score);
}

async function runCli(args: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const logSpy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const errSpy = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    const code = await runRechargeAttentionCommand(args, {
      REDIS_URL: testRedisUrl(),
      KEY_PREFIX: app.context.config.keyPrefix,
      LOG_LEVEL: 'silent',
    });
    return { code, out: out.join('\n') };
  } finally {
    logSpy.mockRestore();
    errSpy.mockRestore();
  }
}

/** What an operator reads: campus time (UTC+8) with its offset, computed here apart from the CLI's own code. */
function campusClock(ms: number): string {
  return `${new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ')} +08:00`;
}
/** An ISO time in UTC ('...Z'), which operators in campus time misread by 8 hours. */
const UTC_ISO = /\d{2}:\d{2}:\d{2}(\.\d+)?Z/;

const today = (): string => new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);

type ChannelName = 'wechat' | 'alipay';
const codeOf = (channel: ChannelName): 'WECHAT' | 'ALIPAY' => (channel === 'wechat' ? 'WECHAT' : 'ALIPAY');

/** How many order queries the channel's simulator has answered. */
function queryCount(channel: ChannelName): number {
  return channel === 'wechat' ? sims.wechat.callCount('/pay/orderquery') : sims.alipay.callCount('alipay.trade.query');
}

/**
 * Runs the settlement loop over the order, its every query answered with a system error (no final answer),
 * until it needs an operator (MAX_UNKNOWN sweeps); answers the waits the loop set before each next query.
 */
async function untilAttention(channel: ChannelName, cardNo: string, orderId: string): Promise<number[]> {
  const code = codeOf(channel);
  const waits: number[] = [];
  for (let i = 1; i <= MAX_UNKNOWN; i++) {
    if (channel === 'wechat') sims.wechat.failNext('orderquery', 'systemerror');
    else sims.alipay.failNext('alipay.trade.query', 'system_error', 1);
    const before = queryCount(channel);
    const startedMs = Date.now();
    const report = await sweep();
    expect(queryCount(channel)).toBe(before + 1);
    if (i < MAX_UNKNOWN) {
      expect(report['pending']).toBeGreaterThanOrEqual(1);
      const score = await pendingScore(cardNo, code, orderId);
      expect(score).not.toBeNull();
      waits.push((score ?? 0) - startedMs);
      // Not due yet: a sweep now leaves it alone (the wait is real)...
      await sweep();
      expect(queryCount(channel)).toBe(before + 1);
      // ...until its time comes (moved on here instead of waited for).
      await app.redis.zadd(app.keys.rechargePending(app.keys.shardOf(cardNo)), 0, `${code}:${orderId}`);
    } else {
      expect(report['needs_attention']).toBe(1);
    }
  }
  expect(await readRechargeOrder(app.context, code, orderId)).toMatchObject({ state: 'A', credited: false });
  return waits;
}

describe.each(['wechat', 'alipay'] as const)('%s: a recharge order the channel never answers', (channel) => {
  it('is asked again with a growing wait, a bounded number of times, then needs an operator; its late payment credits once', async () => {
    cardSeq += 1;
    const cardNo = `5500${String(cardSeq).padStart(4, '0')}`;
    await openCard(app, cardNo, `AT${cardNo}`, 1000);
    const code = codeOf(channel);
    const order = await newRechargeOrder(app.context, { cardNo, channel, amountFen: 2500, requestId: `attn-${channel}`, source: 'holder' });
    const waits = await untilAttention(channel, cardNo, order.orderId);
    // The waits grow: about 1 and 2 times the base.
    expect(waits[0]).toBeGreaterThanOrEqual(RETRY_BASE_MS - 5000);
    expect(waits[1]).toBeGreaterThanOrEqual(2 * RETRY_BASE_MS - 5000);

    // Needs an operator: off the loop (no more queries), listed by the CLI, shown by reconciliation.
    const record = await readRechargeOrder(app.context, code, order.orderId);
    expect(record).toMatchObject({ state: 'A', credited: false, unknownQueries: MAX_UNKNOWN });
    expect(await pendingScore(cardNo, code, order.orderId)).toBeNull();
    const settled = queryCount(channel);
    await sweep();
    expect(queryCount(channel)).toBe(settled);
    const listed = await runCli(['--json', '--channel', channel]);
    expect(listed.code).toBe(1);
    expect(JSON.parse(listed.out)).toEqual([
      expect.objectContaining({ orderId: order.orderId, channel, cardNo, amountFen: 2500, unknownQueries: MAX_UNKNOWN }),
    ]);
    // The text list: times in campus time with the offset, never UTC.
    const text = await runCli(['--channel', channel]);
    const item = (JSON.parse(listed.out) as { createdAtMs: number; sinceMs: number }[])[0]!;
    expect(text.out).toContain(`made ${campusClock(item.createdAtMs)}`);
    expect(text.out).toContain(`given up ${campusClock(item.sinceMs)}`);
    expect(text.out).not.toMatch(UTC_ISO);
    if (channel === 'alipay') sims.alipay.bill(today());
    const reconciled = await reconcileChannelDay(app.context, channel, today(), { signal: AbortSignal.timeout(30_000) });
    expect(reconciled.differences).toContainEqual(expect.objectContaining({ kind: 'needs_attention', outTradeNo: order.orderId, cardNo }));
    // The holder sees it still pending (nobody knows yet).
    expect((await rechargeOrderState(app.context, cardNo, order.orderId)).state).toBe('pending');

    // The payer did pay: the channel's notification (late, then once more) credits it once.
    if (channel === 'wechat') {
      await sims.wechat.payOrder(order.orderId);
      await sims.wechat.notify(order.orderId);
    } else {
      await sims.alipay.payOrder(order.orderId).notified;
      await sims.alipay.notify(order.orderId);
    }
    const credits = (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter(
      (e) => e.fields['k'] === 'rch' && e.fields['sq'] === order.orderId,
    );
    expect(credits).toHaveLength(1);
    expect(Number(await app.redis.hget(app.keys.account(cardNo), 'bal'))).toBe(3500);
    expect(await readRechargeOrder(app.context, code, order.orderId)).toMatchObject({ credited: true });
    expect((await runCli(['--channel', channel])).code).toBe(0);
  });
});

describe.each(['wechat', 'alipay'] as const)('%s: a recharge order that needs an operator holds its amount against its day', (channel) => {
  /** A new card of this test, with a balance of 10 yuan. */
  async function newCard(): Promise<string> {
    cardSeq += 1;
    const cardNo = `5500${String(cardSeq).padStart(4, '0')}`;
    await openCard(app, cardNo, `AT${cardNo}`, 1000);
    return cardNo;
  }

  /** An order of the whole day's maximum is refused: what is left today is `leftFen` (it makes nothing). */
  async function expectLeftToday(cardNo: string, leftFen: number, requestId: string): Promise<void> {
    const made = newRechargeOrder(app.context, { cardNo, channel, amountFen: DAILY_LIMIT_FEN, requestId, source: 'holder' });
    await expect(made).rejects.toMatchObject({ reason: 'DAILY_RECHARGE_LIMIT' });
    await expect(made).rejects.toThrow(`(${leftFen} fen) more today`);
  }

  /** The channel closes the unpaid order; the holder's page asking for its state learns it (the order is closed). */
  async function closeAtChannel(cardNo: string, orderId: string): Promise<void> {
    if (channel === 'wechat') sims.wechat.expireOrder(orderId);
    else await sims.alipay.expireOrder(orderId);
    expect((await rechargeOrderState(app.context, cardNo, orderId)).state).toBe('closed');
  }

  it("counts until it is credited, then once (in the day's credits), never twice", async () => {
    const cardNo = await newCard();
    const held = await newRechargeOrder(app.context, { cardNo, channel, amountFen: 6000, requestId: 'held', source: 'holder' });
    await untilAttention(channel, cardNo, held.orderId);

    // Still payable, so still held: a second order past the maximum is refused...
    await expectLeftToday(cardNo, DAILY_LIMIT_FEN - 6000, 'over-1');
    // ...and so is a recharge with a daily limit (the counter, Alipay 校园派: recharge.lua counts it too).
    const counter = await app.context.money.recharge({
      cardNo,
      channel: 'COUNTER',
      orderId: `CTR-${channel}-${cardNo}`,
      amountFen: DAILY_LIMIT_FEN - 6000 + 1,
      source: 'operator-test',
      reason: '',
      dailyLimitFen: DAILY_LIMIT_FEN,
    });
    expect(counter).toMatchObject({ code: 'daily_limit_exceeded', rechargeableTodayFen: DAILY_LIMIT_FEN - 6000 });

    // The payer did pay: credited once, without a limit; its amount is in the day's credits now, once.
    if (channel === 'wechat') await sims.wechat.payOrder(held.orderId);
    else await sims.alipay.payOrder(held.orderId).notified;
    expect(await readRechargeOrder(app.context, codeOf(channel), held.orderId)).toMatchObject({ credited: true });
    expect(Number(await app.redis.hget(app.keys.account(cardNo), 'bal'))).toBe(1000 + 6000);
    await expectLeftToday(cardNo, DAILY_LIMIT_FEN - 6000, 'over-2');
    const rest = await newRechargeOrder(app.context, {
      cardNo,
      channel,
      amountFen: DAILY_LIMIT_FEN - 6000,
      requestId: 'rest',
      source: 'holder',
    });
    expect(rest.amountFen).toBe(DAILY_LIMIT_FEN - 6000);
    await closeAtChannel(cardNo, rest.orderId); // (no pending order left for the next test's sweeps)
  });

  it('counts until the channel closes it, then holds nothing', async () => {
    const cardNo = await newCard();
    const held = await newRechargeOrder(app.context, { cardNo, channel, amountFen: 6000, requestId: 'held', source: 'holder' });
    await untilAttention(channel, cardNo, held.orderId);
    await expectLeftToday(cardNo, DAILY_LIMIT_FEN - 6000, 'over-1');
    // It takes none of the card's open places (an operator owns it): all of them are still free.
    const small: string[] = [];
    for (let i = 0; i < MAX_OPEN_ORDERS_PER_CARD; i++) {
      const made = await newRechargeOrder(app.context, { cardNo, channel, amountFen: 100, requestId: `small-${i}`, source: 'holder' });
      small.push(made.orderId);
    }
    await expect(
      newRechargeOrder(app.context, { cardNo, channel, amountFen: 100, requestId: 'one-more', source: 'holder' }),
    ).rejects.toMatchObject({ reason: 'TOO_MANY_OPEN_ORDERS' });
    for (const orderId of small) await closeAtChannel(cardNo, orderId);

    // The channel closes the unpaid order; the holder's page asking for its state learns it.
    await closeAtChannel(cardNo, held.orderId);
    expect(await readRechargeOrder(app.context, codeOf(channel), held.orderId)).toMatchObject({ state: 'C', credited: false });
    expect(await app.redis.hkeys(app.keys.rechargeOpen(cardNo))).toEqual([]);
    expect((await runCli(['--json', '--channel', channel])).out).not.toContain(held.orderId);

    // The whole day's maximum is free again.
    const whole = await newRechargeOrder(app.context, {
      cardNo,
      channel,
      amountFen: DAILY_LIMIT_FEN,
      requestId: 'whole',
      source: 'holder',
    });
    expect(whole.amountFen).toBe(DAILY_LIMIT_FEN);
    await closeAtChannel(cardNo, whole.orderId);
  });
});
