// A stand-in for WeCom and the WeChat mini-program API, for development (`npm start`) and tests. A
// loopback HTTP server speaking the real shapes (see wecom.ts and wechat.ts):
//
//   GET  /cgi-bin/gettoken?corpid=&corpsecret=           checks the credentials; the same token while it
//                                                        lasts (expires_in counts down), then a new one
//   GET  /cgi-bin/auth/getuserinfo?access_token=&code=   40014 unknown token, 42001 expired token,
//                                                        40029 unknown / used / expired code
//   GET  /sns/jscode2session?appid=&secret=&js_code=&grant_type=authorization_code
//                                                        40013 wrong appid, 40125 wrong secret, 40029
//                                                        unknown or expired code, 40163 used code,
//                                                        40226 a user issued with highRisk
//   POST /sim/code  {"provider":"wecom"|"wechat","user":"<userid or openid>","member":true}
//                   -> 200 {"code":"..."}   (development sign-in; 400 {"error":"..."} when malformed)
//   GET  /connect/oauth2/authorize?appid=&redirect_uri=&state=[&user=]
//                   WeCom's web authorization (网页授权) as the phone page uses it: without `user` a small
//                   form asks for a WeCom userid; with it, 302 to redirect_uri?code=…&state=… (a wecom code)
//
// Codes are single-use and expire after 5 minutes, like the real ones. Test controls: failNext() makes
// the next API calls fail (HTTP 500, no answer at all, or errcode -1), expireAccessTokens() expires
// every token issued so far. Everything is in memory and bounded.
import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { closeLoopback, listenOnLoopback } from '../loopback.js';
import { isIdentityProviderName, namespacedUserId, type IdentityProviderName } from './provider.js';

export interface SimulatorCredentials {
  readonly corpId: string;
  readonly corpSecret: string;
  readonly appId: string;
  readonly appSecret: string;
}

export interface SimulatorOptions {
  /** Milliseconds since the epoch; tests pass their own clock to expire codes and tokens. */
  readonly now?: () => number;
}

export interface IssueCodeOptions {
  /** WeCom only: false answers a non-member (openid instead of userid). Default true. */
  readonly member?: boolean;
  /** WeChat only: jscode2session answers 40226 (high-risk user) for this code. */
  readonly highRisk?: boolean;
}

export type SimulatedFailure = 'http500' | 'timeout' | 'errcode';
export type SimulatedApi = 'gettoken' | 'getuserinfo' | 'jscode2session';

export const SIM_CODE_TTL_MS = 5 * 60_000;
export const SIM_ACCESS_TOKEN_TTL_SEC = 7200;
const MAX_CODES = 100_000;
const MAX_ACCESS_TOKENS = 1000;
const MAX_FAILURES = 1000;
const MAX_SIM_BODY_BYTES = 4096;

interface SimulatedCode {
  readonly provider: IdentityProviderName;
  readonly user: string;
  readonly member: boolean;
  readonly highRisk: boolean;
  readonly expiresAtMs: number;
  used: boolean;
}

type Answer = { readonly status: number; readonly body: unknown } | 'hang';

export class IdentitySimulator {
  private readonly now: () => number;
  private readonly codes = new Map<string, SimulatedCode>();
  /** token -> expiry; the newest is the current one. Old ones stay (bounded) so they answer 42001, not 40014. */
  private readonly accessTokens = new Map<string, number>();
  private readonly failures: SimulatedFailure[] = [];
  private readonly calls: Record<SimulatedApi, number> = { gettoken: 0, getuserinfo: 0, jscode2session: 0 };
  private server: Server | undefined;
  private baseUrl = '';

  constructor(
    private readonly credentials: SimulatorCredentials,
    options: SimulatorOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Listens on 127.0.0.1 (port 0: a free one). */
  async start(port = 0): Promise<{ url: string }> {
    if (this.server !== undefined) throw new Error('identity simulator already started');
    const { server, url } = await listenOnLoopback((req, res) => this.handle(req, res), port);
    this.server = server;
    this.baseUrl = url;
    return { url };
  }

  /** Stops listening and drops every connection, including calls held open by a 'timeout' failure. */
  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    await closeLoopback(server);
  }

  get url(): string {
    if (this.baseUrl === '') throw new Error('identity simulator not started');
    return this.baseUrl;
  }

  /** A fresh single-use code for `user` (a WeCom userid or a WeChat openid), valid for 5 minutes. */
  issueCode(provider: IdentityProviderName, user: string, options: IssueCodeOptions = {}): string {
    if (namespacedUserId(provider, user) === undefined)
      throw new RangeError(`not a ${provider} user id: ${JSON.stringify(user.slice(0, 80))}`);
    const nowMs = this.now();
    if (this.codes.size >= MAX_CODES) {
      for (const [code, entry] of this.codes) if (entry.expiresAtMs <= nowMs) this.codes.delete(code);
      if (this.codes.size >= MAX_CODES) throw new Error(`identity simulator holds ${MAX_CODES} live codes`);
    }
    const code = randomBytes(24).toString('base64url');
    this.codes.set(code, {
      provider,
      user,
      member: options.member ?? true,
      highRisk: options.highRisk ?? false,
      expiresAtMs: nowMs + SIM_CODE_TTL_MS,
      used: false,
    });
    return code;
  }

  /** The next `n` API calls (not /sim/code) fail this way: 500, never answered, or errcode -1. */
  failNext(n: number, kind: SimulatedFailure): void {
    if (!Number.isInteger(n) || n < 0 || this.failures.length + n > MAX_FAILURES)
      throw new RangeError(`failNext: n must be 0..${MAX_FAILURES - this.failures.length}`);
    for (let i = 0; i < n; i++) this.failures.push(kind);
  }

  /** Every access token issued so far expires now (getuserinfo answers 42001; gettoken issues a new one). */
  expireAccessTokens(): void {
    const nowMs = this.now();
    for (const token of this.accessTokens.keys()) this.accessTokens.set(token, nowMs);
  }

  /** How many times an API was called (failed calls included). */
  callCount(api: SimulatedApi): number {
    return this.calls[api];
  }

  /** The access tokens issued so far (tests check that none of them shows up in a log). */
  issuedAccessTokens(): string[] {
    return [...this.accessTokens.keys()];
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://simulator');
    if (req.method === 'POST' && url.pathname === '/sim/code') {
      this.simCode(req, res);
      return;
    }
    if (req.method === 'GET' && url.pathname === '/connect/oauth2/authorize') {
      this.authorize(url.searchParams, res);
      return;
    }
    const api = apiOf(req.method, url.pathname);
    if (api === undefined) {
      send(res, { status: 404, body: { errcode: 404, errmsg: 'not found' } });
      return;
    }
    this.calls[api]++;
    const failure = this.failures.shift();
    if (failure !== undefined) {
      send(res, failureAnswer(failure));
      return;
    }
    const q = url.searchParams;
    if (api === 'gettoken') send(res, this.getToken(q));
    else if (api === 'getuserinfo') send(res, this.getUserInfo(q));
    else send(res, this.jscode2session(q), 'text/plain');
  }

  private getToken(q: URLSearchParams): Answer {
    if (q.get('corpid') !== this.credentials.corpId) return ok({ errcode: 40013, errmsg: 'invalid corpid' });
    if (q.get('corpsecret') !== this.credentials.corpSecret) return ok({ errcode: 40001, errmsg: 'invalid credential' });
    const nowMs = this.now();
    const current = [...this.accessTokens].at(-1);
    if (current !== undefined && current[1] > nowMs) {
      return ok({ errcode: 0, errmsg: 'ok', access_token: current[0], expires_in: Math.ceil((current[1] - nowMs) / 1000) });
    }
    if (this.accessTokens.size >= MAX_ACCESS_TOKENS) {
      const oldest = this.accessTokens.keys().next().value;
      if (oldest !== undefined) this.accessTokens.delete(oldest);
    }
    const token = randomBytes(48).toString('base64url');
    this.accessTokens.set(token, nowMs + SIM_ACCESS_TOKEN_TTL_SEC * 1000);
    return ok({ errcode: 0, errmsg: 'ok', access_token: token, expires_in: SIM_ACCESS_TOKEN_TTL_SEC });
  }

  private getUserInfo(q: URLSearchParams): Answer {
    const expiresAtMs = this.accessTokens.get(q.get('access_token') ?? '');
    if (expiresAtMs === undefined) return ok({ errcode: 40014, errmsg: 'invalid access_token' });
    if (expiresAtMs <= this.now()) return ok({ errcode: 42001, errmsg: 'access_token expired' });
    const entry = this.takeCode(q.get('code'), 'wecom');
    if (entry === undefined || entry === 'used') return ok({ errcode: 40029, errmsg: 'invalid code' });
    if (!entry.member) {
      return ok({ errcode: 0, errmsg: 'ok', openid: entry.user, external_userid: `wm${randomBytes(12).toString('hex')}` });
    }
    return ok({ errcode: 0, errmsg: 'ok', userid: entry.user, user_ticket: randomBytes(32).toString('base64url') });
  }

  private jscode2session(q: URLSearchParams): Answer {
    if (q.get('appid') !== this.credentials.appId) return ok({ errcode: 40013, errmsg: 'invalid appid' });
    if (q.get('secret') !== this.credentials.appSecret) return ok({ errcode: 40125, errmsg: 'invalid appsecret' });
    if (q.get('grant_type') !== 'authorization_code') return ok({ errcode: 40002, errmsg: 'invalid grant_type' });
    const entry = this.takeCode(q.get('js_code'), 'wechat');
    if (entry === undefined) return ok({ errcode: 40029, errmsg: 'invalid code' });
    if (entry === 'used') return ok({ errcode: 40163, errmsg: 'code been used' });
    if (entry.highRisk) return ok({ errcode: 40226, errmsg: 'high risk user' });
    return ok({ openid: entry.user, session_key: randomBytes(16).toString('base64') });
  }

  /** The code's entry, marked used; 'used' when it was used before; undefined when unknown or expired. */
  private takeCode(code: string | null, provider: IdentityProviderName): SimulatedCode | 'used' | undefined {
    const entry = this.codes.get(code ?? '');
    if (entry === undefined || entry.provider !== provider || entry.expiresAtMs <= this.now()) return undefined;
    if (entry.used) return 'used';
    entry.used = true;
    return entry;
  }

  /** WeCom's 网页授权 for the phone page in development: pick a userid, come back with a code. */
  private authorize(q: URLSearchParams, res: ServerResponse): void {
    const redirect = q.get('redirect_uri') ?? '';
    let target: URL | undefined;
    try {
      target = new URL(redirect);
    } catch {
      target = undefined;
    }
    if (q.get('appid') !== this.credentials.corpId || target === undefined || !/^https?:$/.test(target.protocol)) {
      send(res, { status: 400, body: 'appid or redirect_uri is wrong' }, 'text/plain');
      return;
    }
    const user = q.get('user') ?? '';
    if (user === '') {
      send(res, { status: 200, body: authorizeForm(q) }, 'text/html');
      return;
    }
    if (namespacedUserId('wecom', user) === undefined) {
      send(res, { status: 400, body: 'not a WeCom userid' }, 'text/plain');
      return;
    }
    target.searchParams.set('code', this.issueCode('wecom', user));
    target.searchParams.set('state', (q.get('state') ?? '').slice(0, 128));
    res.writeHead(302, { location: target.toString(), 'content-length': 0 });
    res.end();
  }

  private simCode(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_SIM_BODY_BYTES) {
        send(res, { status: 413, body: { error: `body over ${MAX_SIM_BODY_BYTES} bytes` } });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_SIM_BODY_BYTES) return;
      send(res, this.simCodeAnswer(Buffer.concat(chunks).toString('utf8')));
    });
  }

  private simCodeAnswer(text: string): Answer {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { status: 400, body: { error: 'body must be JSON' } };
    }
    if (typeof body !== 'object' || body === null) return { status: 400, body: { error: 'body must be a JSON object' } };
    const { provider, user, member, highRisk } = body as Record<string, unknown>;
    if (!isIdentityProviderName(provider)) return { status: 400, body: { error: 'provider must be "wecom" or "wechat"' } };
    if (typeof user !== 'string' || namespacedUserId(provider, user) === undefined) {
      return { status: 400, body: { error: `user must be a ${provider === 'wecom' ? 'WeCom userid' : 'WeChat openid'}` } };
    }
    if (member !== undefined && typeof member !== 'boolean') return { status: 400, body: { error: 'member must be true or false' } };
    if (highRisk !== undefined && typeof highRisk !== 'boolean') return { status: 400, body: { error: 'highRisk must be true or false' } };
    return ok({ code: this.issueCode(provider, user, { member: member ?? true, highRisk: highRisk ?? false }) });
  }
}

function apiOf(method: string | undefined, path: string): SimulatedApi | undefined {
  if (method !== 'GET') return undefined;
  if (path === '/cgi-bin/gettoken') return 'gettoken';
  if (path === '/cgi-bin/auth/getuserinfo') return 'getuserinfo';
  if (path === '/sns/jscode2session') return 'jscode2session';
  return undefined;
}

function failureAnswer(kind: SimulatedFailure): Answer {
  if (kind === 'timeout') return 'hang';
  if (kind === 'http500') return { status: 500, body: 'Internal Server Error' };
  return ok({ errcode: -1, errmsg: 'system busy' });
}

function ok(body: unknown): Answer {
  return { status: 200, body };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The development sign-in form: a WeCom userid, the other parameters carried along. */
function authorizeForm(q: URLSearchParams): string {
  const hidden = ['appid', 'redirect_uri', 'response_type', 'scope', 'state']
    .map((name) => `<input type="hidden" name="${name}" value="${escapeHtml((q.get(name) ?? '').slice(0, 2048))}">`)
    .join('');
  return (
    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">' +
    '<title>开发登录 (identity simulator)</title></head><body style="font:18px sans-serif;margin:24px">' +
    '<h1>开发登录</h1><p>身份模拟器代替企业微信网页授权（仅用于开发）。<br>The identity simulator stands in for WeCom sign-in.</p>' +
    `<form method="get"><label>企业微信账号 WeCom userid <input name="user" value="zhangsan" required></label>${hidden} ` +
    '<button type="submit">登录 Sign in</button></form></body></html>'
  );
}

/** jscode2session really answers JSON as text/plain; WeCom answers application/json. */
function send(res: ServerResponse, answer: Answer, contentType = 'application/json'): void {
  if (answer === 'hang') return; // held open until the client gives up or stop() drops the connection
  const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
  res.writeHead(answer.status, { 'content-type': `${contentType}; charset=utf-8`, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
