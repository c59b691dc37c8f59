// Finds the card account of a kiosk / phone / operator request: the card on the reader, the
// student/staff number, or the card number.
import type { SwitchContext } from '../context.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { currentCardSerial } from '../ledger/cards.js';
import { CARD_SERIAL_PATTERN } from './cards.js';

export const PERSON_NUMBER_PATTERN = /^[A-Za-z0-9]{4,20}$/;
export const CARD_NUMBER_PATTERN = /^\d{4,20}$/;

/**
 * Who a request is about, as the caller named them: the serial of the card on the reader, or the
 * student/staff number. The card wins when both are given (a transport's "one of" holds only one).
 */
export interface CardholderRef {
  readonly cardSerial?: string | undefined;
  readonly personNumber?: string | undefined;
}

export interface ResolvedCardholder {
  readonly cardNo: string;
  /** The serial presented on the reader, '' when identified otherwise. */
  readonly serial: string;
}

export async function resolveCardholder(ctx: SwitchContext, cardholder: CardholderRef | undefined): Promise<ResolvedCardholder> {
  if (cardholder?.cardSerial !== undefined) return resolveCardTap(ctx, cardholder.cardSerial);
  const personNumber = cardholder?.personNumber;
  if (personNumber === undefined)
    throw new InvalidArgumentError('cardholder is required: the card on the reader or the student/staff number');
  if (!PERSON_NUMBER_PATTERN.test(personNumber)) throw new InvalidArgumentError('cardholder.person_number must be 4-20 letters or digits');
  const cardNo = await ctx.cards.cardForPersonNumber(personNumber);
  if (cardNo === undefined) throw new NotFoundError(`no card for student/staff number ${personNumber}`);
  return { cardNo, serial: '' };
}

/**
 * The card account a cardholder reference names, also through the serial of a card since replaced; undefined
 * when it names none (malformed, unknown). Only for answering a retry of a request already recorded for that
 * account: a new request goes through resolveCardholder, which refuses a replaced card.
 */
export async function cardNamedBy(ctx: SwitchContext, cardholder: CardholderRef | undefined): Promise<string | undefined> {
  const serial = cardholder?.cardSerial;
  if (serial !== undefined) return CARD_SERIAL_PATTERN.test(serial) ? ctx.cards.cardForSerial(serial.toUpperCase()) : undefined;
  const personNumber = cardholder?.personNumber;
  if (personNumber === undefined || !PERSON_NUMBER_PATTERN.test(personNumber)) return undefined;
  return ctx.cards.cardForPersonNumber(personNumber);
}

export async function resolveCardTap(ctx: SwitchContext, rawSerial: string): Promise<ResolvedCardholder> {
  if (!CARD_SERIAL_PATTERN.test(rawSerial)) throw new InvalidArgumentError('card.card_serial must be 8 to 20 hex digits');
  const serial = rawSerial.toUpperCase();
  const cardNo = await ctx.cards.cardForSerial(serial);
  if (cardNo === undefined) throw new NotFoundError('this card is not known to the card system (无效卡)');
  if ((await currentCardSerial(ctx, cardNo)) !== serial) {
    throw new FailedPreconditionError('this card was replaced and no longer works; use the new card (此卡已换卡作废)');
  }
  return { cardNo, serial };
}

export function checkCardNumber(cardNo: string): string {
  if (!CARD_NUMBER_PATTERN.test(cardNo)) throw new InvalidArgumentError(`card_number must be 4-20 digits, got "${cardNo.slice(0, 30)}"`);
  return cardNo;
}
