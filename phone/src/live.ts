// The card's live events (GET /api/v1/events): one WebSocket, reconnected with backoff after a drop, resumed
// with ?since=<last event id> so nothing that happened meanwhile is missed; `resync` and a reconnect after a
// long gap reload the card instead. Close 4001 (logout or unbinding anywhere) ends the session: no retry.
import type { Api, CardEvent } from './api.js';

export type LiveState = 'connecting' | 'live' | 'offline';

export interface LiveHandlers {
  onEvent(event: CardEvent): void;
  /** Events were lost (resync): reload the card and what is on screen. */
  onResync(): void;
  onState(state: LiveState): void;
  /** The session or the binding ended (close 4001). */
  onEnded(): void;
}

const PROTOCOL = 'cardswitch.events.v1';
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const PING_EVERY_MS = 25_000;
/** After this many failed connections in a row, ask the API why (an expired token, an unbound card). */
const CHECK_AFTER_FAILURES = 3;

/** Event ids are "<ms>-<seq>", compared as number pairs. */
export function eventIdAfter(id: string, last: string): boolean {
  if (last === '') return true;
  const [ms, seq] = id.split('-').map(Number);
  const [lastMs, lastSeq] = last.split('-').map(Number);
  if (ms === undefined || seq === undefined || lastMs === undefined || lastSeq === undefined) return false;
  return ms > lastMs || (ms === lastMs && seq > lastSeq);
}

export class LiveEvents {
  private socket: WebSocket | undefined;
  private lastId = '';
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pinger: ReturnType<typeof setInterval> | undefined;
  private stopped = true;
  state: LiveState = 'offline';

  constructor(
    private readonly api: Api,
    private readonly handlers: LiveHandlers,
    private readonly check: () => Promise<void>,
  ) {
    window.addEventListener('online', () => this.reconnectNow());
    window.addEventListener('offline', () => {
      this.socket?.close();
      this.setState('offline');
    });
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.failures = 0;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.lastId = '';
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    const socket = this.socket;
    this.socket = undefined;
    socket?.close(1000);
    this.setState('offline');
  }

  /** A reconnect at once (the page became visible, the network came back). */
  reconnectNow(): void {
    if (this.stopped || this.state === 'live') return;
    clearTimeout(this.timer);
    void this.connect();
  }

  private setState(state: LiveState): void {
    if (this.state === state) return;
    this.state = state;
    this.handlers.onState(state);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.setState('connecting');
    let token: string;
    try {
      token = this.failures >= CHECK_AFTER_FAILURES ? (await this.check(), await this.api.freshToken()) : await this.api.freshToken();
    } catch {
      if (!this.api.signedIn) return; // the session is gone: the page signs in again
      this.retry();
      return;
    }
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const since = this.lastId === '' ? '' : `?since=${encodeURIComponent(this.lastId)}`;
    let socket: WebSocket;
    try {
      socket = new WebSocket(`${scheme}//${location.host}/api/v1/events${since}`, [PROTOCOL, `bearer.${token}`]);
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.onmessage = (message) => this.onMessage(message);
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      clearInterval(this.pinger);
      if (close.code === 4001) {
        this.stopped = true;
        this.setState('offline');
        this.handlers.onEnded();
        return;
      }
      this.retry();
    };
  }

  private retry(): void {
    if (this.stopped) return;
    this.setState(navigator.onLine === false ? 'offline' : 'connecting');
    const base = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)] ?? 15000;
    this.failures += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(), base / 2 + Math.random() * (base / 2));
  }

  private onMessage(message: MessageEvent): void {
    let data: { type?: string; id?: string };
    try {
      data = JSON.parse(String(message.data)) as { type?: string; id?: string };
    } catch {
      return;
    }
    if (data.type === 'hello') {
      this.failures = 0;
      this.setState('live');
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.socket?.send('{"type":"ping"}'), PING_EVERY_MS);
      return;
    }
    if (data.type === 'resync') {
      this.handlers.onResync();
      return;
    }
    if (data.type === 'pong' || typeof data.id !== 'string') return;
    if (!eventIdAfter(data.id, this.lastId)) return;
    this.lastId = data.id;
    this.handlers.onEvent(data as CardEvent);
  }
}
