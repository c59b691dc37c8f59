// `cardswitch recharge-attention [--channel wechat|alipay] [--json]`: the recharge orders the switch gave
// up asking the channel about (it never gave a final answer: domain/recharge-orders.ts, MAX_UNKNOWN_QUERIES)
// and that now need an operator. Read-only. Such an order is still credited, once, if its notification or
// a later query (the holder's page asking for its state) says paid; reconciliation lists it too.
// Exit codes: 0 none, 1 some listed, 2 usage, configuration or environment error.
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { ConfigError, describeLedgerRedis, ledgerRedisConfigured, loadConfig } from '../config.js';
import { MAX_UNKNOWN_QUERIES, rechargeOrdersNeedingAttention, type AttentionOrder } from '../domain/recharge-orders.js';
import { Keys } from '../ledger/keys.js';
import { Scripts } from '../ledger/scripts.js';
import { formatYuan } from '../money.js';
import { ledgerClient } from '../redis/cluster.js';

export const RECHARGE_ATTENTION_USAGE = `usage: cardswitch recharge-attention [--channel wechat|alipay] [--json]

Lists the recharge orders whose channel never gave a final answer (system errors, timeouts, still paying
long after the order expired) after the settlement loop asked it ${MAX_UNKNOWN_QUERIES} times with a growing wait: each
needs an operator to check it with the channel. Nothing is changed; such an order is still credited once
if the channel's notification or a later query says it was paid.

  --channel   only this channel's orders
  --json      print the list as one JSON array on stdout

environment: REDIS_URL (required), KEY_PREFIX
exit codes: 0 none, 1 orders listed, 2 usage, configuration or environment error`;

const REDIS_CONNECT_TIMEOUT_MS = 5000;
const MAX_PER_SHARD = 1000;
const UNUSED_PEPPER = 'recharge-attention-uses-no-pepper-0000';
const UNUSED_SECRET = 'recharge-attention-uses-no-session-or-qr-secret-0000';

type Env = Readonly<Record<string, string | undefined>>;

class UsageError extends Error {
  override readonly name = 'UsageError';
}

async function ledgerKeys(redis: Redis, prefix: string): Promise<Keys> {
  const meta = new Keys(prefix, 1).meta();
  const shards = Number(await redis.hget(meta, 'shards'));
  if (!Number.isInteger(shards) || shards < 1)
    throw new UsageError(`no ledger with KEY_PREFIX "${prefix}" here (${meta}); check REDIS_URL and KEY_PREFIX`);
  return new Keys(prefix, shards);
}

function line(o: AttentionOrder): string {
  const made = new Date(o.createdAtMs).toISOString();
  const since = new Date(o.sinceMs).toISOString();
  return `${o.channel.padEnd(7)} order ${o.orderId}  card ${o.cardNo}  ${formatYuan(o.amountFen)} yuan  made ${made}  given up ${since} after ${o.unknownQueries} queries`;
}

async function list(argv: readonly string[], env: Env): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: { channel: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    console.log(RECHARGE_ATTENTION_USAGE);
    return 0;
  }
  const channel = values.channel;
  if (channel !== undefined && channel !== 'wechat' && channel !== 'alipay') throw new UsageError('--channel must be wechat or alipay');
  const config = loadConfig({
    ...env,
    TERMINAL_SECRET_PEPPER: env['TERMINAL_SECRET_PEPPER'] ?? UNUSED_PEPPER,
    PASSWORD_PEPPER: env['PASSWORD_PEPPER'] ?? UNUSED_PEPPER,
    SESSION_SECRET: env['SESSION_SECRET'] ?? UNUSED_SECRET,
    CAMPUS_QR_SECRET: env['CAMPUS_QR_SECRET'] ?? UNUSED_SECRET,
  });
  if (!ledgerRedisConfigured(config)) throw new UsageError('REDIS_URL is not set: the list is read from the ledger');
  const redis = ledgerClient(config, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    commandTimeout: config.redisCommandTimeoutMs,
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new UsageError(`cannot reach Redis at ${describeLedgerRedis(config)}: ${(err as Error).message}`);
  }
  try {
    const keys = await ledgerKeys(redis, config.keyPrefix);
    const scripts = await Scripts.load(redis);
    const orders = await rechargeOrdersNeedingAttention(
      { keys, scripts },
      { maxPerShard: MAX_PER_SHARD, ...(channel === undefined ? {} : { channel }) },
    );
    if (values.json === true) console.log(JSON.stringify(orders));
    else if (orders.length === 0) console.log('no recharge order needs attention');
    else {
      for (const o of orders) console.log(line(o));
      console.error(`${orders.length} recharge order(s) need an operator: check each with the channel`);
    }
    return orders.length === 0 ? 0 : 1;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/** Runs `recharge-attention` with its arguments and returns the exit code; expected problems are printed. */
export async function runRechargeAttentionCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  try {
    return await list(argv, env);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`error: ${err.message}\n\n${RECHARGE_ATTENTION_USAGE}`);
      return 2;
    }
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }
}
