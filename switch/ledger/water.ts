// Typed wrappers over the small-wallet scripts (water-debit.lua, settle.lua). Each money change is one
// script call; script answers are small codes mapped exhaustively to typed results, and every amount in
// an answer is checked against the wallet's bounds before anyone shows it on a screen.
import {
  decodeAnswer,
  LedgerInvariantError,
  SETTLE_ANSWERS,
  SETTLE_REFUSALS,
  WATER_DEBIT_ANSWERS,
  WATER_DEBIT_REFUSALS,
  type AnswerOf,
} from './answers.js';
import type { Keys } from './keys.js';
import { IdempotencyConflictError } from './ledger.js';
import type { PlainScriptName, Scripts, ScriptReply } from './scripts.js';

/** The small wallet never holds more than 10.00: it is refilled to this at every settlement. */
export const SMALL_WALLET_CAP_FEN = 1000;

export type WaterDebitCode = AnswerOf<typeof WATER_DEBIT_ANSWERS>;

export type SettleCode = AnswerOf<typeof SETTLE_ANSWERS>;

export interface WaterDebitInput {
  readonly cardNo: string;
  /** '' when the credential is not a card tap. */
  readonly presentedSerial: string;
  readonly amountFen: number;
  readonly credentialKind: string;
  readonly terminalId: string;
  readonly sequence: number;
  readonly merchantId: string;
}

export interface WaterDebitResult {
  readonly code: WaterDebitCode;
  /** The small wallet after the request (unchanged when declined; 0 for an unknown or replaced card). */
  readonly smallWalletAfterFen: number;
  /** The journal entry id, '' when declined. */
  readonly transactionId: string;
  readonly decidedAtMs: number;
}

export interface SettleInput {
  readonly cardNo: string;
  /** The tapped card's serial: settlement reads the physical card only. */
  readonly presentedSerial: string;
  readonly terminalId: string;
  readonly sequence: number;
}

export interface SettleResult {
  readonly code: SettleCode;
  readonly balanceAfterFen: number;
  readonly smallWalletAfterFen: number;
  /** Spent from the wallet and not charged before this swipe (0 on the opening swipe). */
  readonly spentFen: number;
  /** Moved from the account into the wallet by this swipe; below spentFen for a partial refill. */
  readonly movedToWalletFen: number;
  /** True when this swipe opened the wallet. */
  readonly opened: boolean;
  readonly transactionId: string;
  readonly decidedAtMs: number;
}

export class WaterLedger {
  constructor(
    readonly keys: Keys,
    readonly scripts: Scripts,
    private readonly requestTtlSec: number,
    private readonly now: () => number = Date.now,
  ) {}

  async debit(input: WaterDebitInput): Promise<WaterDebitResult> {
    if (!Number.isSafeInteger(input.amountFen) || input.amountFen < 1 || input.amountFen > SMALL_WALLET_CAP_FEN) {
      throw new RangeError(`a water debit must be 1..${SMALL_WALLET_CAP_FEN} fen, got ${input.amountFen}`);
    }
    const k = this.keys;
    const reply = await this.run(
      'water-debit',
      [
        k.account(input.cardNo),
        k.request(input.cardNo, input.terminalId, input.sequence),
        k.journalOfCard(input.cardNo),
        k.statement(input.cardNo),
      ],
      [
        input.cardNo,
        input.presentedSerial,
        input.amountFen,
        `wpay|${input.cardNo}|${input.amountFen}|${input.credentialKind}`,
        input.terminalId,
        input.sequence,
        `m:${input.merchantId}`,
        this.now(),
        this.requestTtlSec,
        SMALL_WALLET_CAP_FEN,
      ],
    );
    if (typeof reply === 'number') {
      const refusal = decodeAnswer('water-debit', WATER_DEBIT_REFUSALS, reply);
      const errors = { key_reused: () => sequenceReused(input) } satisfies Record<typeof refusal, () => Error>;
      throw errors[refusal]();
    }
    return parseWaterDebitAnswer(reply);
  }

  async settle(input: SettleInput): Promise<SettleResult> {
    if (input.presentedSerial === '') throw new RangeError('settlement needs the tapped card serial');
    const k = this.keys;
    const reply = await this.run(
      'settle',
      [
        k.account(input.cardNo),
        k.request(input.cardNo, input.terminalId, input.sequence),
        k.journalOfCard(input.cardNo),
        k.statement(input.cardNo),
      ],
      [
        input.cardNo,
        input.presentedSerial,
        `wset|${input.cardNo}|card`,
        input.terminalId,
        input.sequence,
        this.now(),
        this.requestTtlSec,
        SMALL_WALLET_CAP_FEN,
      ],
    );
    if (typeof reply === 'number') {
      const refusal = decodeAnswer('settle', SETTLE_REFUSALS, reply);
      const errors = { key_reused: () => sequenceReused(input) } satisfies Record<typeof refusal, () => Error>;
      throw errors[refusal]();
    }
    return parseSettleAnswer(reply);
  }

  /** A script's "INVARIANT ..." error reply is a broken ledger, not a failed request: make it typed. */
  private async run(name: PlainScriptName, keys: readonly string[], args: readonly (string | number)[]): Promise<ScriptReply> {
    try {
      return await this.scripts.run(name, keys, args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('INVARIANT')) throw new LedgerInvariantError(`${name}: ${err.message}`);
      throw err;
    }
  }
}

function sequenceReused(input: { readonly terminalId: string; readonly sequence: number }): IdempotencyConflictError {
  return new IdempotencyConflictError(
    `sequence number ${input.sequence} of terminal ${input.terminalId} was already used for a different request; use a new sequence number`,
  );
}

function wholeFen(text: string | undefined, what: string, maxFen = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (text === undefined || text === '' || !Number.isSafeInteger(value) || value < 0 || value > maxFen) {
    throw new LedgerInvariantError(`ledger answered ${what} ${String(text)}, expected a whole number of fen 0..${maxFen}`);
  }
  return value;
}

function parseWaterDebitAnswer(reply: ScriptReply): WaterDebitResult {
  if (typeof reply !== 'string') throw new LedgerInvariantError(`water-debit answered ${JSON.stringify(reply)}`);
  const parts = reply.split('|');
  if (parts.length !== 4) throw new LedgerInvariantError(`water-debit answered ${reply}`);
  const [code, wallet, txnId, decidedAt] = parts;
  const mapped = decodeAnswer('water-debit', WATER_DEBIT_ANSWERS, code);
  const result: WaterDebitResult = {
    code: mapped,
    smallWalletAfterFen: wholeFen(wallet, 'small wallet', SMALL_WALLET_CAP_FEN),
    transactionId: txnId ?? '',
    decidedAtMs: wholeFen(decidedAt, 'time'),
  };
  if ((result.code === 'approved') !== (result.transactionId !== '')) {
    throw new LedgerInvariantError(`water-debit answered ${reply}: only an approved debit has a transaction id`);
  }
  return result;
}

function parseSettleAnswer(reply: ScriptReply): SettleResult {
  if (typeof reply !== 'string') throw new LedgerInvariantError(`settle answered ${JSON.stringify(reply)}`);
  const parts = reply.split('|');
  const [code, balance, wallet, spent, moved, opened, txnId, decidedAt] = parts;
  const mapped = decodeAnswer('settle', SETTLE_ANSWERS, code);
  if (parts.length !== 8 || (opened !== '0' && opened !== '1')) {
    throw new LedgerInvariantError(`settle answered ${reply}`);
  }
  const result: SettleResult = {
    code: mapped,
    balanceAfterFen: wholeFen(balance, 'balance'),
    smallWalletAfterFen: wholeFen(wallet, 'small wallet', SMALL_WALLET_CAP_FEN),
    spentFen: wholeFen(spent, 'spent', SMALL_WALLET_CAP_FEN),
    movedToWalletFen: wholeFen(moved, 'moved', SMALL_WALLET_CAP_FEN),
    opened: opened === '1',
    transactionId: txnId ?? '',
    decidedAtMs: wholeFen(decidedAt, 'time'),
  };
  // Money moved if and only if there is a journal entry; a refill never charges more than was spent.
  const movedMoney = result.movedToWalletFen > 0;
  if (movedMoney !== (result.transactionId !== '') || (movedMoney && result.code !== 'approved')) {
    throw new LedgerInvariantError(`settle answered ${reply}: moved money and transaction id disagree`);
  }
  if (!result.opened && result.movedToWalletFen > result.spentFen) {
    throw new LedgerInvariantError(`settle answered ${reply}: moved more than was spent`);
  }
  return result;
}
