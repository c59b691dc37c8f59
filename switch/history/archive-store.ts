// The archive on PostgreSQL: writes batches of journal rows with their shard's position in one
// transaction, and reads them back as the ledger's JournalArchive (ledger/history-reads.ts).
import pg from 'pg';
import {
  compareStreamIds,
  formatStreamId,
  parseStreamId,
  STREAM_ID_ZERO,
  type JournalArchive,
  type StreamId,
} from '../ledger/history-reads.js';
import { expandJournalRow, JournalFormatError, parseJournalEntry, type RawStreamEntry } from '../ledger/journal.js';
import { UnavailableError } from '../errors.js';
import { migrate } from './migrate.js';

/** The documented fields (ledger/README.md "Journal entries") that have their own columns; the rest go to `extra`. */
const COLUMN_FIELDS = new Set(['k', 'c', 'a', 'f', 't', 'b', 'wb', 'v', 'tm', 'sq', 'ts']);
/** Rows one archive transaction carries at most (its one INSERT takes them as 15 arrays). */
export const MAX_ARCHIVE_BATCH = 2000;
/** The advisory lock partition creation runs under (any fixed number, distinct from the migrator's). */
const PARTITION_LOCK_ID = 727_301_018;
/** The advisory lock the first ledger to open the archive is recorded under. */
const LEDGER_LOCK_ID = 727_301_019;
const MONTH_PARTITION = /^journal_y(\d{4})m(\d{2})$/;

/**
 * How much longer than its statement_timeout a query may take before the switch gives up on it itself:
 * PostgreSQL enforces statement_timeout, but a server that hangs with its connections open (stopped, or
 * cut off without a reset) enforces nothing, and a reader would wait for ever.
 */
const QUERY_TIME_MARGIN_MS = 5000;

/** SQLSTATE classes of an archive that is not answering (not of a query that is wrong). */
const OUTAGE_SQLSTATE = /^(08|53|57)/;

/**
 * A failed read of the archive as a caller should see it: PostgreSQL unreachable, restarting, hung or
 * out of connections becomes UnavailableError (gRPC UNAVAILABLE, HTTP 503: nothing changed, retry later);
 * an error of the query itself stays what it is (a bug of ours: INTERNAL).
 */
export function archiveReadError(err: unknown): unknown {
  if (err instanceof pg.DatabaseError && !OUTAGE_SQLSTATE.test(err.code ?? '')) return err;
  if (!(err instanceof Error) || err instanceof JournalFormatError || err instanceof ArchiveInvariantError) return err;
  // The cause (which host, which error) is for the log, not for the cardholder or the POS.
  const outage = new UnavailableError(
    'the journal archive (PostgreSQL) is not answering: history older than the live window cannot be read now; try again later',
    { reason: 'ARCHIVE_UNAVAILABLE', zh: '历史记录暂时无法查询，请稍后再试' },
  );
  return Object.assign(outage, { cause: err });
}

/** One shard's entries after `after`, oldest first, for writeBatches. */
export interface ArchiveBatch {
  readonly shard: number;
  readonly after: StreamId;
  readonly rows: readonly RawStreamEntry[];
}

/** A position that goes backwards, a row with another shape than documented: the archive is not sound. */
export class ArchiveInvariantError extends Error {
  override readonly name = 'ArchiveInvariantError';
}

interface JournalRow {
  readonly stream_ms: string;
  readonly stream_seq: string;
  readonly kind: string;
  readonly card_no: string;
  readonly amount_fen: string;
  readonly from_party: string;
  readonly to_party: string;
  readonly balance_after_fen: string;
  readonly wallet_after_fen: string | null;
  readonly version: string;
  readonly terminal_id: string;
  readonly sequence: string;
  readonly at_ms: string;
  readonly extra: string[];
}

const ROW_COLUMNS =
  'stream_ms, stream_seq, kind, card_no, amount_fen, from_party, to_party, balance_after_fen, wallet_after_fen, version, terminal_id, sequence, at_ms, extra';

const INSERT_ROWS =
  `INSERT INTO journal (shard, ${ROW_COLUMNS}) SELECT s, ms, sq, k, c, a, f, t, b, w, v, tm, se, at, e::text[] ` +
  'FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], ' +
  '$9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::bigint[], $15::text[]) ' +
  'AS u(s, ms, sq, k, c, a, f, t, b, w, v, tm, se, at, e) ON CONFLICT (shard, stream_ms, stream_seq) DO NOTHING RETURNING shard';

/** Back to the XRANGE shape, fields in appendJournal's order. */
function rawOf(row: JournalRow): RawStreamEntry {
  const fields = ['k', row.kind, 'c', row.card_no, 'a', row.amount_fen, 'f', row.from_party, 't', row.to_party];
  fields.push('b', row.balance_after_fen, 'v', row.version, 'tm', row.terminal_id, 'sq', row.sequence, 'ts', row.at_ms);
  if (row.wallet_after_fen !== null) fields.push('wb', row.wallet_after_fen);
  fields.push(...row.extra);
  return [`${row.stream_ms}-${row.stream_seq}`, fields];
}

/** [start, end) ms of the UTC month holding `ms`, and its partition's name. */
export function monthOf(ms: number): { name: string; startMs: number; endMs: number } {
  const d = new Date(ms);
  const [y, m] = [d.getUTCFullYear(), d.getUTCMonth()];
  return {
    name: `journal_y${String(y).padStart(4, '0')}m${String(m + 1).padStart(2, '0')}`,
    startMs: Date.UTC(y, m, 1),
    endMs: Date.UTC(y, m + 1, 1),
  };
}

export interface ArchiveStoreOptions {
  readonly url: string;
  /** Connections in the pool (the archiver uses one per shard worker, readers the rest). */
  readonly poolSize: number;
  readonly statementTimeoutMs: number;
}

export class ArchiveStore implements JournalArchive {
  readonly pool: pg.Pool;
  private readonly partitions = new Set<string>();

  constructor(options: ArchiveStoreOptions) {
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      statement_timeout: options.statementTimeoutMs,
      query_timeout: options.statementTimeoutMs + QUERY_TIME_MARGIN_MS,
      application_name: 'cardswitch-history',
    });
    // An idle connection that dies (PostgreSQL restarted) is dropped by the pool; the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  /**
   * Applies the migrations and checks (or records) which ledger this database archives. One database
   * archives ONE ledger: the journal and the positions carry no key prefix, so a second ledger would take
   * the first one's positions as its own and trim its entries unarchived. The first ledger to open it is
   * recorded (under a lock, so two at once cannot both be first); any other prefix or shard count stops.
   * With `ledgerId` (ledger/meta.ts ledgerIdentity), also another Redis ledger of the same prefix stops: two
   * deployments left at the default KEY_PREFIX are two ledgers the prefix cannot tell apart.
   */
  async open(keyPrefix: string, shardCount: number, ledgerId?: string): Promise<void> {
    await migrate(this.pool);
    const client = await this.pool.connect();
    let owner: { key_prefix: string; shard_count: number; ledger_id: string | null } | undefined;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [LEDGER_LOCK_ID]);
      await client.query(
        'INSERT INTO archive_ledger (key_prefix, shard_count) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM archive_ledger)',
        [keyPrefix, shardCount],
      );
      // The first ledger of this prefix to open it with its identity claims it (an archive older than the column too).
      if (ledgerId !== undefined)
        await client.query('UPDATE archive_ledger SET ledger_id = $2 WHERE key_prefix = $1 AND ledger_id IS NULL', [keyPrefix, ledgerId]);
      const found = await client.query<{ key_prefix: string; shard_count: number; ledger_id: string | null }>(
        'SELECT key_prefix, shard_count, ledger_id FROM archive_ledger ORDER BY key_prefix',
      );
      await client.query('COMMIT');
      owner = found.rows.find((r) => r.key_prefix !== keyPrefix) ?? found.rows[0];
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
    if (owner?.key_prefix !== keyPrefix) {
      throw new ArchiveInvariantError(
        `this database archives ledger "${String(owner?.key_prefix)}", not "${keyPrefix}": one database archives one ledger (give this one its own DATABASE_URL)`,
      );
    }
    if (ledgerId !== undefined && owner.ledger_id !== null && owner.ledger_id !== ledgerId) {
      throw new ArchiveInvariantError(
        `this database archives another Redis ledger of the prefix "${keyPrefix}" (its id ${owner.ledger_id}; this Redis holds ${ledgerId}): ` +
          'one database archives one ledger (give this one its own DATABASE_URL, or its own KEY_PREFIX). If this Redis replaces the ' +
          "archived one's lost data, reconcile the two by hand first (docs/history.md), then UPDATE archive_ledger SET ledger_id = NULL",
      );
    }
    if (owner.shard_count !== shardCount) {
      throw new ArchiveInvariantError(
        `the archive holds ledger "${keyPrefix}" with ${owner.shard_count} shards, but this ledger has ${shardCount}`,
      );
    }
    const existing = await this.pool.query<{ relname: string }>(
      `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'journal'`,
    );
    for (const { relname } of existing.rows) if (MONTH_PARTITION.test(relname)) this.partitions.add(relname);
  }

  close(): Promise<void> {
    return this.pool.end();
  }

  /**
   * Creates the month partitions `msValues` fall in, and the month after each (created ahead), in a
   * transaction of its own under an advisory lock: shard workers meeting a new month at once would
   * otherwise collide creating the same table.
   */
  async ensurePartitions(client: pg.PoolClient, msValues: readonly number[]): Promise<void> {
    const months = new Map<string, { startMs: number; endMs: number }>();
    for (const ms of msValues) {
      const month = monthOf(ms);
      months.set(month.name, month);
      const ahead = monthOf(month.endMs);
      months.set(ahead.name, ahead);
    }
    const missing = [...months].filter(([name]) => !this.partitions.has(name));
    if (missing.length === 0) return;
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_ID]);
      for (const [name, { startMs, endMs }] of missing) {
        await client.query(`CREATE TABLE IF NOT EXISTS ${name} PARTITION OF journal FOR VALUES FROM (${startMs}) TO (${endMs})`);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    for (const [name] of missing) this.partitions.add(name);
  }

  async position(shard: number): Promise<StreamId> {
    const rows = await this.read<{ stream_ms: string; stream_seq: string }>(
      'SELECT stream_ms, stream_seq FROM archive_position WHERE shard = $1',
      [shard],
    );
    const row = rows[0];
    return row === undefined ? STREAM_ID_ZERO : { ms: Number(row.stream_ms), seq: Number(row.stream_seq) };
  }

  /** A reader's query (JournalArchive): an archive that is not answering is an UnavailableError. */
  private async read<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(text, values)).rows;
    } catch (err) {
      throw archiveReadError(err);
    }
  }

  /** Every shard's archived position, in one query (0-0 for a shard with none). */
  async positions(shardCount: number): Promise<StreamId[]> {
    const found = await this.pool.query<{ shard: number; stream_ms: string; stream_seq: string }>(
      'SELECT shard, stream_ms, stream_seq FROM archive_position',
    );
    const positions: StreamId[] = Array.from({ length: shardCount }, () => STREAM_ID_ZERO);
    for (const row of found.rows)
      if (row.shard < shardCount) positions[row.shard] = { ms: Number(row.stream_ms), seq: Number(row.stream_seq) };
    return positions;
  }

  /** One shard's batch: see writeBatches. */
  writeBatch(shard: number, after: StreamId, rows: readonly RawStreamEntry[]): Promise<number> {
    return this.writeBatches([{ shard, after, rows }]);
  }

  /**
   * Writes each batch's rows (one shard's entries after `after`, oldest first) and moves each shard's
   * position to its last row, all in ONE transaction with synchronous_commit on: after COMMIT all of it
   * is on disk, before it none. The shards' position rows are locked first (in shard order, so two
   * writers never deadlock): a writer whose `after` is no longer the stored position rolls back with
   * ArchivePositionMovedError. A row already there (same shard and id) is left as it is. Returns the
   * rows inserted.
   */
  async writeBatches(batches: readonly ArchiveBatch[]): Promise<number> {
    const work = batches.filter((b) => b.rows.length > 0).sort((a, b) => a.shard - b.shard);
    if (work.length === 0) return 0;
    const total = work.reduce((n, b) => n + b.rows.length, 0);
    if (total > MAX_ARCHIVE_BATCH) throw new RangeError(`an archive transaction holds at most ${MAX_ARCHIVE_BATCH} rows, got ${total}`);
    const columns = newRowColumns();
    const lasts = new Map<number, StreamId>();
    for (const batch of work) {
      if (lasts.has(batch.shard)) throw new ArchiveInvariantError(`shard ${batch.shard} appears twice in one archive transaction`);
      let previous = batch.after;
      for (const row of batch.rows) {
        const id = parseStreamId(row[0]);
        if (compareStreamIds(id, previous) <= 0)
          throw new ArchiveInvariantError(`shard ${batch.shard}: entry ${row[0]} is not after ${formatStreamId(previous)}`);
        previous = id;
        addRow(columns, batch.shard, id, row);
      }
      lasts.set(batch.shard, previous);
    }
    const client = await this.pool.connect();
    // A checked-out client that loses its server emits 'error' outside any query: noted here (the next
    // query fails with it), and the client is destroyed on release instead of going back to the pool.
    let broken = false;
    const onError = (): void => {
      broken = true;
    };
    client.on('error', onError);
    try {
      await this.ensurePartitions(
        client,
        work.flatMap((b) => b.rows.map((r) => parseStreamId(r[0]).ms)),
      );
      await client.query('BEGIN');
      await client.query('SET LOCAL synchronous_commit = on');
      await this.lockPositions(client, work);
      // One prepared statement of a fixed text, the rows as 15 arrays: 2.3x the rows/s of a VALUES list of
      // 2,000 tuples (30,000 parameters, parsed and planned for every batch), at half the archiver's CPU
      // (loadtest/RESULTS.md, sixteenth session).
      const inserted = await client.query<{ shard: number }>({ name: 'archive-journal-rows', text: INSERT_ROWS, values: columns });
      const insertedByShard = new Map<number, number>();
      for (const { shard } of inserted.rows) insertedByShard.set(shard, (insertedByShard.get(shard) ?? 0) + 1);
      const positionValues: number[] = [];
      const positionTuples = work.map((b, i) => {
        const last = lasts.get(b.shard) as StreamId;
        positionValues.push(b.shard, last.ms, last.seq, insertedByShard.get(b.shard) ?? 0);
        return `($${i * 4 + 1}::int, $${i * 4 + 2}::bigint, $${i * 4 + 3}::bigint, $${i * 4 + 4}::bigint, now())`;
      });
      await client.query(
        `INSERT INTO archive_position (shard, stream_ms, stream_seq, entries, updated_at) VALUES ${positionTuples.join(', ')}
         ON CONFLICT (shard) DO UPDATE SET stream_ms = EXCLUDED.stream_ms, stream_seq = EXCLUDED.stream_seq,
           entries = archive_position.entries + EXCLUDED.entries, updated_at = now()`,
        positionValues,
      );
      await client.query('COMMIT');
      return inserted.rowCount ?? 0;
    } catch (err) {
      broken = broken || !(err instanceof ArchivePositionMovedError);
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  /** Locks the batches' position rows (made first if missing) and checks each is still the batch's `after`. */
  private async lockPositions(client: pg.PoolClient, work: readonly ArchiveBatch[]): Promise<void> {
    const shards = work.map((b) => b.shard);
    // A missing row cannot be locked: make it (0-0) first, so FOR UPDATE below always has a row to hold.
    await client.query(
      `INSERT INTO archive_position (shard, stream_ms, stream_seq) SELECT s, 0, 0 FROM unnest($1::int[]) AS s ON CONFLICT (shard) DO NOTHING`,
      [shards],
    );
    const current = await client.query<{ shard: number; stream_ms: string; stream_seq: string }>(
      'SELECT shard, stream_ms, stream_seq FROM archive_position WHERE shard = ANY($1::int[]) ORDER BY shard FOR UPDATE',
      [shards],
    );
    const stored = new Map(current.rows.map((r) => [r.shard, { ms: Number(r.stream_ms), seq: Number(r.stream_seq) }]));
    for (const b of work) {
      const position = stored.get(b.shard) ?? STREAM_ID_ZERO;
      if (compareStreamIds(position, b.after) !== 0) throw new ArchivePositionMovedError(b.shard, b.after, position);
    }
  }

  async rows(shard: number, from: StreamId, before: StreamId, limit: number): Promise<RawStreamEntry[]> {
    const rows = await this.read<JournalRow>(
      `SELECT ${ROW_COLUMNS} FROM journal WHERE shard = $1 AND (stream_ms, stream_seq) >= ($2, $3) AND (stream_ms, stream_seq) < ($4, $5)
       ORDER BY stream_ms, stream_seq LIMIT $6`,
      [shard, from.ms, from.seq, before.ms, before.seq, limit],
    );
    return rows.map(rawOf);
  }

  async entry(shard: number, id: StreamId): Promise<RawStreamEntry | undefined> {
    const rows = await this.read<JournalRow>(`SELECT ${ROW_COLUMNS} FROM journal WHERE shard = $1 AND stream_ms = $2 AND stream_seq = $3`, [
      shard,
      id.ms,
      id.seq,
    ]);
    return rows[0] === undefined ? undefined : rawOf(rows[0]);
  }

  async cardRows(cardNo: string, fromMs: number, maxAtMs: number, limit: number, offset: number): Promise<RawStreamEntry[]> {
    const rows = await this.read<JournalRow>(
      `SELECT ${ROW_COLUMNS} FROM journal WHERE card_no = $1 AND at_ms >= $2 AND at_ms <= $3
       ORDER BY at_ms DESC, stream_ms DESC, stream_seq DESC LIMIT $4 OFFSET $5`,
      [cardNo, fromMs, maxAtMs, limit, offset],
    );
    return rows.map(rawOf);
  }
}

/** Another archiver moved the shard's position since this one read it: read again from the stored position. */
export class ArchivePositionMovedError extends Error {
  override readonly name = 'ArchivePositionMovedError';
  constructor(
    readonly shard: number,
    readonly expected: StreamId,
    readonly stored: StreamId,
  ) {
    super(`shard ${shard}: the archived position is ${formatStreamId(stored)}, not ${formatStreamId(expected)} (another archiver?)`);
  }
}

/** The INSERT's 15 columns, one array each (unnest): one statement of a fixed text whatever the batch's size. */
type RowColumns = [
  number[],
  number[],
  number[],
  string[],
  string[],
  number[],
  string[],
  string[],
  number[],
  (number | null)[],
  number[],
  string[],
  string[],
  number[],
  string[],
];

function newRowColumns(): RowColumns {
  return [[], [], [], [], [], [], [], [], [], [], [], [], [], [], []];
}

/**
 * A PostgreSQL array literal of texts, every element quoted (`"` and `\` escaped): how `extra` rides in
 * the INSERT's array of texts (an array of arrays must be rectangular; the rows' extras are not).
 */
function textArrayLiteral(items: readonly string[]): string {
  if (items.length === 0) return '{}';
  return `{${items.map((item) => `"${item.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
}

/** One row's 15 values onto the columns, checked against the documented entry shape first. */
function addRow(columns: RowColumns, shard: number, id: StreamId, stored: RawStreamEntry): void {
  let entry;
  let row: RawStreamEntry;
  try {
    row = expandJournalRow(stored);
    entry = parseJournalEntry(row);
  } catch (err) {
    if (err instanceof JournalFormatError) throw new ArchiveInvariantError(`shard ${shard}: ${err.message}; the archiver stops here`);
    throw err;
  }
  const extra: string[] = [];
  const flat = row[1];
  for (let i = 0; i + 1 < flat.length; i += 2)
    if (!COLUMN_FIELDS.has(flat[i] as string)) extra.push(flat[i] as string, flat[i + 1] as string);
  columns[0].push(shard);
  columns[1].push(id.ms);
  columns[2].push(id.seq);
  columns[3].push(entry.kind);
  columns[4].push(entry.cardNo);
  columns[5].push(entry.amountFen);
  columns[6].push(entry.fromParty);
  columns[7].push(entry.toParty);
  columns[8].push(entry.balanceAfterFen);
  columns[9].push(entry.walletAfterFen ?? null);
  columns[10].push(entry.version);
  columns[11].push(entry.terminalId);
  columns[12].push(entry.sequence);
  columns[13].push(entry.atMs);
  columns[14].push(textArrayLiteral(extra));
}
