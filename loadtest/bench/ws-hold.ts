// The websockets scenario's client side, in a child process of its own (websockets.ts forks it): opens
// idle live-event sockets to the gateway (/api/v1/events, subprotocols cardswitch.events.v1 and
// bearer.<token>) at a bounded rate with a bounded number of handshakes in flight, answers once every
// one has opened or failed, holds them until told to close, then closes them all. An open / close pair
// may come more than once (a warm-up round first).
import WebSocket from 'ws';

export interface WsOpenSettings {
  readonly url: string;
  /** One per socket, in order (socket i uses tokens[i]). */
  readonly tokens: readonly string[];
  /** Handshakes in flight at once at most. */
  readonly concurrency: number;
  /** New sockets per second at most. */
  readonly ratePerSec: number;
  readonly handshakeTimeoutMs: number;
}

export interface WsOpened {
  readonly requested: number;
  readonly opened: number;
  /** Sockets whose first message was the server's {"type":"hello"}. */
  readonly helloReceived: number;
  readonly failed: number;
  readonly failureSamples: string[];
  readonly elapsedMs: number;
}

export interface WsClosed {
  /** Sockets whose first message was the server's {"type":"hello"} (counted until they were closed). */
  readonly helloReceived: number;
  /** Sockets the server (or the network) closed while they were held. */
  readonly closedWhileHeld: number;
  /** Sockets closed cleanly when told to. */
  readonly closed: number;
  readonly elapsedMs: number;
}

export type ParentToWsChild =
  | { readonly type: 'open'; readonly settings: WsOpenSettings }
  | { readonly type: 'close'; readonly timeoutMs: number }
  | { readonly type: 'stop' };
export type WsChildToParent =
  | { readonly type: 'ready' }
  | { readonly type: 'opened'; readonly opened: WsOpened }
  | { readonly type: 'closed'; readonly closed: WsClosed }
  | { readonly type: 'fatal'; readonly message: string };

const PROTOCOL = 'cardswitch.events.v1';
const MAX_SAMPLES = 8;
const TICK_MS = 5;

// One round's state (reset by each 'open').
let sockets: WebSocket[] = [];
let closing = false;
let closedWhileHeld = 0;
let helloReceived = 0;

function send(message: WsChildToParent): void {
  process.send?.(message);
}

function openAll(s: WsOpenSettings): Promise<WsOpened> {
  sockets = [];
  closing = false;
  closedWhileHeld = 0;
  helloReceived = 0;
  const started = performance.now();
  const samples: string[] = [];
  const sample = (text: string): void => {
    if (samples.length < MAX_SAMPLES) samples.push(text);
  };
  let startedCount = 0,
    pending = 0,
    opened = 0,
    failed = 0,
    hello = 0;
  return new Promise((resolve) => {
    const settle = (): void => {
      pending--;
      if (opened + failed === s.tokens.length) {
        resolve({
          requested: s.tokens.length,
          opened,
          helloReceived: hello,
          failed,
          failureSamples: samples,
          elapsedMs: Math.round(performance.now() - started),
        });
      }
    };
    const openOne = (token: string): void => {
      pending++;
      const ws = new WebSocket(s.url, [PROTOCOL, `bearer.${token}`], { perMessageDeflate: false, handshakeTimeout: s.handshakeTimeoutMs });
      let isOpen = false;
      let settled = false;
      ws.once('open', () => {
        isOpen = true;
        settled = true;
        opened++;
        sockets.push(ws);
        settle();
      });
      ws.once('message', (data) => {
        // binaryType is ws's default 'nodebuffer': each message arrives as one Buffer.
        if (/"type":"hello"/.test((data as Buffer).toString('utf8'))) {
          hello++;
          helloReceived++;
        }
      });
      // A refused upgrade is an error ("Unexpected server response: 401"), then a close.
      ws.on('error', (err) => {
        sample(isOpen ? `error while held: ${err.message}` : `handshake: ${err.message}`);
      });
      ws.on('close', (code) => {
        if (!settled) {
          settled = true;
          failed++;
          settle();
        } else if (!closing) {
          closedWhileHeld++;
          sample(`closed while held (code ${code})`);
        }
      });
    };
    const tick = (): void => {
      const allowed = Math.min(s.tokens.length, Math.floor(((performance.now() - started) / 1000) * s.ratePerSec) + 1);
      while (startedCount < allowed && pending < s.concurrency) openOne(s.tokens[startedCount++] ?? '');
      if (startedCount < s.tokens.length) setTimeout(tick, TICK_MS);
    };
    if (s.tokens.length === 0) resolve({ requested: 0, opened: 0, helloReceived: 0, failed: 0, failureSamples: [], elapsedMs: 0 });
    else tick();
  });
}

function closeAll(timeoutMs: number): Promise<WsClosed> {
  const started = performance.now();
  closing = true;
  let closed = 0;
  const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN);
  return new Promise((resolve) => {
    const finish = (): void => resolve({ helloReceived, closedWhileHeld, closed, elapsedMs: Math.round(performance.now() - started) });
    const timer = setTimeout(() => {
      for (const ws of open) ws.terminate();
      finish();
    }, timeoutMs);
    if (open.length === 0) {
      clearTimeout(timer);
      finish();
      return;
    }
    for (const ws of open) {
      ws.once('close', () => {
        if (++closed === open.length) {
          clearTimeout(timer);
          finish();
        }
      });
      ws.close(1000, 'bench done');
    }
  });
}

process.on('message', (message: ParentToWsChild) => {
  if (message.type === 'stop') {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  }
  const work: Promise<WsChildToParent> =
    message.type === 'open'
      ? openAll(message.settings).then((opened) => ({ type: 'opened', opened }))
      : closeAll(message.timeoutMs).then((closed) => ({ type: 'closed', closed }));
  work.then(send, (err: unknown) => send({ type: 'fatal', message: err instanceof Error ? err.message : String(err) }));
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
