// A code payment reversed while the switch's own charge is still on its way to the channel: WeChat answers
// the reverse of an order it has not seen yet with ORDERNOTEXIST ("nothing taken"), the switch marks the
// undo done, and then the micropay arrives and takes the payer's money. The charge's paid answer finds the
// sale reversed: it must journal the sale and its reversal (net 0) AND give the money back, not leave the
// payer debited with nothing to show (found by the bench's ledger check, loadtest/RESULTS.md). Real switch,
// real Redis, the WeChat simulator over loopback; the audit passes.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { bindChannelPayer } from '../switch/domain/channel-payers.js';
import { ChannelPayments, outTradeNoOf } from '../switch/domain/channel-payment.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { beginChannelPayment, followUpCount, readChannelPayment } from '../switch/ledger/channel-payments.js';
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

/** A card with a bound WeChat payer, and a code payment of it begun (recorded before the channel is asked), as Authorize does. */
async function begunPayment(n: number, sequence: number, amountFen: number) {
  const cardNo = `6800000${n}`;
  await openCard(app, cardNo, `LP${cardNo}`, 10_000);
  const payerId = `oWX-late-${n}`;
  sims.wechat.setBalance(payerId, 50_000);
  await bindChannelPayer(app.context, cardNo, 'wechat', payerId);
  const terminal = await app.terminals.get(POS_TERMINAL.id);
  if (terminal === undefined) throw new Error('the test terminal is not registered');
  const outTradeNo = outTradeNoOf(app.context, terminal.id, sequence);
  const nowMs = Date.now();
  const begun = await beginChannelPayment(app.context, {
    terminalId: terminal.id,
    sequence,
    fingerprint: `cp|wechat|late${n}|${amountFen}`,
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
