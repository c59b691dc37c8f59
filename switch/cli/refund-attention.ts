// `cardswitch refund-attention [--channel wechat|alipay] [--json]`: the merchant refunds of code payments
// the switch gave up asking the channel about (it never gave a final answer: domain/channel-refund.ts,
// MAX_UNKNOWN_REFUND_ANSWERS) and that now need an operator. Read-only. Such a refund is still settled,
// once, when the POS sends the same refund again and the channel then answers; it leaves the list then.
// Exit codes: 0 none, 1 some listed, 2 usage, configuration or environment error.
import { MAX_UNKNOWN_REFUND_ANSWERS, refundsNeedingAttention, type AttentionRefund } from '../domain/channel-refund.js';
import { formatCampusTime } from '../format.js';
import { formatYuan } from '../money.js';
import { runAttentionList, type Env } from './ledger-session.js';

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
  const since = formatCampusTime(r.sinceMs);
  const what = r.recordKept
    ? `${formatYuan(r.amountFen)} yuan of payment ${r.outTradeNo}  made ${formatCampusTime(r.createdAtMs)}`
    : 'its record expired: ask the channel';
  return `${(r.channel ?? '?').padEnd(7)} refund ${r.outRefundNo}  card ${r.cardNo}  POS ${r.terminalId} #${r.sequence}  ${what}  given up ${since} after ${r.unknownAnswers} answers`;
}

/** Runs `refund-attention` with its arguments and returns the exit code; expected problems are printed. */
export function runRefundAttentionCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  return runAttentionList<AttentionRefund>(
    {
      command: 'refund-attention',
      usage: REFUND_ATTENTION_USAGE,
      find: (ledger, channel) => refundsNeedingAttention(ledger, { maxCount: MAX_LISTED, ...(channel === undefined ? {} : { channel }) }),
      line,
      none: 'no refund needs attention',
      some: (count) => `${count} refund(s) need an operator: check each with the channel by its refund number`,
    },
    argv,
    env,
  );
}
