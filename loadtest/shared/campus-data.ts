// The campus data file that the k6 scripts and the bench harness read: card serials, terminal
// credentials and card PINs. `npm run bench -- --export-campus <file>` writes one for the demo campus
// that `npm start` loads; the harness builds its own in memory for the campus it loads.
//
// Pure TypeScript: no k6 and no Node imports, so k6 (which runs this file directly) and Node share it.
// DEMO DATA ONLY: the file holds terminal secrets and card PINs in clear text.

export const CAMPUS_FILE_FORMAT = 'cardswitch-loadtest-campus/1';
export const MAX_CAMPUS_CARDS = 200_000;
export const MAX_CAMPUS_TERMINALS = 10_000;
export const MAX_CAMPUS_ECARD_USERS = 10_000;
/** The switch's session tokens are ~300 characters and never over 2,048 (domain/sessions.ts). */
const MAX_TOKEN_LENGTH = 2048;

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

/**
 * An e-card user of the demo campus, bound to a card, with a session of the switch (k6/campus-qr.ts and
 * k6/gateway-summary.ts call the gateway as this user). Written by `--export-campus F --ecard-users N`.
 */
export interface CampusEcardUser {
  /** Namespaced: `wecom:<userid>`. */
  readonly userId: string;
  readonly cardNo: string;
  /** Short-lived (SESSION_ACCESS_TTL_SEC, 15 min by default): the k6 scripts refresh it first. */
  readonly accessToken: string;
  /** Lives as long as the session (SESSION_TTL_SEC, 7 days by default). */
  readonly refreshToken: string;
  readonly sessionExpiresAtMs: number;
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
  /** Bound e-card users with sessions; absent unless the file was exported with --ecard-users. */
  readonly ecardUsers?: readonly CampusEcardUser[];
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
  if (typeof kind !== 'string' || !TERMINAL_KINDS.includes(kind))
    fail(`terminals[${index}].kind must be one of ${TERMINAL_KINDS.join(', ')}`);
  if (typeof merchantId !== 'string' || merchantId === '') fail(`terminals[${index}].merchantId is required`);
  return { id, secret, kind: kind as CampusTerminalKind, merchantId };
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function checkToken(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length > MAX_TOKEN_LENGTH || !JWT_SHAPE.test(value))
    fail(`${what} must be a session token (a JWT)`);
  return value;
}

function checkEcardUser(value: unknown, index: number): CampusEcardUser {
  if (!isRecord(value)) fail(`ecardUsers[${index}] must be an object`);
  const { userId, cardNo, accessToken, refreshToken, sessionExpiresAtMs } = value;
  if (typeof userId !== 'string' || !/^(wecom|wechat):[A-Za-z0-9_.@-]{1,64}$/.test(userId))
    fail(`ecardUsers[${index}].userId must be wecom:<id> or wechat:<id>`);
  if (typeof cardNo !== 'string' || !/^\d{4,20}$/.test(cardNo)) fail(`ecardUsers[${index}].cardNo must be 4-20 digits`);
  if (typeof sessionExpiresAtMs !== 'number' || !Number.isSafeInteger(sessionExpiresAtMs))
    fail(`ecardUsers[${index}].sessionExpiresAtMs must be milliseconds`);
  return {
    userId,
    cardNo,
    accessToken: checkToken(accessToken, `ecardUsers[${index}].accessToken`),
    refreshToken: checkToken(refreshToken, `ecardUsers[${index}].refreshToken`),
    sessionExpiresAtMs,
  };
}

function checkEcardUsers(value: unknown): CampusEcardUser[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length > MAX_CAMPUS_ECARD_USERS) fail(`ecardUsers must hold at most ${MAX_CAMPUS_ECARD_USERS} users`);
  return value.map(checkEcardUser);
}

/** Validates a parsed campus file; throws an Error naming the first problem. */
export function checkCampusFile(value: unknown): CampusFile {
  if (!isRecord(value)) fail('must be a JSON object');
  if (value['format'] !== CAMPUS_FILE_FORMAT)
    fail(`format must be "${CAMPUS_FILE_FORMAT}" (regenerate it with npm run bench -- --export-campus)`);
  const { cards, terminals, noPinPerPaymentFen, seed, note, ecardUsers } = value;
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
    ecardUsers: checkEcardUsers(ecardUsers),
  };
}
