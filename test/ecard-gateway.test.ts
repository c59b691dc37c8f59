// The e-card through the real uWS gateway, a real switch and Redis, and the identity simulator over
// loopback: sign-in, binding (every refusal, then success), sessions (expiry, refresh, logout, the cap), campus
// QR codes paid at a POS over gRPC, live events on the WebSocket (within a second, and what was missed
// after a reconnect), the per-card bound on live-event sockets (upgrades arriving together, cut, or
// logged out midway), loss, password, fees, unbinding, /metrics, and oversized bodies.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import { MAX_SESSIONS_PER_USER } from '../switch/ledger/sessions.js';
import { IdentitySimulator } from '../switch/identity/simulator.js';
import { passwordHash, startClockedSwitch, TestClock } from './helpers/clients.js';
import { call, openCard, POS_TERMINAL, posClient, terminalMetadata } from './helpers/switch.js';

const PIN = '246810';
const DOC = '11010519900307123X';
const PHONE = '13800138000';
const CREDS = {
  corpId: 'wwcampus0001',
  corpSecret: 'corp-secret-0123456789',
  appId: 'wx0123456789abcdef',
  appSecret: 'app-secret-0123456789',
};
const START_MS = Date.UTC(2026, 10, 26, 4, 0, 0);
const ACCESS_TTL_SEC = 600;

let app: SwitchApp;
let clock: TestClock;
let sim: IdentitySimulator;
let base = '';
let pos: ReturnType<typeof posClient>;
let seq = 0;

beforeAll(async () => {
  clock = new TestClock(START_MS);
  sim = new IdentitySimulator(CREDS, { now: () => clock.nowMs });
  const { url } = await sim.start();
  app = await startClockedSwitch('ecardgw', clock, {
    WECOM_API_BASE: url,
    WECOM_CORP_ID: CREDS.corpId,
    WECOM_CORP_SECRET: CREDS.corpSecret,
    WECHAT_API_BASE: url,
    WECHAT_APP_ID: CREDS.appId,
    WECHAT_APP_SECRET: CREDS.appSecret,
    SESSION_ACCESS_TTL_SEC: String(ACCESS_TTL_SEC),
    GATEWAY_MAX_BODY_BYTES: '4096',
    GATEWAY_WS_MAX_PER_CARD: '3',
  });
  base = `http://127.0.0.1:${app.gateway?.port}`;
  await app.terminals.register(POS_TERMINAL);
  pos = posClient(app);
});
afterAll(async () => {
  pos.close();
  await app.stop();
  await sim.stop();
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function http(method: string, path: string, token = '', body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== '') headers['authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), headers: res.headers };
}

function errorOf(answer: Answer): { code: string; message: string; messageEn: string; field?: string; attemptsLeft?: number } {
  return answer.body['error'] as never;
}

async function signIn(user: string, provider: 'wecom' | 'wechat' = 'wecom'): Promise<{ accessToken: string; refreshToken: string }> {
  const code = sim.issueCode(provider, user);
  const answer = await http('POST', '/api/v1/session', '', { provider, code });
  expect(answer.status).toBe(201);
  return answer.body as never;
}

async function card(cardNo: string, openingFen: number, extra: Record<string, string> = {}): Promise<void> {
  await openCard(app, cardNo, `EE${cardNo.padStart(6, '0')}`, openingFen, {
    pwd: await passwordHash(app, PIN),
    doct: 'R',
    docn: DOC,
    phone: PHONE,
    sno: `G${cardNo}`,
    sync: '1',
    ...extra,
  });
  await app.redis.set(app.keys.personNumber(`G${cardNo}`), cardNo);
}

function form(cardNo: string, changes: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    bindingType: 'student',
    personNumber: `G${cardNo}`,
    password: PIN,
    documentType: 'resident_id',
    documentNumber: DOC,
    phone: PHONE,
    consent: true,
    ...changes,
  };
}

/** Signs in and binds; answers the access token that carries the card. */
async function boundUser(cardNo: string, user: string): Promise<string> {
  const { accessToken } = await signIn(user);
  const bound = await http('POST', '/api/v1/ecard/binding', accessToken, form(cardNo));
  expect(bound.status).toBe(201);
  return bound.body['accessToken'] as string;
}

function payWithQr(payload: string, amountFen: number): Promise<AuthorizeResponse> {
  return call(
    pos,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: ++seq, amountFen, credential: { campusQr: { payload } }, pin: '' },
    terminalMetadata(POS_TERMINAL),
  );
}

function tap(cardNo: string, amountFen: number): Promise<AuthorizeResponse> {
  return call(
    pos,
    'authorize',
    {
      terminalId: POS_TERMINAL.id,
      sequenceNumber: ++seq,
      amountFen,
      credential: { card: { cardSerial: `EE${cardNo.padStart(6, '0')}` } },
      pin: '',
    },
    terminalMetadata(POS_TERMINAL),
  );
}

/** A live-events socket that collects every message; resolves once the server said hello. */
async function events(
  token: string,
  since = '',
): Promise<{
  ws: WebSocket;
  messages: Record<string, unknown>[];
  next: (type: string, timeoutMs?: number) => Promise<Record<string, unknown>>;
}> {
  const ws = new WebSocket(`ws://127.0.0.1:${app.gateway?.port}/api/v1/events${since === '' ? '' : `?since=${since}`}`, [
    'cardswitch.events.v1',
    `bearer.${token}`,
  ]);
  const messages: Record<string, unknown>[] = [];
  const waiters: { type: string; resolve: (m: Record<string, unknown>) => void }[] = [];
  let seen = 0;
  ws.on('message', (data) => {
    // binaryType is ws's default 'nodebuffer': each message arrives as one Buffer.
    const message = JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>;
    messages.push(message);
    const waiter = waiters.findIndex((w) => w.type === message['type']);
    if (waiter >= 0) waiters.splice(waiter, 1)[0]?.resolve(message);
  });
  const next = (type: string, timeoutMs = 1000): Promise<Record<string, unknown>> => {
    const already = messages.slice(seen).find((m) => m['type'] === type);
    if (already !== undefined) {
      seen = messages.indexOf(already) + 1;
      return Promise.resolve(already);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no ${type} event within ${timeoutMs} ms; got ${JSON.stringify(messages)}`)),
        timeoutMs,
      );
      waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(timer);
          seen = messages.indexOf(m) + 1;
          resolve(m);
        },
      });
    });
  };
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
  await next('hello');
  return { ws, messages, next };
}

describe('signing in', () => {
  it('exchanges a WeCom or WeChat code once; a forged or reused code is 401; a session reaches only the binding endpoints', async () => {
    const code = sim.issueCode('wecom', 'zhangsan');
    const first = await http('POST', '/api/v1/session', '', { provider: 'wecom', code });
    expect(first.status).toBe(201);
    expect(first.body['bound']).toBe(false);
    expect(first.body['userId']).toBe('wecom:zhangsan');
    const reused = await http('POST', '/api/v1/session', '', { provider: 'wecom', code });
    expect(reused.status).toBe(401);
    expect(errorOf(reused).code).toBe('INVALID_CODE');
    expect(errorOf(reused).message).toMatch(/[\u4e00-\u9fff]/);
    expect((await signIn('o6_bmjrPTlm6_2sgVt7hMZOPfL2M', 'wechat')).accessToken).not.toBe('');
    const token = first.body['accessToken'] as string;
    const summary = await http('GET', '/api/v1/ecard', token);
    expect(summary.status).toBe(403);
    expect(errorOf(summary).code).toBe('NOT_BOUND');
    expect((await http('GET', '/api/v1/ecard/qr', token)).status).toBe(403);
    expect((await http('GET', '/api/v1/ecard')).status).toBe(401);
    expect((await http('GET', '/api/v1/ecard', 'not.a.token')).status).toBe(401);
  });
});

describe('binding the e-card', () => {
  it('refuses each problem with its code, field and zh-CN text, changing nothing, then binds', async () => {
    await card('8001', 5000);
    const { accessToken } = await signIn('lisi');
    const bind = (changes: Record<string, unknown>) => http('POST', '/api/v1/ecard/binding', accessToken, form('8001', changes));
    const expectRefusal = async (changes: Record<string, unknown>, status: number, code: string, field?: string) => {
      const answer = await bind(changes);
      expect(answer.status, `${code}: ${JSON.stringify(answer.body)}`).toBe(status);
      expect(errorOf(answer).code).toBe(code);
      expect(errorOf(answer).message).toMatch(/[\u4e00-\u9fff]/);
      expect(errorOf(answer).messageEn).toMatch(/[a-z]/);
      if (field !== undefined) expect(errorOf(answer).field).toBe(field);
      return answer;
    };
    await expectRefusal({ consent: false }, 400, 'CONSENT_REQUIRED', 'consent');
    await expectRefusal({ phone: '12345' }, 400, 'INVALID_PHONE', 'phone');
    await expectRefusal({ documentNumber: 'abc' }, 400, 'INVALID_DOCUMENT_NUMBER', 'documentNumber');
    await expectRefusal({ personNumber: 'G9999999' }, 404, 'CARD_NOT_FOUND', 'personNumber');
    await expectRefusal({ bindingType: 'staff' }, 409, 'BINDING_TYPE_MISMATCH', 'bindingType');
    await app.redis.hset(app.keys.account('8001'), 'sync', '0');
    await expectRefusal({}, 409, 'CARD_NOT_SYNCED');
    await app.redis.hset(app.keys.account('8001'), 'sync', '1');
    for (const [status, code] of [
      ['L', 'CARD_LOST'],
      ['F', 'CARD_FROZEN'],
      ['C', 'CARD_CANCELLED'],
    ] as const) {
      await app.redis.hset(app.keys.account('8001'), 'st', status);
      await expectRefusal({}, 409, code);
    }
    await app.redis.hset(app.keys.account('8001'), 'st', 'A');
    const wrong = await expectRefusal({ password: '000000' }, 403, 'WRONG_PASSWORD', 'password');
    expect(errorOf(wrong).attemptsLeft).toBe(4);
    await expectRefusal({ documentNumber: '110105199003071111' }, 409, 'DOCUMENT_MISMATCH', 'documentNumber');
    await expectRefusal({ documentType: 'passport', documentNumber: 'E12345678' }, 409, 'DOCUMENT_MISMATCH', 'documentNumber');
    await expectRefusal({ phone: '13900139000' }, 409, 'PHONE_MISMATCH', 'phone');
    expect(await app.redis.hget(app.keys.account('8001'), 'eu')).toBeNull();
    expect(await app.redis.exists(app.keys.ecardUser('wecom:lisi'))).toBe(0);

    const bound = await bind({});
    expect(bound.status).toBe(201);
    const summary = bound.body['card'] as Record<string, unknown>;
    expect(summary).toMatchObject({ cardNumber: '8001', maskedName: '张*', balanceFen: 5000, status: 'active', synced: true });
    const token = bound.body['accessToken'] as string;
    expect((await http('GET', '/api/v1/ecard', token)).body).toMatchObject({ cardNumber: '8001', balanceFen: 5000 });
    // Every attempt is in the operator log, with its outcome (and never the password or document).
    const oplog = await app.redis.xrange(app.keys.operatorLog(), '-', '+');
    const attempts = oplog.map(([, f]) => f).filter((f) => f.includes('ecard-bind') && f.includes('wecom:lisi'));
    expect(attempts.length).toBe(14);
    expect(attempts.at(-1)).toContain('ok');
    expect(JSON.stringify(attempts)).not.toContain(DOC);
    expect(JSON.stringify(attempts)).not.toContain(PIN);
  });

  it('one card per user and one user per card', async () => {
    await card('8002', 5000);
    await card('8003', 5000);
    const first = await boundUser('8002', 'wangwu');
    expect((await http('GET', '/api/v1/ecard', first)).status).toBe(200);
    const other = await signIn('zhaoliu');
    const taken = await http('POST', '/api/v1/ecard/binding', other.accessToken, form('8002'));
    expect(taken.status).toBe(409);
    expect(errorOf(taken).code).toBe('CARD_BOUND_ELSEWHERE');
    const second = await http('POST', '/api/v1/ecard/binding', first, form('8003'));
    expect(second.status).toBe(409);
    expect(errorOf(second).code).toBe('USER_ALREADY_BOUND');
    // 20 parallel bindings of one free card by different users: exactly one wins.
    await card('8004', 5000);
    const users = await Promise.all(Array.from({ length: 20 }, (_, i) => signIn(`racer${i}`)));
    const answers = await Promise.all(users.map((u) => http('POST', '/api/v1/ecard/binding', u.accessToken, form('8004'))));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 409 || a.status === 429).length).toBe(19);
  });
});

describe('a binding racing a logout of its own session', () => {
  it('bound while the session ended: 201 with the card and "sign in again", not 401 as if the binding failed', async () => {
    await card('8005', 5000);
    const { accessToken, refreshToken } = await signIn('qianqi');
    const sessions = app.gateway!.sessions;
    const reissue = sessions.reissue.bind(sessions);
    // The page's other tab logs out after the binding script ran, before the new access token is signed.
    sessions.reissue = async (session, cardNo) => {
      expect((await http('DELETE', '/api/v1/session', accessToken)).status).toBe(200);
      return reissue(session, cardNo);
    };
    let bound: Answer;
    try {
      bound = await http('POST', '/api/v1/ecard/binding', accessToken, form('8005'));
    } finally {
      sessions.reissue = reissue;
    }
    expect(bound.status, JSON.stringify(bound.body)).toBe(201);
    expect(await app.redis.hget(app.keys.account('8005'), 'eu')).toBe('wecom:qianqi');
    expect(bound.body).toMatchObject({ card: { cardNumber: '8005' }, signInAgain: true });
    expect(bound.body['accessToken']).toBeUndefined();
    expect(bound.body['message']).toContain('绑定成功');
    expect(bound.body['message']).toContain('请重新登录');
    expect(bound.body['messageEn']).toMatch(/bound.*sign in again/i);
    // The session did end: its tokens are refused; a new sign-in finds the card bound.
    expect((await http('POST', '/api/v1/session/refresh', '', { refreshToken })).status).toBe(401);
    const again = await http('POST', '/api/v1/session', '', { provider: 'wecom', code: sim.issueCode('wecom', 'qianqi') });
    expect(again.body['bound']).toBe(true);
  });
});

describe('sessions', () => {
  it('an access token expires, refresh gives a new one, logout ends the session', async () => {
    await card('8101', 5000);
    const { refreshToken } = await signIn('sunqi');
    const token = await boundUser('8101', 'sunqi2');
    clock.advance((ACCESS_TTL_SEC + 1) * 1000);
    const expired = await http('GET', '/api/v1/ecard', token);
    expect(expired.status).toBe(401);
    expect(errorOf(expired).code).toBe('TOKEN_EXPIRED');
    const refreshed = await http('POST', '/api/v1/session/refresh', '', { refreshToken });
    expect(refreshed.status).toBe(200);
    const fresh = refreshed.body['accessToken'] as string;
    expect((await http('GET', '/api/v1/ecard', fresh)).status).toBe(403);
    const boundToken = (await http('POST', '/api/v1/session/refresh', '', { refreshToken: (await signIn('sunqi2')).refreshToken })).body[
      'accessToken'
    ] as string;
    const live = await events(boundToken);
    const closed = new Promise<number>((resolve) => live.ws.once('close', (code) => resolve(code)));
    expect((await http('DELETE', '/api/v1/session', boundToken)).status).toBe(200);
    // The page's socket of that session closes (every gateway hears of the logout on the events channel).
    expect(await closed).toBe(4001);
    const logout = await http('DELETE', '/api/v1/session', fresh);
    expect(logout.status).toBe(200);
    expect(errorOf(await http('GET', '/api/v1/ecard', fresh)).code).toBe('SESSION_ENDED');
    expect((await http('POST', '/api/v1/session/refresh', '', { refreshToken })).status).toBe(401);
  });

  it(`a session pushed out by the cap (${MAX_SESSIONS_PER_USER} per user) has its sockets closed 4001 and gets no later event`, async () => {
    await card('8102', 5000);
    const first = await boundUser('8102', 'capholder');
    const oldPage = await events(first);
    const closed = new Promise<number>((resolve) => oldPage.ws.once('close', (code) => resolve(code)));
    // The user signs in on more phones / webviews: the oldest session (the first) ends.
    let latest = '';
    for (let i = 0; i < MAX_SESSIONS_PER_USER; i++) {
      clock.advance(1000); // distinct creation times: "the oldest" is the first one
      latest = (await signIn('capholder')).refreshToken;
    }
    let timer: NodeJS.Timeout | undefined;
    const stillOpen = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still open after 5 s'), 5000)));
    const closeCode = await Promise.race([closed, stillOpen]);
    clearTimeout(timer);
    if (closeCode !== 4001) oldPage.ws.terminate();
    expect(closeCode).toBe(4001);
    expect(errorOf(await http('GET', '/api/v1/ecard', first)).code).toBe('SESSION_ENDED');
    // A card event after that reaches the newest session's page, and not the closed one.
    const newest = (await http('POST', '/api/v1/session/refresh', '', { refreshToken: latest })).body['accessToken'] as string;
    const newPage = await events(newest);
    expect((await http('POST', '/api/v1/ecard/loss', newest)).status).toBe(200);
    expect(await newPage.next('card_status')).toMatchObject({ status: 'lost' });
    expect(oldPage.messages.filter((m) => m['type'] !== 'hello')).toEqual([]);
    newPage.ws.close();
  });
});

describe('the campus QR code and live events', () => {
  it('a QR code from the gateway pays at a POS over gRPC; the page sees it within a second; replays are declined', async () => {
    await card('8201', 10_000);
    const token = await boundUser('8201', 'qianba');
    const live = await events(token);
    const qr = await http('GET', '/api/v1/ecard/qr', token);
    expect(qr.status).toBe(200);
    const code = qr.body['code'] as string;
    expect(qr.body['expiresAtMs']).toBe(Math.floor(clock.nowMs / 1000) * 1000 + 60_000);
    const sentAt = Date.now();
    const paid = await payWithQr(code, 1250);
    expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const event = await live.next('payment');
    expect(Date.now() - sentAt).toBeLessThan(1000);
    expect(event).toMatchObject({
      approved: true,
      amountFen: 1250,
      balanceFen: 8750,
      credential: 'campus_qr',
      merchantId: POS_TERMINAL.merchantId,
      location: POS_TERMINAL.location,
    });
    expect(event['qrCodeId']).toBeTypeOf('string');
    // One card's sockets are bounded (GATEWAY_WS_MAX_PER_CARD, here 3): the fourth is refused 429.
    const more = [await events(token), await events(token)];
    await expect(events(token)).rejects.toThrow(/429/);
    for (const extra of more) extra.ws.close();
    const replay = await payWithQr(code, 1250);
    expect(replay.declineReason).toBe(DeclineReason.DECLINE_REASON_QR_USED);
    expect(await live.next('payment')).toMatchObject({ approved: false, declineReason: 'QR_USED', balanceFen: 8750 });
    expect((await http('GET', '/api/v1/ecard', token)).body['balanceFen']).toBe(8750);
    live.ws.close();
  });

  it('a page that reconnects with its last event id gets what it missed, then the live ones', async () => {
    await card('8202', 10_000);
    const token = await boundUser('8202', 'zhoujiu');
    const first = await events(token);
    await tap('8202', 100);
    const seenEvent = await first.next('payment');
    first.ws.close();
    await tap('8202', 200);
    await http('POST', '/api/v1/ecard/loss', token);
    await http('POST', '/api/v1/ecard/loss/cancel', token, { password: PIN });
    const again = await events(token, seenEvent['id'] as string);
    expect(await again.next('payment')).toMatchObject({ amountFen: 200, balanceFen: 9700 });
    expect(await again.next('card_status')).toMatchObject({ status: 'lost', previousStatus: 'active' });
    expect(await again.next('card_status')).toMatchObject({ status: 'active', previousStatus: 'lost' });
    await tap('8202', 300);
    expect(await again.next('payment')).toMatchObject({ amountFen: 300, balanceFen: 9400 });
    // Nothing twice.
    expect(again.messages.filter((m) => m['type'] === 'payment')).toHaveLength(2);
    again.ws.close();
  });

  it("announces a bound card's events only while a page of it is open (every event is in its stream all the same)", async () => {
    await card('8204', 10_000);
    const token = await boundUser('8204', 'zhengshier');
    const listener = app.redis.duplicate({ enableOfflineQueue: true });
    const heard: string[] = [];
    await listener.subscribe(app.keys.eventsChannel());
    listener.on('message', (_c: string, m: string) => heard.push(m));
    try {
      await tap('8204', 100);
      const live = await events(token);
      await tap('8204', 200);
      expect(await live.next('payment')).toMatchObject({ amountFen: 200 });
      // Pub/sub keeps order: had the first payment been announced, it would have been heard first.
      const ours = heard.filter((m) => m.startsWith('8204\n'));
      expect(ours).toHaveLength(1);
      expect(ours[0]).toContain('\na\n200\n');
      expect(await app.redis.xlen(app.keys.cardEvents('8204'))).toBe(2);
      live.ws.close();
    } finally {
      listener.disconnect();
    }
  });

  it('loss kills the QR code at once; unbinding ends every session and every code', async () => {
    await card('8203', 10_000);
    const token = await boundUser('8203', 'wushi');
    const other = await http('POST', '/api/v1/session/refresh', '', { refreshToken: (await signIn('wushi')).refreshToken });
    const code = (await http('GET', '/api/v1/ecard/qr', token)).body['code'] as string;
    expect((await http('POST', '/api/v1/ecard/loss', token)).body).toMatchObject({ status: 'lost', changed: true });
    expect((await payWithQr(code, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_LOST);
    expect((await http('GET', '/api/v1/ecard/qr', token)).status).toBe(409);
    const wrongCancel = await http('POST', '/api/v1/ecard/loss/cancel', token, { password: '111111' });
    expect(errorOf(wrongCancel).code).toBe('WRONG_PASSWORD');
    expect((await http('POST', '/api/v1/ecard/loss/cancel', token, { password: PIN })).body).toMatchObject({
      status: 'active',
      changed: true,
    });
    expect((await payWithQr(code, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_INVALID);
    const fresh = (await http('GET', '/api/v1/ecard/qr', token)).body['code'] as string;
    const live = await events(token);
    const closed = new Promise<number>((resolve) => live.ws.once('close', (code) => resolve(code)));
    const unbound = await http('DELETE', '/api/v1/ecard/binding', token, { password: PIN });
    // The page's socket is closed at once: its binding ended.
    expect(await closed).toBe(4001);
    expect(unbound.status).toBe(200);
    expect(unbound.body['endedSessions']).toBe(2);
    expect((await payWithQr(fresh, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_INVALID);
    expect(errorOf(await http('GET', '/api/v1/ecard', token)).code).toBe('SESSION_ENDED');
    expect(errorOf(await http('GET', '/api/v1/ecard', other.body['accessToken'] as string)).code).toBe('SESSION_ENDED');
    expect(Number(await app.redis.hget(app.keys.account('8203'), 'bal'))).toBe(10_000);
  });
});

describe('the holder API', () => {
  it('statement, password change and fees, with requestId idempotency', async () => {
    await card('8301', 100_000);
    const token = await boundUser('8301', 'zhengshiyi');
    await tap('8301', 1500);
    const statement = await http('GET', '/api/v1/ecard/statement?pageSize=10&kinds=payment', token);
    expect(statement.status).toBe(200);
    expect((statement.body['lines'] as unknown[]).length).toBe(1);
    expect((await http('GET', '/api/v1/ecard/statement?pageSize=1000', token)).status).toBe(400);
    const fee = { requestId: 77, account: 'zheng01', amountFen: 2000, password: PIN };
    const paidFee = await http('POST', '/api/v1/ecard/fees/network', token, fee);
    expect(paidFee.status).toBe(200);
    expect(paidFee.body).toMatchObject({ outcome: 'paid', balanceAfterFen: 96_500 });
    expect((await http('POST', '/api/v1/ecard/fees/network', token, fee)).body).toEqual(paidFee.body);
    const electricity = await http('POST', '/api/v1/ecard/fees/electricity', token, {
      requestId: 78,
      building: '学4',
      room: '402',
      amountFen: 1000,
      password: PIN,
    });
    expect(electricity.body).toMatchObject({ outcome: 'paid', balanceAfterFen: 95_500 });
    // The same new fee request 300 times at once: paid once; the others replay it or are told to retry.
    const burst = await Promise.all(
      Array.from({ length: 300 }, () => http('POST', '/api/v1/ecard/fees/network', token, { ...fee, requestId: 79 })),
    );
    const paidOnce = burst.filter((a) => a.status === 200);
    expect(paidOnce.length).toBeGreaterThanOrEqual(1);
    expect(new Set(paidOnce.map((a) => JSON.stringify(a.body))).size).toBe(1);
    expect(burst.every((a) => a.status === 200 || errorOf(a).code === 'PASSWORD_BUSY')).toBe(true);
    expect(Number(await app.redis.hget(app.keys.account('8301'), 'bal'))).toBe(93_500);
    const changed = await http('POST', '/api/v1/ecard/password', token, { oldPassword: PIN, newPassword: '975310' });
    expect(changed.status).toBe(200);
    expect(errorOf(await http('POST', '/api/v1/ecard/loss/cancel', token, { password: PIN })).code).toBe('WRONG_PASSWORD');
  });

  it('a page token of another filter, or a damaged one, is refused saying to start from the first page (zh-CN and English)', async () => {
    await card('8302', 100_000);
    const token = await boundUser('8302', 'pagetokenuser');
    await tap('8302', 100);
    await tap('8302', 200);
    const first = await http('GET', '/api/v1/ecard/statement?pageSize=1', token);
    const next = first.body['nextPageToken'] as string;
    expect(next).not.toBe('');
    for (const query of [`pageSize=1&kinds=recharge&pageToken=${next}`, 'pageSize=1&pageToken=not-a-token']) {
      const refused = await http('GET', `/api/v1/ecard/statement?${query}`, token);
      expect(refused.status).toBe(400);
      const error = errorOf(refused);
      expect(error.code).toBe('PAGE_TOKEN_INVALID');
      expect(error.message).toContain('第一页');
      expect(error.messageEn).toMatch(/first page/);
    }
    expect((await http('GET', `/api/v1/ecard/statement?pageSize=1&pageToken=${next}`, token)).status).toBe(200);
  });

  it('refuses oversized (413), non-JSON (415) and malformed (400) bodies, changing nothing', async () => {
    const { accessToken } = await signIn('bigbody');
    const big = await http('POST', '/api/v1/ecard/binding', accessToken, { ...form('8001'), filler: 'x'.repeat(5000) });
    expect(big.status).toBe(413);
    expect(errorOf(big).message).toMatch(/[\u4e00-\u9fff]/);
    const res = await fetch(`${base}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
    expect(res.status).toBe(415);
    expect((await http('POST', '/api/v1/session', '', '{"provider":')).status).toBe(400);
  });

  it('serves /healthz, the OpenAPI document, and /metrics whose counters move', async () => {
    expect((await http('GET', '/healthz')).status).toBe(200);
    const doc = await http('GET', '/api/v1/openapi.json');
    expect(doc.body['openapi']).toMatch(/^3\./);
    const scrape = async (): Promise<string> => (await fetch(`${base}/metrics`)).text();
    const count = (text: string, credential: string): number => {
      const line = text
        .split('\n')
        .find(
          (l) =>
            l.startsWith('cardswitch_authorizations_total') && l.includes(`credential="${credential}"`) && l.includes('outcome="approved"'),
        );
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    await card('8401', 10_000);
    const token = await boundUser('8401', 'metrics');
    const before = await scrape();
    await payWithQr((await http('GET', '/api/v1/ecard/qr', token)).body['code'] as string, 100);
    const after = await scrape();
    expect(count(after, 'campus_qr')).toBe(count(before, 'campus_qr') + 1);
    expect(after).toMatch(/cardswitch_http_request_duration_seconds_count\{[^}]*route="\/api\/v1\/ecard\/qr"/);
    expect(after).toMatch(/cardswitch_grpc_request_duration_seconds_count\{[^}]*method="Authorize"/);
    expect(after).toContain('cardswitch_websockets_open');
    expect(after).toContain('cardswitch_password_pool_queue');
  });
});

describe('live-event sockets per card (GATEWAY_WS_MAX_PER_CARD, 3 here)', () => {
  interface Attempt {
    readonly ws: WebSocket;
    /** 101 once open, the refusal's HTTP status, or -1 when the connection failed. */
    readonly status: number;
    /** The refusal's JSON body. */
    readonly body?: Record<string, unknown>;
  }

  function openWs(token: string): Promise<Attempt> {
    return new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${app.gateway?.port}/api/v1/events`, ['cardswitch.events.v1', `bearer.${token}`]);
      // Kept for the socket's whole life: ws reports a refused or terminated handshake as an error too.
      ws.on('error', () => resolve({ ws, status: -1 }));
      ws.once('open', () => resolve({ ws, status: 101 }));
      ws.once('unexpected-response', (_req, res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
        res.on('end', () => resolve({ ws, status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      });
    });
  }

  /** Closes the open ones and waits for each close to complete: uWS runs the server's close handler before its close frame leaves. */
  async function closeAll(attempts: readonly Attempt[]): Promise<void> {
    await Promise.all(
      attempts.map(
        (a) =>
          new Promise<void>((resolve) => {
            if (a.status !== 101) {
              a.ws.terminate();
              resolve();
              return;
            }
            a.ws.once('close', () => resolve());
            a.ws.close();
          }),
      ),
    );
  }

  function placesOf(cardNo: string): number {
    return app.gateway?.liveEvents.placesOf(cardNo) ?? -1;
  }

  /** A promise with its resolve, for a step the test holds open. */
  function deferred(): { readonly promise: Promise<void>; readonly resolve: () => void } {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  }

  /** Rejects after `ms`: only a failure bound, never a synchronisation. */
  function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
    return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
  }

  /** Polls once per event-loop turn, for server state that has no event of its own. */
  async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  function expectTooMany(attempt: Attempt): void {
    expect(attempt.status).toBe(429);
    expect(attempt.body?.['error']).toMatchObject({
      code: 'TOO_MANY_CONNECTIONS',
      message: '打开的页面过多，请关闭其他页面后重试',
      messageEn: 'this card has 3 live-event sockets open already; close one',
    });
  }

  /** An upgrade written by hand on a raw socket: it can be cut while the server is still admitting it. */
  function rawUpgrade(token: string): net.Socket {
    const socket = net.connect(app.gateway?.port ?? 0, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(
      `GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Protocol: cardswitch.events.v1, bearer.${token}\r\n\r\n`,
    );
    return socket;
  }

  it('40 upgrades at once with one token: exactly 3 open, the rest get 429 TOO_MANY_CONNECTIONS; closed, the places come back', async () => {
    await card('8501', 10_000);
    const token = await boundUser('8501', 'burst');
    const first = await Promise.all(Array.from({ length: 40 }, () => openWs(token)));
    const opened = first.filter((a) => a.status === 101);
    try {
      expect(opened).toHaveLength(3);
      for (const refused of first.filter((a) => a.status !== 101)) expectTooMany(refused);
      expect(placesOf('8501')).toBe(3);
    } finally {
      await closeAll(first);
    }
    expect(placesOf('8501')).toBe(0);
    // Nothing leaked: the holder can open 3 again, again at once, and no more.
    const again = await Promise.all(Array.from({ length: 10 }, () => openWs(token)));
    try {
      expect(again.filter((a) => a.status === 101)).toHaveLength(3);
      for (const refused of again.filter((a) => a.status !== 101)) expectTooMany(refused);
    } finally {
      await closeAll(again);
    }
    expect(placesOf('8501')).toBe(0);
    expect(app.gateway?.liveEvents.openSockets()).toBe(0);
  });

  it('an upgrade cut by its client while it is being admitted holds its place until then, and gives it back', async () => {
    await card('8502', 10_000);
    const token = await boundUser('8502', 'cutoff');
    const live = app.gateway?.liveEvents;
    if (live === undefined) throw new Error('no gateway');
    const authenticate = live.authenticate.bind(live);
    const gate = deferred();
    let admitted = 0;
    const allAdmitted = deferred();
    // Each upgrade is admitted (its place held), then waits for the gate: the client goes away meanwhile.
    const spy = vi.spyOn(live, 'authenticate').mockImplementation(async (upgrade) => {
      const admission = await authenticate(upgrade);
      if (++admitted === 3) allAdmitted.resolve();
      await gate.promise;
      return admission;
    });
    try {
      const cut = [rawUpgrade(token), rawUpgrade(token), rawUpgrade(token)];
      await within(allAdmitted.promise, 5000, 'the three upgrades to be admitted');
      expect(placesOf('8502')).toBe(3);
      // Upgrades in progress count: a fourth is refused now.
      expectTooMany(await within(openWs(token), 5000, 'the fourth upgrade to be answered'));
      await Promise.all(cut.map((socket) => new Promise((resolve) => socket.destroy().once('close', resolve))));
      // One more round trip through the gateway: uWS has read the three disconnects by the time it answers.
      expect((await http('GET', '/healthz')).status).toBe(200);
    } finally {
      gate.resolve();
      spy.mockRestore();
    }
    await until(() => placesOf('8502') === 0, 5000, 'the cut upgrades to give their places back');
    const again = await Promise.all(Array.from({ length: 4 }, () => openWs(token)));
    try {
      expect(again.map((a) => a.status).sort()).toEqual([101, 101, 101, 429]);
    } finally {
      await closeAll(again);
    }
    expect(placesOf('8502')).toBe(0);
  });

  it('a logout while the socket is upgrading closes it 4001 once open, and its place comes back', async () => {
    await card('8503', 10_000);
    const token = await boundUser('8503', 'leaving');
    const sessions = app.gateway?.sessions;
    if (sessions === undefined) throw new Error('no gateway');
    const authenticate = sessions.authenticate.bind(sessions);
    const checked = deferred();
    const gate = deferred();
    let holdNext = true;
    // The upgrade's session check passes, then waits while the session is logged out.
    const spy = vi.spyOn(sessions, 'authenticate').mockImplementation(async (accessToken) => {
      const session = await authenticate(accessToken);
      if (holdNext) {
        holdNext = false;
        checked.resolve();
        await gate.promise;
      }
      return session;
    });
    const listener = app.redis.duplicate({ enableOfflineQueue: true });
    let attempt: Promise<Attempt> | undefined;
    let closed: Promise<number> | undefined;
    try {
      const heard = new Promise<void>((resolve) =>
        listener.on('message', (_c: string, m: string) => {
          if (m.startsWith('session-ended\n')) resolve();
        }),
      );
      await listener.subscribe(app.keys.eventsChannel());
      attempt = openWs(token);
      closed = attempt.then((a) => new Promise<number>((resolve) => a.ws.once('close', (code) => resolve(code))));
      await within(checked.promise, 5000, 'the upgrade to pass its session check');
      expect((await http('DELETE', '/api/v1/session', token)).status).toBe(200);
      // The gateway heard the logout (found no socket to close) before the upgrade goes on.
      await within(heard, 5000, 'the logout to be announced');
      await app.redis.ping();
    } finally {
      gate.resolve();
      spy.mockRestore();
      listener.disconnect();
    }
    if (attempt === undefined || closed === undefined) throw new Error('the upgrade was not tried');
    const upgraded = await attempt;
    expect(upgraded.status).toBe(101);
    const code = await within(closed, 5000, 'the socket of the ended session to close').finally(() => upgraded.ws.terminate());
    expect(code).toBe(4001);
    expect(placesOf('8503')).toBe(0);
  });
});
