// `cardswitch recharge-attention [--channel wechat|alipay] [--json]`: the recharge orders the switch gave
// up asking the channel about (it never gave a final answer: domain/recharge-orders.ts, MAX_UNKNOWN_QUERIES)
// and that now need an operator. Read-only. Such an order is still credited, once, if its notification or
// a later query (the holder's page asking for its state) says paid; reconciliation lists it too.
// Exit codes: 0 none, 1 some listed, 2 usage, configuration or environment error.
import { MAX_UNKNOWN_QUERIES, rechargeOrdersNeedingAttention, type AttentionOrder } from '../domain/recharge-orders.js';
import { formatCampusTime } from '../format.js';
import { formatYuan } from '../money.js';
import { runAttentionList, type Env } from './ledger-session.js';

export const RECHARGE_ATTENTION_USAGE = `usage: cardswitch recharge-attention [--channel wechat|alipay] [--json]

Lists the recharge orders whose channel never gave a final answer (system errors, timeouts, still paying
long after the order expired) after the settlement loop asked it ${MAX_UNKNOWN_QUERIES} times with a growing wait: each
needs an operator to check it with the channel. Nothing is changed; such an order is still credited once
if the channel's notification or a later query says it was paid. Settle one now with
  npm run cli -- recharge-resolve --channel wechat|alipay --order <id> [--close]

  --channel   only this channel's orders
  --json      print the list as one JSON array on stdout

environment: REDIS_URL (required), KEY_PREFIX
exit codes: 0 none, 1 orders listed, 2 usage, configuration or environment error`;

const MAX_PER_SHARD = 1000;

function line(o: AttentionOrder): string {
  const made = formatCampusTime(o.createdAtMs);
  const since = formatCampusTime(o.sinceMs);
  return `${o.channel.padEnd(7)} order ${o.orderId}  card ${o.cardNo}  ${formatYuan(o.amountFen)} yuan  made ${made}  given up ${since} after ${o.unknownQueries} queries`;
}

/** Runs `recharge-attention` with its arguments and returns the exit code; expected problems are printed. */
export function runRechargeAttentionCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  return runAttentionList<AttentionOrder>(
    {
      command: 'recharge-attention',
      usage: RECHARGE_ATTENTION_USAGE,
      find: (ledger, channel) =>
        rechargeOrdersNeedingAttention(ledger, { maxPerShard: MAX_PER_SHARD, ...(channel === undefined ? {} : { channel }) }),
      line,
      none: 'no recharge order needs attention',
      some: (count) =>
        `${count} recharge order(s) need an operator: check each with the channel (npm run cli -- recharge-resolve --channel C --order ID)`,
    },
    argv,
    env,
  );
}
