// What every service module gets: the configuration, the ledger and its wrappers, the directories, the
// password pool, the fee provider, the campus QR codec and the clock. Built once by app.ts (the one
// place that wires the switch; nothing is built on first use); handlers and domain modules take what
// they need from it. Types only: this module runs no code and imports no value. It carries no Redis
// connection: the domain reaches the ledger through the wrappers in ledger/ (keys + scripts).
import type { Config } from './config.js';
import type { PaymentChannels } from './channels/index.js';
import type { CardDirectory } from './domain/cards.js';
import type { TerminalRegistry } from './domain/terminals.js';
import type { FeeSettings } from './fees/index.js';
import type { SequenceClaims } from './ledger/claims.js';
import type { JournalArchive } from './ledger/history-reads.js';
import type { Keys } from './ledger/keys.js';
import type { Ledger } from './ledger/ledger.js';
import type { MoneyLedger } from './ledger/money.js';
import type { Scripts } from './ledger/scripts.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { CampusQrCodec } from './qr/codec.js';
import type { PasswordPool } from './workers/password-pool.js';

export interface SwitchContext {
  readonly config: Config;
  readonly log: Logger;
  readonly keys: Keys;
  readonly scripts: Scripts;
  /** Payments, reversals, inquiries (authorize.lua, reverse.lua ...). */
  readonly ledger: Ledger;
  /** Recharges, adjustments, refunds and utility fees. */
  readonly money: MoneyLedger;
  /** Terminal sequence numbers claimed ledger-wide, across shards. */
  readonly claims: SequenceClaims;
  readonly terminals: TerminalRegistry;
  readonly cards: CardDirectory;
  readonly passwords: PasswordPool;
  /** Where utility fees are delivered, and how long each provider call may take. */
  readonly fees: FeeSettings;
  /** Opens the campus QR codes POS scan and issues the phone page's (CAMPUS_QR_SECRET). */
  readonly campusQr: CampusQrCodec;
  /** The third-party payment channels (Alipay, WeChat Pay) this switch talks to; empty when none. */
  readonly channels: PaymentChannels;
  readonly metrics: Metrics;
  /** The journal archive (PostgreSQL, history/) when DATABASE_URL is set: history reads span it and Redis. */
  readonly archive?: JournalArchive;
  /** Milliseconds since the epoch; tests may pass a fixed clock. */
  readonly now: () => number;
}
