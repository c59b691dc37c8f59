// What every service module gets: the configuration, the ledger and its directories, the password
// pool and the clock. Built once by app.ts; handlers and domain modules take what they need from it.
import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import type { CardDirectory } from './domain/cards.js';
import type { TerminalRegistry } from './domain/terminals.js';
import type { Keys } from './ledger/keys.js';
import type { Ledger } from './ledger/ledger.js';
import type { Scripts } from './ledger/scripts.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { PasswordPool } from './workers/password-pool.js';

export interface SwitchContext {
  readonly config: Config;
  readonly log: Logger;
  readonly redis: Redis;
  readonly keys: Keys;
  readonly scripts: Scripts;
  readonly ledger: Ledger;
  readonly terminals: TerminalRegistry;
  readonly cards: CardDirectory;
  readonly passwords: PasswordPool;
  readonly metrics: Metrics;
  /** Milliseconds since the epoch; tests may pass a fixed clock. */
  readonly now: () => number;
}
