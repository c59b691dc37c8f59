// `npm run cli -- recharge-resolve`: an operator resolves a recharge order that needs one (state A: the
// channel never gave a final answer) or is still pending. The CLI asks the channel now (or closes the
// order there with --close) and acts on the answer as the settlement loop would: paid -> credited once,
// closed / expired -> closed in the ledger (its hold on the day's recharge maximum given back), no final
// answer -> nothing changed, exit 1. Real switch, real Redis, both channel simulators over loopback, the
// CLI reaching them through ALIPAY_* / WECHATPAY_* as in production; the audit passes after each test.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { main } from '../switch/cli/main.js';
import { runRechargeAttentionCommand } from '../switch/cli/recharge-attention.js';
import { runRechargeResolveCommand } from '../switch/cli/recharge-resolve.js';
import { newRechargeOrder, resolveRechargeOrder, settlePendingRechargeOrders } from '../switch/domain/recharge-orders.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { readRechargeOrder } from '../switch/ledger/recharge-orders.js';
import { createLogger } from '../switch/log.js';
import { freePort } from '../switch/redis/local-redis.js';
import { testRedisUrl } from './helpers/redis.js';
import { openCard, readJournal, testConfig } from './helpers/switch.js';

/** What an operator reads: campus time (UTC+8) with its offset, computed here apart from the CLI's own code. */
function campusClock(ms: number): string {
  return `${new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ')} +08:00`;
}
/** An ISO time in UTC ('...Z'), which operators in campus time misread by 8 hours. */
const UTC_ISO = /\d{2}:\d{2}:\d{2}(\.\d+)?Z/;

const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
/** The day's recharge maximum of every card here (DAILY_RECHARGE_LIMIT_FEN): 100 yuan. */
const DAILY_LIMIT_FEN = 10_000;

type ChannelName = 'wechat' | 'alipay';
const codeOf = (channel: ChannelName): 'WECHAT' | 'ALIPAY' => (channel === 'wechat' ? 'WECHAT' : 'ALIPAY');

let sims: ChannelSimulators;
let app: SwitchApp;
let keyDir: string;
/** A loopback port nothing listens on: the channel unreachable. */
let deadPort: number;
let cardSeq = 0;

beforeAll(async () => {
  const port = await freePort();
  deadPort = await freePort();
  sims = await startChannelSimulators({ log, notifyBaseUrl: `http://127.0.0.1:${port}`, latencyMs: 0 });
  // The switch's own loop stays out of the way (once an hour): the test runs each sweep itself.
  const config = testConfig('chresolve', {
    GATEWAY_PORT: String(port),
    RECHARGE_QUERY_DELAY_MS: '0',
    RECHARGE_SETTLE_INTERVAL_MS: '3600000',
    DAILY_RECHARGE_LIMIT_FEN: String(DAILY_LIMIT_FEN),
  });
  app = await startSwitch(config, log, Date.now, { channels: sims.channels });
  keyDir = mkdtempSync(join(tmpdir(), 'recharge-resolve-'));
  writeFileSync(join(keyDir, 'apiclient_key.pem'), sims.wechat.keys.merchantPrivateKeyPem);
  writeFileSync(join(keyDir, 'pub_key.pem'), sims.wechat.keys.platformPublicKeyPem);
});

afterAll(async () => {
  await app?.stop();
  await sims?.stop();
  if (keyDir !== undefined) rmSync(keyDir, { recursive: true, force: true });
});

afterEach(async () => {
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
});

/** The CLI's environment: the ledger, and both channels' settings as the switch has them (or at a dead port). */
function cliEnv(reach: 'simulators' | 'unreachable' = 'simulators'): Record<string, string> {
  const dead = `http://127.0.0.1:${deadPort}`;
  const alipay = sims.alipay;
  const wechat = sims.wechat;
  return {
    REDIS_URL: testRedisUrl(),
    KEY_PREFIX: app.context.config.keyPrefix,
    LOG_LEVEL: 'silent',
    ALIPAY_APP_ID: alipay.appId,
    ALIPAY_APP_PRIVATE_KEY: alipay.appPrivateKeyPem ?? '',
    ALIPAY_PUBLIC_KEY: alipay.alipayPublicKeyPem,
    ALIPAY_GATEWAY_URL: reach === 'simulators' ? alipay.gatewayUrl : `${dead}/gateway.do`,
    WECHATPAY_API_BASE: reach === 'simulators' ? wechat.url : dead,
    WECHATPAY_MCH_ID: wechat.keys.mchId,
    WECHATPAY_APP_ID: wechat.keys.appId,
    WECHATPAY_API_KEY: wechat.keys.apiKey,
    WECHATPAY_API_V3_KEY: wechat.keys.apiV3Key,
    WECHATPAY_MCH_PRIVATE_KEY_FILE: join(keyDir, 'apiclient_key.pem'),
    WECHATPAY_MCH_CERT_SERIAL: wechat.keys.merchantSerial,
    WECHATPAY_PLATFORM_CERT_FILE: join(keyDir, 'pub_key.pem'),
    WECHATPAY_PLATFORM_PUBLIC_KEY_ID: wechat.keys.platformSerial,
    WECHATPAY_NOTIFY_URL: 'https://ecard.example.edu.cn/api/v1/channels/wechat/notify',
  };
}

interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function resolveCli(
  args: string[],
  reach: 'simulators' | 'unreachable' = 'simulators',
  extraEnv: Record<string, string> = {},
): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const logSpy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const errSpy = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await runRechargeResolveCommand(args, { ...cliEnv(reach), ...extraEnv });
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    logSpy.mockRestore();
    errSpy.mockRestore();
  }
}

async function attentionList(channel: ChannelName): Promise<unknown[]> {
  const out: string[] = [];
  const logSpy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const errSpy = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    await runRechargeAttentionCommand(['--json', '--channel', channel], cliEnv());
    return JSON.parse(out.join('\n')) as unknown[];
  } finally {
    logSpy.mockRestore();
    errSpy.mockRestore();
  }
}

/** The operator log's recharge-resolve entries about this order, as field maps. */
async function resolveLog(orderId: string): Promise<Record<string, string>[]> {
  const entries = await app.redis.xrange(app.keys.operatorLog(), '-', '+');
  const found: Record<string, string>[] = [];
  for (const [, flat] of entries) {
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] ?? ''] = flat[i + 1] ?? '';
    if (fields['op'] === 'recharge-resolve' && fields['order'] === orderId) found.push(fields);
  }
  return found;
}

async function newCard(): Promise<string> {
  cardSeq += 1;
  const cardNo = `5600${String(cardSeq).padStart(4, '0')}`;
  await openCard(app, cardNo, `RS${cardNo}`, 1000);
  return cardNo;
}

function queryCount(channel: ChannelName): number {
  return channel === 'wechat' ? sims.wechat.callCount('/pay/orderquery') : sims.alipay.callCount('alipay.trade.query');
}

/** An order of `amountFen` the settlement loop gave up on (one query answered with a system error): state A. */
async function attentionOrder(channel: ChannelName, cardNo: string, amountFen: number, requestId: string): Promise<string> {
  const order = await newRechargeOrder(app.context, { cardNo, channel, amountFen, requestId, source: 'holder' });
  if (channel === 'wechat') sims.wechat.failNext('orderquery', 'systemerror');
  else sims.alipay.failNext('alipay.trade.query', 'system_error', 1);
  const report = await settlePendingRechargeOrders(app.context, {
    olderThanMs: 0,
    maxPerShard: 100,
    retryBaseMs: 60_000,
    maxUnknownQueries: 1,
  });
  expect(report['needs_attention']).toBe(1);
  expect(await readRechargeOrder(app.context, codeOf(channel), order.orderId)).toMatchObject({ state: 'A', credited: false });
  return order.orderId;
}

/** The payer pays the order at the channel and no notification reaches the switch. */
async function payUnnotified(channel: ChannelName, orderId: string): Promise<void> {
  if (channel === 'wechat') await sims.wechat.payOrder(orderId, { notify: false });
  else {
    sims.alipay.planNotify(orderId, { times: 0 });
    await sims.alipay.payOrder(orderId).notified;
  }
}

/** What the card's open orders hold of the day's maximum for this order ('' = nothing). */
async function held(cardNo: string, orderId: string): Promise<string> {
  return (await app.redis.hget(app.keys.rechargeOpen(cardNo), orderId)) ?? '';
}

async function inAttentionIndex(cardNo: string, channel: ChannelName, orderId: string): Promise<boolean> {
  return (await app.redis.zscore(app.keys.rechargeAttention(app.keys.shardOf(cardNo)), `${codeOf(channel)}:${orderId}`)) !== null;
}

async function inPendingIndex(cardNo: string, channel: ChannelName, orderId: string): Promise<boolean> {
  return (await app.redis.zscore(app.keys.rechargePending(app.keys.shardOf(cardNo)), `${codeOf(channel)}:${orderId}`)) !== null;
}

async function balance(cardNo: string): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));
}

async function credits(cardNo: string, orderId: string): Promise<number> {
  const journal = await readJournal(app.redis, app.keys.journalOfCard(cardNo));
  return journal.filter((e) => e.fields['k'] === 'rch' && e.fields['sq'] === orderId).length;
}

/** What may still be recharged on the card today, as an order of more than the whole maximum is refused with it. */
async function leftToday(channel: ChannelName, cardNo: string, requestId: string): Promise<number> {
  try {
    await newRechargeOrder(app.context, { cardNo, channel, amountFen: DAILY_LIMIT_FEN + 1, requestId, source: 'holder' });
  } catch (err) {
    const match = /\((\d+) fen\) more today/.exec((err as Error).message);
    if (match === null) throw err;
    return Number(match[1]);
  }
  throw new Error('an order of more than the day maximum was made');
}

describe.each(['wechat', 'alipay'] as const)('%s: recharge-resolve', (channel) => {
  const other: ChannelName = channel === 'wechat' ? 'alipay' : 'wechat';

  it('credits an attention order the channel says is paid, once; its hold is released; running it again does nothing more', async () => {
    const cardNo = await newCard();
    const orderId = await attentionOrder(channel, cardNo, 6000, 'paid');
    await payUnnotified(channel, orderId);
    expect(await balance(cardNo)).toBe(1000);

    const first = await resolveCli(['--channel', channel, '--order', orderId, '--operator', 'alice']);
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    expect(first.out).toContain(`credited 60.00 yuan to card ${cardNo}`);
    expect(first.out).toContain(`已入账 60.00 元`);
    expect(await balance(cardNo)).toBe(7000);
    expect(await credits(cardNo, orderId)).toBe(1);
    expect(await readRechargeOrder(app.context, codeOf(channel), orderId)).toMatchObject({ credited: true });
    // Off the attention list, and no longer held as an open order: counted once, in the day's credits.
    expect(await held(cardNo, orderId)).toBe('');
    expect(await inAttentionIndex(cardNo, channel, orderId)).toBe(false);
    expect(await attentionList(channel)).toEqual([]);
    expect(await leftToday(channel, cardNo, 'left-1')).toBe(DAILY_LIMIT_FEN - 6000);
    expect(await resolveLog(orderId)).toEqual([
      expect.objectContaining({ by: 'cli:alice', channel, card: cardNo, amountFen: '6000', asked: 'query', outcome: 'credited' }),
    ]);

    // Again: refused with the state it is in, without asking the channel; nothing more credited or logged.
    const queries = queryCount(channel);
    const again = await resolveCli(['--channel', channel, '--order', orderId, '--operator', 'alice']);
    expect(again.code).toBe(2);
    expect(again.err).toContain('already credited (60.00 yuan to card');
    expect(again.err).toContain('已入账');
    expect(queryCount(channel)).toBe(queries);
    expect(await balance(cardNo)).toBe(7000);
    expect(await credits(cardNo, orderId)).toBe(1);
    expect(await resolveLog(orderId)).toHaveLength(1);
  });

  it('closes an attention order the channel says is closed, releasing its hold (--json)', async () => {
    const cardNo = await newCard();
    const orderId = await attentionOrder(channel, cardNo, 7000, 'closed');
    expect(await leftToday(channel, cardNo, 'left-1')).toBe(DAILY_LIMIT_FEN - 7000);
    if (channel === 'wechat') sims.wechat.expireOrder(orderId);
    else await sims.alipay.expireOrder(orderId);

    const run = await resolveCli(['--channel', channel, '--order', orderId, '--operator', 'bob', '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.out)).toMatchObject({
      orderId,
      channel,
      cardNo,
      amountFen: 7000,
      asked: 'query',
      outcome: 'closed',
      state: 'closed',
    });
    expect(await readRechargeOrder(app.context, codeOf(channel), orderId)).toMatchObject({ state: 'C', credited: false });
    expect(await held(cardNo, orderId)).toBe('');
    expect(await inAttentionIndex(cardNo, channel, orderId)).toBe(false);
    expect(await balance(cardNo)).toBe(1000);
    expect(await resolveLog(orderId)).toEqual([expect.objectContaining({ by: 'cli:bob', outcome: 'closed' })]);

    // The whole day's maximum is free again: an order of all of it is made; a pending order is resolved
    // too (--close, nothing paid yet): closed at the channel and here.
    const whole = await newRechargeOrder(app.context, {
      cardNo,
      channel,
      amountFen: DAILY_LIMIT_FEN,
      requestId: 'whole',
      source: 'holder',
    });
    const closed = await resolveCli(['--channel', channel, '--order', whole.orderId, '--close', '--operator', 'bob']);
    expect(closed.code).toBe(0);
    expect(closed.out).toContain('closed');
    expect(await readRechargeOrder(app.context, codeOf(channel), whole.orderId)).toMatchObject({ state: 'C', credited: false });

    const again = await resolveCli(['--channel', channel, '--order', orderId]);
    expect(again.code).toBe(2);
    expect(again.err).toContain('is closed');
    expect(again.err).toContain('已关闭');
  });

  it('changes nothing when the channel cannot be reached: unknown, exit 1, says what to do', async () => {
    const cardNo = await newCard();
    const orderId = await attentionOrder(channel, cardNo, 3000, 'unreachable');
    const record = await app.redis.hgetall(app.keys.order(cardNo, codeOf(channel), orderId));
    const open = await held(cardNo, orderId);
    expect(open).not.toBe('');

    for (const args of [[], ['--close']]) {
      const run = await resolveCli(['--channel', channel, '--order', orderId, '--operator', 'carol', ...args], 'unreachable');
      expect(run.code).toBe(1);
      expect(run.out).toContain('unknown');
      expect(run.out).toContain('nothing was changed');
      expect(run.out).toContain('merchant portal');
      expect(run.out).toContain('--close');
      expect(run.out).toContain('未做任何更改');
      // The order can still be paid until its expiry: said in campus time with the offset, in both languages.
      const until = campusClock(Number(record['oexp']));
      expect(run.out).toContain(`It can still be paid until ${until}.`);
      expect(run.out).toContain(`订单在 ${until} 前仍可支付`);
      expect(run.out).not.toMatch(UTC_ISO);
      expect(run.out).toMatch(channel === 'wechat' ? /微信支付商户平台.*pay\.weixin\.qq\.com/ : /支付宝商家平台.*b\.alipay\.com/);
      expect(await app.redis.hgetall(app.keys.order(cardNo, codeOf(channel), orderId))).toEqual(record);
      expect(await held(cardNo, orderId)).toBe(open);
      expect(await inAttentionIndex(cardNo, channel, orderId)).toBe(true);
      expect(await balance(cardNo)).toBe(1000);
    }
    // Each attempt is in the operator log, as asked and unanswered.
    expect(await resolveLog(orderId)).toEqual([
      expect.objectContaining({ by: 'cli:carol', asked: 'query', outcome: 'unknown' }),
      expect.objectContaining({ by: 'cli:carol', asked: 'close', outcome: 'unknown' }),
    ]);
    // Reachable again: --close settles it (closed at the channel, the hold given back).
    const closed = await resolveCli(['--channel', channel, '--order', orderId, '--close', '--operator', 'carol']);
    expect(closed.code).toBe(0);
    expect(await held(cardNo, orderId)).toBe('');
  });

  it('--close on an unpaid attention order closes it at the channel and in the ledger; a second --close does nothing more', async () => {
    const cardNo = await newCard();
    const orderId = await attentionOrder(channel, cardNo, 4000, 'close-unpaid');
    const run = await resolveCli(['--channel', channel, '--order', orderId, '--close', '--operator', 'dave']);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(run.out).toContain(`closed ${channel} recharge order ${orderId}`);
    expect(run.out).toContain('已关闭');
    // Closed at the channel: it can no longer be paid.
    const adapter = sims.channels.get(channel);
    expect(await adapter?.queryPayment(orderId, AbortSignal.timeout(5000))).toEqual({ status: 'closed' });
    if (channel === 'wechat') expect(sims.wechat.order(orderId)?.state).toBe('CLOSED');
    expect(await readRechargeOrder(app.context, codeOf(channel), orderId)).toMatchObject({ state: 'C', credited: false });
    expect(await held(cardNo, orderId)).toBe('');
    expect(await inAttentionIndex(cardNo, channel, orderId)).toBe(false);
    expect(await leftToday(channel, cardNo, 'left-1')).toBe(DAILY_LIMIT_FEN);
    expect(await resolveLog(orderId)).toEqual([expect.objectContaining({ by: 'cli:dave', asked: 'close', outcome: 'closed' })]);

    const closes =
      channel === 'wechat'
        ? sims.wechat.callCount(`/v3/pay/transactions/out-trade-no/${orderId}/close`)
        : sims.alipay.callCount('alipay.trade.close');
    const again = await resolveCli(['--channel', channel, '--order', orderId, '--close', '--operator', 'dave']);
    expect(again.code).toBe(2);
    expect(again.err).toContain('is closed');
    expect(
      channel === 'wechat'
        ? sims.wechat.callCount(`/v3/pay/transactions/out-trade-no/${orderId}/close`)
        : sims.alipay.callCount('alipay.trade.close'),
    ).toBe(closes);
    expect(await resolveLog(orderId)).toHaveLength(1);
  });

  it('--close on an order paid at the channel credits it once', async () => {
    const cardNo = await newCard();
    const orderId = await attentionOrder(channel, cardNo, 2500, 'close-paid');
    await payUnnotified(channel, orderId);
    const run = await resolveCli(['--channel', channel, '--order', orderId, '--close', '--operator', 'erin']);
    expect(run.code).toBe(0);
    expect(run.out).toContain(`credited 25.00 yuan to card ${cardNo}`);
    expect(await balance(cardNo)).toBe(3500);
    expect(await credits(cardNo, orderId)).toBe(1);
    expect(await held(cardNo, orderId)).toBe('');
    expect(await resolveLog(orderId)).toEqual([expect.objectContaining({ by: 'cli:erin', asked: 'close', outcome: 'credited' })]);
  });

  it('two operators (query and --close), the settlement sweep, the payer and the notification at once: one credit or one close, never both', async () => {
    // Rounds of attention and pending orders, paid before the race or paid during it (or not: closed first).
    const adapter = sims.channels.get(channel);
    for (let round = 0; round < 24; round++) {
      const cardNo = await newCard();
      const amountFen = 1000 + round;
      const requestId = `storm-${round}`;
      const orderId =
        round % 2 === 0
          ? await attentionOrder(channel, cardNo, amountFen, requestId)
          : (await newRechargeOrder(app.context, { cardNo, channel, amountFen, requestId, source: 'holder' })).orderId;
      const paidBefore = round % 3 === 0;
      if (paidBefore) await payUnnotified(channel, orderId);
      const resolve = (close: boolean, operator: string): Promise<string> =>
        resolveRechargeOrder(app.context, { channel, orderId, close, operator: `cli:${operator}` }).then(
          (r) => r.outcome,
          (err: Error) => (/not waiting for an operator/.test(err.message) ? 'refused' : `error: ${err.message}`),
        );
      const pay = async (): Promise<void> => {
        if (paidBefore) return;
        try {
          if (channel === 'wechat') await sims.wechat.payOrder(orderId);
          else await sims.alipay.payOrder(orderId).notified;
        } catch {
          // Closed at the channel first: nobody can pay it.
        }
      };
      const [a, b, c] = await Promise.all([
        resolve(false, 'ann'),
        resolve(true, 'ben'),
        resolve(false, 'cat'),
        pay(),
        settlePendingRechargeOrders(app.context, { olderThanMs: 0, maxPerShard: 100, retryBaseMs: 60_000, maxUnknownQueries: 1000 }),
      ]);
      const outcomes = [a, b, c];
      expect(outcomes.filter((o) => o.startsWith('error'))).toEqual([]);
      const paid = (await adapter?.queryPayment(orderId, AbortSignal.timeout(5000)))?.status === 'paid';
      const order = await readRechargeOrder(app.context, codeOf(channel), orderId);
      if (paid) {
        expect(await credits(cardNo, orderId)).toBe(1);
        expect(await balance(cardNo)).toBe(1000 + amountFen);
        expect(order).toMatchObject({ credited: true });
        expect(outcomes).not.toContain('closed');
      } else {
        expect(await credits(cardNo, orderId)).toBe(0);
        expect(await balance(cardNo)).toBe(1000);
        expect(outcomes).not.toContain('credited');
        // Closed at the channel by --close (an Alipay QR nobody scanned stays pending until it expires).
        if (outcomes.includes('closed')) expect(order).toMatchObject({ state: 'C', credited: false });
      }
      if (paid || order?.state === 'C') {
        expect(await held(cardNo, orderId)).toBe('');
        expect(await inAttentionIndex(cardNo, channel, orderId)).toBe(false);
      } else {
        // Left open (nothing final): closed now, so the next rounds' sweeps leave it alone.
        expect((await resolveRechargeOrder(app.context, { channel, orderId, close: true, operator: 'cli:tidy' })).outcome).toBe('closed');
      }
    }
  });

  it('an order credited but left on the attention index (by a switch before recharge.lua took it off) is no longer listed, and resolving it again tidies it', async () => {
    const cardNo = await newCard();
    const orderId = await attentionOrder(channel, cardNo, 3300, 'cut-off');
    await payUnnotified(channel, orderId);
    // The first of creditPaid's two scripts (recharge.lua), as a resolution (or a notification) runs it;
    // the process stops before the second (recharge-order.lua 'finish' S, which takes it off the indexes).
    const credited = await app.context.money.recharge({
      cardNo,
      channel: codeOf(channel),
      orderId,
      amountFen: 3300,
      source: codeOf(channel),
      reason: '',
      dailyLimitFen: 0,
    });
    expect(credited.code).toBe('credited');
    expect(await balance(cardNo)).toBe(4300);
    expect(await held(cardNo, orderId)).toBe('');
    // recharge.lua takes it off the index itself now; a ledger credited by a switch before that change
    // may still hold such a leftover, so one is put back as it would have been left.
    expect(await inAttentionIndex(cardNo, channel, orderId)).toBe(false);
    await app.redis.zadd(app.keys.rechargeAttention(app.keys.shardOf(cardNo)), Date.now(), `${codeOf(channel)}:${orderId}`);
    expect(await inAttentionIndex(cardNo, channel, orderId)).toBe(true);

    // Credited: not an order that needs an operator, whatever its index says.
    expect((await attentionList(channel)).map((o) => (o as { orderId: string }).orderId)).not.toContain(orderId);
    const again = await resolveCli(['--channel', channel, '--order', orderId, '--operator', 'fay']);
    expect(again.code).toBe(2);
    expect(again.err).toContain('already credited');
    expect(await inAttentionIndex(cardNo, channel, orderId)).toBe(false);
    expect(await balance(cardNo)).toBe(4300);
    expect(await credits(cardNo, orderId)).toBe(1);
  });

  it('the credit itself (recharge.lua) takes the order off the attention and pending indexes: a crash before finish leaves nothing indexed', async () => {
    // Only the first of creditPaid's two scripts runs, as when the process is killed right after it.
    const credit = (cardNo: string, orderId: string, amountFen: number): ReturnType<typeof app.context.money.recharge> =>
      app.context.money.recharge({
        cardNo,
        channel: codeOf(channel),
        orderId,
        amountFen,
        source: codeOf(channel),
        reason: '',
        dailyLimitFen: 0,
      });

    // An order that needs an operator.
    const cardNo = await newCard();
    const attention = await attentionOrder(channel, cardNo, 2100, 'crash-attention');
    await payUnnotified(channel, attention);
    expect(await inAttentionIndex(cardNo, channel, attention)).toBe(true);
    expect((await credit(cardNo, attention, 2100)).code).toBe('credited');
    expect(await inAttentionIndex(cardNo, channel, attention)).toBe(false);
    expect(await inPendingIndex(cardNo, channel, attention)).toBe(false);
    expect(await held(cardNo, attention)).toBe('');

    // A pending order (the settlement loop's or a notification's credit).
    const pending = (
      await newRechargeOrder(app.context, { cardNo, channel, amountFen: 1700, requestId: 'crash-pending', source: 'holder' })
    ).orderId;
    await payUnnotified(channel, pending);
    expect(await inPendingIndex(cardNo, channel, pending)).toBe(true);
    expect((await credit(cardNo, pending, 1700)).code).toBe('credited');
    expect(await inPendingIndex(cardNo, channel, pending)).toBe(false);
    expect(await inAttentionIndex(cardNo, channel, pending)).toBe(false);
    expect(await held(cardNo, pending)).toBe('');

    // A replay of the credit answers the same and puts nothing back; the money moved once each.
    expect((await credit(cardNo, pending, 1700)).code).toBe('credited');
    expect(await inPendingIndex(cardNo, channel, pending)).toBe(false);
    expect(await balance(cardNo)).toBe(1000 + 2100 + 1700);
    expect(await credits(cardNo, attention)).toBe(1);
    expect(await credits(cardNo, pending)).toBe(1);
  });

  it('in the durable mode (LEDGER_DURABILITY=replica) a credit no replica confirmed is not reported as credited', async () => {
    // The test's Redis has no replica: every write stays unconfirmed, as on a primary whose replicas are
    // cut off. The switch answers such a write UNAVAILABLE (a failover may lose it); so must the operator's command.
    const cardNo = await newCard();
    const orderId = await attentionOrder(channel, cardNo, 1200, 'durable');
    await payUnnotified(channel, orderId);
    const run = await resolveCli(['--channel', channel, '--order', orderId, '--operator', 'gus'], 'simulators', {
      LEDGER_DURABILITY: 'replica',
      LEDGER_WAIT_TIMEOUT_MS: '50',
    });
    expect(run.out).not.toContain('credited');
    expect(run.code).toBe(2);
    expect(run.err).toContain('no replica');
    expect(run.err).toContain('run it again');
    // Run again where a replica confirms (here: the plain mode): credited, once, whatever the stopped run wrote.
    const again = await resolveCli(['--channel', channel, '--order', orderId, '--operator', 'gus']);
    expect(again.code).toBe(0);
    expect(again.out).toContain(`credited 12.00 yuan to card ${cardNo}`);
    expect(await credits(cardNo, orderId)).toBe(1);
    expect(await balance(cardNo)).toBe(2200);
  });

  it('refuses an unknown order, an order of the other channel and bad arguments, changing nothing', async () => {
    const unknown = await resolveCli(['--channel', channel, '--order', 'NOSUCHORDER123456']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain(`no ${channel} recharge order NOSUCHORDER123456`);
    expect(unknown.err).toContain('找不到');

    const cardNo = await newCard();
    const orderId = await attentionOrder(other, cardNo, 1500, 'wrong-channel');
    const wrong = await resolveCli(['--channel', channel, '--order', orderId, '--close']);
    expect(wrong.code).toBe(2);
    expect(wrong.err).toContain(`is a ${other} order`);
    expect(wrong.err).toContain(`--channel ${other}`);
    expect(await readRechargeOrder(app.context, codeOf(other), orderId)).toMatchObject({ state: 'A', credited: false });
    expect(await resolveLog(orderId)).toEqual([]);

    for (const args of [
      ['--order', orderId],
      ['--channel', 'paypal', '--order', orderId],
      ['--channel', channel],
      ['--channel', channel, '--order', orderId, '--operator', 'not a name'],
    ]) {
      const bad = await resolveCli(args);
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/^error: /);
    }
    // Resolved with the right channel after all (nothing left for the other tests' sweeps).
    expect((await resolveCli(['--channel', other, '--order', orderId, '--close'])).code).toBe(0);
  });
});

describe('help', () => {
  it('the CLI help lists recharge-resolve, and recharge-resolve --help says what it does', async () => {
    const out: string[] = [];
    const logSpy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    try {
      expect(await main(['help'])).toBe(0);
      expect(out.join('\n')).toContain('recharge-resolve --channel wechat|alipay --order <id> [--close] [--operator NAME] [--json]');
    } finally {
      logSpy.mockRestore();
    }
    const usage = await resolveCli(['--help']);
    expect(usage.code).toBe(0);
    expect(usage.out).toContain('usage: cardswitch recharge-resolve');
    expect(usage.out).toContain('merchant portal');
  });
});
