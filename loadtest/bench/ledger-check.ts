// After the load: every approval the load generator saw is in the ledger exactly once, and the audit
// (switch/ledger/audit.ts) proves the balances equal their journals and money was conserved.
//
// Exactly once: each shard's journal must hold exactly one `pay` entry per approved (terminal,
// sequence) and nothing else of kind `pay` (the bench ledger is private, so every payment in it came from
// this run); the same for `wpay` entries and approved water debits. Retries are not approvals of their
// own: they must replay the first answer and add no entry. Campus QR payments are `pay` entries like
// taps: each QR approval must be one of them, exactly once, and each must have left exactly one code's
// single-use mark (counted right after its scenario: the marks expire after 180 s). Alipay / WeChat code
// payments are `cpay` entries: each approved one exactly once, each answered pending one too once the
// switch's follow-up has decided it (the bench waits for that; every pending code is scripted to end
// paid), no other `cpay`; their amounts add up to what the payers paid at the simulators, and the payer
// cards' campus balances never moved (nothing else pays with those cards).
//
// Abandoned payments (issue 15): the generator reverses every payment it gave up on, as a POS does
// (settlements.ts). A payment the switch had approved is then explained by its pay (or cpay) entry
// followed by exactly one reversal entry (rev, or cprev for a code payment) of the same key; a reversal
// that came first (tombstoned) must leave no pay or cpay entry of its key. Everything else stays strict:
// an entry that neither a client approval nor a generator reversal explains fails the check.
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

export interface ThirdPartyCheck {
  readonly passed: boolean;
  readonly approvedByClients: number;
  /** Answered OUTCOME_PENDING (decided later by the switch's follow-up). */
  readonly pendingAnswers: number;
  /** `cpay` entries in the journals, and their sum in fen. */
  readonly journalEntries: number;
  readonly journalFen: number;
  /** What the payers paid at the channel simulators (must equal journalFen less what cprev entries gave back). */
  readonly payersDebitedFen: number;
  readonly missing: number;
  readonly duplicated: number;
  readonly unexplained: number;
  readonly approvedTwice: number;
  /** Payments still waiting for the switch's follow-up when the check ran (must be 0). */
  readonly followUpsLeft: number;
  /** The payer cards, and how many of them no longer hold the opening balance (must be 0). */
  readonly payerCards: number;
  readonly payerCardBalancesMoved: number;
  readonly samples: string[];
}

/** What the bench knows of its code payments besides the journals. */
export interface ThirdPartyInput {
  readonly approvals: readonly Float64Array[];
  readonly pending: readonly Float64Array[];
  readonly payersDebitedFen: number;
  readonly followUpsLeft: number;
  readonly payerCardBalancesFen: readonly number[];
  /** The same cards' balances before the first scenario. */
  readonly payerCardBalancesBeforeFen: readonly number[];
}

/** What the generator did with the payments it gave up on (settlements.ts): their keys, pairs per worker. */
export interface SettledInput {
  readonly reversed: readonly Float64Array[];
  readonly tombstoned: readonly Float64Array[];
  /** The campus QR ones of `reversed` (each used its code up: its single-use mark stays). */
  readonly campusQrReversed: readonly Float64Array[];
}

export interface SettledCheck {
  readonly passed: boolean;
  /** Abandoned payments the switch answered REVERSED to the generator's Reverse. */
  readonly reversed: number;
  /** Of those: a pay and a rev entry each (an approved card payment given back). */
  readonly reversedPayEntries: number;
  /** Of those: a cpay and a cprev entry each (an approved code payment given back through its channel). */
  readonly reversedCodePayments: number;
  /** Of those: no entry at all (a code payment reversed before its channel had paid). */
  readonly reversedBeforePaid: number;
  /** Abandoned payments the switch answered TOMBSTONED (the reversal came first). */
  readonly tombstoned: number;
  /** Reversed or tombstoned keys whose entries do not add up (must be 0). */
  readonly problems: number;
  readonly samples: string[];
}

export const NO_SETTLEMENTS: SettledInput = { reversed: [], tombstoned: [], campusQrReversed: [] };

export interface LedgerCheck {
  readonly passed: boolean;
  /** Payments the load generator abandoned and reversed: their entries. */
  readonly settled: SettledCheck;
  readonly payments: ExactlyOnceCheck;
  readonly waterDebits: ExactlyOnceCheck;
  readonly campusQr: CampusQrCheck;
  /** null when no scenario paid with payment codes. */
  readonly thirdParty: ThirdPartyCheck | null;
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

/** Counts `kind` entries per "terminal|sequence" over every shard's journal (and sums their amounts into `fen`). */
async function journalKeys(
  redis: Redis,
  keys: Keys,
  kinds: readonly string[],
  fen: Map<string, number> = new Map(),
): Promise<Map<string, Map<string, number>>> {
  const byKind = new Map(kinds.map((k) => [k, new Map<string, number>()]));
  await forEachShard(keys.shardCount, SHARD_CONCURRENCY, async (shard) => {
    for await (const page of journalPages(redis, keys.journal(shard), { pageSize: JOURNAL_PAGE_SIZE })) {
      for (const [, flat] of page) {
        let kind = '',
          terminal = '',
          sequence = '',
          amount = 0;
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const name = flat[i];
          if (name === 'k') kind = flat[i + 1] ?? '';
          else if (name === 'tm') terminal = flat[i + 1] ?? '';
          else if (name === 'sq') sequence = flat[i + 1] ?? '';
          else if (name === 'a') amount = Number(flat[i + 1]);
        }
        const counts = byKind.get(kind);
        if (counts === undefined) continue;
        fen.set(kind, (fen.get(kind) ?? 0) + amount);
        const key = `${terminal}|${sequence}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
  });
  return byKind;
}

/**
 * `settled`: keys of abandoned payments the generator reversed, whose entries checkSettled accounts for
 * (they are not unexplained here).
 */
function compare(
  campus: CampusFile,
  approvals: readonly Float64Array[],
  journal: Map<string, number>,
  settled: ReadonlySet<string> = new Set(),
): ExactlyOnceCheck {
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
    if (!seen.has(key) && !settled.has(key)) {
      unexplained++;
      sample(`journal entry without a client approval or a generator reversal: ${key}`);
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
  reversedQr: number,
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
  // An approved QR payment the generator abandoned and reversed used its code up too.
  const expectedMarks = approvedByClients + reversedQr;
  if (usedMarks !== expectedMarks && samples.length < MAX_SAMPLES)
    samples.push(`${usedMarks} single-use marks for ${approvedByClients} QR approvals and ${reversedQr} abandoned ones reversed`);
  const passed = missing === 0 && duplicated === 0 && approvedTwice === 0 && usedMarks === expectedMarks;
  return { passed, approvedByClients, inJournalOnce, missing, duplicated, approvedTwice, usedMarks, samples };
}

function keysOf(campus: CampusFile, pairs: readonly Float64Array[]): string[] {
  const out: string[] = [];
  for (const p of pairs)
    for (let i = 0; i + 1 < p.length; i += 2) out.push(`${campus.terminals[p[i] ?? -1]?.id ?? `#${p[i]}`}|${p[i + 1]}`);
  return out;
}

function checkThirdParty(
  campus: CampusFile,
  input: ThirdPartyInput,
  journal: Map<string, number>,
  fen: { readonly journalFen: number; readonly reversedFen: number },
  settled: ReadonlySet<string>,
): ThirdPartyCheck {
  const { journalFen } = fen;
  const samples: string[] = [];
  const sample = (text: string): void => {
    if (samples.length < MAX_SAMPLES) samples.push(text);
  };
  const approved = keysOf(campus, input.approvals);
  const pending = keysOf(campus, input.pending);
  const seen = new Set<string>();
  let missing = 0,
    duplicated = 0,
    approvedTwice = 0;
  for (const key of [...approved, ...pending]) {
    if (seen.has(key)) {
      approvedTwice++;
      sample(`answered twice by the clients: ${key}`);
      continue;
    }
    seen.add(key);
    const entries = journal.get(key) ?? 0;
    if (entries === 0) missing++;
    if (entries > 1) duplicated++;
    if (entries !== 1) sample(`code payment ${key}: ${entries} cpay entries`);
  }
  let unexplained = 0,
    journalEntries = 0;
  for (const [key, count] of journal) {
    journalEntries += count;
    if (!seen.has(key) && !settled.has(key)) {
      unexplained++;
      sample(`cpay entry without a client's approved or pending answer or a generator reversal: ${key}`);
    }
  }
  const moved = input.payerCardBalancesFen.filter((fen, i) => fen !== input.payerCardBalancesBeforeFen[i]).length;
  if (moved > 0) sample(`${moved} payer cards' campus balances moved`);
  // What a reversal gave back (cprev) went back to the payer at the channel too.
  const netFen = journalFen - fen.reversedFen;
  if (netFen !== input.payersDebitedFen)
    sample(`cpay entries ${journalFen} fen less cprev ${fen.reversedFen} fen, payers paid ${input.payersDebitedFen} fen at the channels`);
  if (input.followUpsLeft > 0) sample(`${input.followUpsLeft} code payments still undecided`);
  const passed =
    missing === 0 &&
    duplicated === 0 &&
    unexplained === 0 &&
    approvedTwice === 0 &&
    moved === 0 &&
    input.followUpsLeft === 0 &&
    netFen === input.payersDebitedFen;
  return {
    passed,
    approvedByClients: approved.length,
    pendingAnswers: pending.length,
    journalEntries,
    journalFen,
    payersDebitedFen: input.payersDebitedFen,
    missing,
    duplicated,
    unexplained,
    approvedTwice,
    followUpsLeft: input.followUpsLeft,
    payerCards: input.payerCardBalancesFen.length,
    payerCardBalancesMoved: moved,
    samples,
  };
}

/** The entries of the payments the generator abandoned and reversed (see the head of this file). */
function checkSettled(campus: CampusFile, input: SettledInput, journal: Map<string, Map<string, number>>): SettledCheck {
  const count = (kind: string, key: string): number => journal.get(kind)?.get(key) ?? 0;
  const samples: string[] = [];
  const problem = (text: string): void => {
    problems++;
    if (samples.length < MAX_SAMPLES) samples.push(text);
  };
  let problems = 0,
    reversedPayEntries = 0,
    reversedCodePayments = 0,
    reversedBeforePaid = 0;
  const reversed = keysOf(campus, input.reversed);
  for (const key of reversed) {
    const [pay, rev, cpay, cprev] = [count('pay', key), count('rev', key), count('cpay', key), count('cprev', key)];
    if (pay === 1 && rev === 1 && cpay === 0 && cprev === 0) reversedPayEntries++;
    else if (cpay === 1 && cprev === 1 && pay === 0 && rev === 0) reversedCodePayments++;
    else if (pay + rev + cpay + cprev === 0) reversedBeforePaid++;
    else problem(`abandoned payment ${key} reversed: ${pay} pay, ${rev} rev, ${cpay} cpay, ${cprev} cprev entries`);
  }
  const tombstoned = keysOf(campus, input.tombstoned);
  for (const key of tombstoned) {
    const paid = count('pay', key) + count('cpay', key);
    if (paid > 0) problem(`abandoned payment ${key} tombstoned, yet ${paid} pay or cpay entries`);
  }
  if (new Set([...reversed, ...tombstoned]).size !== reversed.length + tombstoned.length)
    problem('a key was reversed or tombstoned twice by the generator');
  return {
    passed: problems === 0,
    reversed: reversed.length,
    reversedPayEntries,
    reversedCodePayments,
    reversedBeforePaid,
    tombstoned: tombstoned.length,
    problems,
    samples,
  };
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
  thirdPartyInput: ThirdPartyInput | null = null,
  settledInput: SettledInput = NO_SETTLEMENTS,
): Promise<LedgerCheck> {
  const startedMs = Date.now();
  const fen = new Map<string, number>();
  const journal = await journalKeys(redis, keys, ['pay', 'wpay', 'cpay', 'rev', 'cprev'], fen);
  const payJournal = journal.get('pay') ?? new Map<string, number>();
  const settled = checkSettled(campus, settledInput, journal);
  const reversedKeys = new Set(keysOf(campus, settledInput.reversed));
  const payments = compare(campus, approvals, payJournal, reversedKeys);
  const waterDebits = compare(campus, waterApprovals, journal.get('wpay') ?? new Map<string, number>());
  const reversedQr = settledInput.campusQrReversed.reduce((sum, pairs) => sum + pairs.length / 2, 0);
  const qr = checkCampusQr(campus, campusQr.approvals, payJournal, campusQr.usedMarks, reversedQr);
  const cpay = journal.get('cpay') ?? new Map<string, number>();
  const cpayFen = { journalFen: fen.get('cpay') ?? 0, reversedFen: fen.get('cprev') ?? 0 };
  const thirdParty = thirdPartyInput === null ? null : checkThirdParty(campus, thirdPartyInput, cpay, cpayFen, reversedKeys);
  const audit = auditSummary(await auditLedger(redis, keys));
  return {
    passed: payments.passed && waterDebits.passed && qr.passed && settled.passed && (thirdParty?.passed ?? cpay.size === 0) && audit.ok,
    settled,
    payments,
    waterDebits,
    campusQr: qr,
    thirdParty,
    audit,
    elapsedMs: Date.now() - startedMs,
  };
}
