// `npm run archiver`: the archiver as its own process, beside switches started with HISTORY_ARCHIVE=off
// (or as well as them: two archivers of one shard queue on its position row and never write a row twice).
// Needs REDIS_URL and DATABASE_URL; reads KEY_PREFIX, LEDGER_SHARDS and the HISTORY_* settings.
// `npm run archiver -- --once` archives and trims one pass and exits (a cron job, the tests).
import { Redis } from 'ioredis';
import { Keys } from '../ledger/keys.js';
import { checkShardCount } from '../ledger/meta.js';
import { createLogger } from '../log.js';
import { ArchiveStore } from './archive-store.js';
import { Archiver } from './archiver.js';

function integer(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name] ?? '';
  if (raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${name}=${raw}: must be a whole number ${min}..${max}`);
  return value;
}

function required(name: string): string {
  const value = process.env[name] ?? '';
  if (value === '')
    throw new Error(`${name} is required (the archiver copies the journals of REDIS_URL into the PostgreSQL of DATABASE_URL)`);
  return value;
}

async function main(): Promise<void> {
  const once = process.argv.includes('--once');
  const log = createLogger(process.env['LOG_LEVEL'] ?? 'info', 'archiver');
  const keys = new Keys(process.env['KEY_PREFIX'] || 'cs', integer('LEDGER_SHARDS', 256, 1, 16384));
  const redis = new Redis(required('REDIS_URL'), { maxRetriesPerRequest: 1, connectTimeout: 5000, commandTimeout: 10_000 });
  redis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection problem'));
  const store = new ArchiveStore({ url: required('DATABASE_URL'), poolSize: 6, statementTimeoutMs: 60_000 });
  await checkShardCount(redis, keys);
  await store.open(keys.prefix, keys.shardCount);
  const archiver = new Archiver({
    redis,
    keys,
    store,
    log,
    batchSize: integer('HISTORY_ARCHIVE_BATCH', 1000, 1, 2000),
    intervalMs: integer('HISTORY_ARCHIVE_INTERVAL_MS', 1000, 10, 600_000),
    liveWindowMs: integer('HISTORY_LIVE_WINDOW_DAYS', 35, 1, 3660) * 86_400_000,
    trim: (process.env['HISTORY_TRIM'] ?? 'on') !== 'off',
    now: Date.now,
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

main().catch((err: unknown) => {
  console.error(`archiver: ${(err as Error).message}`);
  process.exit(1);
});
