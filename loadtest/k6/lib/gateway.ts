// What the k6 scripts that call the gateway as a cardholder share: the gateway's address, the bound
// e-card users of the campus file (`--export-campus F --ecard-users N`), and a per-VU store of their
// access tokens. An exported access token lives 15 minutes (SESSION_ACCESS_TTL_SEC), so each VU
// refreshes a user's token (POST /api/v1/session/refresh with the exported refresh token, which lives
// as long as the session, 7 days) the first time it acts as that user, and again when the gateway
// answers TOKEN_EXPIRED.
import { check } from 'k6';
import exec from 'k6/execution';
import http from 'k6/http';
import type { CampusEcardUser } from '../../shared/campus-data.ts';
import { accessTokenOf, bearer, refusalCodeOf, SESSION_REFRESH_PATH } from '../../shared/ecard.ts';

/** Base URL of the gateway; `npm start` serves it on 8080 (GATEWAY_PORT). */
export const GATEWAY = (__ENV['GATEWAY'] ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const REQUEST_TIMEOUT = __ENV['REQUEST_TIMEOUT'] ?? '5s';

/** The users this VU acts as, in turn; its access tokens (refreshed when missing or expired). */
export class EcardUsers {
  private readonly tokens = new Map<number, string>();
  private next: number;

  constructor(private readonly users: ArrayLike<CampusEcardUser>) {
    if (users.length === 0)
      throw new Error('the campus file has no e-card users: export it with --export-campus F --ecard-users N while npm start runs');
    // VUs start on different users, so no one card is hot.
    this.next = (exec.vu.idInTest - 1) % users.length;
  }

  /** The next user of this VU and its index. */
  take(): { index: number; user: CampusEcardUser } {
    const index = this.next;
    this.next = (this.next + 1) % this.users.length;
    const user = this.users[index];
    if (user === undefined) throw new Error(`no e-card user at ${index}`);
    return { index, user };
  }

  /** A fresh access token of the user (one refresh per user per VU, then reused until it expires). */
  accessToken(index: number, user: CampusEcardUser): string | undefined {
    const known = this.tokens.get(index);
    if (known !== undefined) return known;
    const response = http.post(`${GATEWAY}${SESSION_REFRESH_PATH}`, JSON.stringify({ refreshToken: user.refreshToken }), {
      headers: { 'content-type': 'application/json' },
      tags: { name: 'refresh' },
      timeout: REQUEST_TIMEOUT,
    });
    const token = response.status === 200 ? accessTokenOf(response.json()) : undefined;
    check(response, { 'session refreshed': () => token !== undefined }, { name: 'refresh' });
    if (token !== undefined) this.tokens.set(index, token);
    return token;
  }

  /** GET `path` as the user; a TOKEN_EXPIRED answer refreshes the token and asks once more. */
  get(index: number, user: CampusEcardUser, path: string, name: string): http.RefinedResponse<'text'> | undefined {
    for (let attempt = 0; attempt < 2; attempt++) {
      const token = this.accessToken(index, user);
      if (token === undefined) return undefined;
      const response = http.get(`${GATEWAY}${path}`, { headers: bearer(token), tags: { name }, timeout: REQUEST_TIMEOUT });
      if (response.status !== 401 || refusalCodeOf(safeJson(response)) !== 'TOKEN_EXPIRED') return response;
      this.tokens.delete(index);
    }
    return undefined;
  }
}

export function safeJson(response: http.RefinedResponse<'text'>): unknown {
  try {
    return response.json();
  } catch {
    return undefined;
  }
}
