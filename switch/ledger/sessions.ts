// Cardholder sessions of the e-card page, in Redis (domain/sessions.ts signs the tokens).
//
//   Keys.session(sid)       hash {uid, createdMs, provider}, EXPIRE = session lifetime. A session is
//                           live while this hash exists; logout, unbinding and expiry remove it.
//   Keys.userSessions(uid)  sorted set of the user's session ids, scored by createdMs, EXPIRE = the
//                           lifetime of the newest session; at most MAX_SESSIONS_PER_USER (the oldest
//                           are ended beyond it), so a user who signs in all day long stays bounded.
//
// Every command touches ONE key (MULTI only on the same key), so this runs on Redis Cluster too; the
// order of the steps is what keeps the two keys honest:
//  - create writes the session hash first, then indexes it. An endAll running in between misses the
//    new session, but the index step then puts it into the (fresh) index, so the next endAll finds it:
//    no session is ever live without being in its user's index, except after a crash between the two
//    steps, whose tokens were never handed out.
//  - endAll takes the index and deletes it in one MULTI, then deletes each session hash.
import type { Keys } from './keys.js';
import type { RedisClient } from './scripts.js';

export interface SessionRecord {
  /** Namespaced user id (`wecom:...`, `wechat:...`). */
  readonly userId: string;
  readonly createdMs: number;
  readonly provider: string;
}

/** A user's sessions beyond this (each phone or webview that signed in is one) end the oldest. */
export const MAX_SESSIONS_PER_USER = 20;

const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;

export class SessionStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    /**
     * The switch's lean hot-path connection (redis/pipeline-client.ts), for the one read every call of
     * the phone's API makes; ioredis when absent. Writes always go through ioredis.
     */
    private readonly hotCommand?: (args: readonly (string | number)[]) => Promise<unknown>,
  ) {}

  /**
   * Stores a new session for `ttlSec` and indexes it under its user. Returns the ids of sessions it ended
   * (over the cap): the caller announces them ended (domain/sessions.ts), as a logout is.
   */
  async create(sessionId: string, record: SessionRecord, ttlSec: number): Promise<string[]> {
    assertSessionId(sessionId);
    if (!Number.isInteger(ttlSec) || ttlSec < 1) throw new Error(`session ttl must be a whole number of seconds >= 1, got ${ttlSec}`);
    if (!Number.isSafeInteger(record.createdMs) || record.createdMs < 0)
      throw new Error(`createdMs must be a timestamp, got ${record.createdMs}`);
    const sessionKey = this.keys.session(sessionId);
    const indexKey = this.keys.userSessions(record.userId);
    execResults(
      await this.redis
        .multi()
        .hset(sessionKey, 'uid', record.userId, 'createdMs', String(record.createdMs), 'provider', record.provider)
        .expire(sessionKey, ttlSec)
        .exec(),
    );
    const [, , evicted] = execResults(
      await this.redis
        .multi()
        .zadd(indexKey, record.createdMs, sessionId)
        .expire(indexKey, ttlSec)
        .zrange(indexKey, 0, -(MAX_SESSIONS_PER_USER + 1))
        .zremrangebyrank(indexKey, 0, -(MAX_SESSIONS_PER_USER + 1))
        .exec(),
    );
    const ended = stringList(evicted);
    await Promise.all(ended.map((sid) => this.redis.del(this.keys.session(sid))));
    return ended;
  }

  /** The live session, or null when it ended or never existed. One round trip. */
  async get(sessionId: string): Promise<SessionRecord | null> {
    assertSessionId(sessionId);
    const key = this.keys.session(sessionId);
    const reply =
      this.hotCommand === undefined
        ? await this.redis.hmget(key, 'uid', 'createdMs', 'provider')
        : await this.hotCommand(['HMGET', key, 'uid', 'createdMs', 'provider']);
    if (!Array.isArray(reply) || reply.length !== 3) throw new Error(`HMGET of session ${sessionId} answered ${JSON.stringify(reply)}`);
    const [uid, createdMs, provider] = reply as (string | null)[];
    if (uid === null || uid === undefined) return null;
    const created = Number(createdMs);
    if (!Number.isSafeInteger(created)) throw new Error(`session ${sessionId} has a broken createdMs`);
    return { userId: uid, createdMs: created, provider: provider ?? '' };
  }

  /** Ends one session; false when it had ended already. */
  async end(sessionId: string): Promise<boolean> {
    assertSessionId(sessionId);
    const sessionKey = this.keys.session(sessionId);
    const [uid, deleted] = execResults(await this.redis.multi().hget(sessionKey, 'uid').del(sessionKey).exec());
    if (typeof uid === 'string') await this.redis.zrem(this.keys.userSessions(uid), sessionId);
    return deleted === 1;
  }

  /** Ends every session of the user; returns how many were live. */
  async endAll(userId: string): Promise<number> {
    const indexKey = this.keys.userSessions(userId);
    const [sids] = execResults(await this.redis.multi().zrange(indexKey, 0, -1).del(indexKey).exec());
    const deleted = await Promise.all(stringList(sids).map((sid) => this.redis.del(this.keys.session(sid))));
    return deleted.reduce((sum, n) => sum + n, 0);
  }
}

function assertSessionId(sessionId: string): void {
  if (!SESSION_ID.test(sessionId)) throw new Error('a session id is 22 base64url characters (128 random bits)');
}

/** The replies of an EXEC, or the first error among them. */
function execResults(results: [Error | null, unknown][] | null): unknown[] {
  if (results === null) throw new Error('MULTI was aborted (no WATCH is used here, so this should not happen)');
  return results.map(([err, reply]) => {
    if (err !== null) throw err;
    return reply;
  });
}

function stringList(reply: unknown): string[] {
  if (Array.isArray(reply)) {
    const items: unknown[] = reply;
    if (items.every((item): item is string => typeof item === 'string')) return items;
  }
  throw new Error('expected a list of session ids from Redis');
}
