// The live events of a bound e-card, for the gateway: what a page missed since its last event id, and
// the parsing of the events channel's announcements. The ledger writes and keeps them (ledger/events.ts,
// ledger/lua/includes/event.lua); handlers reach them only through here.
import type { SwitchContext } from '../context.js';
import { cardEventsSince, type CatchUp } from '../ledger/events.js';

export { compareEventIds, isEventId, parseAnnouncement, MAX_CATCH_UP_EVENTS, type CardEvent, type CardEventType, type CatchUp } from '../ledger/events.js';

/** The card's events after `sinceId` (at most MAX_CATCH_UP_EVENTS), and whether some are gone. */
export function missedCardEvents(ctx: SwitchContext, cardNo: string, sinceId: string): Promise<CatchUp> {
  return cardEventsSince(ctx.redis, ctx.keys, cardNo, sinceId);
}
