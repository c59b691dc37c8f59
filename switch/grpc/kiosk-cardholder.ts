// The kiosk's Cardholder message (a card tap or a student/staff number) as the domain takes it, with
// the calling kiosk and the password typed. Shared by the kiosk's card, money and statement handlers.
import type { Cardholder } from '../../proto/gen/cardswitch/v1/kiosk.js';
import type { CardholderRef } from '../domain/cardholder.js';
import type { KioskCardholder } from '../domain/kiosk.js';
import { callingTerminal, type CallContext } from './unary.js';

export function cardholderOf(cardholder: Cardholder | undefined): CardholderRef | undefined {
  if (cardholder === undefined) return undefined;
  return { cardSerial: cardholder.card?.cardSerial, personNumber: cardholder.personNumber };
}

/** Who stands at the calling kiosk, with the password they typed ('' when none). */
export function kioskCardholder(cardholder: Cardholder | undefined, password: string, call: CallContext): KioskCardholder {
  return { cardholder: cardholderOf(cardholder), password, terminalId: callingTerminal(call).id };
}
