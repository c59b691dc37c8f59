// Request validation shared by the services: every field checked where it enters, with a message
// that says what was wrong and what is accepted.
import type { Credential } from '../../proto/gen/cardswitch/v1/common.js';
import type { PresentedCredential } from '../domain/pos.js';
import { CARD_SERIAL_PATTERN } from '../domain/cards.js';
import type { Terminal } from '../domain/terminals.js';
import { channelOfCode } from '../domain/channel-payment.js';
import { InvalidArgumentError, PermissionDeniedError } from './errors.js';

const MAX_QR_PAYLOAD_LENGTH = 512;

export function checkTerminalField(terminalId: string, terminal: Terminal): void {
  if (terminalId === '') throw new InvalidArgumentError('terminal_id is required');
  if (terminalId !== terminal.id) {
    throw new PermissionDeniedError(`terminal_id "${terminalId.slice(0, 40)}" is not the authenticated terminal "${terminal.id}"`);
  }
}

export function checkSequence(sequence: number, field: string): number {
  if (!Number.isSafeInteger(sequence) || sequence < 1) {
    throw new InvalidArgumentError(`${field} must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}, got ${sequence}`);
  }
  return sequence;
}

export function checkAmount(amountFen: number, maxFen: number, field = 'amount_fen', limitName = 'per payment'): number {
  if (!Number.isSafeInteger(amountFen) || amountFen < 1) {
    throw new InvalidArgumentError(`${field} must be a positive whole number of fen (1 = 0.01 yuan), got ${amountFen}`);
  }
  if (amountFen > maxFen) throw new InvalidArgumentError(`${field} ${amountFen} is over the limit of ${maxFen} fen ${limitName}`);
  return amountFen;
}

export function checkCredential(credential: Credential | undefined): PresentedCredential {
  if (credential === undefined) throw new InvalidArgumentError('credential is required: a card tap, a campus QR code or a payment code');
  const set = [credential.card, credential.campusQr, credential.thirdParty].filter((c) => c !== undefined);
  if (set.length !== 1) throw new InvalidArgumentError('credential must hold exactly one of card, campus_qr, third_party');
  if (credential.card !== undefined) {
    const serial = credential.card.cardSerial;
    if (!CARD_SERIAL_PATTERN.test(serial)) {
      throw new InvalidArgumentError(`card.card_serial must be 8 to 20 hex digits, got "${serial.slice(0, 40)}"`);
    }
    return { kind: 'card', serial: serial.toUpperCase() };
  }
  if (credential.campusQr !== undefined) {
    const payload = credential.campusQr.payload;
    if (payload === '' || payload.length > MAX_QR_PAYLOAD_LENGTH) {
      throw new InvalidArgumentError(`campus_qr.payload must be 1 to ${MAX_QR_PAYLOAD_LENGTH} characters`);
    }
    return { kind: 'campus_qr', payload };
  }
  const code = credential.thirdParty?.code ?? '';
  if (channelOfCode(code) === undefined) {
    throw new InvalidArgumentError(
      'third_party.code must be a WeChat Pay payment code (18 digits starting 10-15) or an Alipay one (16-24 digits starting 25-30)',
    );
  }
  return { kind: 'third_party', code };
}

export function checkPinField(pin: string): string {
  if (pin !== '' && !/^\d{6}$/.test(pin)) throw new InvalidArgumentError('pin must be exactly 6 digits, or empty');
  return pin;
}
