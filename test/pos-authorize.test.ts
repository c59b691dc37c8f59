// PosService Authorize / Reverse / Inquire against a real switch and the real test Redis: money moves
// exactly once, declines and refusals change nothing, retries replay the first answer byte for byte,
// and a dead ledger fails closed. Every test starts its own switch in a fresh key space.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Metadata, status as Status } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CardStatus, DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import {
  AuthorizeRequest,
  AuthorizeResponse,
  InquireRequest,
  InquireResponse,
  ReverseRequest,
  ReverseResponse,
  ReverseResult,
  type PosServiceClient,
} from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import type { NewTerminal } from '../switch/domain/terminals.js';
import { startLocalRedis } from '../switch/redis/local-redis.js';
import {
  dumpKeySpace,
  grpcError,
  openCard,
  POS_TERMINAL,
  posClient,
  readJournal,
  startTestSwitch,
  terminalMetadata,
  type JournalEntry,
  unaryBytes,
} from './helpers/switch.js';

const CARD_NO = '20230001';
const SERIAL = 'AB12CD34';
const OPENING_FEN = 50_000;

const AUTHORIZE = '/cardswitch.v1.PosService/Authorize';
const REVERSE = '/cardswitch.v1.PosService/Reverse';
const INQUIRE = '/cardswitch.v1.PosService/Inquire';

interface Fixture {
  readonly app: SwitchApp;
  readonly client: PosServiceClient;
}

/** A switch in a fresh key space with POS_TERMINAL registered and one card opened; stopped when the test ends. */
async function start(label: string, overrides: Record<string, string> = {}, openingFen = OPENING_FEN): Promise<Fixture> {
  const app = await startTestSwitch(label, overrides);
  onTestFinished(() => app.stop());
  await app.terminals.register(POS_TERMINAL);
  await openCard(app, CARD_NO, SERIAL, openingFen);
  const client = posClient(app);
  onTestFinished(() => client.close());
  return { app, client };
}

function posMetadata(): Metadata {
  return terminalMetadata(POS_TERMINAL);
}

function payment(sequenceNumber: number, amountFen: number, overrides: Partial<AuthorizeRequest> = {}): AuthorizeRequest {
  return { terminalId: POS_TERMINAL.id, sequenceNumber, amountFen, credential: { card: { cardSerial: SERIAL } }, pin: '', ...overrides };
}

function reversal(originalSequenceNumber: number, amountFen: number, serial = SERIAL): ReverseRequest {
  return { terminalId: POS_TERMINAL.id, originalSequenceNumber, amountFen, credential: { card: { cardSerial: serial } } };
}

async function authorize(f: Fixture, req: AuthorizeRequest, metadata = posMetadata()): Promise<{ res: AuthorizeResponse; bytes: Buffer }> {
  const bytes = await unaryBytes(f.client, AUTHORIZE, AuthorizeRequest.encode(req).finish(), metadata);
  return { res: AuthorizeResponse.decode(bytes), bytes };
}

async function reverse(f: Fixture, req: ReverseRequest): Promise<{ res: ReverseResponse; bytes: Buffer }> {
  const bytes = await unaryBytes(f.client, REVERSE, ReverseRequest.encode(req).finish(), posMetadata());
  return { res: ReverseResponse.decode(bytes), bytes };
}

async function inquire(f: Fixture, serial = SERIAL): Promise<InquireResponse> {
  const req: InquireRequest = { terminalId: POS_TERMINAL.id, credential: { card: { cardSerial: serial } } };
  return InquireResponse.decode(await unaryBytes(f.client, INQUIRE, InquireRequest.encode(req).finish(), posMetadata()));
}

async function balanceFen(app: SwitchApp, cardNo = CARD_NO): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));
}

async function journalOf(app: SwitchApp, cardNo = CARD_NO): Promise<JournalEntry[]> {
  return (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter((e) => e.fields['c'] === cardNo);
}

async function payEntries(app: SwitchApp, cardNo = CARD_NO): Promise<JournalEntry[]> {
  return (await journalOf(app, cardNo)).filter((e) => e.fields['k'] === 'pay');
}

/**
 * The money of one card: account hash, its journal entries, its statement. A declined tap may complete the
 * card sync (e-card activation), so the sync flag is left out.
 */
async function moneyState(app: SwitchApp, cardNo = CARD_NO): Promise<unknown> {
  const { sync: _sync, ...account } = await app.redis.hgetall(app.keys.account(cardNo));
  return {
    account,
    journal: await journalOf(app, cardNo),
    journalLength: await app.redis.xlen(app.keys.journalOfCard(cardNo)),
    statement: await app.redis.zrange(app.keys.statement(cardNo), 0, -1, 'WITHSCORES'),
  };
}

/** Two card numbers whose accounts live in different ledger shards, or the same one. */
function cardInShard(app: SwitchApp, sameShardAs: string, same: boolean): string {
  const shard = app.keys.shardOf(sameShardAs);
  for (let n = 20239000; n < 20240000; n++) {
    const cardNo = String(n);
    if (cardNo !== sameShardAs && (app.keys.shardOf(cardNo) === shard) === same) return cardNo;
  }
  throw new Error('no card number found for the shard');
}

describe('approve', () => {
  it('debits exactly the amount, Inquire shows the new balance, one pay journal entry and one statement line', async () => {
    const f = await start('approve');
    const journalBefore = await journalOf(f.app);

    const { res } = await authorize(f, payment(1, 1_234));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_APPROVED,
      declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
      balanceAfterFen: OPENING_FEN - 1_234,
      amountFen: 1_234,
      cardNumber: CARD_NO,
    });
    expect(res.transactionId).not.toBe('');
    expect(res.displayText).toContain('12.34');
    expect(await balanceFen(f.app)).toBe(OPENING_FEN - 1_234);

    const card = await inquire(f);
    expect(card).toMatchObject({
      found: true,
      cardNumber: CARD_NO,
      balanceFen: OPENING_FEN - 1_234,
      status: CardStatus.CARD_STATUS_ACTIVE,
      synced: true,
    });

    const journalAfter = await journalOf(f.app);
    expect(journalAfter).toHaveLength(journalBefore.length + 1);
    const pays = await payEntries(f.app);
    expect(pays).toHaveLength(1);
    expect(pays[0]?.id).toBe(res.transactionId);
    expect(pays[0]?.fields).toMatchObject({
      k: 'pay',
      c: CARD_NO,
      a: '1234',
      b: String(OPENING_FEN - 1_234),
      f: `a:${CARD_NO}`,
      t: `m:${POS_TERMINAL.merchantId}`,
      tm: POS_TERMINAL.id,
      sq: '1',
    });

    const statement = await f.app.redis.zrange(f.app.keys.statement(CARD_NO), 0, -1);
    expect(statement).toContain(`${res.transactionId}|pay|-1234|${OPENING_FEN - 1_234}|${POS_TERMINAL.id}|1`);
  });
});

describe('declines', () => {
  it('insufficient funds: declined with INSUFFICIENT_FUNDS, nothing changed; the exact balance is still payable', async () => {
    const f = await start('nofunds', {}, 500);
    const before = await moneyState(f.app);

    const { res } = await authorize(f, payment(1, 501));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS,
      balanceAfterFen: 500,
      transactionId: '',
    });
    expect(await moneyState(f.app)).toEqual(before);

    const exact = await authorize(f, payment(2, 500));
    expect(exact.res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 0 });
    expect(await balanceFen(f.app)).toBe(0);
  });

  it.each([
    ['lost', DeclineReason.DECLINE_REASON_CARD_LOST],
    ['frozen', DeclineReason.DECLINE_REASON_CARD_FROZEN],
  ] as const)('a %s card is declined with its reason and nothing changes', async (status, reason) => {
    const f = await start(`st${status}`);
    await f.app.ledger.setStatus(CARD_NO, status);
    expect(await f.app.redis.hget(f.app.keys.account(CARD_NO), 'st')).toBe(status === 'lost' ? 'L' : 'F');
    const before = await moneyState(f.app);

    const { res } = await authorize(f, payment(1, 1_000));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: reason,
      balanceAfterFen: OPENING_FEN,
      transactionId: '',
    });
    expect(await moneyState(f.app)).toEqual(before);
    expect(await payEntries(f.app)).toHaveLength(0);
  });

  it('an unknown card serial is declined with UNKNOWN_CARD and nothing changes', async () => {
    const f = await start('unknowncard');
    const before = await dumpKeySpace(f.app.redis, f.app.keys.prefix);

    const { res } = await authorize(f, payment(1, 1_000, { credential: { card: { cardSerial: 'DEADBEEF01' } } }));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_UNKNOWN_CARD,
      cardNumber: '',
      balanceAfterFen: 0,
      transactionId: '',
    });
    // No money moves; only the decline is recorded under the terminal's sequence claim, for retries.
    const after = await dumpKeySpace(f.app.redis, f.app.keys.prefix);
    const claimKey = f.app.keys.sequenceClaim(POS_TERMINAL.id, 1);
    const added = Object.keys(after).filter((k) => !(k in before));
    expect(added.length).toBeGreaterThan(0);
    expect(added.every((k) => k.startsWith(claimKey))).toBe(true);
    for (const k of added) delete after[k];
    expect(after).toEqual(before);
  });
});

describe('idempotency on (terminal, sequence number)', () => {
  it('a retry returns the first answer byte for byte and moves no money, also after another payment changed the balance', async () => {
    const f = await start('retry');
    const first = await authorize(f, payment(1, 1_000));
    expect(first.res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 49_000 });
    const journalLength = await f.app.redis.xlen(f.app.keys.journalOfCard(CARD_NO));

    const retry = await authorize(f, payment(1, 1_000));
    expect(retry.bytes.equals(first.bytes)).toBe(true);
    expect(
      Buffer.from(AuthorizeResponse.encode(retry.res).finish()).equals(Buffer.from(AuthorizeResponse.encode(first.res).finish())),
    ).toBe(true);
    expect(await balanceFen(f.app)).toBe(49_000);
    expect(await f.app.redis.xlen(f.app.keys.journalOfCard(CARD_NO))).toBe(journalLength);

    const other = await authorize(f, payment(2, 500));
    expect(other.res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 48_500 });
    const journalLengthAfterOther = await f.app.redis.xlen(f.app.keys.journalOfCard(CARD_NO));
    expect(journalLengthAfterOther).toBe(journalLength + 1);

    const lateRetry = await authorize(f, payment(1, 1_000));
    expect(lateRetry.bytes.equals(first.bytes)).toBe(true);
    expect(lateRetry.res.balanceAfterFen).toBe(49_000);
    expect(await balanceFen(f.app)).toBe(48_500);
    expect(await f.app.redis.xlen(f.app.keys.journalOfCard(CARD_NO))).toBe(journalLengthAfterOther);
    expect(await payEntries(f.app)).toHaveLength(2);
  });

  it('a retry of a declined payment replays the decline even after money came back', async () => {
    const f = await start('retrydecl', {}, 1_000);
    expect((await authorize(f, payment(1, 800))).res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const declined = await authorize(f, payment(2, 500));
    expect(declined.res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS,
      balanceAfterFen: 200,
    });
    expect((await reverse(f, reversal(1, 800))).res).toMatchObject({
      result: ReverseResult.REVERSE_RESULT_REVERSED,
      balanceAfterFen: 1_000,
    });
    const before = await moneyState(f.app);

    const retry = await authorize(f, payment(2, 500));

    expect(retry.bytes.equals(declined.bytes)).toBe(true);
    expect(await moneyState(f.app)).toEqual(before);
  });

  it('a retry of an unknown-card decline replays that decline, even after the serial was registered in between', async () => {
    const f = await start('retryunknown');
    const first = await authorize(f, payment(1, 1_000, { credential: { card: { cardSerial: 'CAFE0001' } } }));
    expect(first.res.declineReason).toBe(DeclineReason.DECLINE_REASON_UNKNOWN_CARD);
    await openCard(f.app, '20230002', 'CAFE0001', OPENING_FEN);
    const before = await moneyState(f.app, '20230002');

    const retry = await authorize(f, payment(1, 1_000, { credential: { card: { cardSerial: 'CAFE0001' } } }));

    expect(AuthorizeResponse.toJSON(retry.res)).toEqual(AuthorizeResponse.toJSON(first.res));
    expect(retry.bytes.equals(first.bytes)).toBe(true);
    expect(await moneyState(f.app, '20230002')).toEqual(before);
  });

  it('the same key with a different amount is ALREADY_EXISTS and changes nothing', async () => {
    const f = await start('conflict');
    const first = await authorize(f, payment(1, 1_000));
    expect(first.res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const before = await dumpKeySpace(f.app.redis, f.app.keys.prefix);

    const err = await grpcError(authorize(f, payment(1, 1_001)));

    expect(err.code).toBe(Status.ALREADY_EXISTS);
    expect(err.details).toMatch(/sequence number 1\b/);
    expect(await dumpKeySpace(f.app.redis, f.app.keys.prefix)).toEqual(before);
    expect((await authorize(f, payment(1, 1_000))).bytes.equals(first.bytes)).toBe(true);
  });

  it.each([
    ['in the same ledger shard', true],
    ['in another ledger shard', false],
  ] as const)('the same key with another card (%s) is ALREADY_EXISTS and charges nothing', async (_where, sameShard) => {
    const f = await start(sameShard ? 'othercardsame' : 'othercardx');
    const otherCard = cardInShard(f.app, CARD_NO, sameShard);
    await openCard(f.app, otherCard, 'CD34EF5601', OPENING_FEN);
    expect((await authorize(f, payment(1, 1_000))).res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const otherBefore = await moneyState(f.app, otherCard);

    const reused = authorize(f, payment(1, 1_000, { credential: { card: { cardSerial: 'CD34EF5601' } } }));

    expect((await grpcError(reused)).code).toBe(Status.ALREADY_EXISTS);
    expect(await moneyState(f.app, otherCard)).toEqual(otherBefore);
  });
});

describe('one sequence number, many cards at once', () => {
  it('300 parallel payments with one sequence number over three cards (two shards) charge one card once; the rest ALREADY_EXISTS', async () => {
    const f = await start('seq300');
    const sameShard = cardInShard(f.app, CARD_NO, true);
    const otherShard = cardInShard(f.app, CARD_NO, false);
    await openCard(f.app, sameShard, 'CD34EF5611', OPENING_FEN);
    await openCard(f.app, otherShard, 'CD34EF5622', OPENING_FEN);
    const serials = [SERIAL, 'CD34EF5611', 'CD34EF5622'];

    const answers = await Promise.allSettled(
      Array.from({ length: 300 }, (_, i) =>
        authorize(f, payment(7, 1_000, { credential: { card: { cardSerial: serials[i % 3] ?? SERIAL } } })),
      ),
    );

    const approved = answers.flatMap((a) =>
      a.status === 'fulfilled' && a.value.res.outcome === Outcome.OUTCOME_APPROVED ? [a.value] : [],
    );
    const refused = answers.flatMap((a) => (a.status === 'rejected' ? [a.reason as { code?: number }] : []));
    // Every copy for the winning card replays its one approval; every copy for the two others is refused.
    expect(approved).toHaveLength(100);
    for (const a of approved) expect(a.bytes.equals(approved[0]?.bytes ?? Buffer.alloc(0))).toBe(true);
    expect(refused).toHaveLength(200);
    for (const r of refused) expect(r.code).toBe(Status.ALREADY_EXISTS);
    const balances = await Promise.all([CARD_NO, sameShard, otherShard].map((c) => balanceFen(f.app, c)));
    expect(balances.sort()).toEqual([OPENING_FEN - 1_000, OPENING_FEN, OPENING_FEN].sort());
    const pays = (await Promise.all([CARD_NO, sameShard, otherShard].map((c) => payEntries(f.app, c)))).flat();
    expect(pays).toHaveLength(1);
  });

  it('a PIN payment whose sequence number another card holds is refused before its password is checked', async () => {
    const f = await start('seqpin');
    const otherCard = cardInShard(f.app, CARD_NO, false);
    await openCard(f.app, otherCard, 'CD34EF5633', OPENING_FEN);
    expect((await authorize(f, payment(3, 1_000))).res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const before = await dumpKeySpace(f.app.redis, f.app.keys.prefix);

    const err = await grpcError(authorize(f, payment(3, 1_000, { credential: { card: { cardSerial: 'CD34EF5633' } }, pin: '999999' })));

    expect(err.code).toBe(Status.ALREADY_EXISTS);
    // No wrong-password attempt was counted against the other card: nothing changed at all.
    expect(await dumpKeySpace(f.app.redis, f.app.keys.prefix)).toEqual(before);
  });
});

describe('reversal', () => {
  it('refunds once: a second reversal answers the same bytes, and a retry of the payment does not charge again', async () => {
    const f = await start('rev');
    const paid = await authorize(f, payment(1, 1_500));
    expect(paid.res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 48_500 });

    const first = await reverse(f, reversal(1, 1_500));
    expect(first.res).toMatchObject({ result: ReverseResult.REVERSE_RESULT_REVERSED, balanceAfterFen: OPENING_FEN });
    expect(await balanceFen(f.app)).toBe(OPENING_FEN);
    const state = await moneyState(f.app);

    const second = await reverse(f, reversal(1, 1_500));
    expect(second.bytes.equals(first.bytes)).toBe(true);
    expect(await moneyState(f.app)).toEqual(state);

    const paymentRetry = await authorize(f, payment(1, 1_500));
    expect(paymentRetry.bytes.equals(paid.bytes)).toBe(true);
    expect(await moneyState(f.app)).toEqual(state);

    const revs = (await journalOf(f.app)).filter((e) => e.fields['k'] === 'rev');
    expect(revs).toHaveLength(1);
    expect(revs[0]?.fields).toMatchObject({
      a: '1500',
      b: String(OPENING_FEN),
      f: `m:${POS_TERMINAL.merchantId}`,
      t: `a:${CARD_NO}`,
      sq: '1',
    });
    const statement = await f.app.redis.zrange(f.app.keys.statement(CARD_NO), 0, -1);
    expect(statement.filter((line) => line.split('|')[1] === 'rev')).toEqual([
      `${revs[0]?.id}|rev|1500|${OPENING_FEN}|${POS_TERMINAL.id}|1`,
    ]);
  });

  it('reversal of a declined payment is NOTHING_TO_REVERSE and gives nothing back', async () => {
    const f = await start('revdecl', {}, 500);
    expect((await authorize(f, payment(1, 1_000))).res.declineReason).toBe(DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS);
    const before = await moneyState(f.app);

    const { res } = await reverse(f, reversal(1, 1_000));

    expect(res).toMatchObject({ result: ReverseResult.REVERSE_RESULT_NOTHING_TO_REVERSE, balanceAfterFen: 500 });
    expect(await moneyState(f.app)).toEqual(before);
  });

  it('reversal with another amount is FAILED_PRECONDITION and changes nothing; the right amount still reverses', async () => {
    const f = await start('revamount');
    expect((await authorize(f, payment(1, 1_500))).res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const before = await dumpKeySpace(f.app.redis, f.app.keys.prefix);

    const err = await grpcError(reverse(f, reversal(1, 1_400)));

    expect(err.code).toBe(Status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/amount/);
    expect(await dumpKeySpace(f.app.redis, f.app.keys.prefix)).toEqual(before);
    expect((await reverse(f, reversal(1, 1_500))).res).toMatchObject({
      result: ReverseResult.REVERSE_RESULT_REVERSED,
      balanceAfterFen: OPENING_FEN,
    });
  });

  it('reversal before its payment is TOMBSTONED; the late payment is declined ALREADY_REVERSED and its retry replays that', async () => {
    const f = await start('tomb');
    const before = await moneyState(f.app);

    const tomb = await reverse(f, reversal(7, 1_000));
    expect(tomb.res).toMatchObject({ result: ReverseResult.REVERSE_RESULT_TOMBSTONED, balanceAfterFen: OPENING_FEN });

    const late = await authorize(f, payment(7, 1_000));
    expect(late.res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_ALREADY_REVERSED,
      balanceAfterFen: OPENING_FEN,
      transactionId: '',
    });
    expect(await moneyState(f.app)).toEqual(before);

    const retry = await authorize(f, payment(7, 1_000));
    expect(retry.bytes.equals(late.bytes)).toBe(true);
    const reverseRetry = await reverse(f, reversal(7, 1_000));
    expect(reverseRetry.bytes.equals(tomb.bytes)).toBe(true);
    expect(await moneyState(f.app)).toEqual(before);
    expect(await balanceFen(f.app)).toBe(OPENING_FEN);
  });

  it.each([
    ['in the same ledger shard', true],
    ['in another ledger shard', false],
  ] as const)(
    'reversal presenting another card (%s) is FAILED_PRECONDITION, never TOMBSTONED while the payment stands',
    async (_where, sameShard) => {
      const f = await start(sameShard ? 'revcardsame' : 'revcardx');
      const otherCard = cardInShard(f.app, CARD_NO, sameShard);
      await openCard(f.app, otherCard, 'CD34EF5601', OPENING_FEN);
      expect((await authorize(f, payment(1, 1_000))).res.outcome).toBe(Outcome.OUTCOME_APPROVED);

      const err = await grpcError(reverse(f, reversal(1, 1_000, 'CD34EF5601')));

      expect(err.code).toBe(Status.FAILED_PRECONDITION);
      expect(await balanceFen(f.app)).toBe(OPENING_FEN - 1_000);
    },
  );
});

describe('concurrency', () => {
  it('20 concurrent copies of one request charge once and all get the same bytes', async () => {
    const f = await start('samereq');
    const answers = await Promise.all(Array.from({ length: 20 }, () => authorize(f, payment(1, 1_000))));

    for (const a of answers) expect(a.bytes.equals(answers[0]?.bytes ?? Buffer.alloc(0))).toBe(true);
    expect(answers[0]?.res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 49_000 });
    expect(await balanceFen(f.app)).toBe(49_000);
    expect(await payEntries(f.app)).toHaveLength(1);
  });

  it('two switch instances on one ledger: 100 taps of 10.00 on 500.00 split between them approve exactly 50', async () => {
    const f = await start('twoinst');
    const second = await startTestSwitch('twoinst', { KEY_PREFIX: f.app.keys.prefix });
    onTestFinished(() => second.stop());
    const g: Fixture = { app: second, client: posClient(second) };
    onTestFinished(() => g.client.close());

    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => authorize(i % 2 === 0 ? f : g, payment(i + 1, 1_000))));

    expect(answers.filter((a) => a.res.outcome === Outcome.OUTCOME_APPROVED)).toHaveLength(50);
    expect(await balanceFen(f.app)).toBe(0);
    const pays = await payEntries(f.app);
    expect(pays).toHaveLength(50);
    expect(pays.reduce((sum, e) => sum + Number(e.fields['a']), 0)).toBe(50_000);
  });

  it('100 concurrent taps of 10.00 on 500.00 approve exactly 50 and the balance never goes below 0', async () => {
    const f = await start('concurrent');
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => authorize(f, payment(i + 1, 1_000))));

    const approved = answers.filter((a) => a.res.outcome === Outcome.OUTCOME_APPROVED);
    const declined = answers.filter((a) => a.res.outcome !== Outcome.OUTCOME_APPROVED);
    expect(approved).toHaveLength(50);
    expect(declined.every((a) => a.res.declineReason === DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS)).toBe(true);
    for (const a of answers) expect(a.res.balanceAfterFen).toBeGreaterThanOrEqual(0);
    // Each approval saw a different balance: 49,000, 48,000 ... 0, each exactly once.
    expect(approved.map((a) => a.res.balanceAfterFen).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i * 1_000));

    expect(await balanceFen(f.app)).toBe(0);
    expect((await inquire(f)).balanceFen).toBe(0);
    const pays = await payEntries(f.app);
    expect(pays).toHaveLength(50);
    expect(pays.reduce((sum, e) => sum + Number(e.fields['a']), 0)).toBe(50_000);
    for (const e of pays) expect(Number(e.fields['b'])).toBeGreaterThanOrEqual(0);
    expect(new Set(pays.map((e) => e.id))).toEqual(new Set(approved.map((a) => a.res.transactionId)));
  });
});

/** A uint64 / int64 varint above 2^53, which no JavaScript number can carry: written by hand. */
function requestWithHugeField(field: 'sequence' | 'amount'): Uint8Array {
  const huge = (1n << 53n) + 2n;
  const card = new BinaryWriter()
    .uint32((1 << 3) | 2)
    .string(SERIAL)
    .finish();
  const credential = new BinaryWriter()
    .uint32((1 << 3) | 2)
    .bytes(card)
    .finish();
  return new BinaryWriter()
    .uint32((1 << 3) | 2)
    .string(POS_TERMINAL.id)
    .uint32((2 << 3) | 0)
    .uint64(field === 'sequence' ? huge : 1n)
    .uint32((3 << 3) | 0)
    .int64(field === 'amount' ? huge : 1_000n)
    .uint32((4 << 3) | 2)
    .bytes(credential)
    .finish();
}

const DISABLED_TERMINAL: NewTerminal = { ...POS_TERMINAL, id: 'POS-OFF', secret: 'pos-off-secret-0123456789' };
const KIOSK_TERMINAL: NewTerminal = {
  id: 'KIOSK-1',
  kind: 'kiosk',
  merchantId: 'KIOSK',
  location: '宿舍楼大厅',
  secret: 'kiosk-secret-0123456789',
};

interface MalformedCase {
  readonly name: string;
  readonly code: Status;
  readonly mentions: RegExp;
  readonly prepare?: (f: Fixture) => Promise<void>;
  readonly send: (f: Fixture) => Promise<unknown>;
}

const MAX_PAYMENT_FEN = 5_000;

const MALFORMED: readonly MalformedCase[] = [
  { name: 'amount 0', code: Status.INVALID_ARGUMENT, mentions: /amount_fen/, send: (f) => authorize(f, payment(1, 0)) },
  { name: 'negative amount', code: Status.INVALID_ARGUMENT, mentions: /amount_fen/, send: (f) => authorize(f, payment(1, -1_000)) },
  {
    name: 'amount over MAX_PAYMENT_FEN',
    code: Status.INVALID_ARGUMENT,
    mentions: /amount_fen/,
    send: (f) => authorize(f, payment(1, MAX_PAYMENT_FEN + 1)),
  },
  { name: 'sequence 0', code: Status.INVALID_ARGUMENT, mentions: /sequence_number/, send: (f) => authorize(f, payment(0, 1_000)) },
  {
    name: 'missing credential',
    code: Status.INVALID_ARGUMENT,
    mentions: /credential/,
    send: (f) => authorize(f, payment(1, 1_000, { credential: undefined })),
  },
  {
    name: 'empty credential',
    code: Status.INVALID_ARGUMENT,
    mentions: /credential/,
    send: (f) => authorize(f, payment(1, 1_000, { credential: {} })),
  },
  {
    name: 'empty card serial',
    code: Status.INVALID_ARGUMENT,
    mentions: /card_serial/,
    send: (f) => authorize(f, payment(1, 1_000, { credential: { card: { cardSerial: '' } } })),
  },
  {
    name: 'non-hex card serial',
    code: Status.INVALID_ARGUMENT,
    mentions: /card_serial/,
    send: (f) => authorize(f, payment(1, 1_000, { credential: { card: { cardSerial: 'XY12CD34' } } })),
  },
  {
    name: 'pin of 5 digits',
    code: Status.INVALID_ARGUMENT,
    mentions: /pin/,
    send: (f) => authorize(f, payment(1, 1_000, { pin: '12345' })),
  },
  {
    name: 'empty terminal_id in the body',
    code: Status.INVALID_ARGUMENT,
    mentions: /terminal_id/,
    send: (f) => authorize(f, payment(1, 1_000, { terminalId: '' })),
  },
  {
    name: 'terminal_id in the body is not the authenticated terminal',
    code: Status.PERMISSION_DENIED,
    mentions: /terminal_id "POS-T9"/,
    send: (f) => authorize(f, payment(1, 1_000, { terminalId: 'POS-T9' })),
  },
  {
    name: 'unknown terminal',
    code: Status.UNAUTHENTICATED,
    mentions: /POS-NOPE/,
    send: (f) =>
      authorize(f, payment(1, 1_000, { terminalId: 'POS-NOPE' }), terminalMetadata({ id: 'POS-NOPE', secret: POS_TERMINAL.secret })),
  },
  {
    name: 'wrong secret',
    code: Status.UNAUTHENTICATED,
    mentions: new RegExp(POS_TERMINAL.id),
    send: (f) => authorize(f, payment(1, 1_000), terminalMetadata({ id: POS_TERMINAL.id, secret: `${POS_TERMINAL.secret}x` })),
  },
  {
    // It was "terminal "POS-T1" is not registered": untrue, and no help to whoever set the secret up.
    name: 'a secret longer than any terminal secret',
    code: Status.UNAUTHENTICATED,
    mentions: /^wrong secret for terminal "POS-T1": longer than any terminal secret \(at most 128 characters\)$/,
    send: (f) => authorize(f, payment(1, 1_000), terminalMetadata({ id: POS_TERMINAL.id, secret: 's'.repeat(7_000) })),
  },
  {
    name: 'no metadata at all',
    code: Status.UNAUTHENTICATED,
    mentions: /terminal-id/,
    send: (f) => authorize(f, payment(1, 1_000), new Metadata()),
  },
  {
    name: 'disabled terminal',
    code: Status.PERMISSION_DENIED,
    mentions: /POS-OFF/,
    prepare: async (f) => {
      await f.app.terminals.register(DISABLED_TERMINAL);
      expect(await f.app.terminals.setEnabled(DISABLED_TERMINAL.id, false)).toBe(true);
    },
    send: (f) => authorize(f, payment(1, 1_000, { terminalId: DISABLED_TERMINAL.id }), terminalMetadata(DISABLED_TERMINAL)),
  },
  {
    name: 'kiosk terminal calling PosService',
    code: Status.PERMISSION_DENIED,
    mentions: /kiosk/,
    prepare: (f) => f.app.terminals.register(KIOSK_TERMINAL),
    send: (f) => authorize(f, payment(1, 1_000, { terminalId: KIOSK_TERMINAL.id }), terminalMetadata(KIOSK_TERMINAL)),
  },
  {
    name: 'undecodable bytes',
    code: Status.INVALID_ARGUMENT,
    mentions: /Authorize request/,
    send: (f) => unaryBytes(f.client, AUTHORIZE, Buffer.from([0x0a, 0xff, 0xff]), posMetadata()),
  },
  {
    name: 'sequence_number above 2^53',
    code: Status.INVALID_ARGUMENT,
    mentions: /sequence_number/,
    send: (f) => unaryBytes(f.client, AUTHORIZE, requestWithHugeField('sequence'), posMetadata()),
  },
  {
    name: 'amount_fen above 2^53',
    code: Status.INVALID_ARGUMENT,
    mentions: /amount_fen/,
    send: (f) => unaryBytes(f.client, AUTHORIZE, requestWithHugeField('amount'), posMetadata()),
  },
];

describe('malformed input is refused with the right status and changes nothing', () => {
  it.each(MALFORMED)('$name', async (c) => {
    const f = await start('malformed', { MAX_PAYMENT_FEN: String(MAX_PAYMENT_FEN) });
    await c.prepare?.(f);
    const before = await dumpKeySpace(f.app.redis, f.app.keys.prefix);

    const err = await grpcError(c.send(f));

    expect(Status[err.code]).toBe(Status[c.code]);
    expect(await dumpKeySpace(f.app.redis, f.app.keys.prefix)).toEqual(before);
    expect(await balanceFen(f.app)).toBe(OPENING_FEN);
    expect(err.details.trim()).not.toBe('');
    expect(err.details).toMatch(c.mentions);
  });

  it('the limits themselves are payable: amount MAX_PAYMENT_FEN and sequence 2^53-1 are approved', async () => {
    const f = await start('limits', { MAX_PAYMENT_FEN: String(MAX_PAYMENT_FEN) });
    const { res } = await authorize(f, payment(Number.MAX_SAFE_INTEGER, MAX_PAYMENT_FEN));
    expect(res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: OPENING_FEN - MAX_PAYMENT_FEN });
    expect((await payEntries(f.app))[0]?.fields['sq']).toBe(String(Number.MAX_SAFE_INTEGER));
  });
});

describe('Redis down', () => {
  /** A private redis-server (AOF, fsync always) in a temp dir, so stopping it disturbs no other test. */
  async function privateRedis(): Promise<{ dataDir: string; url: string; port: number; stop: () => Promise<void> }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'cardswitch-down-'));
    onTestFinished(() => rmSync(dataDir, { recursive: true, force: true }));
    const redis = await startLocalRedis({ dataDir, port: 0, appendOnly: true, appendFsync: 'always', startTimeoutMs: 10_000 });
    onTestFinished(() => redis.stop());
    return { dataDir, url: redis.url, port: redis.port, stop: () => redis.stop() };
  }

  it('with the terminal and card cached, the ledger call fails closed with UNAVAILABLE and nothing is recorded', async () => {
    const local = await privateRedis();
    const f = await start('down', { REDIS_URL: local.url, TERMINAL_CACHE_MS: '600000', REDIS_COMMAND_TIMEOUT_MS: '500' });
    // Warm the terminal and serial caches: the next call reaches the ledger script itself.
    expect((await authorize(f, payment(1, 1_000))).res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 49_000 });
    const prefix = f.app.keys.prefix;
    const accountKey = f.app.keys.account(CARD_NO);
    const requestKey = f.app.keys.request(CARD_NO, POS_TERMINAL.id, 2);

    await local.stop();
    const err = await grpcError(authorize(f, payment(2, 1_000)));

    expect(Status[err.code]).toBe(Status[Status.UNAVAILABLE]);
    expect(err.details).toMatch(/retry/);
    expect(Status[(await grpcError(authorize(f, payment(1, 1_000)))).code]).toBe(Status[Status.UNAVAILABLE]);

    // The same data dir again (AOF): the ledger never saw payment 2.
    const again = await startLocalRedis({
      dataDir: local.dataDir,
      port: local.port,
      appendOnly: true,
      appendFsync: 'always',
      startTimeoutMs: 10_000,
    });
    onTestFinished(() => again.stop());
    const check = new Redis(again.url, { maxRetriesPerRequest: 1 });
    onTestFinished(async () => void (await check.quit()));
    expect(await check.hget(accountKey, 'bal')).toBe('49000');
    expect(await check.exists(requestKey)).toBe(0);
    expect(await check.keys(`${prefix}:*:req:*`)).toHaveLength(1);

    // Once the switch is reconnected, the retry the UNAVAILABLE answer asked for is decided exactly once.
    if (f.app.redis.status !== 'ready') await once(f.app.redis, 'ready');
    expect((await authorize(f, payment(2, 1_000))).res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 48_000 });
    expect(await check.hget(accountKey, 'bal')).toBe('48000');
  });

  it('a ledger too slow to answer gives UNAVAILABLE (never an approval); the retry learns the late outcome and charges once', async () => {
    const local = await privateRedis();
    const f = await start('slow', { REDIS_URL: local.url, TERMINAL_CACHE_MS: '600000', REDIS_COMMAND_TIMEOUT_MS: '200' });
    expect((await authorize(f, payment(1, 1_000))).res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const admin = new Redis(local.url, { maxRetriesPerRequest: 1 });
    onTestFinished(async () => void (await admin.quit()));

    // Scripts are writes: a WRITE pause holds the ledger script while reads still answer.
    await admin.call('CLIENT', 'PAUSE', '60000', 'WRITE');
    let err;
    try {
      err = await grpcError(authorize(f, payment(2, 1_000)));
    } finally {
      await admin.call('CLIENT', 'UNPAUSE');
    }

    expect(Status[err.code]).toBe(Status[Status.UNAVAILABLE]);
    expect(err.details).toMatch(/same sequence number/);
    // The held script runs once the pause ends, before the retry (same connection, in order).
    const retry = await authorize(f, payment(2, 1_000));
    expect(retry.res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 48_000 });
    expect((await authorize(f, payment(2, 1_000))).bytes.equals(retry.bytes)).toBe(true);
    expect(await balanceFen(f.app)).toBe(48_000);
    expect(await payEntries(f.app)).toHaveLength(2);
  });

  it('without a terminal cache, authentication itself fails closed with UNAVAILABLE', async () => {
    const local = await privateRedis();
    const f = await start('downauth', { REDIS_URL: local.url, TERMINAL_CACHE_MS: '0', REDIS_COMMAND_TIMEOUT_MS: '500' });
    expect((await authorize(f, payment(1, 1_000))).res.outcome).toBe(Outcome.OUTCOME_APPROVED);

    await local.stop();
    const err = await grpcError(authorize(f, payment(2, 1_000)));

    expect(Status[err.code]).toBe(Status[Status.UNAVAILABLE]);
    expect(err.details.trim()).not.toBe('');
  });
});
