// KioskService/Statement, AdminService/CardStatement, SettlementReport and Audit: validate, call the
// reports domain or the ledger audit, map the result. Nothing here changes money.
import type { handleUnaryCall } from '@grpc/grpc-js';
import { StatementKind, type StatementLine, type StatementPage, type StatementQuery } from '../../proto/gen/cardswitch/v1/common.js';
import type { StatementRequest, StatementResponse } from '../../proto/gen/cardswitch/v1/kiosk.js';
import type {
  AuditRequest,
  AuditResponse,
  CardStatementRequest,
  CardStatementResponse,
  SettlementReportRequest,
  SettlementReportResponse,
  TerminalTotal,
} from '../../proto/gen/cardswitch/v1/admin.js';
import type { SwitchContext } from '../context.js';
import { requireCardPassword } from '../domain/card-password.js';
import { checkCardNumber, resolveCardholder } from '../domain/cardholder.js';
import {
  auditSwitchLedger,
  settlementReport,
  StatementReader,
  type StatementCategory,
  type StatementEntry,
  type StatementQueryInput,
  type StatementResult,
  type TerminalTakings,
} from '../domain/reports.js';
import { AuditCancelledError, type AuditReport } from '../ledger/audit.js';
import { JournalReadCancelledError } from '../ledger/journal.js';
import { DEFAULT_STATEMENT_PAGE_SIZE, MAX_STATEMENT_PAGE_SIZE } from '../ledger/statement.js';
import { CancelledError, InvalidArgumentError, NotFoundError, ResourceExhaustedError } from './errors.js';
import { callingTerminal, unary, type CallContext } from './unary.js';

const CATEGORY_OF_PROTO: ReadonlyMap<StatementKind, StatementCategory> = new Map([
  [StatementKind.STATEMENT_KIND_PAYMENT, 'payment'],
  [StatementKind.STATEMENT_KIND_RECHARGE, 'recharge'],
  [StatementKind.STATEMENT_KIND_REFUND, 'refund'],
  [StatementKind.STATEMENT_KIND_REVERSAL, 'reversal'],
  [StatementKind.STATEMENT_KIND_WATER, 'water'],
  [StatementKind.STATEMENT_KIND_FEE, 'fee'],
  [StatementKind.STATEMENT_KIND_ADJUSTMENT, 'adjustment'],
]);

const PROTO_OF_CATEGORY: Readonly<Record<StatementCategory, StatementKind>> = {
  payment: StatementKind.STATEMENT_KIND_PAYMENT,
  recharge: StatementKind.STATEMENT_KIND_RECHARGE,
  refund: StatementKind.STATEMENT_KIND_REFUND,
  reversal: StatementKind.STATEMENT_KIND_REVERSAL,
  water: StatementKind.STATEMENT_KIND_WATER,
  fee: StatementKind.STATEMENT_KIND_FEE,
  adjustment: StatementKind.STATEMENT_KIND_ADJUSTMENT,
};

/** More than every kind twice over is not a filter a client means. */
const MAX_QUERY_KINDS = 16;
/** The audit reads every journal; two at once would only slow both (and the switch). */
let auditRunning = false;

function checkTimeBound(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(`${field} must be milliseconds since the epoch (>= 0, 0 = unbounded), got ${value}`);
  return value;
}

/** Validates a StatementQuery where it enters; an absent query means the newest 20 lines. */
export function checkStatementQuery(query: StatementQuery | undefined): StatementQueryInput {
  const fromMs = checkTimeBound(query?.fromMs ?? 0, 'query.from_ms');
  const toMs = checkTimeBound(query?.toMs ?? 0, 'query.to_ms');
  if (fromMs > 0 && toMs > 0 && fromMs >= toMs) throw new InvalidArgumentError(`query.from_ms ${fromMs} must be before query.to_ms ${toMs}`);
  const requested = query?.pageSize ?? 0;
  if (!Number.isInteger(requested) || requested < 0 || requested > MAX_STATEMENT_PAGE_SIZE) {
    throw new InvalidArgumentError(`query.page_size must be 1..${MAX_STATEMENT_PAGE_SIZE} (0 = ${DEFAULT_STATEMENT_PAGE_SIZE}), got ${requested}`);
  }
  const kinds = query?.kinds ?? [];
  if (kinds.length > MAX_QUERY_KINDS) throw new InvalidArgumentError(`query.kinds may list at most ${MAX_QUERY_KINDS} kinds`);
  const categories = new Set<StatementCategory>();
  for (const kind of kinds) {
    const category = CATEGORY_OF_PROTO.get(kind);
    if (category === undefined) throw new InvalidArgumentError(`query.kinds holds ${String(kind)}, which is not a statement kind (1..7)`);
    categories.add(category);
  }
  return { fromMs, toMs, categories, pageSize: requested === 0 ? DEFAULT_STATEMENT_PAGE_SIZE : requested, pageToken: query?.pageToken ?? '' };
}

function lineToProto(line: StatementEntry): StatementLine {
  return {
    transactionId: line.transactionId,
    kind: PROTO_OF_CATEGORY[line.category],
    amountFen: line.amountFen,
    balanceAfterFen: line.balanceAfterFen,
    atMs: line.atMs,
    merchant: line.merchantId,
    location: line.location,
    terminalId: line.terminalId,
    description: line.description,
  };
}

function pageToProto(result: StatementResult): StatementPage {
  return { lines: result.lines.map(lineToProto), nextPageToken: result.nextPageToken };
}

export function kioskStatementHandler(ctx: SwitchContext): handleUnaryCall<StatementRequest, StatementResponse> {
  const reader = new StatementReader(ctx);
  return unary(ctx, 'Statement', async (req: StatementRequest, call) => {
    const query = checkStatementQuery(req.query);
    const { cardNo } = await resolveCardholder(ctx, req.cardholder);
    await requireCardPassword(ctx, cardNo, req.password, { terminalId: callingTerminal(call).id });
    // '' serial: reading a statement is not a card sync.
    const card = await ctx.ledger.inquire(cardNo, '');
    if (card.code === 'unknown_card') throw new NotFoundError(`card ${cardNo} does not exist`);
    const page = await reader.read(cardNo, query);
    return { page: pageToProto(page), balanceFen: card.balanceFen };
  });
}

export function cardStatementHandler(ctx: SwitchContext): handleUnaryCall<CardStatementRequest, CardStatementResponse> {
  const reader = new StatementReader(ctx);
  return unary(ctx, 'CardStatement', async (req: CardStatementRequest) => {
    const cardNo = checkCardNumber(req.cardNumber);
    const query = checkStatementQuery(req.query);
    if ((await ctx.redis.exists(ctx.keys.account(cardNo))) !== 1) throw new NotFoundError(`card ${cardNo} does not exist`);
    return { page: pageToProto(await reader.read(cardNo, query)) };
  });
}

function totalToProto(t: TerminalTakings): TerminalTotal {
  return { terminalId: t.terminalId, payments: t.payments, paidFen: t.paidFen, refunds: t.refunds, refundedFen: t.refundedFen, netFen: t.netFen };
}

/**
 * A report or audit stopped between pages because the caller cancelled or its deadline passed. The
 * caller never sees this status; INVALID_ARGUMENT keeps it out of the error log (errors.ts has no
 * CANCELLED mapping).
 */
function stoppedEarly(err: unknown): boolean {
  return err instanceof JournalReadCancelledError || err instanceof AuditCancelledError;
}

export function settlementReportHandler(ctx: SwitchContext): handleUnaryCall<SettlementReportRequest, SettlementReportResponse> {
  return unary(ctx, 'SettlementReport', async (req: SettlementReportRequest, call: CallContext) => {
    if (req.merchantId === '') throw new InvalidArgumentError('merchant_id is required');
    try {
      const report = await settlementReport(ctx, req.merchantId, req.day, { cancelled: call.cancelled });
      return { merchantId: report.merchantId, day: report.day, terminals: report.terminals.map(totalToProto), total: totalToProto(report.total) };
    } catch (err) {
      if (stoppedEarly(err)) throw new CancelledError('the call was cancelled or its deadline passed before the report was complete');
      throw err;
    }
  });
}

export function auditResponse(report: AuditReport): AuditResponse {
  const problems = report.problems.map((p) => p.message);
  if (report.problemCount > report.problems.length) problems.push(`... and ${report.problemCount - report.problems.length} more problem(s) not listed`);
  return {
    ok: report.ok,
    accounts: report.accounts,
    journalEntries: report.journalEntries,
    heldFen: report.heldFen,
    netInflowFen: report.netInflowFen,
    problems,
  };
}

export function auditHandler(ctx: SwitchContext): handleUnaryCall<AuditRequest, AuditResponse> {
  return unary(ctx, 'Audit', async (_req: AuditRequest, call: CallContext) => {
    if (auditRunning) throw new ResourceExhaustedError('an audit is already running on this switch; wait for it to finish and ask again');
    auditRunning = true;
    try {
      const report = await auditSwitchLedger(ctx, { cancelled: call.cancelled });
      const log = report.ok ? ctx.log.info.bind(ctx.log) : ctx.log.error.bind(ctx.log);
      log({ accounts: report.accounts, entries: report.journalEntries, heldFen: report.heldFen, problems: report.problemCount, elapsedMs: report.elapsedMs }, report.ok ? 'audit: ledger sound' : 'audit: ledger NOT sound');
      return auditResponse(report);
    } catch (err) {
      if (stoppedEarly(err)) throw new CancelledError('the call was cancelled or its deadline passed before the audit was complete');
      throw err;
    } finally {
      auditRunning = false;
    }
  });
}
