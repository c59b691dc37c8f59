// `npm run bench -- --export-campus F --ecard-users N`: binds N cards of npm start's demo campus to e-card
// users in npm start's own ledger and writes those users' sessions into the campus file, for the k6
// scripts that call the gateway as a cardholder (k6/campus-qr.ts, k6/gateway-summary.ts).
//
// A session token is signed with the switch's SESSION_SECRET and checked against a session record in its
// Redis, so this needs the running switch's ledger and secret. It finds them the way the CLI does
// (switch/dev-env.ts applyLocalDefaults): REDIS_URL and the secrets from the environment when REDIS_URL
// is set, otherwise the local Redis of `npm start` and var/dev-secrets.json of this checkout. It refuses a
// ledger without the demo campus (npm start's demoLoaded flag): it never binds cards of a real campus.
//
// Set-up, not the paths under test: a card is marked synced as its first tap would (npm start's demo
// cards have never been tapped), bound by ecard-binding.lua, given the user record the gateway reads,
// and a session is started by domain/sessions.ts. Binding is idempotent (the same user binds the same
// card again as a no-op), so the export can be run again for fresh tokens. A card bound to someone else
// (a person who bound it through the page) is left alone and skipped.
import { Redis } from 'ioredis';
import { loadConfig, withoutUrlCredentials } from '../../switch/config.js';
import { mapBounded } from '../../switch/data/import.js';
import { applyLocalDefaults } from '../../switch/dev-env.js';
import { Sessions } from '../../switch/domain/sessions.js';
import { announceSessionEnded } from '../../switch/ledger/events.js';
import { Keys } from '../../switch/ledger/keys.js';
import { Ledger } from '../../switch/ledger/ledger.js';
import { checkShardCount } from '../../switch/ledger/meta.js';
import { Scripts } from '../../switch/ledger/scripts.js';
import { SessionStore } from '../../switch/ledger/sessions.js';
import type { CampusEcardUser, CampusFile } from '../shared/campus-data.js';

/** switch/start.ts's mark of a ledger that npm start loaded the demo campus into. */
const DEMO_FLAG = 'demoLoaded';
const CONCURRENCY = 32;

/** The k6 user of a demo card (distinct from the bench's own `wecom:bench-<card>`). */
export function k6UserId(cardNo: string): string {
  return `wecom:k6-${cardNo}`;
}

async function connect(url: string): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000, enableOfflineQueue: false });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach the switch's Redis at ${withoutUrlCredentials(url)} (is npm start running?): ${(err as Error).message}`);
  }
  return redis;
}

/** Binds the last `count` cards of `campus` in the running switch's ledger and starts a session for each. */
export async function exportEcardUsers(campus: CampusFile, count: number): Promise<{ users: CampusEcardUser[]; skipped: string[] }> {
  const note = applyLocalDefaults(process.env);
  if (note !== undefined) process.stderr.write(`${note}\n`);
  const config = loadConfig(process.env);
  if (config.redisUrl === '')
    throw new Error('--ecard-users needs the running switch: start it with npm start (or set REDIS_URL and its secrets)');
  const redis = await connect(config.redisUrl);
  try {
    const keys = new Keys(config.keyPrefix, config.ledgerShards);
    await checkShardCount(redis, keys);
    if ((await redis.hget(keys.meta(), DEMO_FLAG)) === null) {
      throw new Error(
        `the ledger at ${withoutUrlCredentials(config.redisUrl)} (prefix "${config.keyPrefix}") has no demo campus loaded by npm start: --ecard-users binds demo cards only`,
      );
    }
    const ledger = new Ledger(keys, await Scripts.load(redis), config.requestTtlSec);
    const sessions = new Sessions({
      store: new SessionStore(redis, keys),
      config: config.sessions,
      now: Date.now,
      announceEnded: (sessionId) => announceSessionEnded(ledger, sessionId),
    });
    const cards = campus.cards.slice(Math.max(0, campus.cards.length - count));
    const skipped: string[] = [];
    const users = await mapBounded(cards, CONCURRENCY, async (card): Promise<CampusEcardUser | undefined> => {
      const userId = k6UserId(card.cardNo);
      const [status, boundUser] = await redis.hmget(keys.account(card.cardNo), 'st', 'eu');
      if (status === null)
        throw new Error(
          `card ${card.cardNo} is not in the running switch's ledger: export the campus npm start loaded (same DEMO_CARDHOLDERS, no --seed)`,
        );
      if (boundUser !== null && boundUser !== userId) {
        skipped.push(`${card.cardNo}: bound to another user`);
        return undefined;
      }
      await redis.hset(keys.account(card.cardNo), 'sync', '1');
      const bound = await ledger.ecardBinding('bind', card.cardNo, userId);
      if (bound.code !== 'done') {
        skipped.push(`${card.cardNo}: ${bound.code}`);
        return undefined;
      }
      await redis.hset(keys.ecardUser(userId), 'card', card.cardNo, 'boundMs', String(Date.now()));
      const tokens = await sessions.start({ provider: 'wecom', userId }, card.cardNo);
      return {
        userId,
        cardNo: card.cardNo,
        accessToken: tokens.accessToken,
        refreshToken: tokens.refreshToken,
        sessionExpiresAtMs: tokens.sessionExpiresAtMs,
      };
    });
    return { users: users.filter((u): u is CampusEcardUser => u !== undefined), skipped };
  } finally {
    redis.disconnect();
  }
}
