// Statements (kiosk and admin) and the settlement report, over gRPC against a real switch and Redis.
import { credentials, Metadata, status as Status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementKind, type StatementLine, type StatementQuery } from '../proto/gen/cardswitch/v1/common.js';
import { AdminServiceClient, type CardStatementResponse, type SettlementReportResponse } from '../proto/gen/cardswitch/v1/admin.js';
import { KioskServiceClient, type StatementResponse } from '../proto/gen/cardswitch/v1/kiosk.js';
import type { PosServiceClient } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import { campusDayKey } from '../switch/ledger/ledger.js';
import { Keys } from '../switch/ledger/keys.js';
import { MAX_STATEMENT_LINES_SCANNED, readStatementPage, type StatementCursor } from '../switch/ledger/statement.js';
import { hashPassword, IMPORT_SCRYPT_N } from '../switch/domain/password.js';
import type { NewTerminal } from '../switch/domain/terminals.js';
import { connect, freshPrefix } from './helpers/redis.js';
import { call, grpcError, openCard, posClient, readJournal, startTestSwitch, TEST_PEPPER, terminalMetadata } from './helpers/switch.js';

const OPERATOR = { OPERATOR_TOKENS: 'alice:alice-token-0123456789' };
const PIN = '246810';

const T1: NewTerminal = {
  id: 'POS-A1',
  kind: 'canteen',
  merchantId: 'CANTEEN1',
  location: '第一食堂 一层',
  secret: 'pos-a1-secret-0123456789',
};
const T2: NewTerminal = {
  id: 'POS-A2',
  kind: 'canteen',
  merchantId: 'CANTEEN1',
  location: '第一食堂 二层',
  secret: 'pos-a2-secret-0123456789',
};
const T3: NewTerminal = { id: 'POS-B1', kind: 'shop', merchantId: 'SHOP2', location: '学生超市', secret: 'pos-b1-secret-0123456789' };
const KIOSK: NewTerminal = {
  id: 'KIOSK-1',
  kind: 'kiosk',
  merchantId: 'CARDOFFICE',
  location: '学4 大厅',
  secret: 'kiosk-secret-0123456789',
};

let app: SwitchApp;
let pos: PosServiceClient;
let admin: AdminServiceClient;
let kiosk: KioskServiceClient;
const adminMeta = new Metadata();
adminMeta.set('operator-token', 'alice-token-0123456789');

/** Card numbers spread over distinct shards, so reports must read more than one journal. */
function cardsInDistinctShards(keys: Keys, count: number): string[] {
  const byShard = new Map<number, string>();
  for (let n = 20230001; byShard.size < count; n++) {
    const cardNo = String(n);
    if (!byShard.has(keys.shardOf(cardNo))) byShard.set(keys.shardOf(cardNo), cardNo);
  }
  return [...byShard.values()];
}

let seq = 0;
async function pay(t: NewTerminal, serial: string, amountFen: number): Promise<{ sequence: number; decidedAtMs: number }> {
  const sequence = ++seq;
  const res = await call<object, { outcome: number; decidedAtMs: number }>(
    pos,
    'authorize',
    { terminalId: t.id, sequenceNumber: sequence, amountFen, credential: { card: { cardSerial: serial } }, pin: '' },
    terminalMetadata(t),
  );
  expect(res.outcome).toBe(1);
  return { sequence, decidedAtMs: res.decidedAtMs };
}

async function reverse(t: NewTerminal, serial: string, sequence: number, amountFen: number): Promise<void> {
  const res = await call<object, { result: number }>(
    pos,
    'reverse',
    { terminalId: t.id, originalSequenceNumber: sequence, amountFen, credential: { card: { cardSerial: serial } } },
    terminalMetadata(t),
  );
  expect(res.result).toBe(1);
}

function cardStatement(cardNumber: string, query: Partial<StatementQuery>): Promise<CardStatementResponse> {
  return call(
    admin,
    'cardStatement',
    { cardNumber, query: { fromMs: 0, toMs: 0, kinds: [], pageSize: 0, pageToken: '', ...query } },
    adminMeta,
  );
}

/** Follows next_page_token to the end; bounded so a paging bug cannot loop forever. */
async function allPages(cardNumber: string, query: Partial<StatementQuery>): Promise<{ lines: StatementLine[]; pages: number }> {
  const lines: StatementLine[] = [];
  let pageToken = '';
  for (let pages = 1; pages <= 200; pages++) {
    const { page } = await cardStatement(cardNumber, { ...query, pageToken });
    lines.push(...(page?.lines ?? []));
    pageToken = page?.nextPageToken ?? '';
    if (pageToken === '') return { lines, pages };
  }
  throw new Error('paging did not end');
}

const CARD_A = '20239001';
const SERIAL_A = 'AA00000001';
const CARD_B = '20239002';
const SERIAL_B = 'AA00000002';
/** Payments of card A, oldest first (amount fen, terminal); the 4th and 9th are reversed. */
const A_PAYMENTS: [number, NewTerminal][] = Array.from({ length: 23 }, (_, i) => [100 + i, i % 3 === 0 ? T2 : T1]);
const A_REVERSED = [3, 8];

beforeAll(async () => {
  app = await startTestSwitch('statement', OPERATOR);
  for (const t of [T1, T2, T3, KIOSK]) await app.terminals.register(t);
  const pwd = hashPassword(PIN, TEST_PEPPER, { N: IMPORT_SCRYPT_N });
  await openCard(app, CARD_A, SERIAL_A, 100_000, { pwd });
  await openCard(app, CARD_B, SERIAL_B, 5_000, { pwd });
  pos = posClient(app);
  admin = new AdminServiceClient(`127.0.0.1:${app.grpcPort}`, credentials.createInsecure());
  kiosk = new KioskServiceClient(`127.0.0.1:${app.grpcPort}`, credentials.createInsecure());
  const sequences: number[] = [];
  for (const [amountFen, terminal] of A_PAYMENTS) sequences.push((await pay(terminal, SERIAL_A, amountFen)).sequence);
  for (const i of A_REVERSED) {
    const [amountFen, terminal] = A_PAYMENTS[i] as [number, NewTerminal];
    await reverse(terminal, SERIAL_A, sequences[i] as number, amountFen);
  }
  await pay(T3, SERIAL_B, 700);
});

afterAll(async () => {
  pos?.close();
  admin?.close();
  kiosk?.close();
  await app?.stop();
});

describe('card statement', () => {
  it('pages newest first with no line lost or repeated, each line resolved', async () => {
    const { lines, pages } = await allPages(CARD_A, { pageSize: 7 });
    const expectedCount = 1 + A_PAYMENTS.length + A_REVERSED.length;
    expect(lines).toHaveLength(expectedCount);
    expect(pages).toBe(Math.ceil(expectedCount / 7));
    // Exactly the card's journal entries, each once.
    const journal = (await readJournal(app.redis, app.keys.journalOfCard(CARD_A))).filter((e) => e.fields['c'] === CARD_A);
    expect(new Set(lines.map((l) => l.transactionId))).toEqual(new Set(journal.map((e) => e.id)));
    // Newest first: times never go up, and the journal (append order) read backwards is the same order.
    for (let i = 1; i < lines.length; i++) expect(lines[i]!.atMs).toBeLessThanOrEqual(lines[i - 1]!.atMs);
    expect(lines.map((l) => l.transactionId)).toEqual(journal.map((e) => e.id).reverse());
    // The oldest line is the opening balance.
    expect(lines.at(-1)).toMatchObject({
      kind: StatementKind.STATEMENT_KIND_ADJUSTMENT,
      amountFen: 100_000,
      balanceAfterFen: 100_000,
      description: '开户',
      merchant: '',
    });
    // Each line's balance is the one before it plus its amount.
    const oldestFirst = [...lines].reverse();
    for (let i = 1; i < oldestFirst.length; i++)
      expect(oldestFirst[i]!.balanceAfterFen).toBe(oldestFirst[i - 1]!.balanceAfterFen + oldestFirst[i]!.amountFen);
    const first = oldestFirst[1]!;
    expect(first).toMatchObject({
      kind: StatementKind.STATEMENT_KIND_PAYMENT,
      amountFen: -100,
      description: '消费',
      terminalId: T2.id,
      merchant: 'CANTEEN1',
      location: '第一食堂 二层',
    });
    const reversals = lines.filter((l) => l.kind === StatementKind.STATEMENT_KIND_REVERSAL);
    expect(reversals.map((l) => l.amountFen).sort()).toEqual([103, 108]);
    expect(reversals.every((l) => l.description === '冲正' && l.merchant === 'CANTEEN1')).toBe(true);
  });

  it('defaults to 20 lines and accepts 100', async () => {
    const page20 = await cardStatement(CARD_A, {});
    expect(page20.page?.lines).toHaveLength(20);
    expect(page20.page?.nextPageToken).not.toBe('');
    const page100 = await cardStatement(CARD_A, { pageSize: 100 });
    expect(page100.page?.lines).toHaveLength(26);
    expect(page100.page?.nextPageToken).toBe('');
  });

  it('filters by [from_ms, to_ms)', async () => {
    const { lines: all } = await allPages(CARD_A, { pageSize: 100 });
    // Distinct times, newest first (several lines may share a millisecond).
    const times = [...new Set(all.map((l) => l.atMs))];
    expect(times.length).toBeGreaterThanOrEqual(3);
    const fromMs = times[Math.floor((times.length * 2) / 3)]!;
    const toMs = times[Math.floor(times.length / 3)]!;
    expect(fromMs).toBeLessThan(toMs);
    const expected = all.filter((l) => l.atMs >= fromMs && l.atMs < toMs).map((l) => l.transactionId);
    const { lines } = await allPages(CARD_A, { fromMs, toMs, pageSize: 3 });
    expect(lines.map((l) => l.transactionId)).toEqual(expected);
    expect(lines.length).toBeGreaterThan(0);
    const onlyBefore = await allPages(CARD_A, { toMs: all.at(-1)!.atMs });
    expect(onlyBefore.lines).toEqual([]);
  });

  it('filters by kind', async () => {
    const reversals = await allPages(CARD_A, { kinds: [StatementKind.STATEMENT_KIND_REVERSAL], pageSize: 1 });
    expect(reversals.lines.map((l) => l.amountFen).sort()).toEqual([103, 108]);
    const payAndOpen = await allPages(CARD_A, {
      kinds: [StatementKind.STATEMENT_KIND_PAYMENT, StatementKind.STATEMENT_KIND_ADJUSTMENT],
      pageSize: 5,
    });
    expect(payAndOpen.lines).toHaveLength(1 + A_PAYMENTS.length);
    const water = await allPages(CARD_A, { kinds: [StatementKind.STATEMENT_KIND_WATER] });
    expect(water.lines).toEqual([]);
  });

  it('refuses a garbled, forged or foreign page token', async () => {
    const first = await cardStatement(CARD_A, { pageSize: 5 });
    const token = first.page!.nextPageToken;
    const [payload, mac] = token.split('.') as [string, string];
    const position = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { s: number; m: string; n: number };
    const forgedPayload = Buffer.from(JSON.stringify({ ...position, n: 1, s: position.s - 1 })).toString('base64url');
    for (const bad of ['garbage', `${token}x`, `${forgedPayload}.${mac}`, 'a'.repeat(2000), '..']) {
      const err = await grpcError(cardStatement(CARD_A, { pageSize: 5, pageToken: bad }));
      expect(err.code, bad.slice(0, 40)).toBe(Status.INVALID_ARGUMENT);
    }
    // A token belongs to its card and its filter.
    expect((await grpcError(cardStatement(CARD_B, { pageSize: 5, pageToken: token }))).code).toBe(Status.INVALID_ARGUMENT);
    expect(
      (await grpcError(cardStatement(CARD_A, { pageSize: 5, pageToken: token, kinds: [StatementKind.STATEMENT_KIND_PAYMENT] }))).code,
    ).toBe(Status.INVALID_ARGUMENT);
    // The genuine token still works, also with another page size.
    const second = await cardStatement(CARD_A, { pageSize: 6, pageToken: token });
    expect(second.page?.lines).toHaveLength(6);
  });

  it('refuses bad queries and unknown cards', async () => {
    for (const query of [
      { pageSize: 101 },
      { fromMs: 10, toMs: 10 },
      { fromMs: -1 },
      { kinds: [99 as StatementKind] },
      { kinds: [StatementKind.STATEMENT_KIND_UNSPECIFIED] },
    ]) {
      expect((await grpcError(cardStatement(CARD_A, query))).code, JSON.stringify(query)).toBe(Status.INVALID_ARGUMENT);
    }
    // The refusal names the kinds there are, up to the last one (STATEMENT_KIND_CHANNEL_PAYMENT = 8).
    expect((await grpcError(cardStatement(CARD_A, { kinds: [9 as StatementKind] }))).details).toBe(
      'query.kinds holds 9, which is not a statement kind (1..8)',
    );
    expect((await grpcError(cardStatement('12ab', {}))).code).toBe(Status.INVALID_ARGUMENT);
    expect((await grpcError(cardStatement('99999999', {}))).code).toBe(Status.NOT_FOUND);
  });

  it('shows a line of a kind this build does not know as an adjustment', async () => {
    const cardNo = '20239003';
    await openCard(app, cardNo, 'AA00000003', 0);
    await app.redis.zadd(app.keys.statement(cardNo), Date.now(), '1-1|zzz|-5|0|POS-A1|1');
    const { page } = await cardStatement(cardNo, {});
    expect(page?.lines).toEqual([
      expect.objectContaining({ kind: StatementKind.STATEMENT_KIND_ADJUSTMENT, amountFen: -5, description: '调账', merchant: 'CANTEEN1' }),
    ]);
  });
});

describe('kiosk statement', () => {
  const kioskMeta = (): Metadata => terminalMetadata(KIOSK);
  const statement = (password: string, query: Partial<StatementQuery> = {}): Promise<StatementResponse> =>
    call(
      kiosk,
      'statement',
      {
        cardholder: { card: { cardSerial: SERIAL_B } },
        password,
        query: { fromMs: 0, toMs: 0, kinds: [], pageSize: 0, pageToken: '', ...query },
      },
      kioskMeta(),
    );

  it('needs the card password and answers with the balance', async () => {
    expect((await grpcError(statement(''))).code).toBe(Status.INVALID_ARGUMENT);
    expect((await grpcError(statement('000000'))).code).toBe(Status.PERMISSION_DENIED);
    const res = await statement(PIN);
    expect(res.balanceFen).toBe(4_300);
    expect(res.page?.lines).toEqual([
      expect.objectContaining({
        kind: StatementKind.STATEMENT_KIND_PAYMENT,
        amountFen: -700,
        balanceAfterFen: 4_300,
        merchant: 'SHOP2',
        location: '学生超市',
        description: '消费',
      }),
      expect.objectContaining({ kind: StatementKind.STATEMENT_KIND_ADJUSTMENT, amountFen: 5_000, description: '开户' }),
    ]);
    expect(res.page?.nextPageToken).toBe('');
  });

  it('is refused to a POS terminal', async () => {
    const err = await grpcError(
      call(kiosk, 'statement', { cardholder: { card: { cardSerial: SERIAL_B } }, password: PIN }, terminalMetadata(T1)),
    );
    expect(err.code).toBe(Status.PERMISSION_DENIED);
  });
});

describe('statement paging within one millisecond', () => {
  const redis = connect();
  afterAll(() => redis.quit());

  async function readAll(keys: Keys, cardNo: string, pageSize: number, between?: (page: number) => Promise<void>): Promise<string[]> {
    const seen: string[] = [];
    let cursor: StatementCursor | undefined;
    for (let page = 0; page < 100; page++) {
      const result = await readStatementPage(redis, keys, cardNo, { fromMs: 0, toMs: 0, pageSize, cursor, acceptKind: () => true });
      seen.push(...result.lines.map((l) => l.member));
      if (result.next === undefined) return seen;
      cursor = result.next;
      await between?.(page);
    }
    throw new Error('paging did not end');
  }

  it('loses and repeats nothing when many lines share a score, even with lines added meanwhile', async () => {
    const keys = new Keys(freshPrefix('samems'), 4);
    const key = keys.statement('C1');
    const line = (i: number): string => `1700000000000-${500 + i}|pay|-1|0|T|${i}`;
    for (let i = 0; i < 30; i++) await redis.zadd(key, i < 20 ? 1000 : 2000, line(i));
    const plain = await readAll(keys, 'C1', 4);
    expect(plain).toHaveLength(30);
    expect(new Set(plain).size).toBe(30);
    // Lines added at the page boundary's own score, sorting before and after the cursor.
    const added: string[] = [];
    const withInserts = await readAll(keys, 'C1', 4, async (page) => {
      if (page !== 3) return;
      for (const i of [100, 900]) {
        const member = `1700000000000-${i}|pay|-1|0|T|${i}`;
        added.push(member);
        await redis.zadd(key, 1000, member);
      }
    });
    expect(new Set(withInserts).size).toBe(withInserts.length);
    for (const member of plain) expect(withInserts).toContain(member);
    // Page 4 starts inside score 1000: "-100" sorts after the cursor (still to come), "-900" before it.
    expect(withInserts).toContain(added[0]);
    expect(withInserts).not.toContain(added[1]);
    expect(withInserts).toHaveLength(31);
  });

  it('stops a filtered page after a bounded number of lines and continues from there', async () => {
    const keys = new Keys(freshPrefix('scanbound'), 4);
    const key = keys.statement('C2');
    const total = MAX_STATEMENT_LINES_SCANNED + 50;
    const args: (string | number)[] = [];
    for (let i = 0; i < total; i++) args.push(i + 1, `1-${i}|${i === 0 ? 'rev' : 'pay'}|-1|0|T|${i}`);
    await redis.zadd(key, ...args);
    const first = await readStatementPage(redis, keys, 'C2', {
      fromMs: 0,
      toMs: 0,
      pageSize: 10,
      cursor: undefined,
      acceptKind: (k) => k === 'rev',
    });
    expect(first.lines).toEqual([]);
    expect(first.next).toBeDefined();
    const second = await readStatementPage(redis, keys, 'C2', {
      fromMs: 0,
      toMs: 0,
      pageSize: 10,
      cursor: first.next,
      acceptKind: (k) => k === 'rev',
    });
    expect(second.lines.map((l) => l.member)).toEqual(['1-0|rev|-1|0|T|0']);
    expect(second.next).toBeUndefined();
  });
});

describe('settlement report', () => {
  let cards: string[];
  let day = '';
  const report = (merchantId: string, d: string): Promise<SettlementReportResponse> =>
    call(admin, 'settlementReport', { merchantId, day: d }, adminMeta);

  beforeAll(async () => {
    cards = cardsInDistinctShards(app.keys, 3);
    for (const [i, cardNo] of cards.entries()) await openCard(app, cardNo, `BB0000000${i}`, 10_000);
    const serials = cards.map((_, i) => `BB0000000${i}`);
    // Per card: T1 300, T2 200, T3 (other merchant) 999; card 0 also T1 150, reversed.
    let decidedAtMs = 0;
    for (const serial of serials) {
      decidedAtMs = (await pay(T1, serial, 300)).decidedAtMs;
      await pay(T2, serial, 200);
      await pay(T3, serial, 999);
    }
    const reversed = await pay(T1, serials[0] as string, 150);
    await reverse(T1, serials[0] as string, reversed.sequence, 150);
    const key = campusDayKey(decidedAtMs);
    day = `${key.slice(0, 4)}-${key.slice(4, 6)}-${key.slice(6, 8)}`;
  });

  it('uses cards in several shards', () => {
    expect(new Set(cards.map((c) => app.keys.shardOf(c))).size).toBe(3);
  });

  it('totals a merchant per terminal and in total, reversals given back', async () => {
    const res = await report('CANTEEN1', day);
    expect(res.merchantId).toBe('CANTEEN1');
    expect(res.day).toBe(day);
    // The statement tests' card A paid at T1/T2 today too: count them in.
    const aT1 = A_PAYMENTS.filter(([, t]) => t === T1);
    const aT2 = A_PAYMENTS.filter(([, t]) => t === T2);
    const sum = (xs: [number, NewTerminal][]): number => xs.reduce((s, [a]) => s + a, 0);
    const aReversedT1 = A_REVERSED.map((i) => A_PAYMENTS[i]!).filter(([, t]) => t === T1);
    const aReversedT2 = A_REVERSED.map((i) => A_PAYMENTS[i]!).filter(([, t]) => t === T2);
    const t1 = {
      terminalId: T1.id,
      payments: 3 + 1 + aT1.length,
      paidFen: 900 + 150 + sum(aT1),
      refunds: 1 + aReversedT1.length,
      refundedFen: 150 + sum(aReversedT1),
    };
    const t2 = {
      terminalId: T2.id,
      payments: 3 + aT2.length,
      paidFen: 600 + sum(aT2),
      refunds: aReversedT2.length,
      refundedFen: sum(aReversedT2),
    };
    expect(res.terminals).toEqual([
      { ...t1, netFen: t1.paidFen - t1.refundedFen },
      { ...t2, netFen: t2.paidFen - t2.refundedFen },
    ]);
    expect(res.total).toEqual({
      terminalId: '',
      payments: t1.payments + t2.payments,
      paidFen: t1.paidFen + t2.paidFen,
      refunds: t1.refunds + t2.refunds,
      refundedFen: t1.refundedFen + t2.refundedFen,
      netFen: t1.paidFen + t2.paidFen - t1.refundedFen - t2.refundedFen,
    });
    const shop = await report('SHOP2', day);
    expect(shop.terminals).toEqual([
      { terminalId: T3.id, payments: 4, paidFen: 3 * 999 + 700, refunds: 0, refundedFen: 0, netFen: 3 * 999 + 700 },
    ]);
  });

  it('answers an empty report for a merchant or a day without takings', async () => {
    const empty = { terminalId: '', payments: 0, paidFen: 0, refunds: 0, refundedFen: 0, netFen: 0 };
    expect(await report('NOBODY', day)).toEqual({ merchantId: 'NOBODY', day, terminals: [], total: empty, channels: [] });
    expect((await report('CANTEEN1', '2001-01-01')).total).toEqual(empty);
  });

  it('refuses a bad day or merchant', async () => {
    for (const [merchant, d] of [
      ['CANTEEN1', '2024-02-30'],
      ['CANTEEN1', 'today'],
      ['CANTEEN1', '2024-2-01'],
      ['', day],
      ['bad merchant!', day],
    ] as const) {
      expect((await grpcError(report(merchant, d))).code, `${merchant} ${d}`).toBe(Status.INVALID_ARGUMENT);
    }
  });
});
