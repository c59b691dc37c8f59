// The channel payers' bindings in Redis (channel-binding.lua, one call per slot): the payer's record
// (Keys.channelPayer: the card number) and the card's side (its account field `cp<channel>`: the payer
// id). domain/channel-payers.ts keeps the order of the calls and the rules; a binding counts only when
// both sides name each other.
import type { LedgerAccess } from './access.js';
import { claimId, releaseId } from './money.js';
import { CHANNEL_BINDING_ANSWERS, CLAIM_ANSWERS, decodeAnswer, numericReply, RELEASE_ANSWERS, type AnswerOf } from './answers.js';

/** The channels a card may bind a payer of (the names of channels/channel.ts's ChannelName). */
export type PayerChannel = 'alipay' | 'wechat';
export const PAYER_CHANNELS: readonly PayerChannel[] = ['alipay', 'wechat'];

/** The account field holding the card's payer of `channel`. */
export function channelPayerField(channel: PayerChannel): 'cpalipay' | 'cpwechat' {
  return channel === 'alipay' ? 'cpalipay' : 'cpwechat';
}

/** Claims the payer's record for `cardNo`; `staleCardNo` (a card that no longer names this payer) may be taken over. */
export async function claimPayer(
  ledger: LedgerAccess,
  channel: PayerChannel,
  payerId: string,
  cardNo: string,
  staleCardNo: string,
): Promise<AnswerOf<typeof CLAIM_ANSWERS>> {
  const reply = await ledger.scripts.run('channel-binding', [ledger.keys.channelPayer(channel, payerId)], ['claim', cardNo, staleCardNo]);
  return decodeAnswer('channel-binding', CLAIM_ANSWERS, numericReply('channel-binding', reply));
}

/** Releases the payer's record if it names `cardNo` (another card's claim is left alone). */
export async function releasePayer(
  ledger: LedgerAccess,
  channel: PayerChannel,
  payerId: string,
  cardNo: string,
): Promise<AnswerOf<typeof RELEASE_ANSWERS>> {
  const reply = await ledger.scripts.run('channel-binding', [ledger.keys.channelPayer(channel, payerId)], ['release', cardNo]);
  return decodeAnswer('channel-binding', RELEASE_ANSWERS, numericReply('channel-binding', reply));
}

/**
 * Binds the card's side to `payerId` (or finds it already bound to it). With `ecardUserId`, only while the
 * card is still bound to that e-card user, in the same script ('ecard_not_bound' otherwise); undefined
 * binds without that check (a card no holder's session asks for: operators, the ledger's tests).
 */
export async function bindCardSide(
  ledger: LedgerAccess,
  cardNo: string,
  channel: PayerChannel,
  payerId: string,
  ecardUserId: string | undefined,
): Promise<AnswerOf<typeof CHANNEL_BINDING_ANSWERS>> {
  const reply = await ledger.scripts.run(
    'channel-binding',
    [ledger.keys.account(cardNo)],
    ['bind', channelPayerField(channel), payerId, ecardUserId ?? ''],
  );
  return decodeAnswer('channel-binding', CHANNEL_BINDING_ANSWERS, numericReply('channel-binding', reply));
}

/** Ends the card's side if it still names `payerId` (compare-and-delete). */
export async function unbindCardSide(
  ledger: LedgerAccess,
  cardNo: string,
  channel: PayerChannel,
  payerId: string,
): Promise<AnswerOf<typeof CHANNEL_BINDING_ANSWERS>> {
  const reply = await ledger.scripts.run('channel-binding', [ledger.keys.account(cardNo)], ['unbind', channelPayerField(channel), payerId]);
  return decodeAnswer('channel-binding', CHANNEL_BINDING_ANSWERS, numericReply('channel-binding', reply));
}

/** The card the payer's record names, or undefined. */
export async function payerRecordCard(ledger: LedgerAccess, channel: PayerChannel, payerId: string): Promise<string | undefined> {
  return (await ledger.scripts.client.get(ledger.keys.channelPayer(channel, payerId))) ?? undefined;
}

/** The card's side: its payer per channel (absent when unbound), and whether the account exists. */
export async function cardPayerFields(
  ledger: LedgerAccess,
  cardNo: string,
): Promise<{ readonly exists: boolean; readonly alipay: string | undefined; readonly wechat: string | undefined }> {
  const [st, alipay, wechat] = await ledger.scripts.client.hmget(ledger.keys.account(cardNo), 'st', 'cpalipay', 'cpwechat');
  return { exists: st !== null && st !== undefined, alipay: alipay ?? undefined, wechat: wechat ?? undefined };
}

/** Takes the payer's binding lock for `owner` (claim-id.lua); false when another owner holds it. */
export async function claimPayerLock(
  ledger: LedgerAccess,
  channel: PayerChannel,
  payerId: string,
  owner: string,
  ttlSec: number,
): Promise<boolean> {
  return (await claimId(ledger.scripts, ledger.keys.channelPayerLock(channel, payerId), owner, ttlSec)) === 'claimed_now';
}

/** Releases the lock if `owner` still holds it (otherwise it expired and another took it: left alone). */
export async function releasePayerLock(ledger: LedgerAccess, channel: PayerChannel, payerId: string, owner: string): Promise<void> {
  await releaseId(ledger.scripts, ledger.keys.channelPayerLock(channel, payerId), owner);
}
