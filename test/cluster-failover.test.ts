// A master of a 3-master, 3-replica Redis Cluster is killed with kill -9 while POS terminals pay, in the
// durable mode (LEDGER_DURABILITY=replica): its replica takes over, and every payment the switch approved
// is in the ledger afterwards exactly once. Each POS retries a payment answered UNAVAILABLE with the same
// sequence number until it gets an answer (what a real POS does). The killed node is started again and
// rejoins as the new master's replica: until then that master has no replica, and the durable mode
// answers its shards UNAVAILABLE instead of approving what a second failure would lose.
import { status as Status, type ServiceError } from '@grpc/grpc-js';
import calculateSlot from 'cluster-key-slot';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { SwitchApp } from '../switch/app.js';
import type { NewTerminal } from '../switch/domain/terminals.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { journalPages, parseJournalEntry } from '../switch/ledger/journal.js';
import { asRedis, startTestCluster, useClusterLedger, type TestCluster } from './helpers/redis-cluster.js';
import { call, openCard, posClient, startTestSwitch, terminalMetadata } from './helpers/switch.js';

const CARDS = 48;
const OPENING_FEN = 10_000_000;
const TERMINALS = 8;
/** Payments approved before the kill, and after the failover, before the load stops. */
const BEFORE_KILL = 150;
const AFTER_FAILOVER = 150;
/** A payment answered UNAVAILABLE is sent again after this pause, with the same sequence number. */
const RETRY_PAUSE_MS = 50;
/** Generous: a failover on a loaded 2-core machine. A POS still without an answer after this fails the test. */
const ANSWER_BUDGET_MS = 60_000;

const terminals: NewTerminal[] = Array.from({ length: TERMINALS }, (_, i) => ({
  id: `FO-POS-${i}`,
  kind: 'canteen',
  merchantId: 'FO-CANTEEN',
  location: `failover ${i}`,
  secret: `fo-pos-${i}-secret-0123456789`,
}));
const cardNo = (c: number): string => String(81_000_000 + c);
const serial = (c: number): string => `F0${String(c).padStart(6, '0')}`;

let cluster: TestCluster;
let app: SwitchApp;

beforeAll(async () => {
  cluster = await startTestCluster();
  useClusterLedger(cluster.cluster, { LEDGER_DURABILITY: 'replica', LEDGER_WAIT_TIMEOUT_MS: '500' });
  app = await startTestSwitch('failover');
  for (const t of terminals) await app.terminals.register(t);
  for (let c = 0; c < CARDS; c++) await openCard(app, cardNo(c), serial(c), OPENING_FEN);
}, 90_000);

afterAll(async () => {
  await app?.stop();
  await cluster?.stop();
});

interface Approved {
  readonly terminalId: string;
  readonly sequence: number;
  readonly cardNo: string;
  readonly amountFen: number;
}

it('kill -9 of a master under load in the durable mode: every acknowledged payment is in the ledger exactly once', async () => {
  const pos = posClient(app);
  const approved: Approved[] = [];
  const refusedCodes = new Map<string, number>();
  let unavailable = 0;
  let stop = false;

  /** One payment, sent again on UNAVAILABLE with the same sequence until answered. */
  const pay = async (t: NewTerminal, sequence: number, card: number, amountFen: number): Promise<void> => {
    const started = Date.now();
    for (;;) {
      try {
        const answer = await call<unknown, { outcome: Outcome }>(
          pos,
          'authorize',
          { terminalId: t.id, sequenceNumber: sequence, amountFen, credential: { card: { cardSerial: serial(card) } }, pin: '' },
          terminalMetadata(t),
        );
        if (answer.outcome === Outcome.OUTCOME_APPROVED) approved.push({ terminalId: t.id, sequence, cardNo: cardNo(card), amountFen });
        return;
      } catch (err) {
        const code = (err as ServiceError).code;
        if (code !== Status.UNAVAILABLE) {
          const name = Status[code] ?? String(code);
          refusedCodes.set(name, (refusedCodes.get(name) ?? 0) + 1);
          throw err;
        }
        unavailable++;
        if (Date.now() - started > ANSWER_BUDGET_MS) throw new Error(`${t.id} #${sequence}: no answer within ${ANSWER_BUDGET_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  };

  const loops = terminals.map(async (t, i) => {
    let sequence = 0;
    while (!stop) {
      sequence++;
      await pay(t, sequence, (sequence * 7 + i * 13) % CARDS, 1 + ((sequence * 31 + i) % 900));
    }
  });
  const waitFor = async (what: string, ready: () => boolean | Promise<boolean>): Promise<void> => {
    const deadline = Date.now() + ANSWER_BUDGET_MS;
    while (!(await ready())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  let loadFailed: unknown;
  const load = Promise.all(loops).catch((err: unknown) => {
    loadFailed = err;
    stop = true;
  });

  await waitFor(`${BEFORE_KILL} approvals`, () => approved.length >= BEFORE_KILL || loadFailed !== undefined);
  // The master that holds shard 0's journal (so some cards' shards lose their master for sure).
  const victimKey = app.keys.journal(0);
  const victim = cluster.client.slots[calculateSlot(victimKey)]?.[0];
  const victimPort = Number(victim?.split(':')[1]);
  const mastersBefore = await cluster.cluster.masterPorts();
  expect(mastersBefore).toContain(victimPort);
  cluster.cluster.kill(victimPort);
  const approvedAtKill = approved.length;

  // The victim's replica is promoted: three masters again, none of them the victim.
  await waitFor('the replica to take over', async () => {
    const masters = await cluster.cluster.masterPorts();
    return masters.length === 3 && !masters.includes(victimPort);
  });
  // The dead machine comes back and becomes the new master's replica; durable payments flow again.
  await cluster.cluster.restart(victimPort);
  await cluster.cluster.waitHealthy(ANSWER_BUDGET_MS);
  await waitFor(`${AFTER_FAILOVER} more approvals`, () => approved.length >= approvedAtKill + AFTER_FAILOVER || loadFailed !== undefined);
  stop = true;
  await load;
  pos.close();
  expect(loadFailed, `a payment failed with something other than UNAVAILABLE: ${[...refusedCodes].join(', ')}`).toBeUndefined();

  // Every approved payment is in the journal once: count the pay entries by (terminal, sequence).
  const seen = new Map<string, number>();
  for (let shard = 0; shard < app.keys.shardCount; shard++) {
    for await (const page of journalPages(app.redis, app.keys.journal(shard))) {
      for (const row of page) {
        const entry = parseJournalEntry(row);
        if (entry.kind !== 'pay') continue;
        const key = `${entry.terminalId}#${entry.sequence}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
    }
  }
  const lost = approved.filter((p) => !seen.has(`${p.terminalId}#${p.sequence}`));
  const duplicated = [...seen.values()].filter((n) => n > 1).length;
  const report = {
    acknowledged: approved.length,
    lost: lost.length,
    duplicated,
    unavailableAnswers: unavailable,
    journalPayments: seen.size,
  };
  console.log(`cluster failover (durable mode): ${JSON.stringify(report)}`);
  expect(lost).toEqual([]);
  expect(duplicated).toBe(0);
  // Nothing was taken that the POS was not told about: every pay entry is an approved answer.
  expect(seen.size).toBe(approved.length);
  // Balances: opening minus exactly the approved payments of each card.
  const spent = new Map<string, number>();
  for (const p of approved) spent.set(p.cardNo, (spent.get(p.cardNo) ?? 0) + p.amountFen);
  for (let c = 0; c < CARDS; c++) {
    const bal = await asRedis(cluster.client).hget(app.keys.account(cardNo(c)), 'bal');
    expect(Number(bal), `card ${cardNo(c)}`).toBe(OPENING_FEN - (spent.get(cardNo(c)) ?? 0));
  }
  const audit = await auditLedger(app.redis, app.keys);
  expect(audit.problems).toEqual([]);
  expect(audit.ok).toBe(true);
  expect(audit.accounts).toBe(CARDS);
}, 180_000);
