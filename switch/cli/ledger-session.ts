// What every ledger-reading operator command (audit, reconcile, recharge-attention, refund-attention,
// fee-attention; recharge-resolve, which also settles one order) does
// around its own work: configuration without the switch's secrets, one ledger connection that fails
// fast and says where it tried, the ledger's own shard count, who the operator is (for the operator log),
// and one mapping of problems to exit codes (2: usage, configuration or environment; the command's own
// result decides 0 or 1).
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { ConfigError, describeLedgerRedis, ledgerRedisConfigured, loadConfig, type Config } from '../config.js';
import { Keys } from '../ledger/keys.js';
import { Scripts } from '../ledger/scripts.js';
import { ledgerClient } from '../redis/cluster.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** A problem the operator can fix by calling differently (arguments, environment, an unreachable Redis): exit 2. */
export class CliUsageError extends Error {
  override readonly name = 'CliUsageError';
}

const REDIS_CONNECT_TIMEOUT_MS = 5000;

/** The operator names OPERATOR_TOKENS accepts; the log records "cli:" and the name. */
const OPERATOR_NAME = /^[A-Za-z0-9_.-]{1,32}$/;

/**
 * Who runs a command that writes the operator log: --operator, else the login name of the OS user. The
 * "cli:" prefix tells these entries from AdminService's, whose names an operator token proves: anyone who
 * can reach Redis can run the CLI under any name.
 */
export function cliOperator(given: string | undefined): string {
  let name = given;
  if (name === undefined) {
    try {
      name = userInfo().username;
    } catch {
      throw new CliUsageError('cannot tell who is running this command (no login name for this user); pass --operator NAME');
    }
  }
  if (!OPERATOR_NAME.test(name)) {
    const source = given === undefined ? `the login name ${JSON.stringify(name)}` : `--operator ${JSON.stringify(name)}`;
    throw new CliUsageError(`${source} is not an operator name (1-32 of A-Z a-z 0-9 _ . -); pass --operator NAME`);
  }
  return `cli:${name}`;
}

/**
 * The configuration from `env`. These commands use no peppers or session / QR secrets, and an operator's
 * job should not have to be handed them: placeholders stand in for any that are not set.
 */
export function cliConfig(env: Env, command: string): Config {
  const unused = `${command}-uses-no-secret-of-the-switch-0000000000`;
  return loadConfig({
    ...env,
    TERMINAL_SECRET_PEPPER: env['TERMINAL_SECRET_PEPPER'] ?? unused,
    PASSWORD_PEPPER: env['PASSWORD_PEPPER'] ?? unused,
    SESSION_SECRET: env['SESSION_SECRET'] ?? unused,
    CAMPUS_QR_SECRET: env['CAMPUS_QR_SECRET'] ?? unused,
  });
}

/**
 * Runs `work` with a connection to the configured ledger (REDIS_URL, REDIS_CLUSTER_NODES or
 * REDIS_SENTINELS), closed afterwards. No reconnecting: an unreachable Redis is a CliUsageError that
 * names it, and a command failing later rejects the work.
 */
export async function withLedgerConnection<T>(
  config: Config,
  what: string,
  work: (redis: Redis) => Promise<T>,
  commandTimeoutMs: number = config.redisCommandTimeoutMs,
): Promise<T> {
  if (!ledgerRedisConfigured(config))
    throw new CliUsageError(
      `REDIS_URL (or REDIS_CLUSTER_NODES / REDIS_SENTINELS) is not set: ${what} reads the ledger, e.g. REDIS_URL=redis://127.0.0.1:6379`,
    );
  const redis = ledgerClient(config, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    commandTimeout: commandTimeoutMs,
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined); // every failure also rejects the command that met it
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new CliUsageError(`cannot reach Redis at ${describeLedgerRedis(config)}: ${(err as Error).message}`);
  }
  try {
    return await work(redis);
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/**
 * The ledger's keys with the shard count it was created with (its meta hash; read, never written). With
 * `configuredShards` (LEDGER_SHARDS set explicitly), a different count is refused rather than followed.
 */
export async function ledgerKeysOf(redis: Redis, prefix: string, configuredShards?: number): Promise<Keys> {
  const meta = new Keys(prefix, 1).meta();
  const stored = await redis.hget(meta, 'shards');
  if (stored === null)
    throw new CliUsageError(`no ledger with KEY_PREFIX "${prefix}" here (${meta} is missing); check REDIS_URL and KEY_PREFIX`);
  const shards = Number(stored);
  if (!Number.isInteger(shards) || shards < 1) throw new CliUsageError(`${meta} holds shards=${JSON.stringify(stored)}, not a shard count`);
  if (configuredShards !== undefined && configuredShards !== shards)
    throw new CliUsageError(
      `LEDGER_SHARDS=${configuredShards} but the ledger with prefix "${prefix}" has ${shards} shards; unset LEDGER_SHARDS or set it to ${shards}`,
    );
  return new Keys(prefix, shards);
}

/**
 * Runs a command body and maps what it throws to an exit code, printing it: usage and configuration
 * problems (and `expected`, the command's own refusals) with the message, argument errors with the
 * usage text, anything else (Redis or a channel gone mid-way: no verdict either way) as `stoppedPrefix`.
 */
export async function runCli(
  usage: string,
  body: () => Promise<number>,
  options: { readonly expected?: (err: unknown) => boolean; readonly stoppedPrefix?: string } = {},
): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof CliUsageError || err instanceof ConfigError || options.expected?.(err) === true) {
      console.error(`error: ${(err as Error).message}`);
      return 2;
    }
    if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`error: ${err.message}\n\n${usage}`);
      return 2;
    }
    console.error(`error: ${options.stoppedPrefix ?? ''}${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }
}

/** What a list found, and a warning for the operator when it may be incomplete. */
export interface AttentionFound<T> {
  readonly items: readonly T[];
  readonly warning: string | undefined;
}

/** One of the "needs an operator" lists (recharge-, refund-, fee-attention): what differs between them. */
export interface AttentionList<T> {
  readonly command: string;
  readonly usage: string;
  /** false: the list takes no `--channel` (utility fees go to their provider, not to a channel). Default true. */
  readonly byChannel?: boolean;
  find(
    ledger: { readonly keys: Keys; readonly scripts: Scripts },
    channel: 'wechat' | 'alipay' | undefined,
  ): Promise<readonly T[] | AttentionFound<T>>;
  line(item: T): string;
  /** Printed when the list is empty. */
  readonly none: string;
  /** Printed on stderr after a list of `count`. */
  some(count: number): string;
}

/**
 * `[--channel wechat|alipay] [--json]` (no `--channel` when the list is not by channel): the list, one
 * line each or one JSON array, then the list's warning on stderr if it may be incomplete; exit 0 when
 * empty, 1 when any (a cron job's alarm), 2 on usage, configuration or environment problems (runCli).
 */
export function runAttentionList<T>(list: AttentionList<T>, argv: readonly string[], env: Env): Promise<number> {
  return runCli(list.usage, async () => {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        ...(list.byChannel === false ? {} : { channel: { type: 'string' } as const }),
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help === true) {
      console.log(list.usage);
      return 0;
    }
    const channel = values.channel;
    if (channel !== undefined && channel !== 'wechat' && channel !== 'alipay')
      throw new CliUsageError('--channel must be wechat or alipay');
    const config = cliConfig(env, list.command);
    return withLedgerConnection(config, 'the list', async (redis) => {
      const keys = await ledgerKeysOf(redis, config.keyPrefix);
      const found = await list.find({ keys, scripts: await Scripts.load(redis) }, channel);
      const { items, warning } = 'items' in found ? found : { items: found, warning: undefined };
      if (values.json === true) console.log(JSON.stringify(items));
      else if (items.length === 0) console.log(list.none);
      else {
        for (const item of items) console.log(list.line(item));
        console.error(list.some(items.length));
      }
      if (warning !== undefined) console.error(`warning: ${warning}`);
      return items.length === 0 ? 0 : 1;
    });
  });
}
