// Refund: a merchant gives back all or part of an approved payment, never more than is left of it,
// from a terminal of the same merchant, idempotently per the refunding terminal's sequence number.
// A payment made with an Alipay / WeChat payment code is refunded through its channel instead
// (domain/channel-refund.ts): the money goes back to the payer's channel account, the card's balance
// does not move.
import type { ChannelName } from '../channels/channel.js';
import type { SwitchContext } from '../context.js';
import { FailedPreconditionError, NotFoundError, PermissionDeniedError } from '../errors.js';
import { readChannelPayment } from '../ledger/channel-payments.js';
import { IdempotencyConflictError } from '../ledger/ledger.js';
import type { RefundResult } from '../ledger/money.js';
import { formatYuan } from '../money.js';
import { refundChannelPayment } from './channel-refund.js';
import type { Terminal } from './terminals.js';

export interface RefundRequestData {
  readonly sequence: number;
  readonly cardNo: string;
  readonly originalTerminalId: string;
  readonly originalSequence: number;
  readonly amountFen: number;
}

/** Refunds; every refusal is an error that names what to do, and changes nothing. */
export async function refundPayment(
  ctx: SwitchContext,
  terminal: Terminal,
  request: RefundRequestData,
): Promise<RefundResult & { readonly channel?: ChannelName }> {
  const codePayment = await readChannelPayment(ctx, request.originalTerminalId, request.originalSequence);
  const viaChannel = codePayment !== undefined && !codePayment.tombstone;
  let result: RefundResult;
  if (viaChannel) {
    result = await refundChannelPayment(ctx, terminal, codePayment, request);
  } else {
    result = await refundCardPayment(ctx, terminal, request);
  }
  const payment = `payment ${request.originalSequence} of terminal ${request.originalTerminalId}`;
  switch (result.code) {
    case 'refunded':
      return viaChannel && codePayment.channel !== undefined ? { ...result, channel: codePayment.channel } : result;
    case 'over_refundable':
      throw new FailedPreconditionError(
        `only ${formatYuan(result.refundableLeftFen)} yuan (${result.refundableLeftFen} fen) of ${payment} can still be refunded; ` +
          `nothing was refunded (退款金额超过可退金额)`,
      );
    case 'payment_not_found':
      throw new NotFoundError(`${payment} was not found (never approved here, or older than the request records are kept)`);
    case 'other_card':
      throw new NotFoundError(`${payment} was not made with card ${request.cardNo}; check the card number on the receipt`);
    case 'other_merchant':
      throw new PermissionDeniedError(
        `${payment} belongs to another merchant; only a terminal of the merchant that took a payment can refund it (this terminal is merchant ${terminal.merchantId}'s)`,
      );
    case 'payment_declined':
      throw new FailedPreconditionError(`${payment} was declined, so there is nothing to refund`);
    case 'payment_reversed':
      throw new FailedPreconditionError(`${payment} was reversed and its money is back on the card already; nothing to refund`);
    case 'unknown_card':
      throw new NotFoundError(`card ${request.cardNo} does not exist`);
    case 'card_cancelled':
      throw new FailedPreconditionError(`card ${request.cardNo} is cancelled; refund it at the card office instead (此卡已注销)`);
  }
}

/** A card payment's refund (refund.lua): the sequence claim, then the script; a refusal leaves no claim behind. */
async function refundCardPayment(ctx: SwitchContext, terminal: Terminal, request: RefundRequestData): Promise<RefundResult> {
  // The refund's own record lives in the card's shard; the claim catches the same sequence number
  // used with a card of another shard.
  const claimedNow = await ctx.claims.forCard(terminal.id, request.sequence, request.cardNo);
  // refund.lua records only a refund: its refusals (another card's payment, none such, too much ...)
  // and its key_reused leave nothing, so the claim this request took goes too. Kept, it would refuse
  // the cashier's corrected refund (the right card number) under the same sequence number. After an
  // unknown failure (Redis timeout) the script may have refunded: the claim stays.
  const release = async (): Promise<void> => {
    if (claimedNow) await ctx.claims.release(terminal.id, request.sequence, request.cardNo);
  };
  let result: RefundResult;
  try {
    result = await ctx.money.refund({
      cardNo: request.cardNo,
      amountFen: request.amountFen,
      terminalId: terminal.id,
      sequence: request.sequence,
      merchantId: terminal.merchantId,
      originalTerminalId: request.originalTerminalId,
      originalSequence: request.originalSequence,
    });
  } catch (err) {
    if (err instanceof IdempotencyConflictError) await release();
    throw err;
  }
  if (result.code !== 'refunded') await release();
  return result;
}
