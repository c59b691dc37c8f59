// A reversal undoes its payment, the day's spending included: a payment of today that is reversed no
// longer counts against the card's daily spending cap; the password-free total keeps it (the payment's
// record does not say whether the password was given, and a limit may never check less than it asks);
// a payment of an earlier campus day changes no total of today. Real switch and Redis.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import { ReverseResult, type AuthorizeResponse, type ReverseResponse } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import { passwordHash, startClockedSwitch, TestClock } from './helpers/clients.js';
import { call, openCard, POS_TERMINAL, posClient, terminalMetadata } from './helpers/switch.js';

const PIN = '135790';
// 2026-11-26 10:00 in campus time (UTC+8).
const START_MS = Date.UTC(2026, 10, 26, 2, 0, 0);

let app: SwitchApp;
let clock: TestClock;
let pos: ReturnType<typeof posClient>;
let seq = 0;
const md = terminalMetadata(POS_TERMINAL);

beforeAll(async () => {
  clock = new TestClock(START_MS);
  app = await startClockedSwitch('revlimits', clock, {
    STUDENT_NO_PIN_PER_PAYMENT_FEN: '5000',
    STUDENT_NO_PIN_PER_DAY_FEN: '8000',
    STUDENT_DAILY_SPEND_LIMIT_FEN: '20000',
  });
  await app.terminals.register(POS_TERMINAL);
  pos = posClient(app);
});
afterAll(async () => {
  pos.close();
  await app.stop();
});

async function newCard(cardNo: string, openingFen: number): Promise<string> {
  const serial = `BE00${cardNo}`;
  await openCard(app, cardNo, serial, openingFen, { pwd: await passwordHash(app, PIN) });
  return serial;
}

function pay(serial: string, amountFen: number, pin = '', sequenceNumber = ++seq): Promise<AuthorizeResponse> {
  return call(
    pos,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber, amountFen, credential: { card: { cardSerial: serial } }, pin },
    md,
  );
}

function reverse(serial: string, amountFen: number, originalSequenceNumber: number): Promise<ReverseResponse> {
  return call(
    pos,
    'reverse',
    { terminalId: POS_TERMINAL.id, originalSequenceNumber, amountFen, credential: { card: { cardSerial: serial } } },
    md,
  );
}

const day = async (cardNo: string): Promise<string | null> => app.redis.hget(app.keys.account(cardNo), 'day');

it("a payment of today that is reversed no longer counts against the day's spending cap", async () => {
  const serial = await newCard('3001', 100_000);
  const first = ++seq;
  expect((await pay(serial, 20_000, PIN, first)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  expect((await pay(serial, 1000, PIN)).declineReason).toBe(DeclineReason.DECLINE_REASON_DAILY_LIMIT_EXCEEDED);
  expect((await reverse(serial, 20_000, first)).result).toBe(ReverseResult.REVERSE_RESULT_REVERSED);
  expect(await day('3001')).toBe('20261126,0,0');
  // A retried reversal replays its answer and takes nothing off again.
  expect((await reverse(serial, 20_000, first)).result).toBe(ReverseResult.REVERSE_RESULT_REVERSED);
  expect(await day('3001')).toBe('20261126,0,0');
  expect((await pay(serial, 20_000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  expect((await pay(serial, 1, PIN)).declineReason).toBe(DeclineReason.DECLINE_REASON_DAILY_LIMIT_EXCEEDED);
});

it('the password-free total keeps a reversed payment (never fewer password checks than the limits ask for)', async () => {
  const serial = await newCard('3002', 100_000);
  const first = ++seq;
  expect((await pay(serial, 5000, '', first)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  expect((await reverse(serial, 5000, first)).result).toBe(ReverseResult.REVERSE_RESULT_REVERSED);
  expect(await day('3002')).toBe('20261126,0,5000');
  // 5,000 of 8,000 password-free already counted: 4,000 more asks for the password.
  expect((await pay(serial, 4000)).outcome).toBe(Outcome.OUTCOME_PIN_REQUIRED);
  expect((await pay(serial, 3000)).outcome).toBe(Outcome.OUTCOME_APPROVED);
});

it('a payment of an earlier campus day, reversed today, changes no total of today', async () => {
  const serial = await newCard('3003', 100_000);
  const yesterday = ++seq;
  expect((await pay(serial, 10_000, PIN, yesterday)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  clock.advanceDays(1);
  expect((await pay(serial, 15_000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  expect((await reverse(serial, 10_000, yesterday)).result).toBe(ReverseResult.REVERSE_RESULT_REVERSED);
  expect(await day('3003')).toBe('20261127,15000,0');
  expect((await pay(serial, 5001, PIN)).declineReason).toBe(DeclineReason.DECLINE_REASON_DAILY_LIMIT_EXCEEDED);
});

it("a switch whose clock is behind, paying just before midnight by its clock, does not wipe the new day's spending another switch counted", async () => {
  const serial = await newCard('3004', 100_000);
  // Switch A: 2026-11-30 00:00:00.100 campus time; switch B's clock runs 150 ms behind A's.
  const aMs = Date.UTC(2026, 10, 29, 16, 0, 0, 100);
  clock.nowMs = aMs;
  expect((await pay(serial, 15_000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  expect(await day('3004')).toBe('20261130,15000,0');
  clock.nowMs = aMs - 150; // B: 23:59:59.950 of 11-29 by its clock
  expect((await pay(serial, 5000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  // The account's day never goes back: B's payment is counted with the day the account is on.
  expect(await day('3004')).toBe('20261130,20000,0');
  clock.nowMs = aMs + 100; // A again
  expect((await pay(serial, 1, PIN)).declineReason).toBe(DeclineReason.DECLINE_REASON_DAILY_LIMIT_EXCEEDED);
});

it("a switch whose clock is behind does not lift the new day's password lock another switch counted", async () => {
  const serial = await newCard('3005', 100_000);
  // Switch A: 2026-12-01 00:00:00.100 campus time; switch B's clock runs 150 ms behind A's.
  const aMs = Date.UTC(2026, 10, 30, 16, 0, 0, 100);
  clock.nowMs = aMs;
  for (let left = 4; left >= 1; left--) expect((await pay(serial, 6000, '000000')).pinAttemptsLeft).toBe(left);
  expect((await pay(serial, 6000, '000000')).declineReason).toBe(DeclineReason.DECLINE_REASON_PIN_LOCKED);
  clock.nowMs = aMs - 150; // B: 23:59:59.950 of 11-30 by its clock
  expect((await pay(serial, 6000, '000000')).declineReason).toBe(DeclineReason.DECLINE_REASON_PIN_LOCKED);
  expect((await pay(serial, 6000, PIN)).declineReason).toBe(DeclineReason.DECLINE_REASON_PIN_LOCKED);
  clock.nowMs = aMs + 100; // A again: still locked, no attempt given back
  expect((await pay(serial, 6000, '000000')).declineReason).toBe(DeclineReason.DECLINE_REASON_PIN_LOCKED);
  expect(await app.redis.hmget(app.keys.account('3005'), 'pday', 'pfail')).toEqual(['20261201', '5']);
});
