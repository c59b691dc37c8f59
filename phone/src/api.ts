// The gateway's holder API (docs/gateway-api.md), and nothing else: the session, bearer tokens, one refresh
// and retry after TOKEN_EXPIRED, errors as ApiError with the server's code, texts and field.
//
// Where the tokens live: sessionStorage, not localStorage. They survive a reload of the page inside WeCom's
// web view (which reloads pages it put in the background) but die with the tab, are not shared with other
// tabs and are not left on the phone's disk for a week; localStorage would keep the 7-day refresh token
// after the holder closed the page. Logout, unbinding and a refused refresh remove them at once.
export interface Tokens {
  accessToken: string;
  refreshToken: string;
  accessExpiresAtMs: number;
  sessionExpiresAtMs: number;
}

export interface Ecard {
  cardNumber: string;
  maskedName: string;
  holderType: string;
  status: 'active' | 'lost' | 'frozen' | 'cancelled';
  balanceFen: number;
  smallWalletFen: number;
  synced: boolean;
  initialPassword: boolean;
  binding: { userId: string; boundAtMs: number } | null;
  channels: { alipay: 'bound' | 'unbound'; wechat: 'bound' | 'unbound' };
}

export interface CardEvent {
  id: string;
  type: 'payment' | 'reversal' | 'refund' | 'recharge' | 'card_status' | 'fee' | 'fee_returned';
  atMs: number;
  amountFen?: number;
  balanceFen?: number;
  approved?: boolean;
  declineReason?: string;
  credential?: string;
  qrCodeId?: string;
  merchantId?: string;
  location?: string;
  channel?: string;
  status?: Ecard['status'];
  utility?: string;
  reason?: string;
  transactionId?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly messageEn: string,
    readonly field?: string,
    readonly retryAfterSec?: number,
  ) {
    super(message);
  }
}

const STORE_KEY = 'cardswitch.phone.session';
const REQUEST_TIMEOUT_MS = 15_000;
/** Refresh this long before the access token's end rather than spend a request on a 401. */
const REFRESH_AHEAD_MS = 30_000;
const SESSION_CODES = new Set(['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_ENDED']);

export class Api {
  private tokens: Tokens | undefined;
  private refreshing: Promise<void> | undefined;
  /** Called once when the session is gone (refused refresh, SESSION_ENDED): the page signs in again. */
  onSessionEnded: (error: ApiError) => void = () => undefined;

  constructor() {
    try {
      const stored = sessionStorage.getItem(STORE_KEY);
      if (stored !== null) this.tokens = JSON.parse(stored) as Tokens;
    } catch {
      this.tokens = undefined;
    }
  }

  get signedIn(): boolean {
    return this.tokens !== undefined;
  }

  get accessToken(): string {
    return this.tokens?.accessToken ?? '';
  }

  private store(tokens: Tokens | undefined): void {
    this.tokens = tokens;
    try {
      if (tokens === undefined) sessionStorage.removeItem(STORE_KEY);
      else sessionStorage.setItem(STORE_KEY, JSON.stringify(tokens));
    } catch {
      // Private mode without storage: the tokens stay in memory only.
    }
  }

  clear(): void {
    this.store(undefined);
  }

  async signIn(provider: string, code: string): Promise<{ bound: boolean }> {
    const answer = await this.send<Tokens & { bound: boolean }>('POST', '/api/v1/session', { provider, code }, '');
    this.store(pickTokens(answer));
    return { bound: answer.bound };
  }

  /** Binding answers a new access token that names the card. */
  useAccessToken(accessToken: string, accessExpiresAtMs: number): void {
    if (this.tokens !== undefined) this.store({ ...this.tokens, accessToken, accessExpiresAtMs });
  }

  /** A fresh access token (before a WebSocket reconnects, or after TOKEN_EXPIRED). */
  refresh(): Promise<void> {
    if (this.refreshing !== undefined) return this.refreshing;
    const tokens = this.tokens;
    if (tokens === undefined) return Promise.reject(new ApiError(401, 'TOKEN_MISSING', '请先登录', 'sign in first'));
    this.refreshing = this.send<Tokens>('POST', '/api/v1/session/refresh', { refreshToken: tokens.refreshToken }, '')
      .then((answer) => this.store(pickTokens(answer)))
      .catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 401) this.endSession(err);
        throw err;
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  async freshToken(): Promise<string> {
    if (this.tokens !== undefined && this.tokens.accessExpiresAtMs - Date.now() < REFRESH_AHEAD_MS) await this.refresh();
    return this.accessToken;
  }

  async logout(): Promise<void> {
    try {
      await this.call('DELETE', '/api/v1/session');
    } finally {
      this.clear();
    }
  }

  /** A call with the bearer token: refreshed ahead of its end, and once more after TOKEN_EXPIRED. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    if (this.tokens === undefined) throw this.endSession(new ApiError(401, 'TOKEN_MISSING', '请先登录', 'sign in first'));
    await this.freshToken();
    try {
      return await this.send<T>(method, path, body, this.accessToken);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      if (err.code !== 'TOKEN_EXPIRED') throw this.endSession(err);
      await this.refresh();
      return this.send<T>(method, path, body, this.accessToken);
    }
  }

  private endSession(err: ApiError): ApiError {
    if (this.tokens !== undefined || SESSION_CODES.has(err.code)) {
      this.clear();
      this.onSessionEnded(err);
    }
    return err;
  }

  private async send<T>(method: string, path: string, body: unknown, token: string): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token !== '') headers['authorization'] = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let res: Response;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: controller.signal });
    } catch {
      throw new ApiError(0, 'NETWORK', '网络连接失败，请检查网络后重试', 'no connection: check the network and try again');
    } finally {
      clearTimeout(timer);
    }
    const text = await res.text().catch(() => '');
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch {
      parsed = {};
    }
    if (res.ok) return parsed as T;
    const error = (parsed as { error?: { code?: string; message?: string; messageEn?: string; field?: string } }).error ?? {};
    const retryAfter = Number(res.headers.get('retry-after') ?? '');
    throw new ApiError(
      res.status,
      error.code ?? `HTTP_${res.status}`,
      error.message ?? '系统繁忙，请稍后再试',
      error.messageEn ?? `the server answered ${res.status}`,
      error.field,
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
    );
  }
}

function pickTokens(answer: Tokens): Tokens {
  return {
    accessToken: answer.accessToken,
    refreshToken: answer.refreshToken,
    accessExpiresAtMs: answer.accessExpiresAtMs,
    sessionExpiresAtMs: answer.sessionExpiresAtMs,
  };
}
