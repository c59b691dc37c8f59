// Operator command line: `npm run cli -- <command>` or `npx cardswitch <command>` (bin/cardswitch.mjs).
// Exit codes: 0 done, 1 the data had problems and nothing was imported, 2 usage, configuration or
// environment error (Redis unreachable, unreadable file).
import { formatSeconds } from '../format.js';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { ledgerClient } from '../redis/cluster.js';
import { ConfigError, describeLedgerRedis, ledgerRedisConfigured, loadConfig, type Config } from '../config.js';
import { TERMINAL_KINDS, TerminalRegistry } from '../domain/terminals.js';
import { Keys } from '../ledger/keys.js';
import { Ledger } from '../ledger/ledger.js';
import { Scripts } from '../ledger/scripts.js';
import { TerminalRecords } from '../ledger/terminals.js';
import { checkShardCount, ShardCountMismatchError } from '../ledger/meta.js';
import { appendOperatorLog } from '../ledger/oplog.js';
import { applyLocalDefaults } from '../dev-env.js';
import { runAuditCommand } from './audit.js';
import { runFeeAttentionCommand } from './fee-attention.js';
import { cliOperator, CliUsageError } from './ledger-session.js';
import { runRechargeAttentionCommand } from './recharge-attention.js';
import { runRechargeResolveCommand } from './recharge-resolve.js';
import { runRefundAttentionCommand } from './refund-attention.js';
import { runReconcileCommand } from './reconcile.js';
import { formatYuan } from '../money.js';
import { DEFAULT_CSV_LIMITS, NoDataRowsError } from '../data/csv.js';
import { DEFAULT_DEMO_CARDHOLDERS, DEFAULT_DEMO_SEED, generateDemoCampus, type DemoDoc, demoDoc } from '../data/demo.js';
import {
  CARDHOLDER_HEADER,
  ImportInterruptedError,
  TERMINAL_HEADER,
  importCardholders,
  importTerminals,
  parseCardholdersCsv,
  parseTerminalsCsv,
  type ImportReport,
  type RowError,
} from '../data/import.js';

const USAGE = `usage: cardswitch <command> [options]

commands:
  import-cardholders <file.csv> [--operator NAME]
                                  import cardholders (all rows or none)
      header: ${CARDHOLDER_HEADER.join(',')}
  import-terminals <file.csv> [--operator NAME]
                                  register terminals (all rows or none)
      header: ${TERMINAL_HEADER.join(',')}   (kind: ${TERMINAL_KINDS.join(' | ')})
  demo-campus --out <dir> [--cardholders N] [--seed S]
                                  write a demo campus as cardholders.csv and terminals.csv
  load-demo [--cardholders N] [--seed S] [--operator NAME]
                                  generate a demo campus and import it straight into Redis
  audit [--json] [--max-problems N]
                                  prove every balance equals its journal and money is conserved
                                  (exit 0 sound, 1 with the differences)
  reconcile --channel wechat|alipay --date YYYY-MM-DD [--json]
                                  match the channel's statement of that day against the journal, and
                                  list the day's recharge orders and fee payments needing an operator
                                  (exit 0 matched, 1 with the differences listed)
  recharge-attention [--channel wechat|alipay] [--json]
                                  recharge orders the channel never gave a final answer about,
                                  for an operator to check (exit 0 none, 1 listed)
  recharge-resolve --channel wechat|alipay --order <id> [--close] [--operator NAME] [--json]
                                  resolve one such order (or a pending one): ask the channel now and
                                  credit it once if paid, or close it if closed; --close closes it
                                  at the channel first (exit 0 credited or closed, 1 no final answer:
                                  nothing changed)
  refund-attention [--channel wechat|alipay] [--json]
                                  refunds of code payments the channel never gave a final answer
                                  about, for an operator to check (exit 0 none, 1 listed)
  fee-attention [--json]
                                  fee payments (money taken) the provider never gave a final answer
                                  about, for an operator to check (exit 0 none, 1 listed)
  help                            show this text

environment: REDIS_URL (required), KEY_PREFIX, LEDGER_SHARDS, and TERMINAL_SECRET_PEPPER for import-terminals
  and load-demo (the switch's own: terminal secrets are stored hashed with it)
operator log: imports and recharge-resolve are logged (stream <KEY_PREFIX>:oplog) as done by "cli:NAME";
  --operator NAME defaults to the login name of the user running the command
demo defaults: --cardholders ${DEFAULT_DEMO_CARDHOLDERS} --seed ${DEFAULT_DEMO_SEED}
exit codes: 0 done, 1 bad rows (nothing imported), 2 usage, configuration or environment error`;

/** Bytes; a file this large is a mistake (200,000 rows of cardholders are about 25 MB). */
const MAX_FILE_BYTES = DEFAULT_CSV_LIMITS.maxChars;
const REDIS_CONNECT_TIMEOUT_MS = 5000;
/** A file that conflicts entirely would print one line per row; the first ones are enough to act on. */
const MAX_PRINTED_ERRORS = 1000;

/** A problem the operator must fix before running again; printed without a stack trace. */
class CliError extends Error {
  override readonly name = 'CliError';
}

interface CliLedger {
  readonly redis: Redis;
  readonly ledger: Ledger;
  readonly registry: TerminalRegistry;
}

/** The same entry as AdminService's imports (domain/card-admin.ts), so both read alike in the log. */
async function logImport(
  l: CliLedger,
  action: 'import-cardholders' | 'import-terminals',
  operator: string,
  report: ImportReport,
): Promise<void> {
  const counts = { imported: String(report.importedCount), problems: String(report.errors.length) };
  try {
    await appendOperatorLog({ keys: l.ledger.keys, scripts: l.ledger.scripts, now: () => Date.now() }, action, operator, counts);
  } catch (err) {
    // The rows are written by now: say so, or the operator would run the file again.
    throw new CliError(
      `${action} wrote ${counts.imported} row(s) (${counts.problems} problem(s)) but could not add it to the operator log: ${(err as Error).message}; record it there by hand`,
    );
  }
}

/** Secrets of the switch an import never uses: an operator's job should not have to be handed them. */
const SECRETS_IMPORTS_DO_NOT_USE = ['PASSWORD_PEPPER', 'SESSION_SECRET', 'CAMPUS_QR_SECRET'] as const;

/**
 * The configuration for `command`. TERMINAL_SECRET_PEPPER is required where terminals are registered (their
 * secrets are stored hashed with it, so it must be the switch's own); the other secrets are not used here
 * and placeholders stand in for any that are not set.
 */
function cliConfig(command: string, registersTerminals: boolean): Config {
  const note = applyLocalDefaults(process.env);
  if (note !== undefined) console.error(note);
  const env: Record<string, string | undefined> = { ...process.env };
  const unused = `${command}-uses-no-secret-of-the-switch-0000000000`;
  const notNeeded = registersTerminals ? SECRETS_IMPORTS_DO_NOT_USE : [...SECRETS_IMPORTS_DO_NOT_USE, 'TERMINAL_SECRET_PEPPER'];
  for (const name of notNeeded) if ((env[name] ?? '') === '') env[name] = unused;
  const config = loadConfig(env);
  if (!ledgerRedisConfigured(config)) {
    throw new CliError(
      'REDIS_URL (or REDIS_CLUSTER_NODES / REDIS_SENTINELS) is not set: the CLI imports into an existing Redis, e.g. REDIS_URL=redis://127.0.0.1:6379',
    );
  }
  return config;
}

/** Reads a UTF-8 file of bounded size; Excel's default GBK export is caught here with a hint. */
async function readCsvFile(path: string): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new CliError(`cannot open ${path}: ${(err as Error).message}`);
  }
  try {
    const { size } = await handle.stat();
    if (size > MAX_FILE_BYTES)
      throw new CliError(
        `${path} is ${size} bytes; at most ${MAX_FILE_BYTES} are accepted, split the file / 文件有${size}字节，最多接受${MAX_FILE_BYTES}字节，请拆分文件`,
      );
    const bytes = await handle.readFile();
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new CliError(
        `${path} is not UTF-8 text (a GBK file, as Excel saves "CSV (comma delimited)" on a Chinese Windows?); in Excel choose "CSV UTF-8 (comma delimited)" when saving / ` +
          '文件不是 UTF-8 编码（可能是 GBK）：请在 Excel 中另存为"CSV UTF-8（逗号分隔）"后重新导入',
      );
    }
  } finally {
    await handle.close();
  }
}

async function withLedger<T>(config: Config, fn: (l: CliLedger) => Promise<T>): Promise<T> {
  const redis = ledgerClient(config, {
    lazyConnect: true,
    enableAutoPipelining: true,
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
    throw new CliError(`cannot reach Redis at ${describeLedgerRedis(config)}: ${(err as Error).message}`);
  }
  try {
    const keys = new Keys(config.keyPrefix, config.ledgerShards);
    try {
      await checkShardCount(redis, keys);
    } catch (err) {
      if (err instanceof ShardCountMismatchError) throw new CliError(err.message);
      throw err;
    }
    const ledger = new Ledger(keys, await Scripts.load(redis), config.requestTtlSec);
    const registry = new TerminalRegistry(new TerminalRecords(ledger), config.terminalPepper, 0);
    return await fn({ redis, ledger, registry });
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

function printErrors(source: string, errors: readonly RowError[]): void {
  for (const e of errors.slice(0, MAX_PRINTED_ERRORS)) console.error(`${source}:${e.line}: ${e.field}: ${e.message} / ${e.zh}`);
  if (errors.length > MAX_PRINTED_ERRORS) console.error(`${source}: ... and ${errors.length - MAX_PRINTED_ERRORS} more problems not shown`);
}

/** Returns the exit code for a finished (or refused) import. */
function reportImport(source: string, what: string, report: ImportReport): number {
  if (report.errors.length > 0) {
    printErrors(source, report.errors);
    const outcome = report.importedCount === 0 ? 'imported nothing' : `imported ${report.importedCount} ${what} before the problems above`;
    console.error(`${source}: ${report.errors.length} problem(s); ${outcome}`);
    return 1;
  }
  const opening = what === 'cardholders' ? ` with opening balances of ${formatYuan(report.openingTotalFen)} yuan` : '';
  console.log(`${source}: imported ${report.importedCount} ${what}${opening} in ${formatSeconds(report.elapsedMs)} s`);
  return 0;
}

function refuse(source: string, errors: readonly RowError[]): number {
  printErrors(source, errors);
  console.error(`${source}: ${errors.length} problem(s); imported nothing / 共${errors.length}个问题，未导入任何内容`);
  return 1;
}

// A file that does not parse touches nothing and is not logged, as with AdminService.
async function importCardholdersCommand(file: string, operator: string): Promise<number> {
  const config = cliConfig('import-cardholders', false);
  const parsed = parseCardholdersCsv(await readCsvFile(file));
  if (parsed.errors.length > 0) return refuse(file, parsed.errors);
  const report = await withLedger(config, async (l) => {
    const done = await importCardholders({ ledger: l.ledger }, parsed.rows);
    await logImport(l, 'import-cardholders', operator, done);
    return done;
  });
  return reportImport(file, 'cardholders', report);
}

async function importTerminalsCommand(file: string, operator: string): Promise<number> {
  const config = cliConfig('import-terminals', true);
  const parsed = parseTerminalsCsv(await readCsvFile(file));
  if (parsed.errors.length > 0) return refuse(file, parsed.errors);
  const report = await withLedger(config, async (l) => {
    const done = await importTerminals(l.registry, parsed.rows);
    await logImport(l, 'import-terminals', operator, done);
    return done;
  });
  return reportImport(file, 'terminals', report);
}

function cardholderCount(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_DEMO_CARDHOLDERS;
  if (!/^\d{1,6}$/.test(raw)) throw new CliError(`--cardholders "${raw}" must be a whole number`);
  return Number(raw);
}

function demoCampus(options: DemoArgs): ReturnType<typeof generateDemoCampus> {
  try {
    return generateDemoCampus({ cardholders: cardholderCount(options.cardholders), seed: options.seed ?? DEFAULT_DEMO_SEED });
  } catch (err) {
    if (err instanceof RangeError) throw new CliError(err.message);
    throw err;
  }
}

function printDemoDoc(doc: DemoDoc): void {
  console.log(`demo cards (seed ${doc.seed}; DEMO ONLY: secrets and initial passwords follow from the seed):`);
  for (const c of doc.cards) {
    console.log(
      `  ${c.label}: card ${c.cardNo}, serial ${c.cardSerial}, number ${c.personNumber}, ${c.name}, initial password ${c.initialPassword}`,
    );
  }
  for (const t of [doc.canteenPos, doc.settlementPos, doc.waterController, doc.kiosk]) {
    console.log(`  terminal ${t.terminalId} (${t.location}) secret ${t.secret}`);
  }
}

interface DemoArgs {
  readonly out?: string | undefined;
  readonly cardholders?: string | undefined;
  readonly seed?: string | undefined;
}

async function demoCampusCommand(options: DemoArgs): Promise<number> {
  if (options.out === undefined) throw new CliError('demo-campus needs --out <dir>');
  const campus = demoCampus(options);
  const cardholdersPath = join(options.out, 'cardholders.csv');
  const terminalsPath = join(options.out, 'terminals.csv');
  try {
    await mkdir(options.out, { recursive: true });
    await writeFile(cardholdersPath, campus.cardholdersCsv, 'utf8');
    await writeFile(terminalsPath, campus.terminalsCsv, 'utf8');
  } catch (err) {
    throw new CliError(`cannot write the demo campus into --out ${options.out}: ${(err as Error).message}; name a directory you can write`);
  }
  console.log(
    `wrote ${campus.cardholders.length} cardholders to ${cardholdersPath} and ${campus.terminals.length} terminals to ${terminalsPath}`,
  );
  printDemoDoc(demoDoc(campus.seed));
  return 0;
}

async function loadDemoCommand(options: DemoArgs, operator: string): Promise<number> {
  const config = cliConfig('load-demo', true);
  const campus = demoCampus(options);
  const terminals = parseTerminalsCsv(campus.terminalsCsv);
  const cardholders = parseCardholdersCsv(campus.cardholdersCsv);
  if (terminals.errors.length > 0) return refuse('demo terminals.csv', terminals.errors);
  if (cardholders.errors.length > 0) return refuse('demo cardholders.csv', cardholders.errors);
  return withLedger(config, async (l) => {
    const terminalReport = await importTerminals(l.registry, terminals.rows);
    await logImport(l, 'import-terminals', operator, terminalReport);
    const terminalCode = reportImport('demo terminals.csv', 'terminals', terminalReport);
    if (terminalCode !== 0) return terminalCode;
    const cardholderReport = await importCardholders({ ledger: l.ledger }, cardholders.rows);
    await logImport(l, 'import-cardholders', operator, cardholderReport);
    const code = reportImport('demo cardholders.csv', 'cardholders', cardholderReport);
    if (code === 0) printDemoDoc(demoDoc(campus.seed));
    return code;
  });
}

async function run(argv: readonly string[]): Promise<number> {
  // The audit has flags of its own (--json, --max-problems), parsed by its module.
  if (argv[0] === 'audit') {
    const note = applyLocalDefaults(process.env);
    if (note !== undefined) console.error(note);
    return runAuditCommand(argv.slice(1));
  }
  // Reconciliation reads the channel's settings (WECHATPAY_* / ALIPAY_*) and flags of its own.
  if (argv[0] === 'reconcile') {
    const note = applyLocalDefaults(process.env);
    if (note !== undefined) console.error(note);
    return runReconcileCommand(argv.slice(1));
  }
  if (argv[0] === 'recharge-attention') {
    const note = applyLocalDefaults(process.env);
    if (note !== undefined) console.error(note);
    return runRechargeAttentionCommand(argv.slice(1));
  }
  // Asks the channel (WECHATPAY_* / ALIPAY_*, as reconcile does) and settles one order.
  if (argv[0] === 'recharge-resolve') {
    const note = applyLocalDefaults(process.env);
    if (note !== undefined) console.error(note);
    return runRechargeResolveCommand(argv.slice(1));
  }
  if (argv[0] === 'refund-attention') {
    const note = applyLocalDefaults(process.env);
    if (note !== undefined) console.error(note);
    return runRefundAttentionCommand(argv.slice(1));
  }
  if (argv[0] === 'fee-attention') {
    const note = applyLocalDefaults(process.env);
    if (note !== undefined) console.error(note);
    return runFeeAttentionCommand(argv.slice(1));
  }
  const { positionals, values } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      out: { type: 'string' },
      cardholders: { type: 'string' },
      seed: { type: 'string' },
      operator: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (command === undefined || command === 'help' || values.help === true) {
    console.log(USAGE);
    return command === undefined && values.help !== true ? 2 : 0;
  }
  const file = (): string => {
    if (rest.length !== 1 || rest[0] === undefined) throw new CliError(`${command} needs exactly one CSV file`);
    return rest[0];
  };
  switch (command) {
    case 'import-cardholders':
      return importCardholdersCommand(file(), cliOperator(values.operator));
    case 'import-terminals':
      return importTerminalsCommand(file(), cliOperator(values.operator));
    case 'demo-campus':
      return demoCampusCommand(values);
    case 'load-demo':
      return loadDemoCommand(values, cliOperator(values.operator));
    default:
      throw new CliError(`unknown command "${command}"; run "cardswitch help"`);
  }
}

/** Runs one command and returns its exit code; expected problems are printed, not thrown. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (err) {
    if (err instanceof CliError || err instanceof CliUsageError || err instanceof ConfigError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    if (err instanceof NoDataRowsError) {
      console.error(`error: ${err.message}; imported nothing / ${err.zh ?? ''}，未导入任何内容`);
      return 1;
    }
    if (err instanceof ImportInterruptedError) {
      console.error(`error: ${err.message} / ${err.zh}`);
      return 1;
    }
    if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`error: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}

const invokedDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) process.exitCode = await main(process.argv.slice(2));
