// Alipay / WeChat payment codes at a campus POS (the guide, sections 二 and 三). The money comes from the
// channel, not from the card: the card is only who may pay (the payer must have bound the channel to a
// campus card: domain/channel-payers.ts), and the ledger records the sale in the card's journal and
// statement without moving its balance.
//
// One payment, in order (each step survives a crash of the switch):
//  1. the follow-up index gets the payment (Keys.channelPaymentsPending), then channel-pay.lua claims the
//     (terminal, sequence) and records the undecided payment, BEFORE the channel is called; a retry of
//     the same request finds the record and answers from it (never a second charge);
//  2. WeChat tells the payer before charging (payerOfCode): an unbound payer is declined, uncharged.
//     Alipay names the buyer only in the payment's answer: an unbound buyer's payment is cancelled at once;
//  3. paid: the journal entry and statement line (channel-paid.lua, once), then the record says paid;
//     declined: the record says why; undecided (the payer still confirming, no answer): OUTCOME_PENDING;
//  4. the follow-up loop (ChannelFollowUp, one per switch, started by app.ts) queries every undecided
//     payment at the channel's cadence until its budget (WeChat 45 s, Alipay 60 s) runs out, then cancels
//     it, and gives back (cancel, else refund) any money the payer should not have paid (unbound payer,
//     POS reversal), retrying until the channel confirms. Records live in Redis, so a restarted switch
//     picks up what the stopped one left.
import { createHash, randomUUID } from 'node:crypto';
import type { ChannelName, ChannelPayer, PaymentChannel, PaymentResult, QueryResult } from '../channels/channel.js';
import type { SwitchContext } from '../context.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import {
  beginChannelPayment,
  cardStatusOf,
  dropFollowUp,
  dueFollowUps,
  dueRefundFollowUps,
  finishChannelPayment,
  journalChannelPayment,
  markChannelPaymentUndone,
  paymentLeaseName,
  pendingRefundsOfPayment,
  readChannelPayment,
  readPaidRecord,
  rearmChannelPaymentUndo,
  recordPayerCard,
  refundIsFollowedUp,
  releaseFollowUpLease,
  scheduleFollowUp,
  scheduleRefundFollowUp,
  takeFollowUpLease,
  tombstoneChannelPayment,
  type ChannelPaymentRecord,
  type FinishPayment,
  type PaidEntry,
} from '../ledger/channel-payments.js';
import { IdempotencyConflictError, ReversalMismatchError, type ReverseResult } from '../ledger/ledger.js';
import { cardOfChannelPayer } from './channel-payers.js';
import { followUpRefund } from './channel-refund.js';
import type { Terminal } from './terminals.js';

/** WeChat Pay payment codes: 18 digits starting 10-15. */
export const WECHAT_CODE_PATTERN = /^1[0-5]\d{16}$/;
/** Alipay payment codes: 16-24 digits starting 25-30. */
export const ALIPAY_CODE_PATTERN = /^(?:2[5-9]|30)\d{14,22}$/;

/** Which channel a payment code belongs to by its format; undefined when it is no channel's. */
export function channelOfCode(code: string): ChannelName | undefined {
  if (WECHAT_CODE_PATTERN.test(code)) return 'wechat';
  if (ALIPAY_CODE_PATTERN.test(code)) return 'alipay';
  return undefined;
}

export type ChannelPaymentCode =
  | 'approved'
  | 'pending'
  | 'payer_not_bound'
  | 'insufficient_funds'
  | 'channel_declined'
  | 'channel_timeout'
  | 'channel_unavailable'
  | 'card_lost'
  | 'card_frozen'
  | 'card_cancelled'
  | 'already_reversed';

export interface ChannelPaymentOutcome {
  readonly code: ChannelPaymentCode;
  readonly channel: ChannelName;
  /** The switch's order id at the channel (out_trade_no): the POS's transaction id from the first answer on. */
  readonly transactionId: string;
  /** The payer's card, once paid; '' otherwise (a POS learns nothing about an unbound payer). */
  readonly cardNo: string;
  readonly channelTxnId: string;
  readonly decidedAtMs: number;
  readonly amountFen: number;
}

/** Why a record was declined (its `why`), as the outcome code the POS gets. */
const DECLINED_CODES: ReadonlySet<string> = new Set([
  'payer_not_bound',
  'insufficient_funds',
  'channel_declined',
  'channel_timeout',
  'channel_unavailable',
  'card_lost',
  'card_frozen',
  'card_cancelled',
]);

/**
 * The card's state that stops its holder paying with a bound channel code (the guide's 挂失 / 冻结 / 注销):
 * the same rule as the campus QR code, since the account is stopped whatever the credential. An unbound
 * e-card is no reason: the channel binding is the payer's identity binding (the guide's 绑定个人信息).
 * channel-paid.lua checks it atomically with the sale; WeChat's payer is also checked before charging.
 */
const STOPPED_CARD: Readonly<Record<string, 'card_lost' | 'card_frozen' | 'card_cancelled'>> = {
  L: 'card_lost',
  F: 'card_frozen',
  C: 'card_cancelled',
};

const OUT_TRADE_NO_PREFIX = 'CP';
const TERMINAL_HASH_LENGTH = 10;

/** The terminal part of its out_trade_no: the ledger's prefix is in it, so two ledgers on one channel never collide. */
function terminalHash(ctx: SwitchContext, terminalId: string): string {
  return createHash('sha256').update(`${ctx.keys.prefix}|${terminalId}`).digest('hex').slice(0, TERMINAL_HASH_LENGTH);
}

/** Deterministic from (ledger, terminal, sequence), at most 2 + 10 + 1 + 16 = 29 characters of [A-Za-z0-9-]. */
export function outTradeNoOf(ctx: SwitchContext, terminalId: string, sequence: number): string {
  return `${OUT_TRADE_NO_PREFIX}${terminalHash(ctx, terminalId)}-${sequence}`;
}

/** The sequence number a transaction id of this terminal names; undefined when it is not one of this terminal's. */
export function sequenceOfTransactionId(ctx: SwitchContext, terminalId: string, transactionId: string): number | undefined {
  const prefix = `${OUT_TRADE_NO_PREFIX}${terminalHash(ctx, terminalId)}-`;
  if (!transactionId.startsWith(prefix)) return undefined;
  const digits = transactionId.slice(prefix.length);
  const sequence = Number(digits);
  return /^[1-9]\d{0,15}$/.test(digits) && Number.isSafeInteger(sequence) ? sequence : undefined;
}

/** The record as the POS's answer. */
export function outcomeOfRecord(record: ChannelPaymentRecord, fallbackChannel: ChannelName): ChannelPaymentOutcome {
  const base = {
    channel: record.channel ?? fallbackChannel,
    transactionId: record.outTradeNo,
    cardNo: '',
    channelTxnId: '',
    decidedAtMs: record.decidedAtMs === 0 ? record.createdAtMs : record.decidedAtMs,
    amountFen: record.amountFen,
  };
  switch (record.state) {
    case 'P':
      return { ...base, code: 'pending' };
    case 'S':
      return { ...base, code: 'approved', cardNo: record.cardNo, channelTxnId: record.channelTxnId };
    case 'R':
      return { ...base, code: 'already_reversed' };
    case 'D':
      return { ...base, code: DECLINED_CODES.has(record.why) ? (record.why as ChannelPaymentCode) : 'channel_declined' };
  }
}

export interface ChannelPaymentRequest {
  readonly sequence: number;
  readonly amountFen: number;
  readonly code: string;
}

/** What happens to a payment after the channel's answer (or a query's). */
type Settled = { readonly done: true } | { readonly done: false };

export class ChannelPayments {
  constructor(
    private readonly ctx: SwitchContext,
    /** This switch instance, as the holder of follow-up leases (follow-up-lease.lua). */
    readonly instanceId: string = randomUUID(),
  ) {}

  /** A lease outlives the longest work under it: a query, or a cancel and then a refund, each one call. */
  leaseMs(): number {
    return this.ctx.config.channelPayment.callTimeoutMs * 3 + 1000;
  }

  /** Numbers the leases this instance takes (see leased). */
  private leaseCount = 0;

  /**
   * Runs `work` while holding the payment's lease; false (nothing done) when another holds it. The holder
   * is this call, not only this instance: a POS reversal or this switch's own follow-up must not work on a
   * payment whose charge is still in flight here (a reversal's cancel answered ORDERNOTEXIST before the
   * charge reached the channel once left a payer debited); they find it held and the follow-up does it later.
   */
  async leased(name: string, work: () => Promise<void>, release: 'await' | 'send' = 'await'): Promise<boolean> {
    const holder = `${this.instanceId}.${++this.leaseCount}`;
    if (!(await takeFollowUpLease(this.ctx, name, holder, this.leaseMs()))) return false;
    try {
      await work();
    } finally {
      // 'send': the release goes out without waiting for its answer, so the caller's next command (pay()'s
      // read of the record) rides the same write: one round trip less per code payment, each queued behind
      // the taps when the switch is busy. Commands of one connection run in order; one that fails leaves
      // the lease to expire by itself, as an awaited one does.
      const released = releaseFollowUpLease(this.ctx, name, holder).catch((err: unknown) =>
        this.ctx.log.warn({ err, lease: name }, 'follow-up lease not released; it expires by itself'),
      );
      if (release === 'await') await released;
    }
    return true;
  }

  /**
   * Drops a decided payment's follow-up without waiting for the answer (see leased's 'send'). Best effort
   * by design: a follow-up left due finds the payment decided and drops it then (followUpLeased).
   */
  private sendDropFollowUp(terminalId: string, sequence: number): void {
    dropFollowUp(this.ctx, terminalId, sequence).catch((err: unknown) =>
      this.ctx.log.warn({ err, terminalId, sequence }, 'follow-up of a decided payment not dropped; the loop drops it when due'),
    );
  }

  channel(name: ChannelName): PaymentChannel {
    const channel = this.ctx.channels.get(name);
    if (channel === undefined) {
      const label = name === 'wechat' ? 'WeChat Pay' : 'Alipay';
      throw new FailedPreconditionError(
        `this switch is not connected to ${label} (WECHATPAY_* / ALIPAY_* are not set); ask the payer to tap the campus card or show the campus QR code`,
      );
    }
    return channel;
  }

  private signal(): AbortSignal {
    return AbortSignal.timeout(this.ctx.config.channelPayment.callTimeoutMs);
  }

  private budgetMs(name: ChannelName): number {
    const c = this.ctx.config.channelPayment;
    return name === 'wechat' ? c.wechatBudgetMs : c.alipayBudgetMs;
  }

  /** Authorize with a payment code: decided, declined or pending; a retry answers from the record. */
  async pay(terminal: Terminal, request: ChannelPaymentRequest): Promise<ChannelPaymentOutcome> {
    const name = channelOfCode(request.code);
    if (name === undefined) throw new InvalidArgumentError('third_party.code is neither a WeChat Pay nor an Alipay payment code');
    const channel = this.channel(name);
    const ctx = this.ctx;
    const nowMs = ctx.now();
    const outTradeNo = outTradeNoOf(ctx, terminal.id, request.sequence);
    const codeHash = createHash('sha256').update(request.code).digest('hex').slice(0, 16);
    // Indexed first: a crash after the record is written still leaves it to the follow-up loop.
    await scheduleFollowUp(ctx, terminal.id, request.sequence, nowMs + ctx.config.channelPayment.pollIntervalMs);
    const begun = await beginChannelPayment(ctx, {
      terminalId: terminal.id,
      sequence: request.sequence,
      fingerprint: `cp|${name}|${codeHash}|${request.amountFen}`,
      channel: name,
      outTradeNo,
      amountFen: request.amountFen,
      merchantParty: `m:${terminal.merchantId}`,
      nowMs,
      deadlineMs: nowMs + this.budgetMs(name),
      ttlSec: ctx.config.requestTtlSec,
    });
    if (begun === 'key_reused') {
      throw new IdempotencyConflictError(
        `sequence number ${request.sequence} of terminal ${terminal.id} was already used for a different request; use a new sequence number`,
      );
    }
    if (begun !== 'begun') return this.answerOf(terminal.id, request.sequence, name);
    // What channel-pay.lua 'begin' just wrote: charge() settles against it without reading it back (a
    // decision that came meanwhile, a POS reversal, is found by finishChannelPayment's already_final).
    const record: ChannelPaymentRecord = {
      terminalId: terminal.id,
      sequence: request.sequence,
      state: 'P',
      channel: name,
      outTradeNo,
      amountFen: request.amountFen,
      merchantParty: `m:${terminal.merchantId}`,
      createdAtMs: nowMs,
      deadlineMs: nowMs + this.budgetMs(name),
      decidedAtMs: 0,
      cardNo: '',
      channelTxnId: '',
      payerId: '',
      why: '',
      journalId: '',
      undo: false,
      tombstone: false,
    };
    // The lease keeps the follow-up of another switch (or this one's) off the payment while it is charged.
    await this.leased(paymentLeaseName(terminal.id, request.sequence), () => this.charge(channel, terminal, request, record), 'send');
    return this.answerOf(terminal.id, request.sequence, name);
  }

  private async answerOf(terminalId: string, sequence: number, name: ChannelName): Promise<ChannelPaymentOutcome> {
    const record = await readChannelPayment(this.ctx, terminalId, sequence);
    if (record === undefined) throw new Error(`channel payment ${terminalId}/${sequence} has no record right after it was made`);
    return outcomeOfRecord(record, name);
  }

  /** The channel calls of a new payment; every outcome ends in the record (or leaves it to the follow-up). */
  private async charge(
    channel: PaymentChannel,
    terminal: Terminal,
    request: ChannelPaymentRequest,
    record: ChannelPaymentRecord,
  ): Promise<void> {
    const { sequence } = request;
    const { outTradeNo } = record;
    if (channel.payerOfCode !== undefined) {
      const payer = await channel.payerOfCode(request.code, this.signal());
      const why = payer === 'code_invalid' ? 'channel_declined' : payer === 'unknown' ? 'channel_unavailable' : undefined;
      const cardNo = why === undefined ? await this.cardOf(payer as ChannelPayer) : undefined;
      if (cardNo !== undefined) await recordPayerCard(this.ctx, terminal.id, sequence, cardNo);
      // A stopped card is declined before charging (channel-paid.lua checks again when the sale is taken).
      const stopped = cardNo === undefined ? undefined : STOPPED_CARD[(await cardStatusOf(this.ctx, cardNo)) ?? ''];
      if (why !== undefined || cardNo === undefined || stopped !== undefined) {
        // Nothing was charged: the channel was not asked to pay.
        await this.decide(terminal.id, sequence, { state: 'D', undo: false, why: why ?? stopped ?? 'payer_not_bound' });
        return;
      }
    }
    const result = await channel.payWithCode(
      { outTradeNo, authCode: request.code, amountFen: request.amountFen, subject: subjectOf(terminal), terminalId: terminal.id },
      this.signal(),
    );
    await this.settle(record, result);
  }

  private async cardOf(payer: ChannelPayer): Promise<string | undefined> {
    return cardOfChannelPayer(this.ctx, payer.channel, payer.payerId);
  }

  private async decide(terminalId: string, sequence: number, f: Omit<FinishPayment, 'nowMs'>): Promise<void> {
    const answer = await finishChannelPayment(this.ctx, terminalId, sequence, { ...f, nowMs: this.ctx.now() });
    if (!f.undo) await dropFollowUp(this.ctx, terminalId, sequence);
    if (answer === 'finished' && f.state === 'D') await this.tellDecline(terminalId, sequence);
  }

  /**
   * A declined payment of a known card reaches its holder's live events (a page open on the phone sees it).
   * Not one declined because its payer is no longer bound to the card: the card named on the record was
   * the payer's before its binding ended, and its holder now (a new one, perhaps) is not who paid.
   */
  private async tellDecline(terminalId: string, sequence: number): Promise<void> {
    const record = await readChannelPayment(this.ctx, terminalId, sequence);
    if (record === undefined || record.cardNo === '' || record.channel === undefined || record.why === 'payer_not_bound') return;
    await journalChannelPayment(
      this.ctx,
      'decline',
      { ...entryOf(record, this.ctx), channelTxnId: record.outTradeNo },
      record.why.toUpperCase(),
    );
  }

  /** Applies a channel's answer (payment or query) to an undecided record; done when nothing is left to follow up. */
  async settle(record: ChannelPaymentRecord, result: PaymentResult | QueryResult): Promise<Settled> {
    const { terminalId, sequence } = record;
    switch (result.status) {
      case 'paid':
        return this.paid(record, result);
      case 'failed': {
        const why = result.reason === 'insufficient_funds' ? 'insufficient_funds' : 'channel_declined';
        await this.decide(terminalId, sequence, { state: 'D', undo: false, why });
        return { done: true };
      }
      case 'closed':
        await this.decide(terminalId, sequence, { state: 'D', undo: false, why: 'channel_declined' });
        return { done: true };
      case 'paying':
      case 'unknown':
      case 'not_found':
        await this.undoAgainIfUndone(record);
        return { done: false };
    }
  }

  /**
   * No final answer, and the payment was reversed or given up meanwhile with its undo already confirmed:
   * that confirmation (WeChat's ORDERNOTEXIST) may have come before this payment reached the channel, whose
   * answer is now lost. Back on the follow-up with undo set: it cancels once more (nothing there: confirmed
   * again; the payment arrived after all: it goes back).
   */
  private async undoAgainIfUndone(record: ChannelPaymentRecord): Promise<void> {
    const { terminalId, sequence } = record;
    const fresh = await readChannelPayment(this.ctx, terminalId, sequence);
    if (fresh === undefined || fresh.state === 'P' || fresh.state === 'S' || fresh.undo || fresh.tombstone) return;
    await scheduleFollowUp(this.ctx, terminalId, sequence, this.ctx.now() + this.ctx.config.channelPayment.pollIntervalMs);
    await rearmChannelPaymentUndo(this.ctx, terminalId, sequence);
  }

  private async paid(record: ChannelPaymentRecord, result: Extract<PaymentResult, { status: 'paid' }>): Promise<Settled> {
    const { terminalId, sequence } = record;
    const cardNo = await this.cardOf(result.payer);
    const channel = record.channel ?? result.payer.channel;
    if (cardNo === undefined || result.amountFen !== record.amountFen) {
      if (cardNo !== undefined) this.ctx.log.error({ terminalId, sequence, channel }, 'channel paid another amount than asked: given back');
      // Paid by someone who may not pay here (or a wrong amount): no sale, and the money goes back now.
      await this.decide(terminalId, sequence, {
        state: 'D',
        undo: true,
        why: cardNo === undefined ? 'payer_not_bound' : 'channel_declined',
        channelTxnId: result.channelTxnId,
        payerId: result.payer.payerId,
      });
      const fresh = await readChannelPayment(this.ctx, terminalId, sequence);
      if (fresh !== undefined && fresh.undo) await this.undo(fresh);
      return { done: true };
    }
    // The card on the record before the sale is journalled: whatever gives this payment back later (a POS
    // reversal, a give-up after a crash) finds the sale in the card's shard and journals its reversal too.
    if (!(await recordPayerCard(this.ctx, terminalId, sequence, cardNo))) {
      // Decided meanwhile (reversed, given up) and the channel has just taken the money: back on the
      // follow-up with undo set BEFORE the sale is journalled, so a crash after it still leaves both the
      // money and the sale's reversal to the loop (a confirmed undo had taken it off the follow-up).
      await scheduleFollowUp(this.ctx, terminalId, sequence, this.ctx.now() + this.ctx.config.channelPayment.pollIntervalMs);
      await rearmChannelPaymentUndo(this.ctx, terminalId, sequence);
    }
    const entry = {
      cardNo,
      channel,
      outTradeNo: record.outTradeNo,
      channelTxnId: result.channelTxnId,
      amountFen: record.amountFen,
      merchantParty: record.merchantParty,
      terminalId,
      sequence,
      nowMs: this.ctx.now(),
      ttlSec: this.ctx.config.requestTtlSec,
      payerId: result.payer.payerId,
    };
    // The script takes the sale only while the binding just looked up still stands (the card names this
    // payer) and the card is not stopped: an unbinding, a new holder or a loss report since the look-up wins.
    const journalled = await journalChannelPayment(this.ctx, 'pay', entry);
    const refused = REFUSED_SALE_ANSWERS[journalled.code];
    if (refused !== undefined) {
      // The card was lost, frozen or cancelled, or the payer's binding ended, when the sale was to be
      // taken: no sale, the money goes back.
      await this.decide(terminalId, sequence, {
        state: 'D',
        undo: true,
        why: refused,
        cardNo,
        channelTxnId: result.channelTxnId,
        payerId: result.payer.payerId,
      });
      const fresh = await readChannelPayment(this.ctx, terminalId, sequence);
      if (fresh !== undefined && fresh.undo) await this.undo(fresh);
      return { done: true };
    }
    if (journalled.code !== 'journalled' && journalled.code !== 'already_journalled')
      throw new Error(`channel-paid.lua answered ${journalled.code} to a payment of card ${cardNo}`);
    const answer = await finishChannelPayment(this.ctx, terminalId, sequence, {
      state: 'S',
      nowMs: entry.nowMs,
      undo: false,
      cardNo,
      channelTxnId: result.channelTxnId,
      payerId: result.payer.payerId,
      journalId: journalled.entryId,
    });
    if (answer === 'already_final') {
      const fresh = await readChannelPayment(this.ctx, terminalId, sequence);
      if (fresh === undefined || fresh.state === 'S') {
        // The other path (the POS's call or the follow-up's query) settled the same payment first: it
        // stands, journalled once (journalChannelPayment is idempotent per order); nothing to give back.
        await dropFollowUp(this.ctx, terminalId, sequence);
        return { done: true };
      }
      // Reversed (POS, or timed out) while the channel was paying: the sale is void, and what the channel
      // has just taken goes back, even when an earlier cancel was confirmed: WeChat answers the reverse of an
      // order it has not seen yet with ORDERNOTEXIST (nothing taken, undo cleared), and this payment reached
      // it after that. Put back on the follow-up first, so a crash still leaves the money to go back.
      await journalChannelPayment(this.ctx, 'unpay', entry);
      await scheduleFollowUp(this.ctx, terminalId, sequence, this.ctx.now() + this.ctx.config.channelPayment.pollIntervalMs);
      await rearmChannelPaymentUndo(this.ctx, terminalId, sequence);
      const armed = await readChannelPayment(this.ctx, terminalId, sequence);
      if (armed !== undefined && armed.undo) await this.undo(armed);
      return { done: true };
    }
    this.sendDropFollowUp(terminalId, sequence);
    return { done: true };
  }

  /**
   * Gives the money of a record marked `undo` back to the payer: cancel at the channel, a refund when
   * the channel refuses to cancel. True when the channel confirmed (the record is then cleared).
   */
  async undo(record: ChannelPaymentRecord): Promise<boolean> {
    const name = record.channel;
    if (name === undefined) return true;
    const channel = this.channel(name);
    const backFen = await this.reverseJournalledSale(record);
    if (backFen === 'refunds_pending') return false;
    if (backFen <= 0) return this.undone(record);
    // After a partial refund the channel cannot cancel the trade (it would give back more): refund the rest.
    const cancelled =
      backFen === record.amountFen ? await channel.cancelPayment(record.outTradeNo, this.signal()) : ({ status: 'refused' } as const);
    let back = cancelled.status === 'cancelled';
    if (cancelled.status === 'refused') {
      const refund = await channel.refund(
        {
          outTradeNo: record.outTradeNo,
          outRefundNo: `${record.outTradeNo}R`,
          refundFen: backFen,
          totalFen: record.amountFen,
          reason: '校园卡交易撤销',
        },
        this.signal(),
      );
      back = refund.status === 'refunded' || refund.status === 'processing';
    }
    if (!back) return false;
    return this.undone(record);
  }

  /**
   * Money going back to the payer takes its journalled sale with it, whatever the path (a POS reversal of a
   * paid or of a still undecided payment, a give-up, a sale refused for the card's state): the `cprev` entry
   * (idempotent; a crash may have come between the two), so the journal never keeps a sale nobody paid for.
   * paid() names the card on the record before it journals a sale, so a sale is found by the record's card.
   * Answers what is to go back: all of it when nothing was journalled, else what merchant refunds left (they
   * stay given back); 'refunds_pending' while a refund holds a reservation on the payment.
   */
  private async reverseJournalledSale(record: ChannelPaymentRecord): Promise<number | 'refunds_pending'> {
    if (record.cardNo === '') return record.amountFen;
    const sale = await readPaidRecord(this.ctx, record.cardNo, record.outTradeNo);
    if (!sale.paid) return record.amountFen;
    const unpaid = await journalChannelPayment(this.ctx, 'unpay', {
      ...entryOf(record, this.ctx),
      channelTxnId: record.channelTxnId || sale.channelTxnId || record.outTradeNo,
    });
    if (unpaid.code === 'refunds_pending') {
      await this.followRefundsHoldingBack(record);
      return 'refunds_pending';
    }
    // Read after the reversal: a refund decided in between is counted (refd only grows until rtx is set).
    const after = await readPaidRecord(this.ctx, record.cardNo, record.outTradeNo);
    return after.amountFen - after.refundedFen;
  }

  /**
   * The give-back waits for the merchant refunds under way on the payment. One that nothing follows up (a
   * crash cut it off between its reservation and its indexing) would keep it waiting for ever: it goes on
   * the refund follow-up now, which settles it (or lists it for an operator), and the give-back goes on.
   */
  private async followRefundsHoldingBack(record: ChannelPaymentRecord): Promise<void> {
    const { terminalId, sequence, cardNo, outTradeNo } = record;
    const refunds = await pendingRefundsOfPayment(this.ctx, cardNo, outTradeNo);
    for (const r of refunds) {
      if (await refundIsFollowedUp(this.ctx, r)) continue;
      await scheduleRefundFollowUp(this.ctx, r, this.ctx.now());
      this.ctx.log.warn(
        { terminalId, sequence, outTradeNo, refund: r },
        'channel payment: a merchant refund holding back its give-back was on no follow-up (cut off by a crash); followed up now',
      );
    }
    if (refunds.length > 0) return;
    // A reservation that names no refund (made by a switch before refunds were named on the payment): only
    // an operator can tell which refund it was. Said loudly, and looked at again only after a while.
    this.ctx.log.warn(
      { terminalId, sequence, outTradeNo, cardNo },
      'channel payment: its give-back waits on a refund reservation that names no refund; the payer is not paid back until an operator settles it',
    );
    await scheduleFollowUp(this.ctx, terminalId, sequence, this.ctx.now() + STUCK_GIVE_BACK_RETRY_MS);
  }

  private async undone(record: ChannelPaymentRecord): Promise<boolean> {
    await markChannelPaymentUndone(this.ctx, record.terminalId, record.sequence);
    await dropFollowUp(this.ctx, record.terminalId, record.sequence);
    return true;
  }

  /** One look at a payment the follow-up loop found due: query, or (budget spent) cancel, or give money back. */
  async followUp(terminalId: string, sequence: number): Promise<void> {
    // Another switch (or this one's POS call) working on it now: it is left to them; it stays due.
    await this.leased(paymentLeaseName(terminalId, sequence), () => this.followUpLeased(terminalId, sequence));
  }

  private async followUpLeased(terminalId: string, sequence: number): Promise<void> {
    const record = await readChannelPayment(this.ctx, terminalId, sequence);
    if (record === undefined || (record.state !== 'P' && !record.undo) || record.channel === undefined) {
      await dropFollowUp(this.ctx, terminalId, sequence);
      return;
    }
    // Looked at again later unless finished now (a crash mid-look leaves it due again).
    await scheduleFollowUp(this.ctx, terminalId, sequence, this.ctx.now() + this.ctx.config.channelPayment.pollIntervalMs);
    if (record.undo) {
      await this.undo(record);
      return;
    }
    if (this.ctx.now() >= record.deadlineMs) {
      await this.giveUp(record);
      return;
    }
    const result = await this.channel(record.channel).queryPayment(record.outTradeNo, this.signal());
    await this.settle(record, result);
  }

  /**
   * The budget is spent: the payment is cancelled at the channel (the payer keeps their money) and declined;
   * unless its sale was journalled (finishJournalledSale).
   */
  private async giveUp(record: ChannelPaymentRecord): Promise<void> {
    if (await this.finishJournalledSale(record)) return;
    const answer = await finishChannelPayment(this.ctx, record.terminalId, record.sequence, {
      state: 'D',
      nowMs: this.ctx.now(),
      undo: true,
      why: 'channel_timeout',
    });
    if (answer !== 'finished') return;
    await this.tellDecline(record.terminalId, record.sequence);
    const fresh = await readChannelPayment(this.ctx, record.terminalId, record.sequence);
    if (fresh !== undefined) await this.undo(fresh);
  }

  /**
   * A sale journalled while the record stayed undecided (the switch died, or Redis stalled, between
   * channel-paid.lua 'pay' and finishing the record) is proof the channel said paid: the payment is finished
   * paid, and the POS's retry with the same sequence number is approved. True when the record is decided
   * (now, or by another path meanwhile); false when no sale was journalled.
   */
  private async finishJournalledSale(record: ChannelPaymentRecord): Promise<boolean> {
    const { terminalId, sequence, outTradeNo } = record;
    const cardNo = record.cardNo !== '' ? record.cardNo : await this.payerCardAtChannel(record);
    if (cardNo === undefined) return false;
    const sale = await readPaidRecord(this.ctx, cardNo, outTradeNo);
    if (!sale.paid) return false;
    const answer = await finishChannelPayment(this.ctx, terminalId, sequence, {
      state: 'S',
      nowMs: this.ctx.now(),
      undo: false,
      cardNo,
      channelTxnId: sale.channelTxnId,
      journalId: sale.journalId,
    });
    if (answer !== 'finished') return true; // decided meanwhile: its own follow-up (if any) goes on
    await dropFollowUp(this.ctx, terminalId, sequence);
    this.ctx.log.warn(
      { terminalId, sequence, outTradeNo, cardNo },
      'channel payment: its sale was journalled but the record left undecided (a crash or a stall); finished as paid after its budget',
    );
    return true;
  }

  /**
   * The payer's card of a record that names none, from the channel's answer: a sale journalled by a switch
   * that did not yet name the card on the record first. Undefined when not paid, not known, or unbound.
   */
  private async payerCardAtChannel(record: ChannelPaymentRecord): Promise<string | undefined> {
    if (record.channel === undefined) return undefined;
    let result: QueryResult;
    try {
      result = await this.channel(record.channel).queryPayment(record.outTradeNo, this.signal());
    } catch (err) {
      this.ctx.log.warn({ err, outTradeNo: record.outTradeNo }, 'channel query before giving up failed; given up without it');
      return undefined;
    }
    return result.status === 'paid' ? this.cardOf(result.payer) : undefined;
  }

  /** Reverse from the POS: the sale is void; money the payer paid goes back (now, or by the follow-up loop). */
  async reverse(terminal: Terminal, originalSequence: number, amountFen: number): Promise<ReverseResult> {
    const ctx = this.ctx;
    const record = await readChannelPayment(ctx, terminal.id, originalSequence);
    if (record === undefined) {
      const outTradeNo = outTradeNoOf(ctx, terminal.id, originalSequence);
      const answer = await tombstoneChannelPayment(
        ctx,
        terminal.id,
        originalSequence,
        outTradeNo,
        amountFen,
        ctx.now(),
        ctx.config.requestTtlSec,
      );
      if (answer === 'key_reused')
        throw new ReversalMismatchError(`payment ${originalSequence} of terminal ${terminal.id} was not a payment code`);
      if (answer === 'exists') return this.reverse(terminal, originalSequence, amountFen);
      return { code: 'tombstoned', balanceAfterFen: 0, decidedAtMs: ctx.now() };
    }
    if (record.amountFen !== amountFen) {
      throw new ReversalMismatchError(
        `payment ${originalSequence} of terminal ${terminal.id} was ${record.amountFen} fen, not ${amountFen}; send its own amount`,
      );
    }
    if (record.state === 'D') return { code: 'nothing_to_reverse', balanceAfterFen: 0, decidedAtMs: record.decidedAtMs };
    if (record.state === 'R')
      return { code: record.tombstone ? 'tombstoned' : 'reversed', balanceAfterFen: 0, decidedAtMs: record.decidedAtMs };
    // Followed up until the channel confirms the money is back, even if this switch stops now.
    await scheduleFollowUp(ctx, terminal.id, originalSequence, ctx.now() + ctx.config.channelPayment.pollIntervalMs);
    const answer = await finishChannelPayment(ctx, terminal.id, originalSequence, { state: 'R', nowMs: ctx.now(), undo: true });
    if (answer === 'already_final') return this.reverse(terminal, originalSequence, amountFen);
    const fresh = await readChannelPayment(ctx, terminal.id, originalSequence);
    if (fresh !== undefined) {
      // Under the lease (another switch's follow-up may be on it: then it gives the money back).
      await this.leased(paymentLeaseName(terminal.id, originalSequence), async () => {
        await this.undo(fresh);
      }).catch((err: unknown) =>
        ctx.log.warn({ err, terminalId: terminal.id, sequence: originalSequence }, 'channel cancel failed; the follow-up retries it'),
      );
    }
    return { code: 'reversed', balanceAfterFen: 0, decidedAtMs: fresh?.decidedAtMs ?? ctx.now() };
  }

  /** QueryTransaction: the payment's answer now, by sequence number or transaction id. */
  async query(terminal: Terminal, by: { readonly sequence: number } | { readonly transactionId: string }): Promise<ChannelPaymentOutcome> {
    const sequence = 'sequence' in by ? by.sequence : sequenceOfTransactionId(this.ctx, terminal.id, by.transactionId);
    const record = sequence === undefined ? undefined : await readChannelPayment(this.ctx, terminal.id, sequence);
    if (record === undefined || record.tombstone) {
      throw new NotFoundError(
        'this terminal sent no payment-code payment with that sequence number or transaction id (card payments are answered by Authorize itself)',
      );
    }
    return outcomeOfRecord(record, record.channel ?? 'wechat');
  }
}

/** What channel-paid.lua refuses a sale for: the card's state, or the payer's binding ended since it was looked up. */
const REFUSED_SALE_ANSWERS: Readonly<Partial<Record<string, 'card_lost' | 'card_frozen' | 'card_cancelled' | 'payer_not_bound'>>> = {
  card_lost: 'card_lost',
  card_frozen: 'card_frozen',
  card_cancelled: 'card_cancelled',
  payer_not_bound: 'payer_not_bound',
};

/** The journal side of a record (its channel transaction id is the caller's to set). */
function entryOf(record: ChannelPaymentRecord, ctx: SwitchContext): PaidEntry {
  return {
    cardNo: record.cardNo,
    channel: record.channel ?? 'wechat',
    outTradeNo: record.outTradeNo,
    channelTxnId: record.channelTxnId || record.outTradeNo,
    amountFen: record.amountFen,
    merchantParty: record.merchantParty,
    terminalId: record.terminalId,
    sequence: record.sequence,
    nowMs: ctx.now(),
    ttlSec: ctx.config.requestTtlSec,
    payerId: record.payerId,
  };
}

function subjectOf(terminal: Terminal): string {
  const place = terminal.location.trim();
  return [...(place === '' ? '校园卡消费' : `校园消费 ${place}`)].slice(0, 64).join('');
}

/** How long a give-back held by a refund reservation that names no refund waits between two looks. */
const STUCK_GIVE_BACK_RETRY_MS = 60_000;

/** Payments looked at per tick, and at once: a bound on the loop's work and on the channels' load. */
const FOLLOW_UP_BATCH = 50;
const FOLLOW_UP_CONCURRENCY = 8;
const MAX_TICK_MS = 1000;

/**
 * The switch's follow-up of undecided and to-be-undone code payments: every tick, the due entries of
 * the follow-up index (in Redis: a restarted switch finds what a stopped one left). Built once by
 * app.ts; stop() waits for the look in progress.
 */
export class ChannelFollowUp {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly ctx: SwitchContext,
    private readonly payments: ChannelPayments,
  ) {}

  start(): void {
    if (this.ctx.channels.size === 0) return;
    this.schedule();
  }

  private tickMs(): number {
    return Math.max(5, Math.min(MAX_TICK_MS, Math.floor(this.ctx.config.channelPayment.pollIntervalMs / 2)));
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.tickMs());
    this.timer.unref();
  }

  /** One pass over the due payments (also called by tests that want it now). */
  async tick(): Promise<void> {
    let due;
    try {
      due = await dueFollowUps(this.ctx, this.ctx.now(), FOLLOW_UP_BATCH);
    } catch (err) {
      this.ctx.log.warn({ err }, 'channel follow-up: the index could not be read; next tick tries again');
      return;
    }
    await this.refundsTick();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!this.stopped && next < due.length) {
        const item = due[next++];
        if (item === undefined) return;
        await this.payments
          .followUp(item.terminalId, item.sequence)
          .catch((err: unknown) =>
            this.ctx.log.warn({ err, terminalId: item.terminalId, sequence: item.sequence }, 'channel follow-up failed; tried again later'),
          );
      }
    };
    await Promise.all(Array.from({ length: Math.min(FOLLOW_UP_CONCURRENCY, due.length) }, worker));
  }

  /** The due merchant refunds whose channel answer is not known yet (few: one at a time). */
  private async refundsTick(): Promise<void> {
    let due;
    try {
      due = await dueRefundFollowUps(this.ctx, this.ctx.now(), FOLLOW_UP_BATCH);
    } catch (err) {
      this.ctx.log.warn({ err }, 'channel follow-up: the refund index could not be read; next tick tries again');
      return;
    }
    for (const item of due) {
      if (this.stopped) return;
      await followUpRefund(this.ctx, item, this.payments.instanceId).catch((err: unknown) =>
        this.ctx.log.warn({ err, ...item }, 'channel refund follow-up failed; tried again later'),
      );
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running;
  }
}
