// The HTTP/WebSocket gateway on uWebSockets.js: exact routes with :param segments, bounded JSON bodies,
// one error format, security headers and per-route latency metrics. No business logic: the app passes
// the routes (and the WebSocket endpoint) in.
//
// uWS rules kept here (its docs/index.d.ts): a response not answered inside the uWS callback has
// onAborted attached before anything is awaited; every write after an await is corked; nothing is
// written to an aborted response; body chunks are copied (uWS reuses their memory on return); request
// headers are copied before the callback returns (the request object dies then).
import uWS from 'uWebSockets.js';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { timingSafeEqual } from 'node:crypto';
import { PermissionDeniedError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { unavailableRedisClient } from '../redis/unavailable.js';
import { errorText, httpError, httpErrorOf, internalError, type HttpError } from './errors.js';
import { copyHeaders, errorReply, JSON_CONTENT_TYPE, PROXY_HEADERS, remoteAddressOf, writeReply, type Reply } from './respond.js';
import { WebSocketEndpoint, type WebSocketHub, type WebSocketOptions } from './ws.js';
import { IdTable } from '../id-table.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';
const METHODS: ReadonlySet<string> = new Set<HttpMethod>(['GET', 'POST', 'PUT', 'DELETE']);

export interface GatewayRequest {
  readonly method: HttpMethod;
  /** The path as sent, without the query. */
  readonly path: string;
  /** The route template that matched, e.g. /api/v1/things/:id. */
  readonly routePath: string;
  /** :param segments, URL-decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** Lowercase names; only the headers in respond.ts COPIED_HEADERS. */
  readonly headers: Readonly<Record<string, string>>;
  /** Parsed JSON, or undefined when the request had no body. */
  readonly body: unknown;
  /** A `raw` route's body exactly as received (its `body` is then undefined). */
  readonly rawBody?: Buffer;
  readonly remoteAddress: string;
  /** True once the client went away; the answer will not be sent. */
  aborted(): boolean;
}

export interface GatewayResponse {
  readonly status: number;
  /** A string or bytes are sent as they are (text/plain unless contentType says otherwise); anything else as JSON. */
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly contentType?: string;
}

export interface Route {
  readonly method: HttpMethod;
  /** Exact path; segments starting with ':' are parameters. */
  readonly path: string;
  handler(req: GatewayRequest): Promise<GatewayResponse>;
  /**
   * A route whose body is signed by its sender (a channel's notification): any content type, the bytes
   * as received in `rawBody` (never parsed), these headers copied too, and its own body limit.
   */
  readonly raw?: { readonly headers: readonly string[]; readonly maxBodyBytes: number };
  /**
   * A GET that changes something (a sign-in callback that spends a single-use state): a HEAD is refused
   * with 405 instead of running it, so a link checker or a prefetch cannot use it up.
   */
  readonly noHead?: boolean;
}

export interface GatewayOptions {
  readonly host: string;
  /** 0 = a free port (tests). */
  readonly port: number;
  /** Larger request bodies are refused with 413 (by Content-Length at once, or as the chunks arrive). */
  readonly maxBodyBytes: number;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly routes: readonly Route[];
  /** Readiness for GET /healthz: false, a throw or no answer within HEALTH_TIMEOUT_MS is 503. Default: ready. */
  readonly health?: () => Promise<boolean>;
  /**
   * When set, GET /metrics needs `Authorization: Bearer <token>`; when empty, only loopback may scrape,
   * and not through a reverse proxy (a request with Forwarded / X-Forwarded-For / X-Real-IP / Via).
   */
  readonly metricsToken?: string;
  /** The WebSocket endpoint; none when absent. */
  readonly ws?: WebSocketOptions;
  /** How long shutdown() waits for handlers still running before closing their connections. */
  readonly shutdownGraceMs: number;
  /**
   * A request body must arrive in full within this long of its headers, or it is answered 408 and the
   * connection closed. Default BODY_TIMEOUT_MS; below uWS's own cut-off (about 10 s, silent).
   */
  readonly bodyTimeoutMs?: number;
}

export interface RunningGateway {
  readonly port: number;
  /** The WebSocket hub; undefined when no `ws` options were given. */
  readonly hub: WebSocketHub | undefined;
  /** Stops listening, closes every WebSocket with 1001, waits (bounded) for running handlers, closes the rest. */
  shutdown(): Promise<void>;
}

export const HEALTH_TIMEOUT_MS = 2000;
/**
 * How long a request body may take to arrive (a phone's JSON is under 1 KiB; 16 KiB in 5 s is 3.2 KiB/s).
 * uWS closes a connection whose body comes slower than 16 KiB/s after about 10 s, without a word: this
 * answers first, with a status and a message the page can show.
 */
export const BODY_TIMEOUT_MS = 5000;
/** nginx's code for "the client closed the request"; only a metrics label, never sent. */
const CLIENT_CLOSED_STATUS = 499;

interface PathEntry {
  readonly path: string;
  readonly paramNames: readonly string[];
  readonly methods: ReadonlyMap<string, Route>;
  readonly allow: string;
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  checkOptions(options);
  const app = uWS.App();
  const gateway = new Gateway(options);
  const entries = routeTable([...builtInRoutes(options), ...options.routes]);
  const endpoint = options.ws === undefined ? undefined : new WebSocketEndpoint(app, options.ws, options);
  for (const entry of entries) app.any(entry.path, (res, req) => gateway.onRequest(res, req, entry));
  app.any('/*', (res, req) => gateway.onUnmatched(res, req));
  const listenSocket = await listen(app, options.host, options.port);
  const port = uWS.us_socket_local_port(listenSocket);
  options.log.info({ host: options.host, port }, 'gateway listening');
  let stopped = false;
  return {
    port,
    hub: endpoint,
    async shutdown() {
      if (stopped) return;
      stopped = true;
      uWS.us_listen_socket_close(listenSocket);
      endpoint?.closeAll(1001, 'server shutting down');
      await gateway.drain(options.shutdownGraceMs);
      // Keep-alive connections and handlers past the grace period. close() exists in uWS.js 20.30 but
      // is missing from its typings.
      (app as TemplatedApp & { close?: () => void }).close?.();
    },
  };
}

function checkOptions(options: GatewayOptions): void {
  if (!Number.isInteger(options.maxBodyBytes) || options.maxBodyBytes < 1)
    throw new RangeError(`maxBodyBytes must be a whole number >= 1, got ${options.maxBodyBytes}`);
  if (!Number.isInteger(options.shutdownGraceMs) || options.shutdownGraceMs < 0)
    throw new RangeError('shutdownGraceMs must be a whole number >= 0');
  const bodyTimeoutMs = options.bodyTimeoutMs ?? BODY_TIMEOUT_MS;
  if (!Number.isInteger(bodyTimeoutMs) || bodyTimeoutMs < 100 || bodyTimeoutMs > 8000)
    throw new RangeError(
      `bodyTimeoutMs must be a whole number of 100..8000 (uWS cuts slow bodies off after about 10 s), got ${bodyTimeoutMs}`,
    );
}

function listen(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) =>
      socket === false ? reject(new Error(`the gateway cannot listen on ${host}:${port}`)) : resolve(socket),
    );
  });
}

function builtInRoutes(options: GatewayOptions): Route[] {
  const health = options.health;
  return [
    {
      method: 'GET',
      path: '/healthz',
      handler: async () =>
        health === undefined || (await readiness(health))
          ? { status: 200, body: { status: 'ok' } }
          : { status: 503, body: { status: 'unavailable' } },
    },
    {
      method: 'GET',
      path: '/metrics',
      handler: async (req) => {
        // Operational figures are not for the phones that reach this port: a loopback scraper (not a
        // reverse proxy on this host passing a phone's request on), or one with the metrics token.
        if (!metricsAllowed(req, options.metricsToken ?? '')) {
          throw new PermissionDeniedError(
            '/metrics answers loopback scrapers (not requests a reverse proxy passes on), or one that sends Authorization: Bearer <GATEWAY_METRICS_TOKEN>',
            { reason: 'METRICS_FORBIDDEN', zh: '无权访问' },
          );
        }
        const { contentType, body } = await options.metrics.render();
        return { status: 200, body, contentType };
      },
    },
  ];
}

function metricsAllowed(req: GatewayRequest, token: string): boolean {
  if (token !== '') {
    const presented = Buffer.from(req.headers['authorization'] ?? '');
    const expected = Buffer.from(`Bearer ${token}`);
    return presented.length === expected.length && timingSafeEqual(presented, expected);
  }
  // A reverse proxy on this host connects from loopback: what it forwards is not a local scraper.
  if (PROXY_HEADERS.some((name) => req.headers[name] !== undefined)) return false;
  const address = req.remoteAddress.replace(/^::ffff:/, '').replace(/^0{0,4}(:0{0,4}){6}:0{0,3}1$/, '::1');
  return address.startsWith('127.') || address === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(address);
}

async function readiness(health: () => Promise<boolean>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), HEALTH_TIMEOUT_MS)));
  try {
    return await Promise.race([health().catch(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function routeTable(routes: readonly Route[]): PathEntry[] {
  const byPath = new Map<string, Map<string, Route>>();
  for (const route of routes) {
    if (!METHODS.has(route.method))
      throw new RangeError(`route ${route.path}: method ${String(route.method)} is not one of ${[...METHODS].join(', ')}`);
    if (!/^\/[A-Za-z0-9._~:/-]*$/.test(route.path) || route.path.includes('*'))
      throw new RangeError(`route path ${route.path} is not an exact path`);
    const methods = byPath.get(route.path) ?? new Map<string, Route>();
    if (methods.has(route.method)) throw new RangeError(`route ${route.method} ${route.path} is defined twice`);
    methods.set(route.method, route);
    byPath.set(route.path, methods);
  }
  return [...byPath].map(([path, methods]) => ({
    path,
    paramNames: path
      .split('/')
      .filter((s) => s.startsWith(':'))
      .map((s) => s.slice(1)),
    methods,
    // HEAD is answered wherever GET is (RFC 9110 9.3.2): the GET's status and headers, no body.
    allow: [...methods.keys(), ...(methods.has('GET') && methods.get('GET')?.noHead !== true ? ['HEAD'] : [])].sort().join(', '),
  }));
}

/** The metrics label: the known methods, or OTHER, so a client cannot mint label values. */
function methodLabel(method: string): string {
  return METHODS.has(method) || method === 'HEAD' || method === 'OPTIONS' || method === 'PATCH' ? method : 'OTHER';
}

interface ResponseState {
  aborted: boolean;
  answered: boolean;
  /** A HEAD request: its answer carries no body (one would be read as the start of the next answer). */
  readonly head: boolean;
}

class Gateway {
  /** The handlers still running, by request number: not a Set, as one comes and goes per request (switch/id-table.ts). */
  private readonly running = new IdTable<Promise<void>>();
  private lastRequest = 0;

  constructor(private readonly options: GatewayOptions) {}

  onUnmatched(res: HttpResponse, req: HttpRequest): void {
    const startedMs = performance.now();
    const method = req.getCaseSensitiveMethod().toUpperCase();
    writeReply(
      res,
      errorReply(httpError(404, 'NOT_FOUND', '找不到该页面或接口', `no route for ${req.getUrl().slice(0, 200)}`)),
      method === 'HEAD',
    );
    this.observe('unmatched', method, 404, startedMs);
  }

  onRequest(res: HttpResponse, req: HttpRequest, entry: PathEntry): void {
    const startedMs = performance.now();
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const head = method === 'HEAD';
    const get = head ? entry.methods.get('GET') : undefined;
    const route = entry.methods.get(method) ?? (get?.noHead === true ? undefined : get);
    const answerNow = (error: HttpError, extra: { headers?: Record<string, string>; close?: boolean } = {}): void => {
      writeReply(res, errorReply(error, extra), head);
      this.observe(entry.path, method, error.status, startedMs);
    };
    if (route === undefined) {
      answerNow(httpError(405, 'METHOD_NOT_ALLOWED', '不支持该请求方式', `${method} is not allowed here; use ${entry.allow}`), {
        headers: { allow: entry.allow },
      });
      return;
    }
    const params = readParams(req, entry.paramNames);
    if (params === undefined) {
      answerNow(httpError(404, 'NOT_FOUND', '找不到该页面或接口', 'a path parameter is empty or not valid UTF-8'));
      return;
    }
    const headers = copyHeaders(req);
    for (const name of route.raw?.headers ?? []) {
      const value = req.getHeader(name);
      if (value !== '') headers[name] = value;
    }
    const maxBodyBytes = route.raw?.maxBodyBytes ?? this.options.maxBodyBytes;
    const chunked = req.getHeader('transfer-encoding') !== '';
    if (chunked) headers['transfer-encoding'] = 'chunked';
    const refusal = refuseByHeaders(headers, chunked, maxBodyBytes, route.raw !== undefined);
    if (refusal !== undefined) {
      // The body is not read: close the connection so its bytes are not taken for the next request.
      answerNow(refusal, { close: true });
      return;
    }
    const state: ResponseState = { aborted: false, answered: false, head };
    let stopReading: () => void = () => undefined;
    res.onAborted(() => {
      state.aborted = true;
      stopReading();
    });
    const partial = {
      // A HEAD runs the GET route: its handler sees GET.
      method: route.method,
      path: req.getUrl(),
      routePath: entry.path,
      params,
      query: new URLSearchParams(req.getQuery()),
      headers,
      remoteAddress: remoteAddressOf(res),
    };
    const deadlineMs = expectsBody(headers) ? (this.options.bodyTimeoutMs ?? BODY_TIMEOUT_MS) : undefined;
    stopReading = readBody(res, maxBodyBytes, deadlineMs, (body) => {
      if (state.aborted) return;
      if (body === 'too_large')
        return this.finish(res, state, entry.path, method, startedMs, errorReply(bodyTooLarge(maxBodyBytes), { close: true }));
      if (body === 'too_slow')
        return this.finish(res, state, entry.path, method, startedMs, errorReply(bodyTooSlow(deadlineMs ?? 0), { close: true }));
      if (route.raw !== undefined)
        return this.track(
          this.run(route, { ...partial, body: undefined, rawBody: body, aborted: () => state.aborted }, res, state, startedMs),
        );
      const parsed = parseJson(body);
      if (parsed === MALFORMED)
        return this.finish(
          res,
          state,
          entry.path,
          method,
          startedMs,
          errorReply(httpError(400, 'MALFORMED_JSON', '请求内容有误：不是有效的 JSON', 'the request body is not valid JSON')),
        );
      const request: GatewayRequest = { ...partial, body: parsed, aborted: () => state.aborted };
      this.track(this.run(route, request, res, state, startedMs));
    });
  }

  /** Waits for running handlers, at most `graceMs`. */
  async drain(graceMs: number): Promise<void> {
    if (this.running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.running.values()]), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  private track(run: Promise<void>): void {
    const id = (this.lastRequest = (this.lastRequest + 1) % 0x7fffffff);
    const tracked = run
      .catch((err: unknown) => this.options.log.error({ err }, 'gateway could not answer a request'))
      .finally(() => this.running.delete(id));
    this.running.set(id, tracked);
  }

  private async run(route: Route, request: GatewayRequest, res: HttpResponse, state: ResponseState, startedMs: number): Promise<void> {
    let reply: Reply | undefined;
    try {
      const response = await route.handler(request);
      try {
        reply = toReply(response);
      } catch (err) {
        // The handler's answer cannot be sent (bad status, a value JSON cannot hold): our bug.
        this.options.log.error({ err, route: route.path, method: route.method }, 'handler answered something that cannot be sent');
        reply = errorReply(internalError());
      }
    } catch (err) {
      reply = this.failure(err, request);
    }
    if (reply === undefined) {
      // Cancelled: nothing to answer. A client still connected gets its connection closed, never a hang.
      if (!state.aborted && !state.answered) {
        state.answered = true;
        res.close();
      }
      this.observe(route.path, state.head ? 'HEAD' : request.method, CLIENT_CLOSED_STATUS, startedMs);
      return;
    }
    this.finish(res, state, route.path, state.head ? 'HEAD' : request.method, startedMs, reply);
  }

  private failure(err: unknown, request: GatewayRequest): Reply | undefined {
    const mapped = httpErrorOf(err);
    if (mapped === undefined) return undefined;
    const redisClient = unavailableRedisClient(err);
    if (redisClient !== undefined) this.options.metrics.redisError(redisClient);
    if (mapped.serious) this.options.log.error({ err, route: request.routePath, method: request.method }, 'gateway request failed');
    else if (mapped.ledgerUnavailable)
      this.options.log.warn(
        { route: request.routePath, method: request.method, cause: errorText(err) },
        'gateway request failed: the ledger did not answer (503)',
      );
    else
      this.options.log.debug(
        { route: request.routePath, code: mapped.body.error.code, details: mapped.body.error.messageEn },
        'gateway request refused',
      );
    return errorReply(mapped);
  }

  private finish(res: HttpResponse, state: ResponseState, routePath: string, method: string, startedMs: number, reply: Reply): void {
    if (state.answered) return;
    state.answered = true;
    if (state.aborted) {
      this.observe(routePath, method, CLIENT_CLOSED_STATUS, startedMs);
      return;
    }
    writeReply(res, reply, state.head);
    this.observe(routePath, method, reply.status, startedMs);
  }

  private observe(routePath: string, method: string, status: number, startedMs: number): void {
    this.options.metrics.httpRequest(routePath, methodLabel(method), status, (performance.now() - startedMs) / 1000);
  }
}

function readParams(req: HttpRequest, names: readonly string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) {
    const raw = req.getParameter(i);
    if (raw === '') return undefined;
    try {
      params[names[i] as string] = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
  }
  return params;
}

function bodyTooSlow(deadlineMs: number): HttpError {
  return httpError(
    408,
    'REQUEST_TIMEOUT',
    '网络较慢，提交的内容未能及时送达，请重试',
    `the request body did not arrive in full within ${deadlineMs / 1000} s; send it again`,
  );
}

/** A request that announced a body (Content-Length above 0, or chunked): only then is its arrival timed. */
function expectsBody(headers: Readonly<Record<string, string>>): boolean {
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] ?? '0') !== '0';
}

function bodyTooLarge(maxBodyBytes: number): HttpError {
  return httpError(413, 'PAYLOAD_TOO_LARGE', '提交的内容过大', `the request body is larger than ${maxBodyBytes} bytes`);
}

/** 413 by Content-Length, or 415 for a body that is not JSON, before a byte of the body is read. */
function refuseByHeaders(
  headers: Readonly<Record<string, string>>,
  chunked: boolean,
  maxBodyBytes: number,
  anyType = false,
): HttpError | undefined {
  const declared = headers['content-length'];
  const length = declared === undefined ? 0 : Number(declared);
  if (!Number.isSafeInteger(length) || length < 0)
    return httpError(400, 'INVALID_ARGUMENT', '请求内容有误：Content-Length 无效', 'Content-Length is not a valid length');
  if (length > maxBodyBytes) return bodyTooLarge(maxBodyBytes);
  if ((length === 0 && !chunked) || anyType) return undefined;
  const mediaType = (headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    return httpError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      '请求格式不受支持',
      `send the body as application/json (got ${JSON.stringify((headers['content-type'] ?? '').slice(0, 80))})`,
    );
  }
  return undefined;
}

/**
 * Collects the body, copying each chunk (uWS neuters its ArrayBuffer when the callback returns). Past
 * `limit` bytes it stops keeping chunks and reports 'too_large' once; a body not complete `deadlineMs`
 * after the headers is 'too_slow' (its chunks dropped); either way the caller answers and closes.
 * Answers a function that stops it (the client went away): chunks and deadline are dropped at once.
 */
function readBody(
  res: HttpResponse,
  limit: number,
  deadlineMs: number | undefined,
  done: (body: Buffer | 'too_large' | 'too_slow') => void,
): () => void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const end = (outcome: Buffer | 'too_large' | 'too_slow'): void => {
    finished = true;
    clearTimeout(timer);
    done(outcome);
  };
  // The answer is written by `done` (corked there); a client gone by then is told apart by the caller.
  const timer =
    deadlineMs === undefined
      ? undefined
      : setTimeout(() => {
          if (finished) return;
          chunks.length = 0;
          end('too_slow');
        }, deadlineMs);
  res.onData((chunk, isLast) => {
    if (finished) return;
    size += chunk.byteLength;
    if (size > limit) {
      chunks.length = 0;
      end('too_large');
      return;
    }
    if (chunk.byteLength > 0) chunks.push(Buffer.copyBytesFrom(new Uint8Array(chunk)));
    if (isLast) end(Buffer.concat(chunks, size));
  });
  return () => {
    finished = true;
    chunks.length = 0;
    clearTimeout(timer);
  };
}

const MALFORMED = Symbol('malformed');

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return MALFORMED;
  }
}

function toReply(response: GatewayResponse): Reply {
  if (!Number.isInteger(response.status) || response.status < 200 || response.status > 599) {
    throw new RangeError(`handler answered status ${response.status}`);
  }
  const headers = response.headers ?? {};
  if (typeof response.body === 'string' || response.body instanceof Uint8Array) {
    return { status: response.status, body: response.body, contentType: response.contentType ?? 'text/plain; charset=utf-8', headers };
  }
  const body = response.body === undefined ? '' : JSON.stringify(response.body);
  return { status: response.status, body, contentType: response.contentType ?? JSON_CONTENT_TYPE, headers };
}
