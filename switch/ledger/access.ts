// What a ledger wrapper needs to reach Redis: the key builder and the script runner, whose `client` is
// the ioredis connection and whose `command` is the hot-path channel of the payments. The domain hands
// its SwitchContext (which has both) to the wrappers and never touches the client itself.
import type { JournalArchive } from './history-reads.js';
import type { Keys } from './keys.js';
import type { Scripts } from './scripts.js';

export interface LedgerAccess {
  readonly keys: Keys;
  readonly scripts: Scripts;
  /** The journal archive (PostgreSQL, history/) when one is configured: history reads span it and Redis. */
  readonly archive?: JournalArchive;
}
