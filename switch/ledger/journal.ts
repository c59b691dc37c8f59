// Reading the shard journals (one Redis stream per shard) in bounded pages. Work that spans shards
// (settlement reports, audit, export) reads them here, never with one unbounded XRANGE.
// Entry fields are listed in ledger/README.md ("Journal entries"). Payment codes add three kinds that
// move money outside to outside (the card's `b` and `v` unchanged, net zero for the audit), each with
// `ot` (the payment's out_trade_no) and `ct` (the channel's transaction or refund id): `cpay` (x:ch -> m:),
// `cprev` its reversal and `cref` a merchant's refund through the channel (m: -> x:ch; `cref` also
// carries `or`, its out_refund_no, and names the refunding terminal and sequence in `tm` / `sq`).
import type { Redis } from 'ioredis';

/** Entries per XRANGE call: big enough to amortise the round trip, small enough to bound memory. */
export const DEFAULT_JOURNAL_PAGE_SIZE = 1000;
export const MAX_JOURNAL_PAGE_SIZE = 10_000;

export interface JournalEntry {
  /** Stream id "<ms>-<seq>": also the transaction id on the statement line. */
  readonly id: string;
  readonly kind: string;
  readonly cardNo: string;
  readonly amountFen: number;
  readonly fromParty: string;
  readonly toParty: string;
  readonly balanceAfterFen: number;
  /** Small wallet after (`wb`), only on entries that carry it. */
  readonly walletAfterFen: number | undefined;
  readonly version: number;
  /** Terminal, channel or operator. */
  readonly terminalId: string;
  /** Terminal sequence number, order id or adjustment key. */
  readonly sequence: string;
  /** The switch's decision time (`ts`); the statement line's score. */
  readonly atMs: number;
}

/** A journal entry that does not have the documented shape: the ledger itself is damaged. */
export class JournalFormatError extends Error {
  override readonly name = 'JournalFormatError';
}

export type RawStreamEntry = [id: string, fields: string[]];

function integerField(fields: ReadonlyMap<string, string>, name: string, id: string): number {
  const text = fields.get(name);
  const value = Number(text);
  if (text === undefined || !/^-?\d+$/.test(text) || !Number.isSafeInteger(value)) {
    throw new JournalFormatError(
      `journal entry ${id}: field ${name} is ${text === undefined ? 'missing' : JSON.stringify(text)}, not a whole number`,
    );
  }
  return value;
}

/** `required`: present and non-empty; otherwise a missing field reads as ''. */
function textField(fields: ReadonlyMap<string, string>, name: string, id: string, required: boolean): string {
  const text = fields.get(name);
  if (required && (text === undefined || text === '')) throw new JournalFormatError(`journal entry ${id}: field ${name} is missing`);
  return text ?? '';
}

/** The stream id's millisecond part: Redis's clock when the entry was appended. */
export function streamIdMs(id: string): number {
  const ms = Number(id.slice(0, id.indexOf('-')));
  if (!Number.isSafeInteger(ms)) throw new JournalFormatError(`"${id}" is not a stream id`);
  return ms;
}

/** The fields of a compact entry's `e` value, in order (includes/answer.lua appendJournal). */
const COMPACT_FIELDS = ['k', 'c', 'a', 'f', 't', 'b', 'v', 'tm', 'sq', 'ts'] as const;

/**
 * A compact entry (one field `e`: the ten values of appendJournal joined by '|') as the ten fields it
 * stands for, in appendJournal's order; any other row unchanged. Every reader of raw rows goes through
 * this (journalPages, the archiver, parseJournalEntry), so compact and ten-field entries read alike.
 */
export function expandJournalRow(row: RawStreamEntry): RawStreamEntry {
  const [id, flat] = row;
  if (flat.length !== 2 || flat[0] !== 'e') return row;
  const values = (flat[1] ?? '').split('|');
  if (values.length !== COMPACT_FIELDS.length)
    throw new JournalFormatError(`journal entry ${id}: its compact value has ${values.length} parts, not ${COMPACT_FIELDS.length}`);
  const fields: string[] = [];
  for (let i = 0; i < COMPACT_FIELDS.length; i++) fields.push(COMPACT_FIELDS[i] as string, values[i] as string);
  return [id, fields];
}

/** Parses one XRANGE row; throws JournalFormatError when a documented field is missing or malformed. */
export function parseJournalEntry(row: RawStreamEntry): JournalEntry {
  const [id, flat] = expandJournalRow(row);
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i] as string, flat[i + 1] as string);
  const amountFen = integerField(fields, 'a', id);
  if (amountFen <= 0) throw new JournalFormatError(`journal entry ${id}: amount ${amountFen} is not > 0`);
  return {
    id,
    kind: textField(fields, 'k', id, true),
    cardNo: textField(fields, 'c', id, true),
    amountFen,
    fromParty: textField(fields, 'f', id, true),
    toParty: textField(fields, 't', id, true),
    balanceAfterFen: integerField(fields, 'b', id),
    walletAfterFen: fields.has('wb') ? integerField(fields, 'wb', id) : undefined,
    version: integerField(fields, 'v', id),
    terminalId: textField(fields, 'tm', id, false),
    sequence: textField(fields, 'sq', id, false),
    atMs: fields.has('ts') ? integerField(fields, 'ts', id) : streamIdMs(id),
  };
}

export interface JournalRange {
  /** Inclusive stream id or ms ('-' = the beginning). */
  readonly start?: string;
  /** Inclusive stream id or ms ('+' = the end). */
  readonly end?: string;
  readonly pageSize?: number;
  /** Checked between pages; return true to stop early (the caller's deadline or cancellation). */
  readonly cancelled?: () => boolean;
}

/** Stopped between two pages because the caller cancelled or its deadline passed. */
export class JournalReadCancelledError extends Error {
  override readonly name = 'JournalReadCancelledError';
}

function checkPageSize(pageSize: number): number {
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_JOURNAL_PAGE_SIZE) {
    throw new RangeError(`journal page size must be 1..${MAX_JOURNAL_PAGE_SIZE}, got ${pageSize}`);
  }
  return pageSize;
}

/**
 * Yields the raw rows of one journal stream, oldest first, one bounded page at a time. Each page
 * continues after the last id of the one before (exclusive "(" start), so entries appended while
 * reading are picked up and none is returned twice.
 */
export async function* journalPages(redis: Redis, journalKey: string, range: JournalRange = {}): AsyncGenerator<RawStreamEntry[]> {
  const pageSize = checkPageSize(range.pageSize ?? DEFAULT_JOURNAL_PAGE_SIZE);
  const end = range.end ?? '+';
  let start = range.start ?? '-';
  for (;;) {
    if (range.cancelled?.() === true) throw new JournalReadCancelledError('journal read cancelled');
    const page = (await redis.xrange(journalKey, start, end, 'COUNT', pageSize)) as RawStreamEntry[];
    if (page.length > 0) yield page.map(expandJournalRow);
    if (page.length < pageSize) return;
    const last = page[page.length - 1];
    if (last === undefined) return;
    start = `(${last[0]}`;
  }
}

/**
 * Runs `work` for shards 0..shardCount-1 with at most `concurrency` in flight. The first failure
 * stops handing out new shards and is rethrown once the running ones have settled.
 */
export async function forEachShard(shardCount: number, concurrency: number, work: (shard: number) => Promise<void>): Promise<void> {
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64)
    throw new RangeError(`shard concurrency must be 1..64, got ${concurrency}`);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const runner = async (): Promise<void> => {
    while (failure === undefined && next < shardCount) {
      const shard = next++;
      try {
        await work(shard);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, shardCount) }, runner));
  if (failure !== undefined) throw failure.err;
}
