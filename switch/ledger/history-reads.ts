// Reading the ledger's history across both stores: Redis holds the live window of every shard journal
// and card statement; the archive (PostgreSQL, switch/history/) holds every entry ever archived. The
// ledger layer knows the archive only through the JournalArchive interface below (history/ implements
// it; app.ts wires it into the ledger access), so nothing here imports PostgreSQL.
//
// The rule that makes the two stores one journal: each shard's trim mark (`Keys.journalTrimMark`) is
// the MINID of the last trim, and a trim never passes the archived position (history/lua/journal-trim.lua
// checks it in the same script), so every id below the mark is in the archive. A reader takes ids below
// the mark from the archive and the rest from Redis, reading the mark in the same MULTI as each Redis
// page, so a trim between two reads sends it back to the archive instead of past a gap.
import type { Redis } from 'ioredis';
import { UnavailableError } from '../errors.js';
import type { Keys } from './keys.js';
import {
  expandJournalRow,
  journalPages,
  JournalReadCancelledError,
  parseJournalEntry,
  type JournalEntry,
  type JournalRange,
  type RawStreamEntry,
} from './journal.js';
import {
  MAX_STATEMENT_LINES_SCANNED,
  MAX_STATEMENT_PAGE_SIZE,
  readStatementPage,
  type StatementCursor,
  type StatementPageRequest,
  type StatementPageResult,
} from './statement.js';

/** A stream id as two numbers (ms, seq). */
export interface StreamId {
  readonly ms: number;
  readonly seq: number;
}

export const STREAM_ID_ZERO: StreamId = { ms: 0, seq: 0 };
const STREAM_ID_MAX: StreamId = { ms: Number.MAX_SAFE_INTEGER, seq: Number.MAX_SAFE_INTEGER };

export function parseStreamId(text: string): StreamId {
  const match = /^(\d+)-(\d+)$/.exec(text);
  const ms = Number(match?.[1]);
  const seq = Number(match?.[2]);
  if (match === null || !Number.isSafeInteger(ms) || !Number.isSafeInteger(seq))
    throw new RangeError(`"${text.slice(0, 40)}" is not a stream id`);
  return { ms, seq };
}

export function formatStreamId(id: StreamId): string {
  return `${id.ms}-${id.seq}`;
}

export function compareStreamIds(a: StreamId, b: StreamId): number {
  return a.ms !== b.ms ? a.ms - b.ms : a.seq - b.seq;
}

function nextStreamId(id: StreamId): StreamId {
  return { ms: id.ms, seq: id.seq + 1 };
}

/** The archive as the ledger reads it (history/archive-store.ts implements it on PostgreSQL). */
export interface JournalArchive {
  /** Rows of one shard with from <= id < before (ids), oldest first, at most `limit`; as XRANGE gives them. */
  rows(shard: number, from: StreamId, before: StreamId, limit: number): Promise<RawStreamEntry[]>;
  /** The last id archived of the shard (0-0 when none). */
  position(shard: number): Promise<StreamId>;
  /** One entry by its shard and id. */
  entry(shard: number, id: StreamId): Promise<RawStreamEntry | undefined>;
  /**
   * A card's rows with fromMs <= at_ms <= maxAtMs, newest first (at_ms, then id, descending), at most
   * `limit`, skipping the first `offset` of them.
   */
  cardRows(cardNo: string, fromMs: number, maxAtMs: number, limit: number, offset: number): Promise<RawStreamEntry[]>;
}

/** The inclusive bounds of a JournalRange ('-', '+', ms, ms-seq, '(' exclusive) as stream ids. */
function rangeBounds(range: JournalRange): { from: StreamId; to: StreamId } {
  const bound = (text: string, isEnd: boolean): StreamId => {
    if (text === '-') return STREAM_ID_ZERO;
    if (text === '+') return STREAM_ID_MAX;
    const exclusive = text.startsWith('(');
    const body = exclusive ? text.slice(1) : text;
    const id = body.includes('-') ? parseStreamId(body) : { ms: Number(body), seq: isEnd ? STREAM_ID_MAX.seq : 0 };
    if (!Number.isSafeInteger(id.ms)) throw new RangeError(`journal range bound "${text.slice(0, 40)}" is not a stream id or ms`);
    if (!exclusive) return id;
    return isEnd ? (id.seq > 0 ? { ms: id.ms, seq: id.seq - 1 } : { ms: id.ms - 1, seq: STREAM_ID_MAX.seq }) : nextStreamId(id);
  };
  return { from: bound(range.start ?? '-', false), to: bound(range.end ?? '+', true) };
}

async function trimMark(redis: Redis, key: string): Promise<StreamId> {
  const text = await redis.get(key);
  return text === null ? STREAM_ID_ZERO : parseStreamId(text);
}

/**
 * One shard's journal over `range`, oldest first, in bounded pages, across the archive and Redis.
 * Without an archive this is journalPages (Redis alone).
 */
export async function* mergedJournalPages(
  redis: Redis,
  keys: Keys,
  shard: number,
  range: JournalRange,
  archive: JournalArchive | undefined,
): AsyncGenerator<RawStreamEntry[]> {
  const journalKey = keys.journal(shard);
  if (archive === undefined) {
    yield* journalPages(redis, journalKey, range);
    return;
  }
  const pageSize = range.pageSize ?? 1000;
  const { from, to } = rangeBounds(range);
  const markKey = keys.journalTrimMark(shard);
  let cursor = from;
  let mark = await trimMark(redis, markKey);
  while (compareStreamIds(cursor, to) <= 0) {
    if (range.cancelled?.() === true) throw new JournalReadCancelledError('journal read cancelled');
    if (compareStreamIds(cursor, mark) < 0) {
      // Below the mark: only the archive has these.
      const before = compareStreamIds(mark, to) <= 0 ? mark : nextStreamId(to);
      const rows = await archive.rows(shard, cursor, before, pageSize);
      if (rows.length > 0) {
        yield rows;
        cursor = nextStreamId(parseStreamId((rows[rows.length - 1] as RawStreamEntry)[0]));
      }
      if (rows.length < pageSize) cursor = compareStreamIds(cursor, before) > 0 ? cursor : before;
      continue;
    }
    const [[markErr, markText], [pageErr, page]] = ((await redis
      .multi()
      .get(markKey)
      .xrange(journalKey, formatStreamId(cursor), formatStreamId(to), 'COUNT', pageSize)
      .exec()) ?? []) as [[Error | null, string | null], [Error | null, RawStreamEntry[]]];
    if (markErr !== null) throw markErr;
    if (pageErr !== null) throw pageErr;
    mark = markText === null ? STREAM_ID_ZERO : parseStreamId(markText);
    // Trimmed past the cursor since the last look: the entries just below the mark are in the archive now.
    if (compareStreamIds(cursor, mark) < 0) continue;
    if (page.length > 0) yield page.map(expandJournalRow);
    if (page.length < pageSize) return;
    cursor = nextStreamId(parseStreamId((page[page.length - 1] as RawStreamEntry)[0]));
  }
}

/** One entry of a card by id: Redis first, then the archive (the entry may be trimmed). */
export async function mergedJournalEntry(
  redis: Redis,
  keys: Keys,
  cardNo: string,
  transactionId: string,
  archive: JournalArchive | undefined,
): Promise<JournalEntry | undefined> {
  const raw = (await redis.xrange(keys.journalOfCard(cardNo), transactionId, transactionId, 'COUNT', 1)) as RawStreamEntry[];
  if (raw[0] !== undefined) return parseJournalEntry(raw[0]);
  if (archive === undefined) return undefined;
  const row = await archive.entry(keys.shardOf(cardNo), parseStreamId(transactionId));
  return row === undefined ? undefined : parseJournalEntry(row);
}

// ---- statements ---------------------------------------------------------------------------------

/**
 * The statement line (ledger/README.md "Statement lines") appendStatement wrote for a journal entry:
 * the amount signed from the card's account view (for wpay the wallet's), the balance after (for wpay
 * the wallet's). test/history-statement checks it equals the line Redis holds for every kind.
 */
export function statementMemberOf(e: JournalEntry): string {
  const own = new Set([`a:${e.cardNo}`, `w:${e.cardNo}`]);
  let signedFen: number;
  if (own.has(e.fromParty)) signedFen = -e.amountFen;
  else if (own.has(e.toParty)) signedFen = e.amountFen;
  else signedFen = e.toParty.startsWith('m:') ? -e.amountFen : e.amountFen; // cpay / cprev: outside to outside
  const balanceFen = e.kind === 'wpay' ? (e.walletAfterFen ?? e.balanceAfterFen) : e.balanceAfterFen;
  return [e.id, e.kind, String(signedFen), String(balanceFen), e.terminalId, e.sequence].join('|');
}

function memberCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** (score, member) strictly below the cursor in the statement's order (score desc, member bytes desc). */
function below(atMs: number, member: string, cursor: { score: number; member: string }): boolean {
  return atMs < cursor.score || (atMs === cursor.score && memberCompare(member, cursor.member) < 0);
}

/** Rows fetched from the archive per step (a page plus the lines a kind filter skips). */
const ARCHIVE_STATEMENT_STEP = MAX_STATEMENT_PAGE_SIZE + 1;
/** Lines of one card in one millisecond the archive reader takes in one step at most. */
const MAX_ARCHIVE_SAME_MS = 100_000;

interface Line {
  readonly member: string;
  readonly atMs: number;
}

/**
 * One page of a card's archived statement strictly below `from` (a position in the statement's order),
 * newest first, looking at most at MAX_STATEMENT_LINES_SCANNED lines (counting `scannedBefore`). Each
 * step reads rows at or below a millisecond; the oldest millisecond of a full step may be cut short, so
 * only the ones above it are used and the next step starts at it.
 */
async function archiveStatementPage(
  archive: JournalArchive,
  cardNo: string,
  request: StatementPageRequest,
  from: { readonly score: number; readonly member: string },
  pageSize: number,
  scannedBefore: number,
): Promise<{ lines: Line[]; next: StatementCursor | undefined }> {
  const lines: Line[] = [];
  let position: Line = { atMs: from.score, member: from.member };
  let scanned = scannedBefore;
  let scanMaxMs = from.score;
  let limit = ARCHIVE_STATEMENT_STEP;
  const cursorAt = (l: Line): StatementCursor => ({ score: l.atMs, member: l.member, sameScoreSeen: 1, inArchive: true });
  for (;;) {
    const rows = (await archive.cardRows(cardNo, Math.max(0, request.fromMs), scanMaxMs, limit, 0)).map((row) => {
      const entry = parseJournalEntry(row);
      return { member: statementMemberOf(entry), atMs: entry.atMs };
    });
    const full = rows.length === limit;
    const oldestMs = rows[rows.length - 1]?.atMs ?? 0;
    const complete = full ? rows.filter((l) => l.atMs > oldestMs) : rows;
    if (full && complete.length === 0) {
      if (limit >= MAX_ARCHIVE_SAME_MS)
        throw new Error(`card ${cardNo}: more than ${MAX_ARCHIVE_SAME_MS} archived lines share one millisecond`);
      limit *= 2;
      continue;
    }
    const fresh = complete
      .filter((l) => below(l.atMs, l.member, { score: position.atMs, member: position.member }))
      .sort((a, b) => (a.atMs !== b.atMs ? b.atMs - a.atMs : memberCompare(b.member, a.member)));
    for (const line of fresh) {
      if (lines.length >= pageSize) return { lines, next: cursorAt(position) };
      if (scanned >= MAX_STATEMENT_LINES_SCANNED) return { lines, next: cursorAt(position) };
      position = line;
      scanned++;
      if (request.acceptKind(line.member.split('|', 2)[1] ?? '')) lines.push(line);
    }
    if (!full) return { lines, next: undefined };
    scanMaxMs = oldestMs;
    limit = ARCHIVE_STATEMENT_STEP;
  }
}

/**
 * One page of a card's statement, newest first, from Redis and, once Redis has no older line in the
 * range, from the archive below the last line Redis gave: the lines still in Redis are the newest
 * ones (a trim removes the oldest first), so the archive's part never repeats one of them.
 */
export async function mergedStatementPage(
  redis: Redis,
  keys: Keys,
  cardNo: string,
  request: StatementPageRequest,
  archive: JournalArchive | undefined,
): Promise<StatementPageResult> {
  if (archive === undefined) return readStatementPage(redis, keys, cardNo, request);
  if (request.cursor?.inArchive === true) return archiveStatementPage(archive, cardNo, request, request.cursor, request.pageSize, 0);
  const live = await readStatementPage(redis, keys, cardNo, request);
  if (live.next !== undefined) return live;
  // The top of the range: above every line of ms toMs - 1 (members are '|'-joined ASCII and UTF-8 text).
  const top = { score: request.toMs > 0 ? request.toMs - 1 : Number.MAX_SAFE_INTEGER, member: '\u{10ffff}' };
  const from = live.reached ?? request.cursor ?? top;
  // pageSize 0 (Redis filled the page) still answers whether the archive has a line below: `next`.
  let rest: Awaited<ReturnType<typeof archiveStatementPage>>;
  try {
    rest = await archiveStatementPage(archive, cardNo, request, from, request.pageSize - live.lines.length, live.scanned ?? 0);
  } catch (err) {
    // The archive is not answering (PostgreSQL down or hung): the lines Redis gave are the newest and read as
    // before. They are the page, with a position that goes on in the archive; only that next page is
    // UNAVAILABLE until PostgreSQL answers. Before, the whole page was, and the newest lines with it.
    if (!(err instanceof UnavailableError) || live.lines.length === 0) throw err;
    return { lines: live.lines, next: { score: from.score, member: from.member, sameScoreSeen: 1, inArchive: true } };
  }
  return { lines: [...live.lines, ...rest.lines], next: rest.next };
}
