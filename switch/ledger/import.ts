// The directory writes and checks of a bulk cardholder import (data/import.ts): whether a card number,
// serial or student/staff number is taken, and the serial and person-number directory entries of a
// new card (its account is open-account.lua, Ledger.openAccount). Each call keeps its commands in
// flight together, so an import pays one round trip per row and step, as before these were wrapped.
import type { LedgerAccess } from './access.js';

export interface DirectoryEntries {
  readonly cardNo: string;
  readonly cardSerial: string;
  readonly personNumber: string;
}

export interface TakenEntries {
  readonly account: boolean;
  readonly serial: boolean;
  readonly personNumber: boolean;
}

/** Which of the card number, serial and person number already exist (three EXISTS at once). */
export async function takenEntries(ledger: LedgerAccess, entries: DirectoryEntries): Promise<TakenEntries> {
  const { keys } = ledger;
  const redis = ledger.scripts.client;
  const [account, serial, person] = await Promise.all([
    redis.exists(keys.account(entries.cardNo)),
    redis.exists(keys.serial(entries.cardSerial)),
    redis.exists(keys.personNumber(entries.personNumber)),
  ]);
  return { account: account === 1, serial: serial === 1, personNumber: person === 1 };
}

/**
 * Points the serial and the person number at the card, each only if free (SET NX, both at once).
 * Answers which of them another card took first; nothing of that entry is written then.
 */
export async function claimDirectoryEntries(
  ledger: LedgerAccess,
  entries: DirectoryEntries,
): Promise<{ serialTaken: boolean; personNumberTaken: boolean }> {
  const { keys } = ledger;
  const redis = ledger.scripts.client;
  const [serial, person] = await Promise.all([
    redis.set(keys.serial(entries.cardSerial), entries.cardNo, 'NX'),
    redis.set(keys.personNumber(entries.personNumber), entries.cardNo, 'NX'),
  ]);
  return { serialTaken: serial === null, personNumberTaken: person === null };
}
