// Merchant refunds of Alipay / WeChat code payments, the card's state at a code payment, and the holder's
// live events of code payments, end to end: a real switch (gRPC and the uWS gateway), real Redis, both
// channel simulators over loopback, a real WebSocket. A refund goes back through the channel (the payer's
// simulator balance tells), is bounded by what was paid, journalled once (`cref`), in the merchant's
// settlement and the day's reconciliation; an unknown channel answer is asked again, never guessed. The
// audit passes after every test.
import type { Metadata } from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import {
  ReverseResult,
  type AuthorizeRequest,
  type AuthorizeResponse,
  type PosServiceClient,
  type RefundRequest,
  type RefundResponse,
  type ReverseRequest,
  type ReverseResponse,
} from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { bindChannelPayer } from '../switch/domain/channel-payers.js';
import { reconcileChannelDay } from '../switch/domain/reconcile.js';
import { settlementReport } from '../switch/domain/reports.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { outRefundNoOf } from '../switch/domain/channel-refund.js';
import {
  channelRefundStep,
  followUpCount,
  readChannelPayment,
  readPaidRecord,
  refundFollowUpCount,
} from '../switch/ledger/channel-payments.js';
import { createLogger } from '../switch/log.js';
import {
  call,
  dumpKeySpace,
  grpcError,
  openCard,
  POS_TERMINAL,
  posClient,
  readJournal,
  terminalMetadata,
  testConfig,
} from './helpers/switch.js';

const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
const CHANNEL_CONFIG = {
  CHANNEL_POLL_INTERVAL_MS: '30',
  CHANNEL_WECHAT_BUDGET_MS: '2500',
  CHANNEL_ALIPAY_BUDGET_MS: '2500',
  CHANNEL_CALL_TIMEOUT_MS: '2000',
};
const OTHER_MERCHANT_POS = { ...POS_TERMINAL, id: 'POS-OTHER', merchantId: 'SHOP9', secret: 'pos-other-secret-0123456789' };

type Channel = 'wechat' | 'alipay';

let sims: ChannelSimulators;
let app: SwitchApp;
let client: PosServiceClient;
let meta: Metadata;
let nextSequence = 1;
let cardSeq = 0;

beforeAll(async () => {
  sims = await startChannelSimulators({ log, notifyBaseUrl: '', latencyMs: 0 });
  app = await startSwitch(testConfig('chref', CHANNEL_CONFIG), log, Date.now, { channels: sims.channels });
  await app.terminals.register(POS_TERMINAL);
  await app.terminals.register(OTHER_MERCHANT_POS);
  client = posClient(app);
  meta = terminalMetadata(POS_TERMINAL);
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

interface Payer {
  readonly cardNo: string;
  readonly payerId: string;
  readonly channel: Channel;
}

/** A fresh card whose holder bound a fresh payer of `channel` (rich enough for every test). */
async function payer(channel: Channel, extra: Record<string, string> = {}): Promise<Payer> {
  cardSeq += 1;
  const cardNo = `6600${String(cardSeq).padStart(4, '0')}`;
  await openCard(app, cardNo, `CR${cardNo}`, 10_000, extra);
  const payerId = channel === 'wechat' ? `oWX-refund-${cardNo}` : sims.alipay.newPayer({ balanceFen: 1_000_000 });
  if (channel === 'wechat') sims.wechat.setBalance(payerId, 1_000_000);
  await bindChannelPayer(app.context, cardNo, channel, payerId);
  return { cardNo, payerId, channel };
}

function codeOf(p: Payer): string {
  return p.channel === 'wechat' ? sims.wechat.newCode(p.payerId) : sims.alipay.newCode(p.payerId);
}

function payerBalance(p: Payer): number {
  return p.channel === 'wechat' ? sims.wechat.balanceOf(p.payerId) : sims.alipay.balanceOf(p.payerId);
}

function authorize(sequence: number, code: string, amountFen: number): Promise<AuthorizeResponse> {
  return call<AuthorizeRequest, AuthorizeResponse>(
    client,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: sequence, amountFen, credential: { thirdParty: { code } }, pin: '' },
    meta,
  );
}

async function paid(p: Payer, amountFen: number): Promise<{ sequence: number; res: AuthorizeResponse }> {
  const sequence = nextSequence++;
  const res = await authorize(sequence, codeOf(p), amountFen);
  expect(res.outcome).toBe(Outcome.OUTCOME_APPROVED);
  return { sequence, res };
}

function refund(
  p: Payer,
  originalSequence: number,
  amountFen: number,
  sequence = nextSequence++,
  terminal = POS_TERMINAL,
): Promise<RefundResponse> {
  return call<RefundRequest, RefundResponse>(
    client,
    'refund',
    {
      terminalId: terminal.id,
      sequenceNumber: sequence,
      cardNumber: p.cardNo,
      originalTerminalId: POS_TERMINAL.id,
      originalSequenceNumber: originalSequence,
      amountFen,
    },
    terminalMetadata(terminal),
  );
}

function reverse(sequence: number, code: string, amountFen: number): Promise<ReverseResponse> {
  return call<ReverseRequest, ReverseResponse>(
    client,
    'reverse',
    { terminalId: POS_TERMINAL.id, originalSequenceNumber: sequence, amountFen, credential: { thirdParty: { code } } },
    meta,
  );
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function entriesOf(p: Payer, outTradeNo: string): Promise<Record<string, string>[]> {
  const entries = await readJournal(app.redis, app.keys.journalOfCard(p.cardNo));
  return entries.map((e) => e.fields).filter((f) => f['ot'] === outTradeNo);
}

async function cardBalance(p: Payer): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(p.cardNo), 'bal'));
}

/** The key space but the follow-ups' leases (one taken by an earlier test's follow-up may expire meanwhile). */
async function keySpaceWithoutLeases(): Promise<Record<string, unknown>> {
  const dump = await dumpKeySpace(app.redis, app.keys.prefix);
  return Object.fromEntries(Object.entries(dump).filter(([key]) => !key.includes(':lease:')));
}

const today = (): string => new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);

describe.each(['wechat', 'alipay'] as const)('%s: merchant refunds of code payments', (channel) => {
  it('partial refunds go back through the channel, bounded by what was paid, journalled once each, in settlement and reconciliation', async () => {
    const p = await payer(channel);
    const before = payerBalance(p);
    const { sequence, res } = await paid(p, 1000);
    expect(payerBalance(p)).toBe(before - 1000);

    const firstSeq = nextSequence++;
    const first = await refund(p, sequence, 300, firstSeq);
    expect(first).toMatchObject({ refundableLeftFen: 700, balanceAfterFen: 10_000 });
    expect(first.displayText).toContain(channel === 'wechat' ? '已原路退回微信' : '已原路退回支付宝');
    expect(payerBalance(p)).toBe(before - 700);
    // The same request again: the first answer, nothing refunded twice.
    expect(await refund(p, sequence, 300, firstSeq)).toEqual(first);
    expect(payerBalance(p)).toBe(before - 700);
    // The same key for another amount: ALREADY_EXISTS, nothing changed.
    expect((await grpcError(refund(p, sequence, 301, firstSeq))).code).toBe(Status.ALREADY_EXISTS);

    // More than is left: refused, nothing changed.
    const over = await grpcError(refund(p, sequence, 701));
    expect(over.code).toBe(Status.FAILED_PRECONDITION);
    expect(over.details).toContain('7.00');
    expect(payerBalance(p)).toBe(before - 700);

    const rest = await refund(p, sequence, 700);
    expect(rest.refundableLeftFen).toBe(0);
    expect(payerBalance(p)).toBe(before);
    expect((await grpcError(refund(p, sequence, 1))).code).toBe(Status.FAILED_PRECONDITION);

    const entries = await entriesOf(p, res.transactionId);
    expect(entries.map((e) => e['k'])).toEqual(['cpay', 'cref', 'cref']);
    expect(entries[1]).toMatchObject({ f: 'm:CANTEEN1', t: `x:ch:${channel.toUpperCase()}`, a: '300', tm: POS_TERMINAL.id });
    expect(entries[1]?.['ct']).not.toBe('');
    // The card's balance never moved.
    expect(await cardBalance(p)).toBe(10_000);
    const statement = await app.redis.zrange(app.keys.statement(p.cardNo), 0, -1);
    expect(statement.filter((line) => line.split('|')[1] === 'cref')).toHaveLength(2);

    const report = await settlementReport(app.context, 'CANTEEN1', today());
    const mine = report.channels.find((c) => c.channel === channel);
    expect(mine?.refunds).toBeGreaterThanOrEqual(2);
    expect(mine?.refundedFen).toBeGreaterThanOrEqual(1000);

    if (channel === 'alipay') sims.alipay.bill(today());
    const reconciled = await reconcileChannelDay(app.context, channel, today(), { signal: new AbortController().signal });
    expect(reconciled.differences.filter((d) => d.outTradeNo === res.transactionId)).toEqual([]);
  });

  it('an unknown channel answer: UNAVAILABLE, asked again by the follow-up with the same refund number, refunded once', async () => {
    const p = await payer(channel);
    const before = payerBalance(p);
    const { sequence, res } = await paid(p, 500);
    if (channel === 'wechat') sims.wechat.failNext('refund', 'systemerror');
    else sims.alipay.failNext('alipay.trade.refund', 'system_error', 1);
    const calls = (): { refunds: number; queries: number } =>
      channel === 'wechat'
        ? { refunds: sims.wechat.callCount('/secapi/pay/refund'), queries: sims.wechat.callCount('/pay/refundquery') }
        : { refunds: sims.alipay.callCount('alipay.trade.refund'), queries: sims.alipay.callCount('alipay.trade.fastpay.refund.query') };
    const before0 = calls();
    const refundSeq = nextSequence++;
    const pending = await grpcError(refund(p, sequence, 200, refundSeq));
    expect(pending.code).toBe(Status.UNAVAILABLE);
    expect(pending.details).toMatch(/being confirmed/);
    // The follow-up decides it (asking with the same out_refund_no).
    await waitFor('the refund follow-up', async () => ((await refundFollowUpCount(app.context)) === 0 ? true : undefined));
    expect(payerBalance(p)).toBe(before - 300);
    // The follow-up asked the channel's refund query first, then (no such refund) sent it once more.
    const after = calls();
    expect(after.queries - before0.queries).toBeGreaterThanOrEqual(1);
    expect(after.refunds - before0.refunds).toBe(2);
    const answer = await refund(p, sequence, 200, refundSeq);
    expect(answer.refundableLeftFen).toBe(300);
    expect((await entriesOf(p, res.transactionId)).map((e) => e['k'])).toEqual(['cpay', 'cref']);
    expect(payerBalance(p)).toBe(before - 300);
  });

  it('300 parallel copies of one refund refund once; 300 different 10-fen refunds of the 7.50 left refund exactly 7.50', async () => {
    const p = await payer(channel);
    const before = payerBalance(p);
    const { sequence, res } = await paid(p, 1000);
    const refundSeq = nextSequence++;
    const copies = await Promise.allSettled(Array.from({ length: 300 }, () => refund(p, sequence, 250, refundSeq)));
    const ok = copies.filter((c): c is PromiseFulfilledResult<RefundResponse> => c.status === 'fulfilled').map((c) => c.value);
    // Each copy is answered with the refund, or UNAVAILABLE while another copy (or the follow-up) holds it
    // at the channel; once decided, the same request answers the one refund.
    for (const c of copies) if (c.status === 'rejected') expect((c.reason as { code: number }).code).toBe(Status.UNAVAILABLE);
    await waitFor('the refund decided', async () => ((await refundFollowUpCount(app.context)) === 0 ? true : undefined));
    const final = await refund(p, sequence, 250, refundSeq);
    for (const r of ok) expect(r.transactionId).toBe(final.transactionId);
    expect(payerBalance(p)).toBe(before - 750);

    const sequences = Array.from({ length: 300 }, () => nextSequence++);
    const many = await Promise.allSettled(sequences.map((s) => refund(p, sequence, 10, s)));
    const done = many.filter((c) => c.status === 'fulfilled').length;
    for (const c of many) {
      if (c.status === 'rejected') expect([Status.FAILED_PRECONDITION, Status.UNAVAILABLE]).toContain((c.reason as { code: number }).code);
    }
    await waitFor('every refund decided', async () => ((await refundFollowUpCount(app.context)) === 0 ? true : undefined));
    const record = await readPaidRecord(app.context, p.cardNo, res.transactionId);
    expect(record).toMatchObject({ amountFen: 1000, refundedFen: 1000, reservedFen: 0 });
    expect(done).toBeLessThanOrEqual(75);
    const crefs = (await entriesOf(p, res.transactionId)).filter((e) => e['k'] === 'cref');
    expect(crefs.reduce((sum, e) => sum + Number(e['a']), 0)).toBe(1000);
    expect(payerBalance(p)).toBe(before);
  });

  it('a POS reversal after a partial refund gives back only the rest; refunds after it are refused', async () => {
    const p = await payer(channel);
    const before = payerBalance(p);
    const sequence = nextSequence++;
    const code = codeOf(p);
    const res = await authorize(sequence, code, 900);
    expect(res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    await refund(p, sequence, 400);
    expect((await reverse(sequence, code, 900)).result).toBe(ReverseResult.REVERSE_RESULT_REVERSED);
    await waitFor('the money back', async () => ((await followUpCount(app.context)) === 0 ? true : undefined));
    expect(payerBalance(p)).toBe(before);
    const entries = await entriesOf(p, res.transactionId);
    expect(entries.map((e) => [e['k'], e['a']])).toEqual([
      ['cpay', '900'],
      ['cref', '400'],
      ['cprev', '500'],
    ]);
    expect((await grpcError(refund(p, sequence, 100))).code).toBe(Status.FAILED_PRECONDITION);
  });

  it('a refund cut off between its reservation and its follow-up (a crash) does not block a later reversal for ever', async () => {
    const p = await payer(channel);
    const before = payerBalance(p);
    const sequence = nextSequence++;
    const code = codeOf(p);
    const res = await authorize(sequence, code, 800);
    expect(res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const payment = await readChannelPayment(app.context, POS_TERMINAL.id, sequence);
    if (payment === undefined) throw new Error('no record of the approved payment');
    // PosService/Refund of 300 fen: its sequence claimed and channel-refund.lua 'begin' reserved the amount,
    // then the switch died before the refund was on the follow-up and before the channel was asked.
    const refundSeq = nextSequence++;
    await app.context.claims.forCard(POS_TERMINAL.id, refundSeq, p.cardNo);
    const originalRef = `${POS_TERMINAL.id}:${sequence}`;
    const begun = await channelRefundStep(app.context, {
      op: 'begin',
      cardNo: p.cardNo,
      amountFen: 300,
      fingerprint: `cref|${p.cardNo}|300|${originalRef}`,
      terminalId: POS_TERMINAL.id,
      sequence: refundSeq,
      merchantParty: payment.merchantParty,
      outTradeNo: payment.outTradeNo,
      outRefundNo: outRefundNoOf(app.context, POS_TERMINAL.id, refundSeq),
      channel,
      channelRefundId: '',
      nowMs: Date.now(),
      ttlSec: 3600,
      originalRef,
    });
    expect(begun === 'key_reused' ? begun : begun.code).toBe('begun');
    expect(await refundFollowUpCount(app.context)).toBe(0);

    // The cashier reverses the sale instead: the POS is told REVERSED, and the payer must get all of it back.
    expect((await reverse(sequence, code, 800)).result).toBe(ReverseResult.REVERSE_RESULT_REVERSED);
    await waitFor('the payer made whole', () => Promise.resolve(payerBalance(p) === before ? true : undefined));
    await waitFor('nothing left to follow up', async () =>
      (await followUpCount(app.context)) + (await refundFollowUpCount(app.context)) === 0 ? true : undefined,
    );
    // The cut-off refund was followed up and refunded, then the reversal gave back the rest.
    expect((await entriesOf(p, res.transactionId)).map((e) => [e['k'], e['a']])).toEqual([
      ['cpay', '800'],
      ['cref', '300'],
      ['cprev', '500'],
    ]);
    expect(await readPaidRecord(app.context, p.cardNo, res.transactionId)).toMatchObject({ refundedFen: 300, reservedFen: 0 });
    expect(await readChannelPayment(app.context, POS_TERMINAL.id, sequence)).toMatchObject({ state: 'R', undo: false });
  });

  it('refusals change nothing: another card, another merchant, a declined payment, a refund the channel refuses', async () => {
    const p = await payer(channel);
    const other = await payer(channel);
    const { sequence, res } = await paid(p, 600);
    const keySpace = await keySpaceWithoutLeases();
    expect((await grpcError(refund(other, sequence, 100))).code).toBe(Status.NOT_FOUND);
    expect((await grpcError(refund(p, sequence, 100, nextSequence++, OTHER_MERCHANT_POS))).code).toBe(Status.PERMISSION_DENIED);
    const tooMuch = nextSequence++;
    expect((await grpcError(refund(p, sequence, 601, tooMuch))).code).toBe(Status.FAILED_PRECONDITION);
    // Not even the refunds' sequence claims are left behind ...
    expect(await keySpaceWithoutLeases()).toEqual(keySpace);
    // ... so the refused refund's number serves the next refund, of another card's payment.
    const second = await paid(other, 300);
    expect((await refund(other, second.sequence, 300, tooMuch)).refundableLeftFen).toBe(0);

    // The channel gave some back on its own (a refund made outside the switch): asking for more than it
    // has left is refused by the channel; the reservation is released, nothing journalled.
    const adapter = sims.channels.get(channel);
    if (adapter === undefined) throw new Error('no adapter');
    const outside = await adapter.refund(
      { outTradeNo: res.transactionId, outRefundNo: `OUT${res.transactionId.slice(-20)}`, refundFen: 500, totalFen: 600, reason: 'test' },
      AbortSignal.timeout(2000),
    );
    expect(outside.status).toBe('refunded');
    const refused = await grpcError(refund(p, sequence, 200));
    expect(refused.code).toBe(Status.FAILED_PRECONDITION);
    expect(refused.details).toMatch(/refused the refund/);
    expect(await readPaidRecord(app.context, p.cardNo, res.transactionId)).toMatchObject({ refundedFen: 0, reservedFen: 0 });
    expect((await entriesOf(p, res.transactionId)).map((e) => e['k'])).toEqual(['cpay']);
    // Within what the channel still has: refunded.
    expect((await refund(p, sequence, 100)).refundableLeftFen).toBe(500);
  });
});

describe.each(['wechat', 'alipay'] as const)("%s: the card's state at a code payment", (channel) => {
  it.each([
    ['lost', DeclineReason.DECLINE_REASON_CARD_LOST],
    ['frozen', DeclineReason.DECLINE_REASON_CARD_FROZEN],
    ['cancelled', DeclineReason.DECLINE_REASON_CARD_CANCELLED],
  ] as const)('a %s card: declined with its reason, the payer is not left charged, nothing journalled', async (status, reason) => {
    const p = await payer(channel);
    const before = payerBalance(p);
    await app.ledger.setStatus(p.cardNo, status);
    const sequence = nextSequence++;
    const res = await authorize(sequence, codeOf(p), 700);
    expect(res).toMatchObject({ outcome: Outcome.OUTCOME_DECLINED, declineReason: reason });
    // Alipay names the buyer only once paid: the sale is not taken (channel-paid.lua) and the money goes back.
    await waitFor('the money back', async () => ((await followUpCount(app.context)) === 0 ? true : undefined));
    expect(payerBalance(p)).toBe(before);
    expect(await entriesOf(p, res.transactionId)).toEqual([]);
  });

  it('a card reported lost while its payment waits for the payer: the sale is not taken when the channel says paid; the money goes back', async () => {
    const p = await payer(channel);
    const before = payerBalance(p);
    const code = codeOf(p);
    // Paid only after 20 looks (at least 20 poll intervals): the loss report comes long before.
    const steps = [...Array.from({ length: 20 }, () => 'paying' as const), 'paid' as const];
    if (channel === 'wechat') sims.wechat.script(code, steps);
    else sims.alipay.script(code, steps);
    const sequence = nextSequence++;
    const res = await authorize(sequence, code, 450);
    expect(res.outcome).toBe(Outcome.OUTCOME_PENDING);
    await app.ledger.setStatus(p.cardNo, 'lost');
    await waitFor('the payment decided', async () => ((await followUpCount(app.context)) === 0 ? true : undefined));
    const decided = await call<{ terminalId: string; sequenceNumber: number; transactionId: string }, AuthorizeResponse>(
      client,
      'queryTransaction',
      { terminalId: POS_TERMINAL.id, sequenceNumber: sequence, transactionId: '' },
      meta,
    );
    expect(decided).toMatchObject({ outcome: Outcome.OUTCOME_DECLINED, declineReason: DeclineReason.DECLINE_REASON_CARD_LOST });
    expect(payerBalance(p)).toBe(before);
    expect(await entriesOf(p, res.transactionId)).toEqual([]);
  });

  it('an unbound e-card is no reason: the channel binding is what pays', async () => {
    const p = await payer(channel);
    expect(await app.redis.hget(app.keys.account(p.cardNo), 'eu')).toBeNull();
    await paid(p, 100);
  });
});

describe('live events of code payments on the WebSocket', () => {
  /** Opens the events socket of a bound e-card and collects its messages. */
  async function socket(token: string): Promise<{ ws: WebSocket; next: (type: string) => Promise<Record<string, unknown>> }> {
    const ws = new WebSocket(`ws://127.0.0.1:${app.gateway?.port}/api/v1/events`, ['cardswitch.events.v1', `bearer.${token}`]);
    const messages: Record<string, unknown>[] = [];
    let seen = 0;
    ws.on('message', (data) => messages.push(JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const next = (type: string): Promise<Record<string, unknown>> =>
      waitFor(`a ${type} event`, () => {
        const index = messages.findIndex((m, i) => i >= seen && m['type'] === type);
        if (index < 0) return Promise.resolve(undefined);
        seen = index + 1;
        return Promise.resolve(messages[index]);
      });
    await next('hello');
    return { ws, next };
  }

  it.each(['wechat', 'alipay'] as const)('%s: approved, refunded, reversed and declined payments reach the holder', async (channel) => {
    const p = await payer(channel, { eu: `wecom:u-ev-${channel}`, sync: '1' });
    const sessions = app.gateway?.sessions;
    if (sessions === undefined) throw new Error('no gateway');
    const { accessToken } = await sessions.start({ provider: 'wecom', userId: `wecom:u-ev-${channel}` }, p.cardNo);
    const { ws, next } = await socket(accessToken);
    try {
      const { sequence } = await paid(p, 321);
      expect(await next('payment')).toMatchObject({ approved: true, amountFen: 321, credential: channel, merchantId: 'CANTEEN1' });
      await refund(p, sequence, 21);
      expect(await next('refund')).toMatchObject({ amountFen: 21, credential: channel, merchantId: 'CANTEEN1' });

      const reversedSeq = nextSequence++;
      const code = codeOf(p);
      expect((await authorize(reversedSeq, code, 55)).outcome).toBe(Outcome.OUTCOME_APPROVED);
      expect(await next('payment')).toMatchObject({ approved: true, amountFen: 55 });
      await reverse(reversedSeq, code, 55);
      expect(await next('reversal')).toMatchObject({ amountFen: 55, credential: channel });

      await app.ledger.setStatus(p.cardNo, 'frozen');
      expect((await authorize(nextSequence++, codeOf(p), 66)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_FROZEN);
      expect(await next('payment')).toMatchObject({ approved: false, declineReason: 'CARD_FROZEN', amountFen: 66, credential: channel });
      await app.ledger.setStatus(p.cardNo, 'active');
      await waitFor('the follow-up', async () => ((await followUpCount(app.context)) === 0 ? true : undefined));
      if (channel === 'wechat') {
        // WeChat names the payer before charging, so even a payment that times out reaches the holder.
        const code = sims.wechat.newCode(p.payerId);
        sims.wechat.script(code, ['paying']);
        expect((await authorize(nextSequence++, code, 77)).outcome).toBe(Outcome.OUTCOME_PENDING);
        expect(await next('payment')).toMatchObject({
          approved: false,
          declineReason: 'CHANNEL_TIMEOUT',
          amountFen: 77,
          credential: channel,
        });
      }
    } finally {
      ws.close();
    }
  });
});
