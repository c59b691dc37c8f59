// Cardholder sessions of the e-card page: who is calling, proven by signed, expiring tokens.
//
// After a sign-in (identity/) the page gets two JWTs, HS256 under config.sessions.secret, issuer
// 'cardswitch', audience 'ecard':
//   access  {typ:'access',  sub, sid, card, iat, exp = now + accessTtlSec (never past the session's end)}
//   refresh {typ:'refresh', sub, sid,       iat, exp = the session's end}
// `card` is the card the user had bound when the token was issued ('' when none); after binding or
// unbinding the gateway reissues the access token. A token alone is not enough: the session record
// (ledger/sessions.ts) must still exist for the same user, so logout and unbinding take effect at
// once, with one Redis round trip per check. Every refusal is an UnauthenticatedError with a reason
// and changes nothing.
import { randomBytes } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { SessionConfig } from '../config.js';
import { UnauthenticatedError } from '../errors.js';
import { isNamespacedUserId, type Identity } from '../identity/provider.js';
import type { SessionStore } from '../ledger/sessions.js';

export const SESSION_ISSUER = 'cardswitch';
export const SESSION_AUDIENCE = 'ecard';
/** Our tokens are ~300 characters; anything much longer is not ours and is not parsed. */
export const MAX_TOKEN_LENGTH = 2048;
const MIN_SECRET_LENGTH = 32;
const ALGORITHM = 'HS256';
const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;
const CARD_NO = /^(\d{4,20})?$/;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface SessionTokens {
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly accessExpiresAtMs: number;
  readonly sessionExpiresAtMs: number;
}

export interface AccessGrant {
  readonly accessToken: string;
  readonly accessExpiresAtMs: number;
}

export interface AuthenticatedSession {
  /** Namespaced: `wecom:<userid>` or `wechat:<openid>`. */
  readonly userId: string;
  readonly sessionId: string;
  /** The card bound when the access token was issued; '' when none. */
  readonly cardNo: string;
}

export interface SessionsOptions {
  /** The session records in Redis (ledger/sessions.ts), built by the wiring with its hot-path read. */
  readonly store: SessionStore;
  readonly config: SessionConfig;
  /** Milliseconds since the epoch; tests pass their own clock. */
  readonly now: () => number;
  /**
   * Tells every gateway that a session ended, so each closes its live-event sockets (4001): the wiring
   * passes card-events.ts's sessionEnded. Called for the sessions a sign-in pushes out over the cap.
   */
  readonly announceEnded: (sessionId: string) => Promise<void>;
}

type TokenType = 'access' | 'refresh';

interface VerifiedClaims {
  readonly sub: string;
  readonly sid: string;
  readonly card: string;
  readonly expSec: number;
}

/** The token of an `Authorization: Bearer <token>` header; TOKEN_MISSING / TOKEN_INVALID otherwise. */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header.trim() === '') throw tokenMissing();
  if (header.length > MAX_TOKEN_LENGTH + 16) throw tokenInvalid();
  const match = /^\s*Bearer +(\S+)\s*$/i.exec(header);
  if (match === null) throw tokenInvalid();
  return match[1] ?? '';
}

/**
 * Tokens that verified, remembered so a page's next calls with the same token skip jose's signature
 * check (measured: about 167 µs per jwtVerify here, against a Map look-up). Only tokens that verified
 * are kept; expiry is checked on every use against the same clock; the session record is still read on
 * every call, so logout and unbinding take effect at once. Bounded: the oldest is dropped when full.
 */
const MAX_VERIFIED_TOKENS = 50_000;

export class Sessions {
  private readonly verified = new Map<string, VerifiedClaims & { readonly typ: TokenType }>();
  /** Checks in progress, by type and token; never more entries than requests waiting. */
  private readonly verifying = new Map<string, Promise<VerifiedClaims>>();
  private readonly store: SessionStore;
  private readonly key: Uint8Array;
  private readonly config: SessionConfig;
  private readonly now: () => number;
  private readonly announceEnded: (sessionId: string) => Promise<void>;

  constructor(options: SessionsOptions) {
    const { config } = options;
    if (config.secret.length < MIN_SECRET_LENGTH) throw new Error(`the session secret must be at least ${MIN_SECRET_LENGTH} characters`);
    if (!Number.isInteger(config.accessTtlSec) || config.accessTtlSec < 1)
      throw new Error(`accessTtlSec must be >= 1, got ${config.accessTtlSec}`);
    if (!Number.isInteger(config.sessionTtlSec) || config.sessionTtlSec < 1)
      throw new Error(`sessionTtlSec must be >= 1, got ${config.sessionTtlSec}`);
    this.store = options.store;
    this.key = new TextEncoder().encode(config.secret);
    this.config = config;
    this.now = options.now;
    this.announceEnded = options.announceEnded;
  }

  /**
   * Starts a session for a signed-in user whose bound card is `cardNo` ('' when none). The user's oldest
   * sessions beyond MAX_SESSIONS_PER_USER end, as a logout ends one: their tokens stop working and their
   * live-event sockets are closed on every gateway.
   */
  async start(identity: Identity, cardNo: string): Promise<SessionTokens> {
    if (!isNamespacedUserId(identity.userId) || !identity.userId.startsWith(`${identity.provider}:`)) {
      throw new Error('Sessions.start needs a namespaced user id of its provider');
    }
    assertCardNo(cardNo);
    const sessionId = randomBytes(16).toString('base64url');
    const createdMs = this.now();
    const sessionEndSec = this.sessionEndSec(createdMs);
    const access = await this.signAccess(identity.userId, sessionId, cardNo, sessionEndSec);
    const refreshToken = await this.sign({ typ: 'refresh', sid: sessionId }, identity.userId, sessionEndSec);
    const pushedOut = await this.store.create(
      sessionId,
      { userId: identity.userId, createdMs, provider: identity.provider },
      this.config.sessionTtlSec,
    );
    await Promise.all(pushedOut.map((sid) => this.announceEnded(sid)));
    return { ...access, refreshToken, sessionExpiresAtMs: sessionEndSec * 1000 };
  }

  /** Who is calling: a valid access token of a live session. */
  async authenticate(accessToken: string): Promise<AuthenticatedSession> {
    const claims = await this.verify(accessToken, 'access');
    await this.liveSession(claims.sid, claims.sub);
    return { userId: claims.sub, sessionId: claims.sid, cardNo: claims.card };
  }

  /** A new access token (with the card the user has now) for a valid refresh token of a live session. */
  async refresh(refreshToken: string, cardOf: (userId: string) => Promise<string>): Promise<SessionTokens> {
    const claims = await this.verify(refreshToken, 'refresh');
    await this.liveSession(claims.sid, claims.sub);
    const cardNo = await cardOf(claims.sub);
    assertCardNo(cardNo);
    const access = await this.signAccess(claims.sub, claims.sid, cardNo, claims.expSec);
    return { ...access, refreshToken, sessionExpiresAtMs: claims.expSec * 1000 };
  }

  /** A new access token for a live session, after its user bound or unbound a card. */
  async reissue(session: AuthenticatedSession, cardNo: string): Promise<AccessGrant> {
    assertCardNo(cardNo);
    const record = await this.liveSession(session.sessionId, session.userId);
    const sessionEndSec = this.sessionEndSec(record.createdMs);
    if (sessionEndSec <= Math.floor(this.now() / 1000)) throw tokenExpired();
    return this.signAccess(session.userId, session.sessionId, cardNo, sessionEndSec);
  }

  /** Ends one session (its access and refresh tokens stop working); false when it had ended already. */
  async logout(sessionId: string): Promise<boolean> {
    if (!SESSION_ID.test(sessionId)) return false;
    return this.store.end(sessionId);
  }

  /** Ends every session of the user (unbinding); returns how many were live. */
  async endAllOf(userId: string): Promise<number> {
    if (!isNamespacedUserId(userId)) throw new Error('endAllOf needs a namespaced user id');
    return this.store.endAll(userId);
  }

  private sessionEndSec(createdMs: number): number {
    return Math.floor(createdMs / 1000) + this.config.sessionTtlSec;
  }

  private async signAccess(userId: string, sessionId: string, cardNo: string, sessionEndSec: number): Promise<AccessGrant> {
    const expSec = Math.min(Math.floor(this.now() / 1000) + this.config.accessTtlSec, sessionEndSec);
    const accessToken = await this.sign({ typ: 'access', sid: sessionId, card: cardNo }, userId, expSec);
    return { accessToken, accessExpiresAtMs: expSec * 1000 };
  }

  private sign(claims: JWTPayload, userId: string, expSec: number): Promise<string> {
    return new SignJWT(claims)
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
      .setIssuer(SESSION_ISSUER)
      .setAudience(SESSION_AUDIENCE)
      .setSubject(userId)
      .setIssuedAt(Math.floor(this.now() / 1000))
      .setExpirationTime(expSec)
      .sign(this.key);
  }

  private async verify(token: string, typ: TokenType): Promise<VerifiedClaims> {
    if (typeof token !== 'string' || token === '') throw tokenMissing();
    if (token.length > MAX_TOKEN_LENGTH || !JWT_SHAPE.test(token)) throw tokenInvalid();
    const known = this.verified.get(token);
    if (known !== undefined && known.typ === typ) {
      // jose's rule: expired once exp <= now, in whole seconds.
      if (known.expSec > Math.floor(this.now() / 1000)) return known;
      this.verified.delete(token);
      throw tokenExpired();
    }
    // Calls that bring the same new token at once share one check (a page opening fires several).
    const key = `${typ}:${token}`;
    let pending = this.verifying.get(key);
    if (pending === undefined) {
      pending = this.verifySignature(token, typ).finally(() => this.verifying.delete(key));
      this.verifying.set(key, pending);
    }
    const claims = await pending;
    if (this.verified.size >= MAX_VERIFIED_TOKENS) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(token, { ...claims, typ });
    return claims;
  }

  private async verifySignature(token: string, typ: TokenType): Promise<VerifiedClaims> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: [ALGORITHM],
        issuer: SESSION_ISSUER,
        audience: SESSION_AUDIENCE,
        currentDate: new Date(this.now()),
        clockTolerance: 0,
        requiredClaims: ['sub', 'sid', 'typ', 'iat', 'exp'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw tokenExpired();
      if (err instanceof joseErrors.JOSEError) throw tokenInvalid();
      throw err;
    }
    const { sub, sid, card, exp } = payload;
    if (payload['typ'] !== typ || !isNamespacedUserId(sub) || typeof sid !== 'string' || !SESSION_ID.test(sid) || typeof exp !== 'number') {
      throw tokenInvalid();
    }
    if (typ === 'access' && (typeof card !== 'string' || !CARD_NO.test(card))) throw tokenInvalid();
    return { sub, sid, card: typeof card === 'string' ? card : '', expSec: exp };
  }

  private async liveSession(sessionId: string, userId: string) {
    const record = await this.store.get(sessionId);
    if (record === null || record.userId !== userId) throw sessionEnded();
    return record;
  }
}

function assertCardNo(cardNo: string): void {
  if (typeof cardNo !== 'string' || !CARD_NO.test(cardNo))
    throw new Error('a session card number is 4-20 digits, or empty when no card is bound');
}

function tokenMissing(): UnauthenticatedError {
  return new UnauthenticatedError('sign in first: no session token was sent', { reason: 'TOKEN_MISSING', zh: '请先登录' });
}

function tokenInvalid(): UnauthenticatedError {
  return new UnauthenticatedError('the session token is not valid; sign in again', {
    reason: 'TOKEN_INVALID',
    zh: '登录信息无效，请重新进入页面',
  });
}

function tokenExpired(): UnauthenticatedError {
  return new UnauthenticatedError('the session token expired; refresh it or sign in again', {
    reason: 'TOKEN_EXPIRED',
    zh: '登录已过期，请刷新页面',
  });
}

function sessionEnded(): UnauthenticatedError {
  return new UnauthenticatedError('the session ended (logout or unbinding); sign in again', {
    reason: 'SESSION_ENDED',
    zh: '已退出登录或解绑，请重新进入',
  });
}
