// Thousands of mixed operations from many concurrent clients (payments, retries, reversals before and
// after their payments, refunds, recharges with replays, water wallet, fees, adjustments), then the
// audit: money is conserved to the fen and no balance or wallet is ever out of range.
import { status as Status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Outcome, RechargeChannel, UtilityKind } from '../proto/gen/cardswitch/v1/common.js';
import type { SwitchApp } from '../switch/app.js';
import { auditLedger } from '../switch/ledger/audit.js';
import type { NewTerminal } from '../switch/domain/terminals.js';
import { expandJournalRow } from '../switch/ledger/journal.js';
import { adminClient, KIOSK_TERMINAL, kioskClient, operatorMetadata, OPERATOR_ENV, passwordHash } from './helpers/clients.js';
import { call, openCard, posClient, startTestSwitch, terminalMetadata } from './helpers/switch.js';
import { prng } from './helpers/prng.js';

const PIN = '246810';
const CARDS = 40;
const CLIENTS = 16;
/** test/cluster-flow.test.ts runs this file again on a Redis Cluster with fewer (RANDOM_OPERATIONS_PER_CLIENT). */
const OPERATIONS_PER_CLIENT = Number(process.env['RANDOM_OPERATIONS_PER_CLIENT'] ?? 160);
/** Errors that are the right answer to a request the random walk may legitimately send. */
const EXPECTED_REFUSALS = new Set([Status.FAILED_PRECONDITION, Status.NOT_FOUND, Status.ALREADY_EXISTS]);

const SEED = Number(process.env['RANDOM_SEED'] ?? Date.now() % 1_000_000);

function terminal(id: string, kind: NewTerminal['kind'], merchantId: string): NewTerminal {
  return { id, kind, merchantId, location: `${merchantId} ${id}`, secret: `${id}-secret-0123456789` };
}

const POS = [
  terminal('RC-POS-1', 'canteen', 'C1'),
  terminal('RC-POS-2', 'canteen', 'C1'),
  terminal('RC-POS-3', 'canteen', 'C2'),
  terminal('RC-SHOP-1', 'shop', 'S1'),
];
const WATER = terminal('RC-WATER-1', 'water', 'BATH');
const SETTLE = terminal('RC-SETTLE-1', 'settlement', 'BATH');

interface Payment {
  readonly terminal: NewTerminal;
  readonly sequence: number;
  readonly card: number;
  readonly amountFen: number;
  answer?: unknown;
}

let app: SwitchApp;
let clients: { pos: ReturnType<typeof posClient>; kiosk: ReturnType<typeof kioskClient>; admin: ReturnType<typeof adminClient> };
const sequences = new Map<string, number>();

function nextSequence(t: NewTerminal): number {
  const n = (sequences.get(t.id) ?? 0) + 1;
  sequences.set(t.id, n);
  return n;
}

const serial = (card: number): string => `CC${String(card).padStart(6, '0')}`;
const cardNo = (card: number): string => String(70_000_000 + card);

beforeAll(async () => {
  app = await startTestSwitch('random', { ...OPERATOR_ENV, DAILY_RECHARGE_LIMIT_FEN: '0' });
  for (const t of [...POS, WATER, SETTLE, KIOSK_TERMINAL]) await app.terminals.register(t);
  const pwd = await passwordHash(app, PIN);
  for (let c = 0; c < CARDS; c++) {
    await openCard(app, cardNo(c), serial(c), 20_000 + c * 500, { pwd, pwdinit: '0', sno: `R${c}` });
  }
  clients = { pos: posClient(app), kiosk: kioskClient(app), admin: adminClient(app) };
});

afterAll(async () => {
  clients.pos.close();
  clients.kiosk.close();
  clients.admin.close();
  await app.stop();
});

async function tolerate<T>(promise: Promise<T>): Promise<T | undefined> {
  try {
    return await promise;
  } catch (err) {
    const code = (err as ServiceError).code;
    if (!EXPECTED_REFUSALS.has(code)) throw err;
    return undefined;
  }
}

function checkBalances(answer: unknown): void {
  const a = answer as Record<string, unknown> | undefined;
  for (const field of ['balanceAfterFen', 'smallWalletAfterFen', 'balanceFen']) {
    const v = a?.[field];
    if (typeof v === 'number') expect(v, `${field} of ${JSON.stringify(a)}`).toBeGreaterThanOrEqual(0);
  }
  if (typeof a?.['smallWalletAfterFen'] === 'number') expect(a['smallWalletAfterFen']).toBeLessThanOrEqual(1000);
}

async function runClient(clientIndex: number, payments: Payment[]): Promise<void> {
  const random = prng(SEED * 31 + clientIndex);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const card = (): number => Math.floor(random() * CARDS);
  for (let i = 0; i < OPERATIONS_PER_CLIENT; i++) {
    const roll = random();
    let answer: unknown;
    if (roll < 0.34) {
      const t = pick(POS);
      const p: Payment = { terminal: t, sequence: nextSequence(t), card: card(), amountFen: 1 + Math.floor(random() * 3000) };
      answer = p.answer = await pay(p);
      payments.push(p);
    } else if (roll < 0.44 && payments.length > 0) {
      const p = pick(payments);
      answer = await pay(p);
      // A retry returns the first answer, whatever happened in between.
      expect(answer).toEqual(p.answer);
    } else if (roll < 0.5 && payments.length > 0) {
      const p = pick(payments);
      answer = await tolerate(reverse(p));
    } else if (roll < 0.53) {
      // A reversal before its payment: the late payment must then be declined.
      const t = pick(POS);
      const p: Payment = { terminal: t, sequence: nextSequence(t), card: card(), amountFen: 500 };
      await reverse(p);
      const late = await pay(p);
      expect(late.outcome).toBe(Outcome.OUTCOME_DECLINED);
      answer = late;
    } else if (roll < 0.6 && payments.length > 0) {
      const p = pick(payments);
      const refunder = POS.find((t) => t.merchantId === p.terminal.merchantId) ?? p.terminal;
      answer = await tolerate(
        call(
          clients.pos,
          'refund',
          {
            terminalId: refunder.id,
            sequenceNumber: nextSequence(refunder),
            cardNumber: cardNo(p.card),
            originalTerminalId: p.terminal.id,
            originalSequenceNumber: p.sequence,
            amountFen: 1 + Math.floor(random() * p.amountFen),
          },
          terminalMetadata(refunder),
        ),
      );
    } else if (roll < 0.7) {
      const order = `R${clientIndex}-${i}`;
      // A channel order's credit (recharge.lua); the kiosk's Recharge only makes orders paid by QR now.
      const request = {
        cardNumber: cardNo(card()),
        channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT,
        channelOrderId: order,
        amountFen: 100 + Math.floor(random() * 20_000),
        reason: '充值',
      };
      answer = await call(clients.admin, 'manualRecharge', request, operatorMetadata());
      if (random() < 0.3) expect(await call(clients.admin, 'manualRecharge', request, operatorMetadata())).toEqual(answer);
    } else if (roll < 0.8) {
      answer = await call(
        clients.pos,
        'waterDebit',
        {
          terminalId: WATER.id,
          sequenceNumber: nextSequence(WATER),
          amountFen: 1 + Math.floor(random() * 400),
          credential: { card: { cardSerial: serial(card()) } },
        },
        terminalMetadata(WATER),
      );
    } else if (roll < 0.86) {
      answer = await call(
        clients.pos,
        'settle',
        { terminalId: SETTLE.id, sequenceNumber: nextSequence(SETTLE), credential: { card: { cardSerial: serial(card()) } } },
        terminalMetadata(SETTLE),
      );
    } else if (roll < 0.91) {
      answer = await call(
        clients.kiosk,
        'payUtilityFee',
        {
          cardholder: { card: { cardSerial: serial(card()) } },
          password: PIN,
          sequenceNumber: nextSequence(KIOSK_TERMINAL),
          kind: UtilityKind.UTILITY_KIND_ELECTRICITY,
          networkAccount: '',
          building: '学4',
          room: '402',
          amountFen: 100 + Math.floor(random() * 3000),
        },
        terminalMetadata(KIOSK_TERMINAL),
      );
    } else if (roll < 0.94) {
      const amountFen = (random() < 0.5 ? -1 : 1) * (1 + Math.floor(random() * 2000));
      answer = await tolerate(
        call(
          clients.admin,
          'adjust',
          { cardNumber: cardNo(card()), adjustmentId: `A${clientIndex}-${i}`, amountFen, reason: '随机测试调账' },
          operatorMetadata(),
        ),
      );
    } else {
      const t = pick(POS);
      answer = await call(
        clients.pos,
        'inquire',
        { terminalId: t.id, credential: { card: { cardSerial: serial(card()) } } },
        terminalMetadata(t),
      );
    }
    checkBalances(answer);
  }
}

function pay(p: Payment): Promise<{ outcome: Outcome }> {
  return call(
    clients.pos,
    'authorize',
    {
      terminalId: p.terminal.id,
      sequenceNumber: p.sequence,
      amountFen: p.amountFen,
      credential: { card: { cardSerial: serial(p.card) } },
      pin: '',
    },
    terminalMetadata(p.terminal),
  );
}

function reverse(p: Payment): Promise<unknown> {
  return call(
    clients.pos,
    'reverse',
    {
      terminalId: p.terminal.id,
      originalSequenceNumber: p.sequence,
      amountFen: p.amountFen,
      credential: { card: { cardSerial: serial(p.card) } },
    },
    terminalMetadata(p.terminal),
  );
}

it(`conserves money to the fen through ${CLIENTS * OPERATIONS_PER_CLIENT} random operations from ${CLIENTS} clients (seed ${SEED})`, async () => {
  const payments: Payment[] = [];
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => runClient(i, payments)));
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.accounts).toBe(CARDS);
  expect(report.heldFen).toBe(report.netInflowFen);
  for (let c = 0; c < CARDS; c++) {
    const [bal, wal] = await app.redis.hmget(app.keys.account(cardNo(c)), 'bal', 'wal');
    expect(Number(bal)).toBeGreaterThanOrEqual(0);
    expect(Number(wal)).toBeGreaterThanOrEqual(0);
    expect(Number(wal)).toBeLessThanOrEqual(1000);
  }
  // Every kind of money change happened at least once, so the audit saw them all.
  const kinds = new Set<string>();
  for (let shard = 0; shard < app.keys.shardCount; shard++) {
    for (const [, fields] of (await app.redis.xrange(app.keys.journal(shard), '-', '+')).map(expandJournalRow)) kinds.add(fields[1] ?? '');
  }
  for (const kind of ['open', 'pay', 'rev', 'ref', 'rch', 'adj', 'wopen', 'wpay', 'fee'])
    expect(kinds, `journal kinds ${[...kinds].join(',')}`).toContain(kind);
}, 240_000);
