// A card's own limits were three account fields (lnp1, lnpd, ldl) until issue 15 made them one, `lim`,
// which set-limits.lua writes and authorize.lua reads: a field the account lacks costs every payment a
// scan of the account (loadtest/RESULTS.md, fifteenth session). A ledger that has run set-limits before
// may still hold the three; the switch folds them into `lim` when it starts (app.ts), once per ledger:
// the ledger's meta remembers that the fold is done, so later starts do not SCAN the accounts again.
//
// A ledger restored from a backup made before the fold has the old meta too, and is folded at the next
// start. Switches of an older version must not keep running beside a newer one: their set-limits would
// write the old fields, which authorize.lua no longer reads (every switch of a deployment is upgraded
// together; the payment libraries they load already require that: ledger/scripts.ts pruneLibraries).
import type { Cluster, Redis } from 'ioredis';
import { scanAllMasters } from '../redis/cluster.js';
import { decodeAnswer, FOLD_LIMITS_ANSWERS, numericReply } from './answers.js';
import type { Keys } from './keys.js';
import type { Scripts } from './scripts.js';

/** The meta field that says the fold is done, and its value. */
export const LIMITS_FOLD_FIELD = 'limits';
export const LIMITS_FOLD_DONE = 'lim';
const SCAN_COUNT = 1000;

export interface LimitsFoldReport {
  /** False when the ledger's meta said the fold was done already (nothing was read). */
  readonly ran: boolean;
  readonly accounts: number;
  /** Card numbers whose old limit fields were folded into `lim`. */
  readonly folded: readonly string[];
}

/**
 * Folds every account's old limit fields into `lim` unless the ledger's meta says it was done. An
 * account whose old fields are not numbers stops the fold with the script's INVARIANT error (the
 * operator sets that card's limits again, then starts the switch again); the meta is written only
 * when every account was folded.
 */
export async function foldLegacyCardLimits(redis: Redis | Cluster, keys: Keys, scripts: Scripts): Promise<LimitsFoldReport> {
  if ((await redis.hget(keys.meta(), LIMITS_FOLD_FIELD)) === LIMITS_FOLD_DONE) return { ran: false, accounts: 0, folded: [] };
  const seen = new Set<string>();
  const folded: string[] = [];
  const marker = ':acct:';
  for await (const batch of scanAllMasters(redis, keys.allAccountsPattern(), SCAN_COUNT)) {
    const fresh = batch.filter((key) => !seen.has(key));
    for (const key of fresh) seen.add(key);
    const answers = await Promise.all(
      fresh.map(async (key) =>
        decodeAnswer('fold-limits', FOLD_LIMITS_ANSWERS, numericReply('fold-limits', await scripts.run('fold-limits', [key], []))),
      ),
    );
    answers.forEach((answer, i) => {
      const key = fresh[i] as string;
      if (answer === 'folded') folded.push(key.slice(key.indexOf(marker, keys.prefix.length) + marker.length));
    });
  }
  await redis.hset(keys.meta(), LIMITS_FOLD_FIELD, LIMITS_FOLD_DONE);
  return { ran: true, accounts: seen.size, folded };
}
