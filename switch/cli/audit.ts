// `cardswitch audit`: proves the ledger sound (every balance equals its journal, money conserved) or
// prints the differences. Read-only: it writes nothing, not even the ledger's meta.
// Exit codes: 0 sound, 1 problems found, 2 usage, configuration or environment error.
import { formatSeconds } from '../format.js';
import { parseArgs } from 'node:util';
import { auditLedger, type AuditReport } from '../ledger/audit.js';
import { openArchiveForCli } from '../history/cli-archive.js';
import { formatYuan } from '../money.js';
import { cliConfig, CliUsageError, ledgerKeysOf, runCli, withLedgerConnection, type Env } from './ledger-session.js';

export const AUDIT_USAGE = `usage: cardswitch audit [--json] [--max-problems N] [--shard-concurrency N]

Reads every shard's journal and accounts and proves, to the fen, that every balance and small
wallet equals the sum of its journal entries and that the money held equals the money that came in
minus what went out. Safe to run while the switch takes payments (it writes nothing).

  --json                  print the report as one JSON object on stdout
  --max-problems N        list at most N problems (1-10000, default 100); all are counted
  --shard-concurrency N   shards read at once (1-64, default 4)

environment: REDIS_URL (required), KEY_PREFIX, LEDGER_SHARDS (default: the ledger's own)
exit codes: 0 sound, 1 problems found, 2 usage, configuration or environment error`;

/** The audit runs long scans; a single command should still never take this long. */
const AUDIT_COMMAND_TIMEOUT_MS = 30_000;

function boundedInteger(raw: string | undefined, option: string, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max)
    throw new CliUsageError(`${option} must be a whole number ${min}-${max}, got "${raw.slice(0, 20)}"`);
  return value;
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
  const config = cliConfig(env, 'audit');
  const explicitShards = env['LEDGER_SHARDS'] !== undefined && env['LEDGER_SHARDS'] !== '' ? config.ledgerShards : undefined;
  return withLedgerConnection(
    config,
    'the audit',
    async (redis) => {
      // The shard count the ledger was created with decides where accounts live; the audit follows it.
      const keys = await ledgerKeysOf(redis, config.keyPrefix, explicitShards);
      // With DATABASE_URL: the archived entries too (docs/history.md).
      const archive = await openArchiveForCli({ ...config, ledgerShards: keys.shardCount });
      const report = await auditLedger(redis, keys, { maxProblems, shardConcurrency }, archive).finally(() => archive?.close());
      if (values.json === true) console.log(JSON.stringify(report));
      else printReport(report, keys.prefix);
      return report.ok ? 0 : 1;
    },
    Math.max(config.redisCommandTimeoutMs, AUDIT_COMMAND_TIMEOUT_MS),
  );
}

/**
 * Runs `audit` with its arguments (without the word "audit") and returns the exit code. Expected
 * problems (usage, configuration, Redis unreachable) are printed, not thrown.
 */
export async function runAuditCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  // Redis going away or timing out mid-audit gives no verdict either way, which is not "problems found".
  return runCli(AUDIT_USAGE, () => audit(argv, env), { stoppedPrefix: 'the audit stopped before it could finish: ' });
}
