// Typed wrappers over the Lua scripts. Every money change is one script call; nothing here reads a
// balance and writes it back. Script answers are small codes mapped exhaustively to typed results.
import {
  AUTHORIZE_ANSWERS,
  AUTHORIZE_REFUSALS,
  decodeAnswer,
  ECARD_BINDING_ANSWERS,
  ECARD_WATCH_ANSWERS,
  INQUIRE_ANSWERS,
  LedgerInvariantError,
  numericReply,
  OPEN_ACCOUNT_ANSWERS,
  REPLACE_CARD_ANSWERS,
  REPLACE_CARD_REFUSALS,
  REVERSE_ANSWERS,
  REVERSE_REFUSALS,
  SET_LIMITS_ANSWERS,
  SET_STATUS_ANSWERS,
  type AnswerOf,
} from './answers.js';
import type { PayerChannel } from './channel-payers.js';
import type { Keys } from './keys.js';
import { readRequestFields } from './request-records.js';
import type { PreparedScript, Scripts, ScriptReply } from './scripts.js';

export { LedgerInvariantError } from './answers.js';

/** China Standard Time has no daylight saving: the campus day starts at 00:00 UTC+8. */
const CAMPUS_UTC_OFFSET_MS = 8 * 60 * 60 * 1000;

export function campusDayKey(nowMs: number): string {
  const d = new Date(nowMs + CAMPUS_UTC_OFFSET_MS);
  return `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
}

/** When the campus day (UTC+8) holding `nowMs` began. */
export function campusDayStartMs(nowMs: number): number {
  const day = 86_400_000;
  return Math.floor((nowMs + CAMPUS_UTC_OFFSET_MS) / day) * day - CAMPUS_UTC_OFFSET_MS;
}

export type AuthorizeCode = AnswerOf<typeof AUTHORIZE_ANSWERS>;

/**
 * How long a campus QR code's single-use mark is kept. A code is accepted for at most 60 s after it
 * was issued, by a clock at most 30 s ahead (config.ts caps both), so after 180 s nothing could pay
 * with it again anyway.
 */
export const QR_USED_MARK_TTL_SEC = 180;

/** A campus QR code the switch has opened: genuine, naming this card. */
export interface PresentedCampusQr {
  readonly codeId: string;
  readonly epoch: number;
  /** Older than its validity: declined unless this very request was decided before (a retry). */
  readonly expired: boolean;
}

export interface AuthorizeResult {
  readonly code: AuthorizeCode;
  readonly balanceAfterFen: number;
  readonly transactionId: string;
  readonly decidedAtMs: number;
}

export type EcardBindingCode = AnswerOf<typeof ECARD_BINDING_ANSWERS>;

export type ReverseCode = AnswerOf<typeof REVERSE_ANSWERS>;

export interface ReverseResult {
  readonly code: ReverseCode;
  readonly balanceAfterFen: number;
  readonly decidedAtMs: number;
}

export type CardStatusCode = 'active' | 'lost' | 'frozen' | 'cancelled';

/** What set-status.lua did (`Ledger.setStatus`). */
export interface SetStatusResult {
  /** The status before the call. */
  readonly previous: CardStatusCode;
  /** False when the current status did not allow the change (nothing changed); true also when it already was the status asked. */
  readonly changed: boolean;
  /** The status after the call: the one asked, or the remembered one when a frozen card is made active. */
  readonly status: CardStatusCode;
  /** The status the card's freeze came from, as the account held it before the call; undefined when none. */
  readonly remembered: CardStatusCode | undefined;
}

/**
 * replace-card.lua's answer: the serial replaced, first time ('replaced') or again for a retry of the
 * request id or a second request for the serial the card already has ('replayed').
 */
export type CardReplaceAnswer =
  | { readonly code: 'replaced' | 'replayed'; readonly oldSerial: string }
  | { readonly code: 'unknown_card' }
  /** The card's serial already is the new one, and no replacement made it so (nothing written but the request's record). */
  | { readonly code: 'serial_current' }
  /** The request id was used before for this card with another new serial (nothing written). */
  | { readonly code: 'key_reused' }
  /** A takeover of the serial's stale claim fenced this card off it (serial-fence.lua; nothing written). */
  | { readonly code: 'serial_taken' };
const STATUS_FROM_LEDGER: Record<string, CardStatusCode> = { A: 'active', L: 'lost', F: 'frozen', C: 'cancelled' };
const STATUS_TO_LEDGER: Record<CardStatusCode, string> = { active: 'A', lost: 'L', frozen: 'F', cancelled: 'C' };

export interface InquireResult {
  readonly code: AnswerOf<typeof INQUIRE_ANSWERS>;
  readonly balanceFen: number;
  readonly smallWalletFen: number;
  readonly status: CardStatusCode | undefined;
  readonly synced: boolean;
  readonly name: string;
  readonly holderType: string;
}

/** The request key was used before for a different request; nothing changed. */
export class IdempotencyConflictError extends Error {
  override readonly name = 'IdempotencyConflictError';
}

/**
 * A payment whose script took its sequence claim found the number claimed by another card or by an
 * unknown card's recorded decline (SequenceClaims.owner says which); nothing changed.
 */
export class SequenceTakenError extends Error {
  override readonly name = 'SequenceTakenError';
}

/** A reversal that does not match its payment (amount or card); nothing changed. */
export class ReversalMismatchError extends Error {
  override readonly name = 'ReversalMismatchError';
}

function parseInteger(text: string | undefined, what: string): number {
  const value = Number(text);
  if (text === undefined || text === '' || !Number.isSafeInteger(value)) {
    throw new LedgerInvariantError(`ledger returned a non-integer ${what}: ${String(text)}`);
  }
  return value;
}

export interface AuthorizeInput {
  readonly cardNo: string;
  /** '' when the credential is not a card tap. */
  readonly presentedSerial: string;
  readonly amountFen: number;
  readonly credentialKind: string;
  readonly terminalId: string;
  readonly sequence: number;
  readonly merchantId: string;
  /** True when the card password was verified for this request (lifts the password-free limits). */
  readonly pinVerified: boolean;
  /** Set when the credential is a campus QR code. */
  readonly campusQr?: PresentedCampusQr | undefined;
  readonly limits: { readonly student: HolderLimits; readonly staff: HolderLimits };
  /**
   * Take the terminal's sequence claim (ledger/claims.ts) inside the script instead of with a command
   * of its own before it: only where `Ledger.claimsInScript` (one Redis, not a Cluster). A number
   * claimed by another card then throws SequenceTakenError and changes nothing.
   */
  readonly claimSequence?: boolean;
}

export interface HolderLimits {
  readonly noPinPerPaymentFen: number;
  readonly noPinPerDayFen: number;
  readonly dailySpendLimitFen: number;
}

type PaymentLimits = AuthorizeInput['limits'];

export interface ReverseInput {
  readonly cardNo: string;
  readonly amountFen: number;
  readonly terminalId: string;
  readonly sequence: number;
}

export interface OpenAccountInput {
  readonly cardNo: string;
  readonly openingFen: number;
  readonly fields: Readonly<Record<string, string>>;
}

export class Ledger {
  /** authorize.lua as made for the limits last paid with (a deployment pays with one set, config.limits). */
  private authorizeMade: { readonly limits: PaymentLimits; readonly script: PreparedScript } | undefined;

  constructor(
    readonly keys: Keys,
    readonly scripts: Scripts,
    private readonly requestTtlSec: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * authorize.lua with this ledger's settings and `limits` written into its text (scripts.ts
   * SCRIPT_SETTINGS): the request records' lifetime, the limits, the events channel. The same limits
   * object as the last call gives the same script at once (the payment path); others are made and
   * kept by Scripts.withSettings.
   */
  authorizeScript(limits: PaymentLimits): PreparedScript {
    const made = this.authorizeMade;
    if (made !== undefined && made.limits === limits) return made.script;
    const { student, staff } = limits;
    const script = this.scripts.withSettings('authorize', {
      requestTtlSec: this.requestTtlSec,
      studentNoPinPerPaymentFen: student.noPinPerPaymentFen,
      studentNoPinPerDayFen: student.noPinPerDayFen,
      studentDailySpendLimitFen: student.dailySpendLimitFen,
      staffNoPinPerPaymentFen: staff.noPinPerPaymentFen,
      staffNoPinPerDayFen: staff.noPinPerDayFen,
      staffDailySpendLimitFen: staff.dailySpendLimitFen,
      eventsChannel: this.keys.eventsChannel(),
      eventTtlSec: this.requestTtlSec,
    });
    this.authorizeMade = { limits, script };
    return script;
  }

  /**
   * Makes authorize.lua for `limits` and FUNCTION LOADs it (at start: a bad limit or a broken script
   * fails here). With `prune`, the libraries of earlier settings are deleted from Redis (a switch's
   * start: Redis keeps them otherwise); returns what was deleted.
   */
  async prepareAuthorize(limits: PaymentLimits, options: { prune?: boolean } = {}): Promise<PreparedScript & { pruned: string[] }> {
    const script = this.authorizeScript(limits);
    await this.scripts.loadPrepared(script);
    const pruned = options.prune === true ? await this.scripts.pruneLibraries(script) : [];
    return { ...script, pruned };
  }

  /**
   * Whether a payment's sequence claim can ride in its script (AuthorizeInput.claimSequence): one
   * Redis, where a script may touch the terminal's slot and the card's. On a Cluster it cannot.
   */
  get claimsInScript(): boolean {
    return this.scripts.singleNode;
  }

  /**
   * The recorded answer of a payment request, if it was decided before (a read; moves nothing). Lets a
   * retried PIN payment replay without paying for another password check.
   */
  async decidedPayment(
    input: Pick<AuthorizeInput, 'cardNo' | 'amountFen' | 'credentialKind' | 'terminalId' | 'sequence'>,
  ): Promise<AuthorizeResult | undefined> {
    const [fingerprint, answer] = await readRequestFields(this.redis(), this.keys.request(input.cardNo, input.terminalId, input.sequence), [
      'pfp',
      'pans',
    ]);
    if (fingerprint !== paymentFingerprint(input) || answer === null || answer === undefined) return undefined;
    return parseAuthorizeAnswer(answer);
  }

  private redis() {
    return this.scripts.client;
  }

  /** The trailing ARGV of the scripts that tell a bound e-card's page (includes/event.lua). */
  eventArgs(): [string, number] {
    return [this.keys.eventsChannel(), this.requestTtlSec];
  }

  /** Announce the card's live events until `untilMs` (a page of it is open); see ecard-watch.lua. */
  async watchCard(cardNo: string, untilMs: number): Promise<boolean> {
    const reply = await this.scripts.run('ecard-watch', [this.keys.account(cardNo)], [untilMs]);
    return decodeAnswer('ecard-watch', ECARD_WATCH_ANSWERS, numericReply('ecard-watch', reply)) === 'watched';
  }

  /**
   * Binds the card's e-card to `userId`, or ends that binding; see ecard-binding.lua. `endedPayers`: the
   * card's Alipay / WeChat payers the call ended (the card's side only: the caller releases their records).
   */
  async ecardBinding(
    op: 'bind' | 'unbind',
    cardNo: string,
    userId: string,
  ): Promise<{ code: EcardBindingCode; epoch: number; endedPayers: Readonly<Partial<Record<PayerChannel, string>>> }> {
    const reply = await this.scripts.run(
      'ecard-binding',
      [this.keys.account(cardNo), this.keys.cardEvents(cardNo)],
      [op, userId, this.now(), this.keys.eventsChannel(), cardNo],
    );
    if (!Array.isArray(reply) || reply.length !== 4 || typeof reply[2] !== 'string' || typeof reply[3] !== 'string') {
      throw new LedgerInvariantError(`ecard-binding answered ${JSON.stringify(reply)}`);
    }
    const code = decodeAnswer('ecard-binding', ECARD_BINDING_ANSWERS, numericReply('ecard-binding', reply[0]));
    const endedPayers: Partial<Record<PayerChannel, string>> = {};
    if (reply[2] !== '') endedPayers.alipay = reply[2];
    if (reply[3] !== '') endedPayers.wechat = reply[3];
    return { code, epoch: parseInteger(String(reply[1]), 'QR epoch'), endedPayers };
  }

  /**
   * The KEYS and ARGV of authorize.lua for one payment (the bench drives the script alone with them,
   * as made by authorizeScript(input.limits)).
   */
  authorizeArguments(input: AuthorizeInput, nowMs: number): { keys: string[]; args: (string | number)[] } {
    const k = this.keys;
    const keys = [
      k.account(input.cardNo),
      k.request(input.cardNo, input.terminalId, input.sequence),
      k.journalOfCard(input.cardNo),
      k.statement(input.cardNo),
      k.cardEvents(input.cardNo),
    ];
    const qr = input.campusQr;
    if (qr !== undefined) keys.push(k.campusQrUsed(input.cardNo, qr.codeId));
    if (input.claimSequence === true) {
      if (!this.claimsInScript) throw new Error('the sequence claim rides in the payment script only on one Redis, not a Cluster');
      keys.push(k.sequenceClaim(input.terminalId, input.sequence));
    }
    return {
      keys,
      args: [
        input.cardNo,
        input.presentedSerial,
        input.amountFen,
        paymentFingerprint(input),
        input.terminalId,
        input.sequence,
        `m:${input.merchantId}`,
        nowMs,
        campusDayKey(nowMs),
        input.pinVerified ? '1' : '0',
        input.credentialKind,
        ...(qr === undefined ? [] : [qr.epoch, qr.expired ? '1' : '0', QR_USED_MARK_TTL_SEC, qr.codeId]),
      ],
    };
  }

  async authorize(input: AuthorizeInput): Promise<AuthorizeResult> {
    assertPositiveFen(input.amountFen);
    const { keys, args } = this.authorizeArguments(input, this.now());
    const reply = await this.scripts.runPrepared(this.authorizeScript(input.limits), keys, args);
    if (typeof reply === 'number') {
      const refusal = decodeAnswer('authorize', AUTHORIZE_REFUSALS, reply);
      const errors = {
        key_reused: () =>
          new IdempotencyConflictError(
            `sequence number ${input.sequence} of terminal ${input.terminalId} was already used for a different payment; use a new sequence number`,
          ),
        sequence_taken: () =>
          new SequenceTakenError(`sequence number ${input.sequence} of terminal ${input.terminalId} is claimed by another request`),
      } satisfies Record<typeof refusal, () => Error>;
      throw errors[refusal]();
    }
    return parseAuthorizeAnswer(reply);
  }

  async reverse(input: ReverseInput): Promise<ReverseResult> {
    assertPositiveFen(input.amountFen);
    const k = this.keys;
    const nowMs = this.now();
    const reply = await this.scripts.run(
      'reverse',
      [
        k.account(input.cardNo),
        k.request(input.cardNo, input.terminalId, input.sequence),
        k.journalOfCard(input.cardNo),
        k.statement(input.cardNo),
        k.cardEvents(input.cardNo),
      ],
      [
        input.cardNo,
        input.amountFen,
        `rev|${input.cardNo}|${input.amountFen}`,
        input.terminalId,
        input.sequence,
        nowMs,
        this.requestTtlSec,
        campusDayKey(nowMs),
        campusDayStartMs(nowMs),
        ...this.eventArgs(),
      ],
    );
    const where = `payment ${input.sequence} of terminal ${input.terminalId}`;
    if (typeof reply === 'number') {
      const refusal = decodeAnswer('reverse', REVERSE_REFUSALS, reply);
      const errors = {
        key_reused: () => new IdempotencyConflictError(`${where} was already reversed with a different amount or card`),
        amount_differs: () => new ReversalMismatchError(`${where} was for a different amount than ${input.amountFen} fen`),
        other_card: () => new ReversalMismatchError(`${where} was made with a different card`),
        small_wallet_move: () =>
          new ReversalMismatchError(
            `${where} is a small-wallet transaction, which is not reversed; the next settlement charges what was spent`,
          ),
      } satisfies Record<typeof refusal, () => Error>;
      throw errors[refusal]();
    }
    if (typeof reply !== 'string') throw new LedgerInvariantError(`reverse answered ${JSON.stringify(reply)}`);
    const parts = reply.split('|');
    if (parts.length !== 3) throw new LedgerInvariantError(`reverse answered ${reply}`);
    const [code, balance, decidedAt] = parts;
    return {
      code: decodeAnswer('reverse', REVERSE_ANSWERS, code),
      balanceAfterFen: parseInteger(balance, 'balance'),
      decidedAtMs: parseInteger(decidedAt, 'time'),
    };
  }

  async inquire(cardNo: string, presentedSerial: string): Promise<InquireResult> {
    const reply = await this.scripts.run('inquire', [this.keys.account(cardNo)], [presentedSerial]);
    if (!Array.isArray(reply) || reply.length !== 7) throw new LedgerInvariantError(`inquire answered ${JSON.stringify(reply)}`);
    const [code, balance, wallet, status, synced, name, holderType] = reply.map((v) => (v === null ? '' : String(v)));
    return {
      code: decodeAnswer('inquire', INQUIRE_ANSWERS, code),
      balanceFen: parseInteger(balance, 'balance'),
      smallWalletFen: parseInteger(wallet, 'small wallet'),
      status: STATUS_FROM_LEDGER[status ?? ''],
      synced: synced === '1',
      name: name ?? '',
      holderType: holderType ?? '',
    };
  }

  /** Returns false when the account already exists (nothing changed). */
  async openAccount(input: OpenAccountInput): Promise<boolean> {
    if (!Number.isSafeInteger(input.openingFen) || input.openingFen < 0) {
      throw new RangeError(`opening balance must be a whole number of fen >= 0, got ${input.openingFen}`);
    }
    const k = this.keys;
    const fieldArgs = Object.entries(input.fields).flat();
    const reply = await this.scripts.run(
      'open-account',
      [k.account(input.cardNo), k.journalOfCard(input.cardNo), k.statement(input.cardNo)],
      [input.cardNo, input.openingFen, this.now(), ...fieldArgs],
    );
    return decodeAnswer('open-account', OPEN_ACCOUNT_ANSWERS, numericReply('open-account', reply)) === 'opened';
  }

  /**
   * Points the account at a new card serial (the balance stays with the account; the old serial is
   * dead). A lost card's account becomes active again; the new card must be tapped to sync.
   * A retry (the card's serial already is newSerial, made so by a replacement) answers 'replayed' with
   * that replacement's old serial and changes nothing.
   */
  /**
   * Moves the account to `newSerial`, once per (card, request id): a retry of the request id answers
   * its first answer at any later time and changes nothing. See replace-card.lua.
   */
  async replaceCard(cardNo: string, requestId: string, newSerial: string): Promise<CardReplaceAnswer> {
    const reply = await this.scripts.run(
      'replace-card',
      [this.keys.account(cardNo), this.keys.cardReplacements(cardNo)],
      [requestId, newSerial],
    );
    if (typeof reply === 'number') return { code: decodeAnswer('replace-card', REPLACE_CARD_REFUSALS, reply) };
    if (!Array.isArray(reply) || reply.length !== 2) throw new LedgerInvariantError(`replace-card.lua answered ${JSON.stringify(reply)}`);
    const code = decodeAnswer('replace-card', REPLACE_CARD_ANSWERS, numericReply('replace-card', reply[0]));
    const oldSerial = String(reply[1] ?? '');
    if (code === 'unknown_card') return { code };
    if (code === 'serial_current') return { code };
    if (oldSerial === '') throw new LedgerInvariantError(`replace-card.lua answered ${code} without the old serial`);
    return { code, oldSerial };
  }

  /** A card's own limits; -1 clears one (its holder type's default applies). False when no account. */
  async setCardLimits(
    cardNo: string,
    limits: { noPinPerPaymentFen: number; noPinPerDayFen: number; dailySpendLimitFen: number },
  ): Promise<boolean> {
    const reply = await this.scripts.run(
      'set-limits',
      [this.keys.account(cardNo)],
      [limits.noPinPerPaymentFen, limits.noPinPerDayFen, limits.dailySpendLimitFen],
    );
    return decodeAnswer('set-limits', SET_LIMITS_ANSWERS, numericReply('set-limits', reply)) === 'set';
  }

  /**
   * Sets the status when the current one is in `allowedFrom` (every status when empty). Returns the
   * previous status, whether the request was allowed (true also when the card already had the status)
   * and the status after it, or undefined when the account does not exist. A freeze remembers the status it
   * came from, and a frozen card asked to become active goes back to that status (a card frozen from
   * lost stays lost): `remembered` is that status, undefined when the account had none (a card frozen
   * before the status was remembered becomes active, as it did then). See set-status.lua.
   */
  async setStatus(
    cardNo: string,
    status: CardStatusCode,
    allowedFrom: readonly CardStatusCode[] = [],
  ): Promise<SetStatusResult | undefined> {
    const reply = await this.scripts.run(
      'set-status',
      [this.keys.account(cardNo), this.keys.cardEvents(cardNo)],
      [STATUS_TO_LEDGER[status], allowedFrom.map((s) => STATUS_TO_LEDGER[s]).join(''), cardNo, this.now(), ...this.eventArgs()],
    );
    if (!Array.isArray(reply)) {
      // Its only code is 'unknown_card'; decodeAnswer stops on any other.
      decodeAnswer('set-status', SET_STATUS_ANSWERS, numericReply('set-status', reply));
      return undefined;
    }
    if (reply.length !== 4 || (reply[1] !== 0 && reply[1] !== 1))
      throw new LedgerInvariantError(`set-status answered ${JSON.stringify(reply)}`);
    const previous = STATUS_FROM_LEDGER[String(reply[0])];
    const statusNow = STATUS_FROM_LEDGER[String(reply[2])];
    const remembered = reply[3] === '' ? undefined : STATUS_FROM_LEDGER[String(reply[3])];
    if (previous === undefined || statusNow === undefined || (reply[3] !== '' && remembered === undefined))
      throw new LedgerInvariantError(`set-status answered statuses ${JSON.stringify(reply)}`);
    if (reply[1] === 0 && statusNow !== previous)
      throw new LedgerInvariantError(`set-status refused yet changed: ${JSON.stringify(reply)}`);
    return { previous, changed: reply[1] === 1, status: statusNow, remembered };
  }
}

function paymentFingerprint(input: Pick<AuthorizeInput, 'cardNo' | 'amountFen' | 'credentialKind'>): string {
  return `pay|${input.cardNo}|${input.amountFen}|${input.credentialKind}`;
}

function assertPositiveFen(amountFen: number): void {
  if (!Number.isSafeInteger(amountFen) || amountFen <= 0) {
    throw new RangeError(`amount must be a whole number of fen > 0, got ${amountFen}`);
  }
}

function parseAuthorizeAnswer(reply: ScriptReply): AuthorizeResult {
  if (typeof reply !== 'string') throw new LedgerInvariantError(`authorize answered ${JSON.stringify(reply)}`);
  const parts = reply.split('|');
  if (parts.length !== 4) throw new LedgerInvariantError(`authorize answered ${reply}`);
  const [code, balance, txnId, decidedAt] = parts;
  const mapped = decodeAnswer('authorize', AUTHORIZE_ANSWERS, code);
  const balanceAfterFen = parseInteger(balance, 'balance');
  if (balanceAfterFen < 0) throw new LedgerInvariantError(`authorize answered a negative balance ${balanceAfterFen}`);
  return { code: mapped, balanceAfterFen, transactionId: txnId ?? '', decidedAtMs: parseInteger(decidedAt, 'time') };
}
