// Campus data for load tests: the demo campus (switch/data/demo.ts) as a campus file for k6, and a fast
// loader that puts a campus into the bench's private ledger. The loader opens accounts directly through
// the ledger's open-account script with opening balances big enough that approvals dominate the run,
// and hashes card passwords only for the cards that will make PIN payments (at the cost older imports
// used: an import today stores no hash, and a holder's password is stored at full cost on its first use).
import type { Redis } from 'ioredis';
import { generateDemoCampus, type DemoCampus } from '../../switch/data/demo.js';
import { cardholderAccountFields, mapBounded, type Cardholder } from '../../switch/data/import.js';
import { hashPassword, IMPORT_SCRYPT_N, initialPassword } from '../../switch/domain/password.js';
import type { TerminalRegistry } from '../../switch/domain/terminals.js';
import type { Keys } from '../../switch/ledger/keys.js';
import type { Ledger } from '../../switch/ledger/ledger.js';
import type { WaterLedger } from '../../switch/ledger/water.js';
import { CAMPUS_FILE_FORMAT, type CampusCard, type CampusFile } from '../shared/campus-data.js';
import { waterCardIndices } from '../shared/traffic.js';

/** 1,000,000.00 yuan per card: a hot card paying canteen meals at thousands per second never runs dry. */
export const BENCH_OPENING_FEN = 100_000_000;
const LOAD_CONCURRENCY = 256;

export interface CampusFileOptions {
  readonly noPinPerPaymentFen: { readonly student: number; readonly staff: number };
  /** Which cards get their PIN in the file: every card, or the first n after the three well-known ones. */
  readonly pins: 'all' | number;
  readonly note: string;
}

export function toCampusFile(demo: DemoCampus, options: CampusFileOptions): CampusFile {
  const hasPin = (i: number): boolean => options.pins === 'all' || (i >= 3 && i < 3 + options.pins);
  const cards: CampusCard[] = demo.cardholders.map((c, i) => ({
    cardNo: c.cardNo,
    serial: c.cardSerial,
    holder: c.holderType,
    pin: hasPin(i) ? initialPassword(c.documentNumber) : '',
  }));
  return {
    format: CAMPUS_FILE_FORMAT,
    seed: demo.seed,
    note: options.note,
    noPinPerPaymentFen: options.noPinPerPaymentFen,
    cards,
    terminals: demo.terminals.map((t) => ({ id: t.id, secret: t.secret, kind: t.kind, merchantId: t.merchantId })),
  };
}

export function demoCampus(cardholders: number, seed: string): DemoCampus {
  return generateDemoCampus({ cardholders, seed });
}

let benchHolder: Cardholder | undefined;

/**
 * The account fields of the Redis-alone harnesses' cards (redis-benchmark, callgrind, the client and
 * baseline runs): a demo cardholder's, as the tap runs' cards have, with the harness's own serial. The
 * account hash is as long as a real one: authorize.lua's field reads scan it (issue 15: a three-field
 * account made a payment 7k instructions cheaper than a campus card's; RESULTS fifteenth session).
 */
export function benchAccountFields(serial: string): Record<string, string> {
  // A student with a resident id, as most cardholders are.
  benchHolder ??= demoCampus(50, 'redis-alone').cardholders.find((c) => c.holderType === 'student' && c.documentType === 'resident_id');
  if (benchHolder === undefined) throw new Error('the demo campus made no student with a resident id');
  return { ...cardholderAccountFields(benchHolder), ser: serial };
}

export interface LoadDeps {
  readonly redis: Redis;
  readonly keys: Keys;
  readonly ledger: Ledger;
  readonly water: WaterLedger;
  readonly terminals: TerminalRegistry;
  readonly passwordPepper: string;
}

export interface LoadReport {
  readonly cards: number;
  readonly terminals: number;
  readonly pinCards: number;
  /** Water cards whose small wallet was opened (a settlement swipe through the ledger) before the run. */
  readonly walletsOpened: number;
  readonly openingTotalFen: number;
  readonly elapsedMs: number;
}

/** Loads every card and terminal of `demo` into an empty ledger; `file` says which cards get a PIN hash. */
export async function loadCampus(deps: LoadDeps, demo: DemoCampus, file: CampusFile, openingFen: number): Promise<LoadReport> {
  const startedMs = performance.now();
  const pins = new Map(file.cards.filter((c) => c.pin !== '').map((c) => [c.cardNo, c.pin]));
  await mapBounded(demo.terminals, LOAD_CONCURRENCY / 4, (t) => deps.terminals.register(t));
  let pinCards = 0;
  await mapBounded(demo.cardholders, LOAD_CONCURRENCY, async (c) => {
    const pin = pins.get(c.cardNo);
    const fields = cardholderAccountFields(c);
    if (pin !== undefined) {
      // A password hash at the cost older imports stored; the switch rehashes at full cost on first use.
      fields['pwd'] = hashPassword(pin, deps.passwordPepper, { N: IMPORT_SCRYPT_N });
      fields['pwdinit'] = '1';
      pinCards++;
    }
    const opened = await deps.ledger.openAccount({ cardNo: c.cardNo, openingFen, fields });
    if (!opened) throw new Error(`card ${c.cardNo} already exists: the bench needs an empty ledger`);
    await deps.redis.set(deps.keys.serial(c.cardSerial), c.cardNo);
  });
  const walletsOpened = await openWallets(deps, demo);
  return {
    cards: demo.cardholders.length,
    terminals: demo.terminals.length,
    pinCards,
    walletsOpened,
    openingTotalFen: openingFen * demo.cardholders.length,
    elapsedMs: Math.round(performance.now() - startedMs),
  };
}

/** Terminal id in the journal of the wallet openings the loader makes (no real terminal swiped them). */
export const WALLET_OPENER = 'BENCH-WALLET-OPEN';

/**
 * Opens the small wallet of every water card, as its first settlement swipe would (10.00 from the account),
 * so the run's water debits find wallets as a campus in term time has them.
 */
async function openWallets(deps: LoadDeps, demo: DemoCampus): Promise<number> {
  const indices = waterCardIndices(demo.cardholders.length);
  await mapBounded(indices, LOAD_CONCURRENCY, async (i) => {
    const c = demo.cardholders[i];
    if (c === undefined) return;
    const result = await deps.water.settle({ cardNo: c.cardNo, presentedSerial: c.cardSerial, terminalId: WALLET_OPENER, sequence: i + 1 });
    if (result.code !== 'approved') throw new Error(`opening the small wallet of card ${c.cardNo} answered ${result.code}`);
  });
  return indices.length;
}
