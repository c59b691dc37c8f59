// The campus data file that the k6 scripts and the bench harness read: card serials, terminal
// credentials and card PINs. `npm run bench -- --export-campus <file>` writes one for the demo campus
// that `npm start` loads; the harness builds its own in memory for the campus it loads.
//
// Pure TypeScript: no k6 and no Node imports, so k6 (which runs this file directly) and Node share it.
// DEMO DATA ONLY: the file holds terminal secrets and card PINs in clear text.

export const CAMPUS_FILE_FORMAT = 'cardswitch-loadtest-campus/1';
export const MAX_CAMPUS_CARDS = 200_000;
export const MAX_CAMPUS_TERMINALS = 10_000;

export type HolderKind = 'student' | 'staff';
export type CampusTerminalKind = 'canteen' | 'shop' | 'settlement' | 'water' | 'kiosk';

export interface CampusCard {
  readonly cardNo: string;
  /** Upper-case hex, as a reader sends it in CardTap.card_serial. */
  readonly serial: string;
  readonly holder: HolderKind;
  /** The card's 6-digit password, '' when the load test must not send PIN payments with this card. */
  readonly pin: string;
}

export interface CampusTerminal {
  readonly id: string;
  readonly secret: string;
  readonly kind: CampusTerminalKind;
  readonly merchantId: string;
}

export interface CampusFile {
  readonly format: typeof CAMPUS_FILE_FORMAT;
  /** The demo generator's seed the data came from. */
  readonly seed: string;
  readonly note: string;
  /** The switch's password-free limit per payment: a PIN payment asks for more than this. */
  readonly noPinPerPaymentFen: { readonly student: number; readonly staff: number };
  readonly cards: readonly CampusCard[];
  readonly terminals: readonly CampusTerminal[];
}

const TERMINAL_KINDS: readonly string[] = ['canteen', 'shop', 'settlement', 'water', 'kiosk'];

function fail(message: string): never {
  throw new Error(`campus file: ${message}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkCard(value: unknown, index: number): CampusCard {
  if (!isRecord(value)) fail(`cards[${index}] must be an object`);
  const { cardNo, serial, holder, pin } = value;
  if (typeof cardNo !== 'string' || !/^\d{4,20}$/.test(cardNo)) fail(`cards[${index}].cardNo must be 4-20 digits`);
  if (typeof serial !== 'string' || !/^[0-9A-F]{8,20}$/.test(serial)) fail(`cards[${index}].serial must be 8-20 upper-case hex digits`);
  if (holder !== 'student' && holder !== 'staff') fail(`cards[${index}].holder must be student or staff`);
  if (typeof pin !== 'string' || !/^(\d{6})?$/.test(pin)) fail(`cards[${index}].pin must be 6 digits or ''`);
  return { cardNo, serial, holder, pin };
}

function checkTerminal(value: unknown, index: number): CampusTerminal {
  if (!isRecord(value)) fail(`terminals[${index}] must be an object`);
  const { id, secret, kind, merchantId } = value;
  if (typeof id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(id)) fail(`terminals[${index}].id is not a terminal id`);
  if (typeof secret !== 'string' || secret.length < 16 || secret.length > 128) fail(`terminals[${index}].secret must be 16-128 characters`);
  if (typeof kind !== 'string' || !TERMINAL_KINDS.includes(kind)) fail(`terminals[${index}].kind must be one of ${TERMINAL_KINDS.join(', ')}`);
  if (typeof merchantId !== 'string' || merchantId === '') fail(`terminals[${index}].merchantId is required`);
  return { id, secret, kind: kind as CampusTerminalKind, merchantId };
}

/** Validates a parsed campus file; throws an Error naming the first problem. */
export function checkCampusFile(value: unknown): CampusFile {
  if (!isRecord(value)) fail('must be a JSON object');
  if (value['format'] !== CAMPUS_FILE_FORMAT) fail(`format must be "${CAMPUS_FILE_FORMAT}" (regenerate it with npm run bench -- --export-campus)`);
  const { cards, terminals, noPinPerPaymentFen, seed, note } = value;
  if (!Array.isArray(cards) || cards.length < 1 || cards.length > MAX_CAMPUS_CARDS) fail(`cards must hold 1-${MAX_CAMPUS_CARDS} cards`);
  if (!Array.isArray(terminals) || terminals.length < 1 || terminals.length > MAX_CAMPUS_TERMINALS) {
    fail(`terminals must hold 1-${MAX_CAMPUS_TERMINALS} terminals`);
  }
  if (!isRecord(noPinPerPaymentFen)) fail('noPinPerPaymentFen must be { student, staff }');
  const student = noPinPerPaymentFen['student'];
  const staff = noPinPerPaymentFen['staff'];
  if (typeof student !== 'number' || typeof staff !== 'number' || !(student >= 0) || !(staff >= 0)) {
    fail('noPinPerPaymentFen.student and .staff must be numbers of fen >= 0');
  }
  return {
    format: CAMPUS_FILE_FORMAT,
    seed: typeof seed === 'string' ? seed : '',
    note: typeof note === 'string' ? note : '',
    noPinPerPaymentFen: { student, staff },
    cards: cards.map(checkCard),
    terminals: terminals.map(checkTerminal),
  };
}
