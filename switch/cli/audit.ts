// `cardswitch audit`: proves the ledger sound (every balance equals its journal, money conserved) or
// prints the differences. Read-only: it writes nothing, not even the ledger's meta.
// Exit codes: 0 sound, 1 problems found, 2 usage, configuration or environment error.
import { formatSeconds } from '../format.js';
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { ledgerClient } from '../redis/cluster.js';
import { ConfigError, describeLedgerRedis, ledgerRedisConfigured, loadConfig } from '../config.js';
import { auditLedger, type AuditReport } from '../ledger/audit.js';
import { Keys } from '../ledger/keys.js';
import { openArchiveForCli } from '../history/cli-archive.js';
import { formatYuan } from '../money.js';

export const AUDIT_USAGE = `usage: cardswitch audit [--json] [--max-problems N] [--shard-concurrency N]

Reads every shard's journal and accounts and proves, to the fen, that every balance and small
wallet equals the sum of its journal entries and that the money held equals the money that came in
minus what went out. Safe to run while the switch takes payments (it writes nothing).

  --json                  print the report as one JSON object on stdout
  --max-problems N        list at most N problems (1-10000, default 100); all are counted
  --shard-concurrency N   shards read at once (1-64, default 4)

environment: REDIS_URL (required), KEY_PREFIX, LEDGER_SHARDS (default: the ledger's own)
exit codes: 0 sound, 1 problems found, 2 usage, configuration or environment error`;

const REDIS_CONNECT_TIMEOUT_MS = 5000;
/** The audit runs long scans; a single command should still never take this long. */
const AUDIT_COMMAND_TIMEOUT_MS = 30_000;
/** The audit uses no peppers; an audit job should not have to be handed the terminal or password secrets. */
const UNUSED_PEPPER = 'audit-uses-no-pepper-0000';
const UNUSED_SECRET = 'audit-uses-no-session-or-qr-secret-0000';

type Env = Readonly<Record<string, string | undefined>>;

class AuditUsageError extends Error {
  override readonly name = 'AuditUsageError';
}

function boundedInteger(raw: string | undefined, option: string, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max)
    throw new AuditUsageError(`${option} must be a whole number ${min}-${max}, got "${raw.slice(0, 20)}"`);
  return value;
}

/** The shard count the ledger was created with decides where accounts live; the audit follows it. */
async function ledgerKeys(redis: Redis, prefix: string, env: Env, configuredShards: number): Promise<Keys> {
  const probe = new Keys(prefix, 1);
  const stored = await redis.hget(probe.meta(), 'shards');
  if (stored === null)
    throw new AuditUsageError(`no ledger with KEY_PREFIX "${prefix}" here (${probe.meta()} is missing); check REDIS_URL and KEY_PREFIX`);
  const shards = Number(stored);
  if (!Number.isInteger(shards) || shards < 1)
    throw new AuditUsageError(`${probe.meta()} holds shards=${JSON.stringify(stored)}, not a shard count`);
  const explicit = env['LEDGER_SHARDS'];
  if (explicit !== undefined && explicit !== '' && configuredShards !== shards) {
    throw new AuditUsageError(
      `LEDGER_SHARDS=${configuredShards} but the ledger with prefix "${prefix}" has ${shards} shards; unset LEDGER_SHARDS or set it to ${shards}`,
    );
  }
  return new Keys(prefix, shards);
}

function printReport(report: AuditReport, prefix: string): void {
  const out = report.ok ? console.log : console.error;
  for (const p of report.problems) console.error(`problem: ${p.message}`);
  if (report.problemCount > report.problems.length)
    console.error(`problem: ... and ${report.problemCount - report.problems.length} more not listed`);
  out(`ledger "${prefix}": ${report.shards} shards, ${report.accounts} accounts, ${report.journalEntries} journal entries`);
  out(`  held        ${formatYuan(report.heldFen)} yuan (${report.heldFen} fen)`);
  out(`  net inflow  ${formatYuan(report.netInflowFen)} yuan (${report.netInflowFen} fen)`);
  if (report.openedDuringAudit > 0) out(`  ${report.openedDuringAudit} account(s) opened during the audit were left for the next one`);
  out(
    report.ok
      ? `SOUND: every balance equals its journal entries and money is conserved (${formatSeconds(report.elapsedMs)} s)`
      : `NOT SOUND: ${report.problemCount} problem(s) (${formatSeconds(report.elapsedMs)} s)`,
  );
}

async function audit(argv: readonly string[], env: Env): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      json: { type: 'boolean' },
      'max-problems': { type: 'string' },
      'shard-concurrency': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    console.log(AUDIT_USAGE);
    return 0;
  }
  const maxProblems = boundedInteger(values['max-problems'], '--max-problems', 1, 10_000);
  const shardConcurrency = boundedInteger(values['shard-concurrency'], '--shard-concurrency', 1, 64);
  const config = loadConfig({
    ...env,
    TERMINAL_SECRET_PEPPER: env['TERMINAL_SECRET_PEPPER'] ?? UNUSED_PEPPER,
    PASSWORD_PEPPER: env['PASSWORD_PEPPER'] ?? UNUSED_PEPPER,
    SESSION_SECRET: env['SESSION_SECRET'] ?? UNUSED_SECRET,
    CAMPUS_QR_SECRET: env['CAMPUS_QR_SECRET'] ?? UNUSED_SECRET,
  });
  if (!ledgerRedisConfigured(config))
    throw new AuditUsageError(
      'REDIS_URL (or REDIS_CLUSTER_NODES / REDIS_SENTINELS) is not set: the audit reads an existing ledger, e.g. REDIS_URL=redis://127.0.0.1:6379',
    );
  const redis = ledgerClient(config, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    commandTimeout: Math.max(config.redisCommandTimeoutMs, AUDIT_COMMAND_TIMEOUT_MS),
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined); // every failure also rejects the command that met it
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new AuditUsageError(`cannot reach Redis at ${describeLedgerRedis(config)}: ${(err as Error).message}`);
  }
  try {
    const keys = await ledgerKeys(redis, config.keyPrefix, env, config.ledgerShards);
    // With DATABASE_URL: the archived entries too (docs/history.md).
    const archive = await openArchiveForCli({ ...config, ledgerShards: keys.shardCount });
    const report = await auditLedger(redis, keys, { maxProblems, shardConcurrency }, archive).finally(() => archive?.close());
    if (values.json === true) console.log(JSON.stringify(report));
    else printReport(report, keys.prefix);
    return report.ok ? 0 : 1;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/**
 * Runs `audit` with its arguments (without the word "audit") and returns the exit code. Expected
 * problems (usage, configuration, Redis unreachable) are printed, not thrown.
 */
export async function runAuditCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  try {
    return await audit(argv, env);
  } catch (err) {
    if (err instanceof AuditUsageError || err instanceof ConfigError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`error: ${err.message}\n\n${AUDIT_USAGE}`);
      return 2;
    }
    // Redis went away or timed out mid-audit: no verdict either way, which is not "problems found".
    console.error(`error: the audit stopped before it could finish: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }
}
