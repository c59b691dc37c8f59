// The card office's actions that move no money: register and enable terminals, replace a card,
// freeze it, set its own limits, import cardholders and terminals. Each action is written to the
// operator log by the function that performs it, with the operator's name.
import type { SwitchContext } from '../context.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError } from '../errors.js';
import {
  ImportInterruptedError,
  importCardholders,
  importTerminals,
  parseCardholdersCsv,
  parseTerminalsCsv,
  type ImportReport,
  type RowError,
} from '../data/import.js';
import { cardExists, claimCardSerial, recordedReplacementSerial, releaseCardSerial, settleCardSerial } from '../ledger/cards.js';
import type { CardStatusCode } from '../ledger/ledger.js';
import { EXTERNAL_ID_PATTERN } from '../ledger/money.js';
import { appendOperatorLog } from '../ledger/oplog.js';
import { cardView, type CardView } from './card-view.js';
import { validateNewTerminal, type NewTerminal } from './terminals.js';

export async function registerTerminal(ctx: SwitchContext, operator: string, terminal: NewTerminal): Promise<void> {
  const problems = validateNewTerminal(terminal);
  if (problems.length > 0) throw new InvalidArgumentError(problems.join('; '));
  // create() checks and writes in one step: the registry's cached view could miss a terminal
  // registered a moment ago, and an overwrite would replace its secret and enable it again.
  if (!(await ctx.terminals.create(terminal))) throw new FailedPreconditionError(`terminal ${terminal.id} is already registered`);
  await appendOperatorLog(ctx, 'register-terminal', operator, {
    terminal: terminal.id,
    kind: terminal.kind,
    merchant: terminal.merchantId,
  });
}

export async function setTerminalEnabled(ctx: SwitchContext, operator: string, terminalId: string, enabled: boolean): Promise<void> {
  if (!(await ctx.terminals.setEnabled(terminalId, enabled)))
    throw new NotFoundError(`terminal ${terminalId.slice(0, 40)} is not registered`);
  await appendOperatorLog(ctx, enabled ? 'enable-terminal' : 'disable-terminal', operator, { terminal: terminalId });
}

export interface CardReplacement {
  /** The card after the replacement (not synced until the new card is tapped). */
  readonly card: CardView;
  readonly oldSerial: string;
}

/**
 * Moves the account (balance, password, limits) to a new card serial; the old card is dead. The serial
 * is claimed in the directory first, so a serial already on another card is refused and never moved;
 * a refusal after the claim (a reused request id, the card gone) gives the claim back, so the blank
 * card can be issued to another card.
 * `newSerial` is a checked serial in upper case. Idempotent by (card, `requestId`): a retry of the
 * request, at any later time (after a later replacement of the card too), answers its first answer and
 * changes nothing; the same id with another new serial is refused and changes nothing.
 */
export async function replaceCard(
  ctx: SwitchContext,
  operator: string,
  cardNo: string,
  requestId: string,
  newSerial: string,
): Promise<CardReplacement> {
  if (!EXTERNAL_ID_PATTERN.test(requestId)) {
    throw new InvalidArgumentError(
      `request_id must be 4-64 of A-Z a-z 0-9 _ -, chosen once per replacement and sent again with every retry of it, ` +
        `got "${requestId.slice(0, 70)}" (补卡请求编号须为4-64位字母、数字、_或-，每次补卡生成一个，重试时沿用)`,
      { reason: 'INVALID_REQUEST_ID', zh: '补卡请求编号须为4-64位字母、数字、_或-', field: 'request_id' },
    );
  }
  if (!(await cardExists(ctx, cardNo))) throw new NotFoundError(`card ${cardNo} does not exist`);
  // A reused id is refused before the serial is claimed when it is recorded already; one racing its first
  // use is refused by replace-card.lua after the claim, and that claim is given back below.
  const recorded = await recordedReplacementSerial(ctx, cardNo, requestId);
  if (recorded !== undefined && recorded !== newSerial) throw replacementIdReused(cardNo, requestId, recorded);
  const claim = await claimCardSerial(ctx, newSerial, cardNo, ctx.now());
  if (!claim.claimed) throw new FailedPreconditionError(`card serial ${newSerial} already belongs to another card`);
  if (claim.tookOverFrom !== undefined) {
    ctx.log.warn(
      { cardNo, serial: newSerial, staleCard: claim.tookOverFrom },
      'took over a claim of the serial that a replacement of another card left unconfirmed (its switch stopped between claim and replacement)',
    );
  }
  // A failure of the script itself (Redis gone, a timeout) leaves the claim held: the script may have run,
  // so the entry is not given back; a retry of the request settles it, or it turns stale (claimCardSerial).
  const replaced = await ctx.ledger.replaceCard(cardNo, requestId, newSerial);
  if (replaced.code === 'unknown_card' || replaced.code === 'key_reused' || replaced.code === 'serial_taken') {
    // Refused, nothing moved: the claim is given back unless the card or another request holds it.
    await releaseCardSerial(ctx, newSerial, cardNo, claim.token);
    if (replaced.code === 'unknown_card') throw new NotFoundError(`card ${cardNo} does not exist`);
    // This call's claim went stale (its switch stalled) and another card's replacement took the serial over.
    if (replaced.code === 'serial_taken') throw new FailedPreconditionError(`card serial ${newSerial} already belongs to another card`);
    throw replacementIdReused(cardNo, requestId, undefined);
  }
  // replaced, replayed or serial_current: the card has (or had) this serial, so its entry stays for good.
  await settleCardSerial(ctx, newSerial, cardNo, claim.token);
  if (replaced.code === 'serial_current')
    throw new FailedPreconditionError(`card ${cardNo} already has serial ${newSerial}; a replacement needs the new card's serial`);
  // A retry (the first answer lost to a timeout) changed nothing and is not logged again.
  if (replaced.code === 'replaced') {
    await appendOperatorLog(ctx, 'replace-card', operator, { card: cardNo, old: replaced.oldSerial, new: newSerial });
  }
  return { card: await cardView(ctx, cardNo, ''), oldSerial: replaced.oldSerial };
}

function replacementIdReused(cardNo: string, requestId: string, recordedSerial: string | undefined): AlreadyExistsError {
  const was = recordedSerial === undefined ? 'another new card serial' : `new card serial ${recordedSerial}`;
  return new AlreadyExistsError(
    `request_id ${requestId} was already used to replace card ${cardNo} with ${was}; nothing was changed. ` +
      `To replace the card again use a new request_id (补卡请求编号 ${requestId} 已用于本卡的另一次补卡，未做任何更改；再次补卡请使用新的请求编号)`,
    {
      reason: 'REQUEST_ID_REUSED',
      zh: `补卡请求编号 ${requestId} 已用于本卡的另一次补卡，再次补卡请使用新的请求编号`,
      field: 'request_id',
    },
  );
}

/**
 * Freezes a card (from active or lost) or unfreezes it; `reason` is a checked, trimmed line. Returns the
 * card's status now: frozen after a freeze; after an unfreeze the status the freeze came from, so a card
 * frozen from lost stays lost (its loss is cancelled only with the holder's password, or by a replacement).
 * A card that cannot make the change is refused: a lost card is never unfrozen (that would cancel its loss
 * without the holder's password), so a retried unfreeze of a card it returned to lost is refused, saying so.
 * Unfreezing an active card changes nothing and answers active.
 */
export async function setCardFrozen(
  ctx: SwitchContext,
  operator: string,
  cardNo: string,
  frozen: boolean,
  reason: string,
): Promise<CardStatusCode> {
  // Unfreezing asks for active; set-status.lua gives back the status the freeze remembered instead.
  const result = frozen
    ? await ctx.ledger.setStatus(cardNo, 'frozen', ['active', 'lost', 'frozen'])
    : await ctx.ledger.setStatus(cardNo, 'active', ['frozen', 'active']);
  if (result === undefined) throw new NotFoundError(`card ${cardNo} does not exist`);
  if (!result.changed && result.previous === 'lost')
    throw new FailedPreconditionError(
      `card ${cardNo} is lost, not frozen: nothing to unfreeze; the holder cancels the loss with the card password (卡已挂失，未冻结)`,
    );
  if (!result.changed)
    throw new FailedPreconditionError(`card ${cardNo} is ${result.previous}; it cannot be ${frozen ? 'frozen' : 'unfrozen'}`);
  const unfrozenUnremembered = !frozen && result.previous === 'frozen' && result.remembered === undefined;
  if (unfrozenUnremembered) {
    // Frozen before the switch remembered what a freeze came from: whether it was lost is not known.
    // The operator asked for the card back, so it becomes active as it did then; the log says so.
    ctx.log.warn({ cardNo, operator }, 'unfrozen a card frozen before its earlier status was kept; it is now active (was it lost?)');
  }
  await appendOperatorLog(ctx, frozen ? 'freeze' : 'unfreeze', operator, {
    card: cardNo,
    reason,
    from: result.previous,
    to: result.status,
    ...(unfrozenUnremembered ? { remembered: 'none' } : {}),
  });
  return result.status;
}

/** A card's own limits in fen; -1 clears one (its holder type's default applies). */
export interface CardLimits {
  readonly noPinPerPaymentFen: number;
  readonly noPinPerDayFen: number;
  readonly dailySpendLimitFen: number;
}

export async function setCardLimits(ctx: SwitchContext, operator: string, cardNo: string, limits: CardLimits): Promise<void> {
  if (!(await ctx.ledger.setCardLimits(cardNo, limits))) throw new NotFoundError(`card ${cardNo} does not exist`);
  await appendOperatorLog(ctx, 'set-limits', operator, {
    card: cardNo,
    noPinPerPaymentFen: String(limits.noPinPerPaymentFen),
    noPinPerDayFen: String(limits.noPinPerDayFen),
    dailySpendLimitFen: String(limits.dailySpendLimitFen),
  });
}

export interface ImportOutcome {
  readonly imported: number;
  /** Empty when every row was imported; a file with problems imports nothing. */
  readonly problems: readonly RowError[];
}

/** Imports a cardholders CSV, all rows or none; a file that does not parse is not logged. */
export async function importCardholdersCsv(ctx: SwitchContext, operator: string, csv: string): Promise<ImportOutcome> {
  const parsed = parseCardholdersCsv(csv);
  if (parsed.errors.length > 0) return { imported: 0, problems: parsed.errors };
  let report: ImportReport;
  try {
    report = await importCardholders({ ledger: ctx.ledger }, parsed.rows);
  } catch (err) {
    // Some rows are written: the operator must learn how far it got (not "internal error"), and that
    // running the file again is safe and lists the written rows.
    if (err instanceof ImportInterruptedError)
      throw new UnavailableError(`${err.message} / ${err.zh}`, { reason: 'IMPORT_INTERRUPTED', zh: err.zh });
    throw err;
  }
  await appendOperatorLog(ctx, 'import-cardholders', operator, {
    imported: String(report.importedCount),
    problems: String(report.errors.length),
  });
  return { imported: report.importedCount, problems: report.errors };
}

/** Imports a terminals CSV, all rows or none; a file that does not parse is not logged. */
export async function importTerminalsCsv(ctx: SwitchContext, operator: string, csv: string): Promise<ImportOutcome> {
  const parsed = parseTerminalsCsv(csv);
  if (parsed.errors.length > 0) return { imported: 0, problems: parsed.errors };
  let report: ImportReport;
  try {
    report = await importTerminals(ctx.terminals, parsed.rows);
  } catch (err) {
    if (err instanceof ImportInterruptedError)
      throw new UnavailableError(`${err.message} / ${err.zh}`, { reason: 'IMPORT_INTERRUPTED', zh: err.zh });
    throw err;
  }
  await appendOperatorLog(ctx, 'import-terminals', operator, {
    imported: String(report.importedCount),
    problems: String(report.errors.length),
  });
  return { imported: report.importedCount, problems: report.errors };
}
