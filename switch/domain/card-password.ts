// Checking and changing card passwords. The scrypt work runs in the worker pool; the attempt counter
// and the lock live in the account (password.lua), so five wrong tries in a campus day lock password
// use everywhere (POS, kiosk, phone) until the next day.
import type { SwitchContext } from '../context.js';
import { campusDayKey } from '../ledger/ledger.js';
import { LedgerInvariantError } from '../ledger/ledger.js';
import { initialPassword, needsRehash, PIN_PATTERN } from './password.js';
import { InvalidArgumentError, NotFoundError, PasswordLockedError, WrongPasswordError } from '../errors.js';

export const MAX_PASSWORD_ATTEMPTS_PER_DAY = 5;

export type PasswordCheck =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'wrong'; readonly attemptsLeft: number }
  | { readonly ok: false; readonly reason: 'locked' }
  | { readonly ok: false; readonly reason: 'unknown_card' };

interface PasswordState {
  readonly code: number;
  readonly attemptsLeft: number;
  readonly storedHash: string;
  readonly initial: boolean;
  readonly documentNumber: string;
}

async function passwordScript(ctx: SwitchContext, cardNo: string, args: readonly string[]): Promise<PasswordState> {
  const day = campusDayKey(ctx.now());
  const reply = await ctx.scripts.run('password', [ctx.keys.account(cardNo)], [args[0] ?? '', day, MAX_PASSWORD_ATTEMPTS_PER_DAY, ...args.slice(1)]);
  if (!Array.isArray(reply) || reply.length !== 5) throw new LedgerInvariantError(`password.lua answered ${JSON.stringify(reply)}`);
  const [code, left, hash, initial, docn] = reply;
  if (![1, 2, 3, 5].includes(Number(code))) throw new LedgerInvariantError(`password.lua answered code ${String(code)}`);
  return { code: Number(code), attemptsLeft: Number(left), storedHash: String(hash ?? ''), initial: initial === '1', documentNumber: String(docn ?? '') };
}

/**
 * Verifies a card password. The attempt is taken (counted as wrong) before the check and given back
 * when the password is right, so parallel guesses never get more checks than the attempts left.
 * Never throws for a wrong password: returns why.
 */
export async function checkCardPassword(ctx: SwitchContext, cardNo: string, pin: string): Promise<PasswordCheck> {
  const state = await passwordScript(ctx, cardNo, ['take']);
  if (state.code === 5) return { ok: false, reason: 'unknown_card' };
  if (state.code === 2) return { ok: false, reason: 'locked' };
  if (!PIN_PATTERN.test(pin) || state.storedHash === '' || !(await ctx.passwords.verify(pin, state.storedHash))) {
    if (state.attemptsLeft === 0) return { ok: false, reason: 'locked' };
    return { ok: false, reason: 'wrong', attemptsLeft: state.attemptsLeft };
  }
  // Imported passwords were hashed at a lower cost; after a correct entry, store them at full cost.
  const rehash = needsRehash(state.storedHash, ctx.config.passwordScryptN) ? await ctx.passwords.hash(pin, ctx.config.passwordScryptN) : '';
  const done = await passwordScript(ctx, cardNo, ['ok', state.storedHash, rehash]);
  // The password was changed between the take and the check: the one presented is no longer the card's.
  if (done.code === 3) return { ok: false, reason: 'wrong', attemptsLeft: state.attemptsLeft };
  return { ok: true };
}

/** For the kiosk and phone: throws the gRPC-mapped refusal unless the password is right. */
export async function requireCardPassword(ctx: SwitchContext, cardNo: string, pin: string): Promise<void> {
  if (pin === '') throw new InvalidArgumentError('password is required (the 6-digit card password)');
  if (!PIN_PATTERN.test(pin)) throw new InvalidArgumentError('password must be exactly 6 digits');
  const check = await checkCardPassword(ctx, cardNo, pin);
  if (check.ok) return;
  if (check.reason === 'unknown_card') throw new NotFoundError(`card ${cardNo} does not exist`);
  if (check.reason === 'locked') throw new PasswordLockedError();
  throw new WrongPasswordError(check.attemptsLeft);
}

/** Old password checked (and counted), new one must differ from it and from the initial one. */
export async function changeCardPassword(ctx: SwitchContext, cardNo: string, oldPin: string, newPin: string): Promise<void> {
  if (!PIN_PATTERN.test(newPin)) throw new InvalidArgumentError('new_password must be exactly 6 digits');
  if (newPin === oldPin) throw new InvalidArgumentError('new_password must differ from the old password');
  await requireCardPassword(ctx, cardNo, oldPin);
  const state = await passwordScript(ctx, cardNo, ['state']);
  if (state.documentNumber !== '' && state.documentNumber.length >= 6 && newPin === initialPassword(state.documentNumber)) {
    throw new InvalidArgumentError('new_password must not be the initial password (the last six characters of the document number)');
  }
  const newHash = await ctx.passwords.hash(newPin, ctx.config.passwordScryptN);
  const result = await passwordScript(ctx, cardNo, ['set', state.storedHash, newHash, '1']);
  if (result.code === 3) throw new InvalidArgumentError('the password was changed at the same time elsewhere; try again');
  if (result.code === 2) throw new PasswordLockedError();
}

/** True while the stored password is still the initial one (the e-card page nags to change it). */
export async function hasInitialPassword(ctx: SwitchContext, cardNo: string): Promise<boolean> {
  return (await passwordScript(ctx, cardNo, ['state'])).initial;
}
