// The gateway's WebSocket endpoint: an authenticated upgrade, sockets grouped by a key (a card number),
// and a hub the app sends events through. Bounded everywhere: at most maxSockets sockets, 1 KiB client
// messages, and at most maxBackpressureBytes waiting to be sent to one socket. A client that stops
// reading is dropped, never buffered for without end: before every send the socket's buffered amount
// is checked, and uWS itself (maxBackpressure + closeOnBackpressureLimit) backs that up. A silent
// socket (no pong to the automatic pings) is closed after idleTimeoutSec.
import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { errorText, httpError, httpErrorOf, internalError, type HttpError } from './errors.js';
import { copyHeaders, errorReply, remoteAddressOf, writeReply } from './respond.js';

/** What authenticate() sees of an upgrade request (copied: the uWS request dies at the first await). */
export interface UpgradeRequest {
  readonly query: URLSearchParams;
  /** Subprotocols the client offered (Sec-WebSocket-Protocol), in its order. */
  readonly protocols: readonly string[];
  readonly headers: Readonly<Record<string, string>>;
  readonly remoteAddress: string;
}

export interface Admission {
  /** Groups sockets: hub.send(key, ...) reaches every socket admitted with it. */
  readonly key: string;
  /** One of the offered subprotocols; default the first offered (a browser fails the socket without one). */
  readonly protocol?: string;
  /** Whatever the app wants back on the handle (the session ...). */
  readonly data?: unknown;
  /**
   * Frees what the app holds for this upgrade (a per-card slot ...). Called exactly once when the upgrade
   * is over, whether the socket opened or not (the client went away, the upgrade was refused after
   * authenticate, or it failed); if it opened, onOpen has run before (uWS opens within res.upgrade).
   */
  release?(): void;
}

/** One open (or just closed) socket, as the app sees it. */
export interface SocketHandle {
  readonly id: number;
  readonly key: string;
  readonly protocol: string;
  readonly data: unknown;
  readonly remoteAddress: string;
  isOpen(): boolean;
}

export interface WebSocketHub {
  /** Sends to every socket of `key`; answers how many it reached (a socket over its limit is dropped instead). */
  send(key: string, text: string): number;
  /** False when the socket is closed, or was dropped because it is not reading. */
  sendTo(handle: SocketHandle, text: string): boolean;
  /** Sockets open now. */
  count(): number;
  /** Bytes waiting to be sent to this socket (0 once closed). */
  bufferedBytes(handle: SocketHandle): number;
  /** Ends the socket with a close frame (e.g. 4001 when its binding or session ended). */
  close(handle: SocketHandle, code: number, reason: string): void;
}

export interface WebSocketOptions {
  /** Exact path, e.g. /api/v1/events. */
  readonly path: string;
  /** Admits or refuses an upgrade; a thrown refusal (switch/errors.ts) is answered with its HTTP status. */
  authenticate(upgrade: UpgradeRequest): Promise<Admission>;
  /** Per socket: bytes waiting to be sent beyond which the socket is dropped. */
  readonly maxBackpressureBytes: number;
  /** A socket that sends and receives nothing (pings unanswered) for this long is closed; >= 8 (uWS minimum). */
  readonly idleTimeoutSec: number;
  /** Beyond this many sockets (open or being admitted) an upgrade is refused with 503. */
  readonly maxSockets: number;
  /** Largest message a client may send; uWS closes the socket beyond it. Default 1024 (pings, small JSON). */
  readonly maxPayloadLength?: number;
  /** A socket opened: the app may replay what the client missed through hub.sendTo(handle, ...). */
  onOpen?(handle: SocketHandle, hub: WebSocketHub): void;
  onClose?(handle: SocketHandle): void;
}

export const DEFAULT_MAX_PAYLOAD_LENGTH = 1024;
/**
 * A subprotocol as the log shows it: browsers cannot send headers on a WebSocket, so the phone offers its
 * access token as a subprotocol (`bearer.<token>`, docs in openapi.ts); that one, or anything as long as a
 * token, is named but not logged.
 */
function loggableProtocol(offered: string): string {
  return offered.toLowerCase().startsWith('bearer.') || offered.length > 64
    ? `(a credential of ${offered.length} characters, not logged)`
    : offered;
}
const MAX_OFFERED_PROTOCOLS = 16;
const PONG = JSON.stringify({ type: 'pong' });
/** The uWS send() result for a message dropped over maxBackpressure. */
const SEND_DROPPED = 2;
const RETRY_AFTER_FULL_SEC = '5';
/** Methods named as such in the metrics (any other is OTHER: a client cannot mint label values). */
const LABELLED_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

class Socket implements SocketHandle {
  ws: WebSocket<UserData> | undefined;
  closed = false;
  constructor(
    readonly id: number,
    readonly key: string,
    readonly protocol: string,
    readonly data: unknown,
    readonly remoteAddress: string,
    /** The admission's release: the upgrade is over (opened or not). */
    readonly upgraded: () => void,
  ) {}

  isOpen(): boolean {
    return this.ws !== undefined && !this.closed;
  }
}

interface UserData {
  readonly socket: Socket;
}

export class WebSocketEndpoint implements WebSocketHub {
  private readonly byKey = new Map<string, Set<Socket>>();
  private open = 0;
  private admitting = 0;
  private nextId = 1;
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(
    app: TemplatedApp,
    private readonly options: WebSocketOptions,
    deps: { readonly log: Logger; readonly metrics: Metrics },
  ) {
    checkOptions(options);
    this.log = deps.log;
    this.metrics = deps.metrics;
    app.ws<UserData>(options.path, {
      maxPayloadLength: options.maxPayloadLength ?? DEFAULT_MAX_PAYLOAD_LENGTH,
      maxBackpressure: options.maxBackpressureBytes,
      // The typings say number; uWS reads it as a flag.
      closeOnBackpressureLimit: 1,
      idleTimeout: options.idleTimeoutSec,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => this.onUpgrade(res, req, context),
      open: (ws) => this.onOpen(ws),
      message: (ws, message, isBinary) => this.onMessage(ws, message, isBinary),
      close: (ws) => this.onClose(ws),
    });
    // uWS hands a request on the path that is not a valid upgrade (no Sec-WebSocket-Key, another method)
    // on to the next route: without this one, the catch-all's 404 "no route", which is untrue.
    app.any(options.path, (res, req) => this.onNotUpgrade(res, req));
  }

  send(key: string, text: string): number {
    const sockets = this.byKey.get(key);
    if (sockets === undefined) return 0;
    const bytes = this.checkedLength(text);
    let reached = 0;
    // A drop removes the socket from the set during the loop; iterate a copy.
    for (const socket of [...sockets]) if (this.deliver(socket, text, bytes)) reached++;
    return reached;
  }

  sendTo(handle: SocketHandle, text: string): boolean {
    if (!(handle instanceof Socket)) throw new TypeError('not a socket handle of this hub');
    return this.deliver(handle, text, this.checkedLength(text));
  }

  count(): number {
    return this.open;
  }

  bufferedBytes(handle: SocketHandle): number {
    if (!(handle instanceof Socket) || !handle.isOpen()) return 0;
    return handle.ws?.getBufferedAmount() ?? 0;
  }

  close(handle: SocketHandle, code: number, reason: string): void {
    if (!(handle instanceof Socket)) throw new TypeError('not a socket handle of this hub');
    if (handle.isOpen()) handle.ws?.end(code, reason);
  }

  /** Shutdown: a close frame with `code` to every socket. */
  closeAll(code: number, reason: string): void {
    for (const sockets of [...this.byKey.values()]) {
      for (const socket of [...sockets]) if (socket.isOpen()) socket.ws?.end(code, reason);
    }
  }

  /** A message larger than the per-socket bound could never be sent within it: a bug of the caller. */
  private checkedLength(text: string): number {
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > this.options.maxBackpressureBytes) {
      throw new RangeError(
        `a WebSocket message of ${bytes} bytes is larger than the per-socket limit of ${this.options.maxBackpressureBytes}`,
      );
    }
    return bytes;
  }

  private deliver(socket: Socket, text: string, bytes: number): boolean {
    const ws = socket.ws;
    if (ws === undefined || socket.closed) return false;
    const buffered = ws.getBufferedAmount();
    if (buffered > 0 && buffered + bytes > this.options.maxBackpressureBytes) {
      this.drop(socket, ws, buffered);
      return false;
    }
    let status = 0;
    ws.cork(() => {
      status = ws.send(text, false, false);
    });
    if (status === SEND_DROPPED) {
      this.drop(socket, ws, ws.getBufferedAmount());
      return false;
    }
    return true;
  }

  /** The client is not reading: close at once (no close frame: it would only queue behind the rest). */
  private drop(socket: Socket, ws: WebSocket<UserData>, buffered: number): void {
    this.log.info(
      { socket: socket.id, bufferedBytes: buffered, limitBytes: this.options.maxBackpressureBytes },
      'websocket dropped: the client is not reading',
    );
    ws.close();
  }

  private onUpgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    const startedMs = performance.now();
    if (this.open + this.admitting >= this.options.maxSockets) {
      this.refuse(res, tooManySockets(), startedMs);
      return;
    }
    const secKey = req.getHeader('sec-websocket-key');
    const secExtensions = req.getHeader('sec-websocket-extensions');
    const upgrade: UpgradeRequest = {
      query: new URLSearchParams(req.getQuery()),
      protocols: parseProtocols(req.getHeader('sec-websocket-protocol')),
      headers: copyHeaders(req),
      remoteAddress: remoteAddressOf(res),
    };
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    this.admitting++;
    this.admit(upgrade)
      .then((admitted) => {
        if (!(admitted instanceof Socket)) {
          if (aborted) return;
          // Cancelled (undefined): nothing to answer; close rather than leave the client hanging.
          if (admitted === undefined) res.close();
          else this.refuse(res, admitted, startedMs);
          return;
        }
        try {
          if (aborted) return;
          res.cork(() => res.upgrade<UserData>({ socket: admitted }, secKey, admitted.protocol, secExtensions, context));
          this.observe(101, startedMs);
        } finally {
          // Whatever happened above (the client went away, res.upgrade threw), the app's hold on this
          // upgrade ends here; an opened socket is counted by now (onOpen ran within res.upgrade).
          admitted.upgraded();
        }
      })
      .catch((err: unknown) => this.log.error({ err }, 'websocket upgrade could not be answered'))
      .finally(() => this.admitting--);
  }

  /**
   * A Socket to upgrade to, an HttpError to answer, or undefined (cancelled: no answer). An admission
   * that does not become a Socket is released here; a Socket's is released by onUpgrade.
   */
  private async admit(upgrade: UpgradeRequest): Promise<Socket | HttpError | undefined> {
    let admission: Admission;
    try {
      admission = await this.options.authenticate(upgrade);
    } catch (err) {
      const mapped = httpErrorOf(err);
      if (mapped?.serious) this.log.error({ err }, 'websocket authentication failed');
      else if (mapped?.ledgerUnavailable === true)
        this.log.warn({ cause: errorText(err) }, 'websocket authentication failed: the ledger did not answer (503)');
      return mapped;
    }
    const release = once(() => admission.release?.());
    const offered = upgrade.protocols;
    const protocol = admission.protocol ?? offered[0] ?? '';
    if (protocol !== '' && !offered.includes(protocol)) {
      release();
      this.log.error({ protocol, offered: offered.map(loggableProtocol) }, 'authenticate chose a subprotocol the client did not offer');
      return internalError();
    }
    if (this.open >= this.options.maxSockets) {
      release();
      return tooManySockets();
    }
    return new Socket(this.nextId++, admission.key, protocol, admission.data, upgrade.remoteAddress, release);
  }

  private refuse(res: HttpResponse, error: HttpError, startedMs: number, method = 'GET'): void {
    writeReply(res, errorReply(error), method === 'HEAD');
    this.observe(error.status, startedMs, method);
  }

  /** A plain request on the WebSocket path: 426 for GET / HEAD (open it as a WebSocket), 405 otherwise. */
  private onNotUpgrade(res: HttpResponse, req: HttpRequest): void {
    const startedMs = performance.now();
    const method = req.getCaseSensitiveMethod().toUpperCase();
    if (method !== 'GET' && method !== 'HEAD') {
      // The body, if any, is not read: close the connection so its bytes are not taken for a request.
      writeReply(
        res,
        errorReply(
          httpError(
            405,
            'METHOD_NOT_ALLOWED',
            '不支持该请求方式',
            `${method.slice(0, 16)} is not allowed here; use GET (a WebSocket upgrade)`,
          ),
          {
            headers: { allow: 'GET' },
            close: true,
          },
        ),
      );
      this.observe(405, startedMs, LABELLED_METHODS.has(method) ? method : 'OTHER');
      return;
    }
    const error = httpError(
      426,
      'UPGRADE_REQUIRED',
      '请使用支持实时通知（WebSocket）的页面打开',
      `${this.options.path} is a WebSocket: open it with Upgrade: websocket, Sec-WebSocket-Key and Sec-WebSocket-Version: 13`,
      { headers: { upgrade: 'websocket', connection: 'Upgrade' } },
    );
    this.refuse(res, error, startedMs, method);
  }

  private observe(status: number, startedMs: number, method = 'GET'): void {
    this.metrics.httpRequest(this.options.path, method, status, (performance.now() - startedMs) / 1000);
  }

  private onOpen(ws: WebSocket<UserData>): void {
    const socket = ws.getUserData().socket;
    socket.ws = ws;
    let sockets = this.byKey.get(socket.key);
    if (sockets === undefined) this.byKey.set(socket.key, (sockets = new Set()));
    sockets.add(socket);
    this.open++;
    this.metrics.websocketOpened();
    try {
      this.options.onOpen?.(socket, this);
    } catch (err) {
      this.log.error({ err, socket: socket.id }, 'websocket onOpen failed');
    }
  }

  private onMessage(ws: WebSocket<UserData>, message: ArrayBuffer, isBinary: boolean): void {
    if (isBinary) return;
    // toString copies: the ArrayBuffer is only valid during this callback.
    const text = Buffer.from(message).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof parsed === 'object' && parsed !== null && (parsed as { type?: unknown }).type === 'ping') {
      this.deliver(ws.getUserData().socket, PONG, PONG.length);
    }
  }

  private onClose(ws: WebSocket<UserData>): void {
    const socket = ws.getUserData().socket;
    socket.closed = true;
    socket.ws = undefined;
    const sockets = this.byKey.get(socket.key);
    sockets?.delete(socket);
    if (sockets?.size === 0) this.byKey.delete(socket.key);
    this.open--;
    this.metrics.websocketClosed();
    try {
      this.options.onClose?.(socket);
    } catch (err) {
      this.log.error({ err, socket: socket.id }, 'websocket onClose failed');
    }
  }
}

function checkOptions(options: WebSocketOptions): void {
  const whole = (value: number, min: number, what: string): void => {
    if (!Number.isInteger(value) || value < min) throw new RangeError(`${what} must be a whole number >= ${min}, got ${value}`);
  };
  whole(options.maxBackpressureBytes, 1024, 'maxBackpressureBytes');
  whole(options.idleTimeoutSec, 8, 'idleTimeoutSec');
  whole(options.maxSockets, 1, 'maxSockets');
  whole(options.maxPayloadLength ?? DEFAULT_MAX_PAYLOAD_LENGTH, 16, 'maxPayloadLength');
}

/** `release` made safe to call more than once: the app's hold is freed once. */
function once(release: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    release();
  };
}

function parseProtocols(header: string): string[] {
  return header
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .slice(0, MAX_OFFERED_PROTOCOLS);
}

function tooManySockets(): HttpError {
  return httpError(503, 'TOO_MANY_CONNECTIONS', '连接人数较多，请稍后再试', 'too many WebSockets are open; retry later', {
    headers: { 'retry-after': RETRY_AFTER_FULL_SEC },
  });
}
