// Recharge orders paid through a channel: their ids (which carry the card's shard, since a channel's
// notification names only the order), the typed wrapper of recharge-order.lua (create, finish), and
// the reads the domain needs (one order; the pending orders of every shard, for the settlement loop).
// The credit itself is MoneyLedger.recharge (recharge.lua) on the same order key: see that script.
import { createHash } from 'node:crypto';
import type { LedgerAccess } from './access.js';
import {
  decodeAnswer,
  LedgerInvariantError,
  RECHARGE_ORDER_CREATE_ANSWERS,
  RECHARGE_ORDER_FINISH_ANSWERS,
  RECHARGE_ORDER_REQUERY_ANSWERS,
  RECHARGE_ORDER_REFUSALS,
  type AnswerOf,
} from './answers.js';
import { campusDayKey, IdempotencyConflictError } from './ledger.js';
import { DEFAULT_RECORD_TTL_SEC } from './money.js';

export type OrderChannelCode = 'WECHAT' | 'ALIPAY';

/** At most this many unpaid orders per card at once (a page that keeps asking cannot fill Redis). */
export const MAX_OPEN_ORDERS_PER_CARD = 5;

/** "R" + the shard in base 36 (3 characters: up to 46655 > MAX_SHARDS) + 24 hex: 28 characters. */
const ORDER_ID_PATTERN = /^R([0-9a-z]{3})[0-9a-f]{24}$/;

/**
 * The order id (the channel's out_trade_no) of one card's request: the same request id gives the same
 * order (a retried create finds it); its first characters name the shard, so a notification finds the
 * order without knowing the card.
 */
export function rechargeOrderId(access: LedgerAccess, cardNo: string, requestId: string): string {
  const shard = access.keys.shardOf(cardNo).toString(36).padStart(3, '0');
  const digest = createHash('sha256').update(`${cardNo}|${requestId}`).digest('hex').slice(0, 24);
  return `R${shard}${digest}`;
}

/** The shard an order id names, or undefined when it is not one of ours. */
export function shardOfOrderId(access: LedgerAccess, orderId: string): number | undefined {
  const m = ORDER_ID_PATTERN.exec(orderId);
  if (m === null) return undefined;
  const shard = Number.parseInt(m[1] ?? '', 36);
  return shard < access.keys.shardCount ? shard : undefined;
}

export type CreateOrderCode = AnswerOf<typeof RECHARGE_ORDER_CREATE_ANSWERS>;
export type FinishOrderCode = AnswerOf<typeof RECHARGE_ORDER_FINISH_ANSWERS>;

export interface CreateOrderInput {
  readonly cardNo: string;
  readonly channel: OrderChannelCode;
  readonly orderId: string;
  readonly amountFen: number;
  readonly expiresAtMs: number;
  readonly dailyLimitFen: number;
  /** Who made it: 'holder' (the phone) or the kiosk's terminal id. */
  readonly source: string;
  readonly nowMs: number;
}

export interface CreateOrderResult {
  readonly code: CreateOrderCode;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  /** What may still be ordered today after this answer; undefined when unknown or unlimited. */
  readonly rechargeableTodayFen: number | undefined;
}

/** Makes the order (pending), reserving its amount against the day's maximum; see recharge-order.lua. */
export async function createRechargeOrder(access: LedgerAccess, input: CreateOrderInput): Promise<CreateOrderResult> {
  const k = access.keys;
  const reply = await access.scripts.run(
    'recharge-order',
    [
      k.account(input.cardNo),
      k.order(input.cardNo, input.channel, input.orderId),
      k.rechargePending(k.shardOf(input.cardNo)),
      k.rechargeOpen(input.cardNo),
      k.order(input.cardNo, input.channel === 'WECHAT' ? 'ALIPAY' : 'WECHAT', input.orderId),
    ],
    [
      'create',
      input.cardNo,
      input.channel,
      input.orderId,
      input.amountFen,
      `rco|${input.cardNo}|${input.channel}|${input.amountFen}`,
      input.nowMs,
      input.expiresAtMs,
      campusDayKey(input.nowMs),
      input.dailyLimitFen,
      DEFAULT_RECORD_TTL_SEC,
      MAX_OPEN_ORDERS_PER_CARD,
      input.source,
    ],
  );
  if (typeof reply === 'number') {
    const refusal = decodeAnswer('recharge-order', RECHARGE_ORDER_REFUSALS, reply);
    const errors = {
      key_reused: () => new IdempotencyConflictError(`request ${input.orderId} was used for another recharge order; use a new request id`),
    } satisfies Record<typeof refusal, () => Error>;
    throw errors[refusal]();
  }
  if (typeof reply !== 'string') throw new LedgerInvariantError(`recharge-order answered ${JSON.stringify(reply)}`);
  const [code, created, expires, left] = reply.split('|').map((part) => Number(part));
  if (![created, expires, left].every((n) => n !== undefined && Number.isSafeInteger(n))) {
    throw new LedgerInvariantError(`recharge-order answered ${JSON.stringify(reply)}`);
  }
  return {
    code: decodeAnswer('recharge-order', RECHARGE_ORDER_CREATE_ANSWERS, code),
    createdAtMs: created ?? 0,
    expiresAtMs: expires ?? 0,
    rechargeableTodayFen: (left ?? -1) < 0 ? undefined : left,
  };
}

/** What becomes of an Alipay 校园派 payment: credited to this card, or refused (and refunded) for this reason. */
export type CampusDecision = { readonly cardNo: string } | { readonly refused: string };

/**
 * Records the one decision on an Alipay 校园派 payment (by its out_trade_no) unless one is recorded
 * already, and returns the decision that stands: the first delivery's, for every later delivery of the
 * same payment. Alipay resends a notification for up to 25 hours; a student imported, a name corrected or
 * a new campus day in between must not turn a refunded payment into a credit, nor a credited one into a
 * refund. One command (SET NX GET), so parallel deliveries agree too.
 */
export async function decideCampusPayment(access: LedgerAccess, outTradeNo: string, decision: CampusDecision): Promise<CampusDecision> {
  const text = 'cardNo' in decision ? `card:${decision.cardNo}` : `refused:${decision.refused}`;
  const key = access.keys.idClaim('campus', outTradeNo);
  const previous = await access.scripts.command(['SET', key, text, 'EX', DEFAULT_RECORD_TTL_SEC, 'NX', 'GET']);
  if (previous === null) return decision;
  const stood = String(previous);
  if (stood.startsWith('card:')) return { cardNo: stood.slice('card:'.length) };
  if (stood.startsWith('refused:')) return { refused: stood.slice('refused:'.length) };
  throw new LedgerInvariantError(`the 校园派 decision on ${outTradeNo} is ${JSON.stringify(stood.slice(0, 80))}`);
}

/** S: tidy the indexes after the credit; X: expired; C: closed by the channel. */
export type FinishState = 'S' | 'X' | 'C';

/** Takes the order off the pending indexes (and closes it, unless it is paid); see recharge-order.lua. */
export async function finishRechargeOrder(
  access: LedgerAccess,
  order: { readonly cardNo: string; readonly channel: OrderChannelCode; readonly orderId: string },
  state: FinishState,
  nowMs: number,
): Promise<FinishOrderCode> {
  const reply = await access.scripts.run('recharge-order', orderKeys(access, order), [
    'finish',
    order.channel,
    order.orderId,
    state,
    nowMs,
  ]);
  return decodeAnswer('recharge-order', RECHARGE_ORDER_FINISH_ANSWERS, reply as number);
}

function orderKeys(
  access: LedgerAccess,
  order: { readonly cardNo: string; readonly channel: OrderChannelCode; readonly orderId: string },
): string[] {
  const k = access.keys;
  const shard = k.shardOf(order.cardNo);
  return [
    k.order(order.cardNo, order.channel, order.orderId),
    k.rechargePending(shard),
    k.rechargeOpen(order.cardNo),
    k.rechargeAttention(shard),
  ];
}

export type RequeryOrderCode = AnswerOf<typeof RECHARGE_ORDER_REQUERY_ANSWERS>;

/**
 * The channel's answer to a query was not final: ask again at `nextScoreMs` (the pending index's score),
 * or, after `maxUnknown` such answers, move the order to the attention index; see recharge-order.lua.
 */
export async function requeryRechargeOrder(
  access: LedgerAccess,
  order: { readonly cardNo: string; readonly channel: OrderChannelCode; readonly orderId: string },
  nowMs: number,
  nextScoreMs: number,
  maxUnknown: number,
): Promise<RequeryOrderCode> {
  const reply = await access.scripts.run('recharge-order', orderKeys(access, order), [
    'requery',
    order.channel,
    order.orderId,
    nowMs,
    Math.max(0, nextScoreMs),
    maxUnknown,
  ]);
  return decodeAnswer('recharge-order', RECHARGE_ORDER_REQUERY_ANSWERS, reply as number);
}

/** The orders that need an operator (recharge-order.lua 'requery' gave up on them), shard by shard. */
export async function* attentionRechargeOrders(
  access: LedgerAccess,
  maxPerShard: number,
): AsyncGenerator<{ readonly channel: OrderChannelCode; readonly orderId: string; readonly sinceMs: number }> {
  const redis = access.scripts.client;
  for (let shard = 0; shard < access.keys.shardCount; shard++) {
    const flat = await redis.zrangebyscore(access.keys.rechargeAttention(shard), '-inf', '+inf', 'WITHSCORES', 'LIMIT', 0, maxPerShard);
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const member = flat[i] ?? '';
      const [channel, orderId = ''] = member.split(':');
      if (channel !== 'WECHAT' && channel !== 'ALIPAY')
        throw new LedgerInvariantError(`recharge order ${member} needing attention names no channel`);
      yield { channel, orderId, sinceMs: Number(flat[i + 1]) };
    }
  }
}

/**
 * One order as recorded. `state`: P pending, X expired, C closed, A needs an operator (the channel never
 * gave a final answer); `credited` when recharge.lua credited it.
 */
export interface RechargeOrderRecord {
  readonly orderId: string;
  readonly cardNo: string;
  readonly channel: OrderChannelCode;
  readonly amountFen: number;
  readonly state: 'P' | 'X' | 'C' | 'A';
  readonly credited: boolean;
  /** How many queries in a row got no final answer (recharge-order.lua 'requery'). */
  readonly unknownQueries: number;
  /** The credit's answer (recharge.lua's), '' when not credited. */
  readonly creditAnswer: string;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly source: string;
}

/** The order with this id of this channel, or undefined when there is none (or the id is not ours). */
export async function readRechargeOrder(
  access: LedgerAccess,
  channel: OrderChannelCode,
  orderId: string,
): Promise<RechargeOrderRecord | undefined> {
  const shard = shardOfOrderId(access, orderId);
  if (shard === undefined) return undefined;
  const key = access.keys.orderInShard(shard, channel, orderId);
  const [card, ch, amount, state, created, expires, source, answer, unknown] = await access.scripts.client.hmget(
    key,
    'card',
    'och',
    'oamt',
    'ost',
    'ocat',
    'oexp',
    'osrc',
    'ans',
    'ounk',
  );
  // A record without `och` is not an order of ours (a kiosk's or operator's recharge record of old).
  if (card === null || card === undefined || ch !== channel) return undefined;
  if (state !== 'P' && state !== 'X' && state !== 'C' && state !== 'A')
    throw new LedgerInvariantError(`recharge order ${orderId} has state ${String(state)}`);
  return {
    orderId,
    cardNo: card,
    channel,
    amountFen: Number(amount),
    state,
    credited: answer !== null,
    unknownQueries: Number(unknown ?? '0'),
    creditAnswer: answer ?? '',
    createdAtMs: Number(created),
    expiresAtMs: Number(expires),
    source: source ?? '',
  };
}

/** The pending orders made at or before `cutoffMs`, shard by shard, at most `maxPerShard` of each. */
export async function* pendingRechargeOrders(
  access: LedgerAccess,
  cutoffMs: number,
  maxPerShard: number,
): AsyncGenerator<{ readonly channel: OrderChannelCode; readonly orderId: string }> {
  const redis = access.scripts.client;
  for (let shard = 0; shard < access.keys.shardCount; shard++) {
    const members = await redis.zrangebyscore(access.keys.rechargePending(shard), '-inf', cutoffMs, 'LIMIT', 0, maxPerShard);
    for (const member of members) {
      const [channel, orderId = ''] = member.split(':');
      if (channel !== 'WECHAT' && channel !== 'ALIPAY') throw new LedgerInvariantError(`pending recharge order ${member} names no channel`);
      yield { channel, orderId };
    }
  }
}
