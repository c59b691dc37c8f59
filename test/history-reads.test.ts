// Reads across both stores once part of the history has left Redis for PostgreSQL: a card's statement
// pages from Redis into the archive without a gap or a repeat; settlement reports give the journal's
// totals; the audit proves every balance over archived plus live entries and catches a row changed in
// PostgreSQL (where Redis still has the entry, and where only the archive has it).
import pg from 'pg';
import { status as Status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CardStatementResponse } from '../proto/gen/cardswitch/v1/admin.js';
import { UnavailableError } from '../switch/errors.js';
import { runAuditCommand } from '../switch/cli/audit.js';
import type { SwitchApp } from '../switch/app.js';
import { settlementReport, StatementReader, type StatementCategory, type StatementEntry } from '../switch/domain/reports.js';
import { ArchiveStore } from '../switch/history/archive-store.js';
import { Archiver } from '../switch/history/archiver.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { statementMemberOf } from '../switch/ledger/history-reads.js';
import { parseJournalEntry, type RawStreamEntry } from '../switch/ledger/journal.js';
import { createLogger } from '../switch/log.js';
import { adminClient, OPERATOR_ENV, operatorMetadata } from './helpers/clients.js';
import { historyCardNo, HistoryTraffic } from './helpers/history-traffic.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';
import { testRedisUrl } from './helpers/redis.js';
import { call, grpcError, startTestSwitch } from './helpers/switch.js';
import { waitUntil } from './helpers/cluster-load.js';

const CARDS = 10;
const DAY_MS = 86_400_000;
const MERCHANTS = ['HXC1', 'HXS1', 'HXBATH'];

let postgres: TestPostgres;
let app: SwitchApp;
let store: ArchiveStore;
let archiver: Archiver;
let reader: StatementReader;
let databaseUrl: string;
/** Every card's whole statement and the settlement reports, read before anything was archived. */
const before = new Map<string, StatementEntry[]>();
const reportsBefore = new Map<string, unknown>();
let day: string;

async function wholeStatement(cardNo: string, pageSize: number, categories: StatementCategory[] = []): Promise<StatementEntry[]> {
  const lines: StatementEntry[] = [];
  let pageToken = '';
  for (let pages = 0; pages < 1000; pages++) {
    const page = await reader.read(cardNo, { fromMs: 0, toMs: 0, categories: new Set(categories), pageSize, pageToken });
    expect(page.lines.length).toBeLessThanOrEqual(pageSize);
    lines.push(...page.lines);
    if (page.nextPageToken === '') return lines;
    pageToken = page.nextPageToken;
  }
  throw new Error('statement did not end');
}

async function journal(shard: number): Promise<RawStreamEntry[]> {
  return await app.redis.xrange(app.keys.journal(shard), '-', '+');
}

beforeAll(async () => {
  postgres = await startTestPostgres();
  databaseUrl = await postgres.database('reads');
  app = await startTestSwitch('hreads', { ...OPERATOR_ENV, DATABASE_URL: databaseUrl, HISTORY_ARCHIVE: 'off', LEDGER_SHARDS: '4' });
  store = new ArchiveStore({ url: databaseUrl, poolSize: 2, statementTimeoutMs: 30_000 });
  archiver = new Archiver({
    redis: app.redis,
    keys: app.keys,
    store,
    log: createLogger('silent'),
    batchSize: 40,
    intervalMs: 10,
    liveWindowMs: DAY_MS,
    trim: true,
    // Two days ahead: every entry is older than the one-day window, so all that is archived may be trimmed.
    now: () => Date.now() + 2 * DAY_MS,
  });
  reader = new StatementReader(app.context);
  const traffic = new HistoryTraffic(app, CARDS, 17);
  await traffic.setUp();
  await traffic.run(360);
  for (let i = 0; i < CARDS; i++) before.set(historyCardNo(i), await wholeStatement(historyCardNo(i), 100));
  day = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
  for (const m of MERCHANTS) reportsBefore.set(m, await settlementReport(app.context, m, day));
  // One batch of 40 per shard is archived and trimmed; the rest stays in Redis only.
  await archiver.syncPositions();
  for (let shard = 0; shard < app.keys.shardCount; shard++) await archiver.archiveShard(shard, 1);
}, 180_000);

afterAll(async () => {
  try {
    // A test that failed while PostgreSQL was paused must not leave it stopped.
    postgres?.resume();
    await store?.close();
    await app?.stop();
  } finally {
    // Whatever failed above, the server goes: a file left running is a PostgreSQL for good.
    await postgres?.destroy();
  }
});

describe('reads across Redis and PostgreSQL', () => {
  it('derives from each archived row the very statement line Redis holds for it', async () => {
    let checked = 0;
    const kinds = new Set<string>();
    for (let shard = 0; shard < app.keys.shardCount; shard++) {
      const rows = await store.rows(shard, { ms: 0, seq: 0 }, { ms: Number.MAX_SAFE_INTEGER, seq: 0 }, 10_000);
      expect(rows.length).toBe(40);
      for (const row of rows) {
        const entry = parseJournalEntry(row);
        kinds.add(entry.kind);
        const score = await app.redis.zscore(app.keys.statement(entry.cardNo), statementMemberOf(entry));
        expect(score, `line of ${entry.kind} ${entry.id}`).toBe(String(entry.atMs));
        checked++;
      }
    }
    expect(checked).toBe(40 * app.keys.shardCount);
    // Every kind the traffic makes: account and wallet moves both ways.
    expect([...kinds].sort()).toEqual(['adj', 'open', 'pay', 'rch', 'ref', 'rev', 'wopen', 'wpay', 'wset'].filter((k) => kinds.has(k)));
    for (const k of ['open', 'pay', 'rch', 'wpay', 'rev']) expect(kinds, k).toContain(k);
  });

  it('pages a statement seamlessly from Redis into the archive (all page sizes, with a category filter)', async () => {
    const trimmed = { entries: 0, lines: 0 };
    for (let shard = 0; shard < app.keys.shardCount; shard++) {
      const t = await archiver.trimShard(shard);
      trimmed.entries += t.entries;
      trimmed.lines += t.lines;
    }
    expect(trimmed.entries).toBe(40 * app.keys.shardCount);
    expect(trimmed.lines).toBeGreaterThan(0);
    let spanning = 0;
    for (const [cardNo, lines] of before) {
      const live = await app.redis.zcard(app.keys.statement(cardNo));
      if (live > 0 && live < lines.length) spanning++;
      for (const pageSize of [1, 3, 7, 100]) expect(await wholeStatement(cardNo, pageSize)).toEqual(lines);
      const payments = lines.filter((l) => l.category === 'payment' || l.category === 'water');
      expect(await wholeStatement(cardNo, 4, ['payment', 'water'])).toEqual(payments);
    }
    // The statements really did span both stores.
    expect(spanning).toBeGreaterThan(CARDS / 2);
  });

  it('a date range reads only its part, across both stores', async () => {
    const [cardNo, lines] = [...before].find(([, l]) => l.length > 10)!;
    const mid = lines[Math.floor(lines.length / 2)]!.atMs;
    const expected = lines.filter((l) => l.atMs < mid);
    const page = await reader.read(cardNo, { fromMs: 0, toMs: mid, categories: new Set(), pageSize: 100, pageToken: '' });
    expect(page.lines).toEqual(expected.slice(0, 100));
  });

  it('settlement reports give the same totals as before the trim, and as the journal sums', async () => {
    for (const m of MERCHANTS) {
      const report = await settlementReport(app.context, m, day);
      expect(report).toEqual(reportsBefore.get(m));
      // The journal's own sum, over both stores: money to m: paid, money from m: given back.
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      const archived = await client.query<{ paid: string; back: string }>(
        `SELECT coalesce(sum(amount_fen) FILTER (WHERE to_party = $1), 0) AS paid, coalesce(sum(amount_fen) FILTER (WHERE from_party = $1), 0) AS back FROM journal`,
        [`m:${m}`],
      );
      await client.end();
      let paid = Number(archived.rows[0]!.paid);
      let back = Number(archived.rows[0]!.back);
      for (let shard = 0; shard < app.keys.shardCount; shard++) {
        for (const row of await journal(shard)) {
          const e = parseJournalEntry(row);
          if (e.toParty === `m:${m}`) paid += e.amountFen;
          if (e.fromParty === `m:${m}`) back += e.amountFen;
        }
      }
      expect(report.total.paidFen).toBe(paid);
      expect(report.total.refundedFen).toBe(back);
      expect(report.total.netFen).toBe(paid - back);
      if (m !== 'HXS1') expect(report.total.paidFen).toBeGreaterThan(0);
    }
  });

  it('the audit proves every balance over archived and live entries, and catches a row changed in PostgreSQL', async () => {
    // Archive the rest without trimming: those entries are in both stores now.
    for (let shard = 0; shard < app.keys.shardCount; shard++) await archiver.archiveShard(shard);
    const sound = await auditLedger(app.redis, app.keys, {}, store);
    expect(sound.problems).toEqual([]);
    expect(sound.ok).toBe(true);
    const all = await store.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM journal');
    expect(sound.journalEntries).toBe(all.rows[0]!.n);

    // A row still in Redis: its terminal changed in PostgreSQL (no balance shows it).
    const live = (await journal(0))[0]!;
    const liveId = live[0].split('-').map(Number);
    await store.pool.query(`UPDATE journal SET terminal_id = 'FORGED' WHERE shard = 0 AND stream_ms = $1 AND stream_seq = $2`, liveId);
    const forged = await auditLedger(app.redis, app.keys, {}, store);
    expect(forged.ok).toBe(false);
    expect(forged.problems).toContainEqual(expect.objectContaining({ kind: 'archive', entryId: live[0] }));

    // A row only the archive has (trimmed from Redis): a payment made smaller by 1 fen.
    const old = await store.pool.query<{ shard: number; stream_ms: string; stream_seq: string; card_no: string }>(
      `SELECT shard, stream_ms, stream_seq, card_no FROM journal WHERE kind = 'pay' AND shard = 1 ORDER BY stream_ms, stream_seq LIMIT 1`,
    );
    const row = old.rows[0]!;
    expect(await app.redis.xrange(app.keys.journal(1), `${row.stream_ms}-${row.stream_seq}`, `${row.stream_ms}-${row.stream_seq}`)).toEqual(
      [],
    );
    await store.pool.query(`UPDATE journal SET amount_fen = amount_fen - 1 WHERE shard = 1 AND stream_ms = $1 AND stream_seq = $2`, [
      row.stream_ms,
      row.stream_seq,
    ]);
    const changed = await auditLedger(app.redis, app.keys, {}, store);
    expect(changed.ok).toBe(false);
    expect(changed.problems).toContainEqual(expect.objectContaining({ kind: 'balance', cardNo: row.card_no, differenceFen: -1 }));

    await store.pool.query(`UPDATE journal SET amount_fen = amount_fen + 1 WHERE shard = 1 AND stream_ms = $1 AND stream_seq = $2`, [
      row.stream_ms,
      row.stream_seq,
    ]);
    await store.pool.query(`UPDATE journal SET terminal_id = $3 WHERE shard = 0 AND stream_ms = $1 AND stream_seq = $2`, [
      ...liveId,
      parseJournalEntry(live).terminalId,
    ]);
    expect((await auditLedger(app.redis, app.keys, {}, store)).ok).toBe(true);
  });

  it('the operator CLI audits across both stores with DATABASE_URL, and says why when it is missing', async () => {
    const env = { REDIS_URL: testRedisUrl(), KEY_PREFIX: app.keys.prefix, LEDGER_SHARDS: '4', LOG_LEVEL: 'silent' };
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    try {
      expect(await runAuditCommand(['--json'], { ...env, DATABASE_URL: databaseUrl })).toBe(0);
      expect(await runAuditCommand(['--json'], env)).toBe(1);
    } finally {
      log.mockRestore();
    }
    const [withArchive, without] = out.map((line) => JSON.parse(line) as { ok: boolean; problems: { kind: string; message: string }[] });
    expect(withArchive?.ok).toBe(true);
    const archiveProblem = without?.problems.find((p) => p.kind === 'archive');
    expect(archiveProblem?.message).toContain('audit with DATABASE_URL set');
  });

  // Last: it takes PostgreSQL away.
  it('with PostgreSQL down, a statement answers the lines Redis holds and a token; the page needing the archive is UNAVAILABLE with the reason, and reads once PostgreSQL is back', async () => {
    const cardNo = historyCardNo(0);
    const admin = adminClient(app);
    const statement = (pageSize = 100, pageToken = ''): Promise<CardStatementResponse> =>
      call(
        admin,
        'cardStatement',
        { cardNumber: cardNo, query: { fromMs: 0, toMs: 0, kinds: [], pageSize, pageToken } },
        operatorMetadata(),
      );
    const whole = (await statement()).page?.lines ?? [];
    expect(whole.length).toBe(before.get(cardNo)?.length);
    const inRedis = await app.redis.zcard(app.keys.statement(cardNo));
    // The card's statement spans both stores.
    expect(inRedis).toBeGreaterThan(0);
    expect(inRedis).toBeLessThan(whole.length);
    let token: string;
    await postgres.stop();
    try {
      // The newest lines are still in Redis: a first page of them reads as before.
      expect((await statement(3)).page?.lines).toEqual(whole.slice(0, 3));
      // A page reaching past them into the archive answers what Redis holds, and a token to go on with.
      const first = (await statement()).page;
      expect(first?.lines).toEqual(whole.slice(0, inRedis));
      expect(first?.nextPageToken).not.toBe('');
      token = first?.nextPageToken ?? '';
      // That next page needs the archive: UNAVAILABLE, saying so.
      const err = await grpcError(statement(100, token));
      expect(err.code).toBe(Status.UNAVAILABLE);
      expect(err.details).toContain('the journal archive (PostgreSQL) is not answering');
      expect(err.details).toContain('try again later');
    } finally {
      await postgres.restart();
    }
    // The pool drops the connections it lost and opens new ones; the token goes on where Redis's lines ended.
    await waitUntil('the statement to read again', 20_000, async () => (await statement(100, token).catch(() => undefined)) !== undefined);
    expect((await statement(100, token)).page?.lines).toEqual(whole.slice(inRedis));
    expect((await statement()).page?.lines).toEqual(whole);
  });

  it('with PostgreSQL hung (its processes stopped, connections open), a read gives up after its statement time, and reads again after', async () => {
    const hungStore = new ArchiveStore({ url: databaseUrl, poolSize: 1, statementTimeoutMs: 1000 });
    try {
      await hungStore.position(0);
      postgres.pause();
      try {
        const started = Date.now();
        const err = await hungStore.cardRows(historyCardNo(0), 0, Number.MAX_SAFE_INTEGER, 10, 0).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(UnavailableError);
        expect((err as Error).message).toContain('the journal archive (PostgreSQL) is not answering');
        // The statement time (1 s) and the margin (5 s): not for ever.
        expect(Date.now() - started).toBeLessThan(15_000);
      } finally {
        postgres.resume();
      }
      expect((await hungStore.cardRows(historyCardNo(0), 0, Number.MAX_SAFE_INTEGER, 10, 0)).length).toBeGreaterThan(0);
    } finally {
      await hungStore.close();
    }
  });
});
