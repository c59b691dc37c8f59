// The ledger's Sentinel client (switch/redis/cluster.ts, the options the switch gives it) against a real
// master, replica and three Sentinels on loopback, in the three ways Sentinels could leave it stranded:
// - none of them answering when the switch starts: it used to ask them again for ever, and never fail;
// - a failover announced (+switch-master) while the client is asking a Sentinel where the master is: ioredis
//   aborts that question and ends the client for good ("Connection is closed." on every command, which one
//   POS saw for a whole minute in a CI run of test/cluster-sentinel);
// - a Sentinel whose process hangs (SIGSTOP) with its port still open: without a time limit on the
//   question, the client waits on it for ever and never asks the next one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { LedgerRedisSettings } from '../switch/redis/cluster.js';
import { failClosedOptions, ledgerClient } from '../switch/redis/cluster.js';
import { freePort, type LocalRedis } from '../switch/redis/local-redis.js';
import { waitUntil } from './helpers/cluster-load.js';
import { ask, masterPortBy, startSentinelSet, type Sentinel } from './helpers/sentinel.js';
import { startTestSwitch } from './helpers/switch.js';

const MASTER_NAME = 'cardswitch';

let dir: string;
let first: LocalRedis | undefined;
let second: LocalRedis | undefined;
const sentinels: Sentinel[] = [];
const clients: Redis[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cardswitch-test-sentinel-client-'));
  const set = await startSentinelSet(dir, MASTER_NAME, false);
  first = set.master;
  second = set.replica;
  sentinels.push(...set.sentinels);
}, 120_000);

afterEach(() => {
  // A test that failed half-way must not leave a Sentinel stopped for the next one.
  for (const s of sentinels) s.process.kill('SIGCONT');
  for (const c of clients.splice(0)) c.disconnect();
});

afterAll(async () => {
  for (const s of sentinels) s.process.kill('SIGKILL');
  await first?.stop();
  await second?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function settings(commandTimeoutMs: number): LedgerRedisSettings {
  return {
    redisUrl: '',
    redisClusterNodes: [],
    redisSentinels: sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })),
    redisSentinelMaster: MASTER_NAME,
    redisPassword: '',
    redisCommandTimeoutMs: commandTimeoutMs,
  };
}

/** Every Sentinel names the same master, which says it is one, and the other server replicates it. */
async function settled(): Promise<void> {
  await waitUntil('the Sentinels and both servers to agree on the master', 60_000, async () => {
    const named = await Promise.all(sentinels.map((s) => masterPortBy(s.port, MASTER_NAME)));
    const port = named[0];
    if (port === undefined || named.some((p) => p !== port)) return false;
    const replicaPort = port === first?.port ? second?.port : first?.port;
    const [role, replication] = await Promise.all([ask(port, 'ROLE'), ask(replicaPort ?? 0, 'INFO', 'replication')]);
    return Array.isArray(role) && role[0] === 'master' && String(replication).includes('master_link_status:up');
  });
}

/** The switch's own ledger client, connected through Sentinel 0 (the first named), its failover watch on. */
async function connectedClient(commandTimeoutMs: number): Promise<Redis> {
  await settled();
  const client = ledgerClient(settings(commandTimeoutMs), failClosedOptions(commandTimeoutMs));
  clients.push(client);
  client.on('error', () => undefined);
  const watching = new Promise<void>((resolve) => client.once('failoverSubscribed', () => resolve()));
  await client.connect();
  await watching;
  return client;
}

/** The master the Sentinels that answer agree on. */
async function currentMasterPort(): Promise<number> {
  const port = await masterPortBy(sentinels[1]?.port ?? 0, MASTER_NAME);
  if (port === undefined) throw new Error('Sentinel 1 does not name a master');
  return port;
}

/** Drops the client's data connection on the master's side, so it must ask a Sentinel again. */
async function dropConnection(client: Redis): Promise<void> {
  const id = await client.client('ID');
  expect(await ask(await currentMasterPort(), 'CLIENT', 'KILL', 'ID', id)).toBe(1);
}

/** A write through `client` that lands on the master the Sentinels name, within `budgetMs`. */
async function expectWritesReachMaster(client: Redis, key: string, budgetMs: number): Promise<void> {
  let last = '';
  try {
    await waitUntil(`a write through the ledger client`, budgetMs, async () => {
      try {
        await client.set(key, 'written');
        return true;
      } catch (err) {
        last = (err as Error).message;
        return false;
      }
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}; client status ${client.status}, last error: ${last}`);
  }
  expect(await ask(await currentMasterPort(), 'GET', key)).toBe('written');
}

it('a switch started against Sentinels none of which answers fails at once, naming them', async () => {
  const nobody = [await freePort(), await freePort()];
  const started = Date.now();
  await expect(
    startTestSwitch('nosentinel', { REDIS_URL: '', REDIS_SENTINELS: nobody.map((p) => `127.0.0.1:${p}`).join(',') }),
  ).rejects.toThrow(`cannot reach Redis at Redis master "cardswitch" via Sentinels 127.0.0.1:${nobody[0]},127.0.0.1:${nobody[1]}`);
  // One round of both, not a wait for ever (it used to ask them again and again, and never answer).
  expect(Date.now() - started).toBeLessThan(20_000);
});

// First: it needs no failover, and so finds the servers as they started.
it('a Sentinel that hangs with its port open: the client asks the next one after the command time', async () => {
  const client = await connectedClient(1000);
  const s0 = sentinels[0] as Sentinel;
  s0.process.kill('SIGSTOP');
  await dropConnection(client);
  await expectWritesReachMaster(client, 'sentinel-client:past-a-hung-sentinel', 15_000);
}, 60_000);

it('a failover announced while the client asks a hung Sentinel for the master: the client connects again by itself', async () => {
  // A command time far beyond the test's waits: Sentinel 0's question stays open until it is let go.
  const client = await connectedClient(120_000);
  const oldMaster = await currentMasterPort();
  const s0 = sentinels[0] as Sentinel;
  s0.process.kill('SIGSTOP');
  await dropConnection(client);
  // The client reconnects (50 ms) and asks Sentinel 0 first (the one that answered before), which hangs.
  await waitUntil('the client to be asking Sentinel 0', 10_000, () => client.status === 'connecting');
  // The other Sentinels fail over, and announce it to the client's failover watch, which closes the
  // connection being made.
  expect(await ask(sentinels[1]?.port ?? 0, 'SENTINEL', 'FAILOVER', MASTER_NAME)).toBe('OK');
  await waitUntil('the failover', 30_000, async () => (await currentMasterPort()) !== oldMaster);
  await waitUntil('the failover watch to close its Sentinel connections', 30_000, async () => {
    const list = String(await ask(sentinels[1]?.port ?? 0, 'CLIENT', 'LIST'));
    return !list.includes(' sub=1 ');
  });
  // Sentinel 0 answers the question now; ioredis finds its connection attempt cancelled.
  s0.process.kill('SIGCONT');
  await expectWritesReachMaster(client, 'sentinel-client:after-failover', 30_000);
}, 120_000);
