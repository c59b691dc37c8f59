// The bulk reads behind statements, settlement reports and the audit, reached from the domain with the
// switch context: the reads themselves (statement.ts, journal.ts, audit.ts) take a standalone ioredis
// connection (their SCAN and XRANGE pages are not Redis Cluster reads), which the context carries and
// the domain never names.
import type { SwitchContext } from '../context.js';
import { auditLedger, type AuditOptions, type AuditReport } from './audit.js';
import { journalPages, type JournalRange, type RawStreamEntry } from './journal.js';
import { readStatementPage, type StatementPageRequest, type StatementPageResult } from './statement.js';

type ReadContext = Pick<SwitchContext, 'redis' | 'keys'>;

/** One page of a card's statement index, newest first (statement.ts). */
export function cardStatementPage(ctx: ReadContext, cardNo: string, request: StatementPageRequest): Promise<StatementPageResult> {
  return readStatementPage(ctx.redis, ctx.keys, cardNo, request);
}

/** The raw rows of one shard's journal, oldest first, one bounded page at a time (journal.ts). */
export function shardJournalPages(ctx: ReadContext, shard: number, range: JournalRange): AsyncGenerator<RawStreamEntry[]> {
  return journalPages(ctx.redis, ctx.keys.journal(shard), range);
}

/** The conservation audit of every account and journal (audit.ts). */
export function auditWholeLedger(ctx: ReadContext, options: AuditOptions): Promise<AuditReport> {
  return auditLedger(ctx.redis, ctx.keys, options);
}
