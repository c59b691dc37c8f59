// E-card set-up for the bench's qr, tap-bound, gateway and websockets scenarios: cards bound to e-card
// users, sessions of those users, and campus QR codes minted ahead of a run. Set-up only, straight
// through the ledger and the switch's own modules (the paths under test are the POS's Authorize, the
// gateway's routes and its WebSocket, not binding or signing in): a card is marked synced as its first
// tap would mark it, bound by ecard-binding.lua (which moves its QR epoch on), and given the user record
// the gateway reads; sessions come from domain/sessions.ts with the switch's SESSION_SECRET; codes from
// qr/codec.ts with its CAMPUS_QR_SECRET.
import type { Redis } from 'ioredis';
import { mapBounded } from '../../switch/data/import.js';
import type { Sessions } from '../../switch/domain/sessions.js';
import type { Keys } from '../../switch/ledger/keys.js';
import type { Ledger } from '../../switch/ledger/ledger.js';
import type { CampusQrCodec } from '../../switch/qr/codec.js';
import { parseCampusQr } from '../../switch/qr/format.js';
import type { CampusCard, CampusFile } from '../shared/campus-data.js';
import { DEFAULT_HOT_SHARE, hotCardCount, loadCardIndex, Rng } from '../shared/traffic.js';

const SETUP_CONCURRENCY = 64;
/** domain/sessions.ts keeps at most 20 sessions per user (ledger/sessions.ts): stay well below. */
export const MAX_BENCH_SESSIONS_PER_USER = 16;

export interface BoundCard {
  readonly cardNo: string;
  readonly userId: string;
  /** The card's QR epoch after binding: codes must carry it. */
  readonly epoch: number;
}

/** The bench's e-card user of a bound card (a WeCom id, as domain/ecard.ts's USER_ID_PATTERN wants). */
export function benchUserId(cardNo: string): string {
  return `wecom:bench-${cardNo}`;
}

/**
 * The campus split in two: the last `boundCount` cards are bound to e-card users (their payments write a
 * live event each), the others are not. Water cards, PIN cards and hot cards of the unbound part are the
 * ones the full campus has (all of them sit in the first indices), so every unbound scenario sees the
 * campus it saw before this split.
 */
export function splitCampus(campus: CampusFile, boundCount: number): { unbound: CampusFile; bound: CampusFile } {
  const cut = campus.cards.length - boundCount;
  if (boundCount < 0 || cut < 1) throw new Error(`cannot bind ${boundCount} of ${campus.cards.length} cards`);
  return {
    unbound: { ...campus, cards: campus.cards.slice(0, cut) },
    bound: { ...campus, cards: campus.cards.slice(cut).map((c) => ({ ...c, pin: '' })) },
  };
}

export interface BindDeps {
  readonly redis: Redis;
  readonly keys: Keys;
  readonly ledger: Ledger;
  readonly now: () => number;
}

/** Binds each card to its bench user (see the file header); throws unless every binding is done. */
export async function bindCards(deps: BindDeps, cards: readonly CampusCard[]): Promise<BoundCard[]> {
  return mapBounded(cards, SETUP_CONCURRENCY, async (card) => {
    const userId = benchUserId(card.cardNo);
    // What the card's first tap on any terminal does (authorize.lua): the e-card works only after it.
    await deps.redis.hset(deps.keys.account(card.cardNo), 'sync', '1');
    const bound = await deps.ledger.ecardBinding('bind', card.cardNo, userId);
    if (bound.code !== 'done') throw new Error(`binding card ${card.cardNo} to ${userId} answered ${bound.code}`);
    await deps.redis.hset(deps.keys.ecardUser(userId), 'card', card.cardNo, 'boundMs', String(deps.now()));
    return { cardNo: card.cardNo, userId, epoch: bound.epoch };
  });
}

/**
 * `count` sessions, the i-th for the user of bound card i mod n, in that order; returns their access
 * tokens (valid SESSION_ACCESS_TTL_SEC, 15 minutes by default: mint them just before they are used).
 */
export async function mintSessions(sessions: Sessions, bound: readonly BoundCard[], count: number): Promise<string[]> {
  if (bound.length === 0) throw new Error('no bound cards to start sessions for');
  if (Math.ceil(count / bound.length) > MAX_BENCH_SESSIONS_PER_USER) {
    throw new Error(
      `${count} sessions over ${bound.length} users is more than ${MAX_BENCH_SESSIONS_PER_USER} per user (the switch ends the oldest beyond 20)`,
    );
  }
  const indices = Array.from({ length: count }, (_, i) => i);
  return mapBounded(indices, SETUP_CONCURRENCY, async (i) => {
    const card = bound[i % bound.length] as BoundCard;
    const tokens = await sessions.start({ provider: 'wecom', userId: card.userId }, card.cardNo);
    return tokens.accessToken;
  });
}

export interface MintedCodes {
  readonly payloads: string[];
  /** The single-use mark each code leaves when it pays (Keys.campusQrUsed), in the same order. */
  readonly markKeys: string[];
  readonly mintMs: number;
}

/**
 * `count` campus QR codes of the bound cards, issued now, each for a card drawn as a tap's card is drawn
 * (10 % of them on the 8 hot cards), so QR payments load the ledger as the taps they are compared with.
 * About 30 µs each here (AES-GCM and a random nonce): minted before the run, never on the generator.
 */
export function mintCampusQrCodes(codec: CampusQrCodec, keys: Keys, bound: readonly BoundCard[], count: number, seed: number): MintedCodes {
  const started = performance.now();
  const rng = new Rng(seed);
  const hot = hotCardCount(bound.length);
  const payloads: string[] = [];
  const markKeys: string[] = [];
  const nowMs = Date.now();
  for (let i = 0; i < count; i++) {
    const card = bound[loadCardIndex(rng, bound.length, hot, DEFAULT_HOT_SHARE)] as BoundCard;
    const payload = codec.issue(card.cardNo, card.epoch, nowMs);
    const parts = parseCampusQr(payload);
    if (parts === undefined) throw new Error('the codec issued a code its own format does not parse');
    payloads.push(payload);
    markKeys.push(keys.campusQrUsed(card.cardNo, Buffer.from(parts.nonce).toString('base64url')));
  }
  return { payloads, markKeys, mintMs: Math.round(performance.now() - started) };
}

/** How many of the codes have paid (their single-use mark exists); run within QR_USED_MARK_TTL_SEC (180 s). */
export async function countUsedMarks(redis: Redis, markKeys: readonly string[]): Promise<number> {
  let used = 0;
  const batch = 1000;
  for (let i = 0; i < markKeys.length; i += batch) {
    const pipeline = redis.pipeline();
    for (const key of markKeys.slice(i, i + batch)) pipeline.exists(key);
    for (const [err, n] of (await pipeline.exec()) ?? []) {
      if (err !== null) throw err;
      used += Number(n);
    }
  }
  return used;
}
