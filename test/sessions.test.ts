// Cardholder sessions against the real test Redis: tokens are HS256 JWTs with pinned algorithm,
// issuer, audience and type; an access token works only while its session record lives; expiry runs
// on the injected clock; refresh reflects the card bound now; logout and endAllOf end sessions at once
// (and only the right ones); the cap ends the oldest and announces them; refusals change nothing; 300
// parallel checks agree.
import { SignJWT, UnsecuredJWT } from 'jose';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SessionConfig } from '../switch/config.js';
import { bearerToken, MAX_TOKEN_LENGTH, Sessions, type SessionTokens } from '../switch/domain/sessions.js';
import { DomainError } from '../switch/errors.js';
import type { Identity } from '../switch/identity/provider.js';
import { Keys } from '../switch/ledger/keys.js';
import { MAX_SESSIONS_PER_USER, SessionStore } from '../switch/ledger/sessions.js';
import { connect, freshPrefix } from './helpers/redis.js';

const SECRET = 'session-secret-for-tests-0123456789abcdef';
const CONFIG: SessionConfig = { secret: SECRET, accessTtlSec: 900, sessionTtlSec: 7 * 86_400 };
const ZHANG: Identity = { provider: 'wecom', userId: 'wecom:zhang.san' };
const LI: Identity = { provider: 'wechat', userId: 'wechat:oLiSiOpenid0000000000000000' };
const CARD = '20260001';

let redis: Redis;
let keys: Keys;
let sessions: Sessions;
let clockMs = 0;
/** The sessions Sessions announced as ended (the gateway closes their sockets). */
let announced: string[] = [];

beforeAll(() => {
  redis = connect();
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  clockMs = Date.UTC(2026, 8, 1, 1, 0, 0, 123);
  keys = new Keys(freshPrefix('sessions'), 16);
  announced = [];
  sessions = new Sessions({
    store: new SessionStore(redis, keys),
    config: CONFIG,
    now: () => clockMs,
    announceEnded: (sessionId) => {
      announced.push(sessionId);
      return Promise.resolve();
    },
  });
});

async function refusal(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(DomainError);
    return err as DomainError;
  }
  throw new Error('expected a refusal, got an answer');
}

async function refusedAs(promise: Promise<unknown>, reason: string): Promise<void> {
  const err = await refusal(promise);
  expect(err.name).toBe('UnauthenticatedError');
  expect(err.reason).toBe(reason);
  expect(err.zh).toBeTruthy();
}

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Every key of this test's prefix with its content, to prove that refusals change nothing. */
async function snapshot(): Promise<Record<string, unknown>> {
  const found = await redis.keys(`${keys.prefix}:*`);
  const state: Record<string, unknown> = {};
  for (const key of found.sort()) {
    const type = await redis.type(key);
    state[key] = type === 'hash' ? await redis.hgetall(key) : type === 'zset' ? await redis.zrange(key, 0, -1, 'WITHSCORES') : type;
  }
  return state;
}

describe('start and authenticate', () => {
  it('a started session authenticates with its access token, with the card it was started with', async () => {
    const tokens = await sessions.start(ZHANG, CARD);
    const nowSec = Math.floor(clockMs / 1000);
    expect(tokens.accessExpiresAtMs).toBe((nowSec + CONFIG.accessTtlSec) * 1000);
    expect(tokens.sessionExpiresAtMs).toBe((nowSec + CONFIG.sessionTtlSec) * 1000);
    const session = await sessions.authenticate(tokens.accessToken);
    expect(session).toEqual({ userId: ZHANG.userId, sessionId: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/) as unknown, cardNo: CARD });

    const access = claimsOf(tokens.accessToken);
    expect(access).toMatchObject({ typ: 'access', sub: ZHANG.userId, sid: session.sessionId, card: CARD, iss: 'cardswitch', aud: 'ecard' });
    expect(access['exp']).toBe(nowSec + CONFIG.accessTtlSec);
    expect(claimsOf(tokens.refreshToken)).toMatchObject({
      typ: 'refresh',
      sub: ZHANG.userId,
      sid: session.sessionId,
      exp: nowSec + CONFIG.sessionTtlSec,
    });
    expect(claimsOf(tokens.refreshToken)['card']).toBeUndefined();

    expect(await redis.hgetall(keys.session(session.sessionId))).toEqual({
      uid: ZHANG.userId,
      createdMs: String(clockMs),
      provider: 'wecom',
    });
    const ttlSec = await redis.ttl(keys.session(session.sessionId));
    expect(ttlSec).toBeGreaterThan(CONFIG.sessionTtlSec - 10);
    expect(ttlSec).toBeLessThanOrEqual(CONFIG.sessionTtlSec);
    expect(await redis.zrange(keys.userSessions(ZHANG.userId), 0, -1)).toEqual([session.sessionId]);
    expect(await redis.ttl(keys.userSessions(ZHANG.userId))).toBeGreaterThan(CONFIG.sessionTtlSec - 10);
  });

  it('a user without a card gets card ""', async () => {
    const tokens = await sessions.start(LI, '');
    expect((await sessions.authenticate(tokens.accessToken)).cardNo).toBe('');
  });

  it('bearerToken takes the token out of an Authorization header', async () => {
    expect(bearerToken('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(bearerToken('bearer abc.def.ghi')).toBe('abc.def.ghi');
    for (const [header, reason] of [
      [undefined, 'TOKEN_MISSING'],
      ['', 'TOKEN_MISSING'],
      ['Basic dXNlcjpwYXNz', 'TOKEN_INVALID'],
      ['Bearer', 'TOKEN_INVALID'],
      ['Bearer a b', 'TOKEN_INVALID'],
      [`Bearer ${'a'.repeat(MAX_TOKEN_LENGTH + 20)}`, 'TOKEN_INVALID'],
    ] as const) {
      await refusedAs(
        Promise.resolve().then(() => bearerToken(header)),
        reason,
      );
    }
  });

  it('no token, garbage and an oversized token are refused', async () => {
    await refusedAs(sessions.authenticate(''), 'TOKEN_MISSING');
    await refusedAs(sessions.authenticate('not-a-token'), 'TOKEN_INVALID');
    await refusedAs(sessions.authenticate('a.b.c'), 'TOKEN_INVALID');
    await refusedAs(sessions.authenticate(`${'a'.repeat(MAX_TOKEN_LENGTH)}.b.c`), 'TOKEN_INVALID');
  });
});

describe('forged tokens', () => {
  let tokens: SessionTokens;
  let sid = '';
  beforeEach(async () => {
    tokens = await sessions.start(ZHANG, '');
    sid = (await sessions.authenticate(tokens.accessToken)).sessionId;
  });

  function payloadWith(changes: Record<string, unknown>): Record<string, unknown> {
    return { ...claimsOf(tokens.accessToken), ...changes };
  }

  it('a tampered payload or signature is TOKEN_INVALID, and nothing changes', async () => {
    const before = await snapshot();
    const [header, , signature] = tokens.accessToken.split('.');
    const tampered = Buffer.from(JSON.stringify(payloadWith({ card: '20269999' }))).toString('base64url');
    await refusedAs(sessions.authenticate(`${header}.${tampered}.${signature}`), 'TOKEN_INVALID');
    const flipped = (signature ?? '').startsWith('A') ? `B${(signature ?? '').slice(1)}` : `A${(signature ?? '').slice(1)}`;
    await refusedAs(sessions.authenticate(`${header}.${tokens.accessToken.split('.')[1]}.${flipped}`), 'TOKEN_INVALID');
    await refusedAs(sessions.authenticate(`${header}.${tokens.accessToken.split('.')[1]}.`), 'TOKEN_INVALID');
    expect(await snapshot()).toEqual(before);
  });

  it('a token signed with another secret is TOKEN_INVALID', async () => {
    const other = await new SignJWT(payloadWith({ card: '20269999' }))
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(new TextEncoder().encode('another-secret-of-at-least-32-characters!!'));
    await refusedAs(sessions.authenticate(other), 'TOKEN_INVALID');
  });

  it('alg "none" and another HMAC algorithm with the right secret are TOKEN_INVALID', async () => {
    const unsecured = new UnsecuredJWT(payloadWith({ card: '20269999' })).encode();
    expect(unsecured.endsWith('.')).toBe(true);
    await refusedAs(sessions.authenticate(unsecured), 'TOKEN_INVALID');
    const hs512 = await new SignJWT(payloadWith({})).setProtectedHeader({ alg: 'HS512' }).sign(new TextEncoder().encode(SECRET));
    await refusedAs(sessions.authenticate(hs512), 'TOKEN_INVALID');
  });

  it('the right secret with a wrong issuer, audience or claims is TOKEN_INVALID', async () => {
    const sign = (payload: Record<string, unknown>) =>
      new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
    await refusedAs(sessions.authenticate(await sign(payloadWith({ iss: 'someone-else' }))), 'TOKEN_INVALID');
    await refusedAs(sessions.authenticate(await sign(payloadWith({ aud: 'admin' }))), 'TOKEN_INVALID');
    await refusedAs(sessions.authenticate(await sign(payloadWith({ sub: 'zhang.san' }))), 'TOKEN_INVALID');
    await refusedAs(sessions.authenticate(await sign(payloadWith({ card: 42 }))), 'TOKEN_INVALID');
    await refusedAs(sessions.authenticate(await sign(payloadWith({ sid: '../../x' }))), 'TOKEN_INVALID');
    // A well-formed token naming this session but another user: the record's uid does not match.
    await refusedAs(sessions.authenticate(await sign(payloadWith({ sub: LI.userId }))), 'SESSION_ENDED');
    // The proof that the signing above is right: unchanged claims pass.
    await expect(sessions.authenticate(await sign(payloadWith({})))).resolves.toMatchObject({ sessionId: sid });
  });

  it('a refresh token is not an access token, nor the other way round', async () => {
    await refusedAs(sessions.authenticate(tokens.refreshToken), 'TOKEN_INVALID');
    await refusedAs(
      sessions.refresh(tokens.accessToken, () => Promise.resolve(CARD)),
      'TOKEN_INVALID',
    );
  });
});

describe('expiry and refresh', () => {
  it('an access token expires after accessTtlSec on the injected clock; refresh gives a working one', async () => {
    const tokens = await sessions.start(ZHANG, '');
    clockMs += (CONFIG.accessTtlSec - 1) * 1000;
    await expect(sessions.authenticate(tokens.accessToken)).resolves.toMatchObject({ userId: ZHANG.userId });
    clockMs += 1000;
    const err = await refusal(sessions.authenticate(tokens.accessToken));
    expect([err.reason, err.zh]).toEqual(['TOKEN_EXPIRED', '登录已过期，请刷新页面']);

    const refreshed = await sessions.refresh(tokens.refreshToken, () => Promise.resolve(''));
    expect(refreshed.refreshToken).toBe(tokens.refreshToken);
    expect(refreshed.sessionExpiresAtMs).toBe(tokens.sessionExpiresAtMs);
    expect(refreshed.accessExpiresAtMs).toBe((Math.floor(clockMs / 1000) + CONFIG.accessTtlSec) * 1000);
    await expect(sessions.authenticate(refreshed.accessToken)).resolves.toMatchObject({ userId: ZHANG.userId, cardNo: '' });
  });

  it('refresh reflects the card the user has now', async () => {
    const tokens = await sessions.start(ZHANG, '');
    const asked: string[] = [];
    const refreshed = await sessions.refresh(tokens.refreshToken, (userId) => {
      asked.push(userId);
      return Promise.resolve(CARD);
    });
    expect(asked).toEqual([ZHANG.userId]);
    expect((await sessions.authenticate(refreshed.accessToken)).cardNo).toBe(CARD);
    // The old access token still says what was true when it was issued.
    expect((await sessions.authenticate(tokens.accessToken)).cardNo).toBe('');
  });

  it('reissue gives a live session a token with its new card', async () => {
    const tokens = await sessions.start(ZHANG, '');
    const session = await sessions.authenticate(tokens.accessToken);
    const grant = await sessions.reissue(session, CARD);
    expect(await sessions.authenticate(grant.accessToken)).toEqual({ ...session, cardNo: CARD });
  });

  it('no access token outlives its session, and the session ends with its refresh token', async () => {
    const tokens = await sessions.start(ZHANG, '');
    clockMs += (CONFIG.sessionTtlSec - 60) * 1000;
    const late = await sessions.refresh(tokens.refreshToken, () => Promise.resolve(''));
    expect(late.accessExpiresAtMs).toBe(tokens.sessionExpiresAtMs);
    clockMs = tokens.sessionExpiresAtMs;
    await refusedAs(
      sessions.refresh(tokens.refreshToken, () => Promise.resolve('')),
      'TOKEN_EXPIRED',
    );
    await refusedAs(sessions.authenticate(late.accessToken), 'TOKEN_EXPIRED');
  });
});

describe('ending sessions', () => {
  it('logout ends the session: access, refresh and reissue are refused SESSION_ENDED', async () => {
    const tokens = await sessions.start(ZHANG, CARD);
    const session = await sessions.authenticate(tokens.accessToken);
    expect(await sessions.logout(session.sessionId)).toBe(true);
    const err = await refusal(sessions.authenticate(tokens.accessToken));
    expect([err.reason, err.zh]).toEqual(['SESSION_ENDED', '已退出登录或解绑，请重新进入']);
    await refusedAs(
      sessions.refresh(tokens.refreshToken, () => Promise.resolve(CARD)),
      'SESSION_ENDED',
    );
    await refusedAs(sessions.reissue(session, CARD), 'SESSION_ENDED');
    expect(await sessions.logout(session.sessionId)).toBe(false);
    expect(await sessions.logout('not a session id')).toBe(false);
    expect(await redis.exists(keys.session(session.sessionId), keys.userSessions(ZHANG.userId))).toBe(0);
  });

  it("endAllOf ends every session of the user and no other user's", async () => {
    const zhang = await Promise.all([sessions.start(ZHANG, CARD), sessions.start(ZHANG, CARD), sessions.start(ZHANG, '')]);
    const li = await sessions.start(LI, '');
    expect(await sessions.endAllOf(ZHANG.userId)).toBe(3);
    for (const tokens of zhang) {
      await refusedAs(sessions.authenticate(tokens.accessToken), 'SESSION_ENDED');
      await refusedAs(
        sessions.refresh(tokens.refreshToken, () => Promise.resolve('')),
        'SESSION_ENDED',
      );
    }
    await expect(sessions.authenticate(li.accessToken)).resolves.toMatchObject({ userId: LI.userId });
    expect(await redis.exists(keys.userSessions(ZHANG.userId))).toBe(0);
    expect(await sessions.endAllOf(ZHANG.userId)).toBe(0);
    // Signing in again after unbinding works.
    const again = await sessions.start(ZHANG, '');
    await expect(sessions.authenticate(again.accessToken)).resolves.toMatchObject({ userId: ZHANG.userId });
  });

  it(`a user keeps at most ${MAX_SESSIONS_PER_USER} sessions; signing in beyond that ends the oldest, announced as ended`, async () => {
    const all: SessionTokens[] = [];
    for (let i = 0; i < MAX_SESSIONS_PER_USER + 3; i++) {
      clockMs += 1000;
      all.push(await sessions.start(ZHANG, ''));
    }
    // As a logout: every gateway hears of each, and closes its live-event sockets.
    expect(announced).toEqual(all.slice(0, 3).map((tokens) => claimsOf(tokens.accessToken)['sid']));
    for (const tokens of all.slice(0, 3)) await refusedAs(sessions.authenticate(tokens.accessToken), 'SESSION_ENDED');
    for (const tokens of all.slice(3))
      await expect(sessions.authenticate(tokens.accessToken)).resolves.toMatchObject({ userId: ZHANG.userId });
    expect(await redis.zcard(keys.userSessions(ZHANG.userId))).toBe(MAX_SESSIONS_PER_USER);
  });

  it('300 parallel checks of a valid token all pass, of a logged-out one all fail', async () => {
    const tokens = await sessions.start(ZHANG, CARD);
    const ok = await Promise.allSettled(Array.from({ length: 300 }, () => sessions.authenticate(tokens.accessToken)));
    expect(ok.filter((r) => r.status === 'fulfilled' && r.value.cardNo === CARD)).toHaveLength(300);

    const { sessionId } = await sessions.authenticate(tokens.accessToken);
    expect(await sessions.logout(sessionId)).toBe(true);
    const before = await snapshot();
    const refused = await Promise.allSettled(Array.from({ length: 300 }, () => sessions.authenticate(tokens.accessToken)));
    const reasons = refused.map((r) => (r.status === 'rejected' ? (r.reason as DomainError).reason : 'accepted'));
    expect(new Set(reasons)).toEqual(new Set(['SESSION_ENDED']));
    expect(reasons).toHaveLength(300);
    expect(await snapshot()).toEqual(before);
  });
});
