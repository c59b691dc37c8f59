// The archiver (switch/history/): every journal entry reaches PostgreSQL exactly once, when the archiver
// process is killed with SIGKILL in the middle of its batches, and when PostgreSQL is stopped and
// started again; and a trim never removes an entry the archive does not hold.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis as IORedis } from 'ioredis';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveStore } from '../switch/history/archive-store.js';
import { Archiver } from '../switch/history/archiver.js';
import { PostgresMissingError, startLocalPostgres } from '../switch/history/local-postgres.js';
import { mergedJournalPages, parseStreamId } from '../switch/ledger/history-reads.js';
import type { RawStreamEntry } from '../switch/ledger/journal.js';
import { Keys } from '../switch/ledger/keys.js';
import { createLogger } from '../switch/log.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';
import { redisServer } from './helpers/redis-server.js';
import { connect, freshPrefix, testRedisUrl } from './helpers/redis.js';
import { startSentinel } from './helpers/sentinel.js';

const SHARDS = 4;
const DAY_MS = 86_400_000;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

let postgres: TestPostgres;
let redis: Redis;
let databases = 0;

beforeAll(async () => {
  postgres = await startTestPostgres();
  redis = connect();
}, 120_000);

/** Archiver processes this file started: killed at the end, so a failed test leaves none running. */
const children = new Set<ChildProcess>();

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  redis.disconnect();
  await postgres?.destroy();
});

/** Appends `perShard` journal entries of the documented shape to every shard; returns them by shard. */
async function appendEntries(keys: Keys, perShard: number, tag: string, into: Redis = redis): Promise<Map<number, RawStreamEntry[]>> {
  const added = new Map<number, RawStreamEntry[]>();
  for (let shard = 0; shard < SHARDS; shard++) {
    const pipeline = into.pipeline();
    const fieldsList: string[][] = [];
    for (let i = 0; i < perShard; i++) {
      const fields = ['k', 'pay', 'c', `C${shard}-${i % 7}`, 'a', String(1 + (i % 500)), 'f', `a:C${shard}-${i % 7}`, 't', 'm:M1'];
      fields.push('b', String(10_000 - i), 'v', String(i + 2), 'tm', `POS-${tag}`, 'sq', String(i + 1), 'ts', String(Date.now()));
      // An operator's reason may hold anything: quotes, braces, commas, backslashes, an empty text, 汉字.
      if (i % 11 === 0) fields.push('r', `note "${tag}", {${i}} \\ a\\"b 备注`);
      if (i % 13 === 0) fields.push('ot', i % 2 === 0 ? '' : 'NULL');
      fieldsList.push(fields);
      pipeline.xadd(keys.journal(shard), '*', ...fields);
    }
    const ids = ((await pipeline.exec()) ?? []).map(([err, id]) => {
      if (err) throw err;
      return id as string;
    });
    added.set(
      shard,
      ids.map((id, i) => [id, fieldsList[i] as string[]]),
    );
  }
  return added;
}

function merge(into: Map<number, RawStreamEntry[]>, more: Map<number, RawStreamEntry[]>): void {
  for (const [shard, rows] of more) into.set(shard, [...(into.get(shard) ?? []), ...rows]);
}

async function archivedRows(url: string, shard: number): Promise<RawStreamEntry[]> {
  const store = new ArchiveStore({ url, poolSize: 1, statementTimeoutMs: 30_000 });
  try {
    return await store.rows(shard, { ms: 0, seq: 0 }, { ms: Number.MAX_SAFE_INTEGER, seq: 0 }, 1_000_000);
  } finally {
    await store.close();
  }
}

/** Every entry ever appended is in the archive once, with the same fields, and the positions are the last ids. */
async function expectArchivedExactlyOnce(url: string, keys: Keys, all: Map<number, RawStreamEntry[]>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const [shard, rows] of all) {
      const archived = await archivedRows(url, shard);
      expect(archived.map(([id]) => id)).toEqual(rows.map(([id]) => id));
      archived.forEach(([, fields], i) => expect(Object.fromEntries(pairs(fields))).toEqual(Object.fromEntries(pairs(rows[i]![1]))));
      const position = await client.query<{ stream_ms: string; stream_seq: string; entries: string }>(
        'SELECT stream_ms, stream_seq, entries FROM archive_position WHERE shard = $1',
        [shard],
      );
      const last = rows[rows.length - 1]![0];
      expect(`${position.rows[0]!.stream_ms}-${position.rows[0]!.stream_seq}`).toBe(last);
      expect(Number(position.rows[0]!.entries)).toBe(rows.length);
      expect(await redis.get(keys.journalArchived(shard))).toBe(last);
    }
    const total = await client.query('SELECT count(*)::int AS n, count(DISTINCT (shard, stream_ms, stream_seq))::int AS d FROM journal');
    const expected = [...all.values()].reduce((n, rows) => n + rows.length, 0);
    expect(total.rows[0]).toEqual({ n: expected, d: expected });
  } finally {
    await client.end();
  }
}

function pairs(fields: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) out.push([fields[i] as string, fields[i + 1] as string]);
  return out;
}

async function newLedger(label: string): Promise<{ keys: Keys; url: string }> {
  const keys = new Keys(freshPrefix(label), SHARDS);
  await redis.hset(keys.meta(), 'shards', String(SHARDS));
  return { keys, url: await postgres.database(`h${++databases}_${label}`) };
}

function archiver(keys: Keys, store: ArchiveStore, overrides: Partial<ConstructorParameters<typeof Archiver>[0]> = {}): Archiver {
  return new Archiver({
    redis,
    keys,
    store,
    log: createLogger('silent'),
    batchSize: 100,
    intervalMs: 10,
    liveWindowMs: DAY_MS,
    trim: true,
    now: () => Date.now() + 2 * DAY_MS,
    ...overrides,
  });
}

function archiverProcess(keys: Keys, url: string, args: string[] = [], ledger: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'switch/history/main.ts', ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      REDIS_URL: testRedisUrl(),
      ...ledger,
      DATABASE_URL: url,
      KEY_PREFIX: keys.prefix,
      LEDGER_SHARDS: String(SHARDS),
      HISTORY_ARCHIVE_BATCH: '50',
      HISTORY_ARCHIVE_INTERVAL_MS: '20',
      HISTORY_TRIM: 'off',
      LOG_LEVEL: 'silent',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  return child;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stderr })));
}

async function archivedCount(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Before the first migration has run there is no table yet: nothing archived.
    const found = await client
      .query<{ n: number }>('SELECT coalesce(sum(entries), 0)::int AS n FROM archive_position')
      .catch((): { rows: { n: number }[] } => ({ rows: [{ n: 0 }] }));
    return found.rows[0]?.n ?? 0;
  } finally {
    await client.end();
  }
}

describe('the private PostgreSQL', () => {
  it('names the package to install when initdb is missing', async () => {
    // Neither a Debian version directory nor initdb on PATH (restored right after).
    const path = process.env['PATH'];
    process.env['PATH'] = '/nonexistent';
    try {
      const attempt = startLocalPostgres({
        dataDir: '/nonexistent/pg',
        port: 0,
        startTimeoutMs: 1000,
        database: 'x',
        binRoot: '/nonexistent',
      });
      await expect(attempt).rejects.toThrow(PostgresMissingError);
      await expect(attempt).rejects.toThrow(/apt-get install postgresql/);
    } finally {
      process.env['PATH'] = path;
    }
  });
});

describe('the archiver', () => {
  it('archives every entry exactly once when its process is killed with SIGKILL mid-batch, then restarted', async () => {
    const { keys, url } = await newLedger('kill');
    const all = await appendEntries(keys, 3000, 'k1');
    const total = SHARDS * 3000;
    const first = archiverProcess(keys, url);
    const firstExit = exited(first);
    // Killed once some batches are committed and most are not: 240 transactions of 50 rows in all.
    let seen = 0;
    while ((seen = await archivedCount(url)) < 600) {
      if (first.exitCode !== null) throw new Error(`archiver exited early: ${(await firstExit).stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    first.kill('SIGKILL');
    expect((await firstExit).signal).toBe('SIGKILL');
    const atKill = await archivedCount(url);
    expect(seen).toBeGreaterThanOrEqual(600);
    expect(atKill).toBeLessThan(total);
    // Entries keep coming while it is down.
    merge(all, await appendEntries(keys, 300, 'k2'));
    const second = archiverProcess(keys, url, ['--once']);
    const secondExit = await exited(second);
    expect(secondExit.code, secondExit.stderr).toBe(0);
    await expectArchivedExactlyOnce(url, keys, all);
  }, 180_000);

  it('as its own process, finds the ledger the way the switch does: through Sentinels (REDIS_SENTINELS)', async () => {
    const { keys, url } = await newLedger('sentinel');
    const all = await appendEntries(keys, 200, 's1');
    // One Sentinel watching the tests' Redis (no replica: it can never fail it over); the archiver is
    // given no REDIS_URL, only the Sentinel, and asks it where the ledger's master is.
    const dir = mkdtempSync(join(tmpdir(), 'cardswitch-test-archiver-sentinel-'));
    const sentinel = await startSentinel(dir, 0, 'archive-ledger', Number(new URL(testRedisUrl()).port), 1);
    try {
      const child = archiverProcess(keys, url, ['--once'], {
        REDIS_URL: '',
        REDIS_SENTINELS: `127.0.0.1:${sentinel.port}`,
        REDIS_SENTINEL_MASTER: 'archive-ledger',
      });
      const exit = await exited(child);
      expect(exit.code, exit.stderr).toBe(0);
      await expectArchivedExactlyOnce(url, keys, all);
    } finally {
      sentinel.process.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('as its own process, names the settings it lacks', async () => {
    const noLedger = await exited(archiverProcess(new Keys('x', SHARDS), 'postgres://127.0.0.1:1/x', ['--once'], { REDIS_URL: '' }));
    expect(noLedger.code).toBe(2);
    expect(noLedger.stderr).toContain('REDIS_URL (or REDIS_SENTINELS, or REDIS_CLUSTER_NODES) is required');
    const noDatabase = await exited(archiverProcess(new Keys('x', SHARDS), '', ['--once']));
    expect(noDatabase.code).toBe(2);
    expect(noDatabase.stderr).toContain('DATABASE_URL is required');
  });

  it('catches up without a gap or a duplicate after PostgreSQL was stopped and started again; nothing is trimmed meanwhile', async () => {
    const { keys, url } = await newLedger('pgdown');
    const store = new ArchiveStore({ url, poolSize: 4, statementTimeoutMs: 30_000 });
    await store.open(keys.prefix, SHARDS);
    const a = archiver(keys, store);
    await a.syncPositions();
    const all = await appendEntries(keys, 500, 'p1');
    const pass = await a.runPass();
    expect(pass.archived).toBe(SHARDS * 500);
    // Everything is older than the window (the archiver's clock is two days ahead) and archived: trimmed.
    expect(pass.entriesTrimmed).toBe(SHARDS * 500);
    await postgres.stop();
    try {
      merge(all, await appendEntries(keys, 400, 'p2'));
      await expect(a.runPass()).rejects.toThrow();
      for (let shard = 0; shard < SHARDS; shard++) await a.trimShard(shard);
      for (let shard = 0; shard < SHARDS; shard++) expect(await redis.xlen(keys.journal(shard))).toBe(400);
    } finally {
      await postgres.restart();
    }
    merge(all, await appendEntries(keys, 100, 'p3'));
    // The pool finds its connections gone and opens new ones; the archiver starts from PostgreSQL's positions.
    let report;
    for (let attempt = 0; ; attempt++) {
      try {
        report = await a.runPass();
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
    expect(report.archived).toBe(SHARDS * 500);
    await store.close();
    await expectArchivedExactlyOnce(url, keys, all);
    for (let shard = 0; shard < SHARDS; shard++) expect(await redis.xlen(keys.journal(shard))).toBe(0);
  }, 120_000);

  it('a running archiver trims nothing PostgreSQL lost by going back (an older backup restored, a lagging standby promoted): it archives it again first', async () => {
    const { keys, url } = await newLedger('pgback');
    const store = new ArchiveStore({ url, poolSize: 4, statementTimeoutMs: 30_000 });
    await store.open(keys.prefix, SHARDS);
    let aheadMs = 0;
    // Its clock is the real one at first (nothing is older than the window), then two days ahead.
    const a = archiver(keys, store, { now: () => Date.now() + aheadMs });
    await a.syncPositions();
    const all = await appendEntries(keys, 60, 'b1');
    const first = await a.runPass();
    expect(first).toEqual({ archived: SHARDS * 60, entriesTrimmed: 0, linesTrimmed: 0 });
    // PostgreSQL goes back to what it held after each shard's 20th entry: the state an older backup, or a
    // standby promoted before the last commits reached it, gives. The archiver process goes on running.
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query('BEGIN');
      for (let shard = 0; shard < SHARDS; shard++) {
        const { ms, seq } = parseStreamId(all.get(shard)![19]![0]);
        await client.query('DELETE FROM journal WHERE shard = $1 AND (stream_ms, stream_seq) > ($2, $3)', [shard, ms, seq]);
        await client.query('UPDATE archive_position SET stream_ms = $2, stream_seq = $3, entries = 20 WHERE shard = $1', [shard, ms, seq]);
      }
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
    aheadMs = 2 * DAY_MS;
    await a.runPass();
    for (let shard = 0; shard < SHARDS; shard++) {
      const archived = new Set((await archivedRows(url, shard)).map(([id]) => id));
      const live = new Set(((await redis.xrange(keys.journal(shard), '-', '+')) as RawStreamEntry[]).map(([id]) => id));
      for (const [id] of all.get(shard)!) expect(archived.has(id) || live.has(id), `entry ${id} of shard ${shard} is lost`).toBe(true);
    }
    await a.runPass();
    await store.close();
    await expectArchivedExactlyOnce(url, keys, all);
    for (let shard = 0; shard < SHARDS; shard++) expect(await redis.xlen(keys.journal(shard))).toBe(0);
  }, 60_000);

  it('never trims an entry the archive does not hold, also while appends, archiving and trims run together', async () => {
    const { keys, url } = await newLedger('trim');
    const store = new ArchiveStore({ url, poolSize: 4, statementTimeoutMs: 30_000 });
    await store.open(keys.prefix, SHARDS);
    const a = archiver(keys, store, { batchSize: 37 });
    await a.syncPositions();
    const all = await appendEntries(keys, 400, 't1');
    // Two batches per shard: 74 of 400 archived, then a trim of everything older than the window.
    for (let shard = 0; shard < SHARDS; shard++) await a.archiveShard(shard, 2);
    for (let shard = 0; shard < SHARDS; shard++) {
      const trimmed = await a.trimShard(shard);
      expect(trimmed.entries).toBe(74);
      const left = (await redis.xrange(keys.journal(shard), '-', '+')) as RawStreamEntry[];
      expect(left.map(([id]) => id)).toEqual(
        all
          .get(shard)!
          .slice(74)
          .map(([id]) => id),
      );
      expect(await redis.get(keys.journalTrimMark(shard))).toBe(nextId(all.get(shard)![73]![0]));
    }
    // The trim script itself, asked for far more than is archived, stops after the archived position.
    await redis.set(keys.journalArchived(0), all.get(0)![99]![0]);
    await store.writeBatch(0, parseStreamId(all.get(0)![73]![0]), all.get(0)!.slice(74, 100));
    expect((await a.trimShard(0)).entries).toBe(26);
    expect(((await redis.xrange(keys.journal(0), '-', '+', 'COUNT', 1)) as RawStreamEntry[])[0]![0]).toBe(all.get(0)![100]![0]);

    // Appends, archive passes and trims at once; afterwards each entry is in PostgreSQL or still in Redis.
    let appending = true;
    const appender = (async () => {
      for (let round = 0; round < 8; round++) merge(all, await appendEntries(keys, 50, `t2-${round}`));
      appending = false;
    })();
    while (appending) await a.runPass();
    await appender;
    for (let shard = 0; shard < SHARDS; shard++) {
      const archived = new Set((await archivedRows(url, shard)).map(([id]) => id));
      const live = new Set(((await redis.xrange(keys.journal(shard), '-', '+')) as RawStreamEntry[]).map(([id]) => id));
      for (const [id] of all.get(shard)!) expect(archived.has(id) || live.has(id), `entry ${id} of shard ${shard} is lost`).toBe(true);
      // And the reader that spans both stores gives every entry once, in order.
      const merged: string[] = [];
      for await (const page of mergedJournalPages(redis, keys, shard, { pageSize: 33 }, store)) merged.push(...page.map(([id]) => id));
      expect(merged).toEqual(all.get(shard)!.map(([id]) => id));
    }
    await a.runPass();
    await store.close();
    await expectArchivedExactlyOnce(url, keys, all);
  }, 120_000);
});

describe('one archive, one ledger', () => {
  it('refuses a second ledger (another KEY_PREFIX) on a database that archives one, so it cannot take its positions and trim unarchived entries', async () => {
    const first = await newLedger('owner');
    const other = { keys: new Keys(freshPrefix('intruder'), SHARDS), url: first.url };
    await redis.hset(other.keys.meta(), 'shards', String(SHARDS));
    // The second ledger's entries are older than the first's: the first's positions lie beyond them.
    const otherEntries = await appendEntries(other.keys, 20, 'o1');
    await appendEntries(first.keys, 20, 'f1');
    const firstStore = new ArchiveStore({ url: first.url, poolSize: 2, statementTimeoutMs: 30_000 });
    await firstStore.open(first.keys.prefix, SHARDS);
    const a = archiver(first.keys, firstStore);
    await a.syncPositions();
    await a.runPass();
    await firstStore.close();

    const otherStore = new ArchiveStore({ url: other.url, poolSize: 2, statementTimeoutMs: 30_000 });
    try {
      await expect(otherStore.open(other.keys.prefix, SHARDS)).rejects.toThrow(/archives ledger "[^"]+", not "[^"]+"/);
    } finally {
      // Had it opened: its archiver takes the first ledger's positions and trims every entry of its own unarchived.
      await otherStore.close();
    }
    for (const [shard, rows] of otherEntries) expect(await redis.xlen(other.keys.journal(shard))).toBe(rows.length);
  }, 60_000);

  it('refuses another Redis ledger of the SAME KEY_PREFIX (a second deployment given this DATABASE_URL): it would move the first ledger positions and trim its own entries unarchived', async () => {
    const first = await newLedger('twin');
    const firstEntries = await appendEntries(first.keys, 30, 'w1');
    const archived = await exited(archiverProcess(first.keys, first.url, ['--once']));
    expect(archived.code, archived.stderr).toBe(0);
    await expectArchivedExactlyOnce(first.url, first.keys, firstEntries);

    // Another redis-server, the same prefix and shard count (the default KEY_PREFIX of two deployments).
    const twin = await redisServer([]);
    const twinRedis = new IORedis({ port: twin.port, host: '127.0.0.1' });
    try {
      await twinRedis.hset(first.keys.meta(), 'shards', String(SHARDS));
      const twinEntries = await appendEntries(first.keys, 10, 'w2', twinRedis);
      const refused = await exited(archiverProcess(first.keys, first.url, ['--once'], { REDIS_URL: `redis://127.0.0.1:${twin.port}` }));
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/archives another Redis ledger/);
      // Nothing of the twin reached the archive, and nothing of it was trimmed.
      await expectArchivedExactlyOnce(first.url, first.keys, firstEntries);
      for (const [shard, rows] of twinEntries) expect(await twinRedis.xlen(first.keys.journal(shard))).toBe(rows.length);
      // The first ledger itself still opens it.
      const again = await exited(archiverProcess(first.keys, first.url, ['--once']));
      expect(again.code, again.stderr).toBe(0);
    } finally {
      twinRedis.disconnect();
      twin.stop();
    }
  }, 120_000);
});

function nextId(id: string): string {
  const { ms, seq } = parseStreamId(id);
  return `${ms}-${seq + 1}`;
}
