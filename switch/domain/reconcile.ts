// Daily reconciliation of one payment channel: the channel's statement of a campus day (its bill, read by
// the adapter into StatementRows) against the ledger's journal. Every channel transaction must be in the
// ledger once with the same amount, and every ledger entry that came from the channel must be on the
// channel's statement. Nothing here changes money: it lists differences for a person to act on.
//
// Matching is by the switch's own order id (out_trade_no), which both sides carry: the channel's 商户订单号
// and, in the journal, the `sq` of a channel recharge (`rch` from `x:ch:<CHANNEL>`) or the `ot` of a payment
// code paid at a POS (`cpay` from the channel; its reversal `cprev` and a merchant's refund `cref` are refunds,
// matched by the payment's order id like the channel's statement lists them). For each order id the
// payments on each side are counted and the net amounts (paid minus refunded) compared:
//   missing_in_ledger   the channel took money for an order the ledger has no entry of
//   missing_at_channel  the ledger credited an order the channel's statement does not show
//   amount_differs      both have it, with other amounts
//   duplicated          one side shows the same order's payment more than once
//   needs_attention     a recharge order of the day the channel never gave a final answer about (the
//                       settlement loop gave up on it: domain/recharge-orders.ts); an operator checks it
//   fee_needs_attention a utility fee debited from a card that day about which the provider never gave a
//                       final answer (domain/fees.ts, MAX_UNKNOWN_FEE_LOOKS): its money is taken and
//                       neither delivered nor given back yet; an operator checks it with the provider. It
//                       is on no channel's statement, so every channel's reconciliation of the day lists it.
// A payment given back in full at the channel on the same day (a code payment reversed or cancelled
// after it was paid) nets to zero and needs no ledger entry.
//
// Days: the statement covers a Beijing day (00:00-24:00 UTC+8, the campus day). The ledger credits a
// payment after the channel took it (a notification, or the switch's own query), so the journal is read
// from a little before the day (clock skew) to LATE_CREDIT_MS after it; an entry of the day that the day's
// statement lacks is looked up on the previous day's statement before it is reported (paid at 23:59,
// credited at 00:01).
import type { ChannelName, PaymentChannel, StatementRow } from '../channels/channel.js';
import type { SwitchContext } from '../context.js';
import { CancelledError, FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { forEachShard, JournalReadCancelledError, parseJournalEntry, type JournalEntry } from '../ledger/journal.js';
import { shardJournalPages } from '../ledger/report-reads.js';
import { formatYuan as yuan } from '../money.js';
import { feesNeedingAttention } from './fees.js';
import { rechargeOrdersNeedingAttention } from './recharge-orders.js';
import { campusDayRange } from './reports.js';

/** Attention orders read per shard (an operator clears them; more than this many is its own alarm). */
const MAX_ATTENTION_PER_SHARD = 1000;
/** Pending fee payments read per shard for those needing an operator (as `npm run cli -- fee-attention`). */
const MAX_PENDING_FEES_PER_SHARD = 10_000;

/** What reconciliation needs of a switch: the ledger (read only) and the channels. */
export type ReconcileContext = Pick<SwitchContext, 'keys' | 'scripts' | 'channels'>;

export type DifferenceKind =
  'missing_in_ledger' | 'missing_at_channel' | 'amount_differs' | 'duplicated' | 'needs_attention' | 'fee_needs_attention';

export interface ReconcileDifference {
  readonly kind: DifferenceKind;
  /** The channel order id (out_trade_no); for `fee_needs_attention`, the fee provider's order id. */
  readonly outTradeNo: string;
  /** The channel's transaction id(s) of the order on the statement; empty when the channel has none. */
  readonly channelTxnIds: readonly string[];
  /** Paid minus refunded on the statement (fen); undefined when the statement has no line of the order. */
  readonly channelNetFen: number | undefined;
  /** Paid minus refunded in the journal (fen); undefined when the journal has no entry of the order. */
  readonly ledgerNetFen: number | undefined;
  /** The journal entries of the order (stream ids), to look up with the audit or the card's statement. */
  readonly ledgerEntryIds: readonly string[];
  /** The card credited or charged, when the ledger has the order. */
  readonly cardNo: string | undefined;
  /** One line a person can act on. */
  readonly message: string;
}

export interface ReconcileReport {
  readonly channel: ChannelName;
  /** YYYY-MM-DD, Beijing (campus) time. */
  readonly date: string;
  readonly statementLines: number;
  readonly ledgerEntries: number;
  /** Orders on both sides with equal amounts. */
  readonly matchedOrders: number;
  readonly differences: readonly ReconcileDifference[];
}

export interface ReconcileOptions {
  readonly signal: AbortSignal;
  readonly journalPageSize?: number;
}

/** The journal is read this much before the day (the switch's and the channel's clocks may differ). */
export const RECONCILE_CLOCK_SKEW_MS = 10 * 60 * 1000;
/** A payment of the day credited later than this after midnight is a difference on both days. */
export const LATE_CREDIT_MS = 2 * 60 * 60 * 1000;
const SHARD_CONCURRENCY = 8;
/** The channel's party in the journal, `x:ch:<CODE>`, of recharges and payment codes alike (ledger/README.md). */
const RECHARGE_PARTY: Readonly<Record<ChannelName, string>> = { alipay: 'x:ch:ALIPAY', wechat: 'x:ch:WECHAT' };

/** One ledger record of a channel order, read from one journal entry. */
interface LedgerRecord {
  readonly outTradeNo: string;
  readonly kind: 'payment' | 'refund';
  readonly amountFen: number;
  readonly entryId: string;
  readonly cardNo: string;
  readonly atMs: number;
}

/** The ledger's record of a channel order in this entry, or undefined when the entry is not one. */
/** A raw journal field the parsed entry does not carry (`ot`, the out_trade_no of a code payment). */
function rawField(flat: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] === name) return flat[i + 1];
  return undefined;
}

/**
 * The ledger's record of a channel order in one journal entry: a recharge (`rch` from the channel, its
 * order id in `sq`), a payment code paid at a POS (`cpay` from the channel, `ot`) or its reversal
 * (`cprev` back to the channel, a refund on the channel's statement).
 */
function recordOfEntry(entry: JournalEntry, flat: readonly string[], channel: ChannelName): LedgerRecord | undefined {
  const party = RECHARGE_PARTY[channel];
  const base = { amountFen: entry.amountFen, entryId: entry.id, cardNo: entry.cardNo, atMs: entry.atMs };
  if (entry.kind === 'rch' && entry.fromParty === party) return { ...base, outTradeNo: entry.sequence, kind: 'payment' };
  const codeOrder = rawField(flat, 'ot');
  if (codeOrder === undefined) return undefined;
  if (entry.kind === 'cpay' && entry.fromParty === party) return { ...base, outTradeNo: codeOrder, kind: 'payment' };
  if ((entry.kind === 'cprev' || entry.kind === 'cref') && entry.toParty === party)
    return { ...base, outTradeNo: codeOrder, kind: 'refund' };
  return undefined;
}

/** Cheap test on a raw row before parsing it: does any party field name this channel? */
function mentionsChannel(flat: readonly string[], channel: ChannelName): boolean {
  const party = RECHARGE_PARTY[channel];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    if ((flat[i] === 'f' || flat[i] === 't') && flat[i + 1] === party) return true;
  }
  return false;
}

async function ledgerRecords(
  ctx: ReconcileContext,
  channel: ChannelName,
  fromMs: number,
  toMs: number,
  options: ReconcileOptions,
): Promise<LedgerRecord[]> {
  const records: LedgerRecord[] = [];
  const range = {
    start: String(Math.max(0, fromMs - RECONCILE_CLOCK_SKEW_MS)),
    end: String(toMs + RECONCILE_CLOCK_SKEW_MS),
    pageSize: options.journalPageSize,
    cancelled: () => options.signal.aborted,
  };
  await forEachShard(ctx.keys.shardCount, SHARD_CONCURRENCY, async (shard) => {
    for await (const page of shardJournalPages(ctx, shard, range)) {
      for (const row of page) {
        if (!mentionsChannel(row[1], channel)) continue;
        const record = recordOfEntry(parseJournalEntry(row), row[1], channel);
        if (record !== undefined && record.atMs >= fromMs && record.atMs < toMs) records.push(record);
      }
    }
  });
  return records;
}

interface Side<T> {
  payments: T[];
  refunds: T[];
}

function groupBy<T extends { readonly outTradeNo: string; readonly kind: 'payment' | 'refund' }>(
  items: readonly T[],
): Map<string, Side<T>> {
  const groups = new Map<string, Side<T>>();
  for (const item of items) {
    let side = groups.get(item.outTradeNo);
    if (side === undefined) {
      side = { payments: [], refunds: [] };
      groups.set(item.outTradeNo, side);
    }
    (item.kind === 'payment' ? side.payments : side.refunds).push(item);
  }
  return groups;
}

function net(side: Side<{ readonly amountFen: number }>): number {
  return side.payments.reduce((sum, p) => sum + p.amountFen, 0) - side.refunds.reduce((sum, r) => sum + r.amountFen, 0);
}

function difference(
  kind: DifferenceKind,
  outTradeNo: string,
  channelSide: Side<StatementRow> | undefined,
  ledgerSide: Side<LedgerRecord> | undefined,
  message: string,
): ReconcileDifference {
  const ledgerAll = ledgerSide === undefined ? [] : [...ledgerSide.payments, ...ledgerSide.refunds];
  return {
    kind,
    outTradeNo,
    channelTxnIds:
      channelSide === undefined ? [] : [...new Set([...channelSide.payments, ...channelSide.refunds].map((r) => r.channelTxnId))],
    channelNetFen: channelSide === undefined ? undefined : net(channelSide),
    ledgerNetFen: ledgerSide === undefined ? undefined : net(ledgerSide),
    ledgerEntryIds: ledgerAll.map((r) => r.entryId),
    cardNo: ledgerAll[0]?.cardNo,
    message,
  };
}

/** The differences of one order id seen on the statement (and maybe in the ledger). */
function compareOrder(
  outTradeNo: string,
  channelSide: Side<StatementRow>,
  ledgerSide: Side<LedgerRecord> | undefined,
): ReconcileDifference | undefined {
  const channelNet = net(channelSide);
  if (channelSide.payments.length > 1) {
    const txns = channelSide.payments.map((p) => `${p.channelTxnId} ${yuan(p.amountFen)}`).join(', ');
    return difference(
      'duplicated',
      outTradeNo,
      channelSide,
      ledgerSide,
      `the channel's statement shows ${channelSide.payments.length} payments of one order (${txns}): ask the channel which one stands`,
    );
  }
  if (ledgerSide !== undefined && ledgerSide.payments.length > 1) {
    return difference(
      'duplicated',
      outTradeNo,
      channelSide,
      ledgerSide,
      `the ledger recorded ${ledgerSide.payments.length} entries for one channel order: investigate with the audit before correcting`,
    );
  }
  if (ledgerSide === undefined) {
    if (channelNet === 0) return undefined; // paid and given back at the channel the same day: nothing to record
    return difference(
      'missing_in_ledger',
      outTradeNo,
      channelSide,
      undefined,
      `the channel took ${yuan(channelNet)} yuan that the ledger never recorded: find the card of this order and credit it (or refund the payer)`,
    );
  }
  const ledgerNet = net(ledgerSide);
  if (ledgerNet !== channelNet) {
    return difference(
      'amount_differs',
      outTradeNo,
      channelSide,
      ledgerSide,
      `the channel shows ${yuan(channelNet)} yuan, the ledger ${yuan(ledgerNet)} yuan for card ${ledgerSide.payments[0]?.cardNo ?? ledgerSide.refunds[0]?.cardNo ?? '?'}: correct the difference of ${yuan(channelNet - ledgerNet)} yuan with an adjustment`,
    );
  }
  return undefined;
}

function checkChannel(ctx: ReconcileContext, channel: string): ChannelName {
  if (channel !== 'alipay' && channel !== 'wechat')
    throw new InvalidArgumentError(`channel must be alipay or wechat, got "${channel.slice(0, 20)}"`);
  if (!ctx.channels.has(channel)) {
    const variable = channel === 'alipay' ? 'ALIPAY_APP_ID' : 'WECHATPAY_MCH_ID';
    throw new FailedPreconditionError(
      `the ${channel} channel is not configured (${variable} and the rest of its settings): no statement to read`,
    );
  }
  return channel;
}

function previousDate(date: string): string {
  const { startMs } = campusDayRange(date);
  return new Date(startMs - 1 + 8 * 3600_000).toISOString().slice(0, 10);
}

/** The previous day's statement, for credits made just after midnight; none published yet reads as empty. */
async function statementOrEmpty(adapter: PaymentChannel, date: string, signal: AbortSignal): Promise<readonly StatementRow[]> {
  try {
    return await adapter.dailyStatement(date, signal);
  } catch (err) {
    if (err instanceof FailedPreconditionError) return [];
    throw err;
  }
}

/**
 * Reconciles the channel's statement of `date` (YYYY-MM-DD, Beijing time) with the journal. Throws
 * InvalidArgumentError (channel, date), FailedPreconditionError (channel not configured or no
 * statement yet), UnavailableError (the channel did not answer), CancelledError (signal).
 */
export async function reconcileChannelDay(
  ctx: ReconcileContext,
  channelName: string,
  date: string,
  options: ReconcileOptions,
): Promise<ReconcileReport> {
  const channel = checkChannel(ctx, channelName);
  const { startMs, endMs } = campusDayRange(date);
  const adapter = ctx.channels.get(channel);
  if (adapter === undefined) throw new FailedPreconditionError(`the ${channel} channel is not configured`);
  let records: LedgerRecord[];
  const rows = await adapter.dailyStatement(date, options.signal);
  try {
    records = await ledgerRecords(ctx, channel, startMs, endMs + LATE_CREDIT_MS, options);
  } catch (err) {
    if (err instanceof JournalReadCancelledError) throw new CancelledError('reconciliation cancelled before the journal was read');
    throw err;
  }
  const channelOrders = groupBy(rows);
  const ledgerOrders = groupBy(records);
  const differences: ReconcileDifference[] = [];
  let matchedOrders = 0;
  for (const [outTradeNo, channelSide] of channelOrders) {
    const found = compareOrder(outTradeNo, channelSide, ledgerOrders.get(outTradeNo));
    if (found === undefined) matchedOrders += 1;
    else differences.push(found);
  }
  const unmatched = [...ledgerOrders].filter(
    ([outTradeNo, side]) => !channelOrders.has(outTradeNo) && [...side.payments, ...side.refunds].some((r) => r.atMs < endMs),
  );
  const creditedEarly = unmatched.some(([, side]) => [...side.payments, ...side.refunds].some((r) => r.atMs < startMs + LATE_CREDIT_MS));
  const yesterday = creditedEarly
    ? groupBy(await statementOrEmpty(adapter, previousDate(date), options.signal))
    : new Map<string, Side<StatementRow>>();
  for (const [outTradeNo, side] of unmatched) {
    const earlier = yesterday.get(outTradeNo);
    if (earlier !== undefined && net(earlier) === net(side)) continue; // paid before midnight, credited after
    differences.push(
      difference(
        'missing_at_channel',
        outTradeNo,
        undefined,
        side,
        `the ledger credited ${yuan(net(side))} yuan to card ${side.payments[0]?.cardNo ?? side.refunds[0]?.cardNo ?? '?'} for an order the channel's statement does not show: check the order with the channel, and reverse the credit with an adjustment if it was never paid`,
      ),
    );
  }
  for (const order of await rechargeOrdersNeedingAttention(ctx, { channel, maxPerShard: MAX_ATTENTION_PER_SHARD })) {
    if (order.createdAtMs < startMs - RECONCILE_CLOCK_SKEW_MS || order.createdAtMs >= endMs) continue;
    differences.push({
      kind: 'needs_attention',
      outTradeNo: order.orderId,
      channelTxnIds: [],
      channelNetFen: undefined,
      ledgerNetFen: undefined,
      ledgerEntryIds: [],
      cardNo: order.cardNo,
      message: `recharge order of ${yuan(order.amountFen)} yuan for card ${order.cardNo}: the channel gave no final answer after ${order.unknownQueries} queries; check it with the channel (paid: it is credited once its notification or a query comes; a line missing_in_ledger above is the same order)`,
    });
  }
  differences.push(...(await feeDifferences(ctx, startMs, endMs)));
  differences.sort((a, b) => (a.kind === b.kind ? (a.outTradeNo < b.outTradeNo ? -1 : 1) : a.kind < b.kind ? -1 : 1));
  return { channel, date, statementLines: rows.length, ledgerEntries: records.length, matchedOrders, differences };
}

/**
 * The utility fees debited in [startMs, endMs) that need an operator (domain/fees.ts): the ledger took the
 * money, the provider never said whether it delivered. Throws FailedPreconditionError when the pending fees
 * could not all be read (the list would be incomplete).
 */
async function feeDifferences(ctx: ReconcileContext, startMs: number, endMs: number): Promise<ReconcileDifference[]> {
  const { fees, unread } = await feesNeedingAttention(ctx, { maxPerShard: MAX_PENDING_FEES_PER_SHARD });
  if (unread > 0)
    throw new FailedPreconditionError(
      `${unread} pending utility-fee payment(s) beyond ${MAX_PENDING_FEES_PER_SHARD} per shard could not be read, so the fees needing an operator cannot all be listed: run npm run cli -- fee-attention and settle the fees first`,
    );
  return fees
    .filter((fee) => fee.debitedAtMs >= startMs && fee.debitedAtMs < endMs)
    .map((fee) => ({
      kind: 'fee_needs_attention',
      outTradeNo: fee.orderId,
      channelTxnIds: [],
      channelNetFen: undefined,
      ledgerNetFen: fee.amountFen,
      ledgerEntryIds: fee.debitEntryId === '' ? [] : [fee.debitEntryId],
      cardNo: fee.cardNo,
      message: `${fee.kind} fee of ${yuan(fee.amountFen)} yuan taken from card ${fee.cardNo} (kiosk ${fee.terminalId} #${fee.sequence}): the provider gave no final answer after ${fee.unknownLooks} looks; check order ${fee.orderId} with the provider (npm run cli -- fee-attention; the sweep delivers it or gives the money back as soon as the provider answers). Not a channel payment: listed on every channel's reconciliation`,
    }));
}
