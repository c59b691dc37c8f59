// Who may pay with an Alipay or WeChat payment code at a campus POS: a payer (Alipay buyer_user_id,
// WeChat openid of our appid) bound to a campus card for that channel (the guide: bind personal
// information first). One payer per card per channel, one card per payer.
//
// The two sides live in two slots (the payer's record, the card's account field), so each change is two
// channel-binding.lua calls in a fixed order, and a binding counts only when both sides name each
// other (cardOfChannelPayer checks both):
//   bind:   claim the payer's record for the card (taking over a record whose card no longer names the
//           payer, left by a crash between the two calls), then bind the card's side; if the card
//           already has another payer of the channel, release the claim and refuse.
//   unbind: read the card's side, compare-and-delete it, then release the payer's record.
// Both run holding the payer's lock (claim-id.lua, expiring), so the staleness check of a takeover
// never races a binding in progress: parallel binders of one payer get one success and "in progress"
// or "bound to another card". Parallel binders of one card (different payers): the card's side takes
// one, the others release their claims.
import { randomBytes } from 'node:crypto';
import type { SwitchContext } from '../context.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from '../errors.js';
import {
  bindCardSide,
  cardPayerFields,
  claimPayer,
  claimPayerLock,
  PAYER_CHANNELS,
  payerRecordCard,
  releasePayer,
  releasePayerLock,
  unbindCardSide,
  type PayerChannel,
} from '../ledger/channel-payers.js';

export type { PayerChannel } from '../ledger/channel-payers.js';
export { PAYER_CHANNELS } from '../ledger/channel-payers.js';

/** Alipay buyer_user_id (2088 + 12 digits) or a WeChat openid (our appid's: 28 characters, base64url-ish); bounded. */
export const PAYER_ID_PATTERN = /^[A-Za-z0-9_-]{6,64}$/;
const CARD_NO_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const CHANNEL_ZH: Readonly<Record<PayerChannel, string>> = { alipay: '支付宝', wechat: '微信' };
/** Long enough for four Redis calls; a crashed holder's lock expires by itself. */
const PAYER_LOCK_TTL_SEC = 10;

async function withPayerLock<T>(ctx: SwitchContext, channel: PayerChannel, payerId: string, work: () => Promise<T>): Promise<T> {
  const owner = randomBytes(12).toString('base64url');
  if (!(await claimPayerLock(ctx, channel, payerId, owner, PAYER_LOCK_TTL_SEC))) {
    throw new AlreadyExistsError(`a binding or unbinding of this ${channel} payer is already in progress`, {
      reason: 'BINDING_IN_PROGRESS',
      zh: '正在处理上一次绑定/解绑请求，请稍候',
    });
  }
  try {
    return await work();
  } finally {
    await releasePayerLock(ctx, channel, payerId, owner).catch((err: unknown) =>
      ctx.log.warn({ err, channel }, 'payer lock not released; it expires by itself'),
    );
  }
}

function checkChannel(channel: string): PayerChannel {
  if (!(PAYER_CHANNELS as readonly string[]).includes(channel)) {
    throw new InvalidArgumentError(`channel must be one of ${PAYER_CHANNELS.join(', ')}, got "${channel.slice(0, 20)}"`, {
      reason: 'CHANNEL_INVALID',
      field: 'channel',
    });
  }
  return channel as PayerChannel;
}

function checkPayerId(payerId: string): string {
  if (!PAYER_ID_PATTERN.test(payerId)) {
    throw new InvalidArgumentError('payer id must be 6-64 characters of A-Z a-z 0-9 _ -', { reason: 'PAYER_ID_INVALID', field: 'payerId' });
  }
  return payerId;
}

function checkCardNo(cardNo: string): string {
  if (!CARD_NO_PATTERN.test(cardNo)) {
    throw new InvalidArgumentError('card number must be 1-32 characters of A-Z a-z 0-9 _ -', {
      reason: 'CARD_NO_INVALID',
      field: 'cardNo',
    });
  }
  return cardNo;
}

/** The card `payerId` of `channel` is bound to, or undefined (a record the card does not confirm is no binding). */
export async function cardOfChannelPayer(ctx: SwitchContext, channel: PayerChannel, payerId: string): Promise<string | undefined> {
  const cardNo = await payerRecordCard(ctx, checkChannel(channel), checkPayerId(payerId));
  if (cardNo === undefined) return undefined;
  const side = await cardPayerFields(ctx, cardNo);
  return side[channel] === payerId ? cardNo : undefined;
}

/** The card's payer per channel (only bindings both sides confirm); NotFoundError for an unknown card. */
export async function channelPayersOfCard(ctx: SwitchContext, cardNo: string): Promise<Readonly<Partial<Record<PayerChannel, string>>>> {
  const side = await cardPayerFields(ctx, checkCardNo(cardNo));
  if (!side.exists) throw new NotFoundError(`no card ${cardNo}`, { reason: 'UNKNOWN_CARD' });
  const bound: Partial<Record<PayerChannel, string>> = {};
  for (const channel of PAYER_CHANNELS) {
    const payerId = side[channel];
    if (payerId !== undefined && (await payerRecordCard(ctx, channel, payerId)) === cardNo) bound[channel] = payerId;
  }
  return bound;
}

/** Takes the payer's record for the card, taking over a record whose card no longer names this payer. */
async function claimPayerRecord(ctx: SwitchContext, cardNo: string, channel: PayerChannel, payerId: string): Promise<void> {
  // Under the payer's lock nobody else changes the record: a holder whose card does not name the payer is stale.
  const holder = await payerRecordCard(ctx, channel, payerId);
  const stale = holder !== undefined && holder !== cardNo && (await cardPayerFields(ctx, holder))[channel] !== payerId ? holder : '';
  if ((await claimPayer(ctx, channel, payerId, cardNo, stale)) !== 'held_by_another') return;
  throw new AlreadyExistsError(`this ${channel} payer is already bound to another campus card`, {
    reason: 'PAYER_BOUND_TO_OTHER_CARD',
    zh: `该${CHANNEL_ZH[channel]}账户已绑定其他校园卡，请先解绑`,
  });
}

/**
 * Binds `payerId` of `channel` to the card (idempotent: binding the same pair again changes nothing).
 * `ecardUserId`: the e-card holder the binding is for; the card's side is bound only while the card is
 * still bound to them (checked in the same script, so an e-card unbinding during the holder's slow steps
 * wins). Undefined only where no holder asks (the ledger's tests).
 */
export async function bindChannelPayer(
  ctx: SwitchContext,
  cardNo: string,
  channel: PayerChannel,
  payerId: string,
  ecardUserId?: string,
): Promise<void> {
  checkCardNo(cardNo);
  checkChannel(channel);
  checkPayerId(payerId);
  await withPayerLock(ctx, channel, payerId, () => bindLocked(ctx, cardNo, channel, payerId, ecardUserId));
}

async function bindLocked(
  ctx: SwitchContext,
  cardNo: string,
  channel: PayerChannel,
  payerId: string,
  ecardUserId: string | undefined,
): Promise<void> {
  await claimPayerRecord(ctx, cardNo, channel, payerId);
  const answer = await bindCardSide(ctx, cardNo, channel, payerId, ecardUserId);
  if (answer === 'done') return;
  // The card refused: the claim just taken is released (a refused request changes nothing).
  await releasePayer(ctx, channel, payerId, cardNo);
  switch (answer) {
    case 'bound_to_other':
      throw new AlreadyExistsError(`card ${cardNo} is already bound to another ${channel} payer; unbind it first`, {
        reason: 'CARD_BOUND_TO_OTHER_PAYER',
        zh: `该校园卡已绑定其他${CHANNEL_ZH[channel]}账户，请先解绑`,
      });
    case 'unknown_card':
      throw new NotFoundError(`no card ${cardNo}`, { reason: 'UNKNOWN_CARD' });
    case 'card_cancelled':
      throw new FailedPreconditionError(`card ${cardNo} is cancelled`, { reason: 'CARD_CANCELLED', zh: '该卡已注销' });
    case 'ecard_not_bound':
      // The same refusal as domain/ecard.ts's requireBoundCard: the holder unbound the card meanwhile.
      throw new PermissionDeniedError('no card is bound to this user', { reason: 'NOT_BOUND', zh: '尚未绑定校园卡，请先完成绑定' });
    case 'not_bound_to_payer':
      throw new Error(`channel-binding.lua answered not_bound_to_payer to a bind of card ${cardNo}`);
  }
}

/** Ends the card's binding of `channel`; answers the payer that was bound, or undefined when none was. */
export async function unbindChannelPayer(ctx: SwitchContext, cardNo: string, channel: PayerChannel): Promise<string | undefined> {
  checkCardNo(cardNo);
  checkChannel(channel);
  const side = await cardPayerFields(ctx, cardNo);
  if (!side.exists) throw new NotFoundError(`no card ${cardNo}`, { reason: 'UNKNOWN_CARD' });
  const payerId = side[channel];
  if (payerId === undefined) return undefined;
  await withPayerLock(ctx, channel, payerId, async () => {
    // A racing unbind of the same card may win the compare-and-delete; the record is released either way.
    await unbindCardSide(ctx, cardNo, channel, payerId);
    await releasePayer(ctx, channel, payerId, cardNo);
  });
  return payerId;
}

/**
 * Releases the records of payers whose card's side an e-card binding or unbinding just ended
 * (ecard-binding.lua ended the card's side in its own script, so they stopped counting there). Per payer,
 * under its lock, as unbindChannelPayer does: a record is released only while it names the card and the
 * card does not name the payer (a holder who bound the card since and bound this payer keeps it). A lock
 * another binding holds is left alone: the record left names a card that does not name it back, which is
 * no binding, and the payer's next binding takes it over.
 */
export async function releaseEndedPayers(
  ctx: SwitchContext,
  cardNo: string,
  endedPayers: Readonly<Partial<Record<PayerChannel, string>>>,
): Promise<void> {
  checkCardNo(cardNo);
  for (const channel of PAYER_CHANNELS) {
    const payerId = endedPayers[channel];
    if (payerId === undefined || !PAYER_ID_PATTERN.test(payerId)) continue;
    try {
      await withPayerLock(ctx, channel, payerId, async () => {
        if ((await cardPayerFields(ctx, cardNo))[channel] !== payerId) await releasePayer(ctx, channel, payerId, cardNo);
      });
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err;
      ctx.log.info({ card: cardNo, channel }, 'ended payer record left to its next binding: its lock is held');
    }
  }
}
