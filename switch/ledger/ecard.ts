// The e-card's records outside its scripts: the user record (Keys.ecardUser: hash {card, boundMs}),
// the user's binding lock, and the account fields the binding, the phone's card page and the campus QR
// codes read. domain/ecard.ts keeps the rules (which binding counts, what is refused); the binding of
// the account itself is ecard-binding.lua (Ledger.ecardBinding).
import type { LedgerAccess } from './access.js';
import { LedgerInvariantError } from './answers.js';
import type { CardStatusCode } from './ledger.js';
import { claimId, releaseId } from './money.js';

const STATUS_FROM_LEDGER: Readonly<Record<string, CardStatusCode>> = { A: 'active', L: 'lost', F: 'frozen', C: 'cancelled' };

function statusOf(st: string | null | undefined): CardStatusCode | undefined {
  return STATUS_FROM_LEDGER[st ?? ''];
}

// ---- the user's record and lock ----------------------------------------------------------------

/** The card the user's record names, or undefined when there is none (the domain checks the account's `eu`). */
export async function userRecordCard(ledger: LedgerAccess, userId: string): Promise<string | undefined> {
  return (await ledger.scripts.client.hget(ledger.keys.ecardUser(userId), 'card')) ?? undefined;
}

export async function writeUserRecord(ledger: LedgerAccess, userId: string, cardNo: string, boundMs: number): Promise<void> {
  await ledger.scripts.client.hset(ledger.keys.ecardUser(userId), 'card', cardNo, 'boundMs', String(boundMs));
}

export async function deleteUserRecord(ledger: LedgerAccess, userId: string): Promise<void> {
  await ledger.scripts.client.del(ledger.keys.ecardUser(userId));
}

/** Takes the user's binding lock for `owner` (claim-id.lua); false when another owner holds it. */
export async function claimUserLock(ledger: LedgerAccess, userId: string, owner: string, ttlSec: number): Promise<boolean> {
  return (await claimId(ledger.scripts, ledger.keys.ecardUserLock(userId), owner, ttlSec)) === 'claimed_now';
}

/** Releases the lock if `owner` still holds it (otherwise it expired and another took it: left alone). */
export async function releaseUserLock(ledger: LedgerAccess, userId: string, owner: string): Promise<void> {
  await releaseId(ledger.scripts, ledger.keys.ecardUserLock(userId), owner);
}

// ---- account fields ----------------------------------------------------------------------------

/** The user id the account's e-card is bound to (`eu`), or undefined when unbound or no such card. */
export async function accountBoundUser(ledger: LedgerAccess, cardNo: string): Promise<string | undefined> {
  return (await ledger.scripts.client.hget(ledger.keys.account(cardNo), 'eu')) ?? undefined;
}

/** What a binding checks against the form: holder type, status, sync, binding, document and phone. */
export interface BindingCheckFields {
  /** 'S' student, 'T' staff, '' unknown. */
  readonly holderType: string;
  readonly status: CardStatusCode | undefined;
  readonly synced: boolean;
  readonly boundUser: string | undefined;
  /** 'R' resident id, 'P' passport. */
  readonly documentType: string;
  readonly documentNumber: string;
  readonly phone: string;
}

/** The fields a binding checks, in one HMGET; undefined when the card has no account. */
export async function readBindingCheckFields(ledger: LedgerAccess, cardNo: string): Promise<BindingCheckFields | undefined> {
  const [st, ht, sync, eu, doct, docn, phone] = await ledger.scripts.client.hmget(
    ledger.keys.account(cardNo),
    'st',
    'ht',
    'sync',
    'eu',
    'doct',
    'docn',
    'phone',
  );
  if (st === null || st === undefined) return undefined;
  return {
    holderType: ht ?? '',
    status: statusOf(st),
    synced: sync === '1',
    boundUser: eu ?? undefined,
    documentType: doct ?? '',
    documentNumber: docn ?? '',
    phone: phone ?? '',
  };
}

/** The card as the phone's page shows it. */
export interface EcardCardFields {
  readonly balanceFen: number;
  readonly smallWalletFen: number;
  /** Undefined when the account has no (known) status. */
  readonly status: CardStatusCode | undefined;
  readonly synced: boolean;
  readonly name: string;
  /** 'S' student, 'T' staff, '' unknown. */
  readonly holderType: string;
  readonly initialPassword: boolean;
  readonly boundUser: string | undefined;
  readonly boundAtMs: number;
}

function wholeFen(text: string | null | undefined, cardNo: string, what: string): number {
  const value = Number(text ?? '0');
  if (!Number.isSafeInteger(value)) throw new LedgerInvariantError(`the ${what} of account ${cardNo} is not a whole number of fen`);
  return value;
}

/**
 * The page's card in one HMGET on the hot-path channel (Scripts.command): the card summary is what
 * every page opens with.
 */
export async function readEcardCardFields(ledger: LedgerAccess, cardNo: string): Promise<EcardCardFields> {
  const reply = await ledger.scripts.command([
    'HMGET',
    ledger.keys.account(cardNo),
    'bal',
    'wal',
    'st',
    'sync',
    'name',
    'ht',
    'pwdinit',
    'eu',
    'ebt',
  ]);
  if (!Array.isArray(reply) || reply.length !== 9)
    throw new LedgerInvariantError(`HMGET of account ${cardNo} answered ${JSON.stringify(reply)}`);
  const [bal, wal, st, sync, name, ht, pwdinit, eu, ebt] = reply as (string | null)[];
  return {
    balanceFen: wholeFen(bal, cardNo, 'balance'),
    smallWalletFen: wholeFen(wal, cardNo, 'small wallet'),
    status: statusOf(st),
    synced: sync === '1',
    name: name ?? '',
    holderType: ht ?? '',
    initialPassword: pwdinit === '1',
    boundUser: eu ?? undefined,
    boundAtMs: Number(ebt ?? '0'),
  };
}

/** What issuing a campus QR code checks, and the binding's QR epoch (`eq`) the code carries. */
export interface QrIssueFields {
  readonly status: CardStatusCode | undefined;
  readonly synced: boolean;
  readonly boundUser: string | undefined;
  readonly qrEpoch: number;
}

export async function readQrIssueFields(ledger: LedgerAccess, cardNo: string): Promise<QrIssueFields> {
  const [st, sync, eu, eq] = await ledger.scripts.client.hmget(ledger.keys.account(cardNo), 'st', 'sync', 'eu', 'eq');
  return { status: statusOf(st), synced: sync === '1', boundUser: eu ?? undefined, qrEpoch: Number(eq ?? '0') };
}
