// The live events of a bound e-card, for the gateway: what a page missed since its last event id, and
// the parsing of the events channel's announcements. The ledger writes and keeps them (ledger/events.ts,
// ledger/lua/includes/event.lua); handlers reach them only through here.
import type { SwitchContext } from '../context.js';
import { announceSessionEnded, cardEventsSince, type CatchUp } from '../ledger/events.js';

export { compareEventIds, isEventId, parseAnnouncement, sessionEndedIn, MAX_CATCH_UP_EVENTS, type CardEvent, type CardEventType, type CatchUp } from '../ledger/events.js';

/** Every gateway closes the open sockets of a session that ended (logout on any one of them). */
export function sessionEnded(ctx: SwitchContext, sessionId: string): Promise<void> {
  return announceSessionEnded(ctx.redis, ctx.keys, sessionId);
}

/** The card's events after `sinceId` (at most MAX_CATCH_UP_EVENTS), and whether some are gone. */
export function missedCardEvents(ctx: SwitchContext, cardNo: string, sinceId: string): Promise<CatchUp> {
  return cardEventsSince(ctx.redis, ctx.keys, cardNo, sinceId);
}
