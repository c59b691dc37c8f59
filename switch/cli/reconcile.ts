// `cardswitch reconcile --channel wechat|alipay --date YYYY-MM-DD`: the channel's statement of that day
// against the ledger's journal (domain/reconcile.ts). Read-only: it writes nothing to the ledger.
// The channel is reached as the switch reaches it, from ALIPAY_* / WECHATPAY_* (channelsFromEnvironment).
// Exit codes: 0 every transaction matches, 1 differences listed, 2 usage, configuration or environment
// error (Redis or the channel unreachable, no statement of that day yet).
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { ledgerClient } from '../redis/cluster.js';
import { channelsFromEnvironment } from '../channels/index.js';
import { ConfigError, describeLedgerRedis, ledgerRedisConfigured, loadConfig } from '../config.js';
import { reconcileChannelDay, type ReconcileReport } from '../domain/reconcile.js';
import { DomainError } from '../errors.js';
import { Keys } from '../ledger/keys.js';
import { openArchiveForCli } from '../history/cli-archive.js';
import { Scripts } from '../ledger/scripts.js';
import { createLogger } from '../log.js';
import { formatYuan } from '../money.js';

export const RECONCILE_USAGE = `usage: cardswitch reconcile --channel wechat|alipay --date YYYY-MM-DD [--json]

Downloads the channel's statement (bill) of one day (Beijing time) and matches every line against the
ledger's journal by the switch's order id (out_trade_no): each channel transaction must be in the
ledger once with the same amount, and each channel credit in the ledger must be on the statement.
Lists every difference: missing_in_ledger, missing_at_channel, amount_differs, duplicated.

  --channel   wechat or alipay (configured by WECHATPAY_* / ALIPAY_*, as for the switch)
  --date      the statement's day, YYYY-MM-DD (a day's statement is ready the next morning)
  --json      print the report as one JSON object on stdout

environment: REDIS_URL (required), KEY_PREFIX, LEDGER_SHARDS, and the channel's WECHATPAY_* or ALIPAY_*
exit codes: 0 all matched, 1 differences found, 2 usage, configuration or environment error`;

const REDIS_CONNECT_TIMEOUT_MS = 5000;
/** The statement download and the journal scan together; a stuck channel must not hold the job forever. */
const RECONCILE_TIMEOUT_MS = 10 * 60 * 1000;
/** Reconciliation uses no peppers or secrets of the switch; a reconcile job should not be handed them. */
const UNUSED_PEPPER = 'reconcile-uses-no-pepper-0000';
const UNUSED_SECRET = 'reconcile-uses-no-session-or-qr-secret-0000';

type Env = Readonly<Record<string, string | undefined>>;

class ReconcileUsageError extends Error {
  override readonly name = 'ReconcileUsageError';
}

/** The shard count the ledger was created with (read, never written: reconciliation writes nothing). */
async function ledgerKeys(redis: Redis, prefix: string): Promise<Keys> {
  const meta = new Keys(prefix, 1).meta();
  const stored = await redis.hget(meta, 'shards');
  const shards = Number(stored);
  if (stored === null)
    throw new ReconcileUsageError(`no ledger with KEY_PREFIX "${prefix}" here (${meta} is missing); check REDIS_URL and KEY_PREFIX`);
  if (!Number.isInteger(shards) || shards < 1)
    throw new ReconcileUsageError(`${meta} holds shards=${JSON.stringify(stored)}, not a shard count`);
  return new Keys(prefix, shards);
}

function printReport(report: ReconcileReport): void {
  const head = `${report.channel} ${report.date}: ${report.statementLines} statement line(s), ${report.ledgerEntries} ledger entr${report.ledgerEntries === 1 ? 'y' : 'ies'}, ${report.matchedOrders} order(s) matched`;
  if (report.differences.length === 0) {
    console.log(`${head}\nRECONCILED: every channel transaction is in the ledger once with the same amount`);
    return;
  }
  for (const d of report.differences) {
    const channelSide = d.channelNetFen === undefined ? 'channel -' : `channel ${formatYuan(d.channelNetFen)}`;
    const ledgerSide = d.ledgerNetFen === undefined ? 'ledger -' : `ledger ${formatYuan(d.ledgerNetFen)}`;
    const ids = [
      d.channelTxnIds.length > 0 ? `channel txn ${d.channelTxnIds.join(' ')}` : '',
      d.ledgerEntryIds.length > 0 ? `journal ${d.ledgerEntryIds.join(' ')}` : '',
      d.cardNo === undefined ? '' : `card ${d.cardNo}`,
    ].filter((part) => part !== '');
    console.error(`${d.kind.padEnd(18)} order ${d.outTradeNo}  ${channelSide} / ${ledgerSide} yuan  ${ids.join(', ')}`);
    console.error(`${''.padEnd(18)} ${d.message}`);
  }
  console.error(`${head}\nNOT RECONCILED: ${report.differences.length} difference(s)`);
}

function parse(argv: readonly string[]): { channel: string; date: string; json: boolean } | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: { channel: { type: 'string' }, date: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) return 'help';
  if (values.channel === undefined) throw new ReconcileUsageError('reconcile needs --channel wechat or --channel alipay');
  if (values.date === undefined) throw new ReconcileUsageError('reconcile needs --date YYYY-MM-DD (the statement day, Beijing time)');
  return { channel: values.channel, date: values.date, json: values.json === true };
}

async function reconcile(argv: readonly string[], env: Env): Promise<number> {
  const args = parse(argv);
  if (args === 'help') {
    console.log(RECONCILE_USAGE);
    return 0;
  }
  const config = loadConfig({
    ...env,
    TERMINAL_SECRET_PEPPER: env['TERMINAL_SECRET_PEPPER'] ?? UNUSED_PEPPER,
    PASSWORD_PEPPER: env['PASSWORD_PEPPER'] ?? UNUSED_PEPPER,
    SESSION_SECRET: env['SESSION_SECRET'] ?? UNUSED_SECRET,
    CAMPUS_QR_SECRET: env['CAMPUS_QR_SECRET'] ?? UNUSED_SECRET,
  });
  if (!ledgerRedisConfigured(config))
    throw new ReconcileUsageError(
      'REDIS_URL (or REDIS_CLUSTER_NODES / REDIS_SENTINELS) is not set: reconciliation reads the ledger, e.g. REDIS_URL=redis://127.0.0.1:6379',
    );
  const log = createLogger(config.logLevel);
  const channels = channelsFromEnvironment(env, log);
  const redis = ledgerClient(config, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    commandTimeout: config.redisCommandTimeoutMs,
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined); // every failure also rejects the command that met it
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new ReconcileUsageError(`cannot reach Redis at ${describeLedgerRedis(config)}: ${(err as Error).message}`);
  }
  try {
    const keys = await ledgerKeys(redis, config.keyPrefix);
    const scripts = await Scripts.load(redis);
    // With DATABASE_URL: days whose entries left Redis are read from the archive (docs/history.md).
    const archive = await openArchiveForCli({ ...config, ledgerShards: keys.shardCount });
    const report = await reconcileChannelDay(
      { keys, scripts, channels, ...(archive === undefined ? {} : { archive }) },
      args.channel,
      args.date,
      {
        signal: AbortSignal.timeout(RECONCILE_TIMEOUT_MS),
      },
    ).finally(() => archive?.close());
    if (args.json) console.log(JSON.stringify(report));
    else printReport(report);
    return report.differences.length === 0 ? 0 : 1;
  } finally {
    for (const channel of channels.values()) (channel as { close?: () => void }).close?.();
    await redis.quit().catch(() => redis.disconnect());
  }
}

/**
 * Runs `reconcile` with its arguments (without the word "reconcile") and returns the exit code. Expected
 * problems (usage, configuration, Redis or the channel unreachable, no statement yet) are printed, not thrown.
 */
export async function runReconcileCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  try {
    return await reconcile(argv, env);
  } catch (err) {
    if (err instanceof ReconcileUsageError || err instanceof ConfigError || err instanceof DomainError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`error: ${err.message}\n\n${RECONCILE_USAGE}`);
      return 2;
    }
    // Redis or the channel went away mid-way: no verdict either way, which is not "differences found".
    console.error(`error: reconciliation stopped before it could finish: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }
}
