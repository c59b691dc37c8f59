// The bulk reads behind statements, settlement reports and the audit, reached from the domain with its
// ledger access: the reads themselves (statement.ts, journal.ts, audit.ts) take a standalone ioredis
// connection (their SCAN and XRANGE pages are not Redis Cluster reads), which is the scripts' client;
// the domain never names it. With an archive (history/) configured, each read spans it and Redis
// (history-reads.ts): what a trim removed from Redis is read from the archive.
import type { Redis } from 'ioredis';
import type { LedgerAccess } from './access.js';
import { auditLedger, type AuditOptions, type AuditReport } from './audit.js';
import { mergedJournalEntry, mergedJournalPages, mergedStatementPage } from './history-reads.js';
import type { JournalEntry, JournalRange, RawStreamEntry } from './journal.js';
import type { StatementPageRequest, StatementPageResult } from './statement.js';

/** The scripts' connection, which these reads need to be one standalone Redis (asserted: a Cluster would read a part). */
function standaloneClient(ledger: LedgerAccess): Redis {
  const client = ledger.scripts.client;
  if (client.isCluster)
    throw new Error('statements, journal pages and the audit read one standalone Redis; this ledger connection is a Redis Cluster');
  return client as Redis;
}

/** One page of a card's statement index, newest first (statement.ts). */
export function cardStatementPage(ledger: LedgerAccess, cardNo: string, request: StatementPageRequest): Promise<StatementPageResult> {
  return mergedStatementPage(standaloneClient(ledger), ledger.keys, cardNo, request, ledger.archive);
}

/** One journal entry of a card by id, from Redis or (trimmed) from the archive. */
export function cardJournalEntry(ledger: LedgerAccess, cardNo: string, transactionId: string): Promise<JournalEntry | undefined> {
  return mergedJournalEntry(standaloneClient(ledger), ledger.keys, cardNo, transactionId, ledger.archive);
}

/** The raw rows of one shard's journal, oldest first, one bounded page at a time (journal.ts). */
export function shardJournalPages(ledger: LedgerAccess, shard: number, range: JournalRange): AsyncGenerator<RawStreamEntry[]> {
  return mergedJournalPages(standaloneClient(ledger), ledger.keys, shard, range, ledger.archive);
}

/** The conservation audit of every account and journal (audit.ts). */
export function auditWholeLedger(ledger: LedgerAccess, options: AuditOptions): Promise<AuditReport> {
  return auditLedger(standaloneClient(ledger), ledger.keys, options, ledger.archive);
}
