// The Lua scripts and their TypeScript side agree, checked against the real scripts on a real Redis:
// - the names the switch may call are exactly the scripts on disk (a misspelt name does not type-check);
// - each script's declared answer codes (its ANSWER_* / REFUSED_* locals) are exactly its TypeScript
//   table's, and a code the table does not know stops the wrapper loudly;
// - every script checks its own ARGV (count and format) before it touches a key, in the same words as
//   scripts.ts checks them before sending: a bad argument changes nothing on either side.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { AUTHORIZE_ANSWERS, decodeAnswer, LedgerInvariantError, SCRIPT_ANSWERS, type AnswerTable } from '../switch/ledger/answers.js';
import { Keys } from '../switch/ledger/keys.js';
import { Ledger } from '../switch/ledger/ledger.js';
import {
  ARGV_RULES,
  checkArgv,
  SCRIPT_NAMES,
  ScriptArgumentError,
  Scripts,
  settingsBlock,
  type ArgvRule,
  type ScriptName,
} from '../switch/ledger/scripts.js';
import { connect, freshPrefix, testRedisUrl } from './helpers/redis.js';

const LUA_DIR = fileURLToPath(new URL('../switch/ledger/lua/', import.meta.url));
const luaSource = (name: ScriptName): string => readFileSync(`${LUA_DIR}${name}.lua`, 'utf8');

describe('script names', () => {
  const redis = connect();
  afterAll(() => redis.quit());

  it('SCRIPT_NAMES is exactly the *.lua files of switch/ledger/lua, both ways', () => {
    const onDisk = readdirSync(LUA_DIR)
      .filter((f) => f.endsWith('.lua'))
      .map((f) => f.slice(0, -'.lua'.length))
      .sort();
    expect([...SCRIPT_NAMES].sort()).toEqual(onDisk);
  });

  it('a misspelt script name does not type-check, and would not run', async () => {
    const scripts = await Scripts.load(redis);
    // @ts-expect-error 'authorise' is not a ScriptName: if this line ever type-checks, tsc fails on the unused directive.
    await expect(scripts.run('authorise', [], [])).rejects.toThrow(/authorise\.lua was not loaded/);
    // @ts-expect-error the same for shaOf
    expect(() => scripts.shaOf('reverse.lua')).toThrow(/not loaded/);
    // authorize.lua carries its settings: it is made with them, never run bare.
    // @ts-expect-error 'authorize' is a settings script, not a PlainScriptName
    expect(() => scripts.shaOf('authorize')).toThrow(/authorize\.lua carries settings: make it with withSettings/);
    const authorize = scripts.withSettings('authorize', SETTINGS);
    expect(authorize.functionName).toMatch(/^authorize_[0-9a-f]{16}$/);
    expect(authorize.library).toBe(`campus_${authorize.functionName}`);
  });

  it('every script names itself (local SCRIPT), so its ARGV errors say which script refused', () => {
    for (const name of SCRIPT_NAMES) expect(luaSource(name), name).toContain(`\nlocal SCRIPT = '${name}'\n`);
  });
});

/** The codes a script declares: `local ANSWER_APPROVED = 1` gives APPROVED -> 1. */
function declaredCodes(source: string, kind: 'ANSWER' | 'REFUSED'): Record<string, number> {
  const codes: Record<string, number> = {};
  for (const m of source.matchAll(new RegExp(`^local ${kind}_([A-Z_]+) = (-?\\d+)$`, 'gm'))) codes[m[1] ?? ''] = Number(m[2]);
  return codes;
}

/** The same shape from the TypeScript tables: meaning 'insufficient_funds' with code 2 gives INSUFFICIENT_FUNDS -> 2. */
function tableCodes(tables: readonly AnswerTable[]): Record<string, number> {
  const codes: Record<string, number> = {};
  for (const table of tables) for (const [code, meaning] of Object.entries(table)) codes[meaning.toUpperCase()] = Number(code);
  return codes;
}

describe('answer codes', () => {
  it("each script's declared ANSWER_* and REFUSED_* codes equal its TypeScript tables, both ways", () => {
    for (const name of SCRIPT_NAMES) {
      const spec = SCRIPT_ANSWERS[name];
      const source = luaSource(name);
      const answers = declaredCodes(source, 'ANSWER');
      expect(Object.keys(answers).length, `${name}.lua declares no ANSWER_* code`).toBeGreaterThan(0);
      if ('replays' in spec) {
        // It answers a few codes itself and replays the recorded answers of `replays`: its own codes are
        // a part of that table, and the table is exactly what `replays` declares.
        expect(tableCodes(spec.answers), name).toMatchObject(answers);
        expect(tableCodes(spec.answers), name).toEqual(declaredCodes(luaSource(spec.replays), 'ANSWER'));
      } else {
        expect(answers, name).toEqual(tableCodes(spec.answers));
      }
      expect(declaredCodes(source, 'REFUSED'), name).toEqual(tableCodes([spec.refusals]));
    }
  });

  it('no script answers a bare number: every code it answers is one of its named locals', () => {
    const bare = /return -?\d|return \{ *-?\d|(decide|refuse|answer|joinAnswer)\(\{? *-?\d/;
    for (const name of SCRIPT_NAMES) {
      const offending = luaSource(name)
        .split('\n')
        .filter((line) => !line.startsWith('local ') && bare.test(line));
      expect(offending, name).toEqual([]);
    }
  });

  it('decodeAnswer maps known codes and stops loudly on any other', () => {
    expect(decodeAnswer('authorize', AUTHORIZE_ANSWERS, '1')).toBe('approved');
    expect(decodeAnswer('authorize', AUTHORIZE_ANSWERS, 13)).toBe('qr_used');
    for (const bad of ['14', '0', '-1', ' 1', '1.0', '', 'approved', null, undefined, 1.5]) {
      expect(() => decodeAnswer('authorize', AUTHORIZE_ANSWERS, bad), String(bad)).toThrow(LedgerInvariantError);
    }
    expect(() => decodeAnswer('authorize', AUTHORIZE_ANSWERS, 'toString')).toThrow(/authorize\.lua answered unknown code "toString"/);
  });

  it('a recorded answer with a code the table does not know stops the wrapper (LedgerInvariantError), never a guess', async () => {
    const redis = connect();
    try {
      const keys = new Keys(freshPrefix('answers'), 16);
      const ledger = new Ledger(keys, await Scripts.load(redis), 3600);
      await ledger.openAccount({ cardNo: 'C1', openingFen: 1000, fields: { ser: 'S1' } });
      const limits = { noPinPerPaymentFen: 10_000, noPinPerDayFen: 10_000, dailySpendLimitFen: 0 };
      const payment = {
        cardNo: 'C1',
        presentedSerial: 'S1',
        amountFen: 100,
        credentialKind: 'card',
        terminalId: 'T1',
        sequence: 1,
        merchantId: 'M1',
        pinVerified: false,
        limits: { student: limits, staff: limits },
      };
      expect((await ledger.authorize(payment)).code).toBe('approved');
      // A retry replays the recorded answer; with its code broken, the wrapper refuses to map it.
      const requestKey = keys.request('C1', 'T1', 1);
      // The payment's record is compact (request-records.ts): its answer is the last of its six lines.
      const recorded = (await redis.get(requestKey)) ?? '';
      expect(recorded).toMatch(/\n1\|[^\n]*$/);
      await redis.set(requestKey, recorded.replace(/\n1\|([^\n]*)$/, '\n99|$1'), 'KEEPTTL');
      await expect(ledger.authorize(payment)).rejects.toThrow(LedgerInvariantError);
      await expect(ledger.authorize(payment)).rejects.toThrow(/authorize\.lua answered unknown code "99"/);
    } finally {
      await redis.quit();
    }
  });
});

// ---- ARGV ------------------------------------------------------------------------------------------

const NOW = 1_764_480_000_000;
const DAY = '20251130';
/** authorize.lua's settings (SCRIPT_SETTINGS) for the ARGV tests. */
const SETTINGS = {
  requestTtlSec: 3600,
  studentNoPinPerPaymentFen: 100,
  studentNoPinPerDayFen: 100,
  studentDailySpendLimitFen: 0,
  staffNoPinPerPaymentFen: 100,
  staffNoPinPerDayFen: 100,
  staffDailySpendLimitFen: 0,
  eventsChannel: 'chan',
  eventTtlSec: 3600,
};

/** Arguments each script accepts (what its wrapper sends), with how many KEYS it takes. */
const VALID: Record<ScriptName, readonly { readonly keys: number; readonly args: readonly (string | number)[] }[]> = {
  adjust: [{ keys: 4, args: ['C1', -500, 'adj|C1|-500|r', 'ADJ-0001', 'op1', 'a reason', NOW, 3600] }],
  authorize: [
    { keys: 5, args: ['C1', 'S1', 100, 'pay|C1|100|card', 'T1', 1, 'm:M1', NOW, DAY, '0', 'card'] },
    { keys: 6, args: ['C1', '', 100, 'pay|C1|100|campus_qr', 'T1', 2, 'm:M1', NOW, DAY, '1', 'campus_qr', 3, '0', 180, 'QR1'] },
    // A campus QR payment past the fast test (a leading zero, a 16-digit mark lifetime): the long way accepts it too.
    {
      keys: 6,
      args: ['C1', '', 100, 'pay|C1|100|campus_qr', 'T1', 4, 'm:M1', NOW, DAY, '1', 'campus_qr', '03', '0', '1000000000000000', 'QR2'],
    },
    // Past authorize.lua's fast test (leading zeros, 16 digits): its argument-by-argument checks still accept them.
    { keys: 5, args: ['C1', 'S1', '0100', 'pay|C1|100|card', 'T1', 3, 'm:M1', '01764480000000000', DAY, '0', 'card'] },
  ],
  'channel-binding': [
    { keys: 1, args: ['claim', 'C1', ''] },
    { keys: 1, args: ['release', 'C1'] },
    { keys: 1, args: ['bind', 'cpwechat', 'o-payer-1', 'wechat:o-payer-1'] },
    { keys: 1, args: ['bind', 'cpalipay', '2088000000000001', ''] },
    { keys: 1, args: ['unbind', 'cpalipay', '2088000000000001'] },
  ],
  'channel-paid': [
    { keys: 5, args: ['pay', 'C1', 'wechat', 'CPabc-1', '4200000001', 100, 'm:M1', 'T1', 1, NOW, 3600, '', 'o-payer', 'chan', 3600] },
    { keys: 5, args: ['unpay', 'C1', 'alipay', 'CPabc-1', '2026113022001', 100, 'm:M1', 'T1', 1, NOW, 3600, '', '', 'chan', 3600] },
    { keys: 5, args: ['decline', 'C1', 'wechat', 'CPabc-2', 'CPabc-2', 100, 'm:M1', 'T1', 2, NOW, 3600, 'CARD_LOST', '', 'chan', 3600] },
  ],
  'channel-pay': [
    { keys: 2, args: ['begin', 'cp|wechat|abc|100', 'wechat', 'CPabc-1', 100, 'm:M1', NOW, NOW + 45_000, 3600] },
    { keys: 2, args: ['finish', 'S', NOW, '0', 'C1', '4200000001', 'o-payer', '', '1-0'] },
    { keys: 2, args: ['tombstone', 'CPabc-1', 100, NOW, 3600] },
    { keys: 2, args: ['undone'] },
    { keys: 2, args: ['card', 'C1'] },
  ],
  'channel-refund': [
    {
      keys: 6,
      args: ['begin', 'C1', 50, 'cref|C1|50|T1:1', 'T2', 7, 'm:M1', 'CPabc-1', 'RFabc-7', 'wechat', '', NOW, 3600, 'T1:1', 'chan', 3600],
    },
    {
      keys: 6,
      args: [
        'done',
        'C1',
        50,
        'cref|C1|50|T1:1',
        'T2',
        7,
        'm:M1',
        'CPabc-1',
        'RFabc-7',
        'wechat',
        '5000001',
        NOW,
        3600,
        'T1:1',
        'chan',
        3600,
      ],
    },
  ],
  'claim-id': [
    { keys: 1, args: ['claim', 'C1', 60] },
    { keys: 1, args: ['release', 'C1'] },
  ],
  'ecard-binding': [{ keys: 2, args: ['bind', 'wecom:u1', NOW, 'chan', 'C1'] }],
  'ecard-watch': [{ keys: 1, args: [NOW] }],
  'fold-limits': [{ keys: 1, args: [] }],
  'fee-complete': [{ keys: 4, args: ['fee|C1|100|network|{}', 'R-1', 'T1|1|C1', 'C1', 'chan', 3600] }],
  'fee-debit': [{ keys: 5, args: ['C1', 100, 'fee|C1|100|network|{}', 'T1', 5, 'u:network', '{"account":"a"}', NOW, 3600] }],
  'fee-giveback': [{ keys: 6, args: ['C1', 'fee|C1|100|network|{}', 'T1', 5, '', NOW, 'chan', 3600] }],
  'fee-requery': [{ keys: 2, args: ['fee|C1|100|network|{}', 'T1|5|C1', NOW, NOW + 60_000, 10] }],
  'follow-up-lease': [
    { keys: 1, args: ['take', 'switch-a', 5000] },
    { keys: 1, args: ['release', 'switch-a', 1] },
  ],
  inquire: [{ keys: 1, args: [''] }],
  'open-account': [{ keys: 3, args: ['C9', 0, NOW, 'ser', 'S9'] }],
  password: [
    { keys: 1, args: ['state', DAY, 5] },
    { keys: 1, args: ['take', DAY, 5, NOW] },
    { keys: 1, args: ['fail', DAY, 5, NOW] },
    { keys: 1, args: ['release', DAY, 5] },
    { keys: 1, args: ['ok', DAY, 5, 'hash', ''] },
    { keys: 1, args: ['set', DAY, 5, 'hash', 'hash2', '1'] },
  ],
  recharge: [
    { keys: 8, args: ['C1', 'WECHAT', 'ORD-0001', 100, 'rch|C1|100|WECHAT', 'kiosk-1', NOW, DAY, 0, 3600, '', '0', 'chan', 3600] },
    { keys: 8, args: ['C1', 'ALIPAY', 'ORD-0002', 100, 'rch|C1|100|ALIPAY', 'alipay', NOW, DAY, 300_000, 3600, '', '1', 'chan', 3600] },
  ],
  'recharge-order': [
    { keys: 5, args: ['create', 'C1', 'WECHAT', 'R00ab', 100, 'rco|C1|WECHAT|100', NOW, NOW + 60_000, DAY, 0, 3600, 5, 'holder'] },
    { keys: 4, args: ['finish', 'WECHAT', 'R00ab', 'X', NOW] },
    { keys: 4, args: ['requery', 'WECHAT', 'R00ab', NOW, NOW + 5000, 10] },
  ],
  refund: [{ keys: 6, args: ['C1', 100, 'ref|C1|100|T1:1', 'T1', 7, 'm:M1', NOW, 3600, 'T1:1', 'chan', 3600] }],
  'replace-card': [{ keys: 2, args: ['R1', 'S2'] }],
  'serial-claim': [
    { keys: 2, args: ['claim', 'C1', 'tok1', NOW, 600_000] },
    { keys: 2, args: ['settle', 'C1', 'tok1'] },
    { keys: 2, args: ['release', 'C1', 'tok1', '0'] },
    { keys: 2, args: ['takeover', 'C2', 'tok2', NOW, 600_000, 'C1'] },
  ],
  'serial-fence': [
    { keys: 2, args: ['fence', 'S2', 'tok1'] },
    { keys: 2, args: ['unfence', 'S2', 'tok1'] },
  ],
  reverse: [{ keys: 5, args: ['C1', 100, 'rev|C1|100', 'T1', 1, NOW, 3600, DAY, NOW - 3600_000, 'chan', 3600] }],
  'set-limits': [{ keys: 1, args: [100, -1, 0] }],
  'set-status': [{ keys: 2, args: ['L', 'AL', 'C1', NOW, 'chan', 3600] }],
  settle: [{ keys: 4, args: ['C1', 'S1', 'wset|C1|card', 'T1', 8, NOW, 3600, 1000] }],
  'terminal-create': [{ keys: 1, args: ['canteen', 'M1', '一食堂', 'ab'.repeat(32)] }],
  'terminal-password': [{ keys: 1, args: ['take', NOW, Math.floor(NOW / 3_600_000), 20, 7_200_000] }],
  'water-debit': [{ keys: 4, args: ['C1', 'S1', 100, 'wpay|C1|100|card', 'T1', 9, 'm:M1', NOW, 3600, 1000] }],
};

/** The rules that apply to one argument list (the op's own, or the campus-QR tail when it is there). */
function rulesOf(name: ScriptName, args: readonly (string | number)[]): readonly ArgvRule[] {
  const spec = ARGV_RULES[name];
  if ('byOp' in spec) return [...spec.common, ...((spec.byOp as Record<string, readonly ArgvRule[]>)[String(args[0])] ?? [])];
  const tail = 'tail' in spec && args.length > spec.args.length ? spec.tail : [];
  return [...spec.args, ...tail];
}

/** Wrong values for a rule: as text, and as the numbers a wrapper might pass (ioredis sends String(n)). */
function badValues(rule: ArgvRule): (string | number)[] {
  switch (rule.kind) {
    case 'text':
      return [];
    case 'id':
      return [''];
    case 'flag':
      return ['2', 'true'];
    case 'oneOf':
      return ['', 'nope'];
    case 'nonZeroInteger':
      return ['0', '1.5', ' 7', '9007199254740992', 0, 1.5, Number.MAX_SAFE_INTEGER + 1];
    case 'integer':
      return ['', 'x', '1.5', '1e3', '0x10', String(rule.min - 1), '9007199254740992', rule.min - 1, 0.5, Number.NaN, 2 ** 53];
  }
}

interface BadCase {
  readonly name: ScriptName;
  readonly what: string;
  readonly keys: number;
  readonly args: readonly (string | number)[];
}

function badCases(): BadCase[] {
  const cases: BadCase[] = [];
  for (const name of SCRIPT_NAMES) {
    // A script that takes no ARGV (fold-limits) is refused only the one more.
    const takesArguments = VALID[name].every((valid) => valid.args.length > 0);
    if (takesArguments) cases.push({ name, what: 'no arguments', keys: VALID[name][0]?.keys ?? 1, args: [] });
    for (const valid of VALID[name]) {
      const { keys, args } = valid;
      if (args.length > 0) cases.push({ name, what: `${args.length - 1} arguments`, keys, args: args.slice(0, -1) });
      cases.push({ name, what: `${args.length + 1} arguments`, keys, args: [...args, 'extra'] });
      rulesOf(name, args).forEach((rule, i) => {
        for (const bad of badValues(rule)) {
          cases.push({
            name,
            what: `ARGV[${i + 1}] ${rule.name} = ${JSON.stringify(bad)}`,
            keys,
            args: args.map((a, j) => (j === i ? bad : a)),
          });
        }
      });
    }
  }
  return cases;
}

describe('ARGV checked on both sides', () => {
  const redis = connect();
  let scripts: Scripts;
  /** Sends a script its KEYS and ARGV unchecked, as the switch would (authorize.lua by FCALL, the others by EVALSHA). */
  let send: (name: ScriptName, keyCount: number, ...keysThenArgs: (string | number)[]) => Promise<unknown>;
  beforeAll(async () => {
    scripts = await Scripts.load(redis);
    const authorize = scripts.withSettings('authorize', SETTINGS);
    await scripts.loadPrepared(authorize);
    // Test files share one Redis: a switch another file starts with other limits deletes this library
    // (pruneLibraries), so a "Function not found" loads it again and sends once more, as the switch does.
    const fcall = (keyCount: number, rest: (string | number)[]) => redis.call('FCALL', authorize.functionName, keyCount, ...rest);
    send = (name, keyCount, ...rest) =>
      name === 'authorize'
        ? fcall(keyCount, rest).catch(async (err: Error) => {
            if (!err.message.includes('Function not found')) throw err;
            await scripts.loadPrepared(authorize);
            return fcall(keyCount, rest);
          })
        : redis.evalsha(scripts.shaOf(name), keyCount, ...rest);
  });
  afterAll(() => redis.quit());

  /** Every key under the prefix with its serialized value: equal snapshots mean nothing changed. */
  async function snapshot(prefix: string): Promise<string[]> {
    const keys = (await redis.keys(`${prefix}:*`)).sort();
    return Promise.all(keys.map(async (key) => `${key}=${(await redis.dumpBuffer(key))?.toString('hex') ?? ''}`));
  }

  async function seed(prefix: string): Promise<string[]> {
    const keys = Array.from({ length: 8 }, (_, i) => `${prefix}:k${i + 1}`);
    // An account under KEYS[1] (a script past its checks would read and change it), a record under KEYS[2].
    await redis.hset(keys[0] ?? '', {
      bal: 1000,
      wal: 500,
      st: 'A',
      ser: 'S1',
      sync: '1',
      wopen: '1',
      pwd: 'hash',
      ver: 1,
      eq: 3,
      eu: 'wecom:u1',
    });
    await redis.hset(keys[1] ?? '', { pfp: 'pay|C1|100|card', pans: '1|900|1-0|1', pst: 'A', amt: 100, mp: 'm:M1', card: 'C1' });
    return keys;
  }

  it('the arguments each wrapper sends pass both checks (neither side is stricter than the other)', async () => {
    for (const name of SCRIPT_NAMES) {
      for (const { keys, args } of VALID[name]) {
        expect(() => checkArgv(name, args), `${name} ${JSON.stringify(args)}`).not.toThrow();
        const prefix = freshPrefix(`ok${name}`);
        const keyNames = (await seed(prefix)).slice(0, keys);
        const reply = await send(name, keys, ...keyNames, ...args).catch((err: Error) => err);
        expect(reply instanceof Error ? reply.message : 'answered', `${name} ${JSON.stringify(args)}`).not.toMatch(/^ERR /);
      }
    }
  });

  it('every script refuses a bad ARGV with the words scripts.ts uses, and changes nothing', async () => {
    const cases = badCases();
    expect(cases.length).toBeGreaterThan(300);
    const prefix = freshPrefix('argv');
    const keyNames = await seed(prefix);
    const before = await snapshot(prefix);
    for (const c of cases) {
      const label = `${c.name}: ${c.what}`;
      let tsMessage = '';
      try {
        checkArgv(c.name, c.args);
      } catch (err) {
        expect(err, label).toBeInstanceOf(ScriptArgumentError);
        tsMessage = (err as Error).message;
      }
      expect(tsMessage, `${label}: scripts.ts let it through`).toMatch(new RegExp(`^${c.name}: `));
      const luaError = await send(c.name, c.keys, ...keyNames.slice(0, c.keys), ...c.args).then(
        (reply) => new Error(`answered ${JSON.stringify(reply)}`),
        (err: Error) => err,
      );
      expect(luaError.message, label).toBe(`ERR ${tsMessage}`);
    }
    expect(await snapshot(prefix)).toEqual(before);
  });

  it('a campus QR payment without the key of its single-use mark is refused before any key is read', async () => {
    const prefix = freshPrefix('qrkeys');
    const keyNames = await seed(prefix);
    const before = await snapshot(prefix);
    const qrPayment = VALID.authorize[1]?.args ?? [];
    const refused = await send('authorize', 5, ...keyNames.slice(0, 5), ...qrPayment).catch((err: Error) => err);
    expect(refused instanceof Error ? refused.message : refused).toBe(
      'ERR authorize: a campus QR payment needs 6 KEYS (its used mark sixth; 7 with its sequence claim), got 5',
    );
    const cardPayment = VALID.authorize[0]?.args ?? [];
    const tooMany = await send('authorize', 7, ...keyNames.slice(0, 5), `${prefix}:x1`, `${prefix}:x2`, ...cardPayment).catch(
      (err: Error) => err,
    );
    expect(tooMany instanceof Error ? tooMany.message : tooMany).toBe(
      'ERR authorize: a card payment needs 5 KEYS (6 with its sequence claim), got 7',
    );
    expect(await snapshot(prefix)).toEqual(before);
  });

  it('a recharge with the keys of before (no pending and attention indexes) is refused before any key is read', async () => {
    const prefix = freshPrefix('rchkeys');
    const keyNames = await seed(prefix);
    const before = await snapshot(prefix);
    // Six keys, the events stream sixth: the script would otherwise take that stream for the pending index.
    const refused = await send('recharge', 6, ...keyNames.slice(0, 6), ...(VALID.recharge[0]?.args ?? [])).catch((err: Error) => err);
    expect(refused instanceof Error ? refused.message : refused).toBe(
      'ERR recharge: needs 8 KEYS (the indexes sixth and seventh, the events stream last), got 6',
    );
    expect(await snapshot(prefix)).toEqual(before);
  });

  it('examples read as a person would want them', () => {
    const refusal = (name: ScriptName, args: (string | number)[]): string => {
      try {
        checkArgv(name, args);
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    const payment = VALID.authorize[0]?.args ?? [];
    expect(
      refusal(
        'authorize',
        payment.map((a, i) => (i === 2 ? -5 : a)),
      ),
    ).toBe('authorize: ARGV[3] amountFen must be a positive integer, got "-5"');
    expect(refusal('authorize', [...payment, 'QR'])).toBe('authorize: ARGV has 12 arguments, expected 11 or 15');
    expect(refusal('claim-id', ['claim', 'C1'])).toBe('claim-id: ARGV has 2 arguments, expected 3 for claim');
    expect(refusal('set-status', ['X', '', 'C1', NOW, 'chan', 3600])).toBe('set-status: ARGV[1] status must be one of A, L, F, C, got "X"');
  });

  it('scripts.ts refuses before sending: a bad ARGV never reaches Redis', async () => {
    const own = new Redis(testRedisUrl(), { maxRetriesPerRequest: 0, lazyConnect: true });
    await own.connect();
    const loaded = await Scripts.load(own);
    await own.quit();
    // The connection is closed: anything sent fails with a connection error; the ARGV check answers first.
    await expect(loaded.run('reverse', ['k'], ['C1', 0, 'fp', 'T1', 1, NOW, 3600, 'chan', 3600])).rejects.toThrow(ScriptArgumentError);
    await expect(loaded.run('reverse', ['k'], ['C1', 100, 'fp', 'T1', 1, NOW, 3600, DAY, NOW, 'chan', 3600])).rejects.toThrow(
      /closed|writable/i,
    );
  });
});

// ---- settings written into a script's text -----------------------------------------------------------

describe("authorize.lua's settings (SCRIPT_SETTINGS)", () => {
  const redis = connect();
  /** The libraries of this name the Redis holds (none, or the one). */
  const libraries = async (name: string): Promise<unknown[]> => (await redis.call('FUNCTION', 'LIST', 'LIBRARYNAME', name)) as unknown[];
  afterAll(() => redis.quit());

  it('a missing, unknown or bad setting is refused by name before any script is made', () => {
    const refusal = (settings: Record<string, string | number>): string => {
      try {
        settingsBlock('authorize', settings);
      } catch (err) {
        expect(err).toBeInstanceOf(ScriptArgumentError);
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(refusal(SETTINGS)).toBe('accepted');
    const { eventTtlSec: _dropped, ...missing } = SETTINGS;
    expect(refusal(missing)).toBe('authorize: setting eventTtlSec is missing');
    expect(refusal({ ...SETTINGS, requestTtl: 5 })).toBe('authorize: there is no setting requestTtl');
    expect(refusal({ ...SETTINGS, studentNoPinPerDayFen: -1 })).toBe(
      'authorize: setting studentNoPinPerDayFen must be an integer >= 0, got "-1"',
    );
    expect(refusal({ ...SETTINGS, requestTtlSec: 0 })).toBe('authorize: setting requestTtlSec must be a positive integer, got "0"');
    expect(refusal({ ...SETTINGS, staffDailySpendLimitFen: 1.5 })).toBe(
      'authorize: setting staffDailySpendLimitFen must be an integer >= 0, got "1.5"',
    );
    expect(refusal({ ...SETTINGS, eventsChannel: '' })).toBe('authorize: setting eventsChannel must not be empty, got ""');
  });

  it('each setting reaches Redis as written, whatever characters a text holds', async () => {
    const channel = "it's a \\ channel\n]]'--通道";
    const block = settingsBlock('authorize', {
      ...SETTINGS,
      eventsChannel: channel,
      requestTtlSec: '0086400',
      staffNoPinPerDayFen: 2 ** 53 - 1,
    });
    const reply = (await redis.eval(
      `${block}\nreturn { requestTtlSec, requestTtlSecText, staffNoPinPerDayFenText, studentDailySpendLimitFen, eventsChannel, type(requestTtlSec) }`,
      0,
    )) as unknown[];
    expect(reply).toEqual([86400, '86400', '9007199254740991', 0, channel, 'number']);
  });

  it('the same settings give the same script; other limits give another, and a ledger pays under each', async () => {
    const scripts = await Scripts.load(redis);
    expect(scripts.withSettings('authorize', { ...SETTINGS })).toBe(scripts.withSettings('authorize', { ...SETTINGS }));
    const keys = new Keys(freshPrefix('settings'), 16);
    const ledger = new Ledger(keys, scripts, 3600);
    await ledger.openAccount({ cardNo: 'C1', openingFen: 10_000, fields: { ser: 'S1', ht: 'S' } });
    const strict = { noPinPerPaymentFen: 50, noPinPerDayFen: 1000, dailySpendLimitFen: 0 };
    const lax = { noPinPerPaymentFen: 500, noPinPerDayFen: 1000, dailySpendLimitFen: 0 };
    const pay = (sequence: number, student: typeof strict) =>
      ledger.authorize({
        cardNo: 'C1',
        presentedSerial: 'S1',
        amountFen: 100,
        credentialKind: 'card',
        terminalId: 'T1',
        sequence,
        merchantId: 'M1',
        pinVerified: false,
        limits: { student, staff: strict },
      });
    const strictLimits = { student: strict, staff: strict };
    const laxLimits = { student: lax, staff: strict };
    expect(ledger.authorizeScript(strictLimits)).toBe(ledger.authorizeScript(strictLimits));
    expect(ledger.authorizeScript(laxLimits).functionName).not.toBe(ledger.authorizeScript(strictLimits).functionName);
    // Not loaded beforehand: the first FCALL of each meets "Function not found" and the fallback loads it.
    expect((await pay(1, strict)).code).toBe('pin_required');
    expect((await pay(2, lax)).code).toBe('approved');
    expect((await pay(3, strict)).code).toBe('pin_required');
    expect(Number(await redis.hget(keys.account('C1'), 'bal'))).toBe(9_900);
  });

  it('300 copies of one payment at once, under limits Redis has no script for yet: every copy gets the one approval', async () => {
    const scripts = await Scripts.load(redis);
    const keys = new Keys(freshPrefix('settings300'), 16);
    const ledger = new Ledger(keys, scripts, 3600);
    await ledger.openAccount({ cardNo: 'C1', openingFen: 10_000, fields: { ser: 'S1', ht: 'S' } });
    // Limits no other run used: the library for them is new to this Redis, so each copy meets "Function not found" first.
    const unseen = { noPinPerPaymentFen: 5_000 + Math.floor(Math.random() * 1e9), noPinPerDayFen: 1e12, dailySpendLimitFen: 0 };
    const limits = { student: unseen, staff: unseen };
    expect(await libraries(ledger.authorizeScript(limits).library)).toEqual([]);
    const payment = {
      cardNo: 'C1',
      presentedSerial: 'S1',
      amountFen: 300,
      credentialKind: 'card',
      terminalId: 'T1',
      sequence: 1,
      merchantId: 'M1',
      pinVerified: false,
      limits,
    };
    const answers = await Promise.all(Array.from({ length: 300 }, () => ledger.authorize(payment)));
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0]?.code).toBe('approved');
    expect(Number(await redis.hget(keys.account('C1'), 'bal'))).toBe(9_700);
    expect(await redis.xlen(keys.journalOfCard('C1'))).toBe(2); // the opening and the one payment
  });
});
