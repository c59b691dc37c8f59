import { afterAll, describe, expect, it } from 'vitest';
import {
  FULL_SCRYPT_N,
  IMPORT_SCRYPT_N,
  MalformedPasswordHashError,
  hashPassword,
  initialPassword,
  initialPasswordMatches,
  needsRehash,
  parsePasswordHash,
  verifyPassword,
} from '../switch/domain/password.js';
import { PasswordPool, PasswordPoolBusyError } from '../switch/workers/password-pool.js';

const PEPPER = 'test-pepper-0123456789abcdef';

/** Largest gap between timer ticks on this thread while `work` runs. */
async function maxEventLoopGapMs(work: () => Promise<unknown>): Promise<{ maxGapMs: number; ticks: number }> {
  let running = true;
  let last = performance.now();
  let maxGapMs = 0;
  let ticks = 0;
  const tick = (): void => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    ticks++;
    if (running) setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  await work();
  running = false;
  // The gap still open when the work ends counts too (a blocked loop has had no tick to record it).
  return { maxGapMs: Math.max(maxGapMs, performance.now() - last), ticks };
}

describe('initial password', () => {
  it('takes the last six characters and replaces non-digits with 1', () => {
    expect(initialPassword('11010519900307123X')).toBe('071231');
    expect(initialPassword('110105199003071234')).toBe('071234');
    expect(initialPassword('E1234A678')).toBe('341678');
    expect(initialPassword('MA2669672')).toBe('669672');
    expect(initialPassword('AB12CD')).toBe('111211');
  });

  it('refuses a document number shorter than six characters', () => {
    expect(() => initialPassword('12345')).toThrow(RangeError);
  });

  it("matches a PIN against the document number's initial password, and nothing else", () => {
    expect(initialPasswordMatches('071231', '11010519900307123X')).toBe(true);
    expect(initialPasswordMatches('341678', 'E1234A678')).toBe(true);
    expect(initialPasswordMatches('071230', '11010519900307123X')).toBe(false);
    // The raw last six characters are not the password: the X is replaced by 1.
    expect(initialPasswordMatches('07123X', '11010519900307123X')).toBe(false);
    expect(initialPasswordMatches('71231', '11010519900307123X')).toBe(false);
    expect(initialPasswordMatches('0712310', '11010519900307123X')).toBe(false);
    expect(initialPasswordMatches('', '11010519900307123X')).toBe(false);
    // No document number, or one too short to have an initial password: nothing matches (no throw).
    expect(initialPasswordMatches('123456', '')).toBe(false);
    expect(initialPasswordMatches('112345', '12345')).toBe(false);
  });
});

describe('password hash', () => {
  it('round-trips and rejects a wrong password', () => {
    const encoded = hashPassword('071231', PEPPER, { N: IMPORT_SCRYPT_N });
    expect(encoded).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    expect(verifyPassword('071231', encoded, PEPPER)).toBe(true);
    expect(verifyPassword('071232', encoded, PEPPER)).toBe(false);
    expect(verifyPassword('07123', encoded, PEPPER)).toBe(false);
  });

  it('salts every hash and depends on the pepper', () => {
    const a = hashPassword('123456', PEPPER, { N: IMPORT_SCRYPT_N });
    const b = hashPassword('123456', PEPPER, { N: IMPORT_SCRYPT_N });
    expect(a).not.toBe(b);
    expect(verifyPassword('123456', a, 'another-pepper-0123456789')).toBe(false);
  });

  it('keeps the cost in the hash, so needsRehash can raise it later', () => {
    const imported = hashPassword('123456', PEPPER, { N: IMPORT_SCRYPT_N });
    expect(parsePasswordHash(imported).N).toBe(IMPORT_SCRYPT_N);
    expect(needsRehash(imported, FULL_SCRYPT_N)).toBe(true);
    expect(needsRehash(imported, IMPORT_SCRYPT_N)).toBe(false);
  });

  it('refuses bad input loudly', () => {
    expect(() => hashPassword('12345a', PEPPER, { N: IMPORT_SCRYPT_N })).toThrow(RangeError);
    expect(() => hashPassword('123456', PEPPER, { N: 1000 })).toThrow(RangeError);
    expect(() => hashPassword('123456', '', { N: IMPORT_SCRYPT_N })).toThrow(RangeError);
    expect(() => verifyPassword('123456', 'plain-text', PEPPER)).toThrow(MalformedPasswordHashError);
    expect(() => verifyPassword('123456', `scrypt$${2 ** 24}$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA`, PEPPER)).toThrow(
      MalformedPasswordHashError,
    );
  });
});

describe('password pool', () => {
  const pool = new PasswordPool({ pepper: PEPPER, minThreads: 1, maxThreads: 2, maxQueue: 100, idleTimeoutMs: 10_000 });
  afterAll(() => pool.close());

  it('hashes and verifies in worker threads', async () => {
    const encoded = await pool.hash('654321', FULL_SCRYPT_N);
    expect(parsePasswordHash(encoded).N).toBe(FULL_SCRYPT_N);
    expect(await pool.verify('654321', encoded)).toBe(true);
    expect(await pool.verify('654320', encoded)).toBe(false);
    // The worker uses the same pepper as the pure functions.
    expect(verifyPassword('654321', encoded, PEPPER)).toBe(true);
  });

  it('hashMany keeps the order of the PINs', async () => {
    const pins = Array.from({ length: 70 }, (_, i) => String(100_000 + i * 7));
    const hashes = await pool.hashMany(pins, IMPORT_SCRYPT_N);
    expect(hashes).toHaveLength(pins.length);
    for (const [i, pin] of pins.entries()) expect(verifyPassword(pin, hashes[i] ?? '', PEPPER)).toBe(true);
  });

  it('keeps the event loop free while hashing at full cost', async () => {
    await pool.hash('000000', FULL_SCRYPT_N); // threads started and warm
    const pins = Array.from({ length: 24 }, (_, i) => String(200_000 + i));
    const { maxGapMs, ticks } = await maxEventLoopGapMs(() => pool.hashMany(pins, FULL_SCRYPT_N));
    expect(ticks).toBeGreaterThan(10);
    expect(maxGapMs).toBeLessThan(50);
  });

  it('the same work on the main thread would block it (so the check above can fail)', async () => {
    const { maxGapMs } = await maxEventLoopGapMs(async () => {
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (let i = 0; i < 4; i++) hashPassword('123456', PEPPER, { N: FULL_SCRYPT_N });
    });
    expect(maxGapMs).toBeGreaterThan(50);
  });

  it('answers PasswordPoolBusyError when the queue is full', async () => {
    const tiny = new PasswordPool({ pepper: PEPPER, minThreads: 1, maxThreads: 1, maxQueue: 2, idleTimeoutMs: 1000 });
    try {
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => tiny.hash('123456', FULL_SCRYPT_N)));
      const busy = results.filter((r) => r.status === 'rejected' && r.reason instanceof PasswordPoolBusyError);
      const done = results.filter((r) => r.status === 'fulfilled');
      expect(busy.length).toBeGreaterThan(0);
      expect(done.length).toBeGreaterThan(0);
      expect(busy.length + done.length).toBe(results.length);
    } finally {
      await tiny.close();
    }
  });
});
