// PosService/Refund against a real switch and Redis: a merchant gives back all or part of an approved
// payment, never more than is left of it, only from its own terminals, once per refund key; every
// refusal changes nothing.
import { status as Status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import { RefundRequest, RefundResponse, type AuthorizeResponse, type ReverseResponse } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { COMPACT_REQUEST_FIELDS, readRequestFields } from '../switch/ledger/request-records.js';
import type { NewTerminal } from '../switch/domain/terminals.js';
import {
  call,
  dumpKeySpace,
  grpcError,
  openCard,
  POS_TERMINAL,
  posClient,
  readJournal,
  startTestSwitch,
  terminalMetadata,
  unaryBytes,
} from './helpers/switch.js';

/** Another till of the payment's merchant. */
const SAME_MERCHANT_TERMINAL: NewTerminal = { ...POS_TERMINAL, id: 'POS-T2', location: '第一食堂 二层', secret: 'pos2-secret-0123456789' };
/** A shop: another merchant. */
const OTHER_MERCHANT_TERMINAL: NewTerminal = {
  id: 'SHOP-1',
  kind: 'shop',
  merchantId: 'SHOP1',
  location: '教育超市',
  secret: 'shop-secret-0123456789',
};
const REFUND = '/cardswitch.v1.PosService/Refund';

let app: SwitchApp;
let pos: ReturnType<typeof posClient>;
let cardCounter = 0;
let paySeq = 0;
let refundSeq = 1000;

beforeAll(async () => {
  app = await startTestSwitch('refund');
  for (const t of [POS_TERMINAL, SAME_MERCHANT_TERMINAL, OTHER_MERCHANT_TERMINAL]) await app.terminals.register(t);
  pos = posClient(app);
});
afterAll(async () => {
  pos.close();
  await app.stop();
});

async function newCard(openingFen = 50_000): Promise<{ cardNo: string; serial: string }> {
  cardCounter++;
  const cardNo = String(20250000 + cardCounter);
  const serial = `CD${String(cardCounter).padStart(6, '0')}`;
  await openCard(app, cardNo, serial, openingFen);
  return { cardNo, serial };
}

async function pay(serial: string, amountFen: number): Promise<{ sequence: number; res: AuthorizeResponse }> {
  const sequence = ++paySeq;
  const res = await call<object, AuthorizeResponse>(
    pos,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: sequence, amountFen, credential: { card: { cardSerial: serial } }, pin: '' },
    terminalMetadata(POS_TERMINAL),
  );
  return { sequence, res };
}

function refundRequest(
  cardNo: string,
  originalSequence: number,
  amountFen: number,
  sequenceNumber = ++refundSeq,
  terminal: NewTerminal = SAME_MERCHANT_TERMINAL,
): RefundRequest {
  return {
    terminalId: terminal.id,
    sequenceNumber,
    cardNumber: cardNo,
    originalTerminalId: POS_TERMINAL.id,
    originalSequenceNumber: originalSequence,
    amountFen,
  };
}

async function refund(req: RefundRequest, terminal: NewTerminal = SAME_MERCHANT_TERMINAL): Promise<{ res: RefundResponse; bytes: Buffer }> {
  const bytes = await unaryBytes(pos, REFUND, RefundRequest.encode(req).finish(), terminalMetadata(terminal));
  return { res: RefundResponse.decode(bytes), bytes };
}

async function balance(cardNo: string): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));
}

async function entriesOf(cardNo: string, kind: string) {
  return (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter((e) => e.fields['c'] === cardNo && e.fields['k'] === kind);
}

/** The card's money and the payment's record: a refusal must leave them as they were. */
async function snapshot(cardNo: string, originalSequence: number): Promise<unknown> {
  return {
    balance: await balance(cardNo),
    account: await app.redis.hgetall(app.keys.account(cardNo)),
    journalLength: await app.redis.xlen(app.keys.journalOfCard(cardNo)),
    statement: await app.redis.zcard(app.keys.statement(cardNo)),
    // Compact (a string) until a refund or reversal writes to it: a refusal leaves its form as well.
    paymentForm: await app.redis.type(app.keys.request(cardNo, POS_TERMINAL.id, originalSequence)),
    payment: await readRequestFields(app.redis, app.keys.request(cardNo, POS_TERMINAL.id, originalSequence), [
      ...COMPACT_REQUEST_FIELDS,
      'refd',
      'rfp',
      'rans',
    ]),
  };
}

async function expectRefusal(
  cardNo: string,
  originalSequence: number,
  req: RefundRequest,
  code: Status,
  details?: RegExp,
  terminal = SAME_MERCHANT_TERMINAL,
): Promise<void> {
  const before = await snapshot(cardNo, originalSequence);
  const keySpace = await dumpKeySpace(app.redis, app.keys.prefix);
  const err = await grpcError(refund(req, terminal));
  expect(err.code, err.details).toBe(code);
  if (details !== undefined) expect(err.details).toMatch(details);
  expect(await snapshot(cardNo, originalSequence)).toEqual(before);
  // Not even the refund's sequence claim is left behind.
  expect(await dumpKeySpace(app.redis, app.keys.prefix)).toEqual(keySpace);
  // Nothing recorded under the refund's own key either (unless it is, wrongly, the payment's key).
  if (req.terminalId !== POS_TERMINAL.id || req.sequenceNumber !== originalSequence) {
    expect(await app.redis.exists(app.keys.request(cardNo, req.terminalId, req.sequenceNumber))).toBe(0);
  }
}

describe('refund', () => {
  it('refunds a whole payment from another till of the same merchant; nothing is left to refund after', async () => {
    const card = await newCard(50_000);
    const { sequence } = await pay(card.serial, 3_000);
    const { res } = await refund(refundRequest(card.cardNo, sequence, 3_000));
    expect(res).toMatchObject({ balanceAfterFen: 50_000, refundableLeftFen: 0 });
    expect(res.displayText).toContain('退款成功 30.00元 余额500.00元');
    const entries = await entriesOf(card.cardNo, 'ref');
    expect(entries).toHaveLength(1);
    expect(entries[0]?.id).toBe(res.transactionId);
    expect(entries[0]?.fields).toMatchObject({
      a: '3000',
      f: `m:${POS_TERMINAL.merchantId}`,
      t: `a:${card.cardNo}`,
      b: '50000',
      v: '3',
      tm: SAME_MERCHANT_TERMINAL.id,
    });
    expect(await app.redis.zrange(app.keys.statement(card.cardNo), 0, -1)).toContain(
      `${res.transactionId}|ref|3000|50000|${SAME_MERCHANT_TERMINAL.id}|${refundSeq}`,
    );
    await expectRefusal(
      card.cardNo,
      sequence,
      refundRequest(card.cardNo, sequence, 1),
      Status.FAILED_PRECONDITION,
      /only 0\.00 yuan \(0 fen\)/,
    );
  });

  it('refunds part by part, never beyond the payment, and says how much is still refundable', async () => {
    const card = await newCard(50_000);
    const { sequence } = await pay(card.serial, 5_000);
    const first = await refund(refundRequest(card.cardNo, sequence, 2_000));
    expect(first.res).toMatchObject({ balanceAfterFen: 47_000, refundableLeftFen: 3_000 });
    await expectRefusal(
      card.cardNo,
      sequence,
      refundRequest(card.cardNo, sequence, 3_001),
      Status.FAILED_PRECONDITION,
      /only 30\.00 yuan \(3000 fen\)/,
    );
    const second = await refund(refundRequest(card.cardNo, sequence, 3_000, ++refundSeq, POS_TERMINAL), POS_TERMINAL);
    expect(second.res).toMatchObject({ balanceAfterFen: 50_000, refundableLeftFen: 0 });
    expect(await app.redis.hget(app.keys.request(card.cardNo, POS_TERMINAL.id, sequence), 'refd')).toBe('5000');
    expect((await entriesOf(card.cardNo, 'ref')).map((e) => e.fields['a'])).toEqual(['2000', '3000']);
  });

  it('is idempotent per refund key: a retry replays the first answer byte for byte; the key with other parameters is ALREADY_EXISTS', async () => {
    const card = await newCard(50_000);
    const { sequence } = await pay(card.serial, 4_000);
    const req = refundRequest(card.cardNo, sequence, 1_500);
    const first = await refund(req);
    const afterFirst = await snapshot(card.cardNo, sequence);
    const again = await refund(req);
    expect(again.bytes.equals(first.bytes)).toBe(true);
    expect(await snapshot(card.cardNo, sequence)).toEqual(afterFirst);
    expect(await entriesOf(card.cardNo, 'ref')).toHaveLength(1);

    const before = await snapshot(card.cardNo, sequence);
    const err = await grpcError(refund({ ...req, amountFen: 1_000 }));
    expect(err.code).toBe(Status.ALREADY_EXISTS);
    expect(await snapshot(card.cardNo, sequence)).toEqual(before);
    // The refund's sequence number can not be used for a payment afterwards either.
    const reuse = await grpcError(
      call(
        pos,
        'authorize',
        {
          terminalId: SAME_MERCHANT_TERMINAL.id,
          sequenceNumber: req.sequenceNumber,
          amountFen: 100,
          credential: { card: { cardSerial: card.serial } },
          pin: '',
        },
        terminalMetadata(SAME_MERCHANT_TERMINAL),
      ),
    );
    expect(reuse.code).toBe(Status.ALREADY_EXISTS);
    expect(await snapshot(card.cardNo, sequence)).toEqual(before);
  });

  it("refuses a refund from another merchant's terminal (PERMISSION_DENIED) and changes nothing", async () => {
    const card = await newCard(50_000);
    const { sequence } = await pay(card.serial, 2_000);
    await expectRefusal(
      card.cardNo,
      sequence,
      refundRequest(card.cardNo, sequence, 2_000, ++refundSeq, OTHER_MERCHANT_TERMINAL),
      Status.PERMISSION_DENIED,
      /another merchant/,
      OTHER_MERCHANT_TERMINAL,
    );
    // The request must name the calling terminal.
    await expectRefusal(
      card.cardNo,
      sequence,
      refundRequest(card.cardNo, sequence, 2_000, ++refundSeq, POS_TERMINAL),
      Status.PERMISSION_DENIED,
      undefined,
      SAME_MERCHANT_TERMINAL,
    );
  });

  it('answers NOT_FOUND for an unknown payment, a payment of another card, an unknown card', async () => {
    const card = await newCard(50_000);
    const other = await newCard(50_000);
    const { sequence } = await pay(card.serial, 2_000);
    await expectRefusal(card.cardNo, 999_999, refundRequest(card.cardNo, 999_999, 100), Status.NOT_FOUND, /not found/);
    await expectRefusal(other.cardNo, sequence, refundRequest(other.cardNo, sequence, 100), Status.NOT_FOUND);
    await expectRefusal(
      card.cardNo,
      sequence,
      { ...refundRequest(card.cardNo, sequence, 100), originalTerminalId: 'POS-NOPE' },
      Status.NOT_FOUND,
    );
    await expectRefusal(card.cardNo, sequence, refundRequest('99999997', sequence, 100), Status.NOT_FOUND);
  });

  it('a refund refused for a wrong card number leaves its sequence number free: the corrected refund under it goes through', async () => {
    const card = await newCard(50_000);
    const other = await newCard(50_000);
    const { sequence } = await pay(card.serial, 2_000);
    const sequenceNumber = ++refundSeq;
    // The cashier typed another card's number: refused, and nothing is left (expectRefusal compares the key space).
    await expectRefusal(other.cardNo, sequence, refundRequest(other.cardNo, sequence, 2_000, sequenceNumber), Status.NOT_FOUND, /was not/);
    const fixed = await refund(refundRequest(card.cardNo, sequence, 2_000, sequenceNumber));
    expect(fixed.res.balanceAfterFen).toBe(50_000);
    expect(fixed.res.refundableLeftFen).toBe(0);
    expect(fixed.res.transactionId).not.toBe('');
    expect(await balance(other.cardNo)).toBe(50_000);
    // The number is the corrected refund's now: the wrong card cannot have it any more.
    expect((await grpcError(refund(refundRequest(other.cardNo, sequence, 2_000, sequenceNumber)))).code).toBe(Status.ALREADY_EXISTS);
  });

  it('refuses to refund a reversed or a declined payment (FAILED_PRECONDITION)', async () => {
    const card = await newCard(5_000);
    const { sequence } = await pay(card.serial, 2_000);
    const reversed = await call<object, ReverseResponse>(
      pos,
      'reverse',
      {
        terminalId: POS_TERMINAL.id,
        originalSequenceNumber: sequence,
        amountFen: 2_000,
        credential: { card: { cardSerial: card.serial } },
      },
      terminalMetadata(POS_TERMINAL),
    );
    expect(reversed.balanceAfterFen).toBe(5_000);
    await expectRefusal(card.cardNo, sequence, refundRequest(card.cardNo, sequence, 2_000), Status.FAILED_PRECONDITION, /reversed/);
    const declined = await pay(card.serial, 9_000);
    expect(declined.res.outcome).toBe(Outcome.OUTCOME_DECLINED);
    await expectRefusal(
      card.cardNo,
      declined.sequence,
      refundRequest(card.cardNo, declined.sequence, 100),
      Status.FAILED_PRECONDITION,
      /declined/,
    );
  });

  it("refunds to a lost card (the money is the cardholder's) but not to a cancelled one", async () => {
    const card = await newCard(10_000);
    const { sequence } = await pay(card.serial, 2_000);
    await app.ledger.setStatus(card.cardNo, 'lost');
    expect((await refund(refundRequest(card.cardNo, sequence, 500))).res.balanceAfterFen).toBe(8_500);
    await app.ledger.setStatus(card.cardNo, 'cancelled');
    await expectRefusal(card.cardNo, sequence, refundRequest(card.cardNo, sequence, 500), Status.FAILED_PRECONDITION, /cancelled/);
  });

  it('refuses malformed requests with INVALID_ARGUMENT', async () => {
    const card = await newCard(10_000);
    const { sequence } = await pay(card.serial, 2_000);
    await expectRefusal(card.cardNo, sequence, refundRequest(card.cardNo, sequence, 0), Status.INVALID_ARGUMENT);
    await expectRefusal(card.cardNo, sequence, refundRequest(card.cardNo, sequence, 100, 0), Status.INVALID_ARGUMENT);
    await expectRefusal(card.cardNo, sequence, refundRequest(card.cardNo, 0, 100), Status.INVALID_ARGUMENT);
    await expectRefusal(
      card.cardNo,
      sequence,
      { ...refundRequest(card.cardNo, sequence, 100), cardNumber: 'abc' },
      Status.INVALID_ARGUMENT,
    );
    await expectRefusal(
      card.cardNo,
      sequence,
      { ...refundRequest(card.cardNo, sequence, 100), originalTerminalId: '' },
      Status.INVALID_ARGUMENT,
    );
    // A refund needs its own sequence number, not the payment's.
    await expectRefusal(
      card.cardNo,
      sequence,
      refundRequest(card.cardNo, sequence, 100, sequence, POS_TERMINAL),
      Status.INVALID_ARGUMENT,
      undefined,
      POS_TERMINAL,
    );
  });

  // Needs reverse.lua to give back only what is not refunded yet (`amt - refd`); runs once it does.
  it('a reversal after a partial refund gives back only what was not refunded', async () => {
    const card = await newCard(10_000);
    const { sequence } = await pay(card.serial, 4_000);
    await refund(refundRequest(card.cardNo, sequence, 1_500));
    const reversed = await call<object, ReverseResponse>(
      pos,
      'reverse',
      {
        terminalId: POS_TERMINAL.id,
        originalSequenceNumber: sequence,
        amountFen: 4_000,
        credential: { card: { cardSerial: card.serial } },
      },
      terminalMetadata(POS_TERMINAL),
    );
    expect(reversed.balanceAfterFen).toBe(10_000);
    expect((await entriesOf(card.cardNo, 'rev')).map((e) => e.fields['a'])).toEqual(['2500']);
    await expectRefusal(card.cardNo, sequence, refundRequest(card.cardNo, sequence, 100), Status.FAILED_PRECONDITION, /reversed/);
  });
});

describe('the whole ledger', () => {
  it('audits to the fen after all the refunds and their refusals above (every balance is its journal, money is conserved)', async () => {
    const report = await auditLedger(app.redis, app.keys);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.heldFen).toBe(report.netInflowFen);
  });
});
