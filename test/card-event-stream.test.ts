// A bound card's live-event stream through authorize.lua: every payment (approved or declined, tap or
// campus QR) appends its event, and the stream always expires. The expiry is extended only when the
// account's `evx` (when it last was) is an eighth of the events' lifetime old, so most payments save
// the EXPIRE; a binding starts a new stream whose first event gets its expiry again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { Keys } from '../switch/ledger/keys.js';
import { Ledger, type AuthorizeInput } from '../switch/ledger/ledger.js';
import { Scripts } from '../switch/ledger/scripts.js';
import { connect, freshPrefix } from './helpers/redis.js';

const TTL_SEC = 8 * 3600;
/** event.lua extends the stream's expiry once the last extension is this old. */
const EXTEND_EVERY_SEC = TTL_SEC / 8;
const START_MS = Date.UTC(2026, 10, 30, 4, 0, 0);
const LIMITS = { noPinPerPaymentFen: 100_000, noPinPerDayFen: 1_000_000, dailySpendLimitFen: 0 };

let redis: Redis;
let scripts: Scripts;
let nowMs = START_MS;
let sequence = 0;

beforeAll(async () => {
  redis = connect();
  scripts = await Scripts.load(redis);
});
afterAll(() => redis.quit());

async function boundCard(ledger: Ledger, cardNo: string): Promise<number> {
  await ledger.openAccount({ cardNo, openingFen: 10_000, fields: { ser: `S${cardNo}`, st: 'A', ht: 'S', sync: '1' } });
  return (await ledger.ecardBinding('bind', cardNo, `wecom:${cardNo}`)).epoch;
}

function payment(cardNo: string, amountFen: number, campusQr?: AuthorizeInput['campusQr']): AuthorizeInput {
  return {
    cardNo,
    presentedSerial: campusQr === undefined ? `S${cardNo}` : '',
    amountFen,
    credentialKind: campusQr === undefined ? 'card' : 'campus_qr',
    terminalId: 'T1',
    sequence: ++sequence,
    merchantId: 'M1',
    pinVerified: false,
    limits: { student: LIMITS, staff: LIMITS },
    campusQr,
  };
}

describe("a bound card's event stream", () => {
  it('gets every payment event and always an expiry, extended once per eighth of its lifetime, not per payment', async () => {
    const keys = new Keys(freshPrefix('evstream'), 16);
    const ledger = new Ledger(keys, scripts, TTL_SEC, () => nowMs);
    const events = keys.cardEvents('C1');
    const epoch = await boundCard(ledger, 'C1');

    nowMs = START_MS;
    expect((await ledger.authorize(payment('C1', 100))).code).toBe('approved');
    expect(await redis.xlen(events)).toBe(1);
    expect(await redis.ttl(events)).toBeGreaterThan(TTL_SEC - 60);
    expect(await redis.hget(keys.account('C1'), 'evx')).toBe(String(START_MS / 1000));

    // Within the eighth: the event is appended and the expiry left alone (shortened here to tell).
    await redis.expire(events, 1000);
    nowMs = START_MS + (EXTEND_EVERY_SEC - 1) * 1000;
    expect((await ledger.authorize(payment('C1', 100, { codeId: 'QR1', epoch, expired: false }))).code).toBe('approved');
    expect(await redis.xlen(events)).toBe(2);
    expect(await redis.ttl(events)).toBeLessThanOrEqual(1000);
    expect(await redis.ttl(events)).toBeGreaterThan(0);

    // An eighth later: extended to the whole lifetime again, by a decline too (it writes evx itself).
    nowMs = START_MS + EXTEND_EVERY_SEC * 1000;
    expect((await ledger.authorize(payment('C1', 1_000_000))).code).toBe('insufficient_funds');
    expect(await redis.xlen(events)).toBe(3);
    expect(await redis.ttl(events)).toBeGreaterThan(TTL_SEC - 60);
    expect(await redis.hget(keys.account('C1'), 'evx')).toBe(String(nowMs / 1000));

    // A stamp from a clock that was ahead counts as stale: the expiry is extended at once.
    await redis.expire(events, 1000);
    await redis.hset(keys.account('C1'), 'evx', String(nowMs / 1000 + 3600));
    expect((await ledger.authorize(payment('C1', 100))).code).toBe('approved');
    expect(await redis.ttl(events)).toBeGreaterThan(TTL_SEC - 60);
    expect(await redis.hget(keys.account('C1'), 'evx')).toBe(String(nowMs / 1000));
  });

  it('a new binding starts a new stream, which gets its expiry with its first event', async () => {
    const keys = new Keys(freshPrefix('evrebind'), 16);
    const ledger = new Ledger(keys, scripts, TTL_SEC, () => nowMs);
    const events = keys.cardEvents('C2');
    await boundCard(ledger, 'C2');
    nowMs = START_MS;
    expect((await ledger.authorize(payment('C2', 100))).code).toBe('approved');
    expect(await redis.hget(keys.account('C2'), 'evx')).not.toBeNull();

    expect((await ledger.ecardBinding('unbind', 'C2', 'wecom:C2')).code).toBe('done');
    expect(await redis.exists(events)).toBe(0);
    expect(await redis.hget(keys.account('C2'), 'evx')).toBeNull();
    // Unbound: no events at all.
    expect((await ledger.authorize(payment('C2', 100))).code).toBe('approved');
    expect(await redis.exists(events)).toBe(0);

    // Bound again within the same eighth: the first payment still gives the new stream its expiry.
    expect((await ledger.ecardBinding('bind', 'C2', 'wecom:C2b')).code).toBe('done');
    nowMs = START_MS + 1000;
    expect((await ledger.authorize(payment('C2', 100))).code).toBe('approved');
    expect(await redis.xlen(events)).toBe(1);
    expect(await redis.ttl(events)).toBeGreaterThan(TTL_SEC - 60);
  });
});
