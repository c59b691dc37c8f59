// The bench's history step (issue 17): after the switch scenarios, the journal the run wrote is archived
// into a private PostgreSQL by the switch's own Archiver, and then trimmed as if the live window had
// passed. Reported: the archiver's throughput beside the highest payment rate the run measured (it must
// keep up with at least twice that), and Redis's used_memory per journal entry without the archive (what
// the run added) and with it (what is left once the window has passed and the entries are trimmed).
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { ArchiveStore } from '../../switch/history/archive-store.js';
import { Archiver } from '../../switch/history/archiver.js';
import { PostgresMissingError, startLocalPostgres } from '../../switch/history/local-postgres.js';
import type { Keys } from '../../switch/ledger/keys.js';
import { createLogger } from '../../switch/log.js';
import type { ScenarioResult } from './report.js';

const DAY_MS = 86_400_000;
/** The target: the archiver drains at least this many times the run's peak payment rate. */
export const ARCHIVER_KEEP_UP_FACTOR = 2;

export interface HistoryBaseline {
  readonly usedMemoryBytes: number;
  readonly journalEntries: number;
}

export interface HistoryBenchResult {
  readonly available: boolean;
  readonly note: string;
  /** Journal entries the scenarios added (payments, reversals, water, code payments ...). */
  readonly entriesAdded: number;
  /** Every entry archived (the campus's opening entries too). */
  readonly entriesArchived: number;
  readonly archiveSeconds: number;
  readonly archiverEntriesPerSec: number;
  /** The highest approvals/s of any scenario of this run, and which. */
  readonly peakPaymentsPerSec: number;
  readonly peakScenario: string;
  /** archiverEntriesPerSec / peakPaymentsPerSec; the target is >= 2. */
  readonly archiverVsPeak: number | null;
  readonly keepsUp: boolean;
  /** used_memory from before the scenarios to after the ledger check, per entry added (the baselines' keys in that Redis too). */
  readonly redisBytesPerEntryWithoutArchive: number | null;
  /** used_memory each approval added within its own scenario (INFO around each run), approval-weighted over the scenarios. */
  readonly redisBytesPerApprovalInScenarios: number | null;
  /** That minus what archiving and trimming free per entry: an approval's lasting cost with the archive on. */
  readonly redisBytesPerApprovalWithArchive: number | null;
  /** used_memory one entry frees once archived and trimmed (its journal entry and statement line). */
  readonly redisBytesFreedPerEntry: number | null;
  /** What stays per entry after the window with the archive on (request records until REQUEST_TTL_DAYS, claims). */
  readonly redisBytesPerEntryWithArchive: number | null;
  readonly entriesTrimmed: number;
  readonly linesTrimmed: number;
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 'NaN');
}

async function journalEntries(redis: Redis, keys: Keys): Promise<number> {
  const pipeline = redis.pipeline();
  for (let shard = 0; shard < keys.shardCount; shard++) pipeline.xlen(keys.journal(shard));
  return ((await pipeline.exec()) ?? []).reduce((n, [err, len]) => {
    if (err) throw err;
    return n + Number(len);
  }, 0);
}

/** Taken before the scenarios: what Redis held and how many entries the journals had. */
export async function historyBaseline(redis: Redis, keys: Keys): Promise<HistoryBaseline> {
  return { usedMemoryBytes: await usedMemory(redis), journalEntries: await journalEntries(redis, keys) };
}

function peakOf(scenarios: readonly ScenarioResult[]): { rate: number; name: string } {
  let peak = { rate: 0, name: '' };
  for (const s of scenarios) if (s.approvalsPerSec > peak.rate) peak = { rate: s.approvalsPerSec, name: `${s.name} ${s.mode}` };
  return peak;
}

function perApprovalInScenarios(scenarios: readonly ScenarioResult[]): number | null {
  let bytes = 0;
  let approvals = 0;
  for (const s of scenarios) {
    const per = s.redis?.memoryBytesPerApproval;
    // Weighted by approvals: the rate times the measured seconds.
    const count = s.approvalsPerSec * s.durationS;
    if (per === null || per === undefined || count <= 0) continue;
    bytes += per * count;
    approvals += count;
  }
  return approvals > 0 ? bytes / approvals : null;
}

function empty(note: string, peak: { rate: number; name: string }): HistoryBenchResult {
  return {
    available: false,
    note,
    entriesAdded: 0,
    entriesArchived: 0,
    archiveSeconds: 0,
    archiverEntriesPerSec: 0,
    peakPaymentsPerSec: peak.rate,
    peakScenario: peak.name,
    archiverVsPeak: null,
    keepsUp: false,
    redisBytesPerEntryWithoutArchive: null,
    redisBytesPerApprovalInScenarios: null,
    redisBytesPerApprovalWithArchive: null,
    redisBytesFreedPerEntry: null,
    redisBytesPerEntryWithArchive: null,
    entriesTrimmed: 0,
    linesTrimmed: 0,
  };
}

/** Archives the run's journal into a private PostgreSQL, then trims it; the switch is stopped by now. */
export async function runHistoryBench(
  redis: Redis,
  keys: Keys,
  baseline: HistoryBaseline,
  scenarios: readonly ScenarioResult[],
): Promise<HistoryBenchResult> {
  const peak = peakOf(scenarios);
  const root = mkdtempSync(join(tmpdir(), 'cardswitch-bench-pg-'));
  chmodSync(root, 0o711);
  let postgres;
  try {
    postgres = await startLocalPostgres({ dataDir: join(root, 'data'), port: 0, startTimeoutMs: 60_000, database: 'cardswitch' });
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    // No PostgreSQL here (or it would not start): the other figures of the run still count; this says why not.
    if (err instanceof PostgresMissingError) return empty(err.message, peak);
    return empty(`PostgreSQL did not start: ${(err as Error).message}`, peak);
  }
  const store = new ArchiveStore({ url: postgres.url, poolSize: 6, statementTimeoutMs: 120_000 });
  try {
    await store.open(keys.prefix, keys.shardCount);
    const archiver = new Archiver({
      redis,
      keys,
      store,
      log: createLogger('silent'),
      batchSize: 1000,
      intervalMs: 1000,
      liveWindowMs: DAY_MS,
      trim: false,
      // Two days ahead: the trim below treats every entry as past the one-day window.
      now: () => Date.now() + 2 * DAY_MS,
    });
    await archiver.syncPositions();
    const full = await historyBaseline(redis, keys);
    process.stdout.write(`archiving the run's journal (${full.journalEntries} entries) into PostgreSQL ...\n`);
    const startedMs = performance.now();
    const pass = await archiver.runPass();
    const archiveSeconds = (performance.now() - startedMs) / 1000;
    let entriesTrimmed = 0;
    let linesTrimmed = 0;
    for (let shard = 0; shard < keys.shardCount; shard++) {
      const trimmed = await archiver.trimShard(shard);
      entriesTrimmed += trimmed.entries;
      linesTrimmed += trimmed.lines;
    }
    const trimmedMemory = await usedMemory(redis);
    const entriesAdded = full.journalEntries - baseline.journalEntries;
    const archiverEntriesPerSec = pass.archived / archiveSeconds;
    const without = entriesAdded > 0 ? (full.usedMemoryBytes - baseline.usedMemoryBytes) / entriesAdded : null;
    const freed = entriesTrimmed > 0 ? (full.usedMemoryBytes - trimmedMemory) / entriesTrimmed : null;
    const inScenarios = perApprovalInScenarios(scenarios);
    return {
      available: true,
      note: 'a backlog drained after the scenarios (the switch stopped): every shard read per round in one pipeline, up to 1000 entries of many shards per transaction, synchronous_commit on',
      entriesAdded,
      entriesArchived: pass.archived,
      archiveSeconds,
      archiverEntriesPerSec,
      peakPaymentsPerSec: peak.rate,
      peakScenario: peak.name,
      archiverVsPeak: peak.rate > 0 ? archiverEntriesPerSec / peak.rate : null,
      keepsUp: archiverEntriesPerSec >= ARCHIVER_KEEP_UP_FACTOR * peak.rate,
      redisBytesPerEntryWithoutArchive: without,
      redisBytesPerApprovalInScenarios: inScenarios,
      redisBytesPerApprovalWithArchive: inScenarios !== null && freed !== null ? inScenarios - freed : null,
      redisBytesFreedPerEntry: freed,
      redisBytesPerEntryWithArchive: without !== null && freed !== null ? without - freed : null,
      entriesTrimmed,
      linesTrimmed,
    };
  } finally {
    await store.close();
    await postgres.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

export function historyReport(h: HistoryBenchResult | null): string {
  if (h === null) return '';
  if (!h.available) return `\nhistory archive: not measured (${h.note})\n`;
  const bytes = (n: number | null): string => (n === null ? 'n/a' : `${Math.round(n)} B`);
  return [
    '',
    `history archive: ${h.entriesArchived} entries archived in ${h.archiveSeconds.toFixed(2)} s = ${Math.round(h.archiverEntriesPerSec)} entries/s; ` +
      `peak payments ${Math.round(h.peakPaymentsPerSec)}/s (${h.peakScenario}); archiver/peak ${h.archiverVsPeak?.toFixed(2) ?? 'n/a'} ` +
      `(target >= ${ARCHIVER_KEEP_UP_FACTOR}: ${h.keepsUp ? 'met' : 'NOT met'})`,
    `  Redis per approval within its scenario: ${bytes(h.redisBytesPerApprovalInScenarios)} without the archive, ${bytes(h.redisBytesPerApprovalWithArchive)} with it ` +
      `(${bytes(h.redisBytesFreedPerEntry)} per entry freed once archived and past the live window: ${h.entriesTrimmed} entries, ${h.linesTrimmed} statement lines trimmed); ` +
      `whole run per entry (the baselines' keys in the same Redis included): ${bytes(h.redisBytesPerEntryWithoutArchive)} without, ${bytes(h.redisBytesPerEntryWithArchive)} with`,
    '',
  ].join('\n');
}
