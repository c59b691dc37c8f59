// A Redis Cluster for one test file: 3 masters and 3 replicas on loopback (free ports, a temp dir), made by
// `redis-cli --cluster create --cluster-replicas 1` (switch/redis/cluster-local.ts), torn down after the
// file. useClusterLedger() points every switch the file starts through testConfig() at it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { startLocalCluster, type LocalCluster } from '../../switch/redis/cluster-local.js';
import { useLedgerRedis } from './switch.js';

export interface TestCluster {
  readonly cluster: LocalCluster;
  /** A plain cluster client for the test's own reads (not the switch's). */
  readonly client: Cluster;
  stop(): Promise<void>;
}

export async function startTestCluster(options: { nodeTimeoutMs?: number } = {}): Promise<TestCluster> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cardswitch-test-cluster-'));
  const cluster = await startLocalCluster({
    dataDir,
    masters: 3,
    replicasPerMaster: 1,
    nodeTimeoutMs: options.nodeTimeoutMs ?? 1000,
    startTimeoutMs: 30_000,
  });
  const client = new Cluster(
    cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    { scaleReads: 'master', retryDelayOnClusterDown: 100, retryDelayOnFailover: 100, retryDelayOnTryAgain: 50, maxRedirections: 64 },
  );
  client.on('error', () => undefined);
  return {
    cluster,
    client,
    async stop() {
      client.disconnect();
      await cluster.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every switch this test file starts (testConfig) uses the cluster; `extra` adds settings (LEDGER_DURABILITY ...). */
export function useClusterLedger(cluster: LocalCluster, extra: Record<string, string> = {}): void {
  useLedgerRedis({ REDIS_URL: '', REDIS_CLUSTER_NODES: cluster.nodesSetting, ...extra });
}

/** The cluster client typed as the helpers' Redis (same command methods). */
export function asRedis(client: Cluster): Redis {
  return client as unknown as Redis;
}

/** A direct connection to one node (no cluster redirections). */
function nodeClient(port: number): Redis {
  const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  return client;
}

/**
 * Moves one slot from the master on port `from` to the master on port `to` by hand, the way
 * `redis-cli --cluster reshard` does: IMPORTING on the target, MIGRATING on the source, MIGRATE of each
 * key, one at a time (so clients meet ASK and TRYAGAIN while the slot is half moved), then the slot
 * assigned to the target on every master. Returns how many keys moved.
 */
export async function migrateSlot(cluster: LocalCluster, slot: number, from: number, to: number): Promise<number> {
  const source = nodeClient(from);
  const target = nodeClient(to);
  try {
    const sourceId = String(await source.call('CLUSTER', 'MYID'));
    const targetId = String(await target.call('CLUSTER', 'MYID'));
    await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId);
    await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId);
    let moved = 0;
    for (;;) {
      const keys = (await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 5)) as string[];
      if (keys.length === 0) break;
      for (const key of keys) {
        await source.call('MIGRATE', '127.0.0.1', to, key, 0, 5000);
        moved++;
      }
    }
    for (const port of await cluster.masterPorts()) {
      const node = port === from ? source : port === to ? target : nodeClient(port);
      await node.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId);
      if (node !== source && node !== target) node.disconnect();
    }
    return moved;
  } finally {
    source.disconnect();
    target.disconnect();
  }
}
