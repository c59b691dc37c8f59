// A Redis Cluster for one test file: 3 masters and 3 replicas on loopback (free ports, a temp dir), made by
// `redis-cli --cluster create --cluster-replicas 1` (switch/redis/cluster-local.ts), torn down after the
// file. useClusterLedger() points every switch the file starts through testConfig() at it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, type Redis } from 'ioredis';
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
