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

/**
 * Which of the card number, serial and person number already exist. A serial or person-number entry
 * that already names this very card is not taken: it is what an import of this row interrupted after
 * its directory entries (and before its account) left, and running the row again completes it.
 */
export async function takenEntries(ledger: LedgerAccess, entries: DirectoryEntries): Promise<TakenEntries> {
  const { keys } = ledger;
  const redis = ledger.scripts.client;
  // An import before person numbers were upper-cased wrote the number as typed: one in lower case names
  // the same person (s2023001 = S2023001), so a card already under it takes the number too. No writer
  // makes such an entry any more, so this read needs no claim.
  const lower = entries.personNumber.toLowerCase();
  const [account, serial, person, personInLower] = await Promise.all([
    redis.exists(keys.account(entries.cardNo)),
    redis.get(keys.serial(entries.cardSerial)),
    redis.get(keys.personNumber(entries.personNumber)),
    lower === entries.personNumber ? null : redis.get(keys.personNumber(lower)),
  ]);
  return {
    account: account === 1,
    serial: serial !== null && serial !== entries.cardNo,
    personNumber: (person !== null && person !== entries.cardNo) || (personInLower !== null && personInLower !== entries.cardNo),
  };
}

/** What claiming one directory entry found: made now, already naming this card, or naming another card. */
export type EntryClaim = 'claimed' | 'ours' | 'taken';

export interface DirectoryClaims {
  readonly serial: EntryClaim;
  readonly personNumber: EntryClaim;
}

async function claimEntry(ledger: LedgerAccess, key: string, cardNo: string): Promise<EntryClaim> {
  const redis = ledger.scripts.client;
  if ((await redis.set(key, cardNo, 'NX')) !== null) return 'claimed';
  return (await redis.get(key)) === cardNo ? 'ours' : 'taken';
}

/**
 * Points the serial and the person number at the card, each only if free (SET NX, both at once), before
 * the account is opened: a row that loses either to another card opens nothing (releaseDirectoryEntries
 * gives back what it did claim). An entry that already names the card counts as claimed ('ours').
 */
export async function claimDirectoryEntries(ledger: LedgerAccess, entries: DirectoryEntries): Promise<DirectoryClaims> {
  const { keys } = ledger;
  const [serial, personNumber] = await Promise.all([
    claimEntry(ledger, keys.serial(entries.cardSerial), entries.cardNo),
    claimEntry(ledger, keys.personNumber(entries.personNumber), entries.cardNo),
  ]);
  return { serial, personNumber };
}

/**
 * Deletes the entries this row made now ('claimed'), each only while it still names the card. Only an
 * import writes such an entry, and only when absent (SET NX; a ReplaceCard claim takes an entry naming
 * another card only when it carries its own unconfirmed mark), so between the GET and the DEL no other
 * card can have been given it.
 */
export async function releaseDirectoryEntries(ledger: LedgerAccess, entries: DirectoryEntries, claims: DirectoryClaims): Promise<void> {
  const { keys } = ledger;
  const redis = ledger.scripts.client;
  // The account may exist by now (opened by another import of the same card number, which may have
  // found these very entries already naming the card and relied on them): an entry the account has is
  // kept.
  const [serial, personNumber] = await redis.hmget(keys.account(entries.cardNo), 'ser', 'sno');
  const release = async (key: string, claim: EntryClaim, accountHas: boolean): Promise<void> => {
    if (claim === 'claimed' && !accountHas && (await redis.get(key)) === entries.cardNo) await redis.del(key);
  };
  await Promise.all([
    release(keys.serial(entries.cardSerial), claims.serial, serial === entries.cardSerial),
    release(keys.personNumber(entries.personNumber), claims.personNumber, personNumber === entries.personNumber),
  ]);
}
