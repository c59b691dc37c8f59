// A code payment reversed while the switch's own charge is still on its way to the channel: WeChat answers
// the reverse of an order it has not seen yet with ORDERNOTEXIST ("nothing taken"), the switch marks the
// undo done, and then the micropay arrives and takes the payer's money. The charge's paid answer finds the
// sale reversed: it must journal the sale and its reversal (net 0) AND give the money back, not leave the
// payer debited with nothing to show (found by the bench's ledger check, loadtest/RESULTS.md). Real switch,
// real Redis, the WeChat simulator over loopback; the audit passes.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { bindChannelPayer } from '../switch/domain/channel-payers.js';
import { ChannelPayments, outTradeNoOf } from '../switch/domain/channel-payment.js';
import { auditLedger } from '../switch/ledger/audit.js';
import {
  beginChannelPayment,
  followUpCount,
  journalChannelPayment,
  readChannelPayment,
  recordPayerCard,
} from '../switch/ledger/channel-payments.js';
import { createLogger } from '../switch/log.js';
import { openCard, POS_TERMINAL, readJournal, testConfig } from './helpers/switch.js';

const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
let sims: ChannelSimulators;
let app: SwitchApp;

beforeAll(async () => {
  sims = await startChannelSimulators({ log, notifyBaseUrl: '', latencyMs: 0 });
  // The switch's own follow-up stays out of the way: this test drives every step.
  app = await startSwitch(testConfig('chlate', { CHANNEL_POLL_INTERVAL_MS: '60000' }), log, Date.now, { channels: sims.channels });
  await app.terminals.register(POS_TERMINAL);
});

afterAll(async () => {
  await app?.stop();
  await sims?.stop();
});

/**
 * A card with a bound WeChat payer, and a code payment of it begun (recorded before the channel is asked), as
 * Authorize does: at `startedAtMs`, with the fingerprint Authorize gives `code` when there is one.
 */
async function begunPayment(n: number, sequence: number, amountFen: number, options: { code?: string; startedAtMs?: number } = {}) {
  const cardNo = `6800000${n}`;
  await openCard(app, cardNo, `LP${cardNo}`, 10_000);
  const payerId = `oWX-late-${n}`;
  sims.wechat.setBalance(payerId, 50_000);
  await bindChannelPayer(app.context, cardNo, 'wechat', payerId);
  const terminal = await app.terminals.get(POS_TERMINAL.id);
  if (terminal === undefined) throw new Error('the test terminal is not registered');
  const outTradeNo = outTradeNoOf(app.context, terminal.id, sequence);
  const nowMs = options.startedAtMs ?? Date.now();
  const codeHash = options.code === undefined ? `late${n}` : createHash('sha256').update(options.code).digest('hex').slice(0, 16);
  const begun = await beginChannelPayment(app.context, {
    terminalId: terminal.id,
    sequence,
    fingerprint: `cp|wechat|${codeHash}|${amountFen}`,
    channel: 'wechat',
    outTradeNo,
    amountFen,
    merchantParty: `m:${terminal.merchantId}`,
    nowMs,
    deadlineMs: nowMs + 45_000,
    ttlSec: 3600,
  });
  expect(begun).toBe('begun');
  const record = await readChannelPayment(app.context, terminal.id, sequence);
  if (record === undefined) throw new Error('no record after begin');
  return { cardNo, payerId, terminal, outTradeNo, record, payments: new ChannelPayments(app.context) };
}

it('a WeChat payment that reaches the channel after its reverse said ORDERNOTEXIST goes back to the payer', async () => {
  const sequence = 41;
  const amountFen = 1250;
  // 1. The payment is begun, as Authorize does.
  const { cardNo, payerId, terminal, outTradeNo, record, payments } = await begunPayment(1, sequence, amountFen);

  // 2. The POS reverses it before the micropay reached WeChat: the reverse finds no order (ORDERNOTEXIST),
  //    which reads as "nothing taken": the record is reversed and needs no more undoing.
  const reversed = await payments.reverse(terminal, sequence, amountFen);
  expect(reversed.code).toBe('reversed');
  expect(await readChannelPayment(app.context, terminal.id, sequence)).toMatchObject({ state: 'R', undo: false });
  const before = sims.wechat.balanceOf(payerId);

  // 3. The switch's micropay arrives now and takes the money; its answer reaches the charge.
  const code = sims.wechat.newCode(payerId);
  const paid = await sims.channels
    .get('wechat')!
    .payWithCode({ outTradeNo, authCode: code, amountFen, subject: 'late', terminalId: terminal.id }, AbortSignal.timeout(5000));
  expect(paid.status).toBe('paid');
  expect(sims.wechat.balanceOf(payerId)).toBe(before - amountFen);
  await payments.settle(record, paid);

  // The sale and its reversal are journalled (net 0), and the money is back with the payer.
  const kinds = (await readJournal(app.redis, app.keys.journalOfCard(cardNo)))
    .filter((e) => e.fields['ot'] === outTradeNo)
    .map((e) => e.fields['k']);
  expect(kinds).toEqual(['cpay', 'cprev']);
  expect(sims.wechat.balanceOf(payerId)).toBe(before);
  expect(await readChannelPayment(app.context, terminal.id, sequence)).toMatchObject({ state: 'R', undo: false });
  expect(await followUpCount(app.context)).toBe(0);
  expect(Number(await app.redis.hget(app.keys.account(cardNo), 'bal'))).toBe(10_000);
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
});

it("the same when the late payment's answer is lost: the charge's unknown answer puts it back to be undone", async () => {
  const sequence = 42;
  const amountFen = 990;
  const { cardNo, payerId, terminal, outTradeNo, record, payments } = await begunPayment(2, sequence, amountFen);
  expect((await payments.reverse(terminal, sequence, amountFen)).code).toBe('reversed');
  expect(await followUpCount(app.context)).toBe(0);
  const before = sims.wechat.balanceOf(payerId);
  // The micropay lands and takes the money; the switch never hears back (its call timed out).
  const code = sims.wechat.newCode(payerId);
  const landed = await sims.channels
    .get('wechat')!
    .payWithCode({ outTradeNo, authCode: code, amountFen, subject: 'lost', terminalId: terminal.id }, AbortSignal.timeout(5000));
  expect(landed.status).toBe('paid');
  expect(await payments.settle(record, { status: 'unknown', message: 'no answer within 10000 ms' })).toEqual({ done: false });
  expect(await readChannelPayment(app.context, terminal.id, sequence)).toMatchObject({ state: 'R', undo: true });
  expect(await followUpCount(app.context)).toBe(1);
  // The follow-up's look: it cancels at WeChat, which now has the paid order, and the money goes back.
  await payments.followUp(terminal.id, sequence);
  expect(sims.wechat.balanceOf(payerId)).toBe(before);
  expect(await readChannelPayment(app.context, terminal.id, sequence)).toMatchObject({ state: 'R', undo: false });
  expect(await followUpCount(app.context)).toBe(0);
  expect((await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter((e) => e.fields['ot'] === outTradeNo)).toEqual([]);
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
});

/**
 * The sale of a begun payment journalled as the charge's paid answer does it (channel-paid.lua 'pay'), and
 * then the switch dies before the record says paid: the record is left undecided with its sale journalled.
 */
async function journalledThenCrashed(n: number, sequence: number, amountFen: number, startedAtMs: number, cardOnRecord: boolean) {
  const payerId = `oWX-late-${n}`;
  const code = sims.wechat.newCode(payerId);
  const begun = await begunPayment(n, sequence, amountFen, { code, startedAtMs });
  // WeChat names the payer before charging; the charge records the card then (charge() in channel-payment.ts).
  if (cardOnRecord) await recordPayerCard(app.context, begun.terminal.id, sequence, begun.cardNo);
  const before = sims.wechat.balanceOf(payerId);
  const paid = await sims.channels
    .get('wechat')!
    .payWithCode(
      { outTradeNo: begun.outTradeNo, authCode: code, amountFen, subject: 'crash', terminalId: begun.terminal.id },
      AbortSignal.timeout(5000),
    );
  if (paid.status !== 'paid') throw new Error(`the simulator answered ${paid.status}`);
  const journalled = await journalChannelPayment(app.context, 'pay', {
    cardNo: begun.cardNo,
    channel: 'wechat',
    outTradeNo: begun.outTradeNo,
    channelTxnId: paid.channelTxnId,
    amountFen,
    merchantParty: begun.record.merchantParty,
    terminalId: begun.terminal.id,
    sequence,
    nowMs: startedAtMs + 1000,
    ttlSec: 3600,
    payerId,
  });
  expect(journalled.code).toBe('journalled');
  expect(await readChannelPayment(app.context, begun.terminal.id, sequence)).toMatchObject({ state: 'P' });
  expect(sims.wechat.balanceOf(payerId)).toBe(before - amountFen);
  return { ...begun, code, before, kinds: () => kindsOf(begun.cardNo, begun.outTradeNo) };
}

/** Whether this payment is on the follow-up index (a POS retry of a decided payment puts it there until the loop's next look). */
async function followedUp(terminalId: string, sequence: number): Promise<boolean> {
  return (await app.redis.zscore(app.keys.channelPaymentsPending(), `${terminalId}|${sequence}`)) !== null;
}

async function kindsOf(cardNo: string, outTradeNo: string): Promise<(string | undefined)[]> {
  return (await readJournal(app.redis, app.keys.journalOfCard(cardNo)))
    .filter((e) => e.fields['ot'] === outTradeNo)
    .map((e) => e.fields['k']);
}

it.each([
  ['the card on the record (WeChat names the payer first)', true],
  ['no card on the record (a record written before the card was)', false],
])(
  'a sale journalled before a crash, looked at again after the budget: it stands as paid, and the POS retry is approved (%s)',
  async (_what, cardOnRecord) => {
    const n = cardOnRecord ? 3 : 4;
    const sequence = 43 + n;
    const amountFen = 1500;
    // The switch was down for a minute: the payment's 45 s budget is spent when it comes back.
    const startedAtMs = Date.now() - 60_000;
    const { terminal, payerId, code, before, kinds, payments } = await journalledThenCrashed(
      n,
      sequence,
      amountFen,
      startedAtMs,
      cardOnRecord,
    );

    // The restarted switch's follow-up finds the record undecided past its deadline.
    await payments.followUp(terminal.id, sequence);

    // The journalled sale is proof the channel said paid: the payment is finished paid, not given back.
    expect(await readChannelPayment(app.context, terminal.id, sequence)).toMatchObject({ state: 'S', undo: false });
    expect(sims.wechat.balanceOf(payerId)).toBe(before - amountFen);
    expect(await kinds()).toEqual(['cpay']);
    expect(await followedUp(terminal.id, sequence)).toBe(false);
    // The POS asks again with the same sequence number and code: approved, charged once.
    const retry = await payments.pay(terminal, { sequence, amountFen, code });
    expect(retry.code).toBe('approved');
    expect(sims.wechat.balanceOf(payerId)).toBe(before - amountFen);
    const report = await auditLedger(app.redis, app.keys);
    expect(report.problems).toEqual([]);
  },
);

it('a sale journalled before a crash and then reversed by the POS: the give-back journals its reversal too', async () => {
  const sequence = 51;
  const amountFen = 700;
  const { terminal, payerId, before, kinds, payments } = await journalledThenCrashed(5, sequence, amountFen, Date.now(), true);

  // The POS reverses the payment it was never told about (the record is still undecided).
  expect((await payments.reverse(terminal, sequence, amountFen)).code).toBe('reversed');

  // The payer has the money back, and the journal holds the sale and its reversal: never a lone cpay.
  expect(sims.wechat.balanceOf(payerId)).toBe(before);
  expect(await kinds()).toEqual(['cpay', 'cprev']);
  expect(await readChannelPayment(app.context, terminal.id, sequence)).toMatchObject({ state: 'R', undo: false });
  expect(await followedUp(terminal.id, sequence)).toBe(false);
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
});
