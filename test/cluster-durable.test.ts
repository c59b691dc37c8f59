// The durable mode on one Redis with a replica (LEDGER_DURABILITY=replica, the hot path on the pipeline
// client): payments are answered after WAIT, one WAIT per event-loop turn for many payments; with the
// replica gone, a payment is answered UNAVAILABLE (never approved, never INTERNAL), and its retry with the
// same sequence number, once the replica is back, is answered from the one stored payment.
import { status as Status } from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { SwitchApp } from '../switch/app.js';
import { loadConfig } from '../switch/config.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { startLocalRedis, type LocalRedis } from '../switch/redis/local-redis.js';
import { isRedisUnavailable } from '../switch/redis/unavailable.js';
import { ReplicaWaitError } from '../switch/redis/replica-wait.js';
import { expandJournalRow } from '../switch/ledger/journal.js';
import { waitUntil } from './helpers/cluster-load.js';
import { call, grpcError, openCard, posClient, POS_TERMINAL, startTestSwitch, terminalMetadata, useLedgerRedis } from './helpers/switch.js';

let dir: string;
let master: LocalRedis;
let replica: LocalRedis | undefined;
let app: SwitchApp;
const PAYMENTS = 300;

async function info(port: number, section: string): Promise<string> {
  const c = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  try {
    return await c.info(section);
  } finally {
    c.disconnect();
  }
}

async function startReplica(): Promise<LocalRedis> {
  const r = await startLocalRedis({
    dataDir: join(dir, 'replica'),
    port: 0,
    appendOnly: false,
    appendFsync: 'everysec',
    startTimeoutMs: 20_000,
  });
  const c = new Redis(r.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  await c.call('REPLICAOF', '127.0.0.1', master.port);
  c.disconnect();
  await waitUntil('the replica to sync', 30_000, async () => (await info(r.port, 'replication')).includes('master_link_status:up'));
  return r;
}

const authorize = (sequence: number, card: number) =>
  call<unknown, { outcome: Outcome }>(
    posClient(app),
    'authorize',
    {
      terminalId: POS_TERMINAL.id,
      sequenceNumber: sequence,
      amountFen: 100,
      credential: { card: { cardSerial: `D0${String(card).padStart(6, '0')}` } },
      pin: '',
    },
    terminalMetadata(POS_TERMINAL),
  );

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cardswitch-test-durable-'));
  master = await startLocalRedis({
    dataDir: join(dir, 'master'),
    port: 0,
    appendOnly: true,
    appendFsync: 'everysec',
    startTimeoutMs: 20_000,
  });
  replica = await startReplica();
  useLedgerRedis({ REDIS_URL: master.url, LEDGER_DURABILITY: 'replica', LEDGER_WAIT_TIMEOUT_MS: '300' });
  app = await startTestSwitch('durable');
  await app.terminals.register(POS_TERMINAL);
  for (let c = 0; c < 20; c++) await openCard(app, String(82_000_000 + c), `D0${String(c).padStart(6, '0')}`, 1_000_000);
}, 90_000);

afterAll(async () => {
  await app?.stop();
  await replica?.stop();
  await master?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('the settings are checked: one ledger form, a known durability', () => {
  const base = {
    TERMINAL_SECRET_PEPPER: 'x'.repeat(20),
    PASSWORD_PEPPER: 'x'.repeat(20),
    SESSION_SECRET: 'x'.repeat(40),
    CAMPUS_QR_SECRET: 'x'.repeat(40),
  };
  expect(loadConfig({ ...base, REDIS_CLUSTER_NODES: '10.0.0.1:6379, redis-b:7000' }).redisClusterNodes).toEqual([
    { host: '10.0.0.1', port: 6379 },
    { host: 'redis-b', port: 7000 },
  ]);
  expect(() => loadConfig({ ...base, REDIS_CLUSTER_NODES: '10.0.0.1' })).toThrow(/REDIS_CLUSTER_NODES.*host:port/);
  expect(() => loadConfig({ ...base, REDIS_URL: 'redis://a:1', REDIS_SENTINELS: 'b:26379' })).toThrow(/set one of them/);
  expect(() => loadConfig({ ...base, LEDGER_DURABILITY: 'quorum' })).toThrow(/LEDGER_DURABILITY/);
  // What the cluster client leaves to the caller is an outage (UNAVAILABLE), never INTERNAL.
  for (const message of [
    'CLUSTERDOWN The cluster is down',
    'TRYAGAIN Multiple keys',
    'Too many Cluster redirections. Last error: x',
    "Cluster isn't ready and enableOfflineQueue options is false",
  ])
    expect(isRedisUnavailable(new Error(message)), message).toBe(true);
  expect(isRedisUnavailable(new ReplicaWaitError('NOREPLICAS'))).toBe(true);
});

it(`${PAYMENTS} payments at once are each answered after a replica has them, with far fewer WAITs than payments`, async () => {
  const waitsBefore = Number(/cmdstat_wait:calls=(\d+)/.exec(await info(master.port, 'commandstats'))?.[1] ?? 0);
  const answers = await Promise.all(Array.from({ length: PAYMENTS }, (_, i) => authorize(1 + i, i % 20)));
  expect(answers.every((a) => a.outcome === Outcome.OUTCOME_APPROVED)).toBe(true);
  const waits = Number(/cmdstat_wait:calls=(\d+)/.exec(await info(master.port, 'commandstats'))?.[1] ?? 0) - waitsBefore;
  console.log(`durable mode, one Redis: ${PAYMENTS} payments, ${waits} WAIT commands`);
  expect(waits).toBeGreaterThan(0);
  // Each payment is two waited writes (the sequence claim, the payment): batched, far fewer WAITs.
  expect(waits).toBeLessThan(PAYMENTS);
  const replicaInfo = await info(replica?.port ?? 0, 'replication');
  expect(replicaInfo).toContain('master_link_status:up');
});

it('without a replica a payment is answered UNAVAILABLE; its retry after the replica is back is the one stored payment', async () => {
  await replica?.stop();
  replica = undefined;
  await waitUntil('the master to see no replica', 30_000, async () =>
    (await info(master.port, 'replication')).includes('connected_slaves:0'),
  );
  const sequence = PAYMENTS + 1;
  const err = await grpcError(authorize(sequence, 3));
  expect(err.code).toBe(Status.UNAVAILABLE);
  replica = await startReplica();
  const retried = await authorize(sequence, 3);
  expect(retried.outcome).toBe(Outcome.OUTCOME_APPROVED);
  // Once: the first attempt's payment (it was written, just not confirmed) is what the retry answers from.
  const journal = (await app.redis.xrange(app.keys.journalOfCard(String(82_000_003)), '-', '+')).map(expandJournalRow);
  const entries = journal.filter(([, f]) => f.includes('pay') && f.includes(POS_TERMINAL.id) && f.includes(String(sequence)));
  expect(entries).toHaveLength(1);
  const audit = await auditLedger(app.redis, app.keys);
  expect(audit.problems).toEqual([]);
});
