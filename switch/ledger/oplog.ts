// The operator log: a Redis stream of actions and alarms that move no money (terminal registration,
// freezes, e-card bindings, a terminal stopped for guessing passwords). Trimmed at about a million
// entries; operators read it with XRANGE / XREVRANGE.
import type { SwitchContext } from '../context.js';

/** About this many entries are kept (MAXLEN ~): months of a campus's operator actions. */
export const OPERATOR_LOG_MAX_ENTRIES = 1_000_000;

type OplogContext = Pick<SwitchContext, 'redis' | 'keys' | 'now'>;

/** Appends one entry: what happened, who or what did it, and its details (never a password or secret). */
export async function appendOperatorLog(ctx: OplogContext, action: string, by: string, fields: Readonly<Record<string, string>>): Promise<void> {
  await ctx.redis.xadd(ctx.keys.operatorLog(), 'MAXLEN', '~', String(OPERATOR_LOG_MAX_ENTRIES), '*', 'op', action, 'by', by, 'ts', String(ctx.now()), ...Object.entries(fields).flat());
}
