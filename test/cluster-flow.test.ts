// The switch on a 3-master, 3-replica Redis Cluster (started by this file, test/helpers/redis-cluster.ts):
// the POS, kiosk and admin flows of the single-Redis tests and the fold of old card limits at start (its
// SCAN of every master), run unchanged against the cluster (their switches come from testConfig(), which
// this file points at the cluster), the random conservation workload with its audit, and a slot
// migration under card taps: the slots of one master's shards move
// to another master key by key while terminals pay; the client follows MOVED / ASK / TRYAGAIN, and
// nothing is lost or taken twice.
import calculateSlot from 'cluster-key-slot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLedger } from '../switch/ledger/audit.js';
import { PosLoad } from './helpers/cluster-load.js';
import { migrateSlot, startTestCluster, useClusterLedger, type TestCluster } from './helpers/redis-cluster.js';
import { startTestSwitch } from './helpers/switch.js';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster();
  // A loaded 2-core CI machine runs these files beside others: a generous command timeout.
  useClusterLedger(cluster.cluster, { REDIS_COMMAND_TIMEOUT_MS: '5000' });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

// The flows: each file's own tests, unchanged, on the cluster; the random walk shorter than on one Redis
// (80 operations per client instead of 160) so the cluster suite stays well under two minutes on two cores.
process.env['RANDOM_OPERATIONS_PER_CLIENT'] ??= '80';
for (const file of ['pos-smoke', 'admin-import', 'refund', 'random-conservation', 'limits-fold']) {
  await import(/* @vite-ignore */ new URL(`./${file}.test.ts`, import.meta.url).href);
}

describe('slot migration under load', () => {
  it("moves the slots of one master's shards to another while terminals pay: nothing lost or duplicated, the audit passes", async () => {
    const app = await startTestSwitch('reshard');
    try {
      const load = new PosLoad(app, { label: 'RS', cards: 48, terminals: 8, openingFen: 10_000_000, answerBudgetMs: 60_000 });
      await load.setUp();
      load.start();
      await load.waitForApprovals(100);
      // Every shard slot of the master that holds shard 0 moves to another master.
      const owner = (key: string): number => Number(cluster.client.slots[calculateSlot(key)]?.[0]?.split(':')[1]);
      const from = owner(app.keys.journal(0));
      const to = (await cluster.cluster.masterPorts()).find((p) => p !== from) as number;
      const shardSlots = Array.from({ length: app.keys.shardCount }, (_, s) => calculateSlot(app.keys.journal(s)));
      const slots = [...new Set(shardSlots)].filter((slot) => Number(cluster.client.slots[slot]?.[0]?.split(':')[1]) === from);
      let moved = 0;
      const approvedBefore = load.approved.length;
      for (const slot of slots) moved += await migrateSlot(cluster.cluster, slot, from, to);
      const approvedDuring = load.approved.length - approvedBefore;
      await load.waitForApprovals(load.approved.length + 100);
      await load.stop();
      expect(load.failure, 'a payment failed with something other than UNAVAILABLE').toBeUndefined();
      const report = await load.check();
      console.log(
        `cluster slot migration: ${JSON.stringify({ slots: slots.length, keysMoved: moved, approvedDuringMigration: approvedDuring, ...report })}`,
      );
      expect(slots.length).toBeGreaterThan(0);
      expect(moved).toBeGreaterThan(0);
      expect(report.lost).toBe(0);
      expect(report.duplicated).toBe(0);
      expect(report.unacknowledgedTaken).toBe(0);
      expect(report.wrongBalances).toEqual([]);
      // The slots are served by the target now (the test's client learnt it through MOVED as well).
      const audit = await auditLedger(app.redis, app.keys);
      expect(audit.problems).toEqual([]);
      expect(audit.ok).toBe(true);
    } finally {
      await app.stop();
    }
  }, 180_000);
});
