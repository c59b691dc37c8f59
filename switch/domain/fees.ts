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
import { pendingFeesDebitedBy, type PendingFeeRecord } from '../ledger/fee-records.js';
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
  readonly stillPending: number;
  /** Index entries whose record is gone or broken: logged at error level for the operator. */
  readonly broken: number;
}

export interface RecoveryOptions {
  /** Only requests debited at least this long ago (a younger one is likely still being served). */
  readonly olderThanMs: number;
  /** Bound on the work per shard and run. */
  readonly maxPerShard: number;
}

/**
 * The recovery sweep: finishes fee requests left pending by a crash or an unanswered provider when the
 * kiosk never retried. Meant to run at start-up and then periodically (see the note in money-handlers.ts).
 */
export async function recoverPendingFees(ctx: SwitchContext, options: RecoveryOptions): Promise<RecoveryReport> {
  const counts = { delivered: 0, givenBack: 0, stillPending: 0, broken: 0 };
  const cutoffMs = ctx.now() - options.olderThanMs;
  for await (const record of pendingFeesDebitedBy(ctx, cutoffMs, options.maxPerShard)) {
    const found = pendingRequest(ctx, record);
    if (found === undefined) {
      counts.broken++;
      continue;
    }
    const answer = await settlePendingFee(ctx, found.ref, found.target, found.pending);
    if (answer.code === 'delivered') counts.delivered++;
    else if (answer.code === 'given_back') counts.givenBack++;
    else if (answer.code === 'pending') counts.stillPending++;
    else counts.broken++;
  }
  return counts;
}

/** The request an index entry names, when its record is pending and matches itself; else logged for the operator. */
function pendingRequest(
  ctx: SwitchContext,
  record: PendingFeeRecord,
): { ref: FeeRequestRef; target: UtilityTarget; pending: FeeAnswer } | undefined {
  const { cardNo, terminalId, sequence, targetJson } = record;
  const kind = record.party.slice(2) as UtilityKindCode;
  let target: UtilityTarget | undefined;
  try {
    target = JSON.parse(targetJson) as UtilityTarget;
  } catch {
    target = undefined;
  }
  const ref: FeeRequestRef = { cardNo, terminalId, sequence, amountFen: Number(record.amountText), kind, targetJson };
  if (record.state !== 'P' || !UTILITY_KINDS.includes(kind) || target?.kind !== kind || record.fingerprint !== feeFingerprint(ref)) {
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
