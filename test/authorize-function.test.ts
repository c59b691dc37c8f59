// authorize.lua runs as a Redis Function (ledger/scripts.ts): a library per set of settings, FUNCTION
// LOADed at start, called by FCALL. What a Redis keeps (AOF), forgets (FUNCTION FLUSH, a restart without
// persistence) or has deleted under a running switch (another switch's start prunes the libraries of
// other settings) must never cost a payment, nor pay one twice. Runs its own redis-server (it restarts it
// and flushes its functions).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Keys } from '../switch/ledger/keys.js';
import { campusDayKey, Ledger, type AuthorizeInput } from '../switch/ledger/ledger.js';
import { Scripts } from '../switch/ledger/scripts.js';
import { startLocalRedis, type LocalRedis } from '../switch/redis/local-redis.js';

let dataDir: string;
let server: LocalRedis;
let redis: Redis;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cardswitch-authorize-function-'));
  server = await startLocalRedis({ dataDir, port: 0, appendOnly: true, appendFsync: 'always', startTimeoutMs: 10_000 });
  redis = new Redis(server.url, { maxRetriesPerRequest: 0 });
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const limitsOf = (noPinPerPaymentFen: number) => {
  const holder = { noPinPerPaymentFen, noPinPerDayFen: 1_000_000_000, dailySpendLimitFen: 0 };
  return { student: holder, staff: holder };
};

/** The campus_authorize_* libraries this Redis holds. */
async function libraries(client: Redis = redis): Promise<string[]> {
  const listed = (await client.call('FUNCTION', 'LIST', 'LIBRARYNAME', 'campus_authorize_*')) as unknown[][];
  return listed.map((entry) => String(entry[entry.indexOf('library_name') + 1])).sort();
}

/** How many times a command ran since the last CONFIG RESETSTAT (INFO commandstats; `function|load` for a subcommand). */
async function calls(command: string, client: Redis = redis): Promise<number> {
  const stats = await client.info('commandstats');
  return Number(new RegExp(`cmdstat_${command.replace('|', '\\|')}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
}

async function ledgerWithCard(label: string, client: Redis = redis): Promise<{ ledger: Ledger; keys: Keys }> {
  const keys = new Keys(`af-${label}`, 16);
  const ledger = new Ledger(keys, await Scripts.load(client), 3600);
  await ledger.openAccount({ cardNo: 'C1', openingFen: 100_000, fields: { ser: 'S1', ht: 'S' } });
  return { ledger, keys };
}

const payment = (sequence: number, limits: AuthorizeInput['limits']): AuthorizeInput => ({
  cardNo: 'C1',
  presentedSerial: 'S1',
  amountFen: 300,
  credentialKind: 'card',
  terminalId: 'T1',
  sequence,
  merchantId: 'M1',
  pinVerified: false,
  limits,
});

describe('authorize.lua as a Redis Function', () => {
  it("a start loads its own library and deletes other settings' libraries; a ledger still paying under those loads its own again", async () => {
    const old = await ledgerWithCard('prune-old');
    const fresh = await ledgerWithCard('prune-new');
    const oldLimits = limitsOf(1_000);
    const newLimits = limitsOf(2_000);
    const oldScript = await old.ledger.prepareAuthorize(oldLimits, { prune: true });
    expect(oldScript.pruned).toEqual([]);
    expect(await libraries()).toEqual([oldScript.library]);
    expect((await old.ledger.authorize(payment(1, oldLimits))).code).toBe('approved');

    // Another switch starts with other limits: the old library goes.
    const newScript = await fresh.ledger.prepareAuthorize(newLimits, { prune: true });
    expect(newScript.pruned).toEqual([oldScript.library]);
    expect(await libraries()).toEqual([newScript.library]);

    // The old switch's next payment meets "Function not found", loads its library and is paid once.
    await redis.config('RESETSTAT');
    expect((await old.ledger.authorize(payment(2, oldLimits))).code).toBe('approved');
    expect(await calls('function|load')).toBe(1);
    expect(await calls('fcall')).toBe(2);
    expect(Number(await redis.hget(old.keys.account('C1'), 'bal'))).toBe(100_000 - 600);
    expect(await libraries()).toEqual([oldScript.library, newScript.library].sort());
    // A retry of it is answered from its record, not paid again.
    expect((await old.ledger.authorize(payment(2, oldLimits))).code).toBe('approved');
    expect(Number(await redis.hget(old.keys.account('C1'), 'bal'))).toBe(100_000 - 600);

    // Loading the same settings again is no change (a library is named by its text's hash).
    await fresh.ledger.prepareAuthorize(newLimits);
    expect(await libraries()).toEqual([oldScript.library, newScript.library].sort());
  });

  it('Redis keeps the library through a restart (AOF): the first payment after it needs no load', async () => {
    const { ledger, keys } = await ledgerWithCard('restart');
    const limits = limitsOf(3_000);
    await ledger.prepareAuthorize(limits);
    expect((await ledger.authorize(payment(1, limits))).code).toBe('approved');
    redis.disconnect();
    await server.stop();
    server = await startLocalRedis({
      dataDir,
      port: server.port,
      appendOnly: true,
      appendFsync: 'always',
      startTimeoutMs: 10_000,
    });
    redis = new Redis(server.url, { maxRetriesPerRequest: 0 });
    const after = new Ledger(keys, await Scripts.load(redis), 3600);
    expect(await calls('function|load')).toBe(0);
    expect((await after.authorize(payment(2, limits))).code).toBe('approved');
    expect(await calls('function|load')).toBe(0);
    expect(Number(await redis.hget(keys.account('C1'), 'bal'))).toBe(100_000 - 600);
  });

  it('300 copies of one payment at once on a Redis that lost its functions: one load, one approval, the same answer to each', async () => {
    const { ledger, keys } = await ledgerWithCard('flushed');
    const limits = limitsOf(4_000);
    await ledger.prepareAuthorize(limits);
    await redis.call('FUNCTION', 'FLUSH');
    await redis.config('RESETSTAT');
    const answers = await Promise.all(Array.from({ length: 300 }, () => ledger.authorize(payment(1, limits))));
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0]?.code).toBe('approved');
    expect(await calls('function|load')).toBe(1);
    expect(Number(await redis.hget(keys.account('C1'), 'bal'))).toBe(100_000 - 300);
    expect(await redis.xlen(keys.journalOfCard('C1'))).toBe(2); // the opening and the one payment
  });

  it('an amount sent with leading zeros (as redis-benchmark does) is written as its digits: journal, statement, record, balance', async () => {
    const { ledger, keys } = await ledgerWithCard('zeros');
    const limits = limitsOf(6_000);
    const script = await ledger.prepareAuthorize(limits);
    const { keys: scriptKeys, args } = ledger.authorizeArguments(payment(1, limits), Date.now());
    expect(args[2]).toBe(300);
    const reply = String(
      await redis.call('FCALL', script.functionName, scriptKeys.length, ...scriptKeys, ...args.map((a, i) => (i === 2 ? '000300' : a))),
    );
    expect(reply).toMatch(/^1\|99700\|/);
    expect(Number(await redis.hget(keys.account('C1'), 'bal'))).toBe(99_700);
    const [, last] = await redis.xrange(keys.journalOfCard('C1'), '-', '+');
    expect(last?.[1]).toEqual(['e', expect.stringMatching(/^pay\|C1\|300\|a:C1\|/)]);
    const [line] = await redis.zrange(keys.statement('C1'), -1, -1);
    expect(line).toMatch(/\|pay\|-300\|99700\|/);
    const record = await redis.get(keys.request('C1', 'T1', 1));
    expect(record?.split('\n').slice(1, 3)).toEqual(['A', '300']);
    // The day's totals: "<campus day>,<spent>,<spent without a password>", one field.
    expect(await redis.hget(keys.account('C1'), 'day')).toMatch(/^\d{8},300,300$/);
    expect((await ledger.authorize(payment(2, limits))).code).toBe('approved');
    expect(await redis.hmget(keys.account('C1'), 'bal', 'day')).toEqual(['99400', expect.stringMatching(/^\d{8},600,600$/)]);
  });

  it("the campus day's stamp and totals start again with the first payment of a new day", async () => {
    const keys = new Keys('af-day', 16);
    let nowMs = Date.UTC(2026, 11, 1, 4, 0); // noon in campus time
    const ledger = new Ledger(keys, await Scripts.load(redis), 3600, () => nowMs);
    await ledger.openAccount({ cardNo: 'C1', openingFen: 100_000, fields: { ser: 'S1', ht: 'S' } });
    const limits = limitsOf(7_000);
    expect((await ledger.authorize(payment(1, limits))).code).toBe('approved');
    expect((await ledger.authorize(payment(2, limits))).code).toBe('approved');
    const firstDay = await redis.hget(keys.account('C1'), 'day');
    expect(firstDay).toBe(`${campusDayKey(nowMs)},600,600`);
    nowMs += 24 * 3600 * 1000;
    expect((await ledger.authorize(payment(3, limits))).code).toBe('approved');
    expect(await redis.hget(keys.account('C1'), 'day')).toBe(`${campusDayKey(nowMs)},300,300`);
    // A payment with the password counts to the day's total, not to what was paid without one.
    expect((await ledger.authorize({ ...payment(4, limits), pinVerified: true })).code).toBe('approved');
    expect(await redis.hget(keys.account('C1'), 'day')).toBe(`${campusDayKey(nowMs)},600,300`);
  });
});

describe("the campus day's totals, one account field (`day`)", () => {
  const nowMs = Date.UTC(2026, 11, 1, 4, 0); // noon in campus time
  const today = campusDayKey(nowMs);
  const yesterday = campusDayKey(nowMs - 24 * 3600 * 1000);
  const strict = { noPinPerPaymentFen: 5_000, noPinPerDayFen: 1_000, dailySpendLimitFen: 2_000 };
  const strictLimits = { student: strict, staff: strict };

  async function ledgerAt(label: string): Promise<{ ledger: Ledger; keys: Keys }> {
    const keys = new Keys(`af-day-${label}`, 16);
    const ledger = new Ledger(keys, await Scripts.load(redis), 3600, () => nowMs);
    await ledger.openAccount({ cardNo: 'C1', openingFen: 100_000, fields: { ser: 'S1', ht: 'S' } });
    return { ledger, keys };
  }

  it("today's totals hold the limits: the daily cap, then the password-free total", async () => {
    const { ledger, keys } = await ledgerAt('limits');
    expect((await ledger.authorize({ ...payment(1, strictLimits), amountFen: 900 })).code).toBe('approved');
    // 900 + 300 without a password is over the password-free 1,000 of the day.
    expect((await ledger.authorize(payment(2, strictLimits))).code).toBe('pin_required');
    expect((await ledger.authorize({ ...payment(3, strictLimits), amountFen: 1_000, pinVerified: true })).code).toBe('approved');
    expect(await redis.hget(keys.account('C1'), 'day')).toBe(`${today},1900,900`);
    // 1,900 + 300 is over the daily cap of 2,000, with the password too.
    expect((await ledger.authorize({ ...payment(4, strictLimits), pinVerified: true })).code).toBe('daily_limit_exceeded');
    expect(await redis.hget(keys.account('C1'), 'day')).toBe(`${today},1900,900`);
  });

  it('an account opened before `day` pays under its three old fields, and its next approval folds them into `day`', async () => {
    const { ledger, keys } = await ledgerAt('legacy');
    const account = keys.account('C1');
    await redis.hdel(account, 'day');
    await redis.hset(account, 'dday', today, 'dspent', '1500', 'dnopin', '900');
    // 900 + 300 without a password is over the password-free 1,000; 1,500 + 600 over the cap of 2,000.
    expect((await ledger.authorize(payment(1, strictLimits))).code).toBe('pin_required');
    expect((await ledger.authorize({ ...payment(2, strictLimits), amountFen: 600, pinVerified: true })).code).toBe('daily_limit_exceeded');
    // Declines write nothing: the old fields stand.
    expect(await redis.hmget(account, 'day', 'dday', 'dspent', 'dnopin')).toEqual([null, today, '1500', '900']);
    expect((await ledger.authorize({ ...payment(3, strictLimits), amountFen: 500, pinVerified: true })).code).toBe('approved');
    expect(await redis.hmget(account, 'day', 'dday', 'dspent', 'dnopin')).toEqual([`${today},2000,900`, null, null, null]);
    expect((await ledger.authorize({ ...payment(4, strictLimits), amountFen: 1, pinVerified: true })).code).toBe('daily_limit_exceeded');

    // Another day's old totals are no totals.
    const other = await ledgerAt('legacy-yesterday');
    const otherAccount = other.keys.account('C1');
    await redis.hdel(otherAccount, 'day');
    await redis.hset(otherAccount, 'dday', yesterday, 'dspent', '1900', 'dnopin', '900');
    expect((await other.ledger.authorize({ ...payment(1, strictLimits), amountFen: 1_000 })).code).toBe('approved');
    expect(await redis.hmget(otherAccount, 'day', 'dday')).toEqual([`${today},1000,1000`, null]);
  });

  it("yesterday's totals are no totals today", async () => {
    const { ledger, keys } = await ledgerAt('yesterday');
    await redis.hset(keys.account('C1'), 'day', `${yesterday},2000,1000`);
    expect((await ledger.authorize({ ...payment(1, strictLimits), amountFen: 1_000 })).code).toBe('approved');
    expect(await redis.hget(keys.account('C1'), 'day')).toBe(`${today},1000,1000`);
  });

  it('a broken `day` is refused by the payment, which changes nothing', async () => {
    for (const broken of ['20261201,12', 'x,1,1', `${today},1,-5`, `${today},1.5,1`]) {
      const { ledger, keys } = await ledgerAt(`broken-${broken.replace(/[^0-9a-z]/g, '_')}`);
      await redis.hset(keys.account('C1'), 'day', broken);
      const state = async (): Promise<unknown> => ({
        account: await redis.hgetall(keys.account('C1')),
        journal: await redis.xlen(keys.journalOfCard('C1')),
        statement: await redis.zcard(keys.statement('C1')),
        record: await redis.exists(keys.request('C1', 'T1', 1)),
      });
      const before = await state();
      await expect(ledger.authorize(payment(1, strictLimits))).rejects.toThrow(
        /INVARIANT account .*:acct:C1 has day totals that are not a day and two numbers of fen/,
      );
      expect(await state()).toEqual(before);
    }
  });
});
