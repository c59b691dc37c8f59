// Refund (PosService), Recharge and PayUtilityFee (KioskService), ManualRecharge and Adjust
// (AdminService). Owner: recharge/refund/fees work.
import type { handleUnaryCall } from '@grpc/grpc-js';
import type { RefundRequest, RefundResponse } from '../../proto/gen/cardswitch/v1/pos.js';
import type { PayUtilityFeeRequest, PayUtilityFeeResponse, RechargeRequest, RechargeResponse } from '../../proto/gen/cardswitch/v1/kiosk.js';
import type { AdjustRequest, AdjustResponse, ManualRechargeRequest, ManualRechargeResponse } from '../../proto/gen/cardswitch/v1/admin.js';
import type { SwitchContext } from '../context.js';
import { UnimplementedError } from './errors.js';
import { unary } from './unary.js';

function notYet<Req, Res>(ctx: SwitchContext, rpc: string): handleUnaryCall<Req, Res> {
  return unary<Req, Res>(ctx.log, rpc, async () => {
    throw new UnimplementedError(`${rpc} is not available yet`);
  });
}

export function refundHandler(ctx: SwitchContext): handleUnaryCall<RefundRequest, RefundResponse> {
  return notYet(ctx, 'Refund');
}

export function kioskRechargeHandler(ctx: SwitchContext): handleUnaryCall<RechargeRequest, RechargeResponse> {
  return notYet(ctx, 'Recharge');
}

export function payUtilityFeeHandler(ctx: SwitchContext): handleUnaryCall<PayUtilityFeeRequest, PayUtilityFeeResponse> {
  return notYet(ctx, 'PayUtilityFee');
}

export function manualRechargeHandler(ctx: SwitchContext): handleUnaryCall<ManualRechargeRequest, ManualRechargeResponse> {
  return notYet(ctx, 'ManualRecharge');
}

export function adjustHandler(ctx: SwitchContext): handleUnaryCall<AdjustRequest, AdjustResponse> {
  return notYet(ctx, 'Adjust');
}
