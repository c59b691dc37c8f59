// The card as the kiosk and the card office see it: balance, small wallet, status, whether the card
// is synced and whether its password is still the initial one. Presenting the card's current serial
// (a tap on the kiosk's reader) completes the card sync.
import type { SwitchContext } from '../context.js';
import { NotFoundError } from '../errors.js';
import { readCardRecord } from '../ledger/cards.js';
import type { CardStatusCode } from '../ledger/ledger.js';
import { maskName } from './cards.js';
import { resolveCardTap } from './cardholder.js';

export interface CardView {
  readonly cardNo: string;
  /** As a POS shows a name: "张*". */
  readonly maskedName: string;
  /** The ledger's holder type code: 'S' student, 'T' staff ('' when the account has none). */
  readonly holderType: string;
  readonly status: CardStatusCode;
  readonly balanceFen: number;
  readonly smallWalletFen: number;
  readonly synced: boolean;
  /** The card password is still the initial one: the cardholder should change it. */
  readonly initialPassword: boolean;
}

/** The card office's view: the card and who holds it. */
export interface CardDetails {
  readonly card: CardView;
  readonly cardSerial: string;
  readonly personNumber: string;
  readonly name: string;
}

async function readCard(ctx: SwitchContext, cardNo: string, serial: string): Promise<CardDetails> {
  const card = await ctx.ledger.inquire(cardNo, serial);
  if (card.code !== 'found') throw new NotFoundError(`card ${cardNo} does not exist`);
  const record = await readCardRecord(ctx, cardNo);
  return {
    card: {
      cardNo,
      maskedName: maskName(card.name),
      holderType: card.holderType,
      status: card.status ?? 'active',
      balanceFen: card.balanceFen,
      smallWalletFen: card.smallWalletFen,
      synced: card.synced,
      initialPassword: record.initialPassword,
    },
    cardSerial: record.serial,
    personNumber: record.personNumber,
    name: record.name,
  };
}

/** The card by number; `serial` is the serial on the reader ('' when not a tap: no sync). */
export async function cardView(ctx: SwitchContext, cardNo: string, serial: string): Promise<CardView> {
  return (await readCard(ctx, cardNo, serial)).card;
}

/** The card on a kiosk's reader; the tap completes the card sync. */
export async function identifyCard(ctx: SwitchContext, rawSerial: string): Promise<CardView> {
  const { cardNo, serial } = await resolveCardTap(ctx, rawSerial);
  return cardView(ctx, cardNo, serial);
}

/** The card office's lookup by card number (never a sync). */
export function cardDetails(ctx: SwitchContext, cardNo: string): Promise<CardDetails> {
  return readCard(ctx, cardNo, '');
}
