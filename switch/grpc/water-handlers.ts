// PosService/WaterDebit and PosService/Settle (the small wallet). Owner: water-wallet work.
import type { handleUnaryCall } from '@grpc/grpc-js';
import type { SettleRequest, SettleResponse, WaterDebitRequest, WaterDebitResponse } from '../../proto/gen/cardswitch/v1/pos.js';
import type { SwitchContext } from '../context.js';
import { UnimplementedError } from './errors.js';
import { unary } from './unary.js';

export function waterDebitHandler(ctx: SwitchContext): handleUnaryCall<WaterDebitRequest, WaterDebitResponse> {
  return unary(ctx.log, 'WaterDebit', async () => {
    throw new UnimplementedError('WaterDebit is not available yet');
  });
}

export function settleHandler(ctx: SwitchContext): handleUnaryCall<SettleRequest, SettleResponse> {
  return unary(ctx.log, 'Settle', async () => {
    throw new UnimplementedError('Settle is not available yet');
  });
}
