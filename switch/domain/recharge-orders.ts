// Recharge orders paid through a channel (Alipay precreate QR, WeChat Pay Native QR or JSAPI): made by
// the holder's page or a kiosk, paid on the payer's phone, and credited exactly once, only when the
// channel says it is paid: a notification whose signature verified, or the switch's own order query
// (the settlement loop, or a page asking for the state). Either way the credit is recharge.lua on the
// order's own record, so a notification, its resends and a query of the same order credit once.
//
// What credits nothing: a notification that does not verify (forged, tampered: the channel's failure
// reply, so a genuine one garbled on the way is sent again); a verified one for an order we never made,
// for another amount, or that does not say paid (acknowledged, so the channel stops resending what can
// never be accepted, and logged as an error for reconciliation).
import { createHash } from 'node:crypto';
import type {
  ChannelName,
  CloseResult,
  IncomingNotification,
  NotificationReply,
  QueryResult,
  RechargeOrder,
  VerifiedNotification,
} from '../channels/channel.js';
import { ChannelForgedError } from '../channels/channel.js';
import type { SwitchContext } from '../context.js';
import {
  AlreadyExistsError,
  DomainError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
} from '../errors.js';
import {
  createRechargeOrder,
  decideCampusPayment,
  finishRechargeOrder,
  MAX_OPEN_ORDERS_PER_CARD,
  pendingRechargeOrders,
  readRechargeOrder,
  attentionRechargeOrders,
  rechargeOrderId,
  requeryRechargeOrder,
  type CampusDecision,
  type OrderChannelCode,
  type RechargeOrderRecord,
} from '../ledger/recharge-orders.js';
import { readCardRecord } from '../ledger/cards.js';
import { appendOperatorLog } from '../ledger/oplog.js';
import { IdempotencyConflictError } from '../ledger/ledger.js';
import { cardNamedBy, resolveCardholder, type CardholderRef } from './cardholder.js';
import { EXTERNAL_ID_PATTERN } from '../ledger/money.js';
import { formatYuan } from '../money.js';
import { channelMaxFen } from './recharge.js';

export const ORDER_CHANNEL_CODES: Readonly<Record<ChannelName, OrderChannelCode>> = { alipay: 'ALIPAY', wechat: 'WECHAT' };
const ORDER_CHANNEL_NAMES: Readonly<Record<OrderChannelCode, ChannelName>> = { ALIPAY: 'alipay', WECHAT: 'wechat' };
const CHANNEL_ZH: Readonly<Record<ChannelName, string>> = { alipay: '支付宝', wechat: '微信' };
/** Each call to a channel (create, query) gets at most this long. */
export const CHANNEL_CALL_TIMEOUT_MS = 10_000;
const REQUEST_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** What the payer's receipt says. */
const ORDER_SUBJECT = '校园卡充值';

export type OrderState = 'pending' | 'paid' | 'expired' | 'closed';

export interface NewOrder {
  readonly cardNo: string;
  readonly channel: string;
  readonly amountFen: number;
  /** The caller's idempotency key: the same request id gives the same order. */
  readonly requestId: string;
  /** WeChat JSAPI: the payer's openid; absent for a QR. */
  readonly payerId?: string;
  /** 'holder' (the phone) or the kiosk's terminal id. */
  readonly source: string;
  /**
   * The phone's signed-in user: request ids are theirs, not the card's, so a card re-bound to another
   * user never answers that user's request with the old holder's order (made for the old payer's openid,
   * which the channel refuses to make again for another payer). Absent for a kiosk.
   */
  readonly userId?: string;
  /**
   * A kiosk: how long its QR is shown (s). The order lives that long in whole minutes (kioskOrderLifetimeSec),
   * so the channel's code dies with the kiosk's timer. Absent: RECHARGE_ORDER_EXPIRY_SEC.
   */
  readonly qrTimeoutSec?: number;
}

/**
 * The lifetime of a kiosk's order whose QR is shown `qrTimeoutSec`: whole minutes (Alipay's
 * qr_code_timeout_express counts in minutes), rounded down so the code never outlives the kiosk's timer,
 * at least 60 s (the channels' minimum), at most the switch's RECHARGE_ORDER_EXPIRY_SEC.
 */
export function kioskOrderLifetimeSec(qrTimeoutSec: number | undefined, maxSec: number): number {
  if (qrTimeoutSec === undefined || !Number.isSafeInteger(qrTimeoutSec) || qrTimeoutSec <= 0) return maxSec;
  return Math.min(maxSec, Math.max(60, Math.floor(qrTimeoutSec / 60) * 60));
}

export interface OrderView {
  readonly orderId: string;
  readonly channel: ChannelName;
  readonly amountFen: number;
  readonly state: OrderState;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  /** When paid: the credit's transaction id and the balance right after it. */
  readonly transactionId: string;
  readonly balanceAfterFen: number | undefined;
}

function channelOf(name: string): ChannelName {
  if (name === 'alipay' || name === 'wechat') return name;
  throw new InvalidArgumentError(`channel must be alipay or wechat, got ${JSON.stringify(name.slice(0, 20))}`, {
    reason: 'INVALID_FIELD',
    zh: '请选择充值方式（支付宝或微信）',
    field: 'channel',
  });
}

function checkNewOrder(ctx: SwitchContext, order: NewOrder): ChannelName {
  const channel = channelOf(order.channel);
  if (!REQUEST_ID_PATTERN.test(order.requestId)) {
    throw new InvalidArgumentError('requestId must be 1-64 of A-Z a-z 0-9 _ -', {
      reason: 'INVALID_FIELD',
      zh: '请求编号无效，请刷新页面后重试',
      field: 'requestId',
    });
  }
  const maxFen = channelMaxFen(ctx.config, ORDER_CHANNEL_CODES[channel]);
  if (!Number.isSafeInteger(order.amountFen) || order.amountFen < 1 || order.amountFen > maxFen) {
    throw new InvalidArgumentError(
      `amountFen must be a whole number of fen from 1 to ${maxFen} (the ${channel} single-recharge maximum of ${formatYuan(maxFen)} yuan), got ${order.amountFen}`,
      { reason: 'AMOUNT_OUT_OF_RANGE', zh: `${CHANNEL_ZH[channel]}充值单笔金额为0.01-${formatYuan(maxFen)}元`, field: 'amountFen' },
    );
  }
  return channel;
}

/**
 * Makes the order (pending, its amount reserved against the day's maximum) and asks the channel for
 * what the phone pays with. A channel that does not answer leaves the order pending: the settlement
 * loop closes it once it expires, and a retry with the same request id asks the channel again.
 */
export async function newRechargeOrder(
  ctx: SwitchContext,
  order: NewOrder,
): Promise<{
  readonly orderId: string;
  readonly channel: ChannelName;
  readonly amountFen: number;
  readonly expiresAtMs: number;
  readonly pay: RechargeOrder;
}> {
  const channel = checkNewOrder(ctx, order);
  const adapter = ctx.channels.get(channel);
  if (adapter === undefined) {
    throw new FailedPreconditionError(`this switch takes no ${channel} recharges (no ${channel} channel is configured)`, {
      reason: 'CHANNEL_NOT_AVAILABLE',
      zh: `暂不支持${CHANNEL_ZH[channel]}充值`,
      field: 'channel',
    });
  }
  // The ids of the phone ('holder', each signed-in user its own) and of each kiosk are separate namespaces of the card.
  const scope = order.userId === undefined ? order.source : `${order.source}|${order.userId}`;
  const orderId = rechargeOrderId(ctx, order.cardNo, `${scope}|${order.requestId}`);
  const nowMs = ctx.now();
  const made = await createRechargeOrder(ctx, {
    cardNo: order.cardNo,
    channel: ORDER_CHANNEL_CODES[channel],
    orderId,
    amountFen: order.amountFen,
    expiresAtMs: nowMs + kioskOrderLifetimeSec(order.qrTimeoutSec, ctx.config.rechargeOrderExpirySec) * 1000,
    dailyLimitFen: ctx.config.dailyRechargeLimitFen,
    source: order.source,
    nowMs,
  }).catch((err: unknown) => {
    // The ledger names the order; the caller knows its request id.
    if (err instanceof IdempotencyConflictError) {
      throw new IdempotencyConflictError(
        `requestId ${order.requestId} was already used for a recharge order of another amount or channel (order ${orderId}); ` +
          'nothing was changed: use a new requestId for a new order',
      );
    }
    throw err;
  });
  refuseUnmade(ctx, order.cardNo, made);
  if (made.code === 'exists') {
    const record = await readRechargeOrder(ctx, ORDER_CHANNEL_CODES[channel], orderId);
    if (record === undefined || record.credited || record.state !== 'P' || made.expiresAtMs - nowMs < 60_000) {
      throw new AlreadyExistsError(`the order of request ${order.requestId} is paid, closed or about to expire; use a new requestId`, {
        reason: 'ORDER_FINISHED',
        zh: '该充值订单已完成或已过期，请重新发起充值',
        field: 'requestId',
      });
    }
  }
  let pay: RechargeOrder;
  try {
    pay = await adapter.createRechargeOrder(
      {
        outTradeNo: orderId,
        amountFen: order.amountFen,
        subject: ORDER_SUBJECT,
        expiresInSec: Math.floor((made.expiresAtMs - nowMs) / 1000),
        ...(order.payerId === undefined ? {} : { payerId: order.payerId }),
      },
      AbortSignal.timeout(CHANNEL_CALL_TIMEOUT_MS),
    );
  } catch (err) {
    if (err instanceof DomainError && !(err instanceof UnavailableError)) throw err;
    ctx.log.warn(
      { channel, orderId, err: (err as Error).message },
      'the channel did not make the recharge order; it stays pending until it expires',
    );
    throw new UnavailableError(`${channel} did not answer the recharge order; try again with the same requestId`, {
      reason: 'CHANNEL_UNAVAILABLE',
      zh: `${CHANNEL_ZH[channel]}暂时无法下单，请稍后重试`,
    });
  }
  return { orderId, channel, amountFen: order.amountFen, expiresAtMs: made.expiresAtMs, pay };
}

function refuseUnmade(ctx: SwitchContext, cardNo: string, made: Awaited<ReturnType<typeof createRechargeOrder>>): void {
  switch (made.code) {
    case 'created':
    case 'exists':
      return;
    case 'unknown_card':
      throw new NotFoundError(`card ${cardNo} does not exist`);
    case 'card_cancelled':
      throw new FailedPreconditionError(`card ${cardNo} is cancelled and takes no recharge (此卡已注销)`, {
        reason: 'CARD_CANCELLED',
        zh: '此卡已注销，不能充值',
      });
    case 'too_many_open':
      throw new ResourceExhaustedError(
        `the card has ${MAX_OPEN_ORDERS_PER_CARD} unpaid recharge orders; pay one or wait until they expire`,
        {
          reason: 'TOO_MANY_OPEN_ORDERS',
          zh: '未支付的充值订单过多，请先完成支付或稍后再试',
        },
      );
    case 'daily_limit_exceeded': {
      const leftFen = made.rechargeableTodayFen ?? 0;
      throw new FailedPreconditionError(
        `the daily recharge maximum of ${formatYuan(ctx.config.dailyRechargeLimitFen)} yuan is reached with today's recharges and unpaid orders: ` +
          `at most ${formatYuan(leftFen)} yuan (${leftFen} fen) more today`,
        { reason: 'DAILY_RECHARGE_LIMIT', zh: `超过当日充值限额，今日还可充值${formatYuan(leftFen)}元`, field: 'amountFen' },
      );
    }
  }
}

// ---- settling --------------------------------------------------------------------------------

export type SettleOutcome =
  'credited' | 'pending' | 'closed' | 'unknown_order' | 'amount_mismatch' | 'not_paid' | 'not_creditable' | 'refunded' | 'needs_attention';

/**
 * An order the channel keeps answering with no final word (a system error, a timeout, still paying long
 * after it expired) is asked again with a growing wait (RETRY_BASE_MS doubled each time, at most
 * MAX_RETRY_WAIT_MS), and after MAX_UNKNOWN_QUERIES such answers it needs an operator: it leaves the
 * settlement loop (state A), `npm run cli -- recharge-attention` lists it and reconciliation shows it.
 * It can still be credited, once, by a verified notification or a later query; an operator settles it
 * with `npm run cli -- recharge-resolve` (resolveRechargeOrder).
 */
export const MAX_UNKNOWN_QUERIES = 10;
const MAX_RETRY_WAIT_MS = 30 * 60_000;

export interface RequeryPolicy {
  /** The first wait after a non-final answer; doubled after each. */
  readonly retryBaseMs: number;
  readonly maxUnknownQueries: number;
  /** The settlement loop's delay (its pending index's scores are when an order's wait began). */
  readonly olderThanMs: number;
}

/**
 * What settling an order needs: the ledger, the channels, the log and the clock (no terminals, cards or
 * password pool), so an operator's command (cli/recharge-resolve.ts) settles with the same code.
 */
export type SettleContext = Pick<SwitchContext, 'keys' | 'scripts' | 'money' | 'channels' | 'log' | 'now'>;

/** Credits a paid order (recharge.lua: once per order, whoever calls first), then tidies its indexes. */
async function creditPaid(
  ctx: SettleContext,
  order: RechargeOrderRecord,
  paid: { readonly amountFen: number; readonly channelTxnId: string },
  how: 'notification' | 'query' | 'close',
): Promise<SettleOutcome> {
  const where = { channel: order.channel, orderId: order.orderId, how };
  if (paid.amountFen !== order.amountFen) {
    ctx.log.error(
      { ...where, orderFen: order.amountFen, paidFen: paid.amountFen },
      'recharge order paid with another amount: nothing credited (reconcile)',
    );
    // Closed here, so the loop does not ask again; the channel's statement shows the payment to refund.
    await finishRechargeOrder(ctx, order, 'C', ctx.now());
    return 'amount_mismatch';
  }
  // The channel's transaction id goes into the journal's `tm` (reconciliation matches it); ids are safe text.
  const source = /^[A-Za-z0-9_-]{1,64}$/.test(paid.channelTxnId) ? paid.channelTxnId : order.channel;
  const result = await ctx.money.recharge({
    cardNo: order.cardNo,
    channel: order.channel,
    orderId: order.orderId,
    amountFen: order.amountFen,
    source,
    reason: '',
    // The day's maximum was kept when the order was made (recharge-order.lua counts open orders); the
    // channel has the payer's money now, so the credit may not be refused for it.
    dailyLimitFen: 0,
  });
  if (result.code !== 'credited') {
    // The payer paid and no card can take it (cancelled since the order was made, which lasts): it goes
    // back to them before the order is closed, so a failed refund leaves the order for the next
    // notification or sweep. (No keepRefusal here: an order's record with an answer reads as paid.)
    await refundWhole(
      ctx,
      ORDER_CHANNEL_NAMES[order.channel],
      order.orderId,
      order.amountFen,
      `not creditable (${result.code})`,
      '校园卡不可充值，充值退回',
      where,
    );
    await finishRechargeOrder(ctx, order, 'C', ctx.now());
    return 'refunded';
  }
  if (!order.credited)
    ctx.log.info({ ...where, amountFen: order.amountFen, transactionId: result.transactionId }, 'recharge order credited');
  await finishRechargeOrder(ctx, order, 'S', ctx.now());
  return 'credited';
}

/** Asks the channel about one order and settles it when the answer is final. */
export async function settleByQuery(ctx: SettleContext, order: RechargeOrderRecord, policy?: RequeryPolicy): Promise<SettleOutcome> {
  if (order.credited || (order.state !== 'P' && order.state !== 'A')) {
    await finishRechargeOrder(ctx, order, order.credited ? 'S' : order.state === 'X' ? 'X' : 'C', ctx.now());
    return order.credited ? 'credited' : 'closed';
  }
  const adapter = ctx.channels.get(order.channel === 'ALIPAY' ? 'alipay' : 'wechat');
  if (adapter === undefined) return 'pending';
  const answer = await adapter.queryPayment(order.orderId, AbortSignal.timeout(CHANNEL_CALL_TIMEOUT_MS));
  return settleQueryAnswer(ctx, order, answer, policy);
}

/** Settles an open order by the channel's answer to a query of it (the loop's, a page's, an operator's). */
async function settleQueryAnswer(
  ctx: SettleContext,
  order: RechargeOrderRecord,
  answer: QueryResult,
  policy: RequeryPolicy | undefined,
): Promise<SettleOutcome> {
  switch (answer.status) {
    case 'paid':
      return creditPaid(ctx, order, answer, 'query');
    case 'closed':
    case 'failed':
      await finishRechargeOrder(ctx, order, 'C', ctx.now());
      return 'closed';
    case 'not_found':
      // Alipay knows a precreated order only once it is scanned: unknown is final only after expiry.
      if (ctx.now() < order.expiresAtMs) return 'pending';
      await finishRechargeOrder(ctx, order, 'X', ctx.now());
      return 'closed';
    case 'paying':
      // The payer confirming before the order expires is normal; long after it, the channel is stuck.
      if (ctx.now() < order.expiresAtMs) return 'pending';
      return notFinal(ctx, order, policy, 'still paying after the order expired');
    case 'unknown':
      return notFinal(ctx, order, policy, answer.message);
  }
}

/** A query without a final answer: asked again later with a growing wait, or (bound reached) needs attention. */
async function notFinal(
  ctx: SettleContext,
  order: RechargeOrderRecord,
  policy: RequeryPolicy | undefined,
  why: string,
): Promise<SettleOutcome> {
  // Only the settlement loop counts: a page asking for the state does not push the order to an operator.
  if (policy === undefined || order.state !== 'P') return 'pending';
  const nowMs = ctx.now();
  const waitMs = Math.min(MAX_RETRY_WAIT_MS, policy.retryBaseMs * 2 ** Math.min(order.unknownQueries, 20));
  const answer = await requeryRechargeOrder(ctx, order, nowMs, nowMs + waitMs - policy.olderThanMs, policy.maxUnknownQueries);
  if (answer !== 'needs_attention') return answer === 'paid' ? 'credited' : answer === 'closed' ? 'closed' : 'pending';
  ctx.log.error(
    {
      channel: order.channel,
      orderId: order.orderId,
      cardNo: order.cardNo,
      amountFen: order.amountFen,
      queries: order.unknownQueries + 1,
      why,
    },
    'recharge order: the channel gave no final answer; it needs an operator (npm run cli -- recharge-attention, then recharge-resolve)',
  );
  return 'needs_attention';
}

export interface AttentionOrder {
  readonly orderId: string;
  readonly channel: ChannelName;
  readonly cardNo: string;
  readonly amountFen: number;
  readonly createdAtMs: number;
  /** When it was given up to an operator. */
  readonly sinceMs: number;
  readonly unknownQueries: number;
}

/** The recharge orders that need an operator (at most `maxPerShard` of each shard), oldest first per shard. */
export async function rechargeOrdersNeedingAttention(
  ctx: Pick<SwitchContext, 'keys' | 'scripts'>,
  options: { readonly channel?: ChannelName; readonly maxPerShard: number },
): Promise<AttentionOrder[]> {
  const found: AttentionOrder[] = [];
  for await (const { channel, orderId, sinceMs } of attentionRechargeOrders(ctx, options.maxPerShard)) {
    const name: ChannelName = channel === 'ALIPAY' ? 'alipay' : 'wechat';
    if (options.channel !== undefined && options.channel !== name) continue;
    const order = await readRechargeOrder(ctx, channel, orderId);
    // Credited or closed already (a crash came between its credit or close and its tidying, which took it
    // off this index): it needs no operator; resolveRechargeOrder tidies it when asked about it.
    if (order === undefined || order.credited || order.state !== 'A') continue;
    found.push({
      orderId,
      channel: name,
      cardNo: order.cardNo,
      amountFen: order.amountFen,
      createdAtMs: order.createdAtMs,
      sinceMs,
      unknownQueries: order.unknownQueries,
    });
  }
  return found;
}

/** The channel's notification: verified, then settled; answers what the channel's API expects. */
export async function handleChannelNotification(
  ctx: SwitchContext,
  channelName: string,
  incoming: IncomingNotification,
): Promise<NotificationReply | undefined> {
  if (channelName !== 'alipay' && channelName !== 'wechat') return undefined;
  const adapter = ctx.channels.get(channelName);
  if (adapter === undefined) return undefined;
  let verified: VerifiedNotification;
  try {
    verified = await adapter.verifyNotification(incoming);
  } catch (err) {
    if (!(err instanceof ChannelForgedError)) throw err;
    ctx.log.warn({ channel: channelName, reason: err.message }, 'channel notification refused: it does not verify; nothing credited');
    return adapter.notificationReply(false);
  }
  try {
    await settleNotified(ctx, channelName, verified, incoming.body);
    return adapter.notificationReply(true);
  } catch (err) {
    // The ledger did not answer: the channel sends it again later.
    ctx.log.error({ channel: channelName, orderId: verified.outTradeNo, err }, 'channel notification could not be settled now');
    return adapter.notificationReply(false);
  }
}

async function settleNotified(
  ctx: SwitchContext,
  channel: ChannelName,
  notified: VerifiedNotification,
  body: string,
): Promise<SettleOutcome> {
  const order = await readRechargeOrder(ctx, ORDER_CHANNEL_CODES[channel], notified.outTradeNo);
  const campus = order === undefined && channel === 'alipay' ? campusFieldsOf(body) : undefined;
  if (campus !== undefined) return settleCampusPayment(ctx, notified, campus);
  if (order === undefined) {
    ctx.log.error(
      { channel, orderId: notified.outTradeNo, channelTxnId: notified.channelTxnId },
      'notification for a recharge order this switch never made: nothing credited',
    );
    return 'unknown_order';
  }
  if (!notified.paid) {
    // Waiting, closed, or an old notification arriving late: only a paid one moves money; the loop's query closes.
    ctx.log.info({ channel, orderId: order.orderId }, 'channel notification of an unpaid order: nothing to credit');
    return 'not_paid';
  }
  return creditPaid(ctx, order, notified, 'notification');
}

// ---- reading ---------------------------------------------------------------------------------

function viewOf(order: RechargeOrderRecord): OrderView {
  const [, balance, txnId] = order.creditAnswer.split('|');
  // An order an operator looks into (A) is still undecided for its holder.
  const state: OrderState = order.credited
    ? 'paid'
    : order.state === 'P' || order.state === 'A'
      ? 'pending'
      : order.state === 'X'
        ? 'expired'
        : 'closed';
  return {
    orderId: order.orderId,
    channel: order.channel === 'ALIPAY' ? 'alipay' : 'wechat',
    amountFen: order.amountFen,
    state,
    createdAtMs: order.createdAtMs,
    expiresAtMs: order.expiresAtMs,
    transactionId: txnId ?? '',
    balanceAfterFen: order.credited ? Number(balance) : undefined,
  };
}

/** Whose orders a caller may read: the holder's card's, or those a kiosk made. */
type OrderOwner = { readonly cardNo: string } | { readonly terminalId: string };

/** The source of the phone's orders (gateway/recharge-api.ts): no kiosk owns them, whatever its id. */
const PHONE_SOURCE = 'holder';

function owns(owner: OrderOwner, order: RechargeOrderRecord): boolean {
  if ('cardNo' in owner) return order.cardNo === owner.cardNo;
  return order.source !== PHONE_SOURCE && order.source === owner.terminalId;
}

async function readOwnOrder(ctx: SwitchContext, owner: OrderOwner, orderId: string): Promise<RechargeOrderRecord> {
  for (const channel of ['WECHAT', 'ALIPAY'] as const) {
    const order = await readRechargeOrder(ctx, channel, orderId);
    if (order !== undefined && owns(owner, order)) return order;
  }
  throw new NotFoundError(`no recharge order ${orderId.slice(0, 40)} of this ${'cardNo' in owner ? 'card' : 'kiosk'}`, {
    reason: 'ORDER_NOT_FOUND',
    zh: '找不到该充值订单',
  });
}

/** The order's state; a pending one old enough is first asked about at the channel (its notification may be lost). */
export async function rechargeOrderState(ctx: SwitchContext, cardNo: string, orderId: string): Promise<OrderView> {
  return orderStateFor(ctx, { cardNo }, orderId);
}

/** The state of an order a kiosk made (KioskService/RechargeOrderState). */
export async function kioskRechargeOrderState(
  ctx: SwitchContext,
  terminalId: string,
  orderId: string,
): Promise<OrderView & { readonly cardNo: string }> {
  const view = await orderStateFor(ctx, { terminalId }, orderId);
  const order = await readOwnOrder(ctx, { terminalId }, orderId);
  return { ...view, cardNo: order.cardNo };
}

async function orderStateFor(ctx: SwitchContext, owner: OrderOwner, orderId: string): Promise<OrderView> {
  const order = await readOwnOrder(ctx, owner, orderId);
  // An order an operator looks into (A) is asked about too: the channel may know by now (not counted).
  const open = order.state === 'P' || order.state === 'A';
  if (order.credited || !open || ctx.now() - order.createdAtMs < ctx.config.rechargeQueryDelayMs) return viewOf(order);
  try {
    await settleByQuery(ctx, order);
  } catch (err) {
    if (err instanceof DomainError) throw err;
    ctx.log.warn({ orderId, err: (err as Error).message }, 'recharge order query failed; answering the recorded state');
    return viewOf(order);
  }
  return viewOf(await readOwnOrder(ctx, owner, orderId));
}

/** What a kiosk's 取消 left of its order: closed (nothing charged), paid (credited), or open (still payable). */
export type CancelOutcome = 'closed' | 'paid' | 'open';

/**
 * Closes an open order at its channel, so that it can no longer be paid, and then settles it in the
 * ledger by the channel's answer (the kiosk's 取消 and an operator's `recharge-resolve --close`):
 *  - the channel closed it: closed here too (recharge-order.lua 'finish' C: closed, off the pending and
 *    attention indexes, its place among the card's open orders and its amount held against the day's
 *    maximum given back, in one script). No payment can come after it; recharge.lua would still credit
 *    one (it credits a closed order: an order is paid iff the channel says so), so nothing is lost.
 *  - the channel says it was paid before the close got there: credited like any paid order (recharge.lua,
 *    once per order, whichever of this, the notification and the loop's query comes first).
 *  - the channel has no trade for it (an Alipay QR nobody scanned): as the loop's query, expired once the
 *    order is past its expiry (nobody can pay it any more), else left pending: payable until it expires.
 *  - the channel did not answer: left as it was (pending, or needing an operator); 'pending' is answered.
 * `who` names the caller in the log lines.
 */
async function closeAtChannel(
  ctx: SettleContext,
  order: RechargeOrderRecord,
  who: Readonly<Record<string, string>>,
): Promise<{ readonly outcome: SettleOutcome; readonly answer: CloseResult }> {
  const channel = ORDER_CHANNEL_NAMES[order.channel];
  const where = { channel, orderId: order.orderId, ...who };
  const adapter = ctx.channels.get(channel);
  let answer: CloseResult;
  try {
    if (adapter === undefined) throw new Error(`no ${channel} channel is configured`);
    answer = await adapter.closeRechargeOrder(order.orderId, AbortSignal.timeout(CHANNEL_CALL_TIMEOUT_MS));
  } catch (err) {
    if (err instanceof DomainError) throw err;
    answer = { status: 'unknown', message: (err as Error).message };
  }
  switch (answer.status) {
    case 'closed':
      await finishRechargeOrder(ctx, order, 'C', ctx.now());
      ctx.log.info(where, 'recharge order closed at the channel and in the ledger');
      return { outcome: 'closed', answer };
    case 'paid':
      return { outcome: await creditPaid(ctx, order, answer, 'close'), answer };
    case 'not_found':
      if (ctx.now() >= order.expiresAtMs) {
        await finishRechargeOrder(ctx, order, 'X', ctx.now());
        ctx.log.info(where, 'recharge order to close: no trade at the channel and past its expiry; expired in the ledger');
        return { outcome: 'closed', answer };
      }
      break;
    case 'unknown':
      break;
  }
  ctx.log.warn(
    { ...where, answer: answer.status === 'unknown' ? answer.message : 'no trade at the channel yet' },
    'recharge order to close was not closed at the channel: it stays payable until it expires',
  );
  return { outcome: 'pending', answer };
}

/**
 * The holder pressed 取消 on a kiosk's recharge QR, or the kiosk took it down (KioskService/
 * CancelRechargeOrder): the order is closed at its channel and then in the ledger (closeAtChannel: closed,
 * or credited when it was paid before the close got there; left pending when the channel did not answer
 * or has no trade for it yet, and the settlement loop settles it as any order).
 * Only an order this kiosk made (NOT_FOUND otherwise, as for its state); one that is closed, expired or
 * paid already is answered as it is, without asking the channel, so a repeated cancel changes nothing.
 */
export async function cancelKioskRechargeOrder(
  ctx: SwitchContext,
  terminalId: string,
  orderId: string,
): Promise<OrderView & { readonly cardNo: string; readonly outcome: CancelOutcome }> {
  const owner = { terminalId };
  const order = await readOwnOrder(ctx, owner, orderId);
  if (!order.credited && (order.state === 'P' || order.state === 'A')) await closeAtChannel(ctx, order, { terminalId, by: 'kiosk' });
  const now = await readOwnOrder(ctx, owner, orderId);
  const view = viewOf(now);
  const outcome: CancelOutcome = view.state === 'paid' ? 'paid' : view.state === 'pending' ? 'open' : 'closed';
  return { ...view, cardNo: now.cardNo, outcome };
}

// ---- an operator resolves an order -----------------------------------------------------------

/** What an operator's `recharge-resolve` did: credited, closed (or refunded) now, or nothing (no final answer). */
export type ResolveOutcome = 'credited' | 'closed' | 'refunded' | 'amount_mismatch' | 'unknown';

export interface ResolvedOrder {
  readonly orderId: string;
  readonly channel: ChannelName;
  readonly cardNo: string;
  readonly amountFen: number;
  /** What the channel was asked: its order query, or to close the order. */
  readonly asked: 'query' | 'close';
  readonly outcome: ResolveOutcome;
  /** The channel's answer in a few words (the operator log keeps it too). */
  readonly answer: string;
  /** The order now, as its holder sees it. */
  readonly state: OrderState;
  readonly expiresAtMs: number;
  readonly transactionId: string;
  readonly balanceAfterFen: number | undefined;
}

/** The settings that make a channel, for a refusal that says which are missing. */
const CHANNEL_SETTINGS: Readonly<Record<ChannelName, string>> = { alipay: 'ALIPAY_APP_ID', wechat: 'WECHATPAY_MCH_ID' };

function describeAnswer(answer: QueryResult | CloseResult): string {
  switch (answer.status) {
    case 'paid':
      return `paid ${formatYuan(answer.amountFen)} yuan (channel transaction ${answer.channelTxnId})`;
    case 'closed':
      return 'closed';
    case 'failed':
      return `not paid: ${answer.message}`;
    case 'not_found':
      return 'no trade at the channel';
    case 'paying':
      return 'the payer is still paying';
    case 'unknown':
      return `no final answer: ${answer.message}`;
  }
}

function settledAs(outcome: SettleOutcome): ResolveOutcome {
  switch (outcome) {
    case 'credited':
    case 'closed':
    case 'refunded':
    case 'amount_mismatch':
      return outcome;
    default:
      return 'unknown';
  }
}

/** The order an operator names, or a refusal that says what is wrong with the name (nothing changes). */
async function operatorOrder(ctx: SettleContext, channel: ChannelName, orderId: string): Promise<RechargeOrderRecord> {
  const shownId = /^[A-Za-z0-9_-]{1,64}$/.test(orderId) ? orderId : JSON.stringify(orderId.slice(0, 64));
  const order = await readRechargeOrder(ctx, ORDER_CHANNEL_CODES[channel], orderId);
  if (order !== undefined) return order;
  const otherName: ChannelName = channel === 'alipay' ? 'wechat' : 'alipay';
  if ((await readRechargeOrder(ctx, ORDER_CHANNEL_CODES[otherName], orderId)) !== undefined) {
    throw new FailedPreconditionError(
      `recharge order ${shownId} is a ${otherName} order, not ${channel}: run it again with --channel ${otherName}; nothing was changed`,
      {
        reason: 'ORDER_ON_OTHER_CHANNEL',
        zh: `充值订单 ${shownId} 是${CHANNEL_ZH[otherName]}订单，不是${CHANNEL_ZH[channel]}订单：请改用 --channel ${otherName} 重新执行；未做任何更改`,
      },
    );
  }
  throw new NotFoundError(
    `no ${channel} recharge order ${shownId}: check the order id (npm run cli -- recharge-attention lists the orders that need an operator); nothing was changed`,
    {
      reason: 'ORDER_NOT_FOUND',
      zh: `找不到${CHANNEL_ZH[channel]}充值订单 ${shownId}：请核对订单号（npm run cli -- recharge-attention 列出待人工处理的订单）；未做任何更改`,
    },
  );
}

/** Refuses an order that is no longer open (credited, closed, expired): what state it is in, and that nothing changed. */
function refuseFinished(order: RechargeOrderRecord): never {
  const amount = formatYuan(order.amountFen);
  const [en, zh] = order.credited
    ? [`is already credited (${amount} yuan to card ${order.cardNo})`, `已入账（${amount}元，卡号 ${order.cardNo}）`]
    : order.state === 'X'
      ? ['expired unpaid (nothing was credited)', '已过期，未支付（未入账）']
      : ['is closed unpaid (nothing was credited)', '已关闭，未支付（未入账）'];
  throw new FailedPreconditionError(`recharge order ${order.orderId} is not waiting for an operator: it ${en}; nothing was changed`, {
    reason: 'ORDER_NOT_OPEN',
    zh: `充值订单 ${order.orderId} 无需人工处理：${zh}；未做任何更改`,
  });
}

/**
 * An operator resolves a recharge order that needs one (state A: the channel never gave the settlement
 * loop a final answer) or is still pending (`npm run cli -- recharge-resolve`). The channel is asked now,
 * by its order query, or (`close`) to close the order, and the order is settled by the answer exactly as
 * the loop settles it (settleQueryAnswer) or as the kiosk's 取消 does (closeAtChannel):
 *  - paid: credited once (recharge.lua, through creditPaid: a notification or a query crediting it at the
 *    same moment credits nothing more); its hold on the day's maximum moves into the day's credits;
 *  - closed, failed, or no trade at the channel once the order expired: closed in the ledger
 *    (recharge-order.lua 'finish': off the attention index, its hold released);
 *  - no final answer (or no trade yet before the order expires, or still paying): nothing changed.
 * An order that is not open (credited, closed, expired) is refused with its state, without asking the
 * channel (only taken off the indexes a crash left it on), so running it again does nothing more; so are
 * an unknown order id and an order of the other channel. Every resolution that asked the channel is in
 * the operator log (`recharge-resolve`, by `operator`), its outcome included: a credit or close that
 * could not be logged says so.
 */
export async function resolveRechargeOrder(
  ctx: SettleContext,
  request: { readonly channel: string; readonly orderId: string; readonly close: boolean; readonly operator: string },
): Promise<ResolvedOrder> {
  const channel = channelOf(request.channel);
  const order = await operatorOrder(ctx, channel, request.orderId);
  if (order.credited || (order.state !== 'P' && order.state !== 'A')) {
    // Refused with its state, but first taken off the pending / attention indexes and the card's open
    // orders, as the loop's query does (recharge-order.lua 'finish': moves no money): a crash between an
    // order's credit or close and that tidying leaves it there, and nothing else sweeps the attention index.
    await finishRechargeOrder(ctx, order, order.credited ? 'S' : order.state === 'X' ? 'X' : 'C', ctx.now());
    refuseFinished(order);
  }
  const adapter = ctx.channels.get(channel);
  if (adapter === undefined) {
    throw new FailedPreconditionError(
      `the ${channel} channel is not configured here (${CHANNEL_SETTINGS[channel]} and the rest of its settings, as the switch has them): it cannot be asked; nothing was changed`,
      {
        reason: 'CHANNEL_NOT_AVAILABLE',
        zh: `未配置${CHANNEL_ZH[channel]}渠道（${CHANNEL_SETTINGS[channel]} 等设置，与交换机相同），无法查询；未做任何更改`,
      },
    );
  }
  const who = { operator: request.operator };
  let settled: SettleOutcome;
  let answer: QueryResult | CloseResult;
  if (request.close) {
    ({ outcome: settled, answer } = await closeAtChannel(ctx, order, who));
  } else {
    try {
      answer = await adapter.queryPayment(order.orderId, AbortSignal.timeout(CHANNEL_CALL_TIMEOUT_MS));
    } catch (err) {
      if (err instanceof DomainError) throw err;
      answer = { status: 'unknown', message: (err as Error).message };
    }
    settled = await settleQueryAnswer(ctx, order, answer, undefined);
  }
  const outcome = settledAs(settled);
  const asked = request.close ? 'close' : 'query';
  const said = describeAnswer(answer);
  const now = (await readRechargeOrder(ctx, order.channel, order.orderId)) ?? order;
  const view = viewOf(now);
  try {
    await appendOperatorLog(ctx, 'recharge-resolve', request.operator, {
      channel,
      order: order.orderId,
      card: order.cardNo,
      amountFen: String(order.amountFen),
      asked,
      outcome,
      answer: said.slice(0, 200),
    });
  } catch (err) {
    throw new Error(
      `recharge order ${order.orderId} is ${outcome === 'unknown' ? 'unchanged' : outcome} (the channel answered: ${said}) but this could not be added to the operator log: ${(err as Error).message}; record it there by hand`,
    );
  }
  ctx.log.info(
    { channel, orderId: order.orderId, operator: request.operator, asked, outcome, answer: said },
    'recharge order resolved by an operator',
  );
  return {
    orderId: order.orderId,
    channel,
    cardNo: order.cardNo,
    amountFen: order.amountFen,
    asked,
    outcome,
    answer: said,
    state: view.state,
    expiresAtMs: order.expiresAtMs,
    transactionId: view.transactionId,
    balanceAfterFen: view.balanceAfterFen,
  };
}

/**
 * A kiosk's recharge (KioskService/Recharge): the cardholder found by the card on the reader or the
 * student/staff number, then the same order as the phone's, paid with a QR code the kiosk shows.
 */
export async function newKioskRechargeOrder(
  ctx: SwitchContext,
  request: {
    readonly cardholder: CardholderRef | undefined;
    readonly channel: ChannelName;
    readonly requestId: string;
    readonly amountFen: number;
    readonly terminalId: string;
    /** How long the kiosk shows the QR (s); absent: no wish (RECHARGE_ORDER_EXPIRY_SEC). */
    readonly qrTimeoutSec?: number;
  },
): Promise<{ readonly cardNo: string; readonly orderId: string; readonly qrContent: string; readonly expiresAtMs: number }> {
  if (request.terminalId === PHONE_SOURCE) {
    // Its orders would share the phone's ids and be nobody's to follow or close.
    throw new FailedPreconditionError(`a kiosk with the terminal id "${PHONE_SOURCE}" takes no recharges: register it under another id`, {
      reason: 'TERMINAL_ID_RESERVED',
      zh: '此自助机的终端号不可用于充值，请联系卡务中心',
    });
  }
  const cardNo = (await cardOfMadeOrder(ctx, request)) ?? (await resolveCardholder(ctx, request.cardholder)).cardNo;
  const order = await newRechargeOrder(ctx, {
    cardNo,
    channel: request.channel,
    amountFen: request.amountFen,
    requestId: request.requestId,
    source: request.terminalId,
    ...(request.qrTimeoutSec === undefined ? {} : { qrTimeoutSec: request.qrTimeoutSec }),
  });
  // No payer id was given, so the channel answers a QR (Native / precreate).
  if (order.pay.kind !== 'qr') throw new Error(`the ${request.channel} channel answered a ${order.pay.kind} order to a kiosk`);
  return { cardNo, orderId: order.orderId, qrContent: order.pay.qrContent, expiresAtMs: order.expiresAtMs };
}

/**
 * The card of an order this kiosk already made under the request id, found through the card presented even
 * if it was replaced since (or the student/staff number): a retry (the kiosk never got the first answer)
 * is answered that order, not refused because the card on the reader was replaced in between.
 */
async function cardOfMadeOrder(
  ctx: SwitchContext,
  request: {
    readonly cardholder: CardholderRef | undefined;
    readonly channel: ChannelName;
    readonly requestId: string;
    readonly terminalId: string;
  },
): Promise<string | undefined> {
  const cardNo = await cardNamedBy(ctx, request.cardholder);
  if (cardNo === undefined) return undefined;
  const orderId = rechargeOrderId(ctx, cardNo, `${request.terminalId}|${request.requestId}`);
  return (await readRechargeOrder(ctx, ORDER_CHANNEL_CODES[request.channel], orderId)) === undefined ? undefined : cardNo;
}

/** One sweep of the settlement loop: queries pending orders older than `olderThanMs`. */
export async function settlePendingRechargeOrders(
  ctx: SwitchContext,
  options: {
    readonly olderThanMs: number;
    readonly maxPerShard: number;
    /** Default: the loop's interval (RECHARGE_SETTLE_INTERVAL_MS). */
    readonly retryBaseMs?: number;
    readonly maxUnknownQueries?: number;
  },
): Promise<Record<SettleOutcome | 'failed', number>> {
  const policy: RequeryPolicy = {
    retryBaseMs: options.retryBaseMs ?? ctx.config.rechargeSettleIntervalMs,
    maxUnknownQueries: options.maxUnknownQueries ?? MAX_UNKNOWN_QUERIES,
    olderThanMs: options.olderThanMs,
  };
  const report: Record<SettleOutcome | 'failed', number> = {
    credited: 0,
    pending: 0,
    closed: 0,
    unknown_order: 0,
    amount_mismatch: 0,
    not_paid: 0,
    not_creditable: 0,
    refunded: 0,
    needs_attention: 0,
    failed: 0,
  };
  for await (const { channel, orderId } of pendingRechargeOrders(ctx, ctx.now() - options.olderThanMs, options.maxPerShard)) {
    try {
      const order = await readRechargeOrder(ctx, channel, orderId);
      report[order === undefined ? 'unknown_order' : await settleByQuery(ctx, order, policy)] += 1;
    } catch (err) {
      report.failed += 1;
      ctx.log.warn({ channel, orderId, err: (err as Error).message }, 'recharge order query failed; the next sweep tries again');
    }
  }
  return report;
}

// ---- Alipay 校园派 ------------------------------------------------------------------------------
//
// The payer starts in Alipay (校园派, 充校园卡): they pick the school and type a name and a student or staff
// number; Alipay makes the trade (its own out_trade_no, no order of ours) and notifies it with those
// fields, signed like every field of the notification. The card is the number's; it is credited only
// when the account's name is the name typed (the guide: the card is identified by name plus number).
// Anything else (another school, an unknown number, another name, over the channel's or the day's
// maximum) is refunded in full at Alipay at once rather than left for reconciliation: the payer typed
// a card that is not theirs to pay, nobody can be credited, and only a refund makes them whole. The
// refund is idempotent (out_request_no from the trade), so a resent notification refunds nothing twice.
// The decision is made once per payment and kept (decideCampusPayment; a refusal inside recharge.lua is
// kept on the order too), so a resend never credits what was refunded nor refunds what was credited.
// The day's maximum counts the card's unpaid QR orders of the day as well (recharge.lua).

interface CampusFields {
  readonly school: string;
  readonly name: string;
  readonly personNumber: string;
}

/** The 校园派 fields of a verified Alipay notification (form body: every field is covered by its signature). */
function campusFieldsOf(body: string): CampusFields | undefined {
  const fields = new URLSearchParams(body);
  const school = fields.get('school_name') ?? '';
  const name = fields.get('user_name') ?? '';
  const personNumber = fields.get('user_no') ?? '';
  if (school === '' || name === '' || personNumber === '') return undefined;
  return { school: school.trim(), name: name.trim(), personNumber: personNumber.trim() };
}

async function settleCampusPayment(ctx: SwitchContext, notified: VerifiedNotification, campus: CampusFields): Promise<SettleOutcome> {
  const where = { channel: 'alipay', orderId: notified.outTradeNo, campus: true };
  if (!notified.paid) return 'not_paid';
  if (!EXTERNAL_ID_PATTERN.test(notified.outTradeNo)) {
    ctx.log.error(where, '校园派 payment with an out_trade_no the ledger cannot record: left for reconciliation');
    return 'not_creditable';
  }
  // The first delivery's decision stands for every resend of the same payment (ledger/recharge-orders.ts).
  const decision = await decideCampusPayment(ctx, notified.outTradeNo, await campusDecision(ctx, notified, campus));
  if ('refused' in decision) return refundCampusPayment(ctx, notified, decision.refused);
  const source = /^[A-Za-z0-9_-]{1,64}$/.test(notified.channelTxnId) ? notified.channelTxnId : 'alipay';
  const result = await ctx.money.recharge({
    cardNo: decision.cardNo,
    channel: 'ALIPAY',
    orderId: notified.outTradeNo,
    amountFen: notified.amountFen,
    source,
    reason: '',
    dailyLimitFen: ctx.config.dailyRechargeLimitFen,
    // Refused now (over the day's maximum, a cancelled card), refused for good: the payer gets it back.
    keepRefusal: true,
  });
  if (result.code !== 'credited') return refundCampusPayment(ctx, notified, `not creditable (${result.code})`);
  ctx.log.info({ ...where, amountFen: notified.amountFen, transactionId: result.transactionId }, '校园派 recharge credited');
  return 'credited';
}

/** Whose card a 校园派 payment credits by what the payer typed, or why it is refused. */
async function campusDecision(ctx: SwitchContext, notified: VerifiedNotification, campus: CampusFields): Promise<CampusDecision> {
  if (campus.school !== ctx.config.campusSchoolName) return { refused: 'another school' };
  if (notified.amountFen > channelMaxFen(ctx.config, 'ALIPAY')) return { refused: 'over the Alipay single-recharge maximum' };
  const cardNo = await ctx.cards.cardForPersonNumber(campus.personNumber);
  if (cardNo === undefined) return { refused: 'no card has this student or staff number' };
  const record = await readCardRecord(ctx, cardNo);
  if (record.name.trim() === '' || record.name.trim() !== campus.name)
    return { refused: 'the name is not the cardholder name of this number' };
  return { cardNo };
}

/**
 * Gives a refused 校园派 payment back in full; throws when Alipay did not take the refund (the notification
 * is then answered fail and comes again).
 */
function refundCampusPayment(ctx: SwitchContext, notified: VerifiedNotification, why: string): Promise<SettleOutcome> {
  return refundWhole(ctx, 'alipay', notified.outTradeNo, notified.amountFen, why, '校园卡信息不符，充值退回', { campus: true });
}

/**
 * Gives a channel payment that no card can take back to the payer, in full, once: the refund's id comes
 * from the payment's, so a second call asks for the same refund. Throws when the channel did not take it
 * (a notification is then answered fail and comes again; the settlement loop asks again next round).
 */
async function refundWhole(
  ctx: SettleContext,
  channel: ChannelName,
  outTradeNo: string,
  amountFen: number,
  why: string,
  reasonZh: string,
  logFields: Record<string, unknown> = {},
): Promise<SettleOutcome> {
  const adapter = ctx.channels.get(channel);
  if (adapter === undefined) throw new Error(`no ${channel} channel to refund with`);
  const refundNo = `RF${createHash('sha256').update(outTradeNo).digest('hex').slice(0, 24)}`;
  const refund = await adapter.refund(
    { outTradeNo, outRefundNo: refundNo, refundFen: amountFen, totalFen: amountFen, reason: reasonZh },
    AbortSignal.timeout(CHANNEL_CALL_TIMEOUT_MS),
  );
  if (refund.status === 'failed' || refund.status === 'unknown')
    throw new Error(`${channel} did not refund payment ${outTradeNo}: ${refund.message}`);
  ctx.log.warn(
    { channel, orderId: outTradeNo, ...logFields, why, refundNo, refund: refund.status },
    'payment not credited: refunded at the channel',
  );
  return 'refunded';
}
