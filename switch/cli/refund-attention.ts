// `cardswitch refund-attention [--channel wechat|alipay] [--json]`: the merchant refunds of code payments
// the switch gave up asking the channel about (it never gave a final answer: domain/channel-refund.ts,
// MAX_UNKNOWN_REFUND_ANSWERS) and that now need an operator. Read-only. Such a refund is still settled,
// once, when the POS sends the same refund again and the channel then answers; it leaves the list then.
// Exit codes: 0 none, 1 some listed, 2 usage, configuration or environment error.
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { ConfigError, describeLedgerRedis, ledgerRedisConfigured, loadConfig } from '../config.js';
import { MAX_UNKNOWN_REFUND_ANSWERS, refundsNeedingAttention, type AttentionRefund } from '../domain/channel-refund.js';
import { Keys } from '../ledger/keys.js';
import { Scripts } from '../ledger/scripts.js';
import { formatYuan } from '../money.js';
import { ledgerClient } from '../redis/cluster.js';

export const REFUND_ATTENTION_USAGE = `usage: cardswitch refund-attention [--channel wechat|alipay] [--json]

Lists the merchant refunds of Alipay / WeChat code payments whose channel never gave a final answer
(system errors, timeouts) after the switch's follow-up asked it ${MAX_UNKNOWN_REFUND_ANSWERS} times with a growing wait: each
needs an operator to check it with the channel (by its out_refund_no). Nothing is changed; the POS
sending the same refund again (same terminal and sequence number) still asks the channel, and a final
answer then settles it once and takes it off this list.

  --channel   only this channel's orders
  --json      print the list as one JSON array on stdout

environment: REDIS_URL (required), KEY_PREFIX
exit codes: 0 none, 1 refunds listed, 2 usage, configuration or environment error`;

const REDIS_CONNECT_TIMEOUT_MS = 5000;
const MAX_LISTED = 10_000;
const UNUSED_PEPPER = 'refund-attention-uses-no-pepper-00000000';
const UNUSED_SECRET = 'refund-attention-uses-no-session-or-qr-secret-00000';

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

function line(r: AttentionRefund): string {
  const since = new Date(r.sinceMs).toISOString();
  const what = r.recordKept
    ? `${formatYuan(r.amountFen)} yuan of payment ${r.outTradeNo}  made ${new Date(r.createdAtMs).toISOString()}`
    : 'its record expired: ask the channel';
  return `${(r.channel ?? '?').padEnd(7)} refund ${r.outRefundNo}  card ${r.cardNo}  POS ${r.terminalId} #${r.sequence}  ${what}  given up ${since} after ${r.unknownAnswers} answers`;
}

async function list(argv: readonly string[], env: Env): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: { channel: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    console.log(REFUND_ATTENTION_USAGE);
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
    const refunds = await refundsNeedingAttention(
      { keys, scripts },
      { maxCount: MAX_LISTED, ...(channel === undefined ? {} : { channel }) },
    );
    if (values.json === true) console.log(JSON.stringify(refunds));
    else if (refunds.length === 0) console.log('no refund needs attention');
    else {
      for (const r of refunds) console.log(line(r));
      console.error(`${refunds.length} refund(s) need an operator: check each with the channel by its refund number`);
    }
    return refunds.length === 0 ? 0 : 1;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/** Runs `refund-attention` with its arguments and returns the exit code; expected problems are printed. */
export async function runRefundAttentionCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  try {
    return await list(argv, env);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`error: ${err.message}\n\n${REFUND_ATTENTION_USAGE}`);
      return 2;
    }
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }
}
