// cardswitch.v1.KioskService: the dormitory kiosks. Handlers live with their domain.
import type { KioskServiceServer } from '../../proto/gen/cardswitch/v1/kiosk.js';
import type { SwitchContext } from '../context.js';
import type { StatementReader } from '../domain/reports.js';
import { cancelLossHandler, changePasswordHandler, identifyCardHandler, reportLossHandler } from './card-handlers.js';
import {
  kioskCancelRechargeOrderHandler,
  kioskRechargeHandler,
  kioskRechargeOrderStateHandler,
  payUtilityFeeHandler,
} from './money-handlers.js';
import { kioskStatementHandler } from './report-handlers.js';

/** `statements` is the switch's one StatementReader (app.ts). */
export function kioskService(ctx: SwitchContext, statements: StatementReader): KioskServiceServer {
  return {
    identifyCard: identifyCardHandler(ctx),
    recharge: kioskRechargeHandler(ctx),
    rechargeOrderState: kioskRechargeOrderStateHandler(ctx),
    cancelRechargeOrder: kioskCancelRechargeOrderHandler(ctx),
    reportLoss: reportLossHandler(ctx),
    cancelLoss: cancelLossHandler(ctx),
    changePassword: changePasswordHandler(ctx),
    statement: kioskStatementHandler(ctx, statements),
    payUtilityFee: payUtilityFeeHandler(ctx),
  };
}
