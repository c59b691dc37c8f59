// Money that comes in from outside: recharge from a paid channel order (WeChat, Alipay, the counter),
// exactly once per (channel, order id), within the channel's single-recharge maximum and the card's
// daily recharge maximum; and the card office's adjustments, exactly once per adjustment id. The money
// ledger is the context's (built once by app.ts).
import type { Config } from '../config.js';
import type { SwitchContext } from '../context.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { EXTERNAL_ID_PATTERN, type AdjustResult, type RechargeChannelCode, type RechargeResult } from '../ledger/money.js';
import { formatYuan } from '../money.js';

export const CHANNEL_NAMES: Readonly<Record<RechargeChannelCode, string>> = { WECHAT: '微信', ALIPAY: '支付宝', COUNTER: '柜台' };

export function channelMaxFen(config: Config, channel: RechargeChannelCode): number {
  if (channel === 'WECHAT') return config.wechatMaxRechargeFen;
  if (channel === 'ALIPAY') return config.alipayMaxRechargeFen;
  return config.counterMaxRechargeFen;
}

export interface RechargeOrder {
  readonly cardNo: string;
  readonly channel: RechargeChannelCode;
  readonly orderId: string;
  readonly amountFen: number;
  /** Who asks: the kiosk terminal id or the operator's name (the journal's `tm`). */
  readonly source: string;
  /** An operator's reason (journal field `r`); '' for kiosk and channel recharges. */
  readonly reason: string;
}

/** Checks what can be checked without the ledger: the order id and the channel's single maximum. */
export function checkRechargeOrder(config: Config, channel: RechargeChannelCode, orderId: string, amountFen: number): void {
  if (!EXTERNAL_ID_PATTERN.test(orderId)) {
    throw new InvalidArgumentError(`channel_order_id must be 4-64 of A-Z a-z 0-9 _ -, got "${orderId.slice(0, 70)}"`);
  }
  if (!Number.isSafeInteger(amountFen) || amountFen < 1) {
    throw new InvalidArgumentError(`amount_fen must be a positive whole number of fen (1 = 0.01 yuan), got ${amountFen}`);
  }
  const maxFen = channelMaxFen(config, channel);
  if (amountFen > maxFen) {
    throw new InvalidArgumentError(
      `amount_fen ${amountFen} is over the ${CHANNEL_NAMES[channel]} single-recharge maximum of ${formatYuan(maxFen)} yuan (${maxFen} fen); split it into several recharges`,
    );
  }
}

/** Credits the order; a retry of the same order returns the first answer. Refusals change nothing. */
export async function rechargeCard(ctx: SwitchContext, order: RechargeOrder): Promise<RechargeResult> {
  checkRechargeOrder(ctx.config, order.channel, order.orderId, order.amountFen);
  const result = await ctx.money.recharge({ ...order, dailyLimitFen: ctx.config.dailyRechargeLimitFen });
  switch (result.code) {
    case 'credited':
      return result;
    case 'unknown_card':
      throw new NotFoundError(`card ${order.cardNo} does not exist`);
    case 'card_cancelled':
      throw new FailedPreconditionError(`card ${order.cardNo} is cancelled and takes no recharge; nothing was credited (此卡已注销)`);
    case 'daily_limit_exceeded': {
      const leftFen = result.rechargeableTodayFen ?? 0;
      throw new FailedPreconditionError(
        `the daily recharge maximum of ${formatYuan(ctx.config.dailyRechargeLimitFen)} yuan per card is reached: ` +
          `at most ${formatYuan(leftFen)} yuan (${leftFen} fen) more can be recharged today; nothing was credited (超过当日充值限额)`,
      );
    }
  }
}

export const MAX_ADJUST_FEN = 100_000_000;
export const MAX_REASON_LENGTH = 200;

export interface Adjustment {
  readonly cardNo: string;
  readonly adjustmentId: string;
  /** Non-zero: > 0 credits, < 0 debits. */
  readonly signedAmountFen: number;
  readonly reason: string;
  readonly operator: string;
}

/** An operator's reason: one line of 1-200 characters; returns it as it will be recorded. */
export function checkReason(reason: string): string {
  const trimmed = reason.trim();
  const length = [...trimmed].length;
  if (length < 1 || length > MAX_REASON_LENGTH)
    throw new InvalidArgumentError(`reason must be 1-${MAX_REASON_LENGTH} characters, got ${length}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) throw new InvalidArgumentError('reason must be one line of text without control characters');
  return trimmed;
}

/** Checks an operator adjustment's fields; returns the reason as it will be recorded. */
export function checkAdjustment(adjustmentId: string, signedAmountFen: number, reason: string): string {
  if (!EXTERNAL_ID_PATTERN.test(adjustmentId)) {
    throw new InvalidArgumentError(`adjustment_id must be 4-64 of A-Z a-z 0-9 _ -, got "${adjustmentId.slice(0, 70)}"`);
  }
  if (!Number.isSafeInteger(signedAmountFen) || signedAmountFen === 0 || Math.abs(signedAmountFen) > MAX_ADJUST_FEN) {
    throw new InvalidArgumentError(
      `amount_fen must be a non-zero whole number of fen between -${MAX_ADJUST_FEN} and ${MAX_ADJUST_FEN}, got ${signedAmountFen}`,
    );
  }
  return checkReason(reason);
}

/** An operator's balance correction, exactly once per adjustment id; a debit never goes below zero. */
export async function adjustBalance(ctx: SwitchContext, adjustment: Adjustment): Promise<AdjustResult> {
  const reason = checkAdjustment(adjustment.adjustmentId, adjustment.signedAmountFen, adjustment.reason);
  const result = await ctx.money.adjust({ ...adjustment, reason });
  switch (result.code) {
    case 'adjusted':
      return result;
    case 'unknown_card':
      throw new NotFoundError(`card ${adjustment.cardNo} does not exist`);
    case 'below_zero':
      throw new FailedPreconditionError(
        `the balance is ${formatYuan(result.balanceAfterFen)} yuan (${result.balanceAfterFen} fen); a debit of ${-adjustment.signedAmountFen} fen would take it below zero; nothing was changed`,
      );
  }
}
