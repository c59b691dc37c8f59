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
