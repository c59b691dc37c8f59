// `cardswitch fee-attention [--json]`: the utility-fee payments whose money is taken and about which the
// provider gave no final word after the recovery sweep asked it MAX_UNKNOWN_FEE_LOOKS times with a growing
// wait (domain/fees.ts). Read-only. Such a fee stays pending and swept (every MAX_FEE_RETRY_WAIT_MS): it is
// delivered, or given back once the provider confirms the cancel, as soon as the provider answers.
// Exit codes: 0 none, 1 some listed, 2 usage, configuration or environment error.
import { parseArgs } from 'node:util';
import { feesNeedingAttention, MAX_FEE_RETRY_WAIT_MS, MAX_UNKNOWN_FEE_LOOKS, type AttentionFee } from '../domain/fees.js';
import { Scripts } from '../ledger/scripts.js';
import { formatYuan } from '../money.js';
import { cliConfig, ledgerKeysOf, runCli, withLedgerConnection, type Env } from './ledger-session.js';

export const FEE_ATTENTION_USAGE = `usage: cardswitch fee-attention [--json]

Lists the utility-fee payments (campus network, electricity) whose money is taken from the card and whose
provider gave no final answer (pay and cancel unanswered or failing) after the recovery sweep asked it
${MAX_UNKNOWN_FEE_LOOKS} times with a growing wait: each needs an operator to check it with the provider by its order id.
Nothing is changed. The sweep keeps asking (every ${MAX_FEE_RETRY_WAIT_MS / 60_000} minutes): the fee is delivered, or its
money given back once the provider confirms the order void, and it leaves this list.

  --json      print the list as one JSON array on stdout

environment: REDIS_URL (required), KEY_PREFIX
exit codes: 0 none, 1 fees listed, 2 usage, configuration or environment error`;

/** Pending fee requests read per shard (the list says when a shard holds more). */
const MAX_PER_SHARD = 10_000;

function line(f: AttentionFee): string {
  const debited = new Date(f.debitedAtMs).toISOString();
  const since = new Date(f.sinceMs).toISOString();
  const next = new Date(f.nextLookMs).toISOString();
  return `${f.kind.padEnd(11)} order ${f.orderId}  card ${f.cardNo}  kiosk ${f.terminalId} #${f.sequence}  ${formatYuan(f.amountFen)} yuan  debited ${debited}  needs an operator since ${since} (${f.unknownLooks} looks)  next look ${next}`;
}

/** Runs `fee-attention` with its arguments and returns the exit code; expected problems are printed. */
export function runFeeAttentionCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  return runCli(FEE_ATTENTION_USAGE, async () => {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help === true) {
      console.log(FEE_ATTENTION_USAGE);
      return 0;
    }
    const config = cliConfig(env, 'fee-attention');
    return withLedgerConnection(config, 'the list', async (redis) => {
      const keys = await ledgerKeysOf(redis, config.keyPrefix);
      const { fees, unread } = await feesNeedingAttention({ keys, scripts: await Scripts.load(redis) }, { maxPerShard: MAX_PER_SHARD });
      if (values.json === true) console.log(JSON.stringify(fees));
      else if (fees.length === 0) console.log('no fee payment needs attention');
      else for (const fee of fees) console.log(line(fee));
      if (fees.length > 0) console.error(`${fees.length} fee payment(s) need an operator: check each with the provider by its order id`);
      if (unread > 0)
        console.error(
          `warning: ${unread} pending fee payment(s) beyond ${MAX_PER_SHARD} per shard were not read; the list may be incomplete`,
        );
      return fees.length === 0 ? 0 : 1;
    });
  });
}
