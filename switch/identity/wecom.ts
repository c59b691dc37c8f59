// WeCom (企业微信) OAuth: the page inside WeCom gets a `code`; we exchange it for the member's userid.
//
//   GET {apiBase}/cgi-bin/gettoken?corpid=&corpsecret=
//       -> {errcode:0, errmsg:'ok', access_token, expires_in:7200}
//   GET {apiBase}/cgi-bin/auth/getuserinfo?access_token=&code=
//       -> member:     {errcode:0, errmsg:'ok', userid, user_ticket?}
//       -> non-member: {errcode:0, errmsg:'ok', openid, external_userid?}   (refused: students and staff only)
//
// The access token is shared by the whole corp application and rate-limited by WeCom, so it is cached
// until 5 minutes before it expires and at most one refresh runs at a time. A token WeCom rejects
// (42001 expired, 40014 invalid: e.g. another instance's gettoken or an admin reset the secret) is
// dropped and the call retried once with a fresh one.
import { PermissionDeniedError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  apiUrl,
  checkCode,
  errcodeOf,
  getProviderJson,
  identityUnavailableError,
  invalidCodeError,
  namespacedUserId,
  providerRefused,
  raceAbort,
  stringField,
  type Identity,
  type IdentityProvider,
  type ProviderAnswer,
  type ProviderCall,
} from './provider.js';

export interface WeComOptions {
  readonly apiBase: string;
  readonly corpId: string;
  readonly corpSecret: string;
  readonly log: Logger;
  /**
   * Bound of one gettoken call. The refresh is shared by every sign-in waiting for it, so it runs on
   * its own deadline rather than on the signal of whichever sign-in happened to start it.
   */
  readonly tokenTimeoutMs: number;
  /** Milliseconds since the epoch (tests may pass their own clock). */
  readonly now?: () => number;
}

/** Refresh the cached token this long before WeCom says it expires. */
export const TOKEN_EARLY_REFRESH_MS = 5 * 60_000;
const MAX_TOKEN_TTL_SEC = 86_400;
const MAX_ACCESS_TOKEN_LENGTH = 1024;

const ERRCODE_INVALID_CODE = 40029;
/** 40014 invalid access_token, 42001 access_token expired. */
const ERRCODES_TOKEN_REJECTED: ReadonlySet<number> = new Set([40014, 42001]);

interface CachedToken {
  readonly token: string;
  readonly refreshAtMs: number;
}

type UserInfo = Identity | 'token-rejected';

export class WeComProvider implements IdentityProvider {
  readonly name = 'wecom' as const;
  private readonly now: () => number;
  private cached: CachedToken | undefined;
  private refreshing: Promise<string> | undefined;

  constructor(private readonly options: WeComOptions) {
    if (options.corpId === '' || options.corpSecret === '') throw new Error('WeComProvider needs a corp id and a corp secret');
    if (!Number.isInteger(options.tokenTimeoutMs) || options.tokenTimeoutMs < 1)
      throw new Error(`tokenTimeoutMs must be >= 1, got ${options.tokenTimeoutMs}`);
    this.now = options.now ?? Date.now;
  }

  async exchange(code: string, signal: AbortSignal): Promise<Identity> {
    checkCode(code);
    // At most two rounds: a rejected token is replaced once; a second rejection is WeCom's problem.
    for (let round = 1; round <= 2; round++) {
      const token = await this.accessToken(signal);
      const info = await this.userInfo(token, code, signal);
      if (info !== 'token-rejected') return info;
      this.dropToken(token);
    }
    throw identityUnavailableError('wecom', 'getuserinfo: access token rejected twice');
  }

  /** Forgets the cached access token (the next sign-in fetches a new one). */
  dropToken(token?: string): void {
    if (token === undefined || this.cached?.token === token) this.cached = undefined;
  }

  private accessToken(signal: AbortSignal): Promise<string> {
    const cached = this.cached;
    if (cached !== undefined && this.now() < cached.refreshAtMs) return Promise.resolve(cached.token);
    if (this.refreshing === undefined) {
      const refreshing = this.fetchToken().finally(() => {
        this.refreshing = undefined;
      });
      // Every waiter may have given up before it settles; its rejection is theirs, not unhandled.
      refreshing.catch(() => undefined);
      this.refreshing = refreshing;
    }
    return raceAbort(this.refreshing, signal, () => identityUnavailableError('wecom', 'gettoken: aborted'));
  }

  private async fetchToken(): Promise<string> {
    const call: ProviderCall = { provider: 'wecom', step: 'gettoken', log: this.options.log };
    const url = apiUrl(this.options.apiBase, '/cgi-bin/gettoken', { corpid: this.options.corpId, corpsecret: this.options.corpSecret });
    const answer = await getProviderJson(url, AbortSignal.timeout(this.options.tokenTimeoutMs), call);
    // A refused gettoken (40001 wrong secret, 40013 wrong corp id) is a configuration problem: error level.
    if (errcodeOf(answer) !== 0) throw providerRefused(call, answer, 'error');
    const token = stringField(answer, 'access_token');
    const expiresInSec = answer['expires_in'];
    if (
      token === undefined ||
      token.length > MAX_ACCESS_TOKEN_LENGTH ||
      typeof expiresInSec !== 'number' ||
      !Number.isInteger(expiresInSec) ||
      expiresInSec < 1 ||
      expiresInSec > MAX_TOKEN_TTL_SEC
    ) {
      this.options.log.warn(
        { provider: 'wecom', step: 'gettoken', failure: 'body' },
        'identity provider answered without a usable access token',
      );
      throw identityUnavailableError('wecom', 'gettoken: no usable access token');
    }
    // Normally 7200 s -> 6900 s; a short-lived token is used for half its life rather than not at all.
    const usableMs = Math.max(expiresInSec * 1000 - TOKEN_EARLY_REFRESH_MS, expiresInSec * 500);
    this.cached = { token, refreshAtMs: this.now() + usableMs };
    return token;
  }

  private async userInfo(token: string, code: string, signal: AbortSignal): Promise<UserInfo> {
    const call: ProviderCall = { provider: 'wecom', step: 'getuserinfo', log: this.options.log };
    const url = apiUrl(this.options.apiBase, '/cgi-bin/auth/getuserinfo', { access_token: token, code });
    const answer = await getProviderJson(url, signal, call);
    const errcode = errcodeOf(answer);
    if (ERRCODES_TOKEN_REJECTED.has(errcode)) {
      this.options.log.info({ provider: 'wecom', step: 'getuserinfo', errcode }, 'access token rejected; fetching a new one');
      return 'token-rejected';
    }
    if (errcode === ERRCODE_INVALID_CODE) throw invalidCodeError('wecom');
    if (errcode !== 0) throw providerRefused(call, answer);
    return identityOf(answer, call);
  }
}

function identityOf(answer: ProviderAnswer, call: ProviderCall): Identity {
  const userid = stringField(answer, 'userid');
  if (userid === undefined) {
    if (stringField(answer, 'openid') !== undefined || stringField(answer, 'external_userid') !== undefined) {
      throw new PermissionDeniedError('only members of the university (teachers, staff and students) may use the e-card', {
        reason: 'NOT_A_MEMBER',
        zh: '仅限本校师生使用',
      });
    }
    call.log.warn({ provider: 'wecom', step: call.step, failure: 'body' }, 'identity provider answered neither userid nor openid');
    throw identityUnavailableError('wecom', 'getuserinfo: no user in the answer');
  }
  const userId = namespacedUserId('wecom', userid);
  if (userId === undefined) {
    call.log.warn(
      { provider: 'wecom', step: call.step, failure: 'userid', length: userid.length },
      'identity provider answered a userid of an unexpected shape',
    );
    throw identityUnavailableError('wecom', 'getuserinfo: unexpected userid');
  }
  return { provider: 'wecom', userId };
}
