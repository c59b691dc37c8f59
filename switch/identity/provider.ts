// Who the e-card page's user is. The page (inside WeCom or the WeChat mini-program) gets a one-time
// OAuth `code` and sends it to the gateway; an IdentityProvider exchanges it for the user's id at the
// provider. Adapters: wecom.ts, wechat.ts; the development stand-in for both: simulator.ts.
//
// What every adapter promises:
//  - the answer is a namespaced user id (`wecom:<userid>`, `wechat:<openid>`) of the provider's shape;
//  - refusals are domain errors with a reason and zh-CN text: a bad or used code is Unauthenticated
//    (the page gets a new one by reloading), a user who may not sign in is PermissionDenied, and any
//    failure of the provider itself (HTTP error, timeout, body we cannot read) is Unavailable;
//  - it stops promptly when `signal` aborts;
//  - secrets, access tokens and session keys are never logged nor put into error messages (the URLs
//    carry them, so URLs are never logged either).
import { InvalidArgumentError, UnauthenticatedError, UnavailableError } from '../errors.js';
import type { Logger } from '../log.js';

export type IdentityProviderName = 'wecom' | 'wechat';

export const IDENTITY_PROVIDER_NAMES: readonly IdentityProviderName[] = ['wecom', 'wechat'];

export interface Identity {
  readonly provider: IdentityProviderName;
  /** Namespaced: `wecom:<userid>` or `wechat:<openid>`. */
  readonly userId: string;
}

export interface IdentityProvider {
  readonly name: IdentityProviderName;
  /** Exchanges a one-time OAuth code for the user's identity. Must settle promptly when `signal` aborts. */
  exchange(code: string, signal: AbortSignal): Promise<Identity>;
}

export function isIdentityProviderName(value: unknown): value is IdentityProviderName {
  return value === 'wecom' || value === 'wechat';
}

// --- codes --------------------------------------------------------------------------------------

export const MAX_CODE_LENGTH = 128;
const CODE_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** Checks a code where it enters; real codes are 32-ish URL-safe characters. */
export function checkCode(code: unknown): string {
  if (typeof code !== 'string' || !CODE_PATTERN.test(code)) {
    throw new InvalidArgumentError(`code must be 1-${MAX_CODE_LENGTH} characters of A-Z a-z 0-9 _ -`, {
      reason: 'INVALID_CODE',
      zh: '登录参数有误，请重新进入页面',
      field: 'code',
    });
  }
  return code;
}

// --- user ids -----------------------------------------------------------------------------------

// WeCom: "长度为1~64个字节。只能由数字、字母和“_-@.”四种字符组成，且第一个字符必须是数字或字母".
const WECOM_USERID = /^[A-Za-z0-9][A-Za-z0-9_@.-]{0,63}$/;
// WeChat openids are 28 URL-safe characters today; allow some room, never ':' or spaces (they go into keys).
const WECHAT_OPENID = /^[A-Za-z0-9_-]{1,64}$/;

/** Longest namespaced user id: "wechat:" + 64. */
export const MAX_USER_ID_LENGTH = 71;

/** The namespaced id of a provider's own id, or undefined when the id is not of the provider's shape. */
export function namespacedUserId(provider: IdentityProviderName, id: string): string | undefined {
  const pattern = provider === 'wecom' ? WECOM_USERID : WECHAT_OPENID;
  return pattern.test(id) ? `${provider}:${id}` : undefined;
}

/** True for `wecom:<userid>` / `wechat:<openid>` of the providers' shapes (safe to put into a Redis key). */
export function isNamespacedUserId(userId: unknown): userId is string {
  if (typeof userId !== 'string' || userId.length > MAX_USER_ID_LENGTH) return false;
  const cut = userId.indexOf(':');
  const provider = userId.slice(0, cut);
  if (cut < 0 || !isIdentityProviderName(provider)) return false;
  return namespacedUserId(provider, userId.slice(cut + 1)) === userId;
}

/** The provider of a namespaced user id (which must be one, see isNamespacedUserId). */
export function providerOfUserId(userId: string): IdentityProviderName {
  const provider = userId.slice(0, userId.indexOf(':'));
  if (!isIdentityProviderName(provider)) throw new Error(`not a namespaced user id: ${JSON.stringify(userId.slice(0, 80))}`);
  return provider;
}

// --- refusals -----------------------------------------------------------------------------------

export function invalidCodeError(provider: IdentityProviderName): UnauthenticatedError {
  return new UnauthenticatedError(`the ${provider} sign-in code is invalid, expired or already used; reload the page for a new one`, {
    reason: 'INVALID_CODE',
    zh: '登录已失效，请重新进入页面',
  });
}

export function identityUnavailableError(provider: IdentityProviderName, what: string): UnavailableError {
  return new UnavailableError(`the ${provider} identity service is unavailable (${what}); try again later`, {
    reason: 'IDENTITY_UNAVAILABLE',
    zh: '身份认证服务暂不可用，请稍后再试',
  });
}

// --- talking to a provider ----------------------------------------------------------------------

/** Provider answers are a few hundred bytes; anything larger is not an answer we want to parse. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
/** errmsg is logged, truncated to this (it is the provider's text; it never carries our secrets). */
const MAX_LOGGED_ERRMSG = 200;

export type ProviderAnswer = Readonly<Record<string, unknown>>;

export interface ProviderCall {
  readonly provider: IdentityProviderName;
  /** Which API, for the log: 'gettoken', 'getuserinfo', 'jscode2session'. */
  readonly step: string;
  readonly log: Logger;
}

/** Joins the API base (which may carry a path, e.g. behind a proxy) and an API path, with query parameters. */
export function apiUrl(apiBase: string, path: string, query: Readonly<Record<string, string>>): URL {
  const url = new URL(`${apiBase.replace(/\/+$/, '')}${path}`);
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
  return url;
}

/**
 * GETs a provider API and parses its JSON object. Every failure (no connection, abort, HTTP status
 * other than 200, a body over MAX_RESPONSE_BYTES, not a JSON object) is logged without the URL and
 * thrown as UnavailableError.
 */
export async function getProviderJson(url: URL, signal: AbortSignal, call: ProviderCall): Promise<ProviderAnswer> {
  let response: Response;
  try {
    response = await fetch(url, { method: 'GET', signal, redirect: 'error', headers: { accept: 'application/json' } });
  } catch (err) {
    throw failed(call, signal.aborted ? 'aborted' : 'network', { code: causeCode(err) });
  }
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => undefined);
    throw failed(call, 'http', { status: response.status });
  }
  const text = await readBounded(response, signal, call);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw failed(call, 'body', { bytes: text.length });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw failed(call, 'body', { bytes: text.length });
  return parsed as ProviderAnswer;
}

async function readBounded(response: Response, signal: AbortSignal, call: ProviderCall): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > MAX_RESPONSE_BYTES) {
    await response.body?.cancel().catch(() => undefined);
    throw failed(call, 'too-large', { bytes: declared });
  }
  if (response.body === null) return '';
  // A fetch body is a stream of bytes (the Fetch standard); undici's types leave its chunks `any`.
  const reader = response.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > MAX_RESPONSE_BYTES) {
        await reader.cancel().catch(() => undefined);
        throw failed(call, 'too-large', { bytes: total });
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof UnavailableError) throw err;
    throw failed(call, signal.aborted ? 'aborted' : 'network', { code: causeCode(err) });
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw failed(call, 'body', { bytes: total });
  }
}

function failed(call: ProviderCall, failure: string, details: Readonly<Record<string, unknown>>): UnavailableError {
  call.log.warn({ provider: call.provider, step: call.step, failure, ...details }, 'identity provider call failed');
  return identityUnavailableError(call.provider, `${call.step}: ${failure}`);
}

/** Logs a provider's error answer (errcode and errmsg only) and returns the UnavailableError for it. */
export function providerRefused(call: ProviderCall, answer: ProviderAnswer, level: 'warn' | 'error' = 'warn'): UnavailableError {
  const errcode = answer['errcode'];
  call.log[level](
    {
      provider: call.provider,
      step: call.step,
      errcode: typeof errcode === 'number' ? errcode : String(errcode).slice(0, 20),
      errmsg: errmsgOf(answer),
    },
    'identity provider answered an error',
  );
  return identityUnavailableError(call.provider, `${call.step}: errcode ${String(errcode).slice(0, 20)}`);
}

export function errmsgOf(answer: ProviderAnswer): string {
  const errmsg = answer['errmsg'];
  return typeof errmsg === 'string' ? errmsg.slice(0, MAX_LOGGED_ERRMSG) : '';
}

/** The answer's errcode: a number, 0 when absent (jscode2session omits it on success), NaN when malformed. */
export function errcodeOf(answer: ProviderAnswer): number {
  const errcode = answer['errcode'];
  if (errcode === undefined) return 0;
  return typeof errcode === 'number' && Number.isInteger(errcode) ? errcode : Number.NaN;
}

export function stringField(answer: ProviderAnswer, name: string): string | undefined {
  const value = answer[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** A system error code (ECONNREFUSED ...) of a failed fetch, without its message (which may hold the URL). */
function causeCode(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string') return cause.code.slice(0, 40);
  return err instanceof Error ? err.name.slice(0, 40) : 'unknown';
}

/** Waits for `promise`, or rejects with `onAbort()` as soon as `signal` aborts (the promise runs on). */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(onAbort());
  let abort = (): void => undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    abort = () => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
  });
  // `promise` settles the race with its own value or rejection reason, untouched.
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener('abort', abort));
}
