// `cardswitch refund-attention [--channel wechat|alipay] [--json]`: the merchant refunds of code payments
// the switch gave up asking the channel about (it never gave a final answer: domain/channel-refund.ts,
// MAX_UNKNOWN_REFUND_ANSWERS) and that now need an operator. Read-only. Such a refund is still settled,
// once, when the POS sends the same refund again and the channel then answers; it leaves the list then.
// Exit codes: 0 none, 1 some listed, 2 usage, configuration or environment error.
import { parseArgs } from 'node:util';
import { MAX_UNKNOWN_REFUND_ANSWERS, refundsNeedingAttention, type AttentionRefund } from '../domain/channel-refund.js';
import { Scripts } from '../ledger/scripts.js';
import { formatYuan } from '../money.js';
import { cliConfig, CliUsageError, ledgerKeysOf, runCli, withLedgerConnection, type Env } from './ledger-session.js';

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

const MAX_LISTED = 10_000;

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
  if (channel !== undefined && channel !== 'wechat' && channel !== 'alipay') throw new CliUsageError('--channel must be wechat or alipay');
  const config = cliConfig(env, 'refund-attention');
  return withLedgerConnection(config, 'the list', async (redis) => {
    const keys = await ledgerKeysOf(redis, config.keyPrefix);
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
  });
}

/** Runs `refund-attention` with its arguments and returns the exit code; expected problems are printed. */
export async function runRefundAttentionCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  return runCli(REFUND_ATTENTION_USAGE, () => list(argv, env));
}
