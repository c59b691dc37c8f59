// The archiver across a failover of the ledger's primary in the durable mode (LEDGER_DURABILITY=replica).
// A payment the primary wrote but no replica confirmed is answered UNAVAILABLE; when the primary then
// dies, the promoted replica never had it and the POS's retry writes it there afresh, under a new stream
// id. The archive must hold what the promoted ledger holds: never the unconfirmed entry as well (the
// payment twice in PostgreSQL, in the settlement reports and statements that read it, and an audit
// that cannot balance).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ArchiveStore } from '../switch/history/archive-store.js';
import { Archiver, JournalMovedError } from '../switch/history/archiver.js';
import { expandJournalRow, type RawStreamEntry } from '../switch/ledger/journal.js';
import { Keys } from '../switch/ledger/keys.js';
import { createLogger } from '../switch/log.js';
import { startLocalRedis, type LocalRedis } from '../switch/redis/local-redis.js';
import { isRedisUnavailable } from '../switch/redis/unavailable.js';
import { ReplicaWaitError } from '../switch/redis/replica-wait.js';
import { loadArchiverConfig } from '../switch/config.js';
import { waitUntil } from './helpers/cluster-load.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';
import { asRedis, startTestCluster } from './helpers/redis-cluster.js';

const SHARDS = 2;
const WAIT_TIMEOUT_MS = 200;

let dir: string;
let postgres: TestPostgres;
/** Every redis-server this file started: stopped at the end (a failed test leaves none running). */
const servers: LocalRedis[] = [];
const clients: Redis[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cardswitch-test-history-failover-'));
  postgres = await startTestPostgres();
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const s of servers) {
    s.process.kill('SIGCONT');
    await s.stop().catch(() => undefined);
  }
  await postgres?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function client(port: number): Redis {
  const c = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, lazyConnect: false });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

async function redis(name: string): Promise<LocalRedis> {
  const server = await startLocalRedis({
    dataDir: join(dir, name),
    port: 0,
    appendOnly: false,
    appendFsync: 'everysec',
    startTimeoutMs: 20_000,
  });
  servers.push(server);
  return server;
}

async function replicaOf(name: string, master: LocalRedis): Promise<LocalRedis> {
  const replica = await redis(name);
  await client(replica.port).call('REPLICAOF', '127.0.0.1', String(master.port));
  await waitUntil(`${name} to sync`, 30_000, async () =>
    (await client(replica.port).info('replication')).includes('master_link_status:up'),
  );
  return replica;
}

/** A payment's journal entry of the documented shape, written as a script would (under `id`, '*': a new one); its id. */
async function pay(c: Redis, keys: Keys, shard: number, sequence: number, id = '*'): Promise<string> {
  const card = `C${shard}`;
  const written = await c.xadd(
    keys.journal(shard),
    id,
    ...['k', 'pay', 'c', card, 'a', '100', 'f', `a:${card}`, 't', 'm:M1', 'b', String(10_000 - sequence * 100)],
    ...['v', String(sequence + 1), 'tm', 'POS-1', 'sq', String(sequence), 'ts', String(Date.now())],
  );
  return written as string;
}

/** A stream's entries as id -> fields (by name), to compare what the archive holds with the ledger. */
function byId(rows: readonly RawStreamEntry[]): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [id, flat] of rows.map(expandJournalRow)) {
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
    out[id] = fields;
  }
  return out;
}

function archiver(c: Redis, keys: Keys, store: ArchiveStore): Archiver {
  return new Archiver({
    redis: c,
    keys,
    store,
    log: createLogger('silent'),
    batchSize: 100,
    intervalMs: 10,
    liveWindowMs: 86_400_000,
    trim: false,
    now: Date.now,
    replicaWaitTimeoutMs: WAIT_TIMEOUT_MS,
  });
}

it('an entry no replica confirmed is not archived; after the failover the archive holds exactly what the promoted ledger holds', async () => {
  const keys = new Keys(`hf${Date.now().toString(36)}`, SHARDS);
  const url = await postgres.database('failover_durable');
  const store = new ArchiveStore({ url, poolSize: 2, statementTimeoutMs: 30_000 });
  await store.open(keys.prefix, keys.shardCount);
  try {
    const master = await redis('master');
    const replica = await replicaOf('replica', master);
    const onMaster = client(master.port);
    await onMaster.hset(keys.meta(), 'shards', String(SHARDS));
    // Confirmed payments: on the replica (the durable switch answered them approved), archived.
    for (let shard = 0; shard < SHARDS; shard++)
      for (let sequence = 1; sequence <= 3; sequence++) await pay(onMaster, keys, shard, sequence);
    expect(Number(await onMaster.call('WAIT', '1', '5000'))).toBe(1);
    const first = archiver(onMaster, keys, store);
    await first.syncPositions();
    expect((await first.runPass()).archived).toBe(SHARDS * 3);

    // The replica is cut off (stopped, its link dropped by the primary); the primary writes one more
    // payment, which no replica confirms: the durable switch answers it UNAVAILABLE, and the POS will retry it.
    replica.process.kill('SIGSTOP');
    await onMaster.call('CLIENT', 'KILL', 'TYPE', 'replica');
    const unconfirmed = await pay(onMaster, keys, 0, 4);
    expect(Number(await onMaster.call('WAIT', '1', String(WAIT_TIMEOUT_MS)))).toBe(0);
    // The archiver's pass meanwhile fails as the payment did (an outage: it tries again), archiving nothing.
    const during = await first.runPass().catch((err: unknown) => err);
    expect(during).toBeInstanceOf(ReplicaWaitError);
    expect(isRedisUnavailable(during)).toBe(true);
    expect(await store.rows(0, { ms: 0, seq: 0 }, { ms: Number.MAX_SAFE_INTEGER, seq: 0 }, 1000)).toHaveLength(3);

    // The primary dies; its replica is promoted (what the Sentinels do) and gets a replica of its own.
    master.process.kill('SIGKILL');
    replica.process.kill('SIGCONT');
    const onPromoted = client(replica.port);
    await onPromoted.call('REPLICAOF', 'NO', 'ONE');
    await replicaOf('replica2', replica);
    expect(await onPromoted.xrange(keys.journal(0), unconfirmed, unconfirmed)).toEqual([]);
    // The POS retries the payment: written again on the promoted primary, under a new id.
    await pay(onPromoted, keys, 0, 4);
    expect(Number(await onPromoted.call('WAIT', '1', '5000'))).toBe(1);

    // The archiver, following the failover, catches up.
    const after = archiver(onPromoted, keys, store);
    await after.syncPositions();
    await after.runPass();
    for (let shard = 0; shard < SHARDS; shard++) {
      const ledger = (await onPromoted.xrange(keys.journal(shard), '-', '+')) as RawStreamEntry[];
      const archived = await store.rows(shard, { ms: 0, seq: 0 }, { ms: Number.MAX_SAFE_INTEGER, seq: 0 }, 1000);
      expect(
        archived.map(([id]) => id),
        `shard ${shard}`,
      ).toEqual(ledger.map(([id]) => id));
    }
  } finally {
    await store.close();
  }
}, 120_000);

it('a failover between the read and the check, the promoted primary holding ANOTHER entry under the lost id: that lost entry is not archived', async () => {
  const keys = new Keys(`hfx${Date.now().toString(36)}`, SHARDS);
  const url = await postgres.database('failover_same_id');
  const store = new ArchiveStore({ url, poolSize: 2, statementTimeoutMs: 30_000 });
  await store.open(keys.prefix, keys.shardCount);
  try {
    const master = await redis('master-x');
    const replica = await replicaOf('replica-x', master);
    const onMaster = client(master.port);
    await onMaster.hset(keys.meta(), 'shards', String(SHARDS));
    for (let sequence = 1; sequence <= 3; sequence++) await pay(onMaster, keys, 0, sequence);
    expect(Number(await onMaster.call('WAIT', '1', '5000'))).toBe(1);
    // The replica is cut off; the primary writes a payment no replica gets (answered UNAVAILABLE).
    replica.process.kill('SIGSTOP');
    await onMaster.call('CLIENT', 'KILL', 'TYPE', 'replica');
    const lost = await pay(onMaster, keys, 0, 4);
    const lostEntry = byId(await onMaster.xrange(keys.journal(0), lost, lost))[lost];

    // The failover, as the archiver's Sentinel-following connection meets it: the pass reads the lost entry
    // on the old primary; before its fence write the primary dies, the replica is promoted, and there (its
    // clock behind the old primary's) another payment gets the very same stream id, then the POS's retry.
    const failover = async (): Promise<Redis> => {
      master.process.kill('SIGKILL');
      replica.process.kill('SIGCONT');
      const onPromoted = client(replica.port);
      await onPromoted.call('REPLICAOF', 'NO', 'ONE');
      await replicaOf('replica2-x', replica);
      await onPromoted.xadd(
        keys.journal(0),
        lost,
        ...['k', 'pay', 'c', 'C9', 'a', '700', 'f', 'a:C9', 't', 'm:M2', 'b', '300', 'v', '2', 'tm', 'POS-2', 'sq', '1', 'ts', '1'],
      );
      await pay(onPromoted, keys, 0, 4);
      expect(Number(await onPromoted.call('WAIT', '1', '5000'))).toBe(1);
      return onPromoted;
    };
    let current: Redis = onMaster;
    let switched: Promise<Redis> | undefined;
    const following = new Proxy(onMaster, {
      get(_target, prop): unknown {
        if (prop === 'incr')
          return async (...args: [string]) => {
            switched ??= failover();
            current = await switched;
            return current.incr(...args);
          };
        const value: unknown = Reflect.get(current, prop, current);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(current) : value;
      },
    });
    const a = archiver(following, keys, store);
    await a.syncPositions();
    // The pass read the 3 confirmed entries and the lost one together; it must not take the lost one.
    const first = await a.runPass().catch((err: unknown) => err);
    expect(first).toBeInstanceOf(JournalMovedError);
    expect(current).not.toBe(onMaster);
    await a.runPass();
    const ledger = byId(await current.xrange(keys.journal(0), '-', '+'));
    const archived = byId(await store.rows(0, { ms: 0, seq: 0 }, { ms: Number.MAX_SAFE_INTEGER, seq: 0 }, 1000));
    expect(archived[lost]).not.toEqual(lostEntry);
    expect(archived).toEqual(ledger);
    expect(Object.keys(archived)).toHaveLength(5);
  } finally {
    await store.close();
  }
}, 120_000);

it('on a Redis Cluster in the durable mode: each shard waits on its own master, and every entry is archived once', async () => {
  const cluster = await startTestCluster();
  try {
    const shards = 12;
    const keys = new Keys(`hfc${Date.now().toString(36)}`, shards);
    const c = asRedis(cluster.client);
    await c.hset(keys.meta(), 'shards', String(shards));
    const url = await postgres.database('failover_cluster');
    const store = new ArchiveStore({ url, poolSize: 2, statementTimeoutMs: 30_000 });
    await store.open(keys.prefix, keys.shardCount);
    try {
      for (let shard = 0; shard < shards; shard++) for (let sequence = 1; sequence <= 2; sequence++) await pay(c, keys, shard, sequence);
      const a = new Archiver({
        redis: c,
        keys,
        store,
        log: createLogger('silent'),
        batchSize: 5,
        intervalMs: 10,
        liveWindowMs: 86_400_000,
        trim: false,
        now: Date.now,
        replicaWaitTimeoutMs: 2000,
      });
      await a.syncPositions();
      expect((await a.runPass()).archived).toBe(shards * 2);
      for (let shard = 0; shard < shards; shard++) {
        const ledger = (await c.xrange(keys.journal(shard), '-', '+')) as RawStreamEntry[];
        const archived = await store.rows(shard, { ms: 0, seq: 0 }, { ms: Number.MAX_SAFE_INTEGER, seq: 0 }, 1000);
        expect(archived.map(([id]) => id)).toEqual(ledger.map(([id]) => id));
        // The fence was written on the shard's own master (its slot), hence waited for there.
        expect(Number(await c.get(keys.journalArchiveFence(shard)))).toBeGreaterThan(0);
      }
    } finally {
      await store.close();
    }
  } finally {
    await cluster.stop();
  }
}, 120_000);

it('the archiver process takes the durable mode from the switch settings (LEDGER_DURABILITY, LEDGER_WAIT_TIMEOUT_MS)', () => {
  const env = { REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://x@127.0.0.1/db' };
  expect(loadArchiverConfig(env)).toMatchObject({ ledgerDurability: 'none', ledgerWaitTimeoutMs: 1000 });
  expect(loadArchiverConfig({ ...env, LEDGER_DURABILITY: 'replica', LEDGER_WAIT_TIMEOUT_MS: '250' })).toMatchObject({
    ledgerDurability: 'replica',
    ledgerWaitTimeoutMs: 250,
  });
  expect(() => loadArchiverConfig({ ...env, LEDGER_DURABILITY: 'quorum' })).toThrow(/LEDGER_DURABILITY/);
});
