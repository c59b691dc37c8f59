// One Redis master, one replica and three Sentinels on loopback (started here); the switch finds the master
// through the Sentinels (REDIS_SENTINELS) in the durable mode. The master is killed with kill -9 while POS
// terminals pay; the Sentinels promote the replica, the switch follows by itself, and every payment it
// approved is in the ledger exactly once. The killed master comes back and the Sentinels make it the new
// master's replica, so durable payments flow again.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { startLocalRedis, type LocalRedis } from '../switch/redis/local-redis.js';
import { PosLoad, waitUntil } from './helpers/cluster-load.js';
import { ask, masterPortBy, startSentinelSet, type Sentinel } from './helpers/sentinel.js';
import { startTestSwitch, useLedgerRedis } from './helpers/switch.js';

const MASTER_NAME = 'cardswitch';
const BUDGET_MS = 60_000;

let dir: string;
let master: LocalRedis | undefined;
let replica: LocalRedis | undefined;
const sentinels: Sentinel[] = [];
let app: SwitchApp | undefined;
let load: PosLoad;

async function masterPortBySentinels(): Promise<number | undefined> {
  return masterPortBy(sentinels[0]?.port ?? 0, MASTER_NAME);
}

/** What the Sentinels and both servers say, for a failure message: the logs' last lines and each one's view. */
async function failoverEvidence(oldPort: number): Promise<string> {
  const tail = (file: string): string => {
    try {
      return readFileSync(file, 'utf8').split('\n').slice(-40).join('\n');
    } catch (err) {
      return `(${(err as Error).message})`;
    }
  };
  const parts: string[] = [];
  for (const [i, s] of sentinels.entries()) {
    parts.push(`--- sentinel ${i} (port ${s.port}) log:\n${tail(s.logFile)}`);
    parts.push(`--- sentinel ${i} REPLICAS: ${JSON.stringify(await ask(s.port, 'SENTINEL', 'REPLICAS', MASTER_NAME))}`);
    parts.push(`--- sentinel ${i} INFO sentinel: ${String(await ask(s.port, 'INFO', 'sentinel'))}`);
  }
  parts.push(`--- old master (port ${oldPort}) INFO replication: ${String(await ask(oldPort, 'INFO', 'replication'))}`);
  parts.push(`--- old master log:\n${tail(join(dir, 'a', 'redis.log'))}`);
  parts.push(`--- new master (port ${replica?.port}) INFO replication: ${String(await ask(replica?.port ?? 0, 'INFO', 'replication'))}`);
  parts.push(`--- new master log:\n${tail(join(dir, 'b', 'redis.log'))}`);
  // Where the switch's own ledger client is connected, and what that server says it is.
  const role = await Promise.race([
    app?.redis.call('ROLE').then(
      (r) => JSON.stringify(r),
      (err: unknown) => `failed: ${(err as Error).message}`,
    ),
    new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 2 s'), 2000)),
  ]);
  parts.push(`--- the switch's ledger client: ROLE ${role}`);
  return parts.join('\n');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cardswitch-test-sentinel-'));
  const set = await startSentinelSet(dir, MASTER_NAME, true);
  master = set.master;
  replica = set.replica;
  sentinels.push(...set.sentinels);
  useLedgerRedis({
    REDIS_URL: '',
    REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
    REDIS_SENTINEL_MASTER: MASTER_NAME,
    LEDGER_DURABILITY: 'replica',
    LEDGER_WAIT_TIMEOUT_MS: '500',
    // The production default (test/helpers/switch.ts gives other tests 10 s): the failover is measured as it runs.
    REDIS_COMMAND_TIMEOUT_MS: '2000',
  });
  app = await startTestSwitch('sentinel');
  load = new PosLoad(app, { label: 'SN', cards: 48, terminals: 8, openingFen: 10_000_000, answerBudgetMs: BUDGET_MS });
  await load.setUp();
}, 120_000);

afterAll(async () => {
  await app?.stop();
  for (const s of sentinels) s.process.kill('SIGKILL');
  await master?.stop();
  await replica?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('kill -9 of the master under load: the Sentinels promote the replica, the switch follows, no acknowledged payment lost', async () => {
  const old = master as LocalRedis;
  expect(await masterPortBySentinels()).toBe(old.port);
  load.start();
  await load.waitForApprovals(150);
  old.process.kill('SIGKILL');
  const approvedAtKill = load.approved.length;
  await waitUntil('the Sentinels to promote the replica', BUDGET_MS, async () => (await masterPortBySentinels()) === replica?.port);
  // Every Sentinel knows the new master before the old one comes back (its return is then a replica's to convert).
  await waitUntil('every Sentinel to know the new master', BUDGET_MS, async () => {
    const views = await Promise.all(sentinels.map((s) => ask(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)));
    return views.every((v) => Array.isArray(v) && Number(v[1]) === replica?.port);
  });
  // The old master comes back (its own data dir) and the Sentinels turn it into the new master's replica.
  master = await startLocalRedis({
    dataDir: join(dir, 'a'),
    port: old.port,
    appendOnly: true,
    appendFsync: 'everysec',
    startTimeoutMs: 20_000,
  });
  // Longer than the other waits: a Sentinel whose timer ran late on a loaded machine enters TILT mode and
  // acts on nothing for 30 s (this wait ran past 60 s in 2 of 6 CI runs, 25 s otherwise).
  try {
    await waitUntil('the old master to replicate the new one', 2 * BUDGET_MS, async () =>
      String(await ask(old.port, 'INFO', 'replication')).includes('master_link_status:up'),
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await failoverEvidence(old.port)}`);
  }
  await load.waitForApprovals(approvedAtKill + 150);
  await load.stop();
  const evidence = load.failure === undefined ? '' : `\n${await failoverEvidence(old.port)}`;
  expect(load.failure, `a payment failed with something other than UNAVAILABLE${evidence}`).toBeUndefined();
  const report = await load.check();
  console.log(`sentinel failover (durable mode): ${JSON.stringify(report)}`);
  expect(report.lost).toBe(0);
  expect(report.duplicated).toBe(0);
  expect(report.unacknowledgedTaken).toBe(0);
  expect(report.wrongBalances).toEqual([]);
  const audit = await auditLedger((app as SwitchApp).redis, (app as SwitchApp).keys);
  expect(audit.problems).toEqual([]);
  expect(audit.ok).toBe(true);
}, 180_000);
