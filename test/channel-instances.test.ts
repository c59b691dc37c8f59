// Two switch processes' worth of follow-up on one Redis: each payment-code payment (and each merchant
// refund) left undecided is worked by one switch at a time (a lease in Redis, follow-up-lease.lua), the
// loser leaves it, and a crashed switch's lease expires so another finishes its payments. Both switches
// here share the WeChat Pay simulator through a counting wrapper that records, per order, how many
// channel calls were in flight at once and when each started. The audit passes after every test.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import type { PaymentChannel } from '../switch/channels/channel.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { bindChannelPayer } from '../switch/domain/channel-payers.js';
import { ChannelPayments } from '../switch/domain/channel-payment.js';
import { PosDomain } from '../switch/domain/pos.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { followUpCount, readChannelPayment, takeFollowUpLease } from '../switch/ledger/channel-payments.js';
import type { Config } from '../switch/config.js';
import { createLogger } from '../switch/log.js';
import { openCard, POS_TERMINAL, readJournal, testConfig } from './helpers/switch.js';

const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
const CARD = '20261201';
const PAYER = 'oWX-two-switches-0001';
/** Each channel answer takes this long, so that two switches polling every 20 ms would overlap on it. */
const CHANNEL_DELAY_MS = 60;

interface CallLog {
  /** Calls of one order in flight now, and the most ever at once. */
  inFlight: number;
  maxInFlight: number;
  /** When each query started (ms), and by which switch. */
  readonly queries: { readonly atMs: number; readonly by: string }[];
}

const calls = new Map<string, CallLog>();

function logOf(outTradeNo: string): CallLog {
  let entry = calls.get(outTradeNo);
  if (entry === undefined) {
    entry = { inFlight: 0, maxInFlight: 0, queries: [] };
    calls.set(outTradeNo, entry);
  }
  return entry;
}

/** The simulator's adapter, with every call of one order counted and slowed down. */
function counting(inner: PaymentChannel, by: string): PaymentChannel {
  const tracked = async <T>(outTradeNo: string, query: boolean, work: () => Promise<T>): Promise<T> => {
    const entry = logOf(outTradeNo);
    entry.inFlight += 1;
    entry.maxInFlight = Math.max(entry.maxInFlight, entry.inFlight);
    if (query) entry.queries.push({ atMs: Date.now(), by });
    try {
      await new Promise((resolve) => setTimeout(resolve, CHANNEL_DELAY_MS));
      return await work();
    } finally {
      entry.inFlight -= 1;
    }
  };
  return {
    name: inner.name,
    recognises: (code) => inner.recognises(code),
    ...(inner.payerOfCode === undefined ? {} : { payerOfCode: inner.payerOfCode.bind(inner) }),
    payWithCode: (request, signal) => tracked(request.outTradeNo, false, () => inner.payWithCode(request, signal)),
    queryPayment: (outTradeNo, signal) => tracked(outTradeNo, true, () => inner.queryPayment(outTradeNo, signal)),
    cancelPayment: (outTradeNo, signal) => tracked(outTradeNo, false, () => inner.cancelPayment(outTradeNo, signal)),
    refund: (request, signal) => tracked(request.outTradeNo, false, () => inner.refund(request, signal)),
    queryRefund: (request, signal) => tracked(request.outTradeNo, false, () => inner.queryRefund(request, signal)),
    createRechargeOrder: (request, signal) => inner.createRechargeOrder(request, signal),
    closeRechargeOrder: (outTradeNo, signal) => tracked(outTradeNo, false, () => inner.closeRechargeOrder(outTradeNo, signal)),
    verifyNotification: (n) => inner.verifyNotification(n),
    notificationReply: (ok) => inner.notificationReply(ok),
    dailyStatement: (date, signal) => inner.dailyStatement(date, signal),
  };
}

let sims: ChannelSimulators;
let config: Config;
let first: SwitchApp;
let second: SwitchApp;

function start(name: string): Promise<SwitchApp> {
  const wechat = sims.channels.get('wechat');
  if (wechat === undefined) throw new Error('no wechat simulator');
  return startSwitch(config, log, Date.now, { channels: new Map([['wechat', counting(wechat, name)]]), gateway: false, grpc: false });
}

beforeAll(async () => {
  sims = await startChannelSimulators({ log, notifyBaseUrl: '', latencyMs: 0 });
  config = testConfig('chtwo', {
    CHANNEL_POLL_INTERVAL_MS: '20',
    CHANNEL_WECHAT_BUDGET_MS: '8000',
    CHANNEL_ALIPAY_BUDGET_MS: '8000',
    CHANNEL_CALL_TIMEOUT_MS: '3000',
  });
  first = await start('first');
  second = await start('second');
  await first.terminals.register(POS_TERMINAL);
  await openCard(first, CARD, 'C0FFEE02', 10_000);
  sims.wechat.setBalance(PAYER, 10_000_000);
  await bindChannelPayer(first.context, CARD, 'wechat', PAYER);
});

afterAll(async () => {
  await first?.stop();
  await second?.stop();
  await sims?.stop();
});

afterEach(async () => {
  const report = await auditLedger(first.redis, first.keys);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
});

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

let nextSequence = 1;

/** A payment made at the first switch's POS that stays undecided for `paying` looks, then is paid. */
async function pendingPayment(pos: PosDomain, paying: number, amountFen: number): Promise<{ sequence: number; outTradeNo: string }> {
  const terminal = await first.terminals.get(POS_TERMINAL.id);
  if (terminal === undefined) throw new Error('terminal not registered');
  const code = sims.wechat.newCode(PAYER);
  sims.wechat.script(code, [...Array.from({ length: paying }, () => 'paying' as const), 'paid']);
  const sequence = nextSequence++;
  const answer = await pos.authorize(terminal, { sequence, amountFen, credential: { kind: 'third_party', code }, pin: '' });
  expect(answer.code).toBe('pending');
  return { sequence, outTradeNo: answer.transactionId };
}

async function journalled(outTradeNo: string): Promise<string[]> {
  const entries = await readJournal(first.redis, first.keys.journalOfCard(CARD));
  return entries.filter((e) => e.fields['ot'] === outTradeNo).map((e) => e.fields['k'] ?? '');
}

describe('two switches on one Redis', () => {
  it('never work one undecided payment at once; each payment is settled once', async () => {
    const before = sims.wechat.balanceOf(PAYER);
    const pos = new PosDomain(first.context);
    const payments: { sequence: number; outTradeNo: string }[] = [];
    for (let i = 0; i < 12; i++) payments.push(await pendingPayment(pos, 3 + (i % 4), 100 + i));
    await waitFor('every payment decided', async () => ((await followUpCount(first.context)) === 0 ? true : undefined));
    let paidFen = 0;
    const workers = new Set<string>();
    for (const [i, p] of payments.entries()) {
      expect((await readChannelPayment(first.context, POS_TERMINAL.id, p.sequence))?.state).toBe('S');
      expect(await journalled(p.outTradeNo)).toEqual(['cpay']);
      const log = logOf(p.outTradeNo);
      expect(log.maxInFlight).toBe(1);
      for (const q of log.queries) workers.add(q.by);
      paidFen += 100 + i;
    }
    // Both switches took part (the follow-up is shared, not one switch's); and nobody paid twice.
    expect(workers).toEqual(new Set(['first', 'second']));
    expect(sims.wechat.balanceOf(PAYER)).toBe(before - paidFen);
  });

  it("a crashed switch's lease expires and another switch finishes its payment", async () => {
    // A switch that took the payment's lease, had the channel start charging, and died without releasing it.
    const leaseMs = 400;
    class CrashingPayments extends ChannelPayments {
      override leaseMs(): number {
        return leaseMs;
      }
      override async leased(name: string, work: () => Promise<void>): Promise<boolean> {
        if (!(await takeFollowUpLease(first.context, name, this.instanceId, leaseMs))) return false;
        await work();
        return true;
      }
    }
    const crashed = new PosDomain(first.context, new CrashingPayments(first.context, 'crashed-switch'));
    const takenAtMs = Date.now();
    const p = await pendingPayment(crashed, 2, 777);
    const record = await waitFor('another switch to finish it', async () => {
      const r = await readChannelPayment(second.context, POS_TERMINAL.id, p.sequence);
      return r?.state === 'S' ? r : undefined;
    });
    expect(record.cardNo).toBe(CARD);
    // Nobody asked the channel about it while the dead switch's lease held; then a live one did.
    const queries = logOf(p.outTradeNo).queries;
    expect(queries.length).toBeGreaterThan(0);
    for (const q of queries) expect(q.atMs).toBeGreaterThanOrEqual(takenAtMs + leaseMs);
    expect(await journalled(p.outTradeNo)).toEqual(['cpay']);
  });
});
