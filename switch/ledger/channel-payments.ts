// Third-party (Alipay / WeChat) code payments in Redis: the terminal's payment record and sequence
// claim (channel-pay.lua), the follow-up index (Keys.channelPaymentsPending, a zset of
// "<terminal>|<sequence>" scored by when to look next), and the journal entry and statement line of a
// paid payment in the card's shard (channel-paid.lua). domain/channel-payment.ts keeps the rules.
import type { LedgerAccess } from './access.js';
import {
  CHANNEL_PAID_ANSWERS,
  CHANNEL_PAY_ANSWERS,
  CHANNEL_PAY_REFUSALS,
  CHANNEL_REFUND_ANSWERS,
  CHANNEL_REFUND_REFUSALS,
  LEASE_RELEASE_ANSWERS,
  LEASE_TAKE_ANSWERS,
  decodeAnswer,
  LedgerInvariantError,
  type AnswerOf,
} from './answers.js';
import type { PayerChannel } from './channel-payers.js';
import { readRequestFields } from './request-records.js';
import type { ScriptReply } from './scripts.js';

export type ChannelPayAnswer = AnswerOf<typeof CHANNEL_PAY_ANSWERS> | AnswerOf<typeof CHANNEL_PAY_REFUSALS>;

/** P undecided, S paid (a sale), D declined (no sale, nothing charged), R reversed (no sale; money back to the payer). */
export type ChannelPaymentState = 'P' | 'S' | 'D' | 'R';

export interface ChannelPaymentRecord {
  readonly terminalId: string;
  readonly sequence: number;
  readonly state: ChannelPaymentState;
  readonly channel: PayerChannel | undefined;
  readonly outTradeNo: string;
  readonly amountFen: number;
  readonly merchantParty: string;
  readonly createdAtMs: number;
  readonly deadlineMs: number;
  readonly decidedAtMs: number;
  readonly cardNo: string;
  readonly channelTxnId: string;
  readonly payerId: string;
  readonly why: string;
  readonly journalId: string;
  /** Money may still be at the channel and must go back to the payer (cancel or refund). */
  readonly undo: boolean;
  /** A reversal that came before its payment. */
  readonly tombstone: boolean;
}

export interface BeginPayment {
  readonly terminalId: string;
  readonly sequence: number;
  readonly fingerprint: string;
  readonly channel: PayerChannel;
  readonly outTradeNo: string;
  readonly amountFen: number;
  readonly merchantParty: string;
  readonly nowMs: number;
  readonly deadlineMs: number;
  readonly ttlSec: number;
}

function payKeys(ledger: LedgerAccess, terminalId: string, sequence: number): string[] {
  return [ledger.keys.sequenceClaim(terminalId, sequence), ledger.keys.channelPayment(terminalId, sequence)];
}

function payAnswer(reply: ScriptReply): ChannelPayAnswer {
  if (reply === -1) return 'key_reused';
  return decodeAnswer('channel-pay', CHANNEL_PAY_ANSWERS, typeof reply === 'number' ? reply : String(reply));
}

/** Claims the sequence number and records the undecided payment, in one script: call it before the channel. */
export async function beginChannelPayment(ledger: LedgerAccess, p: BeginPayment): Promise<ChannelPayAnswer> {
  const reply = await ledger.scripts.run('channel-pay', payKeys(ledger, p.terminalId, p.sequence), [
    'begin',
    p.fingerprint,
    p.channel,
    p.outTradeNo,
    p.amountFen,
    p.merchantParty,
    p.nowMs,
    p.deadlineMs,
    p.ttlSec,
  ]);
  return payAnswer(reply);
}

export interface FinishPayment {
  readonly state: 'S' | 'D' | 'R';
  readonly nowMs: number;
  readonly undo: boolean;
  readonly cardNo?: string;
  readonly channelTxnId?: string;
  readonly payerId?: string;
  readonly why?: string;
  readonly journalId?: string;
}

/** Decides the record (S or D from P; R from P or S); 'already_final' when another decision came first. */
export async function finishChannelPayment(
  ledger: LedgerAccess,
  terminalId: string,
  sequence: number,
  f: FinishPayment,
): Promise<ChannelPayAnswer> {
  const reply = await ledger.scripts.run('channel-pay', payKeys(ledger, terminalId, sequence), [
    'finish',
    f.state,
    f.nowMs,
    f.undo ? '1' : '0',
    f.cardNo ?? '',
    f.channelTxnId ?? '',
    f.payerId ?? '',
    f.why ?? '',
    f.journalId ?? '',
  ]);
  return payAnswer(reply);
}

/** A reversal that came before its payment: a reversed record, so the payment is declined if it comes. */
export async function tombstoneChannelPayment(
  ledger: LedgerAccess,
  terminalId: string,
  sequence: number,
  outTradeNo: string,
  amountFen: number,
  nowMs: number,
  ttlSec: number,
): Promise<ChannelPayAnswer> {
  const reply = await ledger.scripts.run('channel-pay', payKeys(ledger, terminalId, sequence), [
    'tombstone',
    outTradeNo,
    amountFen,
    nowMs,
    ttlSec,
  ]);
  return payAnswer(reply);
}

/**
 * The payer's card on the record: known before the payment is decided (WeChat), for its live events, and
 * always before a sale is journalled, so whoever gives the payment back finds the sale in the card's shard.
 * True while the record is undecided; false when it is decided (its card then written only if it had none).
 */
export async function recordPayerCard(ledger: LedgerAccess, terminalId: string, sequence: number, cardNo: string): Promise<boolean> {
  const answer = payAnswer(await ledger.scripts.run('channel-pay', payKeys(ledger, terminalId, sequence), ['card', cardNo]));
  if (answer === 'no_record') throw new LedgerInvariantError(`channel payment ${terminalId}/${sequence} has no record to name its card`);
  return answer === 'finished';
}

/** The money is back with the payer (or never left): the record needs no more undoing. */
export async function markChannelPaymentUndone(ledger: LedgerAccess, terminalId: string, sequence: number): Promise<void> {
  payAnswer(await ledger.scripts.run('channel-pay', payKeys(ledger, terminalId, sequence), ['undone']));
}

/**
 * The channel took the money after the record was decided R or D and its undo cleared (a cancel confirmed
 * before the payment reached the channel): undo again. False when the record is P or S (nothing changed).
 */
export async function rearmChannelPaymentUndo(ledger: LedgerAccess, terminalId: string, sequence: number): Promise<boolean> {
  return payAnswer(await ledger.scripts.run('channel-pay', payKeys(ledger, terminalId, sequence), ['rearm'])) === 'finished';
}

const STATES: ReadonlySet<string> = new Set(['P', 'S', 'D', 'R']);

/** The record, or undefined when the terminal sent no such payment. */
export async function readChannelPayment(
  ledger: LedgerAccess,
  terminalId: string,
  sequence: number,
): Promise<ChannelPaymentRecord | undefined> {
  const h = await ledger.scripts.client.hgetall(ledger.keys.channelPayment(terminalId, sequence));
  if (h['st'] === undefined) return undefined;
  const state = h['st'];
  if (!STATES.has(state)) throw new LedgerInvariantError(`channel payment ${terminalId}/${sequence} has state "${state}"`);
  const channel = h['ch'];
  return {
    terminalId,
    sequence,
    state: state as ChannelPaymentState,
    channel: channel === 'alipay' || channel === 'wechat' ? channel : undefined,
    outTradeNo: h['otn'] ?? '',
    amountFen: Number(h['amt'] ?? '0'),
    merchantParty: h['mp'] ?? '',
    createdAtMs: Number(h['at'] ?? '0'),
    deadlineMs: Number(h['dl'] ?? '0'),
    decidedAtMs: Number(h['dt'] ?? '0'),
    cardNo: h['card'] ?? '',
    channelTxnId: h['ctx'] ?? '',
    payerId: h['payer'] ?? '',
    why: h['why'] ?? '',
    journalId: h['tx'] ?? '',
    undo: h['undo'] === '1',
    tombstone: h['tomb'] === '1',
  };
}

// ---- the follow-up indexes -----------------------------------------------------------------------

const MEMBER_SEPARATOR = '|';

/** Schedules (or reschedules) the follow-up of a payment at `atMs`. */
export async function scheduleFollowUp(ledger: LedgerAccess, terminalId: string, sequence: number, atMs: number): Promise<void> {
  await ledger.scripts.client.zadd(ledger.keys.channelPaymentsPending(), atMs, `${terminalId}${MEMBER_SEPARATOR}${sequence}`);
}

export async function dropFollowUp(ledger: LedgerAccess, terminalId: string, sequence: number): Promise<void> {
  await ledger.scripts.client.zrem(ledger.keys.channelPaymentsPending(), `${terminalId}${MEMBER_SEPARATOR}${sequence}`);
}

/** At most `limit` payments whose follow-up is due at `nowMs`, earliest first. */
export async function dueFollowUps(
  ledger: LedgerAccess,
  nowMs: number,
  limit: number,
): Promise<{ readonly terminalId: string; readonly sequence: number }[]> {
  const members = await ledger.scripts.client.zrangebyscore(ledger.keys.channelPaymentsPending(), 0, nowMs, 'LIMIT', 0, limit);
  return members.map((m) => {
    const cut = m.lastIndexOf(MEMBER_SEPARATOR);
    return { terminalId: m.slice(0, cut), sequence: Number(m.slice(cut + 1)) };
  });
}

/** How many payments wait for a follow-up (tests wait on it; the metrics may show it). */
export async function followUpCount(ledger: LedgerAccess): Promise<number> {
  return ledger.scripts.client.zcard(ledger.keys.channelPaymentsPending());
}

/** A merchant refund of a code payment whose channel answer is not known yet. */
export interface RefundFollowUp {
  readonly cardNo: string;
  readonly terminalId: string;
  readonly sequence: number;
}

function refundMember(r: RefundFollowUp): string {
  return `${r.cardNo}${MEMBER_SEPARATOR}${r.terminalId}${MEMBER_SEPARATOR}${r.sequence}`;
}

export async function scheduleRefundFollowUp(ledger: LedgerAccess, r: RefundFollowUp, atMs: number): Promise<void> {
  await ledger.scripts.client.zadd(ledger.keys.channelRefundsPending(), atMs, refundMember(r));
}

/** The refund is decided: off the follow-up index, off the attention index, its count of unknown answers gone (one slot: atomic). */
export async function dropRefundFollowUp(ledger: LedgerAccess, r: RefundFollowUp): Promise<void> {
  const member = refundMember(r);
  const k = ledger.keys;
  const replies = await ledger.scripts.client
    .multi()
    .zrem(k.channelRefundsPending(), member)
    .zrem(k.channelRefundsAttention(), member)
    .hdel(k.channelRefundsUnknown(), member)
    .exec();
  const failed = replies?.find(([err]) => err !== null)?.[0];
  if (replies === null || failed !== undefined) throw failed ?? new Error('dropping a refund follow-up: the transaction was aborted');
}

/**
 * Counts one more channel answer without a final word about a refund; at `maxUnknown` the refund leaves
 * the follow-up index for the attention index (one MULTI in the {CP} slot). Called under the refund's
 * lease, which the POS's retry of the refund takes too, so a decision cannot land between the two steps.
 */
export async function noteRefundUnknown(
  ledger: LedgerAccess,
  r: RefundFollowUp,
  nowMs: number,
  maxUnknown: number,
): Promise<{ readonly unknownAnswers: number; readonly needsAttention: boolean }> {
  const member = refundMember(r);
  const k = ledger.keys;
  const unknownAnswers = await ledger.scripts.client.hincrby(k.channelRefundsUnknown(), member, 1);
  if (unknownAnswers < maxUnknown) return { unknownAnswers, needsAttention: false };
  const replies = await ledger.scripts.client
    .multi()
    .zrem(k.channelRefundsPending(), member)
    .zadd(k.channelRefundsAttention(), nowMs, member)
    .exec();
  const failed = replies?.find(([err]) => err !== null)?.[0];
  if (replies === null || failed !== undefined) throw failed ?? new Error('moving a refund to attention: the transaction was aborted');
  return { unknownAnswers, needsAttention: true };
}

/** At most `limit` refunds needing an operator, the longest given up first, with their count of unknown answers. */
export async function refundsInAttention(
  ledger: LedgerAccess,
  limit: number,
): Promise<{ readonly refund: RefundFollowUp; readonly sinceMs: number; readonly unknownAnswers: number }[]> {
  const k = ledger.keys;
  const flat = await ledger.scripts.client.zrange(k.channelRefundsAttention(), 0, limit - 1, 'WITHSCORES');
  const members: string[] = [];
  const scores: number[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    members.push(flat[i]!);
    scores.push(Number(flat[i + 1]));
  }
  if (members.length === 0) return [];
  const counts = await ledger.scripts.client.hmget(k.channelRefundsUnknown(), ...members);
  return members.flatMap((m, i) => {
    const [cardNo = '', terminalId = '', sequence = ''] = m.split(MEMBER_SEPARATOR);
    if (cardNo === '' || terminalId === '') return [];
    return [
      { refund: { cardNo, terminalId, sequence: Number(sequence) }, sinceMs: scores[i] ?? 0, unknownAnswers: Number(counts[i] ?? '0') },
    ];
  });
}

export async function refundAttentionCount(ledger: LedgerAccess): Promise<number> {
  return ledger.scripts.client.zcard(ledger.keys.channelRefundsAttention());
}

/** At most `limit` refunds whose follow-up is due at `nowMs`, earliest first. */
export async function dueRefundFollowUps(ledger: LedgerAccess, nowMs: number, limit: number): Promise<RefundFollowUp[]> {
  const members = await ledger.scripts.client.zrangebyscore(ledger.keys.channelRefundsPending(), 0, nowMs, 'LIMIT', 0, limit);
  return members.flatMap((m) => {
    const [cardNo = '', terminalId = '', sequence = ''] = m.split(MEMBER_SEPARATOR);
    return cardNo === '' || terminalId === '' ? [] : [{ cardNo, terminalId, sequence: Number(sequence) }];
  });
}

export async function refundFollowUpCount(ledger: LedgerAccess): Promise<number> {
  return ledger.scripts.client.zcard(ledger.keys.channelRefundsPending());
}

/** The lease of one follow-up (payment "p|<terminal>|<seq>", refund "r|<card>|<terminal>|<seq>"); see follow-up-lease.lua. */
export function paymentLeaseName(terminalId: string, sequence: number): string {
  return `p${MEMBER_SEPARATOR}${terminalId}${MEMBER_SEPARATOR}${sequence}`;
}

export function refundLeaseName(r: RefundFollowUp): string {
  return `r${MEMBER_SEPARATOR}${refundMember(r)}`;
}

/** Takes (or renews) the lease for `holder`; false when another instance holds it. */
export async function takeFollowUpLease(ledger: LedgerAccess, name: string, holder: string, leaseMs: number): Promise<boolean> {
  const reply = await ledger.scripts.run('follow-up-lease', [ledger.keys.channelFollowUpLease(name)], ['take', holder, leaseMs]);
  return decodeAnswer('follow-up-lease', LEASE_TAKE_ANSWERS, reply as number) === 'taken';
}

export async function releaseFollowUpLease(ledger: LedgerAccess, name: string, holder: string): Promise<void> {
  const reply = await ledger.scripts.run('follow-up-lease', [ledger.keys.channelFollowUpLease(name)], ['release', holder, 1]);
  decodeAnswer('follow-up-lease', LEASE_RELEASE_ANSWERS, reply as number);
}

// ---- the journal -----------------------------------------------------------------------------------

export interface PaidEntry {
  readonly cardNo: string;
  readonly channel: PayerChannel;
  readonly outTradeNo: string;
  readonly channelTxnId: string;
  readonly amountFen: number;
  readonly merchantParty: string;
  readonly terminalId: string;
  readonly sequence: number;
  readonly nowMs: number;
  readonly ttlSec: number;
  /**
   * 'pay': the payer the sale was authorised for; the sale is taken only while the card still names
   * them for the channel (payer_not_bound otherwise: the binding ended since it was looked up).
   * Not looked at by 'unpay' and 'decline'.
   */
  readonly payerId: string;
}

export type PaidCode = AnswerOf<typeof CHANNEL_PAID_ANSWERS>;

/**
 * The journal entry and statement line of a paid payment ('pay'), or of its reversal ('unpay'), once
 * each, with the holder's live event; 'decline' writes the holder's event of a declined payment only.
 * Answers the entry's id (the first one's on a repeat; '' when nothing was journalled) and the amount
 * journalled ('unpay': what refunds left of the payment). 'pay' is refused for a lost, frozen or
 * cancelled card (card_lost ...), and for a payer the card no longer names (payer_not_bound): nothing
 * is journalled then; see channel-paid.lua.
 */
export async function journalChannelPayment(
  ledger: LedgerAccess,
  op: 'pay' | 'unpay' | 'decline',
  e: PaidEntry,
  why = '',
): Promise<{ readonly code: PaidCode; readonly entryId: string; readonly amountFen: number }> {
  const keys = [
    ledger.keys.channelPaid(e.cardNo, e.outTradeNo),
    ledger.keys.account(e.cardNo),
    ledger.keys.journalOfCard(e.cardNo),
    ledger.keys.statement(e.cardNo),
    ledger.keys.cardEvents(e.cardNo),
  ];
  const reply = await ledger.scripts.run('channel-paid', keys, [
    op,
    e.cardNo,
    e.channel,
    e.outTradeNo,
    e.channelTxnId,
    e.amountFen,
    e.merchantParty,
    e.terminalId,
    e.sequence,
    e.nowMs,
    e.ttlSec,
    why,
    op === 'pay' ? e.payerId : '',
    ledger.keys.eventsChannel(),
    e.ttlSec,
  ]);
  if (!Array.isArray(reply) || reply.length !== 3) throw new LedgerInvariantError(`channel-paid.lua answered ${JSON.stringify(reply)}`);
  const code = decodeAnswer('channel-paid', CHANNEL_PAID_ANSWERS, reply[0] as number);
  return { code, entryId: String(reply[1]), amountFen: Number(reply[2]) };
}

// ---- merchant refunds ------------------------------------------------------------------------------

export type ChannelRefundCode = AnswerOf<typeof CHANNEL_REFUND_ANSWERS>;

export interface ChannelRefundStep {
  readonly op: 'begin' | 'done' | 'failed';
  readonly cardNo: string;
  readonly amountFen: number;
  readonly fingerprint: string;
  readonly terminalId: string;
  readonly sequence: number;
  readonly merchantParty: string;
  readonly outTradeNo: string;
  readonly outRefundNo: string;
  readonly channel: PayerChannel;
  readonly channelRefundId: string;
  readonly nowMs: number;
  readonly ttlSec: number;
  readonly originalRef: string;
}

export interface ChannelRefundAnswer {
  readonly code: ChannelRefundCode;
  readonly balanceAfterFen: number;
  readonly refundableLeftFen: number;
  readonly transactionId: string;
  readonly decidedAtMs: number;
}

/** One step of a merchant refund of a code payment (channel-refund.lua); 'key_reused' when the key was another request's. */
export async function channelRefundStep(ledger: LedgerAccess, s: ChannelRefundStep): Promise<ChannelRefundAnswer | 'key_reused'> {
  const k = ledger.keys;
  const reply = await ledger.scripts.run(
    'channel-refund',
    [
      k.channelPaid(s.cardNo, s.outTradeNo),
      k.request(s.cardNo, s.terminalId, s.sequence),
      k.account(s.cardNo),
      k.journalOfCard(s.cardNo),
      k.statement(s.cardNo),
      k.cardEvents(s.cardNo),
    ],
    [
      s.op,
      s.cardNo,
      s.amountFen,
      s.fingerprint,
      s.terminalId,
      s.sequence,
      s.merchantParty,
      s.outTradeNo,
      s.outRefundNo,
      s.channel,
      s.channelRefundId,
      s.nowMs,
      s.ttlSec,
      s.originalRef,
      k.eventsChannel(),
      s.ttlSec,
    ],
  );
  if (typeof reply === 'number') return decodeAnswer('channel-refund', CHANNEL_REFUND_REFUSALS, reply);
  const parts = String(reply).split('|');
  if (parts.length !== 5) throw new LedgerInvariantError(`channel-refund.lua answered ${JSON.stringify(reply)}`);
  const [code, balance, left, txnId, decidedAt] = parts as [string, string, string, string, string];
  const refundableLeftFen = Number(left);
  if (!Number.isSafeInteger(refundableLeftFen) || refundableLeftFen < 0)
    throw new LedgerInvariantError(`channel-refund.lua answered a refundable amount of ${JSON.stringify(left)}`);
  return {
    code: decodeAnswer('channel-refund', CHANNEL_REFUND_ANSWERS, code),
    balanceAfterFen: Number(balance),
    refundableLeftFen,
    transactionId: txnId,
    decidedAtMs: Number(decidedAt),
  };
}

/** A refund's record as channel-refund.lua keeps it; undefined when there is none (never made, or released). */
export interface ChannelRefundRecord {
  readonly fingerprint: string;
  readonly pending: boolean;
  readonly amountFen: number;
  readonly outTradeNo: string;
  readonly outRefundNo: string;
  readonly channel: PayerChannel | undefined;
  readonly originalRef: string;
  readonly merchantParty: string;
  readonly createdAtMs: number;
}

export async function readChannelRefund(
  ledger: LedgerAccess,
  cardNo: string,
  terminalId: string,
  sequence: number,
): Promise<ChannelRefundRecord | undefined> {
  const [fp, cst, amt, ot, orn, ch, orig, at, mp] = await readRequestFields(
    ledger.scripts.client,
    ledger.keys.request(cardNo, terminalId, sequence),
    ['pfp', 'cst', 'amt', 'ot', 'orn', 'ch', 'orig', 'at', 'mp'],
  );
  if (fp === null || fp === undefined || cst === null || cst === undefined) return undefined;
  return {
    fingerprint: fp,
    pending: cst === 'P',
    amountFen: Number(amt),
    outTradeNo: ot ?? '',
    outRefundNo: orn ?? '',
    channel: ch === 'alipay' || ch === 'wechat' ? ch : undefined,
    originalRef: orig ?? '',
    merchantParty: mp ?? '',
    createdAtMs: Number(at ?? '0'),
  };
}

/** A code payment's sale as channel-paid.lua journalled it; `paid` false when no sale was journalled. */
export interface PaidRecord {
  readonly paid: boolean;
  readonly amountFen: number;
  readonly refundedFen: number;
  readonly reservedFen: number;
  /** The `cpay` entry's id ('' when not paid) and the channel's transaction id it names. */
  readonly journalId: string;
  readonly channelTxnId: string;
  /** The `cprev` entry's id, '' while the sale is not reversed. */
  readonly reversalId: string;
}

/** What is journalled, refunded and reserved of a paid code payment (channel-paid.lua's record in the card's shard). */
export async function readPaidRecord(ledger: LedgerAccess, cardNo: string, outTradeNo: string): Promise<PaidRecord> {
  const [tx, amt, refd, rsv, ct, rtx] = await ledger.scripts.client.hmget(
    ledger.keys.channelPaid(cardNo, outTradeNo),
    'tx',
    'amt',
    'refd',
    'rsv',
    'ct',
    'rtx',
  );
  return {
    paid: tx !== null,
    amountFen: Number(amt ?? '0'),
    refundedFen: Number(refd ?? '0'),
    reservedFen: Number(rsv ?? '0'),
    journalId: tx ?? '',
    channelTxnId: ct ?? '',
    reversalId: rtx ?? '',
  };
}

/** At most this many refunds of one payment are read back from its record (a payment has few). */
const MAX_PENDING_REFUNDS_READ = 100;

/**
 * The merchant refunds holding a reservation on a paid code payment, as channel-refund.lua 'begin' names
 * them on the payment's record (`r|<terminal>|<sequence>`); at most MAX_PENDING_REFUNDS_READ. A
 * reservation made before the record named its refunds is counted in `rsv` but not listed here.
 */
export async function pendingRefundsOfPayment(ledger: LedgerAccess, cardNo: string, outTradeNo: string): Promise<RefundFollowUp[]> {
  const h = await ledger.scripts.client.hgetall(ledger.keys.channelPaid(cardNo, outTradeNo));
  const out: RefundFollowUp[] = [];
  for (const field of Object.keys(h)) {
    if (out.length >= MAX_PENDING_REFUNDS_READ) break;
    if (!field.startsWith(`r${MEMBER_SEPARATOR}`)) continue;
    const cut = field.lastIndexOf(MEMBER_SEPARATOR);
    const terminalId = field.slice(2, cut);
    const sequence = Number(field.slice(cut + 1));
    if (terminalId === '' || !Number.isSafeInteger(sequence))
      throw new LedgerInvariantError(`paid record of ${outTradeNo} names refund "${field}"`);
    out.push({ cardNo, terminalId, sequence });
  }
  return out;
}

/** Whether a refund is on the follow-up index or on the attention index (someone will decide it). */
export async function refundIsFollowedUp(ledger: LedgerAccess, r: RefundFollowUp): Promise<boolean> {
  const member = refundMember(r);
  const k = ledger.keys;
  const [pending, attention] = await Promise.all([
    ledger.scripts.client.zscore(k.channelRefundsPending(), member),
    ledger.scripts.client.zscore(k.channelRefundsAttention(), member),
  ]);
  return pending !== null || attention !== null;
}

/** The account's status letter (A active, L lost, F frozen, C cancelled), undefined when there is no account. */
export async function cardStatusOf(ledger: LedgerAccess, cardNo: string): Promise<string | undefined> {
  return (await ledger.scripts.client.hget(ledger.keys.account(cardNo), 'st')) ?? undefined;
}
