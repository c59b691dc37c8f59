// The identity-provider adapters (WeCom getuserinfo, WeChat jscode2session) against the identity
// simulator over loopback HTTP: members sign in, codes work once and expire, non-members and
// high-risk users are refused, an expired WeCom access token is replaced transparently, provider
// failures and silence become UnavailableError within the timeout, a disabled provider and malformed
// codes are refused before any call, and no secret, access token or session key reaches the log.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { IdentityConfig } from '../switch/config.js';
import { DomainError } from '../switch/errors.js';
import {
  IdentityProviders,
  IdentitySimulator,
  SIM_CODE_TTL_MS,
  TOKEN_EARLY_REFRESH_MS,
  type IdentityProviderName,
} from '../switch/identity/index.js';
import type { Logger } from '../switch/log.js';

const CREDENTIALS = {
  corpId: 'ww1234567890abcdef',
  corpSecret: 'corp-secret-DO-NOT-LOG-3f9a8b7c6d5e4f30',
  appId: 'wx0123456789abcdef',
  appSecret: 'app-secret-DO-NOT-LOG-0a1b2c3d4e5f6a7b',
};
const TIMEOUT_MS = 300;

let clockMs = Date.UTC(2026, 8, 1, 1, 0, 0);
const now = (): number => clockMs;
let sim: IdentitySimulator;
let simUrl = '';
let logText = '';
let log: Logger;

beforeAll(async () => {
  sim = new IdentitySimulator(CREDENTIALS, { now });
  simUrl = (await sim.start()).url;
  log = pino({ level: 'trace' }, { write: (line: string) => void (logText += line) });
});
afterAll(async () => {
  await sim.stop();
});

function identityConfig(
  overrides: Partial<{ wecom: Partial<IdentityConfig['wecom']>; wechat: Partial<IdentityConfig['wechat']> }> = {},
): IdentityConfig {
  return {
    wecom: { apiBase: simUrl, corpId: CREDENTIALS.corpId, corpSecret: CREDENTIALS.corpSecret, ...overrides.wecom },
    wechat: { apiBase: simUrl, appId: CREDENTIALS.appId, appSecret: CREDENTIALS.appSecret, ...overrides.wechat },
    timeoutMs: TIMEOUT_MS,
  };
}

function providers(overrides: Parameters<typeof identityConfig>[0] = {}): IdentityProviders {
  return new IdentityProviders(identityConfig(overrides), log, { now });
}

async function refusal(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(DomainError);
    return err as DomainError;
  }
  throw new Error('expected a refusal, got an answer');
}

async function simCode(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${simUrl}/sim/code`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('signing in', () => {
  let ids: IdentityProviders;
  beforeEach(() => {
    ids = providers();
  });

  it('a WeCom member signs in with a code from POST /sim/code', async () => {
    const { status, json } = await simCode({ provider: 'wecom', user: 'zhang.san', member: true });
    expect(status).toBe(200);
    expect(json['code']).toMatch(/^[A-Za-z0-9_-]{20,128}$/);
    const identity = await ids.exchange('wecom', String(json['code']));
    expect(identity).toEqual({ provider: 'wecom', userId: 'wecom:zhang.san' });
  });

  it('a WeChat user signs in; the answer carries no session_key', async () => {
    const { json } = await simCode({ provider: 'wechat', user: 'oAbCdEfGhIjKlMnOpQrStUvWxYz0' });
    const identity = await ids.exchange('wechat', String(json['code']));
    expect(identity).toEqual({ provider: 'wechat', userId: 'wechat:oAbCdEfGhIjKlMnOpQrStUvWxYz0' });
    expect(Object.keys(identity).sort()).toEqual(['provider', 'userId']);
  });

  it.each<[IdentityProviderName, string]>([
    ['wecom', 'li.si'],
    ['wechat', 'oLiSiOpenid0000000000000000'],
  ])('a %s code works once only', async (provider, user) => {
    const code = sim.issueCode(provider, user);
    await expect(ids.exchange(provider, code)).resolves.toEqual({ provider, userId: `${provider}:${user}` });
    const again = await refusal(ids.exchange(provider, code));
    expect(again.name).toBe('UnauthenticatedError');
    expect(again.reason).toBe('INVALID_CODE');
    expect(again.zh).toBe('登录已失效，请重新进入页面');
  });

  it.each<IdentityProviderName>(['wecom', 'wechat'])('an unknown %s code is refused INVALID_CODE', async (provider) => {
    const err = await refusal(ids.exchange(provider, 'NeverIssuedCode0123456789abcdef'));
    expect([err.name, err.reason]).toEqual(['UnauthenticatedError', 'INVALID_CODE']);
  });

  it('a code of the other provider is unknown to this one', async () => {
    const code = sim.issueCode('wechat', 'oCrossOpenid000000000000000');
    const err = await refusal(ids.exchange('wecom', code));
    expect(err.reason).toBe('INVALID_CODE');
  });

  it.each<IdentityProviderName>(['wecom', 'wechat'])('a %s code expires after 5 minutes', async (provider) => {
    const code = sim.issueCode(provider, provider === 'wecom' ? 'wang.wu' : 'oWangWuOpenid00000000000000');
    clockMs += SIM_CODE_TTL_MS;
    const err = await refusal(ids.exchange(provider, code));
    expect([err.name, err.reason]).toEqual(['UnauthenticatedError', 'INVALID_CODE']);
  });

  it('a WeCom non-member (openid instead of userid) is refused NOT_A_MEMBER', async () => {
    const { json } = await simCode({ provider: 'wecom', user: 'visitor01', member: false });
    const err = await refusal(ids.exchange('wecom', String(json['code'])));
    expect([err.name, err.reason, err.zh]).toEqual(['PermissionDeniedError', 'NOT_A_MEMBER', '仅限本校师生使用']);
  });

  it('a WeChat high-risk user (40226) is refused HIGH_RISK_USER', async () => {
    const code = sim.issueCode('wechat', 'oRiskyOpenid000000000000000', { highRisk: true });
    const err = await refusal(ids.exchange('wechat', code));
    expect([err.name, err.reason]).toEqual(['PermissionDeniedError', 'HIGH_RISK_USER']);
  });
});

describe('the WeCom access token', () => {
  it('is fetched once and shared, also by sign-ins running at the same time', async () => {
    const ids = providers();
    const before = sim.callCount('gettoken');
    sim.expireAccessTokens(); // so that gettoken really issues a new one
    const codes = Array.from({ length: 10 }, (_, i) => sim.issueCode('wecom', `parallel${i}`));
    const identities = await Promise.all(codes.map((code) => ids.exchange('wecom', code)));
    expect(identities.map((i) => i.userId)).toEqual(codes.map((_, i) => `wecom:parallel${i}`));
    await ids.exchange('wecom', sim.issueCode('wecom', 'later'));
    expect(sim.callCount('gettoken') - before).toBe(1);
  });

  it('is replaced transparently when WeCom says it expired (42001), with one retry', async () => {
    const ids = providers();
    await ids.exchange('wecom', sim.issueCode('wecom', 'warmup'));
    const tokens = sim.callCount('gettoken');
    const infos = sim.callCount('getuserinfo');
    sim.expireAccessTokens();
    await expect(ids.exchange('wecom', sim.issueCode('wecom', 'after.expiry'))).resolves.toEqual({
      provider: 'wecom',
      userId: 'wecom:after.expiry',
    });
    expect(sim.callCount('gettoken') - tokens).toBe(1);
    expect(sim.callCount('getuserinfo') - infos).toBe(2); // 42001, then the answer
  });

  it('is refreshed ahead of time, 5 minutes before it expires', async () => {
    const ids = providers();
    sim.expireAccessTokens();
    await ids.exchange('wecom', sim.issueCode('wecom', 'early1'));
    const tokens = sim.callCount('gettoken');
    const infos = sim.callCount('getuserinfo');
    clockMs += 7200_000 - TOKEN_EARLY_REFRESH_MS - 1000;
    await ids.exchange('wecom', sim.issueCode('wecom', 'early2'));
    expect(sim.callCount('gettoken') - tokens).toBe(0);
    clockMs += 2000;
    // The simulator's token is still valid for ~5 minutes, so it answers the same one: the point is
    // that we asked before WeCom would have refused it, without a 42001 round trip.
    await ids.exchange('wecom', sim.issueCode('wecom', 'early3'));
    expect(sim.callCount('gettoken') - tokens).toBe(1);
    expect(sim.callCount('getuserinfo') - infos).toBe(2);
  });

  it('a wrong corp secret makes WeCom unavailable (logged as an error, secret not logged)', async () => {
    const ids = providers({ wecom: { corpSecret: 'wrong-secret-DO-NOT-LOG-777777777' } });
    const err = await refusal(ids.exchange('wecom', sim.issueCode('wecom', 'nobody')));
    expect([err.name, err.reason]).toEqual(['UnavailableError', 'IDENTITY_UNAVAILABLE']);
    expect(logText).toContain('"errcode":40001');
    expect(logText).not.toContain('wrong-secret-DO-NOT-LOG');
  });
});

describe('provider failures', () => {
  it.each<['wecom' | 'wechat', 'http500' | 'errcode']>([
    ['wecom', 'http500'],
    ['wecom', 'errcode'],
    ['wechat', 'http500'],
    ['wechat', 'errcode'],
  ])('%s answering %s is UnavailableError; the next sign-in works', async (provider, kind) => {
    const ids = providers();
    const user = provider === 'wecom' ? 'fail.user' : 'oFailOpenid0000000000000000';
    if (provider === 'wecom') await ids.exchange('wecom', sim.issueCode('wecom', 'token.warmup')); // failure hits getuserinfo
    const code = sim.issueCode(provider, user);
    sim.failNext(1, kind);
    const err = await refusal(ids.exchange(provider, code));
    expect([err.name, err.reason, err.zh]).toEqual(['UnavailableError', 'IDENTITY_UNAVAILABLE', '身份认证服务暂不可用，请稍后再试']);
    // The failed call never reached the code: it still works.
    await expect(ids.exchange(provider, code)).resolves.toEqual({ provider, userId: `${provider}:${user}` });
  });

  it.each<IdentityProviderName>(['wecom', 'wechat'])('%s not answering is UnavailableError within the timeout', async (provider) => {
    const ids = providers();
    sim.failNext(1, 'timeout');
    const started = performance.now();
    const err = await refusal(
      ids.exchange(provider, sim.issueCode(provider, provider === 'wecom' ? 'slow.user' : 'oSlowOpenid0000000000000000')),
    );
    const elapsedMs = performance.now() - started;
    expect([err.name, err.reason]).toEqual(['UnavailableError', 'IDENTITY_UNAVAILABLE']);
    expect(elapsedMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(elapsedMs).toBeLessThan(TIMEOUT_MS + 1000);
  });

  it('the caller going away cancels the sign-in', async () => {
    let arrived: () => void = () => undefined;
    const requestArrived = new Promise<void>((resolve) => (arrived = resolve));
    const silent: Server = createServer(() => arrived()); // never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const ids = providers({ wechat: { apiBase: `http://127.0.0.1:${(silent.address() as AddressInfo).port}` } });
      const caller = new AbortController();
      const pending = refusal(ids.exchange('wechat', 'SomeCode123', caller.signal));
      await requestArrived;
      caller.abort();
      expect((await pending).name).toBe('CancelledError');
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('a body over 64 KiB or not JSON is UnavailableError', async () => {
    let body = '';
    const server: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const apiBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const ids = providers({ wechat: { apiBase } });
      body = JSON.stringify({ openid: 'oBigOpenid00000000000000000', padding: 'x'.repeat(70_000) });
      expect((await refusal(ids.exchange('wechat', 'SomeCode123'))).reason).toBe('IDENTITY_UNAVAILABLE');
      body = '<html>502 Bad Gateway</html>';
      expect((await refusal(ids.exchange('wechat', 'SomeCode123'))).reason).toBe('IDENTITY_UNAVAILABLE');
      body = '[1,2,3]';
      expect((await refusal(ids.exchange('wechat', 'SomeCode123'))).reason).toBe('IDENTITY_UNAVAILABLE');
      body = JSON.stringify({ openid: 'has spaces and : colons', session_key: 'k' });
      expect((await refusal(ids.exchange('wechat', 'SomeCode123'))).reason).toBe('IDENTITY_UNAVAILABLE');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('nothing listening is UnavailableError', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const ids = providers({ wechat: { apiBase: `http://127.0.0.1:${port}` } });
    expect((await refusal(ids.exchange('wechat', 'SomeCode123'))).reason).toBe('IDENTITY_UNAVAILABLE');
  });
});

describe('refused before any call', () => {
  it('a disabled provider is FailedPrecondition PROVIDER_DISABLED', async () => {
    const ids = providers({ wecom: { corpId: '', corpSecret: '' } });
    expect(ids.enabled()).toEqual(['wechat']);
    const calls = sim.callCount('gettoken') + sim.callCount('getuserinfo');
    const err = await refusal(ids.exchange('wecom', sim.issueCode('wecom', 'zhao.liu')));
    expect([err.name, err.reason]).toEqual(['FailedPreconditionError', 'PROVIDER_DISABLED']);
    expect(err.zh).toBeTruthy();
    expect(sim.callCount('gettoken') + sim.callCount('getuserinfo')).toBe(calls);
    expect(providers({ wechat: { appId: '', appSecret: '' } }).enabled()).toEqual(['wecom']);
  });

  it.each(['', 'has space', 'a'.repeat(129), '../../etc', 'code&access_token=x', '%00', '码', 'a\nb'])(
    'malformed code %j is InvalidArgument',
    async (code) => {
      const ids = providers();
      const calls = sim.callCount('gettoken') + sim.callCount('getuserinfo') + sim.callCount('jscode2session');
      for (const provider of ['wecom', 'wechat'] as const) {
        const err = await refusal(ids.exchange(provider, code));
        expect([err.name, err.reason, err.field]).toEqual(['InvalidArgumentError', 'INVALID_CODE', 'code']);
        expect(err.zh).toBeTruthy();
      }
      expect(sim.callCount('gettoken') + sim.callCount('getuserinfo') + sim.callCount('jscode2session')).toBe(calls);
    },
  );

  it('a code of 128 characters is accepted as a code (and unknown to the provider)', async () => {
    const err = await refusal(providers().exchange('wechat', 'a'.repeat(128)));
    expect(err.reason).toBe('INVALID_CODE');
    expect(err.name).toBe('UnauthenticatedError');
  });

  it('an unknown provider is InvalidArgument UNKNOWN_PROVIDER', async () => {
    const err = await refusal(providers().exchange('alipay', 'SomeCode123'));
    expect([err.name, err.reason, err.field]).toEqual(['InvalidArgumentError', 'UNKNOWN_PROVIDER', 'provider']);
  });

  it('POST /sim/code refuses a malformed request', async () => {
    expect((await simCode({ provider: 'qq', user: 'x' })).status).toBe(400);
    expect((await simCode({ provider: 'wecom', user: 'bad user' })).status).toBe(400);
    expect((await simCode({ provider: 'wecom', user: 'ok', member: 'yes' })).status).toBe(400);
    expect((await simCode([])).status).toBe(400);
  });
});

describe('the log', () => {
  it('never holds a secret, an access token or a session key, but does hold the failures', () => {
    // Runs after the other groups in this file (vitest runs a file's tests in order).
    expect(logText).toContain('identity provider call failed');
    expect(logText).toContain('"errcode":-1');
    expect(sim.issuedAccessTokens().length).toBeGreaterThan(1);
    for (const secret of [CREDENTIALS.corpSecret, CREDENTIALS.appSecret, ...sim.issuedAccessTokens()]) {
      expect(logText).not.toContain(secret);
    }
    expect(logText).not.toContain('session_key');
    expect(logText).not.toContain('access_token=');
    expect(logText).not.toContain('corpsecret');
  });
});
