// Imported cards store no password hash: the initial password (the last six characters of the document
// number, kept in the same account) is compared in constant time, every attempt still taken, counted and
// released as for a hashed password, and the first correct entry stores a full-cost hash. Cards imported
// before that (an N=1024 hash) keep working. Against a real switch and Redis, imported over AdminService.
import { status as Status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import { generateDemoCampus } from '../switch/data/demo.js';
import { changeCardPassword, checkCardPassword } from '../switch/domain/card-password.js';
import { initialPassword, parsePasswordHash, verifyPassword } from '../switch/domain/password.js';
import { campusDayKey } from '../switch/ledger/ledger.js';
import {
  adminClient,
  KIOSK_TERMINAL,
  kioskClient,
  operatorMetadata,
  passwordHash,
  startClockedSwitch,
  TestClock,
} from './helpers/clients.js';
import { call, openCard, TEST_PEPPER, terminalMetadata } from './helpers/switch.js';

// 2026-11-26 10:05 in campus time (UTC+8).
const START_MS = Date.UTC(2026, 10, 26, 2, 5, 0);
const TERMINAL_LIMIT = 3;
const campus = generateDemoCampus({ cardholders: 40, seed: 'initial-password' });

let app: SwitchApp;
let clock: TestClock;
let kiosk: ReturnType<typeof kioskClient>;
let nextCard = 0;

beforeAll(async () => {
  clock = new TestClock(START_MS);
  app = await startClockedSwitch('initpwd', clock, { TERMINAL_PASSWORD_FAILURES_PER_HOUR: String(TERMINAL_LIMIT) });
  await app.terminals.register(KIOSK_TERMINAL);
  kiosk = kioskClient(app);
  const admin = adminClient(app);
  try {
    const answer = await call<object, { imported: number }>(admin, 'importCardholders', { csv: campus.cardholdersCsv }, operatorMetadata());
    expect(answer.imported).toBe(campus.cardholders.length);
  } finally {
    admin.close();
  }
});
afterAll(async () => {
  kiosk.close();
  await app.stop();
});

/** A card of the import no other test has used, with its initial password. */
function importedCard(): { cardNo: string; serial: string; initial: string } {
  const c = campus.cardholders[nextCard++];
  if (c === undefined) throw new Error('the test campus has too few cardholders');
  return { cardNo: c.cardNo, serial: c.cardSerial, initial: initialPassword(c.documentNumber) };
}

/** A six-digit PIN other than `pin`. */
function wrongPin(pin: string): string {
  return pin === '000000' ? '999999' : '000000';
}

async function account(cardNo: string): Promise<Record<string, string>> {
  return app.redis.hgetall(app.keys.account(cardNo));
}

const fullCost = (): number => app.context.config.passwordScryptN;
const scryptRuns = (): number => app.context.passwords.stats().completed;

describe('an imported card', () => {
  it('stores no hash; its initial password passes and the first correct entry stores a full-cost hash', async () => {
    const card = importedCard();
    expect(await account(card.cardNo)).toMatchObject({ pwd: '', pwdinit: '1' });
    expect(await checkCardPassword(app.context, card.cardNo, card.initial)).toEqual({ ok: true });
    const stored = (await account(card.cardNo))['pwd'] ?? '';
    expect(parsePasswordHash(stored).N).toBe(fullCost());
    expect(verifyPassword(card.initial, stored, TEST_PEPPER)).toBe(true);
    // Still the initial password (the e-card page keeps asking to change it); now checked through the hash.
    expect(await account(card.cardNo)).toMatchObject({ pwdinit: '1', pfail: '0', pinf: '0' });
    const runs = scryptRuns();
    expect(await checkCardPassword(app.context, card.cardNo, card.initial)).toEqual({ ok: true });
    expect(scryptRuns() - runs).toBe(1);
    expect((await account(card.cardNo))['pwd']).toBe(stored);
  });

  it('counts a wrong password without running scrypt, and stores nothing', async () => {
    const card = importedCard();
    const runs = scryptRuns();
    expect(await checkCardPassword(app.context, card.cardNo, wrongPin(card.initial))).toEqual({
      ok: false,
      reason: 'wrong',
      attemptsLeft: 4,
    });
    expect(await checkCardPassword(app.context, card.cardNo, 'abcdef')).toEqual({ ok: false, reason: 'wrong', attemptsLeft: 3 });
    expect(scryptRuns()).toBe(runs);
    expect(await account(card.cardNo)).toMatchObject({ pwd: '', pfail: '2', pinf: '0' });
    // A right entry afterwards passes and clears the day's count, as for a hashed password.
    expect(await checkCardPassword(app.context, card.cardNo, card.initial)).toEqual({ ok: true });
    expect(await account(card.cardNo)).toMatchObject({ pfail: '0' });
  });

  it('300 parallel wrong passwords get no more checks than the attempts left; then even the right one waits for the next day', async () => {
    const card = importedCard();
    const runs = scryptRuns();
    const guesses = Array.from({ length: 300 }, (_, i) => String(100000 + i))
      .filter((pin) => pin !== card.initial)
      .slice(0, 299);
    guesses.push(card.initial);
    const results = await Promise.all(guesses.map((pin) => checkCardPassword(app.context, card.cardNo, pin)));
    // Five checks were taken (as many as attempts left), all of them wrong guesses; the others found them in flight.
    expect(results.filter((r) => !r.ok && r.reason === 'wrong')).toHaveLength(4);
    expect(results.filter((r) => !r.ok && r.reason === 'locked')).toHaveLength(1);
    expect(results.filter((r) => !r.ok && r.reason === 'busy')).toHaveLength(295);
    expect(results.at(-1)).toEqual({ ok: false, reason: 'busy' });
    expect(await account(card.cardNo)).toMatchObject({ pwd: '', pfail: '5', pinf: '0' });
    expect(await checkCardPassword(app.context, card.cardNo, card.initial)).toEqual({ ok: false, reason: 'locked' });
    expect(scryptRuns()).toBe(runs);
    clock.advanceDays(1);
    expect(await checkCardPassword(app.context, card.cardNo, card.initial)).toEqual({ ok: true });
    expect(parsePasswordHash((await account(card.cardNo))['pwd'] ?? '').N).toBe(fullCost());
  });

  it('300 parallel right passwords: at most five are checked, one full-cost hash is stored, nothing locks', async () => {
    const card = importedCard();
    const results = await Promise.all(Array.from({ length: 300 }, () => checkCardPassword(app.context, card.cardNo, card.initial)));
    expect(results.filter((r) => r.ok).length).toBeGreaterThanOrEqual(1);
    expect(results.filter((r) => r.ok).length).toBeLessThanOrEqual(5);
    expect(results.every((r) => r.ok || r.reason === 'busy')).toBe(true);
    const after = await account(card.cardNo);
    expect(after).toMatchObject({ pinf: '0' });
    expect(after['pfail'] ?? '0').toBe('0');
    expect(verifyPassword(card.initial, after['pwd'] ?? '', TEST_PEPPER)).toBe(true);
    expect(parsePasswordHash(after['pwd'] ?? '').N).toBe(fullCost());
  });

  it("a check's 'ok' made against the empty hash does not overwrite a password changed meanwhile (stale)", async () => {
    const card = importedCard();
    const key = app.keys.account(card.cardNo);
    const day = campusDayKey(clock.now());
    const changed = await passwordHash(app, '482915', fullCost());
    const late = await passwordHash(app, card.initial, fullCost());
    const password = (...args: (string | number)[]): Promise<unknown> =>
      app.context.scripts.run('password', [key], [args[0] ?? '', day, 5, ...args.slice(1)]);
    // The order of a check that read the empty hash ('take'), then a change that stored a new hash, then the check's 'ok'.
    expect(await password('take', clock.now())).toEqual([1, 5, '', '1', expect.any(String)]);
    expect(await password('set', '', changed, '1')).toEqual([1, 5, '', '1', expect.any(String)]);
    // 3: stale, nothing stored (the answer shows the hash of that moment).
    expect(await password('ok', '', late)).toEqual([3, 5, changed, '0', expect.any(String)]);
    expect(await account(card.cardNo)).toMatchObject({ pwd: changed, pwdinit: '0', pinf: '0' });
  });

  it('changes from the initial password; the new one must still not be the initial one', async () => {
    const card = importedCard();
    const refusal = await changeCardPassword(app.context, card.cardNo, card.initial, card.initial).catch((e: unknown) => e as Error);
    expect(refusal).toMatchObject({ message: 'new_password must differ from the old password' });
    await changeCardPassword(app.context, card.cardNo, card.initial, '482915');
    const after = await account(card.cardNo);
    expect(after).toMatchObject({ pwdinit: '0', pfail: '0', pinf: '0' });
    expect(parsePasswordHash(after['pwd'] ?? '').N).toBe(fullCost());
    expect(verifyPassword('482915', after['pwd'] ?? '', TEST_PEPPER)).toBe(true);
    expect(await checkCardPassword(app.context, card.cardNo, card.initial)).toEqual({ ok: false, reason: 'wrong', attemptsLeft: 4 });
    const back = (await changeCardPassword(app.context, card.cardNo, '482915', card.initial).catch((e: unknown) => e)) as Error;
    expect(back.message).toContain('must not be the initial password');
    expect(verifyPassword('482915', (await account(card.cardNo))['pwd'] ?? '', TEST_PEPPER)).toBe(true);
  });

  it("wrong passwords on imported cards count against the terminal's hour too", async () => {
    const md = terminalMetadata(KIOSK_TERMINAL);
    const statement = (c: { serial: string }, password: string): Promise<unknown> =>
      call(kiosk, 'statement', { cardholder: { card: { cardSerial: c.serial } }, password }, md);
    const cards = Array.from({ length: TERMINAL_LIMIT + 1 }, () => importedCard());
    for (const c of cards.slice(0, TERMINAL_LIMIT)) {
      const err = (await statement(c, wrongPin(c.initial)).catch((e: unknown) => e)) as ServiceError;
      expect(err.code).toBe(Status.PERMISSION_DENIED);
    }
    const last = cards[TERMINAL_LIMIT] ?? cards[0];
    if (last === undefined) throw new Error('no card');
    // Over the terminal's limit: refused before the card is looked at, even with the right password.
    const refused = (await statement(last, last.initial).catch((e: unknown) => e)) as ServiceError;
    expect(refused.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(await account(last.cardNo)).toMatchObject({ pwd: '' });
    expect((await account(last.cardNo))['pfail']).toBeUndefined();
  });
});

describe('cards with other stored passwords', () => {
  it('an old-style imported hash (N=1024) still verifies and is rehashed at full cost', async () => {
    const pin = '135790';
    await openCard(app, '880001', 'BB880001', 0, { pwd: await passwordHash(app, pin, 1024), pwdinit: '1', docn: '110105199003071234' });
    expect(await checkCardPassword(app.context, '880001', pin)).toEqual({ ok: true });
    const stored = (await account('880001'))['pwd'] ?? '';
    expect(parsePasswordHash(stored).N).toBe(fullCost());
    expect(verifyPassword(pin, stored, TEST_PEPPER)).toBe(true);
    // With a hash stored, the document number's initial password is not accepted in its place.
    expect(await checkCardPassword(app.context, '880001', '071234')).toEqual({ ok: false, reason: 'wrong', attemptsLeft: 4 });
  });

  it('an empty hash matches nothing once the password is no longer initial, or without a document number (counted)', async () => {
    await openCard(app, '880002', 'BB880002', 0, { pwd: '', pwdinit: '0', docn: '110105199003071234' });
    expect(await checkCardPassword(app.context, '880002', '071234')).toEqual({ ok: false, reason: 'wrong', attemptsLeft: 4 });
    await openCard(app, '880003', 'BB880003', 0, { pwd: '', pwdinit: '1' });
    expect(await checkCardPassword(app.context, '880003', '000000')).toEqual({ ok: false, reason: 'wrong', attemptsLeft: 4 });
    await openCard(app, '880004', 'BB880004', 0, { pwd: '', pwdinit: '1', docn: '12345' });
    expect(await checkCardPassword(app.context, '880004', '112345')).toEqual({ ok: false, reason: 'wrong', attemptsLeft: 4 });
    for (const cardNo of ['880002', '880003', '880004']) expect(await account(cardNo)).toMatchObject({ pwd: '', pfail: '1', pinf: '0' });
  });
});
