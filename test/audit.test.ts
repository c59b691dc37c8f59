// The ledger audit: sound after real traffic (also while traffic runs), and failing loudly, with the
// card and the difference in fen, after a test corrupts a balance or deletes a journal entry.
import { credentials, Metadata } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AdminServiceClient, type AuditResponse } from '../proto/gen/cardswitch/v1/admin.js';
import type { PosServiceClient } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import { runAuditCommand } from '../switch/cli/audit.js';
import { auditLedger, type AuditReport } from '../switch/ledger/audit.js';
import { Keys } from '../switch/ledger/keys.js';
import { freePort } from '../switch/redis/local-redis.js';
import type { NewTerminal } from '../switch/domain/terminals.js';
import { connect, freshPrefix, testRedisUrl } from './helpers/redis.js';
import { call, openCard, posClient, readJournal, startTestSwitch, terminalMetadata } from './helpers/switch.js';

const T1: NewTerminal = {
  id: 'POS-AU1',
  kind: 'canteen',
  merchantId: 'CANTEEN1',
  location: '第一食堂',
  secret: 'pos-au1-secret-0123456789',
};
const T2: NewTerminal = { id: 'POS-AU2', kind: 'shop', merchantId: 'SHOP2', location: '超市', secret: 'pos-au2-secret-0123456789' };

let app: SwitchApp;
let pos: PosServiceClient;
let admin: AdminServiceClient;
const adminMeta = new Metadata();
adminMeta.set('operator-token', 'alice-token-0123456789');

/** [card number, serial, opening fen]; one card opens with 0 and so has no journal entry at all. */
const CARDS: [string, string, number][] = Array.from({ length: 8 }, (_, i) => [
  String(20231000 + i),
  `CC0000000${i}`,
  i === 7 ? 0 : 10_000 + i * 1000,
]);
let seq = 0;
let paidOutFen = 0;

async function pay(t: NewTerminal, serial: string, amountFen: number): Promise<number> {
  const sequence = ++seq;
  const res = await call<object, { outcome: number }>(
    pos,
    'authorize',
    { terminalId: t.id, sequenceNumber: sequence, amountFen, credential: { card: { cardSerial: serial } }, pin: '' },
    terminalMetadata(t),
  );
  expect(res.outcome).toBe(1);
  paidOutFen += amountFen;
  return sequence;
}

async function reverse(t: NewTerminal, serial: string, sequence: number, amountFen: number): Promise<void> {
  const res = await call<object, { result: number }>(
    pos,
    'reverse',
    { terminalId: t.id, originalSequenceNumber: sequence, amountFen, credential: { card: { cardSerial: serial } } },
    terminalMetadata(t),
  );
  expect(res.result).toBe(1);
  paidOutFen -= amountFen;
}

function auditRpc(): Promise<AuditResponse> {
  return call(admin, 'audit', {}, adminMeta);
}

/** Runs the CLI command with its output captured. */
async function cli(argv: string[], env: Record<string, string | undefined>): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await runAuditCommand(argv, env);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

const cliEnv = (): Record<string, string> => ({ REDIS_URL: testRedisUrl(), KEY_PREFIX: app.keys.prefix });
const openingFen = CARDS.reduce((s, [, , fen]) => s + fen, 0);

beforeAll(async () => {
  app = await startTestSwitch('audit', { OPERATOR_TOKENS: 'alice:alice-token-0123456789' });
  for (const t of [T1, T2]) await app.terminals.register(t);
  for (const [cardNo, serial, fen] of CARDS) await openCard(app, cardNo, serial, fen);
  pos = posClient(app);
  admin = new AdminServiceClient(`127.0.0.1:${app.grpcPort}`, credentials.createInsecure());
  for (const [i, [, serial, fen]] of CARDS.entries()) {
    if (fen === 0) continue;
    await pay(T1, serial, 100 + i);
    const s = await pay(T2, serial, 250);
    await pay(T1, serial, 75);
    if (i % 2 === 0) await reverse(T2, serial, s, 250);
  }
});

afterAll(async () => {
  pos?.close();
  admin?.close();
  await app?.stop();
});

describe('audit of a sound ledger', () => {
  it('finds every balance equal to its journal and money conserved', async () => {
    expect(new Set(CARDS.map(([c]) => app.keys.shardOf(c))).size).toBeGreaterThan(3);
    const report = await auditLedger(app.redis, app.keys);
    let entries = 0;
    for (let shard = 0; shard < app.keys.shardCount; shard++) entries += (await readJournal(app.redis, app.keys.journal(shard))).length;
    expect(report).toMatchObject({ ok: true, problems: [], problemCount: 0, accounts: CARDS.length, journalEntries: entries, shards: 16 });
    expect(report.heldFen).toBe(openingFen - paidOutFen);
    expect(report.netInflowFen).toBe(report.heldFen);
  });

  it('answers the Admin Audit RPC and the CLI with exit code 0', async () => {
    expect(await auditRpc()).toEqual({
      ok: true,
      accounts: CARDS.length,
      journalEntries: expect.any(Number) as unknown,
      heldFen: openingFen - paidOutFen,
      netInflowFen: openingFen - paidOutFen,
      problems: [],
    });
    const run = await cli([], cliEnv());
    expect(run.code).toBe(0);
    expect(run.out).toContain('SOUND');
    const json = await cli(['--json'], cliEnv());
    expect(json.code).toBe(0);
    expect((JSON.parse(json.out) as AuditReport).heldFen).toBe(openingFen - paidOutFen);
  });

  it('stays sound while payments run during the audit', async () => {
    const traffic = (async () => {
      for (let round = 0; round < 10; round++) {
        await Promise.all(CARDS.filter(([, , fen]) => fen > 0).map(([, serial]) => pay(round % 2 === 0 ? T1 : T2, serial, 11)));
      }
    })();
    const reports: AuditReport[] = [];
    for (let i = 0; i < 5; i++)
      reports.push(await auditLedger(app.redis, app.keys, { journalPageSize: 3, scanCount: 2, shardConcurrency: 2 }));
    await traffic;
    for (const r of reports) expect(r.problems).toEqual([]);
    const after = await auditLedger(app.redis, app.keys);
    expect(after.ok).toBe(true);
    expect(after.heldFen).toBe(openingFen - paidOutFen);
  });
});

describe('audit of a corrupted ledger', () => {
  const [victim] = CARDS[2] as [string, string, number];

  it('fails after a balance is changed behind the ledger, naming the card and the difference', async () => {
    // Test-only corruption: no script would ever do this.
    await app.redis.hincrby(app.keys.account(victim), 'bal', 123);
    try {
      const report = await auditLedger(app.redis, app.keys);
      expect(report.ok).toBe(false);
      expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'balance', cardNo: victim, differenceFen: 123 }));
      expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'conservation', differenceFen: 123 }));
      expect(report.heldFen - report.netInflowFen).toBe(123);
      const rpc = await auditRpc();
      expect(rpc.ok).toBe(false);
      expect(rpc.problems.some((p) => p.includes(victim) && p.includes('difference 123 fen'))).toBe(true);
      const run = await cli([], cliEnv());
      expect(run.code).toBe(1);
      expect(run.err).toContain(victim);
      expect(run.err).toContain('difference 123 fen');
      expect(run.err).toContain('NOT SOUND');
    } finally {
      await app.redis.hincrby(app.keys.account(victim), 'bal', -123);
    }
    expect((await auditLedger(app.redis, app.keys)).ok).toBe(true);
  });

  it('fails after a journal entry is deleted', async () => {
    const journalKey = app.keys.journalOfCard(victim);
    const own = (await readJournal(app.redis, journalKey)).filter((e) => e.fields['c'] === victim);
    // A payment in the middle of the card's history.
    const gone = own.find((e, i) => i > 0 && i < own.length - 1 && e.fields['k'] === 'pay');
    expect(gone).toBeDefined();
    await app.redis.xdel(journalKey, gone!.id);
    const amountFen = Number(gone!.fields['a']);
    const report = await auditLedger(app.redis, app.keys);
    expect(report.ok).toBe(false);
    // The account holds less than the remaining entries say: the payment is no longer recorded.
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'balance', cardNo: victim, differenceFen: -amountFen }));
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'version', cardNo: victim }));
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'running-balance', cardNo: victim }));
    expect(report.problems[0]).toMatchObject({ kind: 'conservation', differenceFen: -amountFen });
    expect((await cli([], cliEnv())).code).toBe(1);
  });
});

describe('audit CLI configuration', () => {
  it('refuses with exit code 2 and a clear message when REDIS_URL is empty or the ledger is missing', async () => {
    const noUrl = await cli([], { REDIS_URL: '' });
    expect(noUrl.code).toBe(2);
    expect(noUrl.err).toContain('REDIS_URL (or REDIS_CLUSTER_NODES / REDIS_SENTINELS) is not set');
    const noLedger = await cli([], { REDIS_URL: testRedisUrl(), KEY_PREFIX: freshPrefix('noledger') });
    expect(noLedger.code).toBe(2);
    expect(noLedger.err).toContain('no ledger');
    const wrongShards = await cli([], { ...cliEnv(), LEDGER_SHARDS: '8' });
    expect(wrongShards.code).toBe(2);
    expect(wrongShards.err).toContain('16 shards');
    // Sentinels none of which answers: one round of them, then the reason (it used to wait for ever).
    const closed = await freePort();
    const noSentinel = await cli([], { REDIS_URL: '', REDIS_SENTINELS: `127.0.0.1:${closed}` });
    expect(noSentinel.code).toBe(2);
    expect(noSentinel.err).toContain(`cannot reach Redis at Redis master "cardswitch" via Sentinels 127.0.0.1:${closed}`);
    expect(noSentinel.err).toContain('All sentinels are unreachable');
    expect((await cli(['--bogus'], cliEnv())).code).toBe(2);
    expect((await cli(['--max-problems', '0'], cliEnv())).code).toBe(2);
  });
});

describe('audit of hand-written ledgers (every kind and party of the README)', () => {
  const redis = connect();
  afterAll(() => redis.quit());

  /** Writes a ledger exactly as the scripts would (fields per ledger/README.md), one card in shard of its own. */
  async function writeLedger(
    keys: Keys,
    cardNo: string,
    account: Record<string, string | number>,
    entries: Record<string, string | number>[],
  ): Promise<void> {
    await redis.hset(keys.account(cardNo), account);
    let ts = 1_700_000_000_000;
    for (const e of entries) {
      ts += 1000;
      await redis.xadd(
        keys.journalOfCard(cardNo),
        '*',
        ...Object.entries({ c: cardNo, tm: 'T', sq: '1', ts, ...e })
          .flat()
          .map(String),
      );
    }
  }

  const WALLET_STORY: Record<string, string | number>[] = [
    { k: 'open', a: 1000, f: 'x:opening', t: 'a:C1', b: 1000, v: 1 },
    { k: 'rch', a: 500, f: 'x:ch:wechat', t: 'a:C1', b: 1500, v: 2 },
    { k: 'wopen', a: 1000, f: 'a:C1', t: 'w:C1', b: 500, wb: 1000, v: 3 },
    { k: 'wpay', a: 300, f: 'w:C1', t: 'm:BATH', b: 500, wb: 700, v: 4 },
    { k: 'wset', a: 300, f: 'a:C1', t: 'w:C1', b: 200, wb: 1000, v: 5 },
    { k: 'fee', a: 100, f: 'a:C1', t: 'u:electricity', b: 100, v: 6 },
    { k: 'feeback', a: 100, f: 'u:electricity', t: 'a:C1', b: 200, v: 7 },
    { k: 'adj', a: 50, f: 'a:C1', t: 'x:adj', b: 150, v: 8 },
    { k: 'ref', a: 20, f: 'm:BATH', t: 'a:C1', b: 170, v: 9 },
  ];

  it('proves wallets, recharges, fees, adjustments and refunds', async () => {
    const keys = new Keys(freshPrefix('handok'), 4);
    await writeLedger(keys, 'C1', { bal: 170, wal: 1000, ver: 9, st: 'A' }, WALLET_STORY);
    await redis.hset(keys.account('C2'), { bal: 0, wal: 0, ver: 1, st: 'A' });
    const report = await auditLedger(redis, keys);
    expect(report).toMatchObject({ ok: true, accounts: 2, journalEntries: WALLET_STORY.length, heldFen: 1170, netInflowFen: 1170 });
  });

  it('reports a wallet off by some fen, a balance with no entries, a negative balance and an orphan entry', async () => {
    const keys = new Keys(freshPrefix('handbad'), 4);
    await writeLedger(keys, 'C1', { bal: 170, wal: 900, ver: 9, st: 'A' }, WALLET_STORY);
    await redis.hset(keys.account('C2'), { bal: 5, wal: 0, ver: 1, st: 'A' });
    await redis.hset(keys.account('C3'), { bal: -40, wal: 0, ver: 1, st: 'A' });
    await redis.xadd(
      keys.journalOfCard('C4'),
      '*',
      'k',
      'rch',
      'c',
      'C4',
      'a',
      '70',
      'f',
      'x:ch:alipay',
      't',
      'a:C4',
      'b',
      '70',
      'v',
      '2',
      'tm',
      'alipay',
      'sq',
      'o1',
      'ts',
      '1',
    );
    const report = await auditLedger(redis, keys);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'wallet', cardNo: 'C1', differenceFen: -100 }),
        expect.objectContaining({ kind: 'balance', cardNo: 'C2', differenceFen: 5 }),
        expect.objectContaining({ kind: 'negative', cardNo: 'C3' }),
        expect.objectContaining({ kind: 'orphan', cardNo: 'C4' }),
        expect.objectContaining({ kind: 'conservation' }),
      ]),
    );
    // -100 (wallet) + 5 + (-40) held that the journal does not explain, and 70 came in for no account.
    expect(report.heldFen - report.netInflowFen).toBe(-100 + 5 - 40 - 70);
  });

  it('checks each entry against the running balance and wallet', async () => {
    const keys = new Keys(freshPrefix('handchain'), 4);
    const story = WALLET_STORY.map((e) => (e.k === 'wpay' ? { ...e, wb: 650 } : e.k === 'fee' ? { ...e, b: 90 } : e));
    await writeLedger(keys, 'C1', { bal: 170, wal: 1000, ver: 9, st: 'A' }, story);
    const report = await auditLedger(redis, keys);
    // Each wrong b / wb is reported, and again at the next entry, which follows the true balance.
    expect(report.problems.map((p) => [p.kind, p.differenceFen])).toEqual([
      ['running-balance', -50],
      ['running-balance', 50],
      ['running-balance', -10],
      ['running-balance', 10],
    ]);
    expect(report.problems[0]?.message).toContain('small wallet after 650 fen');
  });

  it('reports an account key in a shard its card does not belong to', async () => {
    const keys = new Keys(freshPrefix('handplace'), 4);
    const wrongShard = (keys.shardOf('C1') + 1) % 4;
    const misplaced = `${keys.prefix}:{L:${wrongShard}}:acct:C1`;
    await redis.hset(misplaced, { bal: 0, wal: 0, ver: 1 });
    const report = await auditLedger(redis, keys);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([expect.objectContaining({ kind: 'misplaced', cardNo: 'C1' })]);
    expect(report.problems[0]?.message).toContain(misplaced);
  });

  it('keeps the first problems and counts them all', async () => {
    const keys = new Keys(freshPrefix('handmany'), 2);
    for (let i = 0; i < 30; i++) await redis.hset(keys.account(`C${i}`), { bal: 1, wal: 0, ver: 1 });
    const report = await auditLedger(redis, keys, { maxProblems: 10 });
    expect(report.problems).toHaveLength(10);
    expect(report.problemCount).toBe(31);
    expect(report.problems[0]).toMatchObject({ kind: 'conservation', differenceFen: 30 });
  });
});
