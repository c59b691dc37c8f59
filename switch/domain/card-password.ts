// Checking and changing card passwords. The scrypt work runs in the worker pool; the attempt counter
// and the lock live in the account (password.lua), so five wrong tries in a campus day lock password
// use everywhere (POS, kiosk, phone) until the next day.
import type { SwitchContext } from '../context.js';
import { campusDayKey } from '../ledger/ledger.js';
import { decodeAnswer, LedgerInvariantError, numericReply, PASSWORD_ANSWERS, type AnswerOf } from '../ledger/answers.js';
import { appendOperatorLog } from '../ledger/oplog.js';
import { settleTerminalPasswordCheck, takeTerminalPasswordCheck } from '../ledger/terminal-password.js';
import { initialPassword, initialPasswordMatches, needsRehash, PIN_PATTERN } from './password.js';
import {
  AlreadyExistsError,
  InvalidArgumentError,
  NotFoundError,
  PasswordLockedError,
  ResourceExhaustedError,
  WrongPasswordError,
} from '../errors.js';

export const MAX_PASSWORD_ATTEMPTS_PER_DAY = 5;

export type PasswordCheck =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'wrong'; readonly attemptsLeft: number }
  | { readonly ok: false; readonly reason: 'locked' }
  /** As many checks of this card in flight as attempts left: try again in a moment (nothing counted). */
  | { readonly ok: false; readonly reason: 'busy' }
  | { readonly ok: false; readonly reason: 'unknown_card' };

interface PasswordState {
  readonly code: AnswerOf<typeof PASSWORD_ANSWERS>;
  readonly attemptsLeft: number;
  readonly storedHash: string;
  readonly initial: boolean;
  readonly documentNumber: string;
}

async function passwordScript(ctx: SwitchContext, cardNo: string, args: readonly string[]): Promise<PasswordState> {
  const day = campusDayKey(ctx.now());
  const reply = await ctx.scripts.run(
    'password',
    [ctx.keys.account(cardNo)],
    [args[0] ?? '', day, MAX_PASSWORD_ATTEMPTS_PER_DAY, ...args.slice(1)],
  );
  if (!Array.isArray(reply) || reply.length !== 5) throw new LedgerInvariantError(`password.lua answered ${JSON.stringify(reply)}`);
  const [code, left, hash, initial, docn] = reply;
  return {
    code: decodeAnswer('password', PASSWORD_ANSWERS, numericReply('password', code)),
    attemptsLeft: Number(left),
    storedHash: String(hash ?? ''),
    initial: initial === '1',
    documentNumber: String(docn ?? ''),
  };
}

const PASSWORD_FORMAT = { reason: 'INVALID_PASSWORD', zh: '请输入6位数字卡密码', field: 'password' } as const;

/** The refusal of a check that found as many checks of the card in flight as attempts left. */
export function passwordBusyError(): ResourceExhaustedError {
  return new ResourceExhaustedError('too many password checks of this card at once; try again in a moment', {
    reason: 'PASSWORD_BUSY',
    zh: '密码校验过于频繁，请稍后再试',
    field: 'password',
  });
}

/** Where a password check comes from: a terminal (POS PIN pad, kiosk) is limited across cards too. */
export interface PasswordCheckSource {
  /** The authenticated terminal the password was entered on; absent for the phone (its bound card only). */
  readonly terminalId?: string | undefined;
}

/** The refusal of a terminal that used up its wrong passwords of the hour, or has that many checks in flight. */
export function terminalPasswordLimitError(ctx: SwitchContext, terminalId: string, code: 'limit' | 'busy'): ResourceExhaustedError {
  const max = ctx.config.terminalPasswordFailuresPerHour;
  if (code === 'busy') {
    return new ResourceExhaustedError(
      `terminal ${terminalId} has as many card-password checks in flight as wrong passwords left this hour (${max} an hour); try again in a moment (本终端密码校验过于频繁，请稍后再试)`,
      { reason: 'TERMINAL_PASSWORD_BUSY', zh: '本终端密码校验过于频繁，请稍后再试', field: 'password' },
    );
  }
  return new ResourceExhaustedError(
    `terminal ${terminalId} reached its limit of ${max} wrong card passwords this hour; password checks on it resume next hour, or see the card office (本终端本小时密码错误次数过多，请下一小时再试或到卡务中心办理)`,
    { reason: 'TERMINAL_PASSWORD_LIMIT', zh: '本终端本小时密码错误次数过多，请下一小时再试或到卡务中心办理', field: 'password' },
  );
}

/**
 * Verifies a card password. The check is taken (password.lua 'take') before the worker verifies and
 * settled after ('fail' / 'ok'), so parallel guesses never get more checks than the attempts left.
 * From a terminal, the terminal's own check is taken first (terminal-password.lua, in the terminal's
 * slot): a terminal over its wrong passwords of the hour is refused (thrown, RESOURCE_EXHAUSTED)
 * before any card's counter is touched. Never throws for a wrong password: returns why.
 */
export async function checkCardPassword(
  ctx: SwitchContext,
  cardNo: string,
  pin: string,
  source: PasswordCheckSource = {},
): Promise<PasswordCheck> {
  return (await checkCardPasswordAt(ctx, cardNo, pin, source)).check;
}

/** checkCardPassword with what the check saw: the hash it verified against (a password change writes over that one only). */
async function checkCardPasswordAt(ctx: SwitchContext, cardNo: string, pin: string, source: PasswordCheckSource): Promise<CardCheck> {
  const terminalId = source.terminalId;
  if (terminalId === undefined) return checkCardOnly(ctx, cardNo, pin);
  const taken = await takeTerminalPasswordCheck(ctx, terminalId);
  if (taken.code !== 'go') throw terminalPasswordLimitError(ctx, terminalId, taken.code);
  let checked: CardCheck;
  try {
    checked = await checkCardOnly(ctx, cardNo, pin);
  } catch (err) {
    await settleTerminalPasswordCheck(ctx, terminalId, 'release').catch(() => undefined);
    throw err;
  }
  // Only a password verified and found wrong counts against the terminal (not a locked or busy card).
  const settled = await settleTerminalPasswordCheck(ctx, terminalId, checked.verifiedWrong ? 'fail' : 'release');
  if (settled.reachedLimit) {
    ctx.log.warn(
      { terminalId, limit: ctx.config.terminalPasswordFailuresPerHour },
      'terminal reached its limit of wrong card passwords this hour',
    );
    await appendOperatorLog(ctx, 'terminal-password-limit', 'switch', {
      terminal: terminalId,
      limit: String(ctx.config.terminalPasswordFailuresPerHour),
      text: `terminal ${terminalId} entered ${ctx.config.terminalPasswordFailuresPerHour} wrong card passwords this hour; its password checks are refused until the next hour`,
    });
  }
  return checked;
}

interface CardCheck {
  readonly check: PasswordCheck;
  /** The worker verified the password and it was wrong (what a terminal's allowance counts). */
  readonly verifiedWrong: boolean;
  /**
   * For a right password: the card's hash it is right against, as stored when the check settled (the
   * hash verified, or the full-cost rehash the check stored in its place); undefined when the hash was
   * changed between the check's take and its settle (a password change, or a parallel right check storing
   * its rehash first), so nothing here says the password is still right now.
   */
  readonly verifiedHash?: string;
  /** The card's document number as the check read it (the initial password derives from it). */
  readonly documentNumber: string;
}

async function checkCardOnly(ctx: SwitchContext, cardNo: string, pin: string): Promise<CardCheck> {
  const state = await passwordScript(ctx, cardNo, ['take', String(ctx.now())]);
  const documentNumber = state.documentNumber;
  if (state.code === 'unknown_card') return { check: { ok: false, reason: 'unknown_card' }, verifiedWrong: false, documentNumber };
  if (state.code === 'locked') return { check: { ok: false, reason: 'locked' }, verifiedWrong: false, documentNumber };
  if (state.code === 'busy') return { check: { ok: false, reason: 'busy' }, verifiedWrong: false, documentNumber };
  let right = false;
  try {
    right = PIN_PATTERN.test(pin) && (await passwordMatches(ctx, pin, state));
  } catch (err) {
    // The check did not happen (pool full, worker died): give its place back uncounted.
    await passwordScript(ctx, cardNo, ['release']).catch(() => undefined);
    throw err;
  }
  if (!right) {
    const after = await passwordScript(ctx, cardNo, ['fail', String(ctx.now())]);
    if (after.code === 'locked') return { check: { ok: false, reason: 'locked' }, verifiedWrong: true, documentNumber };
    return { check: { ok: false, reason: 'wrong', attemptsLeft: after.attemptsLeft }, verifiedWrong: true, documentNumber };
  }
  // An imported card has no hash yet, and cards imported before that have one at a lower cost: after a
  // correct entry, store a full-cost hash. One that cannot be made now (pool full) is left for the next
  // correct entry (an empty hash keeps being checked against the document number meanwhile).
  const upgrade = state.storedHash === '' || needsRehash(state.storedHash, ctx.config.passwordScryptN);
  const rehash = upgrade ? await ctx.passwords.hash(pin, ctx.config.passwordScryptN).catch(() => '') : '';
  // A stale answer (3) means the hash changed since the take: mostly a parallel check of the same right
  // password storing its hash first, or a change of the password (whose hash is then kept, not overwritten
  // with this one). The password verified against the card's hash of that moment, so the check is still
  // right; only a change of the password needs the hash to be the same now (verifiedHash).
  const settled = await passwordScript(ctx, cardNo, ['ok', state.storedHash, rehash]);
  if (settled.code !== 'done') return { check: { ok: true }, verifiedWrong: false, documentNumber };
  return { check: { ok: true }, verifiedWrong: false, verifiedHash: rehash !== '' ? rehash : state.storedHash, documentNumber };
}

/**
 * The PIN against the card's stored hash (in the worker pool), or, for a card imported without one,
 * against the initial password of its document number (constant time, no scrypt: see
 * initialPasswordMatches). An empty hash on a card whose password is no longer initial, or whose document
 * number is missing, matches nothing: every check is wrong (counted); such a card has no right password
 * until one is stored for it (nothing in the switch writes that state: only a hand-edited account).
 */
async function passwordMatches(ctx: SwitchContext, pin: string, state: PasswordState): Promise<boolean> {
  if (state.storedHash !== '') return ctx.passwords.verify(pin, state.storedHash);
  return state.initial && initialPasswordMatches(pin, state.documentNumber);
}

/** For the kiosk and phone: throws the gRPC-mapped refusal unless the password is right. */
export async function requireCardPassword(
  ctx: SwitchContext,
  cardNo: string,
  pin: string,
  source: PasswordCheckSource = {},
): Promise<void> {
  await requireCardPasswordAt(ctx, cardNo, pin, source);
}

/** requireCardPassword answering what the right password was checked against (for a change of it). */
async function requireCardPasswordAt(ctx: SwitchContext, cardNo: string, pin: string, source: PasswordCheckSource): Promise<CardCheck> {
  if (pin === '') throw new InvalidArgumentError('password is required (the 6-digit card password)', PASSWORD_FORMAT);
  if (!PIN_PATTERN.test(pin)) throw new InvalidArgumentError('password must be exactly 6 digits', PASSWORD_FORMAT);
  const checked = await checkCardPasswordAt(ctx, cardNo, pin, source);
  const check = checked.check;
  if (check.ok) return checked;
  if (check.reason === 'unknown_card') throw new NotFoundError(`card ${cardNo} does not exist`);
  if (check.reason === 'locked') throw new PasswordLockedError();
  if (check.reason === 'busy') throw passwordBusyError();
  throw new WrongPasswordError(check.attemptsLeft);
}

/** Old password checked (and counted), new one must differ from it and from the initial one. */
export async function changeCardPassword(
  ctx: SwitchContext,
  cardNo: string,
  oldPin: string,
  newPin: string,
  source: PasswordCheckSource = {},
): Promise<void> {
  if (!PIN_PATTERN.test(newPin))
    throw new InvalidArgumentError('new_password must be exactly 6 digits', {
      reason: 'INVALID_NEW_PASSWORD',
      zh: '新密码应为6位数字',
      field: 'newPassword',
    });
  if (newPin === oldPin)
    throw new InvalidArgumentError('new_password must differ from the old password', {
      reason: 'NEW_PASSWORD_SAME',
      zh: '新密码不能与原密码相同',
      field: 'newPassword',
    });
  // The new hash replaces only the hash the old password was verified against: of parallel changes with
  // the right old password exactly one is stored; each of the others finds the hash changed and is told so
  // (never "changed" while another new password is the one that works).
  const checked = await requireCardPasswordAt(ctx, cardNo, oldPin, source);
  const docn = checked.documentNumber;
  if (docn.length >= 6 && newPin === initialPassword(docn)) {
    throw new InvalidArgumentError('new_password must not be the initial password (the last six characters of the document number)', {
      reason: 'NEW_PASSWORD_INITIAL',
      zh: '新密码不能是初始密码（证件号后六位）',
      field: 'newPassword',
    });
  }
  if (checked.verifiedHash === undefined) throw passwordChangedMeanwhileError();
  const newHash = await ctx.passwords.hash(newPin, ctx.config.passwordScryptN);
  const result = await passwordScript(ctx, cardNo, ['set', checked.verifiedHash, newHash, '1']);
  if (result.code === 'stale') throw passwordChangedMeanwhileError();
  if (result.code === 'locked') throw new PasswordLockedError();
}

/** The refusal of a change whose old password was right against a hash that another change replaced meanwhile. */
function passwordChangedMeanwhileError(): AlreadyExistsError {
  return new AlreadyExistsError(
    'the card password was changed by another request at the same time, so this change was not made; enter the current password and try again (密码刚被修改，本次修改未生效)',
    { reason: 'PASSWORD_CHANGED_MEANWHILE', zh: '密码刚被其他操作修改，本次修改未生效，请用当前密码重试' },
  );
}

/** True while the stored password is still the initial one (the e-card page nags to change it). */
export async function hasInitialPassword(ctx: SwitchContext, cardNo: string): Promise<boolean> {
  return (await passwordScript(ctx, cardNo, ['state'])).initial;
}
