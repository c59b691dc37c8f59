// Alipay and WeChat payment codes at a canteen POS, end to end: a real switch over gRPC, real Redis,
// both channel simulators over loopback. The money comes from the payer's channel account (the
// simulators' balances tell), the campus balance never moves, the journal and the card's statement
// carry the channel and its transaction id, and the audit passes after every test. Undecided payments
// are followed up by the switch itself (short budgets here through CHANNEL_* config).
import type { Metadata } from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import {
  ReverseResult,
  type AuthorizeRequest,
  type AuthorizeResponse,
  type PosServiceClient,
  type QueryTransactionRequest,
  type ReverseRequest,
  type ReverseResponse,
} from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import type { Config } from '../switch/config.js';
import { bindChannelPayer } from '../switch/domain/channel-payers.js';
import { ChannelPayments } from '../switch/domain/channel-payment.js';
import { PosDomain } from '../switch/domain/pos.js';
import { reconcileChannelDay } from '../switch/domain/reconcile.js';
import { settlementReport } from '../switch/domain/reports.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { followUpCount, readChannelPayment } from '../switch/ledger/channel-payments.js';
import { createLogger } from '../switch/log.js';
import { call, grpcError, openCard, POS_TERMINAL, posClient, readJournal, terminalMetadata, testConfig } from './helpers/switch.js';

const CARD = '20240001';
const OPENING_FEN = 10_000;
const log = createLogger('silent');
// Budgets well above one channel call under a loaded CI machine (a first call can take a few hundred ms),
// short enough that the give-up tests stay quick.
const CHANNEL_CONFIG = { CHANNEL_POLL_INTERVAL_MS: '30', CHANNEL_WECHAT_BUDGET_MS: '2500', CHANNEL_ALIPAY_BUDGET_MS: '2500' };

let sims: ChannelSimulators;
let config: Config;
let app: SwitchApp;
let client: PosServiceClient;
let meta: Metadata;
let wechatPayer: string;
let alipayPayer: string;
let nextSequence = 1;

beforeAll(async () => {
  sims = await startChannelSimulators({ log, notifyBaseUrl: '', latencyMs: 0 });
  config = testConfig('chpos', CHANNEL_CONFIG);
  app = await startSwitch(config, log, Date.now, { channels: sims.channels, gateway: false });
  await app.terminals.register(POS_TERMINAL);
  await openCard(app, CARD, 'C0FFEE01', OPENING_FEN);
  client = posClient(app);
  meta = terminalMetadata(POS_TERMINAL);
  wechatPayer = 'oWX-bound-payer-0001';
  sims.wechat.setBalance(wechatPayer, 1_000_000);
  alipayPayer = sims.alipay.newPayer({ balanceFen: 1_000_000 });
  await bindChannelPayer(app.context, CARD, 'wechat', wechatPayer);
  await bindChannelPayer(app.context, CARD, 'alipay', alipayPayer);
});

afterAll(async () => {
  client?.close();
  await app?.stop();
  await sims?.stop();
});

afterEach(async () => {
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
});

function authorize(sequence: number, code: string, amountFen: number): Promise<AuthorizeResponse> {
  return call<AuthorizeRequest, AuthorizeResponse>(
    client,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: sequence, amountFen, credential: { thirdParty: { code } }, pin: '' },
    meta,
  );
}

function query(by: { sequence: number } | { transactionId: string }): Promise<AuthorizeResponse> {
  const request: QueryTransactionRequest = {
    terminalId: POS_TERMINAL.id,
    sequenceNumber: 'sequence' in by ? by.sequence : 0,
    transactionId: 'transactionId' in by ? by.transactionId : '',
  };
  return call<QueryTransactionRequest, AuthorizeResponse>(client, 'queryTransaction', request, meta);
}

function reverse(sequence: number, code: string, amountFen: number): Promise<ReverseResponse> {
  return call<ReverseRequest, ReverseResponse>(
    client,
    'reverse',
    { terminalId: POS_TERMINAL.id, originalSequenceNumber: sequence, amountFen, credential: { thirdParty: { code } } },
    meta,
  );
}

/** Polls `check` until it returns a value (not undefined); the switch's follow-up runs meanwhile. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Asks QueryTransaction until the payment is no longer pending. */
function decided(sequence: number): Promise<AuthorizeResponse> {
  return waitFor(`payment ${sequence} decided`, async () => {
    const answer = await query({ sequence });
    return answer.outcome === Outcome.OUTCOME_PENDING ? undefined : answer;
  });
}

async function journalOf(outTradeNo: string): Promise<Record<string, string>[]> {
  const entries = await readJournal(app.redis, app.keys.journalOfCard(CARD));
  return entries.map((e) => e.fields).filter((f) => f['ot'] === outTradeNo);
}

async function balanceFen(): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(CARD), 'bal'));
}

type Channel = 'wechat' | 'alipay';

function codeOf(channel: Channel, steps?: string[], payer?: string): string {
  if (channel === 'wechat') {
    const code = sims.wechat.newCode(payer ?? wechatPayer);
    if (steps !== undefined) sims.wechat.script(code, steps as Parameters<typeof sims.wechat.script>[1]);
    return code;
  }
  const code = sims.alipay.newCode(payer ?? alipayPayer);
  if (steps !== undefined) sims.alipay.script(code, steps as Parameters<typeof sims.alipay.script>[1]);
  return code;
}

function payerBalance(channel: Channel, payer?: string): number {
  return channel === 'wechat' ? sims.wechat.balanceOf(payer ?? wechatPayer) : sims.alipay.balanceOf(payer ?? alipayPayer);
}

const STEPS: Record<Channel, { paying: string; paid: string; unknownThenPaid: string[]; insufficient: string }> = {
  wechat: { paying: 'paying', paid: 'paid', unknownThenPaid: ['systemerror', 'paid'], insufficient: 'notenough' },
  alipay: { paying: 'paying', paid: 'paid', unknownThenPaid: ['unknown_paid'], insufficient: 'insufficient' },
};

describe.each(['wechat', 'alipay'] as const)('%s payment codes', (channel) => {
  it('success: approved, the payer pays, the campus balance does not move, journal and statement name the channel', async () => {
    const sequence = nextSequence++;
    const before = { card: await balanceFen(), payer: payerBalance(channel) };
    const code = codeOf(channel);
    const answer = await authorize(sequence, code, 1250);
    expect(answer.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(answer.displayText).toBe(`${channel === 'wechat' ? '微信' : '支付宝'}支付成功 12.50元`);
    expect(answer.cardNumber).toBe(CARD);
    expect(answer.transactionId).toMatch(/^CP[0-9a-f]{10}-\d+$/);
    expect(payerBalance(channel)).toBe(before.payer - 1250);
    expect(await balanceFen()).toBe(before.card);

    const entries = await journalOf(answer.transactionId);
    expect(entries).toHaveLength(1);
    const record = await readChannelPayment(app.context, POS_TERMINAL.id, sequence);
    expect(entries[0]).toMatchObject({
      k: 'cpay',
      c: CARD,
      a: '1250',
      f: `x:ch:${channel.toUpperCase()}`,
      t: 'm:CANTEEN1',
      ct: record?.channelTxnId,
    });
    expect(record?.channelTxnId).not.toBe('');
    const statement = await app.redis.zrange(app.keys.statement(CARD), 0, -1);
    const mine = statement.filter((line) => line.endsWith(`|${POS_TERMINAL.id}|${sequence}`));
    expect(mine).toEqual([expect.stringMatching(new RegExp(`^\\d+-\\d+\\|cpay\\|-1250\\|${before.card}\\|`))]);

    // Retried and queried: the same answer, and the channel is not asked to pay again.
    expect(await authorize(sequence, code, 1250)).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, transactionId: answer.transactionId });
    expect(await query({ transactionId: answer.transactionId })).toMatchObject({
      outcome: Outcome.OUTCOME_APPROVED,
      transactionId: answer.transactionId,
      amountFen: 1250,
    });
    expect(payerBalance(channel)).toBe(before.payer - 1250);
  });

  it('the buyer still confirming, then paying: pending with the transaction id, then approved by QueryTransaction', async () => {
    const sequence = nextSequence++;
    const steps = STEPS[channel];
    const code = codeOf(channel, [steps.paying, steps.paying, steps.paying, steps.paid]);
    const answer = await authorize(sequence, code, 800);
    expect(answer.outcome).toBe(Outcome.OUTCOME_PENDING);
    expect(answer.transactionId).not.toBe('');
    // A retry (same code) answers from the record with the same transaction id: pending, or paid by now.
    const retried = await authorize(sequence, code, 800);
    expect(retried.transactionId).toBe(answer.transactionId);
    expect([Outcome.OUTCOME_PENDING, Outcome.OUTCOME_APPROVED]).toContain(retried.outcome);
    const final = await decided(sequence);
    expect(final).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, transactionId: answer.transactionId, cardNumber: CARD });
    expect(await journalOf(answer.transactionId)).toHaveLength(1);
  });

  it('the buyer still confirming until the budget runs out: the switch cancels it, declined, nothing charged', async () => {
    const sequence = nextSequence++;
    const before = payerBalance(channel);
    const answer = await authorize(sequence, codeOf(channel, [STEPS[channel].paying]), 900);
    expect(answer.outcome).toBe(Outcome.OUTCOME_PENDING);
    const final = await decided(sequence);
    expect(final.outcome).toBe(Outcome.OUTCOME_DECLINED);
    expect(final.declineReason).toBe(DeclineReason.DECLINE_REASON_CHANNEL_TIMEOUT);
    await waitFor('the follow-up to finish', async () =>
      (await readChannelPayment(app.context, POS_TERMINAL.id, sequence))?.undo ? undefined : true,
    );
    const atChannel = await sims.channels.get(channel)?.queryPayment(answer.transactionId, AbortSignal.timeout(2000));
    expect(atChannel?.status).toBe('closed');
    expect(payerBalance(channel)).toBe(before);
    expect(await journalOf(answer.transactionId)).toEqual([]);
  });

  it('an unknown result, then the query finds it paid', async () => {
    const sequence = nextSequence++;
    const answer = await authorize(sequence, codeOf(channel, STEPS[channel].unknownThenPaid), 700);
    expect(answer.outcome).toBe(Outcome.OUTCOME_PENDING);
    expect(await decided(sequence)).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, cardNumber: CARD });
    expect(await journalOf(answer.transactionId)).toHaveLength(1);
  });

  it('insufficient funds at the channel: declined, nothing journalled', async () => {
    const sequence = nextSequence++;
    const answer = await authorize(sequence, codeOf(channel, [STEPS[channel].insufficient]), 600);
    expect(answer.outcome).toBe(Outcome.OUTCOME_DECLINED);
    expect(answer.declineReason).toBe(DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS);
    expect(await journalOf(answer.transactionId)).toEqual([]);
  });

  it('an unbound payer is never left charged, and the POS shows how to bind', async () => {
    const sequence = nextSequence++;
    const stranger = channel === 'wechat' ? 'oWX-stranger-0001' : sims.alipay.newPayer({ balanceFen: 50_000 });
    if (channel === 'wechat') sims.wechat.setBalance(stranger, 50_000);
    const payCalls = sims.wechat.callCount('/pay/micropay');
    const answer = await authorize(sequence, codeOf(channel, undefined, stranger), 500);
    expect(answer.outcome).toBe(Outcome.OUTCOME_DECLINED);
    expect(answer.declineReason).toBe(DeclineReason.DECLINE_REASON_PAYER_NOT_BOUND);
    expect(answer.displayText).toContain(`绑定${channel === 'wechat' ? '微信' : '支付宝'}`);
    expect(answer.cardNumber).toBe('');
    // WeChat names the payer before charging: never asked to pay. Alipay only after: given back at once.
    if (channel === 'wechat') expect(sims.wechat.callCount('/pay/micropay')).toBe(payCalls);
    expect(payerBalance(channel, stranger)).toBe(50_000);
    expect(await followUpCount(app.context)).toBe(0);
  });

  it('POS gone: nobody queries, the switch still finishes the payment', async () => {
    const sequence = nextSequence++;
    const steps = STEPS[channel];
    const answer = await authorize(sequence, codeOf(channel, [steps.paying, steps.paid]), 450);
    expect(answer.outcome).toBe(Outcome.OUTCOME_PENDING);
    const record = await waitFor('the switch to decide it', async () => {
      const r = await readChannelPayment(app.context, POS_TERMINAL.id, sequence);
      return r?.state === 'P' ? undefined : r;
    });
    expect(record.state).toBe('S');
    expect(await journalOf(answer.transactionId)).toHaveLength(1);
  });

  it('POS reversal of a paid payment: the money goes back through the channel, journal reversed, settlement apart', async () => {
    const sequence = nextSequence++;
    const code = codeOf(channel);
    const before = payerBalance(channel);
    const paid = await authorize(sequence, code, 333);
    expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const reversed = await reverse(sequence, code, 333);
    expect(reversed.result).toBe(ReverseResult.REVERSE_RESULT_REVERSED);
    expect(await reverse(sequence, code, 333)).toMatchObject({ result: ReverseResult.REVERSE_RESULT_REVERSED });
    await waitFor('the money back', () => Promise.resolve(payerBalance(channel) === before ? true : undefined));
    const entries = await journalOf(paid.transactionId);
    expect(entries.map((e) => e['k'])).toEqual(['cpay', 'cprev']);
    expect(entries[1]).toMatchObject({ f: 'm:CANTEEN1', t: `x:ch:${channel.toUpperCase()}`, a: '333' });
    expect(await authorize(sequence, code, 333)).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_ALREADY_REVERSED,
    });
    const day = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
    const report = await settlementReport(app.context, 'CANTEEN1', day);
    expect(report.terminals).toEqual([]);
    const mine = report.channels.find((c) => c.channel === channel);
    expect(mine?.refunds).toBeGreaterThanOrEqual(1);
    expect(mine?.refundedFen).toBeGreaterThanOrEqual(333);
    expect(mine?.netFen).toBe((mine?.paidFen ?? 0) - (mine?.refundedFen ?? 0));
  });

  it('POS reversal of a pending payment: cancelled at the channel, the payer keeps the money', async () => {
    const sequence = nextSequence++;
    const code = codeOf(channel, [STEPS[channel].paying]);
    const before = payerBalance(channel);
    expect((await authorize(sequence, code, 222)).outcome).toBe(Outcome.OUTCOME_PENDING);
    expect((await reverse(sequence, code, 222)).result).toBe(ReverseResult.REVERSE_RESULT_REVERSED);
    expect(await decided(sequence)).toMatchObject({ declineReason: DeclineReason.DECLINE_REASON_ALREADY_REVERSED });
    await waitFor('the follow-up to finish', async () => ((await followUpCount(app.context)) === 0 ? true : undefined));
    expect(payerBalance(channel)).toBe(before);
  });
});

describe('payment codes in the daily reconciliation', () => {
  it.each(['wechat', 'alipay'] as const)(
    '%s: the day so far matches the channel statement; an altered bill line is listed with both amounts',
    async (channel) => {
      const day = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
      const sequence = nextSequence++;
      const paid = await authorize(sequence, codeOf(channel), 4321);
      expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
      // Alipay publishes a day's statement once the day has ended; its simulator can be told to publish today's.
      if (channel === 'alipay') sims.alipay.bill(day);
      const clean = await reconcileChannelDay(app.context, channel, day, { signal: new AbortController().signal });
      expect(clean.differences).toEqual([]);
      expect(clean.matchedOrders).toBeGreaterThan(0);
      (channel === 'wechat' ? sims.wechat : sims.alipay).alterBillLine(paid.transactionId, 4320);
      const altered = await reconcileChannelDay(app.context, channel, day, { signal: new AbortController().signal });
      expect(altered.differences).toMatchObject([
        { kind: 'amount_differs', outTradeNo: paid.transactionId, channelNetFen: 4320, ledgerNetFen: 4321, cardNo: CARD },
      ]);
      (channel === 'wechat' ? sims.wechat : sims.alipay).alterBillLine(paid.transactionId, 4321);
    },
  );
});

describe('payment codes: formats, idempotency, restarts', () => {
  it('only real code formats are accepted (INVALID_ARGUMENT otherwise); nothing is recorded', async () => {
    for (const code of [
      '1234',
      '160000000000000000',
      '1300000000000000000',
      '310000000000000000',
      '2400000000000000',
      '28abc0000000000000',
    ]) {
      const err = await grpcError(authorize(nextSequence, code, 100));
      expect(err.code, code).toBe(Status.INVALID_ARGUMENT);
      expect(err.details).toContain('WeChat Pay payment code (18 digits starting 10-15)');
    }
    expect(await readChannelPayment(app.context, POS_TERMINAL.id, nextSequence)).toBeUndefined();
  });

  it('a paid answer settled by two paths at once (the POS call and the follow-up) stands once: a good sale is never reversed', async () => {
    const sequence = nextSequence++;
    const code = codeOf(
      'wechat',
      Array.from({ length: 8 }, () => 'paying'),
    );
    const pending = await authorize(sequence, code, 777);
    expect(pending.outcome).toBe(Outcome.OUTCOME_PENDING);
    const record = await readChannelPayment(app.context, POS_TERMINAL.id, sequence);
    if (record === undefined) throw new Error('no record of the pending payment');
    const payments = new ChannelPayments(app.context);
    const paid = {
      status: 'paid',
      channelTxnId: `RACE${sequence}`,
      payer: { channel: 'wechat', payerId: wechatPayer },
      amountFen: 777,
      paidAtMs: Date.now(),
    } as const;
    await Promise.all([payments.settle(record, paid), payments.settle(record, paid), payments.settle(record, paid)]);
    expect((await journalOf(pending.transactionId)).map((e) => e['k'])).toEqual(['cpay']);
    expect((await readChannelPayment(app.context, POS_TERMINAL.id, sequence))?.state).toBe('S');
    expect((await query({ sequence })).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('300 parallel Authorize calls with the same key charge the channel once', async () => {
    const sequence = nextSequence++;
    const code = codeOf('wechat', ['paying', 'paid']);
    const payCalls = sims.wechat.callCount('/pay/micropay');
    const before = payerBalance('wechat');
    const answers = await Promise.all(Array.from({ length: 300 }, () => authorize(sequence, code, 1000)));
    const ids = new Set(answers.map((a) => a.transactionId));
    expect(ids.size).toBe(1);
    for (const a of answers) expect([Outcome.OUTCOME_PENDING, Outcome.OUTCOME_APPROVED]).toContain(a.outcome);
    expect(await decided(sequence)).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED });
    expect(sims.wechat.callCount('/pay/micropay')).toBe(payCalls + 1);
    expect(payerBalance('wechat')).toBe(before - 1000);
  });

  it('the same sequence with another code or amount is refused (ALREADY_EXISTS) and pays nothing', async () => {
    const sequence = nextSequence++;
    expect((await authorize(sequence, codeOf('alipay'), 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    const err = await grpcError(authorize(sequence, codeOf('alipay'), 200));
    expect(err.code).toBe(Status.ALREADY_EXISTS);
  });

  it('QueryTransaction: NOT_FOUND for a payment this terminal never sent, INVALID_ARGUMENT without a key', async () => {
    expect((await grpcError(query({ sequence: 999_999 }))).code).toBe(Status.NOT_FOUND);
    expect((await grpcError(query({ transactionId: 'CP0000000000-1' }))).code).toBe(Status.NOT_FOUND);
    expect((await grpcError(query({ transactionId: '' }))).code).toBe(Status.INVALID_ARGUMENT);
  });

  it('a switch stopped mid-follow-up: the restarted one resumes from Redis and finishes the payment', async () => {
    // Its own ledger, so that only these two switches (one after the other) can follow the payment up.
    const own = testConfig('chpos-restart', CHANNEL_CONFIG);
    const first = await startSwitch(own, log, Date.now, { channels: sims.channels, gateway: false, grpc: false });
    await first.terminals.register(POS_TERMINAL);
    await openCard(first, CARD, 'C0FFEE01', OPENING_FEN);
    await bindChannelPayer(first.context, CARD, 'wechat', wechatPayer);
    const terminal = await first.terminals.get(POS_TERMINAL.id);
    if (terminal === undefined) throw new Error('terminal not registered');
    const code = codeOf('wechat', ['paying', 'paying', 'paying', 'paying', 'paid']);
    const answer = await new PosDomain(first.context).authorize(terminal, {
      sequence: 1,
      amountFen: 640,
      credential: { kind: 'third_party', code },
      pin: '',
    });
    expect(answer.code).toBe('pending');
    await first.stop();
    const second = await startSwitch(own, log, Date.now, { channels: sims.channels, gateway: false, grpc: false });
    try {
      expect((await readChannelPayment(second.context, POS_TERMINAL.id, 1))?.state).toBe('P');
      const record = await waitFor('the restarted switch to finish it', async () => {
        const r = await readChannelPayment(second.context, POS_TERMINAL.id, 1);
        return r?.state === 'S' ? r : undefined;
      });
      expect(record.cardNo).toBe(CARD);
      const entries = await readJournal(second.redis, second.keys.journalOfCard(CARD));
      expect(entries.filter((e) => e.fields['ot'] === answer.transactionId).map((e) => e.fields['k'])).toEqual(['cpay']);
      expect((await auditLedger(second.redis, second.keys)).ok).toBe(true);
    } finally {
      await second.stop();
    }
  });
});
