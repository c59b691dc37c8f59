import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';

/** The shard count decides where every account lives; it is fixed the first time a ledger is used. */
export async function checkShardCount(redis: Redis, keys: Keys): Promise<void> {
  await redis.hsetnx(keys.meta(), 'shards', String(keys.shardCount));
  const stored = Number(await redis.hget(keys.meta(), 'shards'));
  if (stored !== keys.shardCount) {
    throw new ShardCountMismatchError(
      `LEDGER_SHARDS=${keys.shardCount} but this ledger (prefix "${keys.prefix}") was created with ${stored} shards; ` +
        `set LEDGER_SHARDS=${stored} (changing it would move every account)`,
    );
  }
}

export class ShardCountMismatchError extends Error {
  override readonly name = 'ShardCountMismatchError';
}

/**
 * The ledger's identity: a random id kept in its meta hash from its first use (replicated, and in its
 * backups, like every other key). The journal archive records it (history/archive-store.ts open), so a
 * database that archives one ledger refuses another with the same KEY_PREFIX (two deployments left at the
 * default prefix, given one DATABASE_URL).
 */
export async function ledgerIdentity(redis: Redis, keys: Keys): Promise<string> {
  await redis.hsetnx(keys.meta(), 'ledger', randomUUID());
  const id = await redis.hget(keys.meta(), 'ledger');
  if (id === null) throw new Error(`the ledger's identity (${keys.meta()} ledger) is gone right after it was written`);
  return id;
}
