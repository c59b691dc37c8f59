// A card's records outside the money scripts: whether its account exists, the account fields the card
// office and the kiosk read (serial, person number, name, initial-password flag), the serial directory
// claim of a card replacement (serial-claim.lua: claim, settle, release) and the serial a replacement
// request recorded, and one journal entry of the card (a statement line's parties). Reads and directory
// writes only: every change of money or card status is a Lua script (ledger.ts).
import { randomUUID } from 'node:crypto';
import type { LedgerAccess } from './access.js';
import {
  CLAIM_ANSWERS,
  decodeAnswer,
  LedgerInvariantError,
  numericReply,
  SERIAL_FENCE_ANSWERS,
  SERIAL_RELEASE_ANSWERS,
  SERIAL_SETTLE_ANSWERS,
  SERIAL_UNFENCE_ANSWERS,
} from './answers.js';
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
 * How long a replacement's claim of a serial, never confirmed and held by no call, is left alone before
 * another card may take it over: far longer than any replacement takes (its Redis calls time out in
 * seconds), so only a claim whose switch died between the claim and replace-card.lua gets this old.
 */
export const SERIAL_CLAIM_STALE_MS = 10 * 60_000;

/** A claim of a serial for a replacement: held with `token` until settled or released. */
export type SerialClaim =
  | { readonly claimed: true; readonly token: string; /** The card whose stale claim was taken over. */ readonly tookOverFrom?: string }
  | { readonly claimed: false; readonly holder: string };

/**
 * Points the serial directory at `cardNo` unless the serial already names another card, and holds the
 * claim with a token of this call (serial-claim.lua). Runs before replace-card.lua moves the account, so
 * a serial already on another card is never moved silently; a claim of the same card passes (the retry
 * of a replacement, or a second request for the same blank card). A claim of another card that no
 * replacement confirmed and no call has held for SERIAL_CLAIM_STALE_MS (its switch died between the
 * claim and the script), of a card that never had the serial, is taken over, that card first fenced off
 * the serial (serial-fence.lua: its late replace-card.lua is refused). Every claimed answer must
 * end in settleCardSerial or releaseCardSerial; a call that cannot tell (the script's outcome unknown)
 * leaves its hold, which keeps the entry until a retry settles it or it turns stale.
 */
export async function claimCardSerial(ledger: LedgerAccess, serial: string, cardNo: string, nowMs: number): Promise<SerialClaim> {
  const keys = serialClaimKeys(ledger, serial);
  const token = randomUUID();
  const reply = await ledger.scripts.run('serial-claim', keys, ['claim', cardNo, token, nowMs, SERIAL_CLAIM_STALE_MS]);
  if (!Array.isArray(reply) || reply.length !== 3) throw new LedgerInvariantError(`serial-claim.lua answered ${JSON.stringify(reply)}`);
  const code = decodeAnswer('serial-claim', CLAIM_ANSWERS, numericReply('serial-claim', reply[0]));
  if (code !== 'held_by_another') return { claimed: true, token };
  const holder = String(reply[1] ?? '');
  if (holder === '') throw new LedgerInvariantError(`serial-claim.lua answered held_by_another without the card`);
  if (numericReply('serial-claim', reply[2]) !== 1) return { claimed: false, holder };
  // The stale card's switch may only have stalled, its replace-card.lua still to come: fence that card off
  // the serial in its own slot first (refused when it ever had the serial), so a late script of it is
  // refused rather than moving it onto a serial the directory gives to this card.
  const fenceKeys = [ledger.keys.account(holder), ledger.keys.cardReplacements(holder)];
  const fenced = await ledger.scripts.run('serial-fence', fenceKeys, ['fence', serial, token]);
  if (decodeAnswer('serial-fence', SERIAL_FENCE_ANSWERS, numericReply('serial-fence', fenced)) !== 'fenced')
    return { claimed: false, holder };
  const taken = await ledger.scripts.run('serial-claim', keys, ['takeover', cardNo, token, nowMs, SERIAL_CLAIM_STALE_MS, holder]);
  if (decodeAnswer('serial-claim', CLAIM_ANSWERS, numericReply('serial-claim', taken)) !== 'claimed_now') {
    // Not taken over (the stale card's own call holds the claim again): lift this call's fence, so that call can still go through.
    const lifted = await ledger.scripts.run('serial-fence', fenceKeys, ['unfence', serial, token]);
    decodeAnswer('serial-fence', SERIAL_UNFENCE_ANSWERS, numericReply('serial-fence', lifted));
    return { claimed: false, holder };
  }
  return { claimed: true, token, tookOverFrom: holder };
}

/** replace-card.lua answered that the card has (or had) the serial: the claim is confirmed for good. */
export async function settleCardSerial(ledger: LedgerAccess, serial: string, cardNo: string, token: string): Promise<void> {
  const reply = await ledger.scripts.run('serial-claim', serialClaimKeys(ledger, serial), ['settle', cardNo, token]);
  decodeAnswer('serial-claim', SERIAL_SETTLE_ANSWERS, numericReply('serial-claim', reply));
}

/**
 * replace-card.lua refused (nothing moved): gives the claim back, a compare-and-delete in
 * serial-claim.lua. The entry is deleted only when it still names `cardNo`, was made by a replacement
 * claim no replacement confirmed, no other call holds it (a concurrent request of the card for the same
 * blank card keeps it) and the card's serial, read now, is not this one. True when released.
 */
export async function releaseCardSerial(ledger: LedgerAccess, serial: string, cardNo: string, token: string): Promise<boolean> {
  const hasSerial = (await currentCardSerial(ledger, cardNo)) === serial;
  const reply = await ledger.scripts.run('serial-claim', serialClaimKeys(ledger, serial), [
    'release',
    cardNo,
    token,
    hasSerial ? '1' : '0',
  ]);
  return decodeAnswer('serial-claim', SERIAL_RELEASE_ANSWERS, numericReply('serial-claim', reply)) === 'released';
}

function serialClaimKeys(ledger: LedgerAccess, serial: string): string[] {
  return [ledger.keys.serial(serial), ledger.keys.serialHold(serial)];
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
