// After the load: every approval the load generator saw is in the ledger exactly once, and the audit
// (switch/ledger/audit.ts) proves the balances equal their journals and money was conserved.
//
// Exactly once: each shard's journal must hold exactly one `pay` entry per approved (terminal,
// sequence) and nothing else of kind `pay` (the bench ledger is private, so every payment in it came from
// this run); the same for `wpay` entries and approved water debits. Retries are not approvals of their
// own: they must replay the first answer and add no entry. Campus QR payments are `pay` entries like
// taps: each QR approval must be one of them, exactly once, and each must have left exactly one code's
// single-use mark (counted right after its scenario: the marks expire after 180 s).
import type { Redis } from 'ioredis';
import { auditLedger, type AuditReport } from '../../switch/ledger/audit.js';
import { forEachShard, journalPages } from '../../switch/ledger/journal.js';
import type { Keys } from '../../switch/ledger/keys.js';
import type { CampusFile } from '../shared/campus-data.js';

const JOURNAL_PAGE_SIZE = 5000;
const SHARD_CONCURRENCY = 4;
const MAX_SAMPLES = 5;

export interface ExactlyOnceCheck {
  readonly passed: boolean;
  /** Approvals the clients saw (retries excluded). */
  readonly approvedByClients: number;
  /** `pay` (or `wpay`) entries in the journals. */
  readonly journalEntries: number;
  /** (terminal, sequence) keys with more than one entry. */
  readonly duplicated: number;
  /** Approvals with no entry. */
  readonly missing: number;
  /** Entries of no approval the clients saw (a request that timed out after the ledger took it). */
  readonly unexplained: number;
  /** The same (terminal, sequence) approved twice by the clients' own count. */
  readonly approvedTwice: number;
  readonly samples: string[];
}

export interface CampusQrCheck {
  readonly passed: boolean;
  /** QR approvals the clients saw (also counted in `payments`). */
  readonly approvedByClients: number;
  /** QR approvals with exactly one `pay` entry. */
  readonly inJournalOnce: number;
  readonly missing: number;
  readonly duplicated: number;
  readonly approvedTwice: number;
  /** Single-use marks of the minted codes found after the qr scenarios: must equal the approvals. */
  readonly usedMarks: number;
  readonly samples: string[];
}

export interface LedgerCheck {
  readonly passed: boolean;
  readonly payments: ExactlyOnceCheck;
  readonly waterDebits: ExactlyOnceCheck;
  readonly campusQr: CampusQrCheck;
  readonly audit: {
    readonly ran: boolean;
    readonly ok: boolean;
    readonly accounts: number;
    readonly journalEntries: number;
    readonly heldFen: number;
    readonly netInflowFen: number;
    readonly problemCount: number;
    readonly problems: string[];
    readonly elapsedMs: number;
  };
  readonly elapsedMs: number;
}

/** Counts `kind` entries per "terminal|sequence" over every shard's journal. */
async function journalKeys(redis: Redis, keys: Keys, kinds: readonly string[]): Promise<Map<string, Map<string, number>>> {
  const byKind = new Map(kinds.map((k) => [k, new Map<string, number>()]));
  await forEachShard(keys.shardCount, SHARD_CONCURRENCY, async (shard) => {
    for await (const page of journalPages(redis, keys.journal(shard), { pageSize: JOURNAL_PAGE_SIZE })) {
      for (const [, flat] of page) {
        let kind = '',
          terminal = '',
          sequence = '';
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const name = flat[i];
          if (name === 'k') kind = flat[i + 1] ?? '';
          else if (name === 'tm') terminal = flat[i + 1] ?? '';
          else if (name === 'sq') sequence = flat[i + 1] ?? '';
        }
        const counts = byKind.get(kind);
        if (counts === undefined) continue;
        const key = `${terminal}|${sequence}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
  });
  return byKind;
}

function compare(campus: CampusFile, approvals: readonly Float64Array[], journal: Map<string, number>): ExactlyOnceCheck {
  const seen = new Set<string>();
  const samples: string[] = [];
  const sample = (text: string): void => {
    if (samples.length < MAX_SAMPLES) samples.push(text);
  };
  let approvedByClients = 0,
    missing = 0,
    approvedTwice = 0;
  for (const pairs of approvals) {
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const terminal = campus.terminals[pairs[i] ?? -1]?.id ?? `#${pairs[i]}`;
      const key = `${terminal}|${pairs[i + 1]}`;
      approvedByClients++;
      if (seen.has(key)) {
        approvedTwice++;
        sample(`approved twice by the clients: ${key}`);
        continue;
      }
      seen.add(key);
      if (!journal.has(key)) {
        missing++;
        sample(`approved but not in the journal: ${key}`);
      }
    }
  }
  let duplicated = 0,
    unexplained = 0,
    journalEntries = 0;
  for (const [key, count] of journal) {
    journalEntries += count;
    if (count > 1) {
      duplicated++;
      sample(`${count} journal entries for ${key}`);
    }
    if (!seen.has(key)) {
      unexplained++;
      sample(`journal entry without a client approval: ${key}`);
    }
  }
  const passed = missing === 0 && duplicated === 0 && unexplained === 0 && approvedTwice === 0;
  return { passed, approvedByClients, journalEntries, duplicated, missing, unexplained, approvedTwice, samples };
}

function checkCampusQr(
  campus: CampusFile,
  approvals: readonly Float64Array[],
  journal: Map<string, number>,
  usedMarks: number,
): CampusQrCheck {
  const seen = new Set<string>();
  const samples: string[] = [];
  let approvedByClients = 0,
    inJournalOnce = 0,
    missing = 0,
    duplicated = 0,
    approvedTwice = 0;
  for (const pairs of approvals) {
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const key = `${campus.terminals[pairs[i] ?? -1]?.id ?? `#${pairs[i]}`}|${pairs[i + 1]}`;
      approvedByClients++;
      if (seen.has(key)) {
        approvedTwice++;
        continue;
      }
      seen.add(key);
      const entries = journal.get(key) ?? 0;
      if (entries === 1) inJournalOnce++;
      else if (entries === 0) missing++;
      else duplicated++;
      if (entries !== 1 && samples.length < MAX_SAMPLES) samples.push(`campus QR approval ${key}: ${entries} pay entries`);
    }
  }
  if (usedMarks !== approvedByClients && samples.length < MAX_SAMPLES)
    samples.push(`${usedMarks} single-use marks for ${approvedByClients} QR approvals`);
  const passed = missing === 0 && duplicated === 0 && approvedTwice === 0 && usedMarks === approvedByClients;
  return { passed, approvedByClients, inJournalOnce, missing, duplicated, approvedTwice, usedMarks, samples };
}

function auditSummary(report: AuditReport): LedgerCheck['audit'] {
  return {
    ran: true,
    ok: report.ok,
    accounts: report.accounts,
    journalEntries: report.journalEntries,
    heldFen: report.heldFen,
    netInflowFen: report.netInflowFen,
    problemCount: report.problemCount,
    problems: report.problems.slice(0, MAX_SAMPLES).map((p) => `${p.kind}: ${p.message}`),
    elapsedMs: report.elapsedMs,
  };
}

/** Read-only; run it after the load has stopped. */
export async function checkLedger(
  redis: Redis,
  keys: Keys,
  campus: CampusFile,
  approvals: readonly Float64Array[],
  waterApprovals: readonly Float64Array[],
  campusQr: { readonly approvals: readonly Float64Array[]; readonly usedMarks: number } = { approvals: [], usedMarks: 0 },
): Promise<LedgerCheck> {
  const startedMs = Date.now();
  const journal = await journalKeys(redis, keys, ['pay', 'wpay']);
  const payJournal = journal.get('pay') ?? new Map<string, number>();
  const payments = compare(campus, approvals, payJournal);
  const waterDebits = compare(campus, waterApprovals, journal.get('wpay') ?? new Map<string, number>());
  const qr = checkCampusQr(campus, campusQr.approvals, payJournal, campusQr.usedMarks);
  const audit = auditSummary(await auditLedger(redis, keys));
  return {
    passed: payments.passed && waterDebits.passed && qr.passed && audit.ok,
    payments,
    waterDebits,
    campusQr: qr,
    audit,
    elapsedMs: Date.now() - startedMs,
  };
}
