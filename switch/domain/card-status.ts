// Loss reports and their cancellation, for every channel that offers them (kiosk, phone): the rules
// live here once; the gRPC and HTTP handlers only map the outcome.
import type { SwitchContext } from '../context.js';
import { FailedPreconditionError, NotFoundError } from '../errors.js';
import type { CardStatusCode } from '../ledger/ledger.js';

export interface StatusChange {
  /** What the card was before the request. */
  readonly previous: CardStatusCode;
  /** False when the card already had the requested status (nothing changed). */
  readonly changed: boolean;
}

function statusRefusal(cardNo: string, status: CardStatusCode, action: string, zhAction: string): FailedPreconditionError {
  if (status === 'frozen') {
    return new FailedPreconditionError(
      `the card is frozen by the card office, so you cannot ${action} here; please visit the card office (此卡已冻结)`,
      {
        reason: 'CARD_FROZEN',
        zh: `此卡已被卡务中心冻结，无法${zhAction}，请到卡务中心办理`,
      },
    );
  }
  return new FailedPreconditionError(`card ${cardNo} is ${status}, so you cannot ${action}`, {
    reason: status === 'cancelled' ? 'CARD_CANCELLED' : 'CARD_STATUS',
    zh: status === 'cancelled' ? `此卡已注销，无法${zhAction}` : `此卡当前状态无法${zhAction}`,
  });
}

/** Reports the card lost (a lost card reported again changes nothing). The caller has proven who asks. */
export async function reportCardLost(ctx: SwitchContext, cardNo: string): Promise<StatusChange> {
  const result = await ctx.ledger.setStatus(cardNo, 'lost', ['active', 'lost']);
  if (result === undefined) throw new NotFoundError(`card ${cardNo} does not exist`, { reason: 'CARD_NOT_FOUND', zh: '未找到此卡' });
  if (!result.changed) throw statusRefusal(cardNo, result.previous, 'report it lost', '挂失');
  return { previous: result.previous, changed: result.previous !== 'lost' };
}

/** Cancels a loss report (an active card changes nothing). The caller has checked the card password. */
export async function cancelCardLoss(ctx: SwitchContext, cardNo: string): Promise<StatusChange> {
  const result = await ctx.ledger.setStatus(cardNo, 'active', ['lost', 'active']);
  if (result === undefined) throw new NotFoundError(`card ${cardNo} does not exist`, { reason: 'CARD_NOT_FOUND', zh: '未找到此卡' });
  if (!result.changed) throw statusRefusal(cardNo, result.previous, 'cancel a loss report', '解挂');
  return { previous: result.previous, changed: result.previous === 'lost' };
}
