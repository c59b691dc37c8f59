// The pending fee requests, for the recovery sweep (domain/fees.ts recoverPendingFees): each shard's
// index of requests whose money is taken and whose provider call is not settled (Keys.feePending,
// scored by when to look next: the debit time, then what fee-requery.lua set; members from
// feePendingMember), and the request record each entry names (Keys.request, written by fee-debit.lua).
// Settling is fee-complete.lua / fee-giveback.lua; a look without a final word is fee-requery.lua.
import type { LedgerAccess } from './access.js';
import { decodeAnswer, FEE_REQUERY_ANSWERS, type AnswerOf } from './answers.js';
import { readRequestFields } from './request-records.js';

/** One index entry and the fee fields of the record it names ('' for a field the record lacks). */
export interface PendingFeeRecord {
  /** The shard whose pending index holds the entry. */
  readonly shard: number;
  /** The index member as stored ("<terminal>|<sequence>|<card>"), for the operator's log. */
  readonly member: string;
  /** The request record's key, for the same log. */
  readonly recordKey: string;
  readonly cardNo: string;
  readonly terminalId: string;
  readonly sequence: number;
  /** `P` while pending. */
  readonly state: string;
  readonly fingerprint: string;
  readonly amountText: string;
  /** The request's party: "u:<utility kind>". */
  readonly party: string;
  readonly targetJson: string;
  readonly balanceText: string;
  readonly transactionId: string;
  readonly debitedAtText: string;
  /** How many sweeps got no final word from the provider (fee-requery.lua `funk`); 0 when none. */
  readonly unknownLooks: number;
  /** When it came to need an operator (`fatt`), '' when it does not. */
  readonly attentionSinceText: string;
  /** The index entry's score: when the sweep looks at it next (ms). */
  readonly nextLookMs: number;
}

const RECORD_FIELDS = ['pfp', 'pst', 'amt', 'up', 'utg', 'dbal', 'dtx', 'dts', 'funk', 'fatt'] as const;

/**
 * The pending requests due at or before `cutoffMs` (their score: the debit time, or the next look
 * fee-requery.lua set), shard by shard, at most `maxPerShard` of each: one ZRANGEBYSCORE per shard,
 * then one HMGET per entry as the caller takes it (the caller settles each before the next is read).
 */
export async function* pendingFeesDebitedBy(ledger: LedgerAccess, cutoffMs: number, maxPerShard: number): AsyncGenerator<PendingFeeRecord> {
  const { keys } = ledger;
  const redis = ledger.scripts.client;
  for (let shard = 0; shard < keys.shardCount; shard++) {
    const flat = await redis.zrangebyscore(keys.feePending(shard), '-inf', cutoffMs, 'WITHSCORES', 'LIMIT', 0, maxPerShard);
    for (let i = 0; i + 1 < flat.length; i += 2) yield readPendingFee(ledger, shard, flat[i] ?? '', Number(flat[i + 1]));
  }
}

/**
 * Every shard's pending requests, whenever due, at most `maxPerShard` of each (the first by score), for
 * the operator's list of those that need attention; `more` counts the entries of the shard left unread.
 */
export async function* allPendingFees(
  ledger: LedgerAccess,
  maxPerShard: number,
): AsyncGenerator<{ readonly record: PendingFeeRecord } | { readonly shard: number; readonly more: number }> {
  const { keys } = ledger;
  const redis = ledger.scripts.client;
  for (let shard = 0; shard < keys.shardCount; shard++) {
    const flat = await redis.zrange(keys.feePending(shard), 0, maxPerShard - 1, 'WITHSCORES');
    for (let i = 0; i + 1 < flat.length; i += 2) yield { record: await readPendingFee(ledger, shard, flat[i] ?? '', Number(flat[i + 1])) };
    if (flat.length / 2 >= maxPerShard) {
      const more = (await redis.zcard(keys.feePending(shard))) - maxPerShard;
      if (more > 0) yield { shard, more };
    }
  }
}

async function readPendingFee(ledger: LedgerAccess, shard: number, member: string, nextLookMs: number): Promise<PendingFeeRecord> {
  const [terminalId = '', sequenceText = '', cardNo = ''] = member.split('|');
  const sequence = Number(sequenceText);
  const recordKey = ledger.keys.request(cardNo, terminalId, sequence);
  const [fingerprint, state, amount, party, targetJson, balance, txnId, debitedAt, unknownLooks, attentionSince] = await readRequestFields(
    ledger.scripts.client,
    recordKey,
    RECORD_FIELDS,
  );
  return {
    shard,
    member,
    recordKey,
    cardNo,
    terminalId,
    sequence,
    state: state ?? '',
    fingerprint: fingerprint ?? '',
    amountText: amount ?? '',
    party: party ?? '',
    targetJson: targetJson ?? '',
    balanceText: balance ?? '',
    transactionId: txnId ?? '',
    debitedAtText: debitedAt ?? '',
    unknownLooks: Number(unknownLooks ?? '0'),
    attentionSinceText: attentionSince ?? '',
    nextLookMs,
  };
}

export type FeeRequeryCode = AnswerOf<typeof FEE_REQUERY_ANSWERS>;

/**
 * The sweep got no final word about a pending fee: its index entry moves to `nextScoreMs` and its looks
 * are counted; from `maxUnknown` looks on it needs an operator. One step on the fee's own keys, and it
 * never puts back an entry that is gone (the fee completed or given back meanwhile); see fee-requery.lua.
 */
export async function requeryPendingFee(
  ledger: LedgerAccess,
  record: Pick<PendingFeeRecord, 'shard' | 'member' | 'recordKey'>,
  fingerprint: string,
  nowMs: number,
  nextScoreMs: number,
  maxUnknown: number,
): Promise<FeeRequeryCode> {
  // The index the entry was found in (the card's shard, as fee-debit.lua put it there).
  const reply = await ledger.scripts.run(
    'fee-requery',
    [record.recordKey, ledger.keys.feePending(record.shard)],
    [fingerprint, record.member, nowMs, Math.max(0, Math.floor(nextScoreMs)), maxUnknown],
  );
  return decodeAnswer('fee-requery', FEE_REQUERY_ANSWERS, reply as number);
}
