// A card's records outside the money scripts: whether its account exists, the account fields the card
// office and the kiosk read (serial, person number, name, initial-password flag), the serial directory
// claim of a card replacement and the serial a replacement request recorded, and one journal entry of
// the card (a statement line's parties). Reads and directory writes only: every change of money or card
// status is a Lua script (ledger.ts).
import type { LedgerAccess } from './access.js';
import { parseJournalEntry, type JournalEntry, type RawStreamEntry } from './journal.js';

export async function cardExists(ledger: LedgerAccess, cardNo: string): Promise<boolean> {
  return (await ledger.scripts.client.exists(ledger.keys.account(cardNo))) === 1;
}

/** The serial the account answers to now, or undefined when no account has this number. */
export async function currentCardSerial(ledger: LedgerAccess, cardNo: string): Promise<string | undefined> {
  return (await ledger.scripts.client.hget(ledger.keys.account(cardNo), 'ser')) ?? undefined;
}

export interface CardRecord {
  /** The card serial the account answers to now. */
  readonly serial: string;
  /** The student/staff number. */
  readonly personNumber: string;
  readonly name: string;
  /** The card password is still the initial one (set by the import). */
  readonly initialPassword: boolean;
}

/** The account's identity fields, read in one HMGET; '' for a field the account does not have. */
export async function readCardRecord(ledger: LedgerAccess, cardNo: string): Promise<CardRecord> {
  const [serial, personNumber, name, initial] = await ledger.scripts.client.hmget(
    ledger.keys.account(cardNo),
    'ser',
    'sno',
    'name',
    'pwdinit',
  );
  return { serial: serial ?? '', personNumber: personNumber ?? '', name: name ?? '', initialPassword: initial === '1' };
}

/**
 * Points the serial directory at `cardNo` unless the serial already names another card. Runs before
 * replace-card.lua moves the account, so a serial already on another card is never moved silently; a
 * claim left by an earlier attempt for the same card passes (the retry of a replacement).
 * Returns false when the serial belongs to another card (nothing written).
 */
export async function claimCardSerial(ledger: LedgerAccess, serial: string, cardNo: string): Promise<boolean> {
  const key = ledger.keys.serial(serial);
  if ((await ledger.scripts.client.set(key, cardNo, 'NX')) !== null) return true;
  return (await ledger.scripts.client.get(key)) === cardNo;
}

/**
 * The new serial the card office's replacement request `requestId` of this card asked for, as
 * replace-card.lua recorded it, or undefined when the card has no such request. A read only: the
 * domain refuses a reused request id with it before claiming a serial (replace-card.lua decides).
 */
export async function recordedReplacementSerial(ledger: LedgerAccess, cardNo: string, requestId: string): Promise<string | undefined> {
  const record = await ledger.scripts.client.hget(ledger.keys.cardReplacements(cardNo), requestId);
  return record === null ? undefined : record.slice(0, Math.max(0, record.indexOf('|')));
}

/**
 * One entry of the card's shard journal by its transaction id (the stream id), or undefined when the
 * journal no longer holds it. Throws JournalFormatError when the entry does not have the documented shape.
 */
export async function readCardJournalEntry(ledger: LedgerAccess, cardNo: string, transactionId: string): Promise<JournalEntry | undefined> {
  const raw = (await ledger.scripts.client.xrange(
    ledger.keys.journalOfCard(cardNo),
    transactionId,
    transactionId,
    'COUNT',
    1,
  )) as RawStreamEntry[];
  const row = raw[0];
  return row === undefined ? undefined : parseJournalEntry(row);
}
