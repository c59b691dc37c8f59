// A master of a 3-master, 3-replica Redis Cluster is killed with kill -9 while POS terminals pay, in the
// durable mode (LEDGER_DURABILITY=replica): its replica takes over, and every payment the switch approved
// is in the ledger afterwards exactly once. Each POS retries a payment answered UNAVAILABLE with the same
// sequence number until it gets an answer (what a real POS does). The killed node is started again and
// rejoins as the new master's replica: until then that master has no replica, and the durable mode
// answers its shards UNAVAILABLE instead of approving what a second failure would lose.
import calculateSlot from 'cluster-key-slot';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { PosLoad, waitUntil } from './helpers/cluster-load.js';
import { startTestCluster, useClusterLedger, type TestCluster } from './helpers/redis-cluster.js';
import { startTestSwitch } from './helpers/switch.js';

const CARDS = 48;
/** Payments approved before the kill, and after the failover, before the load stops. */
const BEFORE_KILL = 150;
const AFTER_FAILOVER = 150;
/** Generous: a failover on a loaded 2-core machine. */
const BUDGET_MS = 60_000;

let cluster: TestCluster;
let app: SwitchApp;
let load: PosLoad;

beforeAll(async () => {
  cluster = await startTestCluster();
  useClusterLedger(cluster.cluster, { LEDGER_DURABILITY: 'replica', LEDGER_WAIT_TIMEOUT_MS: '500' });
  // The production command timeout (test/helpers/switch.ts gives other tests 10 s): the failover is measured as it runs.
  app = await startTestSwitch('failover', { REDIS_COMMAND_TIMEOUT_MS: '2000' });
  load = new PosLoad(app, { label: 'FO', cards: CARDS, terminals: 8, openingFen: 10_000_000, answerBudgetMs: BUDGET_MS });
  await load.setUp();
}, 90_000);

afterAll(async () => {
  await app?.stop();
  await cluster?.stop();
});

it('kill -9 of a master under load in the durable mode: every acknowledged payment is in the ledger exactly once', async () => {
  load.start();
  await load.waitForApprovals(BEFORE_KILL);
  // The master that holds shard 0's journal (so some cards' shards lose their master for sure).
  const victim = cluster.client.slots[calculateSlot(app.keys.journal(0))]?.[0];
  const victimPort = Number(victim?.split(':')[1]);
  expect(await cluster.cluster.masterPorts()).toContain(victimPort);
  cluster.cluster.kill(victimPort);
  const approvedAtKill = load.approved.length;

  // The victim's replica is promoted: three masters again, none of them the victim.
  await waitUntil('the replica to take over', BUDGET_MS, async () => {
    const masters = await cluster.cluster.masterPorts();
    return masters.length === 3 && !masters.includes(victimPort);
  });
  // The dead machine comes back and becomes the new master's replica; durable payments flow again.
  await cluster.cluster.restart(victimPort);
  await cluster.cluster.waitHealthy(BUDGET_MS);
  await load.waitForApprovals(approvedAtKill + AFTER_FAILOVER);
  await load.stop();
  expect(load.failure, 'a payment failed with something other than UNAVAILABLE').toBeUndefined();

  const report = await load.check();
  console.log(`cluster failover (durable mode): ${JSON.stringify(report)}`);
  expect(report.lost).toBe(0);
  expect(report.duplicated).toBe(0);
  // Nothing was taken that the POS was not told about, and each balance is opening - approved payments.
  expect(report.unacknowledgedTaken).toBe(0);
  expect(report.wrongBalances).toEqual([]);
  expect(report.acknowledged).toBeGreaterThanOrEqual(BEFORE_KILL + AFTER_FAILOVER);
  const audit = await auditLedger(app.redis, app.keys);
  expect(audit.problems).toEqual([]);
  expect(audit.ok).toBe(true);
  expect(audit.accounts).toBe(CARDS);
}, 180_000);
