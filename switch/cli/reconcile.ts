// `cardswitch reconcile --channel wechat|alipay --date YYYY-MM-DD`: the channel's statement of that day
// against the ledger's journal (domain/reconcile.ts). Read-only: it writes nothing to the ledger.
// The channel is reached as the switch reaches it, from ALIPAY_* / WECHATPAY_* (channelsFromEnvironment).
// Exit codes: 0 every transaction matches, 1 differences listed, 2 usage, configuration or environment
// error (Redis or the channel unreachable, no statement of that day yet).
import { parseArgs } from 'node:util';
import { channelsFromEnvironment } from '../channels/index.js';
import { reconcileChannelDay, type ReconcileReport } from '../domain/reconcile.js';
import { campusDayRange } from '../domain/reports.js';
import { DomainError } from '../errors.js';
import { openArchiveForCli } from '../history/cli-archive.js';
import { Scripts } from '../ledger/scripts.js';
import { createLogger } from '../log.js';
import { formatYuan } from '../money.js';
import { cliConfig, CliUsageError, ledgerKeysOf, runCli, withLedgerConnection, type Env } from './ledger-session.js';

export const RECONCILE_USAGE = `usage: cardswitch reconcile --channel wechat|alipay --date YYYY-MM-DD [--json]

Downloads the channel's statement (bill) of one day (Beijing time) and matches every line against the
ledger's journal by the switch's order id (out_trade_no): each channel transaction must be in the
ledger once with the same amount, and each channel credit in the ledger must be on the statement.
Lists every difference: missing_in_ledger, missing_at_channel, amount_differs, duplicated; and what
needs an operator: needs_attention (a recharge order of the day the channel never answered for good, as
recharge-attention lists) and fee_needs_attention (a utility fee debited that day whose provider never
answered for good, as fee-attention lists; on no channel's statement, so shown for every channel).

  --channel   wechat or alipay (configured by WECHATPAY_* / ALIPAY_*, as for the switch)
  --date      the statement's day, YYYY-MM-DD (a day's statement is ready the next morning)
  --json      print the report as one JSON object on stdout

environment: REDIS_URL (required), KEY_PREFIX, LEDGER_SHARDS, and the channel's WECHATPAY_* or ALIPAY_*
exit codes: 0 all matched, 1 differences found, 2 usage, configuration or environment error`;

/** The statement download and the journal scan together; a stuck channel must not hold the job forever. */
const RECONCILE_TIMEOUT_MS = 10 * 60 * 1000;

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
    console.error(`${d.kind.padEnd(19)} order ${d.outTradeNo}  ${channelSide} / ${ledgerSide} yuan  ${ids.join(', ')}`);
    console.error(`${''.padEnd(19)} ${d.message}`);
  }
  const orders = report.differences.filter((d) => d.kind === 'needs_attention').length;
  if (orders > 0)
    console.error(`${orders} recharge order(s) need an operator: check each with the channel (npm run cli -- recharge-attention)`);
  const fees = report.differences.filter((d) => d.kind === 'fee_needs_attention').length;
  if (fees > 0)
    console.error(`${fees} fee payment(s) need an operator: check each with the provider by its order id (npm run cli -- fee-attention)`);
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
  if (values.channel === undefined) throw new CliUsageError('reconcile needs --channel wechat or --channel alipay');
  if (values.date === undefined) throw new CliUsageError('reconcile needs --date YYYY-MM-DD (the statement day, Beijing time)');
  // The date is checked before anything is reached, so its mistake is the one said (not the channel's setup).
  try {
    campusDayRange(values.date);
  } catch (err) {
    throw new CliUsageError(`reconcile --date: ${(err as Error).message}`);
  }
  return { channel: values.channel, date: values.date, json: values.json === true };
}

async function reconcile(argv: readonly string[], env: Env): Promise<number> {
  const args = parse(argv);
  if (args === 'help') {
    console.log(RECONCILE_USAGE);
    return 0;
  }
  const config = cliConfig(env, 'reconcile');
  const log = createLogger(config.logLevel);
  const channels = channelsFromEnvironment(env, log);
  try {
    return await withLedgerConnection(config, 'reconciliation', async (redis) => {
      const keys = await ledgerKeysOf(redis, config.keyPrefix);
      const scripts = await Scripts.load(redis);
      // With DATABASE_URL: days whose entries left Redis are read from the archive (docs/history.md).
      const archive = await openArchiveForCli({ ...config, ledgerShards: keys.shardCount });
      const report = await reconcileChannelDay(
        { keys, scripts, channels, ...(archive === undefined ? {} : { archive }) },
        args.channel,
        args.date,
        { signal: AbortSignal.timeout(RECONCILE_TIMEOUT_MS) },
      ).finally(() => archive?.close());
      if (args.json) console.log(JSON.stringify(report));
      else printReport(report);
      return report.differences.length === 0 ? 0 : 1;
    });
  } finally {
    for (const channel of channels.values()) (channel as { close?: () => void }).close?.();
  }
}

/**
 * Runs `reconcile` with its arguments (without the word "reconcile") and returns the exit code. Expected
 * problems (usage, configuration, Redis or the channel unreachable, no statement yet) are printed, not thrown.
 */
export async function runReconcileCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  // Redis or the channel going away mid-way gives no verdict either way, which is not "differences found".
  return runCli(RECONCILE_USAGE, () => reconcile(argv, env), {
    expected: (err) => err instanceof DomainError,
    stoppedPrefix: 'reconciliation stopped before it could finish: ',
  });
}
