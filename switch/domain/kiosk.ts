// What a dormitory kiosk does for the cardholder in front of it, one function per action: find the
// cardholder (the card on the reader, or the student/staff number and the card password), then apply
// the rule that lives in its own module (loss in card-status.ts, passwords in card-password.ts,
// fees, statements; recharge orders in recharge-orders.ts). The kiosk's terminal is limited across cards for wrong passwords.
import type { SwitchContext } from '../context.js';
import { NotFoundError } from '../errors.js';
import type { UtilityTarget } from '../fees/index.js';
import type { FeeAnswer } from '../ledger/money.js';
import { changeCardPassword, checkCardPassword, passwordBusyError, requireCardPassword } from './card-password.js';
import { cancelCardLoss, reportCardLost, type StatusChange } from './card-status.js';
import { cardNamedBy, resolveCardholder, type CardholderRef } from './cardholder.js';
import { feeRequestRecorded, payUtilityFee } from './fees.js';
import type { StatementQueryInput, StatementReader, StatementResult } from './reports.js';

/** Who stands at the kiosk and the card password they typed ('' when they tapped the card). */
export interface KioskCardholder {
  readonly cardholder: CardholderRef | undefined;
  readonly password: string;
  /** The authenticated kiosk. */
  readonly terminalId: string;
}

/** Reports the card lost. Whoever holds the card may; by number alone, the password proves who asks. */
export async function reportLossAtKiosk(ctx: SwitchContext, who: KioskCardholder): Promise<StatusChange> {
  const { cardNo, serial } = await resolveCardholder(ctx, who.cardholder);
  if (serial === '') await requireCardPassword(ctx, cardNo, who.password, { terminalId: who.terminalId });
  return reportCardLost(ctx, cardNo);
}

/** Cancels a loss report; always with the card password (a found card may be in anyone's hands). */
export async function cancelLossAtKiosk(ctx: SwitchContext, who: KioskCardholder): Promise<StatusChange> {
  const { cardNo } = await resolveCardholder(ctx, who.cardholder);
  await requireCardPassword(ctx, cardNo, who.password, { terminalId: who.terminalId });
  return cancelCardLoss(ctx, cardNo);
}

/** `who.password` is the old password. */
export async function changePasswordAtKiosk(ctx: SwitchContext, who: KioskCardholder, newPassword: string): Promise<void> {
  const { cardNo } = await resolveCardholder(ctx, who.cardholder);
  await changeCardPassword(ctx, cardNo, who.password, newPassword, { terminalId: who.terminalId });
}

export interface KioskFee extends KioskCardholder {
  readonly sequence: number;
  readonly target: UtilityTarget;
  readonly amountFen: number;
}

export type KioskFeeOutcome =
  /** The password was wrong or is locked: nothing recorded under the request, the same sequence may retry. */
  | { readonly kind: 'password_refused'; readonly reason: 'wrong' | 'locked'; readonly attemptsLeft: number }
  | { readonly kind: 'answered'; readonly answer: FeeAnswer };

/**
 * Pays a utility fee with the card password. A wrong or locked password is an answer (the kiosk
 * shows it and the cardholder may try again under the same sequence number), not an error.
 */
export async function payUtilityFeeAtKiosk(ctx: SwitchContext, fee: KioskFee): Promise<KioskFeeOutcome> {
  // A retry of a request already taken is answered from its record first, as a PIN payment's is: the card
  // may have been replaced or its password changed since, and the kiosk must still learn the fee was paid
  // (not "card replaced" or "wrong password" for money already gone). No password check is spent on it.
  const namedCardNo = await cardNamedBy(ctx, fee.cardholder);
  if (namedCardNo !== undefined) {
    const request = {
      cardNo: namedCardNo,
      terminalId: fee.terminalId,
      sequence: fee.sequence,
      target: fee.target,
      amountFen: fee.amountFen,
    };
    if (await feeRequestRecorded(ctx, request)) return { kind: 'answered', answer: await payUtilityFee(ctx, request) };
  }
  const { cardNo } = await resolveCardholder(ctx, fee.cardholder);
  const check = await checkCardPassword(ctx, cardNo, fee.password, { terminalId: fee.terminalId });
  if (!check.ok) {
    if (check.reason === 'unknown_card') throw new NotFoundError(`card ${cardNo} does not exist`);
    if (check.reason === 'busy') throw passwordBusyError();
    if (check.reason === 'locked') return { kind: 'password_refused', reason: 'locked', attemptsLeft: 0 };
    return { kind: 'password_refused', reason: 'wrong', attemptsLeft: check.attemptsLeft };
  }
  const answer = await payUtilityFee(ctx, {
    cardNo,
    terminalId: fee.terminalId,
    sequence: fee.sequence,
    target: fee.target,
    amountFen: fee.amountFen,
  });
  if (answer.code === 'unknown_card') throw new NotFoundError(`card ${cardNo} does not exist`);
  return { kind: 'answered', answer };
}

export interface KioskStatement {
  readonly page: StatementResult;
  readonly balanceFen: number;
}

/** A page of the cardholder's statement and the balance, after the card password. */
export async function statementAtKiosk(
  ctx: SwitchContext,
  reader: StatementReader,
  who: KioskCardholder,
  query: StatementQueryInput,
): Promise<KioskStatement> {
  const { cardNo } = await resolveCardholder(ctx, who.cardholder);
  await requireCardPassword(ctx, cardNo, who.password, { terminalId: who.terminalId });
  // '' serial: reading a statement is not a card sync.
  const card = await ctx.ledger.inquire(cardNo, '');
  if (card.code === 'unknown_card') throw new NotFoundError(`card ${cardNo} does not exist`);
  return { page: await reader.read(cardNo, query), balanceFen: card.balanceFen };
}
