// The uWS gateway framework with fake routes, over real sockets: routing, bounded JSON bodies, one error
// format with zh-CN and English messages, security headers, per-route metrics, and the WebSocket hub
// with its bounds (authentication, grouping by key, a client that stops reading, an idle socket).
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import {
  AlreadyExistsError,
  CancelledError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PasswordLockedError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  UnimplementedError,
  WrongPasswordError,
} from '../switch/errors.js';
import { startGateway, type GatewayOptions, type GatewayRequest, type RunningGateway } from '../switch/gateway/http.js';
import type { SocketHandle, WebSocketHub, WebSocketOptions } from '../switch/gateway/ws.js';
import { IdempotencyConflictError } from '../switch/ledger/ledger.js';
import { createLogger } from '../switch/log.js';
import { createMetrics, type Metrics } from '../switch/metrics.js';
import { PipelineUnavailableError } from '../switch/redis/pipeline-client.js';
import { PasswordPoolBusyError } from '../switch/workers/password-pool.js';
import type { AuthorizeRequest, AuthorizeResponse, StreamedAuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { call, grpcError, openCard, POS_TERMINAL, posClient, startTestSwitch, terminalMetadata } from './helpers/switch.js';

const MAX_BODY_BYTES = 1024;
const MAX_BACKPRESSURE_BYTES = 256 * 1024;
const EVENTS_PATH = '/api/v1/events';

interface Deferred<T> {
  readonly promise: Promise<T>;
  readonly resolve: (value: T) => void;
}

/** A promise with its resolve, for a handler the test holds open. */
function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Rejects after `ms`: only a failure bound, never a synchronisation. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/** Polls a condition once per event-loop turn, for state that has no event of its own. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const DOMAIN_ERRORS: Record<string, () => Error> = {
  invalid: () => new InvalidArgumentError('amount_fen must be above 0', { field: 'amountFen' }),
  'invalid-reason': () =>
    new InvalidArgumentError('tap the card on a POS first', { reason: 'CARD_NOT_SYNCED', zh: '请先在POS机上刷卡激活', field: 'card' }),
  unauthenticated: () => new UnauthenticatedError('the session has ended'),
  permission: () => new PermissionDeniedError('this card belongs to someone else'),
  'wrong-password': () => new WrongPasswordError(3),
  'not-found': () => new NotFoundError('no such card'),
  exists: () => new AlreadyExistsError('the card is bound to another user'),
  idempotency: () => new IdempotencyConflictError('order 42 was used for a different request'),
  precondition: () => new FailedPreconditionError('the card is lost'),
  locked: () => new PasswordLockedError(),
  exhausted: () => new ResourceExhaustedError('too many codes today'),
  'pool-busy': () => new PasswordPoolBusyError('password checks are busy (1000 waiting)'),
  unimplemented: () => new UnimplementedError('third-party codes are not enabled'),
  unavailable: () => new UnavailableError('the identity provider did not answer'),
  'redis-down': () => new PipelineUnavailableError('Connection is closed: the ledger connection broke'),
  internal: () => new Error('secret internal detail at /srv/cardswitch/ledger.ts:42'),
  cancelled: () => new CancelledError('the caller went away'),
};

interface TestGateway {
  readonly gateway: RunningGateway;
  readonly hub: WebSocketHub;
  readonly metrics: Metrics;
  readonly base: string;
  readonly opened: SocketHandle[];
  /** Resolves when the server has closed (or seen close of) this socket. */
  closedOf(handle: SocketHandle): Promise<void>;
  /** Resolves with the handle of the next socket the server opens. */
  nextOpen(): Promise<SocketHandle>;
  held: { entered: Deferred<GatewayRequest>; release: Deferred<void> };
  healthy: { ready: boolean | 'hang' };
}

async function start(overrides: Partial<GatewayOptions> = {}, wsOverrides: Partial<WebSocketOptions> = {}): Promise<TestGateway> {
  const metrics = createMetrics();
  const opened: SocketHandle[] = [];
  const closed = new Map<SocketHandle, () => void>();
  const closedPromises = new Map<SocketHandle, Promise<void>>();
  let openWaiters: ((h: SocketHandle) => void)[] = [];
  const held = { entered: deferred<GatewayRequest>(), release: deferred<void>() };
  const healthy: { ready: boolean | 'hang' } = { ready: true };
  const ws: WebSocketOptions = {
    path: EVENTS_PATH,
    maxBackpressureBytes: MAX_BACKPRESSURE_BYTES,
    idleTimeoutSec: 8,
    maxSockets: 100,
    authenticate: async ({ query, protocols }) => {
      await Promise.resolve(); // answered after an await, as a real session lookup is
      const token = query.get('token') ?? '';
      if (token === 'forbidden') throw new PermissionDeniedError('this card is not yours', { zh: '无权查看此卡' });
      if (!token.startsWith('good-')) throw new UnauthenticatedError('no valid session', { zh: '请先登录' });
      return { key: token.slice(5), ...(protocols.includes('cardswitch.v1') ? { protocol: 'cardswitch.v1' } : {}) };
    },
    onOpen: (handle) => {
      opened.push(handle);
      let resolve!: () => void;
      closedPromises.set(handle, new Promise<void>((r) => (resolve = r)));
      closed.set(handle, resolve);
      const waiters = openWaiters;
      openWaiters = [];
      for (const w of waiters) w(handle);
    },
    onClose: (handle) => closed.get(handle)?.(),
    ...wsOverrides,
  };
  const gateway = await startGateway({
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: MAX_BODY_BYTES,
    log: createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent'),
    metrics,
    shutdownGraceMs: 1000,
    health: () => (healthy.ready === 'hang' ? new Promise<boolean>(() => undefined) : Promise.resolve(healthy.ready)),
    ws,
    routes: [
      {
        method: 'GET',
        path: '/api/v1/things/:id',
        handler: (req) =>
          Promise.resolve({
            status: 200,
            body: { id: req.params['id'], q: req.query.get('q'), routePath: req.routePath, ua: req.headers['user-agent'] },
          }),
      },
      {
        method: 'POST',
        path: '/api/v1/things',
        handler: (req) => Promise.resolve({ status: 201, body: { received: req.body }, headers: { location: '/api/v1/things/1' } }),
      },
      {
        method: 'PUT',
        path: '/api/v1/things/:id',
        handler: (req) => Promise.resolve({ status: 200, body: { id: req.params['id'], received: req.body } }),
      },
      {
        method: 'POST',
        path: '/api/v1/held',
        handler: async (req) => {
          held.entered.resolve(req);
          await held.release.promise;
          return { status: 200, body: { ok: true } };
        },
      },
      {
        method: 'GET',
        path: '/api/v1/fail/:kind',
        handler: (req) => {
          const make = DOMAIN_ERRORS[req.params['kind'] ?? ''];
          return Promise.reject(make === undefined ? new NotFoundError('no such failure') : make());
        },
      },
    ],
    ...overrides,
  });
  onTestFinished(() => gateway.shutdown());
  if (gateway.hub === undefined) throw new Error('the gateway has no hub');
  return {
    gateway,
    hub: gateway.hub,
    metrics,
    base: `http://127.0.0.1:${gateway.port}`,
    opened,
    held,
    healthy,
    closedOf: (handle) => closedPromises.get(handle) ?? Promise.reject(new Error('unknown handle')),
    nextOpen: () => new Promise((resolve) => openWaiters.push(resolve)),
  };
}

interface Answer {
  status: number;
  headers: Headers;
  json: { error?: { code: string; message: string; messageEn: string; field?: string; attemptsLeft?: number } } & Record<string, unknown>;
}

async function send(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text === '' ? {} : (JSON.parse(text) as Answer['json']) };
}

/** One raw HTTP/1.1 exchange: writes `head`, then each body piece after the previous one was flushed, until the server answers. */
function rawExchange(port: number, head: string, pieces: readonly Buffer[] = []): Promise<{ response: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let response = '';
    let piecesWritten = 0;
    let answered = false;
    const finish = (closed: boolean): void => resolve({ response, closed });
    socket.on('data', (data) => {
      response += data.toString('utf8');
      answered = true;
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => undefined); // writes after the server closed: EPIPE / ECONNRESET
    const writeNext = (): void => {
      if (answered || piecesWritten >= pieces.length || socket.destroyed) return;
      const piece = pieces[piecesWritten++] as Buffer;
      socket.write(piece, (err) => (err ? undefined : writeNext()));
    };
    socket.write(head, (err) => (err ? reject(err) : writeNext()));
  });
}

function statusOf(raw: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
}

function jsonOf(raw: string): Answer['json'] {
  return JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Answer['json'];
}

function expectErrorBody(json: Answer['json'], code: string): void {
  expect(json.error?.code).toBe(code);
  expect(json.error?.message).toMatch(/[\u4e00-\u9fff]/); // zh-CN
  expect(json.error?.messageEn).toMatch(/[a-z]/);
}

async function metricValue(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const { body } = await metrics.render();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every((w) => line.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

function wsUrl(t: TestGateway, token: string): string {
  return `ws://127.0.0.1:${t.gateway.port}${EVENTS_PATH}?token=${encodeURIComponent(token)}`;
}

async function openClient(
  t: TestGateway,
  token: string,
  protocols: string[] = [],
): Promise<{ client: WebSocket; handle: SocketHandle; messages: string[]; next(): Promise<string> }> {
  const handle = t.nextOpen();
  const client = new WebSocket(wsUrl(t, token), protocols);
  onTestFinished(() => client.terminate());
  const messages: string[] = [];
  let waiters: ((m: string) => void)[] = [];
  client.on('message', (data) => {
    const text = (data as Buffer).toString('utf8');
    messages.push(text);
    const ws = waiters;
    waiters = [];
    for (const w of ws) w(text);
  });
  await within(new Promise((resolve, reject) => client.once('open', resolve).once('error', reject)), 5000, 'the WebSocket to open');
  let read = 0;
  return {
    client,
    handle: await within(handle, 5000, 'the server to open the socket'),
    messages,
    next: () =>
      read < messages.length
        ? Promise.resolve(messages[read++] as string)
        : new Promise((resolve) => waiters.push((m) => (read++, resolve(m)))),
  };
}

/** The HTTP answer to an upgrade the server refuses. */
function refusedUpgrade(url: string): Promise<{ status: number; body: Answer['json']; headers: Record<string, unknown> }> {
  return within(
    new Promise((resolve, reject) => {
      const client = new WebSocket(url);
      client.on('open', () => reject(new Error('the upgrade was accepted')));
      client.on('error', () => undefined);
      client.on('unexpected-response', (_req, res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Answer['json'], headers: res.headers }));
      });
    }),
    5000,
    'the refused upgrade',
  );
}

/** A WebSocket client written by hand on a raw socket: it reads everything and never answers a ping. */
function silentWebSocket(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    let head = '';
    socket.on('error', () => undefined);
    socket.on('data', (data) => {
      if (head.includes('\r\n\r\n')) return; // frames (pings) are read and ignored
      head += data.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      if (statusOf(head) === 101) resolve({ socket, closed });
      else reject(new Error(`upgrade refused: ${head.slice(0, 60)}`));
    });
    socket.write(
      `GET ${EVENTS_PATH}?token=good-silent HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
}

describe('gateway routes', () => {
  it('answers JSON with the security headers, URL-decoded params, query and copied headers', async () => {
    const t = await start();
    const got = await send(`${t.base}/api/v1/things/a%20b?q=x%26y`, { headers: { 'user-agent': 'test-agent' } });
    expect(got.status).toBe(200);
    expect(got.json).toEqual({ id: 'a b', q: 'x&y', routePath: '/api/v1/things/:id', ua: 'test-agent' });
    expect(got.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(got.headers.get('cache-control')).toBe('no-store');
    expect(got.headers.get('x-content-type-options')).toBe('nosniff');
    expect(got.headers.get('referrer-policy')).toBe('no-referrer');

    const created = await send(`${t.base}/api/v1/things`, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ name: '张三', amountFen: 1250 }),
    });
    expect(created.status).toBe(201);
    expect(created.json).toEqual({ received: { name: '张三', amountFen: 1250 } });
    expect(created.headers.get('location')).toBe('/api/v1/things/1');
    // No body at all: body is undefined, not an error.
    const empty = await send(`${t.base}/api/v1/things/7`, { method: 'PUT' });
    expect(empty).toMatchObject({ status: 200, json: { id: '7' } });
  });

  it('answers 404 for an unknown path and 405 with Allow for a known path with another method, in the error format', async () => {
    const t = await start();
    const missing = await send(`${t.base}/api/v1/nothing-here`);
    expect(missing.status).toBe(404);
    expectErrorBody(missing.json, 'NOT_FOUND');
    expect(missing.headers.get('cache-control')).toBe('no-store');

    const wrong = await send(`${t.base}/api/v1/things`, { method: 'DELETE' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    expectErrorBody(wrong.json, 'METHOD_NOT_ALLOWED');
    const both = await send(`${t.base}/api/v1/things/3`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(both.status).toBe(405);
    expect(both.headers.get('allow')).toBe('GET, HEAD, PUT');
  });

  it('refuses a Content-Length over the limit with 413 at once, without reading the body', async () => {
    const t = await start();
    const head = `POST /api/v1/things HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n`;
    // Not a byte of the body is sent: the answer can only come from the header.
    const { response, closed } = await within(rawExchange(t.gateway.port, head), 5000, 'the 413');
    expect(statusOf(response)).toBe(413);
    expectErrorBody(jsonOf(response), 'PAYLOAD_TOO_LARGE');
    expect(response.toLowerCase()).toContain('cache-control: no-store');
    expect(closed).toBe(true);
    expect((await send(`${t.base}/api/v1/things/after`)).status).toBe(200);
  });

  it('refuses a chunked body that grows past the limit with 413 while it streams, and closes the connection', async () => {
    const t = await start();
    const head = 'POST /api/v1/things HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
    const piece = Buffer.from(`100\r\n${' '.repeat(256)}\r\n`); // 256 bytes of JSON whitespace per chunk
    // 64 chunks = 16 KiB with no Content-Length and no final chunk: the body never ends, so the 413 can
    // only come from counting the chunks as they arrive.
    const { response, closed } = await within(
      rawExchange(
        t.gateway.port,
        head,
        Array.from({ length: 64 }, () => piece),
      ),
      5000,
      'the 413',
    );
    expect(statusOf(response)).toBe(413);
    expectErrorBody(jsonOf(response), 'PAYLOAD_TOO_LARGE');
    expect(closed).toBe(true);
    expect((await send(`${t.base}/api/v1/things/after`)).status).toBe(200);
  });

  it('answers 408 with zh-CN and English to a body that trickles in slower than the body deadline, and closes; the handler never runs', async () => {
    let ran = 0;
    const t = await start({
      bodyTimeoutMs: 1000,
      routes: [{ method: 'POST', path: '/api/v1/slow', handler: () => (ran++, Promise.resolve({ status: 200, body: {} })) }],
    });
    const answer = await within(
      new Promise<{ response: string }>((resolve) => {
        const socket = net.connect(t.gateway.port, '127.0.0.1');
        let response = '';
        socket.on('error', () => undefined);
        socket.on('data', (d) => (response += d.toString('utf8')));
        socket.on('close', () => {
          clearInterval(trickle);
          resolve({ response });
        });
        socket.write('POST /api/v1/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{');
        // One byte every 50 ms: 500 bytes would take 25 s (uWS alone would close it silently after about 10 s).
        const trickle = setInterval(() => socket.write(' '), 50);
      }),
      5000,
      'the slow body to be cut off',
    );
    expect(statusOf(answer.response)).toBe(408);
    expectErrorBody(jsonOf(answer.response), 'REQUEST_TIMEOUT');
    expect(ran).toBe(0);
    // A body that arrives in time is read as always (and its deadline does not outlive it).
    const fine = await send(`${t.base}/api/v1/slow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(fine.status).toBe(200);
    expect(ran).toBe(1);
  });

  it('answers 415 for a body that is not JSON and 400 for malformed JSON', async () => {
    const t = await start();
    const text = await send(`${t.base}/api/v1/things`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
    expect(text.status).toBe(415);
    expectErrorBody(text.json, 'UNSUPPORTED_MEDIA_TYPE');
    const broken = await send(`${t.base}/api/v1/things`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"amountFen": 12',
    });
    expect(broken.status).toBe(400);
    expectErrorBody(broken.json, 'MALFORMED_JSON');
  });

  it('survives a client that goes away mid-body or while its handler runs; the next request works', async () => {
    const t = await start();
    // Mid-body: 100 of 500 declared bytes, then the client is gone.
    const socket = net.connect(t.gateway.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.on('connect', resolve));
    await new Promise<void>((resolve) =>
      socket.write(
        `POST /api/v1/things HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"a":"${'x'.repeat(93)}`,
        () => resolve(),
      ),
    );
    socket.destroy();
    expect((await send(`${t.base}/api/v1/things/next`)).status).toBe(200);

    // While the handler runs: the answer is never written to the dead response.
    const held = net.connect(t.gateway.port, '127.0.0.1');
    held.on('error', () => undefined);
    held.write('POST /api/v1/held HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
    const request = await within(t.held.entered.promise, 5000, 'the held handler');
    expect(request.aborted()).toBe(false);
    held.destroy();
    await until(() => request.aborted(), 5000, 'the server to see the abort');
    t.held.release.resolve();
    expect((await send(`${t.base}/api/v1/things/after`)).status).toBe(200);
    expect(await metricValue(t.metrics, 'cardswitch_http_request_duration_seconds_count', { route: '/api/v1/held', status: '499' })).toBe(
      1,
    );
  });

  it('answers HEAD as GET without a body (and 404 / 405 to HEAD without one): the next answer on the connection is not corrupted', async () => {
    const t = await start();
    // A monitor's HEAD, then a GET on the same keep-alive connection. A body after a HEAD answer would
    // be read as the start of the next answer (RFC 9112 6.3: a HEAD answer ends with its headers).
    const pipeline = (lines: string[]) => lines.map((l) => `${l} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');
    const exchange = (text: string, answers: number): Promise<string> =>
      within(
        new Promise((resolve) => {
          const socket = net.connect(t.gateway.port, '127.0.0.1');
          let got = '';
          socket.on('error', () => undefined);
          socket.on('data', (d) => {
            got += d.toString('latin1');
            if ((got.match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= answers && got.endsWith('"ok"}')) {
              socket.destroy();
              resolve(got);
            }
          });
          socket.write(text);
        }),
        5000,
        'the answers',
      );
    const raw = await exchange(pipeline(['HEAD /healthz', 'HEAD /api/v1/nothing-here', 'HEAD /api/v1/things', 'GET /healthz']), 4);
    const answers = raw.split(/(?=HTTP\/1\.1 \d{3} )/);
    expect(answers.map(statusOf)).toEqual([200, 404, 405, 200]);
    for (const head of answers.slice(0, 3)) expect(head.endsWith('\r\n\r\n')).toBe(true); // nothing after the headers
    expect(answers[0]).toMatch(/content-length: 15\r\n/i); // the GET's length, as RFC 9110 9.3.2 allows
    expect(answers[2]).toMatch(/allow: POST\r\n/i);
    expect(jsonOf(answers[3] as string)).toEqual({ status: 'ok' });
  });

  it('GET /healthz follows the health callback (503 when not ready or when it does not answer in time)', async () => {
    const t = await start();
    expect(await send(`${t.base}/healthz`)).toMatchObject({ status: 200, json: { status: 'ok' } });
    t.healthy.ready = false;
    expect(await send(`${t.base}/healthz`)).toMatchObject({ status: 503, json: { status: 'unavailable' } });
    t.healthy.ready = 'hang';
    expect(await send(`${t.base}/healthz`)).toMatchObject({ status: 503 });
  });

  it('GET /metrics shows the HTTP histogram per route template, moving with requests', async () => {
    const t = await start();
    const labels = { route: '/api/v1/things/:id', method: 'GET', status: '200' };
    const before = await metricValue(t.metrics, 'cardswitch_http_request_duration_seconds_count', labels);
    for (const id of ['1', '2', '3']) expect((await send(`${t.base}/api/v1/things/${id}`)).status).toBe(200);
    await send(`${t.base}/no/such/path`);
    const scraped = await fetch(`${t.base}/metrics`);
    expect(scraped.headers.get('content-type')).toContain('text/plain');
    const text = await scraped.text();
    const line = text
      .split('\n')
      .find(
        (l) =>
          l.startsWith('cardswitch_http_request_duration_seconds_count{') &&
          l.includes('route="/api/v1/things/:id"') &&
          l.includes('status="200"'),
      );
    expect(line, text.slice(0, 2000)).toBeDefined();
    expect(Number(line?.split(' ').pop())).toBe(before + 3);
    // Raw URLs never become labels: the 404 is counted as "unmatched".
    expect(text).toContain('route="unmatched"');
    expect(text).not.toContain('/api/v1/things/1"');
    expect(text).toContain('process_cpu_seconds_total');
  });

  it('GET /metrics with GATEWAY_METRICS_TOKEN set needs the token (403 without it, even from loopback)', async () => {
    const t = await start({ metricsToken: 'scrape-token-0123456789' });
    const without = await fetch(`${t.base}/metrics`);
    expect(without.status).toBe(403);
    expect(((await without.json()) as { error: { code: string } }).error.code).toBe('METRICS_FORBIDDEN');
    expect((await fetch(`${t.base}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789x' } })).status).toBe(403);
    const withToken = await fetch(`${t.base}/metrics`, { headers: { authorization: 'Bearer scrape-token-0123456789' } });
    expect(withToken.status).toBe(200);
    expect(await withToken.text()).toContain('cardswitch_http_request_duration_seconds');
  });

  it('GET /metrics without a token refuses a loopback request that came through a reverse proxy (Forwarded, X-Forwarded-For, X-Real-IP, Via)', async () => {
    // The campus's reverse proxy on the same host connects from 127.0.0.1: without this every phone on
    // the internet could scrape /metrics through it. A scraper on the host sends none of these.
    const t = await start();
    const proxiedHeaders: Record<string, string>[] = [
      { 'x-forwarded-for': '203.0.113.7' },
      { forwarded: 'for=203.0.113.7;proto=https' },
      { 'x-real-ip': '203.0.113.7' },
      { via: '1.1 nginx' },
    ];
    for (const headers of proxiedHeaders) {
      const proxied = await fetch(`${t.base}/metrics`, { headers });
      expect(proxied.status).toBe(403);
      const json = (await proxied.json()) as Answer['json'];
      expectErrorBody(json, 'METRICS_FORBIDDEN');
    }
    expect((await fetch(`${t.base}/metrics`)).status).toBe(200);
  });
});

describe('gateway error mapping', () => {
  const cases: [kind: string, status: number, code: string, extra?: (a: Answer) => void][] = [
    ['invalid', 400, 'INVALID_ARGUMENT', (a) => expect(a.json.error?.field).toBe('amountFen')],
    [
      'invalid-reason',
      400,
      'CARD_NOT_SYNCED',
      (a) =>
        expect(a.json.error).toMatchObject({ message: '请先在POS机上刷卡激活', messageEn: 'tap the card on a POS first', field: 'card' }),
    ],
    ['unauthenticated', 401, 'UNAUTHENTICATED', (a) => expect(a.headers.get('www-authenticate')).toBe('Bearer')],
    ['permission', 403, 'PERMISSION_DENIED'],
    [
      'wrong-password',
      403,
      'WRONG_PASSWORD',
      (a) => expect(a.json.error).toMatchObject({ attemptsLeft: 3, field: 'password', message: '卡密码错误，今日还可尝试3次' }),
    ],
    ['not-found', 404, 'NOT_FOUND'],
    ['exists', 409, 'ALREADY_EXISTS'],
    ['idempotency', 409, 'IDEMPOTENCY_CONFLICT'],
    ['precondition', 409, 'FAILED_PRECONDITION'],
    ['locked', 429, 'PASSWORD_LOCKED', (a) => expect(a.json.error?.attemptsLeft).toBe(0)],
    ['exhausted', 429, 'RESOURCE_EXHAUSTED', (a) => expect(a.headers.get('retry-after')).toMatch(/^\d+$/)],
    ['pool-busy', 429, 'PASSWORD_CHECK_BUSY', (a) => expect(a.headers.get('retry-after')).toMatch(/^\d+$/)],
    ['unimplemented', 501, 'UNIMPLEMENTED'],
    [
      'unavailable',
      503,
      'UNAVAILABLE',
      (a) => expect(a.json.error).toMatchObject({ message: '系统繁忙，请稍后再试', messageEn: 'the identity provider did not answer' }),
    ],
    ['redis-down', 503, 'UNAVAILABLE', (a) => expect(a.headers.get('retry-after')).toMatch(/^\d+$/)],
    ['internal', 500, 'INTERNAL', (a) => expect(JSON.stringify(a.json)).not.toMatch(/secret|srv|ledger\.ts/)],
  ];

  it.each(cases)('a handler throwing %s answers %i %s with zh-CN and English messages', async (kind, status, code, extra) => {
    const t = await start();
    const answer = await send(`${t.base}/api/v1/fail/${kind}`);
    expect(answer.status).toBe(status);
    expectErrorBody(answer.json, code);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    extra?.(answer);
  });

  it('counts a ledger outage as a Redis error of its client', async () => {
    const t = await start();
    await send(`${t.base}/api/v1/fail/redis-down`);
    expect(await metricValue(t.metrics, 'cardswitch_redis_errors_total', { client: 'pipeline' })).toBe(1);
  });

  it('answers nothing to a cancelled request: the connection is closed, the server goes on', async () => {
    const t = await start();
    await expect(fetch(`${t.base}/api/v1/fail/cancelled`)).rejects.toThrow();
    expect((await send(`${t.base}/api/v1/things/after`)).status).toBe(200);
  });
});

describe('gateway WebSockets', () => {
  it('refuses an upgrade the app does not authenticate with the mapped HTTP status and JSON', async () => {
    const t = await start();
    const unauthenticated = await refusedUpgrade(wsUrl(t, 'nobody'));
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.body.error).toMatchObject({ code: 'UNAUTHENTICATED', message: '请先登录', messageEn: 'no valid session' });
    expect(unauthenticated.headers['www-authenticate']).toBe('Bearer');
    const forbidden = await refusedUpgrade(wsUrl(t, 'forbidden'));
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error?.message).toBe('无权查看此卡');
    expect(t.hub.count()).toBe(0);
  });

  it('echoes the chosen subprotocol, or the first offered when the app chose none', async () => {
    const t = await start();
    const chosen = await openClient(t, 'good-A', ['other', 'cardswitch.v1']);
    expect(chosen.client.protocol).toBe('cardswitch.v1');
    expect(chosen.handle.protocol).toBe('cardswitch.v1');
    const first = await openClient(t, 'good-A', ['x-first', 'x-second']);
    expect(first.client.protocol).toBe('x-first');
    const none = await openClient(t, 'good-A');
    expect(none.client.protocol).toBe('');
  });

  it('hub.send reaches every socket of the key and no other; ping gets pong; the gauge counts sockets', async () => {
    const t = await start();
    const a1 = await openClient(t, 'good-20230001');
    const a2 = await openClient(t, 'good-20230001');
    const b = await openClient(t, 'good-20230002');
    expect(t.hub.count()).toBe(3);
    expect(await metricValue(t.metrics, 'cardswitch_websockets_open', {})).toBe(3);

    expect(t.hub.send('20230001', '{"type":"payment","amountFen":1250}')).toBe(2);
    expect(t.hub.send('20230002', '{"type":"marker"}')).toBe(1);
    expect(t.hub.send('20239999', 'nobody')).toBe(0);
    expect(await within(a1.next(), 5000, 'a1')).toBe('{"type":"payment","amountFen":1250}');
    expect(await within(a2.next(), 5000, 'a2')).toBe('{"type":"payment","amountFen":1250}');
    // Messages to one socket arrive in order: B's first message being the marker proves it missed the payment.
    expect(await within(b.next(), 5000, 'b')).toBe('{"type":"marker"}');
    expect(t.hub.sendTo(b.handle, '{"type":"direct"}')).toBe(true);
    expect(await within(b.next(), 5000, 'b direct')).toBe('{"type":"direct"}');

    b.client.send(JSON.stringify({ type: 'ping' }));
    expect(JSON.parse(await within(b.next(), 5000, 'pong'))).toEqual({ type: 'pong' });
    b.client.send('not json at all');
    b.client.send(JSON.stringify({ type: 'ping' }));
    expect(JSON.parse(await within(b.next(), 5000, 'second pong'))).toEqual({ type: 'pong' });

    a2.client.close();
    await within(t.closedOf(a2.handle), 5000, 'a2 to close');
    expect(t.hub.count()).toBe(2);
    expect(a2.handle.isOpen()).toBe(false);
    expect(t.hub.sendTo(a2.handle, 'late')).toBe(false);
    expect(t.hub.send('20230001', 'again')).toBe(1);
    expect(await metricValue(t.metrics, 'cardswitch_websockets_open', {})).toBe(2);
  });

  it('a plain request to the WebSocket path is told to upgrade (426, GET and HEAD) or 405, never "no route"', async () => {
    const t = await start();
    const plain = await send(`${t.base}${EVENTS_PATH}?token=good-a`);
    expect(plain.status).toBe(426);
    expect(plain.headers.get('upgrade')).toBe('websocket');
    expectErrorBody(plain.json, 'UPGRADE_REQUIRED');
    expect(plain.json.error?.messageEn).toContain('WebSocket');
    const head = await fetch(`${t.base}${EVENTS_PATH}`, { method: 'HEAD' });
    expect(head.status).toBe(426);
    expect(await head.text()).toBe('');
    const post = await send(`${t.base}${EVENTS_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
    expectErrorBody(post.json, 'METHOD_NOT_ALLOWED');
    // The socket itself still opens, and nothing was counted as one.
    const { client } = await openClient(t, 'good-a');
    expect(t.hub.count()).toBe(1);
    client.close();
    for (const method of ['GET', 'HEAD'])
      expect(
        await metricValue(t.metrics, 'cardswitch_http_request_duration_seconds_count', { route: EVENTS_PATH, method, status: '426' }),
      ).toBe(1);
  });

  it('refuses upgrades beyond maxSockets with 503', async () => {
    const t = await start({}, { maxSockets: 2 });
    await openClient(t, 'good-A');
    await openClient(t, 'good-B');
    const refused = await refusedUpgrade(wsUrl(t, 'good-C'));
    expect(refused.status).toBe(503);
    expect(refused.body.error?.code).toBe('TOO_MANY_CONNECTIONS');
    expect(refused.headers['retry-after']).toBeDefined();
  });

  it('drops a client that stops reading once its buffered bytes pass the limit; the server never buffers more', async () => {
    const t = await start();
    const slow = await openClient(t, 'good-slow');
    const fast = await openClient(t, 'good-fast');
    // The client stops reading: the kernel buffers fill, then uWS would have to buffer.
    (slow.client as unknown as { _socket: net.Socket })._socket.pause();
    const message = JSON.stringify({ type: 'statement', pad: 'x'.repeat(64 * 1024) });
    const rssBefore = process.memoryUsage().rss;
    let maxBuffered = 0;
    let attemptedBytes = 0;
    let sent = 0;
    // 2,000 x 64 KiB = 128 MiB offered; the loop ends at the drop, long before.
    for (let i = 0; i < 2000; i++) {
      attemptedBytes += message.length;
      if (!t.hub.sendTo(slow.handle, message)) break;
      sent++;
      maxBuffered = Math.max(maxBuffered, t.hub.bufferedBytes(slow.handle));
    }
    await within(t.closedOf(slow.handle), 5000, 'the server to drop the slow socket');
    expect(slow.handle.isOpen()).toBe(false);
    expect(sent).toBeGreaterThan(0);
    expect(maxBuffered).toBeGreaterThan(0);
    expect(maxBuffered).toBeLessThanOrEqual(MAX_BACKPRESSURE_BYTES);
    // Everything offered after the drop is refused at once, and nothing piles up in this process.
    for (let i = 0; i < 1000; i++) expect(t.hub.sendTo(slow.handle, message)).toBe(false);
    attemptedBytes += 1000 * message.length;
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(Math.min(32 * 1024 * 1024, attemptedBytes / 4));
    // The client learns it was dropped once it reads again; other sockets are untouched.
    const closedAtClient = new Promise<number>((resolve) => slow.client.on('close', resolve));
    (slow.client as unknown as { _socket: net.Socket })._socket.resume();
    await within(closedAtClient, 5000, 'the slow client to see the close');
    expect(t.hub.send('fast', '{"type":"still-here"}')).toBe(1);
    expect(await within(fast.next(), 5000, 'the fast client')).toBe('{"type":"still-here"}');
    expect(t.hub.count()).toBe(1);
  });

  it(
    'closes a silent socket (automatic pings unanswered) after the idle timeout, and keeps one that answers',
    { timeout: 40_000 },
    async () => {
      const t = await start();
      const silentOpened = t.nextOpen();
      const silent = await silentWebSocket(t.gateway.port);
      const silentHandle = await within(silentOpened, 5000, 'the silent socket to open');
      const startedMs = Date.now();
      const live = await openClient(t, 'good-live');
      // The ws client answers every ping with a pong (automatically); the server pings again only if the
      // socket survived the previous round, so a second ping proves it outlived an idle-timeout check.
      const secondPing = new Promise<void>((resolve) => {
        let pings = 0;
        live.client.on('ping', () => ++pings === 2 && resolve());
      });
      await within(t.closedOf(silentHandle), 30_000, 'the idle timeout');
      await within(silent.closed, 5000, 'the silent socket to be closed');
      // uWS checks idle sockets on 4 s ticks: an 8 s timeout closes after 4 to 8 s of silence, never at once.
      expect(Date.now() - startedMs).toBeGreaterThanOrEqual(3_000);
      await within(secondPing, 15_000, 'the second ping to the live client');
      expect(live.handle.isOpen()).toBe(true);
      expect(live.client.readyState).toBe(WebSocket.OPEN);
      expect(t.hub.count()).toBe(1);
    },
  );

  it('shutdown waits for a handler still running, and its answer reaches the caller', async () => {
    const t = await start();
    const answer = fetch(`${t.base}/api/v1/held`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    await within(t.held.entered.promise, 5000, 'the held handler');
    let shutDown = false;
    const shutdown = t.gateway.shutdown().then(() => (shutDown = true));
    // The drain has started and is waiting on the handler: it must not finish before the handler does.
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(shutDown).toBe(false);
    t.held.release.resolve();
    const response = await within(answer, 5000, 'the held answer');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
    await within(shutdown, 5000, 'the shutdown');
  });

  it('shutdown closes every WebSocket with 1001 and stops listening', async () => {
    const t = await start();
    const a = await openClient(t, 'good-A');
    const code = new Promise<number>((resolve) => a.client.on('close', resolve));
    await t.gateway.shutdown();
    expect(await within(code, 5000, 'the close frame')).toBe(1001);
    expect(t.hub.count()).toBe(0);
    await expect(fetch(`${t.base}/healthz`)).rejects.toThrow();
  });
});

describe('switch metrics (gRPC wiring)', () => {
  it('times every Authorize and AuthorizeStream payment by method and status, and counts outcomes by credential', async () => {
    const app = await startTestSwitch('gwmetrics');
    onTestFinished(() => app.stop());
    await app.terminals.register(POS_TERMINAL);
    await openCard(app, '20230001', 'AB12CD34', 2_000);
    const client = posClient(app);
    onTestFinished(() => client.close());
    const pay = (sequenceNumber: number, amountFen: number): AuthorizeRequest => ({
      terminalId: POS_TERMINAL.id,
      sequenceNumber,
      amountFen,
      credential: { card: { cardSerial: 'AB12CD34' } },
      pin: '',
    });
    const authorize = (req: AuthorizeRequest): Promise<AuthorizeResponse> => call(client, 'authorize', req, terminalMetadata(POS_TERMINAL));
    await authorize(pay(1, 1_000)); // approved
    await authorize(pay(2, 5_000)); // declined: insufficient funds
    await grpcError(authorize(pay(3, 0))); // INVALID_ARGUMENT
    const stream = client.authorizeStream();
    const answered = new Promise<StreamedAuthorizeResponse>((resolve) => stream.once('data', resolve));
    stream.on('error', () => undefined);
    stream.write({ tag: 7, terminalSecret: POS_TERMINAL.secret, request: pay(4, 500) });
    expect((await within(answered, 5000, 'the stream answer')).tag).toBe(7);
    stream.end();

    const m = app.context.metrics;
    const grpc = 'cardswitch_grpc_request_duration_seconds_count';
    expect(await metricValue(m, grpc, { method: 'Authorize', code: 'OK' })).toBe(2);
    expect(await metricValue(m, grpc, { method: 'Authorize', code: 'INVALID_ARGUMENT' })).toBe(1);
    expect(await metricValue(m, grpc, { method: 'AuthorizeStream', code: 'OK' })).toBe(1);
    const auths = 'cardswitch_authorizations_total';
    expect(await metricValue(m, auths, { outcome: 'approved', credential: 'card' })).toBe(2);
    expect(await metricValue(m, auths, { outcome: 'declined', credential: 'card' })).toBe(1);
    expect(await metricValue(m, auths, { outcome: 'error', credential: 'card' })).toBe(1);
    const { body } = await m.render();
    expect(body).toMatch(/^cardswitch_password_pool_threads \d+$/m);
    expect(body).toMatch(/^cardswitch_password_pool_queue 0$/m);
  });
});
