// cardswitch.v1.AdminService: the card office. Handlers live with their domain.
import type { AdminServiceServer } from '../../proto/gen/cardswitch/v1/admin.js';
import type { SwitchContext } from '../context.js';
import type { StatementReader } from '../domain/reports.js';
import {
  getCardHandler,
  importCardholdersHandler,
  importTerminalsHandler,
  registerTerminalHandler,
  replaceCardHandler,
  setCardFrozenHandler,
  setCardLimitsHandler,
  setTerminalEnabledHandler,
} from './card-handlers.js';
import { adjustHandler, manualRechargeHandler } from './money-handlers.js';
import { auditHandler, cardStatementHandler, settlementReportHandler } from './report-handlers.js';

/** `statements` is the switch's one StatementReader (app.ts). */
export function adminService(ctx: SwitchContext, statements: StatementReader): AdminServiceServer {
  return {
    importCardholders: importCardholdersHandler(ctx),
    importTerminals: importTerminalsHandler(ctx),
    registerTerminal: registerTerminalHandler(ctx),
    setTerminalEnabled: setTerminalEnabledHandler(ctx),
    replaceCard: replaceCardHandler(ctx),
    setCardFrozen: setCardFrozenHandler(ctx),
    manualRecharge: manualRechargeHandler(ctx),
    adjust: adjustHandler(ctx),
    setCardLimits: setCardLimitsHandler(ctx),
    getCard: getCardHandler(ctx),
    cardStatement: cardStatementHandler(ctx, statements),
    settlementReport: settlementReportHandler(ctx),
    audit: auditHandler(ctx),
  };
}
