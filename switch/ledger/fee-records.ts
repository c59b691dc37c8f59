// The pending fee requests, for the recovery sweep (domain/fees.ts recoverPendingFees): each shard's
// index of requests whose money is taken and whose provider call is not settled (Keys.feePending,
// scored by the debit time, members from feePendingMember), and the request record each entry names
// (Keys.request, written by fee-debit.lua). Reads only: settling is fee-complete.lua / fee-giveback.lua.
import type { LedgerAccess } from './access.js';
import { readRequestFields } from './request-records.js';

/** One index entry and the fee fields of the record it names ('' for a field the record lacks). */
export interface PendingFeeRecord {
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
}

/**
 * The pending requests debited at or before `cutoffMs`, shard by shard, at most `maxPerShard` of each:
 * one ZRANGEBYSCORE per shard, then one HMGET per entry as the caller takes it (the caller settles each
 * before the next is read).
 */
export async function* pendingFeesDebitedBy(ledger: LedgerAccess, cutoffMs: number, maxPerShard: number): AsyncGenerator<PendingFeeRecord> {
  const { keys } = ledger;
  const redis = ledger.scripts.client;
  for (let shard = 0; shard < keys.shardCount; shard++) {
    const members = await redis.zrangebyscore(keys.feePending(shard), '-inf', cutoffMs, 'LIMIT', 0, maxPerShard);
    for (const member of members) {
      const [terminalId = '', sequenceText = '', cardNo = ''] = member.split('|');
      const sequence = Number(sequenceText);
      const recordKey = keys.request(cardNo, terminalId, sequence);
      const [fingerprint, state, amount, party, targetJson, balance, txnId, debitedAt] = await readRequestFields(redis, recordKey, [
        'pfp',
        'pst',
        'amt',
        'up',
        'utg',
        'dbal',
        'dtx',
        'dts',
      ]);
      yield {
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
      };
    }
  }
}
