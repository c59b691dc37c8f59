// `npm run archiver`: the archiver as its own process, beside switches started with HISTORY_ARCHIVE=off
// (or as well as them: two archivers of one shard queue on its position row and never write a row twice).
// Reads the switch's own settings (config.ts loadArchiverConfig, none of its secrets): the ledger (REDIS_URL,
// or REDIS_SENTINELS, or REDIS_CLUSTER_NODES, with REDIS_PASSWORD; LEDGER_DURABILITY=replica: it archives only
// what a replica holds), DATABASE_URL, KEY_PREFIX, LEDGER_SHARDS and the HISTORY_* settings, through the
// switch's own client: it follows a Sentinel failover and a Cluster's slots as the switch does.
// `npm run archiver -- --once` archives and trims one pass and exits (a cron job, the tests).
import { ConfigError, describeLedgerRedis, ledgerRedisConfigured, loadArchiverConfig } from '../config.js';
import { Keys } from '../ledger/keys.js';
import { checkShardCount, ledgerIdentity } from '../ledger/meta.js';
import { createLogger } from '../log.js';
import { ledgerClient } from '../redis/cluster.js';
import { ArchiveStore } from './archive-store.js';
import { Archiver } from './archiver.js';

/** A batch's reads and the trim may wait on a busy Redis longer than a payment would. */
const ARCHIVER_COMMAND_TIMEOUT_MS = 10_000;

async function main(): Promise<void> {
  const once = process.argv.includes('--once');
  const config = loadArchiverConfig();
  if (!ledgerRedisConfigured(config))
    throw new ConfigError([
      "REDIS_URL (or REDIS_SENTINELS, or REDIS_CLUSTER_NODES) is required: the archiver copies the ledger's journals",
    ]);
  if (config.history.databaseUrl === '')
    throw new ConfigError(["DATABASE_URL is required: the archiver copies the ledger's journals into that PostgreSQL"]);
  const log = createLogger(config.logLevel, 'archiver');
  const keys = new Keys(config.keyPrefix, config.ledgerShards);
  // Commands wait in the offline queue while the ledger reconnects (a failover), each retried once.
  const redis = ledgerClient(config, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    commandTimeout: ARCHIVER_COMMAND_TIMEOUT_MS,
  });
  redis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection problem'));
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${describeLedgerRedis(config)}: ${(err as Error).message}`);
  }
  const store = new ArchiveStore({ url: config.history.databaseUrl, poolSize: 6, statementTimeoutMs: 60_000 });
  await checkShardCount(redis, keys);
  await store.open(keys.prefix, keys.shardCount, await ledgerIdentity(redis, keys));
  const archiver = new Archiver({
    redis,
    keys,
    store,
    log,
    batchSize: config.history.batchSize,
    intervalMs: config.history.intervalMs,
    liveWindowMs: config.history.liveWindowMs,
    trim: config.history.trim,
    now: Date.now,
    ...(config.ledgerDurability === 'replica' ? { replicaWaitTimeoutMs: config.ledgerWaitTimeoutMs } : {}),
  });
  if (once) {
    await archiver.syncPositions();
    const report = await archiver.runPass();
    log.info({ report }, 'archiver: one pass done');
  } else {
    log.info({ shards: keys.shardCount }, 'archiver started');
    archiver.start();
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await archiver.stop();
  }
  await store.close();
  redis.disconnect();
}

// Exit 2 for settings to correct (as the CLI and the gateway), 1 for a failure while running.
main().catch((err: unknown) => {
  console.error(`archiver: ${(err as Error).message}`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
