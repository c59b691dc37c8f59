// Utility fees (campus network top-up, dormitory electricity) paid from the card balance at a kiosk.
//
// Flow: fee-debit.lua takes the money (idempotent per kiosk terminal + sequence number) and marks the
// request pending; then the provider is asked to deliver, with a bounded time; then fee-complete.lua
// stores the receipt, or fee-giveback.lua returns the money exactly once.
//
// A crash (or a timeout, or a provider error) between the debit and the provider's answer leaves the
// request pending with the money taken. What finishes it, decided here:
//  - The provider order id is derived from (terminal, sequence) (providerOrderId), and the provider's
//    pay is idempotent per order id. A retry of the same request, or the recovery sweep
//    (recoverPendingFees), finds the pending record and calls pay again with the same order id: a
//    delivered order answers its receipt (completed, never delivered twice), a refused one is given back.
//  - When pay's outcome is unknown (no answer in time, an error), the money is NOT given back blindly:
//    the provider might still deliver. The order is first voided with cancel; only after 'void' is the
//    money given back (the provider guarantees a void order is never delivered). If cancel reports the
//    order delivered, it is completed instead. If cancel's outcome is unknown too, the request stays
//    pending and the kiosk is told so (OUTCOME_PENDING); the next retry or the sweep tries again.
// So money is never given back for a delivered order, and never kept for an undelivered one longer
// than it takes the provider to answer.
import type { SwitchContext } from '../context.js';
import { InvalidArgumentError } from '../errors.js';
import {
  feeFingerprint,
  RECEIPT_PATTERN,
  UTILITY_KINDS,
  type FeeAnswer,
  type FeeRequestRef,
  type UtilityKindCode,
} from '../ledger/money.js';
import { providerOrderId, withTimeout, type FeeOrder, type UtilityTarget } from '../fees/index.js';
import { allPendingFees, pendingFeesDebitedBy, requeryPendingFee, type PendingFeeRecord } from '../ledger/fee-records.js';
import { IdempotencyConflictError } from '../ledger/ledger.js';

export const MIN_FEE_FEN = 100;
export const MAX_FEE_FEN = 50_000;
export const NETWORK_ACCOUNT_PATTERN = /^[A-Za-z0-9_.@-]{4,32}$/;
/** 1-16 characters (e.g. "学4"): no control characters and no '|' (a separator in ledger records). */
export const BUILDING_PATTERN = /^[^\p{C}|\s][^\p{C}|]{0,15}$/u;
export const ROOM_PATTERN = /^[A-Za-z0-9-]{1,8}$/;

/** Why a give-back happened, shown to the cardholder when the provider gave no reason of its own. */
const NO_ANSWER_REASON = '缴费系统未应答';

export function checkUtilityTarget(kind: UtilityKindCode, networkAccount: string, building: string, room: string): UtilityTarget {
  if (kind === 'network') {
    if (building !== '' || room !== '')
      throw new InvalidArgumentError('building and room are for electricity fees; leave them empty for a network fee');
    if (!NETWORK_ACCOUNT_PATTERN.test(networkAccount)) {
      throw new InvalidArgumentError(`network_account must be 4-32 of A-Z a-z 0-9 _ . @ -, got "${networkAccount.slice(0, 40)}"`);
    }
    return { kind, account: networkAccount };
  }
  if (networkAccount !== '') throw new InvalidArgumentError('network_account is for network fees; leave it empty for an electricity fee');
  if (!BUILDING_PATTERN.test(building))
    throw new InvalidArgumentError(`building must be 1-16 characters (e.g. 学4), got "${building.slice(0, 20)}"`);
  if (!ROOM_PATTERN.test(room)) throw new InvalidArgumentError(`room must be 1-8 of A-Z a-z 0-9 -, got "${room.slice(0, 20)}"`);
  return { kind, building, room };
}

export function checkFeeAmount(amountFen: number): number {
  if (!Number.isSafeInteger(amountFen) || amountFen < MIN_FEE_FEN || amountFen > MAX_FEE_FEN) {
    throw new InvalidArgumentError(
      `amount_fen must be a whole number from ${MIN_FEE_FEN} to ${MAX_FEE_FEN} fen (1.00 to 500.00 yuan), got ${amountFen}`,
    );
  }
  return amountFen;
}

export interface FeeRequest {
  readonly cardNo: string;
  readonly terminalId: string;
  readonly sequence: number;
  readonly target: UtilityTarget;
  readonly amountFen: number;
}

function refOf(request: FeeRequest): FeeRequestRef {
  return {
    cardNo: request.cardNo,
    terminalId: request.terminalId,
    sequence: request.sequence,
    amountFen: request.amountFen,
    kind: request.target.kind,
    targetJson: JSON.stringify(request.target),
  };
}

/**
 * Pays a fee, or replays the request's answer. Declines (lost card, insufficient funds ...) take
 * nothing; 'given_back' took and returned the money; 'pending' means the provider's outcome is still
 * unknown (money taken, to be delivered or given back by a retry or the recovery sweep).
 */
export async function payUtilityFee(ctx: SwitchContext, request: FeeRequest): Promise<FeeAnswer> {
  checkFeeAmount(request.amountFen);
  const ref = refOf(request);
  const claimedNow = await ctx.claims.forCard(request.terminalId, request.sequence, request.cardNo);
  // fee-debit.lua records every answer but an unknown account's, and not its key_reused: after those the
  // claim this request took goes too, or it would refuse another card's request under the number.
  // After an unknown failure (the script may have run) the claim stays.
  const release = async (): Promise<void> => {
    if (claimedNow) await ctx.claims.release(request.terminalId, request.sequence, request.cardNo);
  };
  let answer: FeeAnswer;
  try {
    answer = await ctx.money.feeDebit(ref);
  } catch (err) {
    if (err instanceof IdempotencyConflictError) await release();
    throw err;
  }
  if (answer.code === 'unknown_card') await release();
  if (answer.code !== 'pending') return answer;
  return settlePendingFee(ctx, ref, request.target, answer);
}

/**
 * True when this request was taken before (fee-debit.lua recorded it, with this card, amount and target):
 * its retry is answered from that record by payUtilityFee, so the checks of a new request (the card on the
 * reader is the card's current one, the card password) are not asked again. The card may have been replaced
 * or its password changed since; the retry must still learn what became of the fee it paid.
 */
export async function feeRequestRecorded(ctx: SwitchContext, request: FeeRequest): Promise<boolean> {
  checkFeeAmount(request.amountFen);
  return ctx.money.feeRecorded(refOf(request));
}

/** Drives one pending request to delivered or given back; answers `pending` when the provider stays silent. */
export async function settlePendingFee(
  ctx: SwitchContext,
  ref: FeeRequestRef,
  target: UtilityTarget,
  pending: FeeAnswer,
): Promise<FeeAnswer> {
  const money = ctx.money;
  const { provider, timeoutMs } = ctx.fees;
  const order: FeeOrder = { orderId: providerOrderId(ref.terminalId, ref.sequence), target, amountFen: ref.amountFen, cardNo: ref.cardNo };
  const paid = await outcomeOf(ctx, order.orderId, 'pay', () =>
    withTimeout(`pay ${order.orderId}`, timeoutMs, (signal) => provider.pay(order, signal)),
  );
  if (paid?.status === 'delivered') return money.feeComplete(ref, storableReceipt(paid.receipt));
  if (paid?.status === 'refused') return money.feeGiveBack(ref, paid.reason === '' ? '缴费失败' : paid.reason);
  const cancelled = await outcomeOf(ctx, order.orderId, 'cancel', () =>
    withTimeout(`cancel ${order.orderId}`, timeoutMs, (signal) => provider.cancel(order.orderId, ref.kind, signal)),
  );
  if (cancelled?.status === 'delivered') return money.feeComplete(ref, storableReceipt(cancelled.receipt));
  if (cancelled?.status === 'void') return money.feeGiveBack(ref, NO_ANSWER_REASON);
  ctx.log.warn({ orderId: order.orderId, card: ref.cardNo }, 'fee provider outcome unknown; request stays pending');
  return pending;
}

/** A provider call's answer, or undefined when it is unknown (timeout, error): logged, never thrown. */
async function outcomeOf<T>(ctx: SwitchContext, orderId: string, op: string, run: () => Promise<T>): Promise<T | undefined> {
  try {
    return await run();
  } catch (err) {
    ctx.log.warn({ orderId, op, err: err instanceof Error ? err.message : String(err) }, 'fee provider call failed');
    return undefined;
  }
}

/** The provider delivered, so its receipt must be stored whatever it looks like: keep it storable. */
function storableReceipt(receipt: string): string {
  if (RECEIPT_PATTERN.test(receipt)) return receipt;
  const cleaned = receipt.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64);
  return cleaned === '' ? 'NO-RECEIPT' : cleaned;
}

export interface RecoveryReport {
  readonly delivered: number;
  readonly givenBack: number;
  /** The provider gave no final word: the request is looked at again later (its wait grows). */
  readonly stillPending: number;
  /** Of those, the ones that need an operator (MAX_UNKNOWN_FEE_LOOKS reached, now or before); still swept. */
  readonly needsAttention: number;
  /** Completed or given back by someone else (the kiosk's retry) while this sweep asked the provider. */
  readonly settledMeanwhile: number;
  /** Index entries whose record is gone or broken: logged at error level for the operator. */
  readonly broken: number;
  /** Requests whose recovery threw (Redis gone, a broken invariant): logged; the next sweep tries again. */
  readonly failed: number;
}

/**
 * A pending request the provider gives no final word about (pay and cancel both unanswered) is looked at
 * again after a growing wait (the sweep's interval, doubled after each such look, at most
 * MAX_FEE_RETRY_WAIT_MS): its place in the shard's pending index moves there (fee-requery.lua), so the
 * sweep, which reads each shard's index oldest first and at most maxPerShard of it, also reaches the
 * requests behind it. From MAX_UNKNOWN_FEE_LOOKS such looks on it needs an operator: logged at error
 * level once, listed by `npm run cli -- fee-attention` and shown by the daily reconciliation of the day it
was debited (domain/reconcile.ts, `fee_needs_attention`). Unlike a recharge order it stays in the sweep
 * (at the longest wait): no notification will ever settle a fee, and the money stays taken until the
 * provider answers pay or confirms a cancel (only then is it given back).
 */
export const MAX_UNKNOWN_FEE_LOOKS = 10;
export const MAX_FEE_RETRY_WAIT_MS = 30 * 60_000;

export interface RecoveryOptions {
  /** Only requests due this long ago (first: debited; a younger one is likely still being served). */
  readonly olderThanMs: number;
  /** Bound on the work per shard and run. */
  readonly maxPerShard: number;
  /** The first wait after a look without a final word; doubled after each. Default: FEE_RECOVERY_INTERVAL_MS. */
  readonly retryBaseMs?: number;
  /** Default MAX_UNKNOWN_FEE_LOOKS. */
  readonly maxUnknownLooks?: number;
}

interface RequeryPolicy {
  readonly olderThanMs: number;
  readonly retryBaseMs: number;
  readonly maxUnknownLooks: number;
}

type RecoveryOutcome = keyof RecoveryReport;

/**
 * The recovery sweep: finishes fee requests left pending by a crash or an unanswered provider when the
 * kiosk never retried. Meant to run at start-up and then periodically (see the note in money-handlers.ts).
 */
export async function recoverPendingFees(ctx: SwitchContext, options: RecoveryOptions): Promise<RecoveryReport> {
  const counts: Record<RecoveryOutcome, number> = {
    delivered: 0,
    givenBack: 0,
    stillPending: 0,
    needsAttention: 0,
    settledMeanwhile: 0,
    broken: 0,
    failed: 0,
  };
  const policy: RequeryPolicy = {
    olderThanMs: options.olderThanMs,
    retryBaseMs: options.retryBaseMs ?? ctx.config.feeRecoveryIntervalMs,
    maxUnknownLooks: options.maxUnknownLooks ?? MAX_UNKNOWN_FEE_LOOKS,
  };
  const cutoffMs = ctx.now() - options.olderThanMs;
  for await (const record of pendingFeesDebitedBy(ctx, cutoffMs, options.maxPerShard)) {
    try {
      for (const outcome of await recoverOne(ctx, record, policy)) counts[outcome]++;
    } catch (err) {
      // One request that cannot be finished must not stop the sweep before the others of its shard.
      counts.failed++;
      ctx.log.error(
        { member: record.member, key: record.recordKey, err: err instanceof Error ? err.message : String(err) },
        'fee recovery of one request failed; the next sweep tries again',
      );
    }
  }
  return counts;
}

/** Settles one indexed request, or moves it later in the index; what to count. */
async function recoverOne(ctx: SwitchContext, record: PendingFeeRecord, policy: RequeryPolicy): Promise<RecoveryOutcome[]> {
  const found = pendingRequest(ctx, record);
  if (found === undefined) {
    // Logged for the operator; it moves to the longest wait so it does not hold one of the sweep's places.
    await requeryPendingFee(
      ctx,
      record,
      feeFingerprint(refOfRecord(record)),
      ctx.now(),
      nextScoreMs(ctx, MAX_FEE_RETRY_WAIT_MS, policy),
      1,
    );
    return ['broken'];
  }
  const answer = await settlePendingFee(ctx, found.ref, found.target, found.pending);
  if (answer.code === 'delivered') return ['delivered'];
  if (answer.code === 'given_back') return ['givenBack'];
  if (answer.code !== 'pending') return ['broken'];
  return notFinal(ctx, record, found.ref, policy);
}

/** The score that makes the sweep (taking scores up to its now - olderThanMs) look again in `waitMs`. */
function nextScoreMs(ctx: SwitchContext, waitMs: number, policy: RequeryPolicy): number {
  return ctx.now() + waitMs - policy.olderThanMs;
}

/** No final word from the provider: look again later (the wait grows), and past the bound an operator is told. */
async function notFinal(
  ctx: SwitchContext,
  record: PendingFeeRecord,
  ref: FeeRequestRef,
  policy: RequeryPolicy,
): Promise<RecoveryOutcome[]> {
  const waitMs = Math.min(MAX_FEE_RETRY_WAIT_MS, policy.retryBaseMs * 2 ** Math.min(record.unknownLooks, 20));
  const code = await requeryPendingFee(
    ctx,
    record,
    feeFingerprint(ref),
    ctx.now(),
    nextScoreMs(ctx, waitMs, policy),
    policy.maxUnknownLooks,
  );
  switch (code) {
    case 'requeued':
      return ['stillPending'];
    case 'in_attention':
      return ['stillPending', 'needsAttention'];
    case 'needs_attention':
      ctx.log.error(
        {
          orderId: providerOrderId(ref.terminalId, ref.sequence),
          card: ref.cardNo,
          amountFen: ref.amountFen,
          debitedAtMs: Number(record.debitedAtText),
          looks: record.unknownLooks + 1,
        },
        'fee payment: the provider gave no final answer; the money stays taken and it needs an operator (npm run cli -- fee-attention)',
      );
      return ['stillPending', 'needsAttention'];
    case 'settled':
      return ['settledMeanwhile'];
    case 'broken':
      ctx.log.error({ member: record.member, key: record.recordKey }, 'pending fee index entry changed under the sweep; check it by hand');
      return ['broken'];
  }
}

/** The request an index entry names, as its record says (whether or not that record is sound). */
function refOfRecord(record: PendingFeeRecord): FeeRequestRef {
  const { cardNo, terminalId, sequence, targetJson } = record;
  const kind = record.party.slice(2) as UtilityKindCode;
  return { cardNo, terminalId, sequence, amountFen: Number(record.amountText), kind, targetJson };
}

/** The request an index entry names, when its record is pending and matches itself; else logged for the operator. */
function pendingRequest(
  ctx: SwitchContext,
  record: PendingFeeRecord,
): { ref: FeeRequestRef; target: UtilityTarget; pending: FeeAnswer } | undefined {
  const ref = refOfRecord(record);
  let target: UtilityTarget | undefined;
  try {
    target = JSON.parse(record.targetJson) as UtilityTarget;
  } catch {
    target = undefined;
  }
  if (
    record.state !== 'P' ||
    !UTILITY_KINDS.includes(ref.kind) ||
    target?.kind !== ref.kind ||
    record.fingerprint !== feeFingerprint(ref)
  ) {
    ctx.log.error(
      { member: record.member, key: record.recordKey, state: record.state },
      'pending fee index entry without a matching pending record; check it by hand',
    );
    return undefined;
  }
  const pending: FeeAnswer = {
    code: 'pending',
    balanceAfterFen: Number(record.balanceText),
    transactionId: record.transactionId,
    decidedAtMs: Number(record.debitedAtText),
    detail: '',
  };
  return { ref, target, pending };
}

/** A fee request that needs an operator: the provider never gave a final word about it. */
export interface AttentionFee {
  /** The provider's order id, to check with the provider. */
  readonly orderId: string;
  readonly cardNo: string;
  readonly terminalId: string;
  readonly sequence: number;
  readonly kind: string;
  readonly amountFen: number;
  readonly debitedAtMs: number;
  /** The debit's journal entry (the card's statement and the audit show it). */
  readonly debitEntryId: string;
  /** When it came to need an operator. */
  readonly sinceMs: number;
  /** Sweeps that got no final word. */
  readonly unknownLooks: number;
  /** When the sweep asks the provider again. */
  readonly nextLookMs: number;
}

/**
 * The pending fee requests that need an operator. Reads at most `maxPerShard` pending requests of each
 * shard; `unread` counts the pending requests beyond that (the list may then be incomplete).
 */
export async function feesNeedingAttention(
  ctx: Pick<SwitchContext, 'keys' | 'scripts'>,
  options: { readonly maxPerShard: number },
): Promise<{ readonly fees: AttentionFee[]; readonly unread: number }> {
  const fees: AttentionFee[] = [];
  let unread = 0;
  for await (const item of allPendingFees(ctx, options.maxPerShard)) {
    if (!('record' in item)) {
      unread += item.more;
      continue;
    }
    const r = item.record;
    if (r.state !== 'P' || r.attentionSinceText === '') continue;
    fees.push({
      orderId: providerOrderId(r.terminalId, r.sequence),
      cardNo: r.cardNo,
      terminalId: r.terminalId,
      sequence: r.sequence,
      kind: r.party.slice(2),
      amountFen: Number(r.amountText),
      debitedAtMs: Number(r.debitedAtText),
      debitEntryId: r.transactionId,
      sinceMs: Number(r.attentionSinceText),
      unknownLooks: r.unknownLooks,
      nextLookMs: r.nextLookMs,
    });
  }
  return { fees, unread };
}
