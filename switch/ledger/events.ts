// The live events of bound e-cards: written by the ledger scripts (includes/event.lua) into the card's
// event stream and announced on the events channel; read here, for a page that reconnects with its last
// event id, and parsed into the JSON the phone page gets (docs/gateway-api.md, "Live events").
import type { LedgerAccess } from './access.js';

/** Most events one catch-up returns; a page further behind is told to reload (`resync`). */
export const MAX_CATCH_UP_EVENTS = 200;
// (A card's stream is trimmed at about 100-200 events: includes/event.lua.)
const STREAM_ID_PATTERN = /^\d{1,15}-\d{1,15}$/;

export type CardEventType = 'payment' | 'reversal' | 'refund' | 'recharge' | 'card_status' | 'fee' | 'fee_returned';

export interface CardEvent {
  /** The stream id: strictly increasing per card; the page sends the last one it saw when it reconnects. */
  readonly id: string;
  readonly type: CardEventType;
  readonly atMs: number;
  readonly amountFen?: number;
  readonly balanceFen?: number;
  /** Payments: approved, or declined with a reason. */
  readonly approved?: boolean;
  readonly declineReason?: string;
  /**
   * Payments: 'card', 'campus_qr', or a payment code's channel 'wechat' / 'alipay' (also on its reversal
   * and refund); with `qrCodeId`, the page knows the code it shows was taken.
   */
  readonly credential?: string;
  readonly qrCodeId?: string;
  readonly terminalId?: string;
  readonly merchantId?: string;
  /** Recharges: WECHAT | ALIPAY | COUNTER. */
  readonly channel?: string;
  /** Fees: network | electricity. */
  readonly utility?: string;
  readonly receipt?: string;
  readonly reason?: string;
  /** Card status events: the new status and the one before. */
  readonly status?: string;
  readonly previousStatus?: string;
  readonly transactionId?: string;
}

const DECLINE_REASONS: Readonly<Record<string, string>> = {
  '2': 'INSUFFICIENT_FUNDS',
  '3': 'CARD_LOST',
  '4': 'CARD_FROZEN',
  '5': 'UNKNOWN_CARD',
  '6': 'CARD_REPLACED',
  '7': 'ALREADY_REVERSED',
  '8': 'DAILY_LIMIT_EXCEEDED',
  '9': 'CARD_CANCELLED',
  '11': 'QR_INVALID',
  '12': 'QR_EXPIRED',
  '13': 'QR_USED',
};
/** A code payment's decline reason is written by name (channel-paid.lua 'decline'): PAYER_NOT_BOUND, CARD_LOST ... */
const NAMED_REASON = /^[A-Z][A-Z_]{1,40}$/;
const STATUS_NAMES: Readonly<Record<string, string>> = { A: 'active', L: 'lost', F: 'frozen', C: 'cancelled' };

/** A stream entry holds one field `e`: "<field>\n<value>\n..." (includes/event.lua). */
function fieldMap(entry: readonly string[]): Map<string, string> {
  const flat = entry.length === 2 && entry[0] === 'e' ? (entry[1] ?? '').split('\n') : entry;
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i] as string, flat[i + 1] as string);
  return fields;
}

function integer(fields: Map<string, string>, name: string): number | undefined {
  const text = fields.get(name);
  if (text === undefined || !/^-?\d+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

function party(fields: Map<string, string>, prefix: string): string | undefined {
  const value = fields.get('m');
  return value !== undefined && value.startsWith(prefix) ? value.slice(prefix.length) : undefined;
}

const TYPES: Readonly<Record<string, CardEventType>> = {
  pay: 'payment',
  decl: 'payment',
  rev: 'reversal',
  ref: 'refund',
  rch: 'recharge',
  st: 'card_status',
  fee: 'fee',
  feeback: 'fee_returned',
};

function declineReasonOf(code: string): string {
  return DECLINE_REASONS[code] ?? (NAMED_REASON.test(code) ? code : 'DECLINED');
}

/** One event from its stream fields; undefined for a kind this switch does not know (a newer writer). */
export function parseCardEvent(id: string, flat: readonly string[]): CardEvent | undefined {
  const f = fieldMap(flat);
  const kind = f.get('k') ?? '';
  const type = TYPES[kind];
  if (type === undefined) return undefined;
  const base = { id, type, atMs: integer(f, 'ts') ?? Number(id.split('-')[0]) };
  const money = { amountFen: integer(f, 'a'), balanceFen: integer(f, 'b'), transactionId: f.get('tx') || undefined };
  switch (type) {
    case 'payment':
      return {
        ...base,
        ...money,
        approved: kind === 'pay',
        declineReason: kind === 'pay' ? undefined : declineReasonOf(f.get('r') ?? ''),
        credential: f.get('cr'),
        qrCodeId: f.get('q') || undefined,
        terminalId: f.get('tm'),
        merchantId: party(f, 'm:'),
      };
    case 'reversal':
    case 'refund':
      // `credential` only on a code payment's reversal or refund: 'wechat' or 'alipay' (the money went back there).
      return {
        ...base,
        ...money,
        terminalId: f.get('tm'),
        merchantId: party(f, 'm:'),
        ...(f.has('cr') ? { credential: f.get('cr') } : {}),
      };
    case 'recharge':
      return { ...base, ...money, channel: party(f, 'x:ch:') };
    case 'card_status':
      return { ...base, status: STATUS_NAMES[f.get('st') ?? ''], previousStatus: STATUS_NAMES[f.get('was') ?? ''] };
    case 'fee':
      return { ...base, ...money, utility: party(f, 'u:'), receipt: f.get('rcpt') };
    case 'fee_returned':
      return { ...base, ...money, utility: party(f, 'u:'), reason: f.get('why') };
  }
}

/** A doorbell message from the events channel: "<card>\n<event id>\n<field>\n<value>...". */
export function parseAnnouncement(message: string): { cardNo: string; event: CardEvent } | undefined {
  const parts = message.split('\n');
  const [cardNo, id] = parts;
  if (cardNo === undefined || id === undefined || !STREAM_ID_PATTERN.test(id)) return undefined;
  const event = parseCardEvent(id, parts.slice(2));
  return event === undefined ? undefined : { cardNo, event };
}

/** Stream ids compare as (ms, seq) pairs. */
export function compareEventIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

export function isEventId(text: string): boolean {
  return STREAM_ID_PATTERN.test(text);
}

export interface CatchUp {
  readonly events: readonly CardEvent[];
  /**
   * Something after `sinceId` is no longer kept (trimmed, expired, or the binding started afresh):
   * the page should reload the card instead of trusting its picture.
   */
  readonly gap: boolean;
}

/** The card's events after `sinceId` ('' = none wanted: a first connection starts live). */
export async function cardEventsSince(ledger: LedgerAccess, cardNo: string, sinceId: string): Promise<CatchUp> {
  if (sinceId === '') return { events: [], gap: false };
  const redis = ledger.scripts.client;
  const key = ledger.keys.cardEvents(cardNo);
  const [rows, info] = await Promise.all([
    redis.xrange(key, `(${sinceId}`, '+', 'COUNT', MAX_CATCH_UP_EVENTS + 1) as Promise<[string, string[]][]>,
    redis.call('XINFO', 'STREAM', key).catch(() => null),
  ]);
  const events: CardEvent[] = [];
  for (const [id, flat] of rows.slice(0, MAX_CATCH_UP_EVENTS)) {
    const event = parseCardEvent(id, flat);
    if (event !== undefined) events.push(event);
  }
  // '0-0': from the beginning; a card with no stream yet has simply had no event.
  const gone = sinceId === '0-0' ? Array.isArray(info) && trimmedAfter(info, sinceId) : trimmedAfter(info, sinceId);
  return { events, gap: rows.length > MAX_CATCH_UP_EVENTS || gone };
}

/** XINFO STREAM's max-deleted-entry-id (Redis 7): an entry after `sinceId` was trimmed away. No stream: gone. */
function trimmedAfter(info: unknown, sinceId: string): boolean {
  if (!Array.isArray(info)) return true;
  const at = info.indexOf('max-deleted-entry-id');
  const maxDeleted: unknown = at >= 0 ? info[at + 1] : undefined;
  return typeof maxDeleted === 'string' && isEventId(maxDeleted) && compareEventIds(maxDeleted, sinceId) > 0;
}

/** Tells every gateway that a session ended (logout), so each closes that session's open sockets. */
export async function announceSessionEnded(ledger: LedgerAccess, sessionId: string): Promise<void> {
  await ledger.scripts.client.publish(ledger.keys.eventsChannel(), `${SESSION_ENDED_PREFIX}${sessionId}`);
}

/** The session id of a session-ended announcement, or undefined for any other message. */
export function sessionEndedIn(message: string): string | undefined {
  return message.startsWith(SESSION_ENDED_PREFIX) ? message.slice(SESSION_ENDED_PREFIX.length) : undefined;
}

const SESSION_ENDED_PREFIX = 'session-ended\n';

/** The id of the card's newest event, or '0-0' when it has none (a page starts listening after it). */
export async function lastCardEventId(ledger: LedgerAccess, cardNo: string): Promise<string> {
  const rows = (await ledger.scripts.client.xrevrange(ledger.keys.cardEvents(cardNo), '+', '-', 'COUNT', 1)) as [string, string[]][];
  return rows[0]?.[0] ?? '0-0';
}
