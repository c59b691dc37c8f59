// A card payment's request record is one string written with its expiry in one command (issue 15);
// reversals and refunds turn it into the hash they write to, keeping its expiry; every reader takes
// either form, and a request of another kind under a payment's key is refused, never an internal error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { auditLedger } from '../switch/ledger/audit.js';
import { readChannelRefund } from '../switch/ledger/channel-payments.js';
import { Keys } from '../switch/ledger/keys.js';
import { Ledger, type AuthorizeInput } from '../switch/ledger/ledger.js';
import { MoneyLedger } from '../switch/ledger/money.js';
import { COMPACT_REQUEST_FIELDS, parseCompactRequest, readRequestFields } from '../switch/ledger/request-records.js';
import { Scripts } from '../switch/ledger/scripts.js';
import { connect, freshPrefix } from './helpers/redis.js';

const TTL_SEC = 3600;
const LIMITS = { noPinPerPaymentFen: 100_000, noPinPerDayFen: 1_000_000, dailySpendLimitFen: 0 };

let redis: Redis;
let keys: Keys;
let ledger: Ledger;
let money: MoneyLedger;
let scripts: Scripts;
let nextCard = 1;

beforeAll(async () => {
  redis = connect();
  keys = new Keys(freshPrefix('reqrec'), 16);
  scripts = await Scripts.load(redis);
  ledger = new Ledger(keys, scripts, TTL_SEC);
  money = new MoneyLedger(keys, scripts, TTL_SEC);
});
afterAll(() => redis.quit());

async function newCard(openingFen = 10_000): Promise<string> {
  const cardNo = `R${nextCard++}`;
  await ledger.openAccount({ cardNo, openingFen, fields: { ser: `S-${cardNo}` } });
  return cardNo;
}

function payment(cardNo: string, sequence: number, amountFen: number, merchantId = 'M1'): AuthorizeInput {
  return {
    cardNo,
    presentedSerial: `S-${cardNo}`,
    amountFen,
    credentialKind: 'card',
    terminalId: 'T1',
    sequence,
    merchantId,
    pinVerified: false,
    limits: { student: LIMITS, staff: LIMITS },
  };
}

const balance = async (cardNo: string) => Number(await redis.hget(keys.account(cardNo), 'bal'));

describe("a card payment's request record", () => {
  it('is one string with its expiry, read back field by field, and a retry replays it byte for byte', async () => {
    const cardNo = await newCard();
    const first = await ledger.authorize(payment(cardNo, 1, 1_250));
    expect(first.code).toBe('approved');
    const key = keys.request(cardNo, 'T1', 1);
    expect(await redis.type(key)).toBe('string');
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(TTL_SEC - 5);
    expect(ttl).toBeLessThanOrEqual(TTL_SEC);
    const record = parseCompactRequest((await redis.get(key)) ?? '');
    expect(record).toEqual({
      pfp: `pay|${cardNo}|1250|card`,
      pst: 'A',
      amt: '1250',
      mp: 'm:M1',
      card: cardNo,
      pans: `1|8750|${first.transactionId}|${first.decidedAtMs}`,
    });
    expect(await readRequestFields(redis, key, ['pst', 'amt', 'refd', 'rfp'])).toEqual(['A', '1250', null, null]);
    expect(await ledger.authorize(payment(cardNo, 1, 1_250))).toEqual(first);
    expect(await ledger.decidedPayment(payment(cardNo, 1, 1_250))).toEqual(first);
    // The same key for another amount is another request: refused, nothing moves.
    await expect(ledger.authorize(payment(cardNo, 1, 999))).rejects.toThrow(/already used for a different request|sequence/);
    expect(await balance(cardNo)).toBe(8_750);
  });

  it('a decline is compact too, and replays', async () => {
    const cardNo = await newCard(100);
    const declined = await ledger.authorize(payment(cardNo, 1, 5_000));
    expect(declined.code).toBe('insufficient_funds');
    const key = keys.request(cardNo, 'T1', 1);
    expect(parseCompactRequest((await redis.get(key)) ?? '')?.['pst']).toBe('D');
    expect(await ledger.authorize(payment(cardNo, 1, 5_000))).toEqual(declined);
  });

  it('a reversal turns it into the hash with the same fields (and renews its expiry, as before); both retries replay', async () => {
    const cardNo = await newCard();
    const paid = await ledger.authorize(payment(cardNo, 1, 2_000));
    const key = keys.request(cardNo, 'T1', 1);
    const reversed = await ledger.reverse({ cardNo, amountFen: 2_000, terminalId: 'T1', sequence: 1 });
    expect(reversed.code).toBe('reversed');
    expect(await redis.type(key)).toBe('hash');
    expect(await redis.ttl(key)).toBeGreaterThan(TTL_SEC - 5);
    expect(await redis.hgetall(key)).toMatchObject({
      pfp: `pay|${cardNo}|2000|card`,
      pst: 'R',
      amt: '2000',
      mp: 'm:M1',
      card: cardNo,
      pans: `1|8000|${paid.transactionId}|${paid.decidedAtMs}`,
    });
    expect(await balance(cardNo)).toBe(10_000);
    expect(await ledger.reverse({ cardNo, amountFen: 2_000, terminalId: 'T1', sequence: 1 })).toEqual(reversed);
    expect(await ledger.authorize(payment(cardNo, 1, 2_000))).toEqual(paid);
    expect(await balance(cardNo)).toBe(10_000);
  });

  it('a reversal that came first leaves a hash tombstone, and the late payment is recorded into it, not over it', async () => {
    const cardNo = await newCard();
    const tomb = await ledger.reverse({ cardNo, amountFen: 700, terminalId: 'T1', sequence: 1 });
    expect(tomb.code).toBe('tombstoned');
    const late = await ledger.authorize(payment(cardNo, 1, 700));
    expect(late.code).toBe('already_reversed');
    const key = keys.request(cardNo, 'T1', 1);
    expect(await redis.type(key)).toBe('hash');
    expect(await redis.hmget(key, 'rfp', 'pfp', 'pst')).toEqual([expect.stringContaining(cardNo), `pay|${cardNo}|700|card`, 'D']);
    expect(await ledger.reverse({ cardNo, amountFen: 700, terminalId: 'T1', sequence: 1 })).toEqual(tomb);
    expect(await balance(cardNo)).toBe(10_000);
  });

  it('a refund reads it, then writes its refunded sum into the hash it becomes; a refusal leaves it compact', async () => {
    const cardNo = await newCard();
    await ledger.authorize(payment(cardNo, 1, 3_000));
    const key = keys.request(cardNo, 'T1', 1);
    const refund = (sequence: number, amountFen: number, merchantId = 'M1') =>
      money.refund({ cardNo, amountFen, terminalId: 'T9', sequence, merchantId, originalTerminalId: 'T1', originalSequence: 1 });
    expect((await refund(1, 1_000, 'M2')).code).toBe('other_merchant');
    expect((await refund(2, 5_000)).code).toBe('over_refundable');
    expect(await redis.type(key)).toBe('string');
    await redis.expire(key, 1_000); // a record some time into its life: the refund keeps its expiry
    const done = await refund(3, 1_000);
    expect(done).toMatchObject({ code: 'refunded', refundableLeftFen: 2_000, balanceAfterFen: 8_000 });
    expect(await redis.type(key)).toBe('hash');
    expect(await redis.hmget(key, 'pst', 'refd')).toEqual(['A', '1000']);
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(990);
    expect(ttl).toBeLessThanOrEqual(1_000);
    expect((await refund(4, 2_000)).refundableLeftFen).toBe(0);
    expect(await balance(cardNo)).toBe(10_000);
  });

  it("another kind of request under a payment's key is refused as a reused key, not an internal error", async () => {
    const cardNo = await newCard();
    await ledger.authorize(payment(cardNo, 1, 1_000));
    await ledger.authorize(payment(cardNo, 2, 500));
    // A refund whose own (terminal, sequence) is an earlier payment's.
    await expect(
      money.refund({
        cardNo,
        amountFen: 100,
        terminalId: 'T1',
        sequence: 2,
        merchantId: 'M1',
        originalTerminalId: 'T1',
        originalSequence: 1,
      }),
    ).rejects.toThrow(/different request|sequence number/);
    // The channel-refund reader finds no channel refund there.
    expect(await readChannelRefund({ keys, scripts }, cardNo, 'T1', 2)).toBeUndefined();
    expect(await redis.type(keys.request(cardNo, 'T1', 2))).toBe('string');
    expect(await balance(cardNo)).toBe(8_500);
  });

  it('300 payments, reversals and refunds of one request at once: every answer agrees and no fen is made or lost', async () => {
    const cardNo = await newCard();
    const calls = Array.from({ length: 300 }, (_, i) => {
      if (i % 3 === 0) return ledger.authorize(payment(cardNo, 1, 2_000)).then((r) => `pay:${r.code}:${r.transactionId}`);
      if (i % 3 === 1) return ledger.reverse({ cardNo, amountFen: 2_000, terminalId: 'T1', sequence: 1 }).then((r) => `rev:${r.code}`);
      return money
        .refund({
          cardNo,
          amountFen: 500,
          terminalId: 'T9',
          sequence: 1_000 + i,
          merchantId: 'M1',
          originalTerminalId: 'T1',
          originalSequence: 1,
        })
        .then((r) => `ref:${r.code}`);
    });
    const answers = await Promise.all(calls);
    // Every payment answer is the same one (the first decided it), and every reversal answer too.
    expect(new Set(answers.filter((a) => a.startsWith('pay:'))).size).toBe(1);
    expect(new Set(answers.filter((a) => a.startsWith('rev:'))).size).toBe(1);
    const refunded = answers.filter((a) => a === 'ref:refunded').length;
    const paid = answers.find((a) => a.startsWith('pay:'))?.split(':')[1];
    const reversed = answers.find((a) => a.startsWith('rev:'))?.split(':')[1];
    // Paid then reversed: the reversal gives back what refunds left; reversed first: nothing was paid.
    if (paid === 'approved') expect(['reversed', 'nothing_to_reverse']).toContain(reversed);
    else expect([paid, reversed]).toEqual(['already_reversed', 'tombstoned']);
    expect(refunded * 500).toBeLessThanOrEqual(2_000);
    expect(await balance(cardNo)).toBe(10_000);
    const report = await auditLedger(redis, keys);
    expect(report.ok, JSON.stringify(report).slice(0, 500)).toBe(true);
  });

  it('a value holding a newline keeps the hash form, and still replays', async () => {
    const cardNo = await newCard();
    const odd = payment(cardNo, 1, 300, 'M\n1');
    const first = await ledger.authorize(odd);
    expect(first.code).toBe('approved');
    const key = keys.request(cardNo, 'T1', 1);
    expect(await redis.type(key)).toBe('hash');
    expect(await redis.hget(key, 'mp')).toBe('m:M\n1');
    expect(await ledger.authorize(odd)).toEqual(first);
  });

  it('parseCompactRequest takes the answer whole (it is last) and refuses text with fewer than six values', () => {
    expect(COMPACT_REQUEST_FIELDS).toEqual(['pfp', 'pst', 'amt', 'mp', 'card', 'pans']);
    expect(parseCompactRequest('a\nb\nc\nd\ne\nf|g\nh')?.['pans']).toBe('f|g\nh');
    expect(parseCompactRequest('a\nb\nc\nd\ne')).toBeUndefined();
  });
});
