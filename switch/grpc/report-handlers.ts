// KioskService/Statement, AdminService/CardStatement, SettlementReport and Audit: validate, call one
// function of the domain (kiosk.ts, reports.ts), map the result. Nothing here changes money.
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
import { checkCardNumber } from '../domain/cardholder.js';
import { statementAtKiosk } from '../domain/kiosk.js';
import {
  auditSwitchLedger,
  cardStatement,
  DEFAULT_STATEMENT_PAGE_SIZE,
  MAX_STATEMENT_PAGE_SIZE,
  settlementReport,
  type StatementReader,
  type StatementCategory,
  type StatementEntry,
  type StatementQueryInput,
  type StatementResult,
  type TerminalTakings,
} from '../domain/reports.js';
import type { AuditReport } from '../ledger/audit.js';
import { kioskCardholder } from './kiosk-cardholder.js';
import { InvalidArgumentError } from './errors.js';
import { unary, type CallContext } from './unary.js';

const CATEGORY_OF_PROTO: ReadonlyMap<StatementKind, StatementCategory> = new Map([
  [StatementKind.STATEMENT_KIND_PAYMENT, 'payment'],
  [StatementKind.STATEMENT_KIND_RECHARGE, 'recharge'],
  [StatementKind.STATEMENT_KIND_REFUND, 'refund'],
  [StatementKind.STATEMENT_KIND_REVERSAL, 'reversal'],
  [StatementKind.STATEMENT_KIND_WATER, 'water'],
  [StatementKind.STATEMENT_KIND_FEE, 'fee'],
  [StatementKind.STATEMENT_KIND_ADJUSTMENT, 'adjustment'],
  [StatementKind.STATEMENT_KIND_CHANNEL_PAYMENT, 'channel_payment'],
]);

const PROTO_OF_CATEGORY: Readonly<Record<StatementCategory, StatementKind>> = {
  payment: StatementKind.STATEMENT_KIND_PAYMENT,
  recharge: StatementKind.STATEMENT_KIND_RECHARGE,
  refund: StatementKind.STATEMENT_KIND_REFUND,
  reversal: StatementKind.STATEMENT_KIND_REVERSAL,
  water: StatementKind.STATEMENT_KIND_WATER,
  fee: StatementKind.STATEMENT_KIND_FEE,
  adjustment: StatementKind.STATEMENT_KIND_ADJUSTMENT,
  channel_payment: StatementKind.STATEMENT_KIND_CHANNEL_PAYMENT,
};

/** The kinds a query may name: every StatementKind but UNSPECIFIED (0) and ts-proto's UNRECOGNIZED (-1). */
const QUERY_KINDS = Object.values(StatementKind).filter(
  (v): v is StatementKind => typeof v === 'number' && v > StatementKind.STATEMENT_KIND_UNSPECIFIED,
);
/** For the refusal's text, so a kind added to the proto shows without editing it. */
const QUERY_KIND_RANGE = `${Math.min(...QUERY_KINDS)}..${Math.max(...QUERY_KINDS)}`;
// A kind added to the proto without a category would be refused as unknown: stop at start-up instead.
for (const kind of QUERY_KINDS) {
  if (!CATEGORY_OF_PROTO.has(kind)) throw new Error(`StatementKind ${kind} has no statement category in CATEGORY_OF_PROTO`);
}

/** More than every kind twice over is not a filter a client means. */
const MAX_QUERY_KINDS = 16;

function checkTimeBound(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new InvalidArgumentError(`${field} must be milliseconds since the epoch (>= 0, 0 = unbounded), got ${value}`);
  return value;
}

/** Validates a StatementQuery where it enters; an absent query means the newest 20 lines. */
export function checkStatementQuery(query: StatementQuery | undefined): StatementQueryInput {
  const fromMs = checkTimeBound(query?.fromMs ?? 0, 'query.from_ms');
  const toMs = checkTimeBound(query?.toMs ?? 0, 'query.to_ms');
  if (fromMs > 0 && toMs > 0 && fromMs >= toMs)
    throw new InvalidArgumentError(`query.from_ms ${fromMs} must be before query.to_ms ${toMs}`);
  const requested = query?.pageSize ?? 0;
  if (!Number.isInteger(requested) || requested < 0 || requested > MAX_STATEMENT_PAGE_SIZE) {
    throw new InvalidArgumentError(
      `query.page_size must be 1..${MAX_STATEMENT_PAGE_SIZE} (0 = ${DEFAULT_STATEMENT_PAGE_SIZE}), got ${requested}`,
    );
  }
  const kinds = query?.kinds ?? [];
  if (kinds.length > MAX_QUERY_KINDS) throw new InvalidArgumentError(`query.kinds may list at most ${MAX_QUERY_KINDS} kinds`);
  const categories = new Set<StatementCategory>();
  for (const kind of kinds) {
    const category = CATEGORY_OF_PROTO.get(kind);
    if (category === undefined)
      throw new InvalidArgumentError(`query.kinds holds ${String(kind)}, which is not a statement kind (${QUERY_KIND_RANGE})`);
    categories.add(category);
  }
  return {
    fromMs,
    toMs,
    categories,
    pageSize: requested === 0 ? DEFAULT_STATEMENT_PAGE_SIZE : requested,
    pageToken: query?.pageToken ?? '',
  };
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

export function kioskStatementHandler(ctx: SwitchContext, reader: StatementReader): handleUnaryCall<StatementRequest, StatementResponse> {
  return unary(ctx, 'Statement', async (req: StatementRequest, call) => {
    const query = checkStatementQuery(req.query);
    const statement = await statementAtKiosk(ctx, reader, kioskCardholder(req.cardholder, req.password, call), query);
    return { page: pageToProto(statement.page), balanceFen: statement.balanceFen };
  });
}

export function cardStatementHandler(
  ctx: SwitchContext,
  reader: StatementReader,
): handleUnaryCall<CardStatementRequest, CardStatementResponse> {
  return unary(ctx, 'CardStatement', async (req: CardStatementRequest) => {
    const cardNo = checkCardNumber(req.cardNumber);
    const query = checkStatementQuery(req.query);
    return { page: pageToProto(await cardStatement(ctx, reader, cardNo, query)) };
  });
}

function totalToProto(t: TerminalTakings): TerminalTotal {
  return {
    terminalId: t.terminalId,
    payments: t.payments,
    paidFen: t.paidFen,
    refunds: t.refunds,
    refundedFen: t.refundedFen,
    netFen: t.netFen,
  };
}

export function settlementReportHandler(ctx: SwitchContext): handleUnaryCall<SettlementReportRequest, SettlementReportResponse> {
  return unary(ctx, 'SettlementReport', async (req: SettlementReportRequest, call: CallContext) => {
    if (req.merchantId === '') throw new InvalidArgumentError('merchant_id is required');
    // A call cancelled or past its deadline stops the report between pages (CancelledError).
    const report = await settlementReport(ctx, req.merchantId, req.day, { cancelled: call.cancelled });
    return {
      merchantId: report.merchantId,
      day: report.day,
      terminals: report.terminals.map(totalToProto),
      total: totalToProto(report.total),
      channels: report.channels.map((c) => ({ ...c })),
    };
  });
}

export function auditResponse(report: AuditReport): AuditResponse {
  const problems = report.problems.map((p) => p.message);
  if (report.problemCount > report.problems.length)
    problems.push(`... and ${report.problemCount - report.problems.length} more problem(s) not listed`);
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
    // One audit at a time per switch (RESOURCE_EXHAUSTED); a cancelled call stops it between pages.
    return auditResponse(await auditSwitchLedger(ctx, { cancelled: call.cancelled }));
  });
}
