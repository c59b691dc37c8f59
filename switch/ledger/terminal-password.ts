// Typed wrapper of terminal-password.lua: one terminal's wrong card passwords per clock hour across
// all cards. Taken before the card's own check (password.lua), settled after the password was verified.
import type { SwitchContext } from '../context.js';
import { decodeAnswer, LedgerInvariantError, numericReply, TERMINAL_PASSWORD_ANSWERS, type AnswerOf } from './answers.js';

type GuardContext = Pick<SwitchContext, 'scripts' | 'keys' | 'config' | 'now'>;

const HOUR_MS = 3_600_000;
/** The guard outlives its hour so a check settled just after the hour turns still finds it. */
const GUARD_TTL_MS = 2 * HOUR_MS;

export type TerminalCheckTake =
  | { readonly code: 'go' }
  /** No wrong passwords left this hour. */
  | { readonly code: 'limit' }
  /** As many checks of this terminal in flight as wrong passwords left: try again in a moment. */
  | { readonly code: 'busy' };

export interface TerminalCheckSettled {
  /** This wrong password used up the terminal's allowance of the hour (answered once an hour). */
  readonly reachedLimit: boolean;
}

async function run(
  ctx: GuardContext,
  terminalId: string,
  op: 'take' | 'fail' | 'release',
): Promise<AnswerOf<typeof TERMINAL_PASSWORD_ANSWERS>> {
  const nowMs = ctx.now();
  const reply = await ctx.scripts.run(
    'terminal-password',
    [ctx.keys.terminalPasswordGuard(terminalId)],
    [op, nowMs, Math.floor(nowMs / HOUR_MS), ctx.config.terminalPasswordFailuresPerHour, GUARD_TTL_MS],
  );
  if (!Array.isArray(reply) || reply.length !== 2)
    throw new LedgerInvariantError(`terminal-password.lua answered ${JSON.stringify(reply)}`);
  const code = decodeAnswer('terminal-password', TERMINAL_PASSWORD_ANSWERS, numericReply('terminal-password', reply[0]));
  const known = op === 'take' ? ['done', 'limit', 'busy'] : ['done', 'reached_limit'];
  if (!known.includes(code)) throw new LedgerInvariantError(`terminal-password.lua ${op} answered ${code}`);
  return code;
}

/** Takes a place for one password check of this terminal, before the card's own check. */
export async function takeTerminalPasswordCheck(ctx: GuardContext, terminalId: string): Promise<TerminalCheckTake> {
  const code = await run(ctx, terminalId, 'take');
  if (code === 'limit') return { code: 'limit' };
  if (code === 'busy') return { code: 'busy' };
  return { code: 'go' };
}

/** Settles a taken check: 'fail' counts a wrong password, 'release' gives the place back uncounted. */
export async function settleTerminalPasswordCheck(
  ctx: GuardContext,
  terminalId: string,
  outcome: 'fail' | 'release',
): Promise<TerminalCheckSettled> {
  return { reachedLimit: (await run(ctx, terminalId, outcome)) === 'reached_limit' };
}
