// KioskService/Statement, AdminService/CardStatement, SettlementReport and Audit. Owner: reports work.
import type { handleUnaryCall } from '@grpc/grpc-js';
import type { StatementRequest, StatementResponse } from '../../proto/gen/cardswitch/v1/kiosk.js';
import type {
  AuditRequest,
  AuditResponse,
  CardStatementRequest,
  CardStatementResponse,
  SettlementReportRequest,
  SettlementReportResponse,
} from '../../proto/gen/cardswitch/v1/admin.js';
import type { SwitchContext } from '../context.js';
import { UnimplementedError } from './errors.js';
import { unary } from './unary.js';

function notYet<Req, Res>(ctx: SwitchContext, rpc: string): handleUnaryCall<Req, Res> {
  return unary<Req, Res>(ctx.log, rpc, async () => {
    throw new UnimplementedError(`${rpc} is not available yet`);
  });
}

export function kioskStatementHandler(ctx: SwitchContext): handleUnaryCall<StatementRequest, StatementResponse> {
  return notYet(ctx, 'Statement');
}

export function cardStatementHandler(ctx: SwitchContext): handleUnaryCall<CardStatementRequest, CardStatementResponse> {
  return notYet(ctx, 'CardStatement');
}

export function settlementReportHandler(ctx: SwitchContext): handleUnaryCall<SettlementReportRequest, SettlementReportResponse> {
  return notYet(ctx, 'SettlementReport');
}

export function auditHandler(ctx: SwitchContext): handleUnaryCall<AuditRequest, AuditResponse> {
  return notYet(ctx, 'Audit');
}
