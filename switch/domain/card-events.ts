// The live events of a bound e-card, for the gateway: what a page missed since its last event id, and
// the parsing of the events channel's announcements. The ledger writes and keeps them (ledger/events.ts,
// ledger/lua/includes/event.lua); handlers reach them only through here.
import type { SwitchContext } from '../context.js';
import { announceSessionEnded, cardEventsSince, lastCardEventId, type CatchUp } from '../ledger/events.js';

/** How long one call keeps a card watched; gateways renew it every third of that while a page is open. */
export const CARD_WATCH_MS = 90_000;

/**
 * Starts (or renews) the announcement of a card's events for an open page, and answers the id of the
 * card's newest event before that moment: a page that brought no last event id catches up from it, so
 * nothing falls between its opening and the first announcement.
 */
export async function watchCardEvents(ctx: SwitchContext, cardNo: string): Promise<string> {
  const before = await lastCardEventId(ctx, cardNo);
  // Wall-clock time: Redis compares it with its own clock (TIME), not with a test's clock.
  await ctx.ledger.watchCard(cardNo, Date.now() + CARD_WATCH_MS);
  return before;
}

/** Renews the watch of cards whose pages are still open (no catch-up needed). */
export async function renewCardWatch(ctx: SwitchContext, cardNos: readonly string[]): Promise<void> {
  const untilMs = Date.now() + CARD_WATCH_MS;
  await Promise.all(cardNos.map((cardNo) => ctx.ledger.watchCard(cardNo, untilMs)));
}

export {
  compareEventIds,
  isEventId,
  parseAnnouncement,
  sessionEndedIn,
  MAX_CATCH_UP_EVENTS,
  type CardEvent,
  type CardEventType,
  type CatchUp,
} from '../ledger/events.js';

/** Every gateway closes the open sockets of a session that ended (logout on any one of them). */
export function sessionEnded(ctx: SwitchContext, sessionId: string): Promise<void> {
  return announceSessionEnded(ctx, sessionId);
}

/** The card's events after `sinceId` (at most MAX_CATCH_UP_EVENTS), and whether some are gone. */
export function missedCardEvents(ctx: SwitchContext, cardNo: string, sinceId: string): Promise<CatchUp> {
  return cardEventsSince(ctx, cardNo, sinceId);
}
