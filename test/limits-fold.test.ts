// A card's own limits are one account field, `lim`, which authorize.lua reads (issue 15: a field the
// account lacks costs each payment a scan of it). Ledgers before kept them as lnp1/lnpd/ldl; the switch
// folds those into `lim` when it starts, once per ledger (ledger/limits-fold.ts). A card whose old
// limits were folded must pay under the same limits as before; a value that is not a number stops the
// start and changes nothing.
import { afterEach, describe, expect, it } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import type { AuthorizeInput } from '../switch/ledger/ledger.js';
import { LIMITS_FOLD_DONE, LIMITS_FOLD_FIELD } from '../switch/ledger/limits-fold.js';
import { freshPrefix } from './helpers/redis.js';
import { openCard, startTestSwitch, testConfig } from './helpers/switch.js';

const prefix = freshPrefix('limfold');
/** Students pay up to 10.00 yuan without a password, 1,000.00 a day, and have no daily cap. */
const SETTINGS = {
  KEY_PREFIX: prefix,
  STUDENT_NO_PIN_PER_PAYMENT_FEN: '1000',
  STUDENT_NO_PIN_PER_DAY_FEN: '100000',
  STUDENT_DAILY_SPEND_LIMIT_FEN: '0',
};
const LIMITS = testConfig('limfold', SETTINGS).limits;
const running: SwitchApp[] = [];
const start = async (): Promise<SwitchApp> => {
  const app = await startTestSwitch('limfold', SETTINGS);
  running.push(app);
  return app;
};
const stop = async (app: SwitchApp): Promise<void> => {
  running.splice(running.indexOf(app), 1);
  await app.stop();
};
afterEach(async () => {
  await Promise.all(running.splice(0).map((app) => app.stop()));
});

let sequence = 0;
const pay = async (app: SwitchApp, cardNo: string, amountFen: number, pinVerified = false): Promise<string> =>
  (
    await app.ledger.authorize({
      cardNo,
      presentedSerial: `S${cardNo}`,
      amountFen,
      credentialKind: 'card',
      terminalId: 'T1',
      sequence: ++sequence,
      merchantId: 'M1',
      pinVerified,
      limits: LIMITS,
    } satisfies AuthorizeInput)
  ).code;

describe("a card's own limits", () => {
  it('are folded from the three old fields into one when the switch starts, once per ledger, and pay as before', async () => {
    const first = await start();
    // A new ledger is folded at its first start (nothing to fold) and says so in its meta.
    expect(await first.redis.hget(first.keys.meta(), LIMITS_FOLD_FIELD)).toBe(LIMITS_FOLD_DONE);
    for (const card of ['L1', 'L2', 'L3', 'N1']) await openCard(first, card, `S${card}`, 100_000);
    const account = (card: string): string => first.keys.account(card);
    // As an older ledger's set-limits left them (its values were checked integers, leading zeros kept).
    await first.redis.hset(account('L1'), 'lnp1', '10000');
    await first.redis.hset(account('L2'), 'lnpd', '0100000', 'ldl', '5000');
    // `lim` written since (by set-limits.lua) stands over old fields left beside it.
    await first.redis.hset(account('L3'), 'lim', ',,500', 'lnp1', '1');
    // Before the fold, L1 pays under its holder type's limits: over 10.00 yuan needs the password.
    expect(await pay(first, 'L1', 7000)).toBe('pin_required');
    await first.redis.hdel(first.keys.meta(), LIMITS_FOLD_FIELD);
    await stop(first);

    const second = await start();
    const fields = async (card: string): Promise<(string | null)[]> =>
      second.redis.hmget(second.keys.account(card), 'lim', 'lnp1', 'lnpd', 'ldl');
    expect(await fields('L1')).toEqual(['10000,,', null, null, null]);
    expect(await fields('L2')).toEqual([',100000,5000', null, null, null]);
    expect(await fields('L3')).toEqual([',,500', null, null, null]);
    expect(await fields('N1')).toEqual([null, null, null, null]);
    expect(await second.redis.hget(second.keys.meta(), LIMITS_FOLD_FIELD)).toBe(LIMITS_FOLD_DONE);
    // L1's own 100.00 yuan without a password; L2's own daily cap of 50.00; L3's of 5.00; N1 the defaults.
    expect(await pay(second, 'L1', 7000)).toBe('approved');
    expect(await pay(second, 'L2', 6000, true)).toBe('daily_limit_exceeded');
    expect(await pay(second, 'L2', 5000, true)).toBe('approved');
    expect(await pay(second, 'L3', 600, true)).toBe('daily_limit_exceeded');
    expect(await pay(second, 'N1', 7000)).toBe('pin_required');

    // Once per ledger: a later start reads no account. Old fields written after the fold are not folded
    // (and not read: only an older switch could write them, and it must not run beside this one).
    await second.redis.hset(second.keys.account('N1'), 'lnp1', '10000');
    await stop(second);
    const third = await start();
    expect(await third.redis.hmget(third.keys.account('N1'), 'lim', 'lnp1')).toEqual([null, '10000']);
    expect(await pay(third, 'N1', 7000)).toBe('pin_required');
  });

  it('are folded once when two switches start together on the same ledger', async () => {
    const first = await start();
    await openCard(first, 'T1', 'ST1', 100_000);
    await first.redis.hset(first.keys.account('T1'), 'lnp1', '10000', 'ldl', '700');
    await first.redis.hdel(first.keys.meta(), LIMITS_FOLD_FIELD);
    await stop(first);
    const [a, b] = await Promise.all([start(), start()]);
    expect(await a.redis.hmget(a.keys.account('T1'), 'lim', 'lnp1', 'ldl')).toEqual(['10000,,700', null, null]);
    expect(await pay(b, 'T1', 700)).toBe('approved');
    expect(await pay(a, 'T1', 1)).toBe('daily_limit_exceeded');
  });

  it('stop the start, changing nothing, when an old field is not a number of fen', async () => {
    const first = await start();
    await openCard(first, 'B1', 'SB1', 100_000);
    await openCard(first, 'B2', 'SB2', 100_000);
    await first.redis.hset(first.keys.account('B1'), 'lnp1', 'abc');
    await first.redis.hset(first.keys.account('B2'), 'ldl', '700');
    await first.redis.hdel(first.keys.meta(), LIMITS_FOLD_FIELD);
    // Another switch starting on this ledger (the first one stays up to look with).
    await expect(start()).rejects.toThrow(/INVARIANT account .*:acct:B1 has a card limit that is not a number of fen: lnp1=abc/);
    expect(await first.redis.hmget(first.keys.account('B1'), 'lim', 'lnp1')).toEqual([null, 'abc']);
    expect(await first.redis.hget(first.keys.meta(), LIMITS_FOLD_FIELD)).toBeNull();
    // Mended by hand (an operator sets the card's limits again), the next start folds the rest.
    await first.redis.hdel(first.keys.account('B1'), 'lnp1');
    const mended = await start();
    expect(await mended.redis.hmget(mended.keys.account('B2'), 'lim', 'ldl')).toEqual([',,700', null]);
    expect(await mended.redis.hget(mended.keys.meta(), LIMITS_FOLD_FIELD)).toBe(LIMITS_FOLD_DONE);
  });
});

describe('set-limits', () => {
  it('writes the three limits as one field, drops the old ones, and no field when all three are cleared', async () => {
    const app = await start();
    await openCard(app, 'W1', 'SW1', 100_000);
    await app.redis.hset(app.keys.account('W1'), 'lnp1', '1', 'ldl', '2');
    await app.ledger.setCardLimits('W1', { noPinPerPaymentFen: 10_000, noPinPerDayFen: -1, dailySpendLimitFen: 0 });
    expect(await app.redis.hmget(app.keys.account('W1'), 'lim', 'lnp1', 'lnpd', 'ldl')).toEqual(['10000,,0', null, null, null]);
    expect(await pay(app, 'W1', 7000)).toBe('approved');
    await app.ledger.setCardLimits('W1', { noPinPerPaymentFen: -1, noPinPerDayFen: -1, dailySpendLimitFen: -1 });
    expect(await app.redis.hexists(app.keys.account('W1'), 'lim')).toBe(0);
    expect(await pay(app, 'W1', 7000)).toBe('pin_required');
  });

  it('a broken `lim` is refused by the payment, which changes nothing', async () => {
    const app = await start();
    await openCard(app, 'W2', 'SW2', 100_000);
    await app.redis.hset(app.keys.account('W2'), 'lim', '10000,0');
    const state = async (): Promise<unknown> => ({
      account: await app.redis.hgetall(app.keys.account('W2')),
      journal: await app.redis.xlen(app.keys.journalOfCard('W2')),
      statement: await app.redis.zcard(app.keys.statement('W2')),
    });
    const before = await state();
    await expect(pay(app, 'W2', 300)).rejects.toThrow(
      /INVARIANT account .*:acct:W2 has card limits that are not three numbers of fen: 10000,0/,
    );
    expect(await state()).toEqual(before);
  });
});
