// The operator log: a Redis stream of actions and alarms that move no money (terminal registration,
// freezes, e-card bindings, a terminal stopped for guessing passwords). Trimmed at about a million
// entries; operators read it with XRANGE / XREVRANGE.
import type { LedgerAccess } from './access.js';

/** About this many entries are kept (MAXLEN ~): months of a campus's operator actions. */
export const OPERATOR_LOG_MAX_ENTRIES = 1_000_000;

/** The ledger access and the clock that stamps each entry. */
type OplogAccess = LedgerAccess & { readonly now: () => number };

/** Appends one entry: what happened, who or what did it, and its details (never a password or secret). */
export async function appendOperatorLog(
  ledger: OplogAccess,
  action: string,
  by: string,
  fields: Readonly<Record<string, string>>,
): Promise<void> {
  const entry = ['op', action, 'by', by, 'ts', String(ledger.now()), ...Object.entries(fields).flat()];
  await ledger.scripts.client.xadd(ledger.keys.operatorLog(), 'MAXLEN', '~', String(OPERATOR_LOG_MAX_ENTRIES), '*', ...entry);
}
