// Live events to the phone page over the gateway's WebSocket (/api/v1/events). What is pushed comes
// from the ledger's own record: the scripts append each event of a bound card to its event stream and
// ring the doorbell on the events channel (ledger/lua/includes/event.lua). This module listens on that
// channel and hands each event to the open sockets of its card, in order; a page that connects with
// `since=<last event id>` first gets what it missed from the stream (ledger/events.ts), then the live
// ones, with nothing twice and nothing skipped in between. If the doorbell connection drops, every
// socket catches up from its last event id once it is back. The doorbell connection itself is the
// ledger's (ledger/events-doorbell.ts), handed in by the wiring.
import type { SwitchContext } from '../context.js';
import { InvalidArgumentError, PermissionDeniedError, ResourceExhaustedError, UnauthenticatedError } from '../errors.js';
import { requireBoundCard } from '../domain/ecard.js';
import type { Sessions } from '../domain/sessions.js';
import {
  CARD_WATCH_MS,
  compareEventIds,
  isEventId,
  missedCardEvents,
  parseAnnouncement,
  renewCardWatch,
  sessionEndedIn,
  watchCardEvents,
  type CardEvent,
} from '../domain/card-events.js';
import type { EventsDoorbell } from '../ledger/events-doorbell.js';
import type { Admission, SocketHandle, UpgradeRequest, WebSocketHub } from './ws.js';

export const EVENTS_PATH = '/api/v1/events';
export const EVENTS_PROTOCOL = 'cardswitch.events.v1';
const BEARER_PROTOCOL_PREFIX = 'bearer.';
/** Close code (RFC 6455 "try again later") of a socket that could not be made live: reconnect with `since`. */
export const CLOSE_TRY_AGAIN = 1013;
/** Close code of a socket whose session or binding ended: the page signs in again. */
export const CLOSE_SESSION_ENDED = 4001;
/** ecard-binding.lua's announcement of an unbinding. */
const UNBOUND_ANNOUNCEMENT = /^(\d{1,20})\n0-0\nk\nunbound$/;
/** Announcements waiting per socket while it catches up; beyond this the socket is told to reload. */
const MAX_PENDING_PER_SOCKET = 500;

interface SocketData {
  readonly userId: string;
  readonly sessionId: string;
  readonly cardNo: string;
  readonly since: string;
  /** The access token, checked again once the socket is open (a logout during the upgrade closed nothing). */
  readonly accessToken: string;
  /** Frees the card's place held for the upgrade (the open socket holds it from then on); once only. */
  readonly releasePlace: () => void;
}

interface SocketState {
  readonly handle: SocketHandle;
  lastId: string;
  /** Set while the socket reads what it missed: live events wait here, in order. */
  pending: CardEvent[] | undefined;
  overflowed: boolean;
}

export class LiveEvents {
  private readonly byCard = new Map<string, Set<SocketState>>();
  private readonly byHandle = new Map<SocketHandle, SocketState>();
  /**
   * Upgrades admitted by authenticate() whose socket has not opened yet, by card. They count against
   * GATEWAY_WS_MAX_PER_CARD with the open ones: a socket joins byCard only once its upgrade is done, so
   * upgrades arriving together would otherwise all pass the check.
   */
  private readonly upgradingByCard = new Map<string, number>();
  private hub: WebSocketHub | undefined;
  private readonly locations = new Map<string, Promise<string>>();

  constructor(
    private readonly ctx: SwitchContext,
    private readonly sessions: Sessions,
    private readonly doorbell: EventsDoorbell,
  ) {}

  /** Subscribes to the events channel; resolves once subscribed. */
  async start(): Promise<void> {
    const { log } = this.ctx;
    await this.doorbell.listen({
      onMessage: (message) => this.announce(message),
      // Back after a drop: announcements made meanwhile were lost; every socket reads its stream from
      // its last event, and one that has had none yet is told to reload.
      onReconnected: () => {
        renewCardWatch(this.ctx, [...this.byCard.keys()])
          .catch((err: unknown) =>
            log.warn({ err }, "could not renew the watch of open pages' cards after the events connection came back"),
          )
          .finally(() => {
            for (const state of this.byHandle.values()) this.catchUp(state);
          });
      },
    });
    // Cards with a page open here stay watched (includes/event.lua announces only watched cards' events).
    this.renewTimer = setInterval(() => {
      renewCardWatch(this.ctx, [...this.byCard.keys()]).catch((err: unknown) =>
        log.warn({ err }, "could not renew the watch of open pages' cards"),
      );
    }, CARD_WATCH_MS / 3);
    this.renewTimer.unref();
  }

  private renewTimer: NodeJS.Timeout | undefined;

  stop(): void {
    clearInterval(this.renewTimer);
    this.doorbell.stop();
  }

  /** Who opens the socket: a live session with a bound card, proven by the `bearer.<token>` subprotocol. */
  async authenticate(upgrade: UpgradeRequest): Promise<Admission> {
    if (!upgrade.protocols.includes(EVENTS_PROTOCOL)) {
      throw new InvalidArgumentError(`offer the WebSocket subprotocol ${EVENTS_PROTOCOL} and bearer.<access token>`, {
        reason: 'PROTOCOL_REQUIRED',
        zh: '请刷新页面后重试',
      });
    }
    const bearer = upgrade.protocols.find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX));
    const accessToken = bearer?.slice(BEARER_PROTOCOL_PREFIX.length) ?? '';
    const session = await this.sessions.authenticate(accessToken);
    if (session.cardNo === '')
      throw new PermissionDeniedError('no card is bound to this user', { reason: 'NOT_BOUND', zh: '尚未绑定校园卡，请先完成绑定' });
    await requireBoundCard(this.ctx, session.userId, session.cardNo);
    const since = upgrade.query.get('since') ?? '';
    if (since !== '' && !isEventId(since))
      throw new InvalidArgumentError('since must be an event id like 1732945200000-0', {
        reason: 'INVALID_FIELD',
        zh: '请刷新页面后重试',
        field: 'since',
      });
    // One holder's token cannot eat the gateway's sockets: a bound per card. From here to the socket
    // opening (or the upgrade failing) nothing awaits, and the place is held all along.
    const maxPerCard = this.ctx.config.gateway.wsMaxPerCard;
    if (this.placesOf(session.cardNo) >= maxPerCard) {
      throw new ResourceExhaustedError(`this card has ${maxPerCard} live-event sockets open already; close one`, {
        reason: 'TOO_MANY_CONNECTIONS',
        zh: '打开的页面过多，请关闭其他页面后重试',
      });
    }
    const releasePlace = this.holdPlace(session.cardNo);
    const { userId, sessionId, cardNo } = session;
    const data: SocketData = { userId, sessionId, cardNo, since, accessToken, releasePlace };
    return { key: session.cardNo, protocol: EVENTS_PROTOCOL, data, release: releasePlace };
  }

  /** The card's sockets on this gateway: open, or upgrading after authenticate() admitted them. */
  placesOf(cardNo: string): number {
    return (this.byCard.get(cardNo)?.size ?? 0) + (this.upgradingByCard.get(cardNo) ?? 0);
  }

  /** Holds one of the card's places for an upgrade; the answer frees it (once, whatever calls it). */
  private holdPlace(cardNo: string): () => void {
    this.upgradingByCard.set(cardNo, (this.upgradingByCard.get(cardNo) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = (this.upgradingByCard.get(cardNo) ?? 0) - 1;
      if (left < 0) throw new Error(`live events: card ${cardNo} released more upgrade places than it held`);
      if (left === 0) this.upgradingByCard.delete(cardNo);
      else this.upgradingByCard.set(cardNo, left);
    };
  }

  onOpen(handle: SocketHandle, hub: WebSocketHub): void {
    this.hub = hub;
    const data = handle.data as SocketData;
    const state: SocketState = { handle, lastId: data.since, pending: undefined, overflowed: false };
    let sockets = this.byCard.get(data.cardNo);
    if (sockets === undefined) this.byCard.set(data.cardNo, (sockets = new Set()));
    sockets.add(state);
    this.byHandle.set(handle, state);
    // The socket holds the card's place now, instead of its upgrade.
    data.releasePlace();
    // Live events wait until the card is watched (its events announced) and what came before is read;
    // `hello` says the socket is live. A card that cannot be watched now (the ledger did not answer)
    // gets its socket closed 1013 (try again later): the page reconnects with its last event id.
    state.pending = [];
    // The session is checked again now that the socket is listed: a logout announced while the socket
    // was upgrading found nothing to close, and one announced from now on finds it.
    Promise.all([watchCardEvents(this.ctx, data.cardNo), this.sessionLive(data.accessToken)])
      .then(([newestBefore, live]) => {
        if (!live) {
          hub.close(handle, CLOSE_SESSION_ENDED, 'session ended');
          return;
        }
        // A page without a last event id starts after the newest event before the watch began.
        if (state.lastId === '') state.lastId = newestBefore;
        hub.sendTo(handle, JSON.stringify({ type: 'hello', cardNumber: data.cardNo, since: data.since }));
        this.readMissed(state);
      })
      .catch((err: unknown) => {
        this.ctx.log.warn(
          { err, cardNo: data.cardNo },
          'could not watch the card or check the session; the socket is closed for the page to reconnect',
        );
        hub.close(handle, CLOSE_TRY_AGAIN, 'live events unavailable; reconnect');
      });
  }

  /** False once the token's session ended (logout, unbinding) or the token expired; a ledger failure rejects. */
  private sessionLive(accessToken: string): Promise<boolean> {
    return this.sessions.authenticate(accessToken).then(
      () => true,
      (err: unknown) => {
        if (err instanceof UnauthenticatedError) return false;
        throw err;
      },
    );
  }

  onClose(handle: SocketHandle): void {
    const state = this.byHandle.get(handle);
    if (state === undefined) return;
    this.byHandle.delete(handle);
    const cardNo = (handle.data as SocketData).cardNo;
    const sockets = this.byCard.get(cardNo);
    sockets?.delete(state);
    if (sockets?.size === 0) this.byCard.delete(cardNo);
  }

  /** Sockets open on this gateway (for tests and the metrics gauge's cross-check). */
  openSockets(): number {
    return this.byHandle.size;
  }

  /** Closes this gateway's sockets of one session (told by the events channel: a logout on any gateway). */
  private endSession(sessionId: string): void {
    for (const state of [...this.byHandle.values()]) {
      if ((state.handle.data as SocketData).sessionId === sessionId) this.hub?.close(state.handle, CLOSE_SESSION_ENDED, 'session ended');
    }
  }

  private announce(message: string): void {
    const endedSession = sessionEndedIn(message);
    if (endedSession !== undefined) {
      this.endSession(endedSession);
      return;
    }
    // Every event of every bound card comes by: most are for cards with no page open here, and cost
    // only this look-up.
    if (!this.byCard.has(message.slice(0, message.indexOf('\n')))) return;
    const unbound = UNBOUND_ANNOUNCEMENT.exec(message);
    if (unbound !== null) {
      // The binding ended (on any gateway): its pages stop getting events at once.
      for (const state of [...(this.byCard.get(unbound[1] ?? '') ?? [])])
        this.hub?.close(state.handle, CLOSE_SESSION_ENDED, 'binding ended');
      return;
    }
    const parsed = parseAnnouncement(message);
    if (parsed === undefined) {
      this.ctx.log.warn({ message: message.slice(0, 120) }, 'events channel: an announcement that does not parse');
      return;
    }
    const sockets = this.byCard.get(parsed.cardNo);
    if (sockets === undefined) return;
    for (const state of sockets) this.offer(state, parsed.event);
  }

  private offer(state: SocketState, event: CardEvent): void {
    if (state.pending !== undefined) {
      if (state.pending.length >= MAX_PENDING_PER_SOCKET) state.overflowed = true;
      else state.pending.push(event);
      return;
    }
    this.send(state, event);
  }

  /** Sends one event unless the socket has it already; events leave in id order. */
  private send(state: SocketState, event: CardEvent): void {
    if (state.lastId !== '' && compareEventIds(event.id, state.lastId) <= 0) return;
    state.lastId = event.id;
    void this.render(event).then((text) => this.hub?.sendTo(state.handle, text));
  }

  /** Reads what the socket missed after its last event id, then lets the live ones through. */
  private catchUp(state: SocketState): void {
    if (state.pending !== undefined || state.lastId === '') return;
    state.pending = [];
    this.readMissed(state);
  }

  /** Reads the events after the socket's last id, then lets the waiting live ones through, in order. */
  private readMissed(state: SocketState): void {
    const cardNo = (state.handle.data as SocketData).cardNo;
    missedCardEvents(this.ctx, cardNo, state.lastId)
      .then(({ events, gap }) => {
        const pending = state.pending ?? [];
        state.pending = undefined;
        if (gap || state.overflowed) this.hub?.sendTo(state.handle, JSON.stringify({ type: 'resync' }));
        state.overflowed = false;
        for (const event of [...events, ...pending]) this.send(state, event);
      })
      .catch((err: unknown) => {
        state.pending = undefined;
        this.ctx.log.warn({ err, cardNo }, 'events catch-up failed; the page is told to reload');
        this.hub?.sendTo(state.handle, JSON.stringify({ type: 'resync' }));
      });
  }

  /**
   * The JSON of one event, with the place of its terminal (one cached lookup per terminal). Rendering
   * is asynchronous but keeps the order: each event waits for the one before on the same socket.
   */
  private render(event: CardEvent): Promise<string> {
    const previous = this.lastRender;
    const next = previous.then(async () => {
      const location = event.terminalId === undefined ? undefined : await this.locationOf(event.terminalId);
      return JSON.stringify(location === undefined || location === '' ? event : { ...event, location });
    });
    this.lastRender = next.catch(() => '');
    return next;
  }

  private lastRender: Promise<unknown> = Promise.resolve();

  private locationOf(terminalId: string): Promise<string> {
    let pending = this.locations.get(terminalId);
    if (pending === undefined) {
      if (this.locations.size > 10_000) this.locations.clear();
      pending = this.ctx.terminals.get(terminalId).then(
        (t) => t?.location ?? '',
        () => {
          this.locations.delete(terminalId);
          return '';
        },
      );
      this.locations.set(terminalId, pending);
    }
    return pending;
  }
}
