// A card's statement index (zset: score = decision ms, member = statement line), read newest first in
// bounded steps with ZREVRANGEBYSCORE ... LIMIT, and the opaque, signed page token that carries the
// position between pages. Line format: ledger/README.md ("Statement lines").
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';

export const DEFAULT_STATEMENT_PAGE_SIZE = 20;
export const MAX_STATEMENT_PAGE_SIZE = 100;
/**
 * Lines looked at per request. With a kind filter most lines may not match; past this many the page
 * ends early (possibly empty) with a token to continue, so one request never walks a whole history.
 */
export const MAX_STATEMENT_LINES_SCANNED = 1000;
export const MAX_PAGE_TOKEN_LENGTH = 1024;
/** Lines sharing one millisecond on one card; a token claiming more was not made here. */
const MAX_SAME_SCORE_SKIP = 100_000;
const TOKEN_MAC_BYTES = 16;

export interface StatementLineRecord {
  /** The journal entry's stream id. */
  readonly transactionId: string;
  readonly kind: string;
  /** Signed from the cardholder's view: negative when money left the account (or wallet). */
  readonly amountFen: number;
  readonly balanceAfterFen: number;
  readonly terminalId: string;
  readonly sequence: string;
  readonly atMs: number;
}

/** A statement line that does not have the documented shape. */
export class StatementFormatError extends Error {
  override readonly name = 'StatementFormatError';
}

/** A page token that was not issued for this query (garbled, forged, or from another card/filter). */
export class PageTokenError extends Error {
  override readonly name = 'PageTokenError';
}

function signedInteger(text: string | undefined, what: string, member: string): number {
  const value = Number(text);
  if (text === undefined || !/^-?\d+$/.test(text) || !Number.isSafeInteger(value)) {
    throw new StatementFormatError(`statement line "${member.slice(0, 120)}": ${what} is not a whole number`);
  }
  return value;
}

/** "<txnId>|<kind>|<signed amount fen>|<balance after fen>|<terminal>|<sequence>" */
export function parseStatementLine(member: string, atMs: number): StatementLineRecord {
  const parts = member.split('|');
  if (parts.length < 6 || parts[0] === '' || parts[1] === '') {
    throw new StatementFormatError(`statement line "${member.slice(0, 120)}" does not have 6 '|'-separated fields`);
  }
  return {
    transactionId: parts[0] as string,
    kind: parts[1] as string,
    amountFen: signedInteger(parts[2], 'the amount', member),
    balanceAfterFen: signedInteger(parts[3], 'the balance', member),
    terminalId: parts[4] as string,
    // An order id could in principle hold '|': it is the last field, so keep the rest whole.
    sequence: parts.slice(5).join('|'),
    atMs,
  };
}

/**
 * Where the previous page stopped: the last line's score and member, and how many lines with that
 * same score were already returned (ZREVRANGEBYSCORE orders equal scores by member, descending).
 */
export interface StatementCursor {
  readonly score: number;
  readonly member: string;
  readonly sameScoreSeen: number;
  /** The position is in the archive (ledger/history-reads.ts): continue there, strictly below score and member. */
  readonly inArchive?: boolean;
}

export interface StatementRange {
  /** Inclusive lower bound in ms; 0 = unbounded. */
  readonly fromMs: number;
  /** Exclusive upper bound in ms; 0 = unbounded. */
  readonly toMs: number;
}

export interface StatementPageRequest extends StatementRange {
  readonly pageSize: number;
  readonly cursor: StatementCursor | undefined;
  /** Which ledger kinds to return (the others are skipped, still advancing the position). */
  readonly acceptKind: (kind: string) => boolean;
}

export interface StatementPageResult {
  /** The accepted lines (raw members and their scores), newest first. */
  readonly lines: readonly { readonly member: string; readonly atMs: number }[];
  /** Undefined when the history (within the range) is exhausted. */
  readonly next: StatementCursor | undefined;
  /** Where the scan stopped (the last line looked at), also when exhausted: the archive continues below it. */
  readonly reached?: StatementCursor | undefined;
  /** Lines looked at. */
  readonly scanned?: number;
}

/** Byte order, as Redis compares members. */
function memberCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** One bounded ZREVRANGEBYSCORE step after `cursor`: [member, score] pairs, newest first. */
async function readAfter(
  redis: Redis,
  key: string,
  range: StatementRange,
  cursor: StatementCursor | undefined,
  count: number,
): Promise<[string, number][]> {
  const max = cursor !== undefined ? String(cursor.score) : range.toMs > 0 ? `(${range.toMs}` : '+inf';
  const min = range.fromMs > 0 ? String(range.fromMs) : '-inf';
  const flat = await redis.zrevrangebyscore(key, max, min, 'WITHSCORES', 'LIMIT', cursor?.sameScoreSeen ?? 0, count);
  const items: [string, number][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) items.push([flat[i] as string, Number(flat[i + 1])]);
  return items;
}

/**
 * The position after one more line. A member at the cursor's own score that sorts at or above the
 * cursor's member was returned already: it is there because a line was added at that millisecond
 * after the token was made, shifting the offset by one; counting it keeps the offset right.
 */
function advance(cursor: StatementCursor | undefined, member: string, score: number): { cursor: StatementCursor; fresh: boolean } {
  if (cursor === undefined || cursor.score !== score) return { cursor: { score, member, sameScoreSeen: 1 }, fresh: true };
  if (memberCompare(member, cursor.member) >= 0) return { cursor: { ...cursor, sameScoreSeen: cursor.sameScoreSeen + 1 }, fresh: false };
  return { cursor: { score, member, sameScoreSeen: cursor.sameScoreSeen + 1 }, fresh: true };
}

/** Reads one page of a card's statement, newest first, looking at most at MAX_STATEMENT_LINES_SCANNED lines. */
export async function readStatementPage(
  redis: Redis,
  keys: Keys,
  cardNo: string,
  request: StatementPageRequest,
): Promise<StatementPageResult> {
  const { pageSize } = request;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_STATEMENT_PAGE_SIZE) {
    throw new RangeError(`page size must be 1..${MAX_STATEMENT_PAGE_SIZE}, got ${pageSize}`);
  }
  const key = keys.statement(cardNo);
  const lines: { member: string; atMs: number }[] = [];
  let cursor = request.cursor;
  let scanned = 0;
  // One more than a page: when it is there, a next page certainly exists.
  const step = pageSize + 1;
  while (scanned < MAX_STATEMENT_LINES_SCANNED) {
    const items = await readAfter(redis, key, request, cursor, step);
    for (const [member, score] of items) {
      if (lines.length === pageSize) return { lines, next: cursor, reached: cursor, scanned };
      const moved = advance(cursor, member, score);
      cursor = moved.cursor;
      scanned++;
      if (moved.fresh && request.acceptKind(member.split('|', 2)[1] ?? '')) lines.push({ member, atMs: score });
    }
    if (items.length < step) return { lines, next: undefined, reached: cursor, scanned };
  }
  return { lines, next: cursor, reached: cursor, scanned };
}

// ---- page tokens -------------------------------------------------------------------------------

/**
 * The token is base64url(JSON position) + "." + a truncated HMAC over the position AND the query it
 * belongs to (card, range, kinds). A garbled or forged token, or one replayed against another card
 * or filter, fails the MAC and is refused instead of silently starting somewhere else.
 */
export class PageTokenCodec {
  private readonly key: Buffer;

  constructor(secret: string) {
    if (secret.length < 16) throw new RangeError('page token secret must be at least 16 characters');
    // A derived key: the secret itself is never used for two purposes.
    this.key = createHmac('sha256', secret).update('cardswitch statement page token v1').digest();
  }

  private mac(payload: string, queryId: string): Buffer {
    return createHmac('sha256', this.key).update(queryId).update('\n').update(payload).digest().subarray(0, TOKEN_MAC_BYTES);
  }

  encode(cursor: StatementCursor, queryId: string): string {
    const payload = Buffer.from(
      JSON.stringify({ s: cursor.score, m: cursor.member, n: cursor.sameScoreSeen, ...(cursor.inArchive === true ? { a: 1 } : {}) }),
      'utf8',
    ).toString('base64url');
    return `${payload}.${this.mac(payload, queryId).toString('base64url')}`;
  }

  decode(token: string, queryId: string): StatementCursor {
    if (token.length > MAX_PAGE_TOKEN_LENGTH) throw new PageTokenError(`page_token is longer than ${MAX_PAGE_TOKEN_LENGTH} characters`);
    const match = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(token);
    if (match === null) throw new PageTokenError('page_token is not a token this service issued');
    const payload = match[1] as string;
    const presented = Buffer.from(match[2] as string, 'base64url');
    const expected = this.mac(payload, queryId);
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      throw new PageTokenError('page_token was not issued for this card and filter (or was altered)');
    }
    return parseCursor(Buffer.from(payload, 'base64url').toString('utf8'));
  }
}

function parseCursor(json: string): StatementCursor {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new PageTokenError('page_token does not decode');
  }
  const v = value as { s?: unknown; m?: unknown; n?: unknown; a?: unknown };
  if (
    typeof v.s !== 'number' ||
    !Number.isSafeInteger(v.s) ||
    typeof v.m !== 'string' ||
    typeof v.n !== 'number' ||
    !Number.isInteger(v.n) ||
    v.n < 1 ||
    v.n > MAX_SAME_SCORE_SKIP ||
    (v.a !== undefined && v.a !== 1)
  ) {
    throw new PageTokenError('page_token does not hold a statement position');
  }
  return v.a === 1 ? { score: v.s, member: v.m, sameScoreSeen: v.n, inArchive: true } : { score: v.s, member: v.m, sameScoreSeen: v.n };
}
