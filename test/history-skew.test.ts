// A switch whose clock is ahead of Redis's: a statement line's time (the switch's decision time) is then
// later than its journal entry's stream id (Redis's time), and a trim at a cutoff between the two removes
// the entry (archived) but keeps the line in Redis. Such a line still reads while PostgreSQL is down: only
// its description's detail (which recharge channel) needs the entry, and it is left out, not the statement.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RechargeChannel } from '../proto/gen/cardswitch/v1/common.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { StatementReader } from '../switch/domain/reports.js';
import { ArchiveStore } from '../switch/history/archive-store.js';
import { Archiver } from '../switch/history/archiver.js';
import { createLogger } from '../switch/log.js';
import { adminClient, OPERATOR_ENV, operatorMetadata } from './helpers/clients.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';
import { call, openCard, testConfig } from './helpers/switch.js';

const DAY_MS = 86_400_000;
/** The switch's clock ahead of Redis's: more than the 10 min a trim allows for (archiver.ts). */
const SKEW_MS = 15 * 60_000;
const CARD_NO = '31950001';

let postgres: TestPostgres;
let app: SwitchApp;
let store: ArchiveStore;

beforeAll(async () => {
  postgres = await startTestPostgres();
  const url = await postgres.database('skew');
  const config = testConfig('hskew', { ...OPERATOR_ENV, DATABASE_URL: url, HISTORY_ARCHIVE: 'off' });
  app = await startSwitch(config, createLogger(config.logLevel), () => Date.now() + SKEW_MS);
  store = new ArchiveStore({ url, poolSize: 2, statementTimeoutMs: 30_000 });
}, 120_000);

afterAll(async () => {
  try {
    await store?.close();
    await app?.stop();
  } finally {
    await postgres?.destroy();
  }
});

it('a line whose entry left Redis for the archive reads with PostgreSQL down, without the detail only the entry has', async () => {
  await openCard(app, CARD_NO, 'C5950001', 10_000);
  const admin = adminClient(app);
  await call(
    admin,
    'manualRecharge',
    { cardNumber: CARD_NO, channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT, channelOrderId: 'SKEW-R1', amountFen: 500, reason: '充值' },
    operatorMetadata(),
  );
  admin.close();
  // The archiver's cutoff (its clock a day and 2 min ahead, a one-day window) lies between the entries' stream
  // ids (Redis's time) and the lines' times (the switch's, a quarter of an hour ahead), beyond the allowance.
  const archiver = new Archiver({
    redis: app.redis,
    keys: app.keys,
    store,
    log: createLogger('silent'),
    batchSize: 100,
    intervalMs: 10,
    liveWindowMs: DAY_MS,
    trim: true,
    now: () => Date.now() + DAY_MS + 2 * 60_000,
  });
  await archiver.syncPositions();
  const pass = await archiver.runPass();
  expect(pass.archived).toBe(2);
  expect(pass.entriesTrimmed).toBe(2);
  expect(pass.linesTrimmed).toBe(0);
  expect(await app.redis.zcard(app.keys.statement(CARD_NO))).toBe(2);

  const reader = new StatementReader(app.context);
  const query = { fromMs: 0, toMs: 0, categories: new Set<never>(), pageSize: 20, pageToken: '' };
  const whole = await reader.read(CARD_NO, query);
  expect(whole.lines.map((l) => [l.kind, l.amountFen, l.description])).toEqual([
    ['rch', 500, '微信充值'],
    ['open', 10_000, '开户'],
  ]);
  expect(whole.nextPageToken).toBe('');
  await postgres.stop();
  try {
    const down = await reader.read(CARD_NO, query);
    // The same lines, amounts and balances; the recharge's channel (in its archived entry) is not named.
    expect(down.lines).toEqual(whole.lines.map((l) => (l.kind === 'rch' ? { ...l, description: '充值' } : l)));
  } finally {
    await postgres.restart();
  }
}, 60_000);

it('a line goes from Redis with its entry when the cutoff falls less than 10 min before the line, also for a card never used again', async () => {
  const cardNo = '31950002';
  await openCard(app, cardNo, 'C5950002', 10_000);
  const shard = app.keys.shardOf(cardNo);
  // A cutoff 5 min before the line's time (and 10 min after its entry's id): within the allowance, so the line
  // goes with its entry.
  const archiver = new Archiver({
    redis: app.redis,
    keys: app.keys,
    store,
    log: createLogger('silent'),
    batchSize: 100,
    intervalMs: 10,
    liveWindowMs: DAY_MS,
    trim: true,
    now: () => Date.now() + DAY_MS + SKEW_MS - 5 * 60_000,
  });
  await archiver.syncPositions();
  await archiver.runPass();
  expect(await app.redis.xlen(app.keys.journal(shard))).toBe(0);
  // Later passes find no entry of this card to trim: a line left now would stay in Redis for good.
  const later = new Archiver({
    redis: app.redis,
    keys: app.keys,
    store,
    log: createLogger('silent'),
    batchSize: 100,
    intervalMs: 10,
    liveWindowMs: DAY_MS,
    trim: true,
    now: () => Date.now() + 3 * DAY_MS,
  });
  await later.runPass();
  expect(await app.redis.zcard(app.keys.statement(cardNo))).toBe(0);
  const reader = new StatementReader(app.context);
  const page = await reader.read(cardNo, { fromMs: 0, toMs: 0, categories: new Set<never>(), pageSize: 20, pageToken: '' });
  expect(page.lines.map((l) => [l.kind, l.amountFen, l.balanceAfterFen])).toEqual([['open', 10_000, 10_000]]);
}, 60_000);
