// `cardswitch fee-attention [--json]`: the utility-fee payments whose money is taken and about which the
// provider gave no final word after the recovery sweep asked it MAX_UNKNOWN_FEE_LOOKS times with a growing
// wait (domain/fees.ts). Read-only. Such a fee stays pending and swept (every MAX_FEE_RETRY_WAIT_MS): it is
// delivered, or given back once the provider confirms the cancel, as soon as the provider answers. The
// daily reconciliation (cli/reconcile.ts) lists them too, on the day each was debited. The list, its
// options and exit codes are runAttentionList's (ledger-session.ts), as recharge-attention's.
// Exit codes: 0 none, 1 some listed, 2 usage, configuration or environment error.
import { feesNeedingAttention, MAX_FEE_RETRY_WAIT_MS, MAX_UNKNOWN_FEE_LOOKS, type AttentionFee } from '../domain/fees.js';
import { formatCampusTime } from '../format.js';
import { formatYuan } from '../money.js';
import { runAttentionList, type Env } from './ledger-session.js';

export const FEE_ATTENTION_USAGE = `usage: cardswitch fee-attention [--json]

Lists the utility-fee payments (campus network, electricity) whose money is taken from the card and whose
provider gave no final answer (pay and cancel unanswered or failing) after the recovery sweep asked it
${MAX_UNKNOWN_FEE_LOOKS} times with a growing wait: each needs an operator to check it with the provider by its order id.
Nothing is changed. The sweep keeps asking (every ${MAX_FEE_RETRY_WAIT_MS / 60_000} minutes): the fee is delivered, or its
money given back once the provider confirms the order void, and it leaves this list. The reconciliation
of the day it was debited (cardswitch reconcile) lists it too, as fee_needs_attention.

  --json      print the list as one JSON array on stdout

environment: REDIS_URL (required), KEY_PREFIX
exit codes: 0 none, 1 fees listed, 2 usage, configuration or environment error`;

/** Pending fee requests read per shard (the list says when a shard holds more). */
const MAX_PER_SHARD = 10_000;

function line(f: AttentionFee): string {
  const debited = formatCampusTime(f.debitedAtMs);
  const since = formatCampusTime(f.sinceMs);
  const next = formatCampusTime(f.nextLookMs);
  return `${f.kind.padEnd(11)} order ${f.orderId}  card ${f.cardNo}  kiosk ${f.terminalId} #${f.sequence}  ${formatYuan(f.amountFen)} yuan  debited ${debited}  needs an operator since ${since} (${f.unknownLooks} looks)  next look ${next}`;
}

/** Runs `fee-attention` with its arguments and returns the exit code; expected problems are printed. */
export function runFeeAttentionCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  return runAttentionList<AttentionFee>(
    {
      command: 'fee-attention',
      usage: FEE_ATTENTION_USAGE,
      byChannel: false,
      find: async (ledger) => {
        const { fees, unread } = await feesNeedingAttention(ledger, { maxPerShard: MAX_PER_SHARD });
        const warning =
          unread > 0
            ? `${unread} pending fee payment(s) beyond ${MAX_PER_SHARD} per shard were not read; the list may be incomplete`
            : undefined;
        return { items: fees, warning };
      },
      line,
      none: 'no fee payment needs attention',
      some: (count) => `${count} fee payment(s) need an operator: check each with the provider by its order id`,
    },
    argv,
    env,
  );
}
