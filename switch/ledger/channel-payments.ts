// Third-party (Alipay / WeChat) code payments in Redis: the terminal's payment record and sequence
// claim (channel-pay.lua), the follow-up index (Keys.channelPaymentsPending, a zset of
// "<terminal>|<sequence>" scored by when to look next), and the journal entry and statement line of a
// paid payment in the card's shard (channel-paid.lua). domain/channel-payment.ts keeps the rules.
import type { LedgerAccess } from './access.js';
import {
  CHANNEL_PAID_ANSWERS,
  CHANNEL_PAY_ANSWERS,
  CHANNEL_PAY_REFUSALS,
  decodeAnswer,
  LedgerInvariantError,
  type AnswerOf,
} from './answers.js';
import type { PayerChannel } from './channel-payers.js';
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

/** The money is back with the payer (or never left): the record needs no more undoing. */
export async function markChannelPaymentUndone(ledger: LedgerAccess, terminalId: string, sequence: number): Promise<void> {
  payAnswer(await ledger.scripts.run('channel-pay', payKeys(ledger, terminalId, sequence), ['undone']));
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

// ---- the follow-up index ------------------------------------------------------------------------

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
}

/**
 * The journal entry and statement line of a paid payment ('pay'), or of its reversal ('unpay'), once
 * each; answers the entry's id (the first one's on a repeat), '' when there is nothing to reverse.
 */
export async function journalChannelPayment(
  ledger: LedgerAccess,
  op: 'pay' | 'unpay',
  e: PaidEntry,
): Promise<{ readonly code: AnswerOf<typeof CHANNEL_PAID_ANSWERS>; readonly entryId: string }> {
  const keys = [
    ledger.keys.channelPaid(e.cardNo, e.outTradeNo),
    ledger.keys.account(e.cardNo),
    ledger.keys.journalOfCard(e.cardNo),
    ledger.keys.statement(e.cardNo),
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
  ]);
  if (!Array.isArray(reply) || reply.length !== 2) throw new LedgerInvariantError(`channel-paid.lua answered ${JSON.stringify(reply)}`);
  const code = decodeAnswer('channel-paid', CHANNEL_PAID_ANSWERS, reply[0] as number);
  return { code, entryId: String(reply[1]) };
}
