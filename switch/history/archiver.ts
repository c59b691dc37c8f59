// The archiver: copies every shard journal into PostgreSQL exactly once, then trims Redis to the live
// window. Per shard it reads the stream after the archived position (kept in PostgreSQL, in the same
// transaction as the rows: archive-store.ts writeBatch), writes one batch, and only then tells Redis how
// far the archive reaches (`Keys.journalArchived`). A trim (lua/journal-trim.lua) never passes that,
// so while the archiver is behind (PostgreSQL down, the process killed) nothing unarchived leaves Redis.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { compareStreamIds, formatStreamId, parseStreamId, STREAM_ID_ZERO, type StreamId } from '../ledger/history-reads.js';
import { expandJournalRow, forEachShard, type RawStreamEntry } from '../ledger/journal.js';
import type { Keys } from '../ledger/keys.js';
import type { Logger } from '../log.js';
import { ReplicaWait } from '../redis/replica-wait.js';
import { ArchivePositionMovedError, MAX_ARCHIVE_BATCH, type ArchiveBatch, type ArchiveStore } from './archive-store.js';

const TRIM_SCRIPT = readFileSync(fileURLToPath(new URL('./lua/journal-trim.lua', import.meta.url)), 'utf8');
/** Journal entries one trim call removes at most (and reads first, to name their cards' statements). */
const TRIM_BATCH = 1000;
/** Statement lines of one card one trim call removes at most. */
const TRIM_MAX_LINES_PER_CARD = 10_000;
/**
 * A statement line's time is the switch's clock, its entry's id Redis's: a line may be up to this much later
 * than its entry (as the settlement report allows, domain/reports.ts). A trim removes the lines of the entries
 * it removes up to this much younger than the cutoff: only entries of the trimmed cards are looked at, so a
 * line kept past its entry's trim stays in Redis for good when its card is not used again.
 */
const LINE_CLOCK_SKEW_MS = 10 * 60 * 1000;
/** Shards worked on at once (each holds one PostgreSQL connection while it writes). */
const SHARD_CONCURRENCY = 4;
/** Archive transactions in flight at once, each of other shards than the others. */
const GROUP_CONCURRENCY = 2;
/** Back-off after a failed pass (PostgreSQL or Redis down), doubled up to the maximum. */
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 10_000;

export interface ArchiverOptions {
  readonly redis: Redis;
  readonly keys: Keys;
  readonly store: ArchiveStore;
  readonly log: Logger;
  /** Entries per archive transaction (1..2000). */
  readonly batchSize: number;
  /** Rest between passes when every shard is caught up. */
  readonly intervalMs: number;
  /** Journal entries and statement lines younger than this stay in Redis. */
  readonly liveWindowMs: number;
  /** Trim Redis after archiving (false: archive only). */
  readonly trim: boolean;
  readonly now: () => number;
  /**
   * The durable mode (LEDGER_DURABILITY=replica, the switch's LEDGER_WAIT_TIMEOUT_MS): an entry is archived
   * only once a replica of its primary holds it. Undefined: archived as soon as the primary has it.
   */
  readonly replicaWaitTimeoutMs?: number;
}

/** The entries read are no longer in the ledger (its primary changed under the archiver): nothing is archived. */
export class JournalMovedError extends Error {
  override readonly name = 'JournalMovedError';
}

export interface PassReport {
  /** Rows inserted (a row already archived is not counted). */
  archived: number;
  entriesTrimmed: number;
  linesTrimmed: number;
}

type TrimCommand = (numKeys: number, ...args: (string | number)[]) => Promise<[entries: number, lines: number, mark: string]>;

function sameFields(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

/** Shards' batches in groups of at most `maxRows` rows; a shard's batch is never split. */
function groupBatches(batches: readonly ArchiveBatch[], maxRows: number): ArchiveBatch[][] {
  const groups: ArchiveBatch[][] = [];
  let current: ArchiveBatch[] = [];
  let rows = 0;
  for (const batch of batches) {
    if (rows + batch.rows.length > maxRows && current.length > 0) {
      groups.push(current);
      current = [];
      rows = 0;
    }
    current.push(batch);
    rows += batch.rows.length;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

export class Archiver {
  private readonly positions = new Map<number, StreamId>();
  private running: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly trimCommand: TrimCommand;
  private readonly replicaWait: ReplicaWait | undefined;

  constructor(private readonly options: ArchiverOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1 || options.batchSize > MAX_ARCHIVE_BATCH)
      throw new RangeError(`archive batch size must be 1..${MAX_ARCHIVE_BATCH}, got ${options.batchSize}`);
    const redis = options.redis as Redis & { cardswitchJournalTrim?: TrimCommand };
    // defineCommand: EVALSHA with the script body sent again after NOSCRIPT (a Redis restart).
    if (redis.cardswitchJournalTrim === undefined) redis.defineCommand('cardswitchJournalTrim', { lua: TRIM_SCRIPT });
    this.trimCommand = (redis as Redis & { cardswitchJournalTrim: TrimCommand }).cardswitchJournalTrim.bind(redis);
    // Its own WAITs on its own connection (per primary in a cluster): WAIT counts the writes of the connection it is sent on.
    this.replicaWait =
      options.replicaWaitTimeoutMs === undefined ? undefined : new ReplicaWait(options.redis, undefined, options.replicaWaitTimeoutMs);
  }

  /**
   * The durable mode: returns once a replica holds every row of `batches`, so the archive never takes an
   * entry a failover then loses. Such an entry's payment was answered UNAVAILABLE (the switch waits for a
   * replica too), and the POS's retry writes it again on the promoted primary under a new id: archived as
   * well, the payment would be in the archive twice. Each batch's shard gets a fence write (INCR) on the
   * archiver's connection, after the read, and WAIT confirms a replica has it, hence everything its primary
   * wrote before, the entries read included. A WAIT sent after a failover, on the new primary's connection,
   * would count that primary's replica for nothing this connection wrote there; so each batch's last entry
   * is then looked up on the primary: it holds the batch when it holds that entry, the same id with the same
   * fields (a primary replicates in order; an id alone is not enough, as a promoted primary may have written
   * another entry under it).
   * Throws ReplicaWaitError (no replica in time) or JournalMovedError; nothing is archived, the pass retries.
   */
  private async confirmReplicated(batches: readonly ArchiveBatch[]): Promise<void> {
    const wait = this.replicaWait;
    if (wait === undefined || batches.length === 0) return;
    const { redis, keys } = this.options;
    await Promise.all(
      batches.map(async ({ shard }) => {
        const fence = keys.journalArchiveFence(shard);
        await redis.incr(fence);
        await wait.afterWrite(fence);
      }),
    );
    await Promise.all(
      batches.map(async ({ shard, rows }) => {
        const [lastId, lastFields] = rows[rows.length - 1] as RawStreamEntry;
        const found = (await redis.xrange(keys.journal(shard), lastId, lastId)) as RawStreamEntry[];
        const there = found[0] === undefined ? undefined : expandJournalRow(found[0]);
        if (there === undefined)
          throw new JournalMovedError(
            `journal entry ${lastId} of shard ${shard} is no longer in the ledger (its primary failed over before a replica had it): not archived; read again from the archived position`,
          );
        // Stream ids are times: a promoted replica whose clock is behind the old primary's can write another
        // entry under the lost one's id. Only the same entry (every field, in order) confirms the batch.
        if (!sameFields(there[1], lastFields))
          throw new JournalMovedError(
            `journal entry ${lastId} of shard ${shard} is another entry in the ledger now than the one read (its primary failed over before a replica had it, and the new primary wrote another entry under that id): not archived; read again from the archived position`,
          );
      }),
    );
  }

  /**
   * Reads every shard's archived position from PostgreSQL and writes it to Redis, so Redis never
   * claims more than the archive holds (after a restore of an older PostgreSQL backup it claims less:
   * nothing more is trimmed until the archive has caught up again).
   */
  async syncPositions(): Promise<void> {
    const { keys, redis, store } = this.options;
    const stored = await store.positions(keys.shardCount);
    this.positions.clear();
    stored.forEach((position, shard) => this.positions.set(shard, position));
    await forEachShard(keys.shardCount, SHARD_CONCURRENCY, async (shard) => {
      const position = stored[shard] ?? STREAM_ID_ZERO;
      if (position.ms === 0 && position.seq === 0) await redis.del(keys.journalArchived(shard));
      else await redis.set(keys.journalArchived(shard), formatStreamId(position));
    });
  }

  /** Archives one shard until it is caught up (or `maxBatches` were written); returns the rows inserted. */
  async archiveShard(shard: number, maxBatches = Number.MAX_SAFE_INTEGER): Promise<number> {
    const { redis, keys, store, batchSize } = this.options;
    let inserted = 0;
    for (let batch = 0; batch < maxBatches && !this.stopped; batch++) {
      let position = this.positions.get(shard);
      if (position === undefined) {
        position = await store.position(shard);
        this.positions.set(shard, position);
      }
      const rows = (
        (await redis.xrange(keys.journal(shard), `(${formatStreamId(position)}`, '+', 'COUNT', batchSize)) as RawStreamEntry[]
      ).map(expandJournalRow);
      if (rows.length === 0) return inserted;
      const last = parseStreamId((rows[rows.length - 1] as RawStreamEntry)[0]);
      await this.confirmReplicated([{ shard, after: position, rows }]);
      try {
        inserted += await store.writeBatch(shard, position, rows);
      } catch (err) {
        // Another archiver moved it: start again from what PostgreSQL holds (its rows are not counted here).
        if (err instanceof ArchivePositionMovedError) {
          this.positions.set(shard, err.stored);
          continue;
        }
        this.positions.delete(shard);
        throw err;
      }
      this.positions.set(shard, last);
      // After COMMIT only: Redis's copy of the position may lag PostgreSQL's, never lead it.
      await redis.set(keys.journalArchived(shard), formatStreamId(last));
      if (rows.length < batchSize) return inserted;
    }
    return inserted;
  }

  /** Removes the shard's entries and statement lines older than the live window that are archived. */
  async trimShard(shard: number): Promise<{ entries: number; lines: number }> {
    const { redis, keys, now, liveWindowMs } = this.options;
    const cutoffMs = now() - liveWindowMs;
    if (cutoffMs <= 0) return { entries: 0, lines: 0 };
    const archivedText = await redis.get(keys.journalArchived(shard));
    if (archivedText === null) return { entries: 0, lines: 0 };
    const archived = parseStreamId(archivedText);
    let entries = 0;
    let lines = 0;
    while (!this.stopped) {
      // The oldest entries: those older than the cutoff and archived are this call's.
      const oldest = ((await redis.xrange(keys.journal(shard), '-', `${cutoffMs - 1}`, 'COUNT', TRIM_BATCH)) as RawStreamEntry[]).map(
        expandJournalRow,
      );
      const eligible = oldest.filter(([id]) => compareStreamIds(parseStreamId(id), archived) <= 0);
      if (eligible.length === 0) break;
      const lastId = parseStreamId((eligible[eligible.length - 1] as RawStreamEntry)[0]);
      const cards = new Set<string>();
      for (const [, fields] of eligible) {
        const at = fields.indexOf('c');
        if (at >= 0 && at % 2 === 0 && fields[at + 1] !== undefined) cards.add(fields[at + 1] as string);
      }
      const statementKeys = [...cards].map((cardNo) => keys.statement(cardNo));
      const [removed, removedLines] = await this.trimCommand(
        3 + statementKeys.length,
        keys.journal(shard),
        keys.journalArchived(shard),
        keys.journalTrimMark(shard),
        ...statementKeys,
        formatStreamId({ ms: lastId.ms, seq: lastId.seq + 1 }),
        cutoffMs + LINE_CLOCK_SKEW_MS,
        TRIM_MAX_LINES_PER_CARD,
      );
      entries += removed;
      lines += removedLines;
      if (eligible.length < oldest.length || oldest.length < TRIM_BATCH || removed === 0) break;
    }
    return { entries, lines };
  }

  /**
   * Archives every shard until all are caught up: one pipelined XRANGE per round reads up to a batch
   * from each shard after its position, and the shards' batches are written together, up to
   * `batchSize` rows per transaction (one COMMIT, one fsync, for many shards). Returns the rows inserted.
   */
  async archiveAll(): Promise<number> {
    const { redis, keys, store, batchSize } = this.options;
    let inserted = 0;
    for (;;) {
      if (this.stopped) return inserted;
      // At the start, and after a failed or refused write (the positions were dropped): PostgreSQL's.
      if (this.positions.size < keys.shardCount) {
        const stored = await store.positions(keys.shardCount);
        stored.forEach((position, shard) => this.positions.set(shard, position));
      }
      // One command per shard, all sent at once (not a pipeline: on a Redis Cluster the shards' keys live in
      // different slots, and a cluster client refuses a pipeline across slots).
      const replies = await Promise.all(
        Array.from(
          { length: keys.shardCount },
          (_, shard) =>
            redis.xrange(
              keys.journal(shard),
              `(${formatStreamId(this.positions.get(shard) ?? STREAM_ID_ZERO)}`,
              '+',
              'COUNT',
              batchSize,
            ) as Promise<RawStreamEntry[]>,
        ),
      );
      const batches: ArchiveBatch[] = [];
      let full = false;
      replies.forEach((page, shard) => {
        if (page.length === batchSize) full = true;
        if (page.length > 0) batches.push({ shard, after: this.positions.get(shard) ?? STREAM_ID_ZERO, rows: page.map(expandJournalRow) });
      });
      if (batches.length === 0) return inserted;
      await this.confirmReplicated(batches);
      // Two transactions at once, each of its own shards (their position rows never the same): PostgreSQL
      // inserts one while the other commits, 1.35-1.4x the entries/s of one at a time (loadtest/RESULTS.md,
      // sixteenth session). A failed one clears the positions; the next round reads them from PostgreSQL.
      const groups = groupBatches(batches, batchSize);
      await forEachShard(groups.length, GROUP_CONCURRENCY, async (i) => {
        const written = await this.writeGroup(groups[i] as ArchiveBatch[]);
        inserted += written;
      });
      if (!full) return inserted;
    }
  }

  /** One transaction of several shards' batches, then Redis told how far each shard is archived. */
  private async writeGroup(group: readonly ArchiveBatch[]): Promise<number> {
    const { redis, keys, store } = this.options;
    let inserted: number;
    try {
      inserted = await store.writeBatches(group);
    } catch (err) {
      // Another archiver moved a position, or PostgreSQL failed: read the positions again next round.
      this.positions.clear();
      if (err instanceof ArchivePositionMovedError) return 0;
      throw err;
    }
    // After COMMIT only: Redis's copy of the position may lag PostgreSQL's, never lead it. One SET per shard,
    // sent at once (each in its shard's slot, so this works on a Redis Cluster too).
    await Promise.all(
      group.map((batch) => {
        const last = parseStreamId((batch.rows[batch.rows.length - 1] as RawStreamEntry)[0]);
        this.positions.set(batch.shard, last);
        return redis.set(keys.journalArchived(batch.shard), formatStreamId(last));
      }),
    );
    return inserted;
  }

  /** One pass: archive what is new in every shard, then trim. */
  async runPass(): Promise<PassReport> {
    const report: PassReport = { archived: await this.archiveAll(), entriesTrimmed: 0, linesTrimmed: 0 };
    if (!this.options.trim) return report;
    // Before each trim, Redis is told again how far PostgreSQL reaches NOW: it can go back while this process
    // runs (an older backup restored, a standby promoted before the last commits reached it), and then the
    // positions this archiver remembers, and `jarch` in Redis, claim entries PostgreSQL no longer holds. A trim
    // by those would remove them from Redis too, gone from both stores; this way they stay and are archived
    // again from PostgreSQL's position (test/history-archive.test.ts).
    await this.syncPositions();
    await forEachShard(this.options.keys.shardCount, SHARD_CONCURRENCY, async (shard) => {
      const trimmed = await this.trimShard(shard);
      report.entriesTrimmed += trimmed.entries;
      report.linesTrimmed += trimmed.lines;
    });
    return report;
  }

  /** Runs passes until stop(): resting `intervalMs` when caught up, backing off after a failure. */
  start(): void {
    if (this.running !== undefined) return;
    this.stopped = false;
    this.running = this.loop();
  }

  private async loop(): Promise<void> {
    const { log, intervalMs } = this.options;
    let retryMs = RETRY_MIN_MS;
    let synced = false;
    while (!this.stopped) {
      let restMs = intervalMs;
      try {
        if (!synced) {
          await this.syncPositions();
          synced = true;
        }
        const report = await this.runPass();
        if (report.archived > 0 || report.entriesTrimmed > 0) log.debug({ report }, 'archiver pass');
        retryMs = RETRY_MIN_MS;
        if (report.archived > 0) restMs = 0;
      } catch (err) {
        log.warn({ err: (err as Error).message, retryMs }, 'archiver pass failed; nothing is trimmed until the archive has caught up');
        restMs = retryMs;
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
      if (restMs > 0 && !this.stopped)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, restMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      this.wake = undefined;
    }
  }

  /** Lets the pass under way finish its transaction, then stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    this.running = undefined;
  }
}
