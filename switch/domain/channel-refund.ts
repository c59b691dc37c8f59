// A merchant's refund (PosService/Refund) of an Alipay / WeChat code payment: the money goes back to the
// payer through the channel (Alipay trade.refund, WeChat Pay refund), never to the campus card, whose
// balance the payment never moved. In order (each step survives a crash of the switch):
//  1. the refund is put on the follow-up index (a crash from here on leaves it to the loop), then the
//     refunding terminal's sequence number is claimed for the payer's card (like a card refund), and
//     channel-refund.lua 'begin' checks the payment (paid, not reversed, this card, this merchant) and
//     reserves the amount against what is left of it (naming the refund on the payment's record),
//     BEFORE the channel is called: the same request sent 300 times at once reserves once, and refunds
//     together never pass what was paid; a refusal takes it off the follow-up again;
//  2. the channel is asked (out_refund_no from the refunding terminal and sequence: asking again with it
//     never refunds twice, at either channel);
//  3. refunded: 'done' journals it (`cref`, m:<merchant> -> x:ch:<CHANNEL>) with the statement line and
//     the holder's live event, and the answer is recorded (a retry replays it); refused for good:
//     'failed' releases the reservation (nothing changed); not known (a timeout, a system error): the
//     POS gets UNAVAILABLE ("being confirmed, send the same request again"), and the switch's follow-up
//     asks the channel again with the same out_refund_no (Alipay's adapter confirms with the refund
//     query) until it knows. Nothing is guessed.
// The follow-up first asks the channel's refund query (by out_refund_no); only when the channel has no such
// refund is it sent again (same out_refund_no). A lease (follow-up-lease.lua) keeps two switches from
// asking the channel about one refund at once. After MAX_UNKNOWN_REFUND_ANSWERS looks without a final
// word (system errors, timeouts) the refund needs an operator: it leaves the follow-up for the attention
// index, listed by `npm run cli -- refund-attention`. The POS sending the same refund again still asks
// the channel, and a final answer then settles it once (and takes it off the list).
import { createHash, randomUUID } from 'node:crypto';
import type { PaymentChannel, RefundResult as ChannelRefundResult } from '../channels/channel.js';
import type { SwitchContext } from '../context.js';
import type { LedgerAccess } from '../ledger/access.js';
import { FailedPreconditionError, UnavailableError } from '../errors.js';
import {
  channelRefundStep,
  dropRefundFollowUp,
  noteRefundUnknown,
  readChannelRefund,
  readPaidRecord,
  refundsInAttention,
  refundLeaseName,
  releaseFollowUpLease,
  scheduleRefundFollowUp,
  takeFollowUpLease,
  type ChannelPaymentRecord,
  type ChannelRefundAnswer,
  type ChannelRefundStep,
  type RefundFollowUp,
} from '../ledger/channel-payments.js';
import { IdempotencyConflictError } from '../ledger/ledger.js';
import type { RefundResult } from '../ledger/money.js';
import type { Terminal } from './terminals.js';

const CHANNEL_ZH = { wechat: '微信', alipay: '支付宝' } as const;
const REFUND_REASON = '商户退款';
/** The longest wait between two looks at an undecided refund (the wait grows with its age). */
const MAX_REFUND_RETRY_MS = 60_000;
/**
 * Looks without a final answer before a refund needs an operator. With the growing wait (the poll
 * interval, then a quarter of the refund's age, at most a minute) 10 looks span about 5 minutes at the
 * default 4 s poll interval: longer than any channel outage a retry should ride out unattended.
 */
export const MAX_UNKNOWN_REFUND_ANSWERS = 10;

export interface ChannelRefundRequest {
  readonly sequence: number;
  readonly cardNo: string;
  readonly originalTerminalId: string;
  readonly originalSequence: number;
  readonly amountFen: number;
}

/** The refund's id at the channel: deterministic from (ledger, refunding terminal, sequence), at most 29 of [A-Za-z0-9-]. */
export function outRefundNoOf(ctx: Pick<LedgerAccess, 'keys'>, terminalId: string, sequence: number): string {
  const hash = createHash('sha256').update(`${ctx.keys.prefix}|${terminalId}`).digest('hex').slice(0, 10);
  return `RF${hash}-${sequence}`;
}

function adapterOf(ctx: SwitchContext, record: { readonly channel: 'alipay' | 'wechat' | undefined }): PaymentChannel {
  const adapter = record.channel === undefined ? undefined : ctx.channels.get(record.channel);
  if (adapter === undefined) {
    throw new UnavailableError(
      `this switch is not connected to the payment's channel (${record.channel ?? '?'}); refund it from a switch that is`,
    );
  }
  return adapter;
}

function leaseMs(ctx: SwitchContext): number {
  return ctx.config.channelPayment.callTimeoutMs * 3 + 1000;
}

function stillConfirming(channel: 'alipay' | 'wechat'): UnavailableError {
  return new UnavailableError(
    `the ${channel === 'wechat' ? 'WeChat Pay' : 'Alipay'} refund is being confirmed with the channel; send the same request (same sequence number) again in a few seconds to get its answer`,
    { reason: 'REFUND_PENDING', zh: `${CHANNEL_ZH[channel]}退款确认中，请稍后用同一流水号重试查询结果` },
  );
}

/**
 * Refunds a paid code payment through its channel; answers like a card refund (RefundResult, balance
 * unchanged), with the refusals (over_refundable ...) for refund.ts to word. Throws UnavailableError
 * while the channel's answer is not known, FailedPreconditionError when the channel refused.
 */
export async function refundChannelPayment(
  ctx: SwitchContext,
  terminal: Terminal,
  payment: ChannelPaymentRecord,
  request: ChannelRefundRequest,
): Promise<RefundResult> {
  const nowMs = ctx.now();
  const refusal = (code: RefundResult['code']): RefundResult => ({
    code,
    balanceAfterFen: 0,
    refundableLeftFen: 0,
    transactionId: '',
    decidedAtMs: nowMs,
  });
  if (payment.state === 'D') return refusal('payment_declined');
  if (payment.state === 'R') return refusal('payment_reversed');
  if (payment.state === 'P') {
    throw new FailedPreconditionError(
      `payment ${request.originalSequence} of terminal ${request.originalTerminalId} is not decided yet; ask QueryTransaction until it is approved, then refund it`,
    );
  }
  if (payment.cardNo !== request.cardNo || payment.channel === undefined) return refusal('other_card');
  const adapter = adapterOf(ctx, payment);
  const originalRef = `${request.originalTerminalId}:${request.originalSequence}`;
  const step: Omit<ChannelRefundStep, 'op' | 'channelRefundId' | 'nowMs'> = {
    cardNo: request.cardNo,
    amountFen: request.amountFen,
    fingerprint: `cref|${request.cardNo}|${request.amountFen}|${originalRef}`,
    terminalId: terminal.id,
    sequence: request.sequence,
    merchantParty: `m:${terminal.merchantId}`,
    outTradeNo: payment.outTradeNo,
    outRefundNo: outRefundNoOf(ctx, terminal.id, request.sequence),
    channel: payment.channel,
    ttlSec: ctx.config.requestTtlSec,
    originalRef,
  };
  const followUp = { cardNo: request.cardNo, terminalId: terminal.id, sequence: request.sequence };
  const nextLookMs = nowMs + ctx.config.channelPayment.pollIntervalMs;
  // Indexed first, as a payment is: a crash after 'begin' reserved the amount still leaves the refund to the
  // follow-up, which settles it or releases the reservation. Cut off before it was indexed, the reservation
  // kept a later reversal of the payment from giving the payer their money back, with nobody told.
  await scheduleRefundFollowUp(ctx, followUp, nextLookMs);
  const begun = await beginRefund(ctx, step, nowMs);
  switch (begun.code) {
    case 'refunded':
      await dropRefundFollowUp(ctx, followUp);
      return { ...begun, code: 'refunded' };
    case 'begun':
    case 'pending':
      break;
    case 'released':
      throw new Error(`channel-refund.lua answered released to begin (${terminal.id}/${request.sequence})`);
    default:
      // Refused, nothing recorded: no refund (this or another) is under the key, so the entry is this one's.
      await dropRefundFollowUp(ctx, followUp);
      return { ...begun, code: begun.code };
  }
  // Indexed again now that the refund is recorded: a look of the loop between the two (the entry due after a
  // stall longer than the poll interval) found no record and took it off.
  await scheduleRefundFollowUp(ctx, followUp, nextLookMs);
  const holder = randomUUID();
  const lease = refundLeaseName(followUp);
  if (!(await takeFollowUpLease(ctx, lease, holder, leaseMs(ctx)))) throw stillConfirming(payment.channel);
  try {
    // A refund already sent (a retry while its answer is awaited) is asked about, not sent blindly.
    const answer =
      begun.code === 'begun'
        ? await askChannel(ctx, adapter, step, payment.amountFen)
        : await confirm(ctx, adapter, step, payment.amountFen);
    if (answer === undefined) throw stillConfirming(payment.channel);
    return answer;
  } finally {
    await releaseFollowUpLease(ctx, lease, holder).catch(() => undefined);
  }
}

/** channel-refund.lua's answers to 'begin' that record nothing (see its header). */
const BEGIN_REFUSALS: ReadonlySet<string> = new Set([
  'over_refundable',
  'payment_not_found',
  'other_card',
  'other_merchant',
  'payment_reversed',
  'unknown_card',
]);

/**
 * Claims the refund's sequence number, then reserves the refund (channel-refund.lua 'begin'). Begin's
 * refusals (over the refundable amount, another merchant, reversed ...) and its key_reused record
 * nothing, so the claim this request took goes with them: kept, it would refuse another card's request
 * under the number. After an unknown failure (the script may have run) the claim stays.
 */
async function beginRefund(
  ctx: SwitchContext,
  step: Omit<ChannelRefundStep, 'op' | 'channelRefundId' | 'nowMs'>,
  nowMs: number,
): Promise<ChannelRefundAnswer> {
  const claimedNow = await ctx.claims.forCard(step.terminalId, step.sequence, step.cardNo);
  const begun = await channelRefundStep(ctx, { ...step, op: 'begin', channelRefundId: '', nowMs });
  const refused = begun === 'key_reused' || BEGIN_REFUSALS.has(begun.code);
  if (refused && claimedNow) await ctx.claims.release(step.terminalId, step.sequence, step.cardNo);
  if (begun === 'key_reused') {
    throw new IdempotencyConflictError(
      `sequence number ${step.sequence} of terminal ${step.terminalId} was already used for a different request; use a new sequence number`,
    );
  }
  return begun;
}

/**
 * Asks the channel for the refund (again: the same out_refund_no) and records its answer: the result
 * when refunded, undefined while unknown; throws FailedPreconditionError when the channel refused.
 */
async function askChannel(
  ctx: SwitchContext,
  adapter: PaymentChannel,
  step: Omit<ChannelRefundStep, 'op' | 'channelRefundId' | 'nowMs'>,
  totalFen: number,
): Promise<RefundResult | undefined> {
  let result: ChannelRefundResult;
  try {
    result = await adapter.refund(
      { outTradeNo: step.outTradeNo, outRefundNo: step.outRefundNo, refundFen: step.amountFen, totalFen, reason: REFUND_REASON },
      AbortSignal.timeout(ctx.config.channelPayment.callTimeoutMs),
    );
  } catch (err) {
    ctx.log.warn({ err, outRefundNo: step.outRefundNo }, 'channel refund call failed; asked again later');
    return undefined;
  }
  return recordAnswer(ctx, step, result);
}

/**
 * What became of a refund sent before (never guessed): the channel's refund query, then the refund sent
 * again (the same out_refund_no) only when the channel has none.
 */
async function confirm(
  ctx: SwitchContext,
  adapter: PaymentChannel,
  step: Omit<ChannelRefundStep, 'op' | 'channelRefundId' | 'nowMs'>,
  totalFen: number,
): Promise<RefundResult | undefined> {
  const request = {
    outTradeNo: step.outTradeNo,
    outRefundNo: step.outRefundNo,
    refundFen: step.amountFen,
    totalFen,
    reason: REFUND_REASON,
  };
  let known: Awaited<ReturnType<PaymentChannel['queryRefund']>>;
  try {
    known = await adapter.queryRefund(request, AbortSignal.timeout(ctx.config.channelPayment.callTimeoutMs));
  } catch (err) {
    ctx.log.warn({ err, outRefundNo: step.outRefundNo }, 'channel refund query failed; asked again later');
    return undefined;
  }
  return known.status === 'not_found' ? askChannel(ctx, adapter, step, totalFen) : recordAnswer(ctx, step, known);
}

/** Records the channel's answer about a refund: done, failed (throws FailedPreconditionError), or left pending. */
async function recordAnswer(
  ctx: SwitchContext,
  step: Omit<ChannelRefundStep, 'op' | 'channelRefundId' | 'nowMs'>,
  result: ChannelRefundResult,
): Promise<RefundResult | undefined> {
  const followUp = { cardNo: step.cardNo, terminalId: step.terminalId, sequence: step.sequence };
  switch (result.status) {
    case 'unknown':
      return undefined;
    case 'failed': {
      await channelRefundStep(ctx, { ...step, op: 'failed', channelRefundId: '', nowMs: ctx.now() });
      await dropRefundFollowUp(ctx, followUp);
      ctx.log.warn({ outRefundNo: step.outRefundNo, message: result.message }, 'channel refused a merchant refund: nothing refunded');
      throw new FailedPreconditionError(
        `${step.channel === 'wechat' ? 'WeChat Pay' : 'Alipay'} refused the refund (${result.message}); nothing was refunded`,
        { reason: 'CHANNEL_REFUSED', zh: `${CHANNEL_ZH[step.channel]}拒绝退款（${result.message}），未退款` },
      );
    }
    case 'refunded':
    case 'processing': {
      const channelRefundId = result.status === 'refunded' && result.channelRefundId !== '' ? result.channelRefundId : step.outRefundNo;
      const done = await channelRefundStep(ctx, { ...step, op: 'done', channelRefundId, nowMs: ctx.now() });
      await dropRefundFollowUp(ctx, followUp);
      if (done === 'key_reused' || done.code !== 'refunded') {
        throw new Error(`channel-refund.lua answered ${done === 'key_reused' ? done : done.code} to done (${step.outRefundNo})`);
      }
      return { ...done, code: 'refunded' };
    }
  }
}

/** One look at an undecided refund the follow-up found due (under its lease: `holder` is this switch). */
export async function followUpRefund(
  ctx: SwitchContext,
  r: RefundFollowUp,
  holder: string,
  options: { readonly maxUnknownAnswers?: number } = {},
): Promise<void> {
  const lease = refundLeaseName(r);
  if (!(await takeFollowUpLease(ctx, lease, holder, leaseMs(ctx)))) return;
  try {
    const record = await readChannelRefund(ctx, r.cardNo, r.terminalId, r.sequence);
    if (record === undefined || !record.pending || record.channel === undefined) {
      await dropRefundFollowUp(ctx, r);
      return;
    }
    // Asked again later unless decided now; the wait grows with the refund's age (a channel that is down
    // is not hammered), up to a minute.
    const ageMs = Math.max(0, ctx.now() - record.createdAtMs);
    const waitMs = Math.min(MAX_REFUND_RETRY_MS, Math.max(ctx.config.channelPayment.pollIntervalMs, Math.floor(ageMs / 4)));
    await scheduleRefundFollowUp(ctx, r, ctx.now() + waitMs);
    const paid = await readPaidRecord(ctx, r.cardNo, record.outTradeNo);
    const step = {
      cardNo: r.cardNo,
      amountFen: record.amountFen,
      fingerprint: record.fingerprint,
      terminalId: r.terminalId,
      sequence: r.sequence,
      merchantParty: record.merchantParty,
      outTradeNo: record.outTradeNo,
      outRefundNo: record.outRefundNo,
      channel: record.channel,
      ttlSec: ctx.config.requestTtlSec,
      originalRef: record.originalRef,
    };
    let decided: RefundResult | undefined;
    try {
      decided = await confirm(ctx, adapterOf(ctx, record), step, paid.amountFen);
    } catch (err) {
      if (err instanceof FailedPreconditionError) return; // refused for good: released and dropped
      throw err;
    }
    if (decided !== undefined) return;
    const noted = await noteRefundUnknown(ctx, r, ctx.now(), options.maxUnknownAnswers ?? MAX_UNKNOWN_REFUND_ANSWERS);
    if (noted.needsAttention) {
      ctx.log.warn(
        { outRefundNo: record.outRefundNo, channel: record.channel, unknownAnswers: noted.unknownAnswers },
        'channel refund: no final answer from the channel; it needs an operator (npm run cli -- refund-attention)',
      );
    }
  } finally {
    await releaseFollowUpLease(ctx, lease, holder).catch(() => undefined);
  }
}

/** A merchant refund the follow-up gave up asking about, as an operator needs it. */
export interface AttentionRefund {
  readonly channel: 'alipay' | 'wechat' | undefined;
  readonly cardNo: string;
  /** The refunding terminal and its sequence number (the POS's refund request). */
  readonly terminalId: string;
  readonly sequence: number;
  readonly outTradeNo: string;
  readonly outRefundNo: string;
  readonly amountFen: number;
  readonly createdAtMs: number;
  readonly sinceMs: number;
  readonly unknownAnswers: number;
  /** False when the refund's record expired (REQUEST_TTL_DAYS): only the channel knows what became of it. */
  readonly recordKept: boolean;
}

/** The refunds needing an operator (at most `maxCount`), the longest given up first; `channel` filters. */
export async function refundsNeedingAttention(
  ctx: LedgerAccess,
  options: { readonly maxCount: number; readonly channel?: 'alipay' | 'wechat' },
): Promise<AttentionRefund[]> {
  const out: AttentionRefund[] = [];
  for (const item of await refundsInAttention(ctx, options.maxCount)) {
    const { cardNo, terminalId, sequence } = item.refund;
    const record = await readChannelRefund(ctx, cardNo, terminalId, sequence);
    // Decided meanwhile (the lease keeps this from happening; a crash between two commands could): not listed.
    if (record !== undefined && !record.pending) continue;
    if (options.channel !== undefined && record?.channel !== options.channel) continue;
    out.push({
      channel: record?.channel,
      cardNo,
      terminalId,
      sequence,
      outTradeNo: record?.outTradeNo ?? '',
      outRefundNo: record?.outRefundNo ?? outRefundNoOf(ctx, terminalId, sequence),
      amountFen: record?.amountFen ?? 0,
      createdAtMs: record?.createdAtMs ?? 0,
      sinceMs: item.sinceMs,
      unknownAnswers: item.unknownAnswers,
      recordKept: record !== undefined,
    });
  }
  return out;
}
