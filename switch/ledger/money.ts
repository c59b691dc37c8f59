// Typed wrappers over the scripts that move money outside POS payments: recharge, refund, operator
// adjustment, and the utility-fee steps (debit, complete, give back). Every change is one script call;
// every script answer is mapped exhaustively, and anything else stops loudly (LedgerInvariantError).
import {
  ADJUST_ANSWERS,
  ADJUST_REFUSALS,
  CLAIM_ANSWERS,
  decodeAnswer,
  FEE_ANSWERS,
  FEE_COMPLETE_REFUSALS,
  FEE_DEBIT_REFUSALS,
  FEE_GIVEBACK_REFUSALS,
  LedgerInvariantError,
  numericReply,
  RECHARGE_ANSWERS,
  RECHARGE_REFUSALS,
  REFUND_ANSWERS,
  REFUND_REFUSALS,
  RELEASE_ANSWERS,
  type AnswerOf,
} from './answers.js';
import { campusDayKey, IdempotencyConflictError } from './ledger.js';
import type { Keys } from './keys.js';
import type { ScriptName, ScriptReply, Scripts } from './scripts.js';
import { readRequestFields } from './request-records.js';

export const RECHARGE_CHANNELS = ['WECHAT', 'ALIPAY', 'COUNTER'] as const;
export type RechargeChannelCode = (typeof RECHARGE_CHANNELS)[number];

/** Channel order ids and adjustment ids: the idempotency keys that are not terminal sequence numbers. */
export const EXTERNAL_ID_PATTERN = /^[A-Za-z0-9_-]{4,64}$/;

/**
 * How long channel-order and adjustment records (and their claims) are kept: a channel may replay a
 * paid notification long after the terminals' REQUEST_TTL_DAYS, and it must still credit nothing.
 */
export const DEFAULT_RECORD_TTL_SEC = 400 * 86_400;

export const UTILITY_KINDS = ['network', 'electricity'] as const;
export type UtilityKindCode = (typeof UTILITY_KINDS)[number];

// ---------------------------------------------------------------------------------------------
// Keys. These belong in keys.ts (the one module that builds keys); until it has them they are built
// here from keys.journal(shard), which is `<prefix>:{L:<shard>}:journal`, so they carry the same tag.

/** The keys of recharges, adjustments and fees; built by Keys (the one module that builds keys). */
export class MoneyKeys {
  constructor(readonly keys: Keys) {}

  order(cardNo: string, channel: RechargeChannelCode, orderId: string): string {
    return this.keys.order(cardNo, channel, orderId);
  }

  adjustment(cardNo: string, adjustmentId: string): string {
    return this.keys.adjustment(cardNo, adjustmentId);
  }

  feePending(shard: number): string {
    return this.keys.feePending(shard);
  }

  feePendingOfCard(cardNo: string): string {
    return this.keys.feePending(this.keys.shardOf(cardNo));
  }

  claim(namespace: string, id: string): string {
    return this.keys.idClaim(namespace, id);
  }
}

// ---------------------------------------------------------------------------------------------
// Results

export type RechargeCode = AnswerOf<typeof RECHARGE_ANSWERS>;

export interface RechargeResult {
  readonly code: RechargeCode;
  readonly balanceAfterFen: number;
  readonly transactionId: string;
  readonly decidedAtMs: number;
  /** What may still be recharged today after this answer; undefined when there is no daily limit. */
  readonly rechargeableTodayFen: number | undefined;
}

export type RefundCode = AnswerOf<typeof REFUND_ANSWERS>;

export interface RefundResult {
  readonly code: RefundCode;
  readonly balanceAfterFen: number;
  /** Still refundable of the payment after this answer. */
  readonly refundableLeftFen: number;
  readonly transactionId: string;
  readonly decidedAtMs: number;
}

export type AdjustCode = AnswerOf<typeof ADJUST_ANSWERS>;

export interface AdjustResult {
  readonly code: AdjustCode;
  readonly balanceAfterFen: number;
  readonly transactionId: string;
  readonly decidedAtMs: number;
}

export type FeeCode = AnswerOf<typeof FEE_ANSWERS>;

export interface FeeAnswer {
  readonly code: FeeCode;
  readonly balanceAfterFen: number;
  /** The debit for delivered and pending, the give-back for given_back, '' for declines. */
  readonly transactionId: string;
  readonly decidedAtMs: number;
  /** The provider's receipt when delivered, why it did not deliver when given back, else ''. */
  readonly detail: string;
}

// ---------------------------------------------------------------------------------------------
// Inputs

export interface RechargeInput {
  readonly cardNo: string;
  readonly channel: RechargeChannelCode;
  readonly orderId: string;
  readonly amountFen: number;
  /** The kiosk terminal id or the operator's name: the journal's `tm`. Not part of the fingerprint. */
  readonly source: string;
  /** An operator's reason, journal field `r`; '' for none. Not part of the fingerprint. */
  readonly reason: string;
  /** Per card and campus day (what was credited today and the card's open orders of today); 0 = no limit. */
  readonly dailyLimitFen: number;
  /**
   * A refusal is recorded on the order like a credit, so the order is refused for good (recharge.lua):
   * for a payment the channel has already taken, which the caller refunds when it is refused. Not for a
   * recharge order of recharge-order.lua: its record with an answer reads as paid.
   */
  readonly keepRefusal?: boolean;
}

export interface RefundInput {
  readonly cardNo: string;
  readonly amountFen: number;
  /** The refunding terminal, its sequence number (the refund's idempotency key) and its merchant. */
  readonly terminalId: string;
  readonly sequence: number;
  readonly merchantId: string;
  readonly originalTerminalId: string;
  readonly originalSequence: number;
}

export interface AdjustInput {
  readonly cardNo: string;
  readonly adjustmentId: string;
  /** Non-zero: > 0 credits the account, < 0 debits it. */
  readonly signedAmountFen: number;
  readonly operator: string;
  readonly reason: string;
}

/** Identifies one fee request (kiosk terminal + sequence number) and what it was. */
export interface FeeRequestRef {
  readonly cardNo: string;
  readonly terminalId: string;
  readonly sequence: number;
  readonly amountFen: number;
  readonly kind: UtilityKindCode;
  /** The provider target (account, or building and room) as JSON: stored, and part of the fingerprint. */
  readonly targetJson: string;
}

export function feeFingerprint(ref: FeeRequestRef): string {
  return `fee|${ref.cardNo}|${ref.amountFen}|${ref.kind}|${ref.targetJson}`;
}

export function feePendingMember(ref: Pick<FeeRequestRef, 'terminalId' | 'sequence' | 'cardNo'>): string {
  return `${ref.terminalId}|${ref.sequence}|${ref.cardNo}`;
}

// ---------------------------------------------------------------------------------------------

export class MoneyLedger {
  readonly moneyKeys: MoneyKeys;

  constructor(
    readonly keys: Keys,
    readonly scripts: Scripts,
    private readonly requestTtlSec: number,
    private readonly now: () => number = Date.now,
    /** Channel-order and adjustment records; see DEFAULT_RECORD_TTL_SEC. */
    private readonly recordTtlSec: number = Math.max(DEFAULT_RECORD_TTL_SEC, requestTtlSec),
  ) {
    this.moneyKeys = new MoneyKeys(keys);
  }

  /** Credits a channel order exactly once per (channel, order id); see recharge.lua. */
  async recharge(input: RechargeInput): Promise<RechargeResult> {
    assertFen(input.amountFen, 'positive');
    assertExternalId(input.orderId, 'channel order id');
    const mk = this.moneyKeys;
    const k = this.keys;
    const what = `${input.channel} order ${input.orderId}`;
    const claimedNow = await this.claim(`rch:${input.channel}`, input.orderId, input.cardNo, what);
    const nowMs = this.now();
    const reply = await this.scripts.run(
      'recharge',
      [
        k.account(input.cardNo),
        mk.order(input.cardNo, input.channel, input.orderId),
        k.journalOfCard(input.cardNo),
        k.statement(input.cardNo),
        k.rechargeOpen(input.cardNo),
        k.rechargePending(k.shardOf(input.cardNo)),
        k.rechargeAttention(k.shardOf(input.cardNo)),
        k.cardEvents(input.cardNo),
      ],
      [
        input.cardNo,
        input.channel,
        input.orderId,
        input.amountFen,
        `rch|${input.cardNo}|${input.amountFen}|${input.channel}`,
        input.source,
        nowMs,
        campusDayKey(nowMs),
        input.dailyLimitFen,
        this.recordTtlSec,
        input.reason,
        input.keepRefusal === true ? '1' : '0',
        ...this.eventArgs(),
      ],
    );
    if (typeof reply === 'number') {
      const refusal = decodeAnswer('recharge', RECHARGE_REFUSALS, reply);
      if (claimedNow) await this.release(`rch:${input.channel}`, input.orderId, input.cardNo);
      const errors = {
        key_reused: () =>
          new IdempotencyConflictError(`${what} was already credited with a different amount or card; it is credited only once`),
      } satisfies Record<typeof refusal, () => Error>;
      throw errors[refusal]();
    }
    const [code, balance, txnId, decidedAt, rechargeable] = splitAnswer(reply, 'recharge', 5);
    const mapped = decodeAnswer('recharge', RECHARGE_ANSWERS, code);
    // A refusal kept on the order keeps the order's claim too: the order is this card's, refused, for good.
    if (mapped !== 'credited' && claimedNow && input.keepRefusal !== true)
      await this.release(`rch:${input.channel}`, input.orderId, input.cardNo);
    const rechargeableFen = parseInteger(rechargeable, 'recharge', 'rechargeable today');
    return {
      code: mapped,
      balanceAfterFen: parseBalance(balance, 'recharge'),
      transactionId: txnId ?? '',
      decidedAtMs: parseInteger(decidedAt, 'recharge', 'time'),
      rechargeableTodayFen: rechargeableFen < 0 ? undefined : rechargeableFen,
    };
  }

  /** Refunds part or all of an approved payment; see refund.lua. */
  async refund(input: RefundInput): Promise<RefundResult> {
    assertFen(input.amountFen, 'positive');
    const k = this.keys;
    const originalRef = `${input.originalTerminalId}:${input.originalSequence}`;
    const reply = await this.scripts.run(
      'refund',
      [
        k.account(input.cardNo),
        k.request(input.cardNo, input.originalTerminalId, input.originalSequence),
        k.request(input.cardNo, input.terminalId, input.sequence),
        k.journalOfCard(input.cardNo),
        k.statement(input.cardNo),
        k.cardEvents(input.cardNo),
      ],
      [
        input.cardNo,
        input.amountFen,
        `ref|${input.cardNo}|${input.amountFen}|${originalRef}`,
        input.terminalId,
        input.sequence,
        `m:${input.merchantId}`,
        this.now(),
        this.requestTtlSec,
        originalRef,
        ...this.eventArgs(),
      ],
    );
    if (typeof reply === 'number') {
      const refusal = decodeAnswer('refund', REFUND_REFUSALS, reply);
      const errors = { key_reused: () => sequenceReused(input) } satisfies Record<typeof refusal, () => Error>;
      throw errors[refusal]();
    }
    const [code, balance, left, txnId, decidedAt] = splitAnswer(reply, 'refund', 5);
    const refundableLeftFen = parseInteger(left, 'refund', 'refundable amount');
    if (refundableLeftFen < 0) throw new LedgerInvariantError(`refund answered a negative refundable amount ${refundableLeftFen}`);
    return {
      code: decodeAnswer('refund', REFUND_ANSWERS, code),
      balanceAfterFen: parseBalance(balance, 'refund'),
      refundableLeftFen,
      transactionId: txnId ?? '',
      decidedAtMs: parseInteger(decidedAt, 'refund', 'time'),
    };
  }

  /** An operator's correction, exactly once per adjustment id; see adjust.lua. */
  async adjust(input: AdjustInput): Promise<AdjustResult> {
    assertFen(input.signedAmountFen, 'non-zero');
    assertExternalId(input.adjustmentId, 'adjustment id');
    const mk = this.moneyKeys;
    const k = this.keys;
    const what = `adjustment ${input.adjustmentId}`;
    const claimedNow = await this.claim('adj', input.adjustmentId, input.cardNo, what);
    const reply = await this.scripts.run(
      'adjust',
      [k.account(input.cardNo), mk.adjustment(input.cardNo, input.adjustmentId), k.journalOfCard(input.cardNo), k.statement(input.cardNo)],
      [
        input.cardNo,
        input.signedAmountFen,
        `adj|${input.cardNo}|${input.signedAmountFen}|${input.reason}`,
        input.adjustmentId,
        input.operator,
        input.reason,
        this.now(),
        this.recordTtlSec,
      ],
    );
    if (typeof reply === 'number') {
      const refusal = decodeAnswer('adjust', ADJUST_REFUSALS, reply);
      if (claimedNow) await this.release('adj', input.adjustmentId, input.cardNo);
      const errors = {
        key_reused: () =>
          new IdempotencyConflictError(`${what} was already made with a different amount or reason; use a new adjustment id`),
      } satisfies Record<typeof refusal, () => Error>;
      throw errors[refusal]();
    }
    const [code, balance, txnId, decidedAt] = splitAnswer(reply, 'adjust', 4);
    const mapped = decodeAnswer('adjust', ADJUST_ANSWERS, code);
    if (mapped !== 'adjusted' && claimedNow) await this.release('adj', input.adjustmentId, input.cardNo);
    return {
      code: mapped,
      balanceAfterFen: parseBalance(balance, 'adjust'),
      transactionId: txnId ?? '',
      decidedAtMs: parseInteger(decidedAt, 'adjust', 'time'),
    };
  }

  /**
   * True when fee-debit.lua already recorded this very request (same terminal, sequence number and
   * fingerprint): a retry of it is answered from the record (fee-debit.lua replays it), whatever became
   * of the card since (replaced, password changed). A plain read: it changes nothing.
   */
  async feeRecorded(ref: FeeRequestRef): Promise<boolean> {
    const [fingerprint] = await readRequestFields(this.scripts.client, this.keys.request(ref.cardNo, ref.terminalId, ref.sequence), [
      'pfp',
    ]);
    return fingerprint === feeFingerprint(ref);
  }

  /** Takes a fee (or replays the request's current state); see fee-debit.lua. */
  async feeDebit(ref: FeeRequestRef): Promise<FeeAnswer> {
    assertFen(ref.amountFen, 'positive');
    const k = this.keys;
    const reply = await this.scripts.run(
      'fee-debit',
      [
        k.account(ref.cardNo),
        k.request(ref.cardNo, ref.terminalId, ref.sequence),
        k.journalOfCard(ref.cardNo),
        k.statement(ref.cardNo),
        this.moneyKeys.feePendingOfCard(ref.cardNo),
      ],
      [
        ref.cardNo,
        ref.amountFen,
        feeFingerprint(ref),
        ref.terminalId,
        ref.sequence,
        `u:${ref.kind}`,
        ref.targetJson,
        this.now(),
        this.requestTtlSec,
      ],
    );
    if (typeof reply === 'number') {
      const refusal = decodeAnswer('fee-debit', FEE_DEBIT_REFUSALS, reply);
      const errors = { key_reused: () => sequenceReused(ref) } satisfies Record<typeof refusal, () => Error>;
      throw errors[refusal]();
    }
    return parseFeeAnswer(reply, 'fee-debit');
  }

  /** Stores the provider's receipt: the request is delivered; see fee-complete.lua. */
  async feeComplete(ref: FeeRequestRef, receipt: string): Promise<FeeAnswer> {
    if (!RECEIPT_PATTERN.test(receipt))
      throw new LedgerInvariantError(`provider receipt ${JSON.stringify(receipt.slice(0, 80))} is not storable`);
    const reply = await this.scripts.run(
      'fee-complete',
      [
        this.keys.request(ref.cardNo, ref.terminalId, ref.sequence),
        this.moneyKeys.feePendingOfCard(ref.cardNo),
        this.keys.account(ref.cardNo),
        this.keys.cardEvents(ref.cardNo),
      ],
      [feeFingerprint(ref), receipt, feePendingMember(ref), ref.cardNo, ...this.eventArgs()],
    );
    const where = `fee request ${ref.sequence} of terminal ${ref.terminalId}`;
    if (typeof reply === 'number') {
      const refusal = decodeAnswer('fee-complete', FEE_COMPLETE_REFUSALS, reply);
      const problems = {
        other_request: 'the record is for a different request',
        no_record: 'no record to complete (never debited, or expired)',
        not_pending: 'the provider delivered an order whose money was already given back or never taken',
      } satisfies Record<typeof refusal, string>;
      throw new LedgerInvariantError(`${where}: ${problems[refusal]}`);
    }
    const answer = parseFeeAnswer(reply, 'fee-complete');
    if (answer.code !== 'delivered') throw new LedgerInvariantError(`fee-complete answered ${answer.code}`);
    return answer;
  }

  /** Returns a pending fee's money exactly once; a final request answers its stored answer. See fee-giveback.lua. */
  async feeGiveBack(ref: FeeRequestRef, reason: string): Promise<FeeAnswer> {
    const k = this.keys;
    const reply = await this.scripts.run(
      'fee-giveback',
      [
        k.account(ref.cardNo),
        k.request(ref.cardNo, ref.terminalId, ref.sequence),
        k.journalOfCard(ref.cardNo),
        k.statement(ref.cardNo),
        this.moneyKeys.feePendingOfCard(ref.cardNo),
        k.cardEvents(ref.cardNo),
      ],
      [ref.cardNo, feeFingerprint(ref), ref.terminalId, ref.sequence, storableText(reason), this.now(), ...this.eventArgs()],
    );
    const where = `fee request ${ref.sequence} of terminal ${ref.terminalId}`;
    if (typeof reply === 'number') {
      const refusal = decodeAnswer('fee-giveback', FEE_GIVEBACK_REFUSALS, reply);
      const problems = {
        other_request: 'the record is for a different request',
        no_record: 'no record to give back (never debited, or expired)',
      } satisfies Record<typeof refusal, string>;
      throw new LedgerInvariantError(`${where}: ${problems[refusal]}`);
    }
    return parseFeeAnswer(reply, 'fee-giveback');
  }

  /** The trailing ARGV of the scripts that tell a bound e-card's page (includes/event.lua). */
  private eventArgs(): [string, number] {
    return [this.keys.eventsChannel(), this.requestTtlSec];
  }

  /** True when this call took the claim (so it must release it if the money script refuses). */
  private async claim(namespace: string, id: string, cardNo: string, what: string): Promise<boolean> {
    const answer = await claimId(this.scripts, this.moneyKeys.claim(namespace, id), cardNo, this.recordTtlSec);
    if (answer === 'held_by_another')
      throw new IdempotencyConflictError(`${what} already belongs to another card; it is credited only once`);
    return answer === 'claimed_now';
  }

  private async release(namespace: string, id: string, cardNo: string): Promise<void> {
    await releaseId(this.scripts, this.moneyKeys.claim(namespace, id), cardNo);
  }
}

/** Claims `claimKey` for `holder` (claim-id.lua): claimed now, already the holder's, or held by another. */
export async function claimId(scripts: Scripts, claimKey: string, holder: string, ttlSec: number): Promise<AnswerOf<typeof CLAIM_ANSWERS>> {
  const reply = await scripts.run('claim-id', [claimKey], ['claim', holder, ttlSec]);
  return decodeAnswer('claim-id', CLAIM_ANSWERS, numericReply('claim-id', reply));
}

/** Releases a claim `holder` made (claim-id.lua); another holder's claim is left alone. */
export async function releaseId(scripts: Scripts, claimKey: string, holder: string): Promise<AnswerOf<typeof RELEASE_ANSWERS>> {
  const reply = await scripts.run('claim-id', [claimKey], ['release', holder]);
  return decodeAnswer('claim-id', RELEASE_ANSWERS, numericReply('claim-id', reply));
}

function sequenceReused(ref: { readonly terminalId: string; readonly sequence: number }): IdempotencyConflictError {
  return new IdempotencyConflictError(
    `sequence number ${ref.sequence} of terminal ${ref.terminalId} was already used for a different request; use a new sequence number`,
  );
}

/** Provider receipts are stored in '|'-joined answers: a bounded, plain alphabet. */
export const RECEIPT_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAX_STORED_TEXT_LENGTH = 64;

/** A provider's reason, made safe for a '|'-joined answer: no separators or control characters, bounded. */
export function storableText(text: string): string {
  // eslint-disable-next-line no-control-regex
  const cleaned = text.replace(/[|\u0000-\u001f\u007f]/g, ' ').trim();
  return [...cleaned].slice(0, MAX_STORED_TEXT_LENGTH).join('');
}

function assertFen(amountFen: number, kind: 'positive' | 'non-zero'): void {
  const ok = Number.isSafeInteger(amountFen) && (kind === 'positive' ? amountFen > 0 : amountFen !== 0);
  if (!ok) throw new RangeError(`amount must be a ${kind} whole number of fen, got ${amountFen}`);
}

function assertExternalId(id: string, what: string): void {
  if (!EXTERNAL_ID_PATTERN.test(id)) throw new RangeError(`${what} must be 4-64 of A-Z a-z 0-9 _ -, got "${id.slice(0, 70)}"`);
}

function splitAnswer(reply: ScriptReply, script: ScriptName, fields: number): string[] {
  if (typeof reply !== 'string') throw new LedgerInvariantError(`${script} answered ${JSON.stringify(reply)}`);
  const parts = reply.split('|');
  // The last field of a fee answer is free text without '|'; every other field is '|'-free by construction.
  if (parts.length !== fields) throw new LedgerInvariantError(`${script} answered ${parts.length} fields, expected ${fields}: ${reply}`);
  return parts;
}

function parseInteger(text: string | undefined, script: string, what: string): number {
  const value = Number(text);
  if (text === undefined || text === '' || !Number.isSafeInteger(value)) {
    throw new LedgerInvariantError(`${script} returned a non-integer ${what}: ${String(text)}`);
  }
  return value;
}

function parseBalance(text: string | undefined, script: string): number {
  const balanceFen = parseInteger(text, script, 'balance');
  if (balanceFen < 0) throw new LedgerInvariantError(`${script} answered a negative balance ${balanceFen}`);
  return balanceFen;
}

function parseFeeAnswer(reply: ScriptReply, script: ScriptName): FeeAnswer {
  const [code, balance, txnId, decidedAt, detail] = splitAnswer(reply, script, 5);
  const mapped = decodeAnswer(script, FEE_ANSWERS, code);
  const transactionId = txnId ?? '';
  if ((mapped === 'delivered' || mapped === 'pending' || mapped === 'given_back') && transactionId === '') {
    throw new LedgerInvariantError(`${script} answered ${mapped} without a transaction id`);
  }
  return {
    code: mapped,
    balanceAfterFen: parseBalance(balance, script),
    transactionId,
    decidedAtMs: parseInteger(decidedAt, script, 'time'),
    detail: detail ?? '',
  };
}
