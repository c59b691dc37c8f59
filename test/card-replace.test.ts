// AdminService/ReplaceCard is idempotent by its request id, against a real switch and Redis: a retry of
// a replacement answers that replacement's first answer at any later time (also after a later
// replacement of the same card) and changes nothing; the same id with another new serial is refused;
// 300 copies of one request fired at once make one replacement and get one answer.
import { status as Status, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplaceCardRequest, ReplaceCardResponse } from '../proto/gen/cardswitch/v1/admin.js';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import { claimCardSerial, releaseCardSerial, SERIAL_CLAIM_STALE_MS, settleCardSerial } from '../switch/ledger/cards.js';
import { adminClient, operatorMetadata, startClockedSwitch, TestClock } from './helpers/clients.js';
import { call, dumpKeySpace, grpcError, openCard, POS_TERMINAL, posClient, terminalMetadata, unaryBytes } from './helpers/switch.js';

const REPLACE = '/cardswitch.v1.AdminService/ReplaceCard';

let app: SwitchApp;
let admin: ReturnType<typeof adminClient>;
let pos: ReturnType<typeof posClient>;
let seq = 0;
const clock = new TestClock(Date.UTC(2026, 10, 26, 2, 0, 0));
const opMd: Metadata = operatorMetadata();

beforeAll(async () => {
  app = await startClockedSwitch('replace', clock);
  await app.terminals.register(POS_TERMINAL);
  admin = adminClient(app);
  pos = posClient(app);
});
afterAll(async () => {
  admin.close();
  pos.close();
  await app.stop();
});

function replace(cardNumber: string, newCardSerial: string, requestId: string): Promise<ReplaceCardResponse> {
  return call<ReplaceCardRequest, ReplaceCardResponse>(admin, 'replaceCard', { cardNumber, newCardSerial, requestId }, opMd);
}

function pay(serial: string, amountFen: number): Promise<AuthorizeResponse> {
  return call(
    pos,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: ++seq, amountFen, credential: { card: { cardSerial: serial } }, pin: '' },
    terminalMetadata(POS_TERMINAL),
  );
}

async function cardState(cardNo: string): Promise<(string | null)[]> {
  return app.redis.hmget(app.keys.account(cardNo), 'ser', 'sync', 'eq', 'st', 'bal');
}

async function replaceLog(cardNo: string): Promise<string[][]> {
  const log = await app.redis.xrange(app.keys.operatorLog(), '-', '+');
  return log.filter(([, f]) => f[1] === 'replace-card' && f.includes(cardNo)).map(([, f]) => f);
}

describe('ReplaceCard is idempotent by request id', () => {
  it("a stale retry of a first replacement, after a second one, answers the first one's answer and moves nothing back", async () => {
    await openCard(app, '3101', 'AA003101', 20_000);
    const first = await replace('3101', 'BB003101', 'RPL-3101-1');
    expect(first.oldCardSerial).toBe('AA003101');
    // The holder loses the new card too: a second replacement, B -> C; the new card is tapped (synced).
    const second = await replace('3101', 'CC003101', 'RPL-3101-2');
    expect(second.oldCardSerial).toBe('BB003101');
    expect((await pay('CC003101', 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    const before = await dumpKeySpace(app.redis, app.keys.prefix);
    const state = await cardState('3101');
    expect(state.slice(0, 2)).toEqual(['CC003101', '1']);

    // The operator client's retry of the first request arrives now (its first answer was lost).
    const retry = await replace('3101', 'BB003101', 'RPL-3101-1');
    expect(retry.oldCardSerial).toBe('AA003101');
    expect(retry.card).toMatchObject({ cardNumber: '3101', synced: true, balanceFen: 19_900 });
    expect(await cardState('3101')).toEqual(state);
    expect(await dumpKeySpace(app.redis, app.keys.prefix)).toEqual(before);
    // And again, later: the same answer.
    expect((await replace('3101', 'BB003101', 'RPL-3101-1')).oldCardSerial).toBe('AA003101');
    expect((await replace('3101', 'CC003101', 'RPL-3101-2')).oldCardSerial).toBe('BB003101');
    expect(await cardState('3101')).toEqual(state);
    // Card B stays dead, card C keeps working; two replacements logged, no more.
    expect((await pay('BB003101', 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_REPLACED);
    expect((await pay('CC003101', 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect((await replaceLog('3101')).map((f) => f.slice(-4))).toEqual([
      ['old', 'AA003101', 'new', 'BB003101'],
      ['old', 'BB003101', 'new', 'CC003101'],
    ]);
  });

  it('the same request id with another new serial is refused ALREADY_EXISTS and changes nothing; the serial stays free', async () => {
    await openCard(app, '3102', 'AA003102', 5_000);
    await replace('3102', 'BB003102', 'RPL-3102-1');
    const before = await dumpKeySpace(app.redis, app.keys.prefix);
    const reused = await grpcError(replace('3102', 'DD003102', 'RPL-3102-1'));
    expect(reused.code).toBe(Status.ALREADY_EXISTS);
    expect(reused.details).toContain('RPL-3102-1');
    expect(reused.details).toContain('请求编号');
    expect(reused.metadata.get('error-reason')).toEqual(['REQUEST_ID_REUSED']);
    expect(await dumpKeySpace(app.redis, app.keys.prefix)).toEqual(before);
    // The serial offered with the reused id is still free for another card.
    await openCard(app, '3103', 'AA003103', 5_000);
    expect((await replace('3103', 'DD003102', 'RPL-3103-1')).oldCardSerial).toBe('AA003103');
  });

  it('a replacement without a request id is refused INVALID_ARGUMENT and changes nothing', async () => {
    await openCard(app, '3104', 'AA003104', 5_000);
    const before = await dumpKeySpace(app.redis, app.keys.prefix);
    for (const requestId of ['', 'x', 'has space 01']) {
      const refused = await grpcError(replace('3104', 'BB003104', requestId));
      expect(refused.code).toBe(Status.INVALID_ARGUMENT);
      expect(refused.details).toContain('request_id');
    }
    expect(await dumpKeySpace(app.redis, app.keys.prefix)).toEqual(before);
  });

  it('a refusal is the answer too: a retry of "already has this serial", after a real replacement, is refused again and moves nothing', async () => {
    await openCard(app, '3105', 'AA003105', 5_000);
    const own = await grpcError(replace('3105', 'AA003105', 'RPL-3105-1'));
    expect(own.code).toBe(Status.FAILED_PRECONDITION);
    await replace('3105', 'BB003105', 'RPL-3105-2');
    const state = await cardState('3105');
    const again = await grpcError(replace('3105', 'AA003105', 'RPL-3105-1'));
    expect(again.code).toBe(Status.FAILED_PRECONDITION);
    expect(again.details).toBe(own.details);
    expect(await cardState('3105')).toEqual(state);
    expect((await pay('AA003105', 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_REPLACED);
  });

  it('300 copies of one replacement fired at once: one replacement, 300 equal answers', async () => {
    await openCard(app, '3106', 'AA003106', 8_000);
    const eqBefore = Number((await cardState('3106'))[2] ?? '0');
    const request = ReplaceCardRequest.encode({ cardNumber: '3106', newCardSerial: 'BB003106', requestId: 'RPL-3106-1' }).finish();
    const answers = await Promise.all(Array.from({ length: 300 }, () => unaryBytes(admin, REPLACE, request, opMd)));
    const distinct = new Set(answers.map((b) => b.toString('hex')));
    expect(distinct.size).toBe(1);
    expect(ReplaceCardResponse.decode(answers[0] as Buffer)).toMatchObject({
      oldCardSerial: 'AA003106',
      card: { cardNumber: '3106', balanceFen: 8_000, synced: false },
    });
    const [ser, sync, eq] = await cardState('3106');
    expect([ser, sync, Number(eq)]).toEqual(['BB003106', '0', eqBefore + 1]);
    expect(await replaceLog('3106')).toHaveLength(1);
    expect((await pay('AA003106', 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_REPLACED);
  });
});

describe('ReplaceCard: a refused request leaves no claim on the serial it offered', () => {
  const ROUNDS = 40;
  const serialOf = (round: number, letter: string): string => `${letter}${letter}${String(4000 + round).padStart(6, '0')}`;

  it('one request id with two new serials fired at once: one replaces, the other is refused and its serial is free for another card', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const cardNo = String(41_000 + round);
      await openCard(app, cardNo, serialOf(round, 'A'), 1_000);
      const [first, second] = [serialOf(round, 'B'), serialOf(round, 'C')];
      const answers = await Promise.allSettled([replace(cardNo, first, `RPL-${cardNo}`), replace(cardNo, second, `RPL-${cardNo}`)]);
      const won = answers.findIndex((a) => a.status === 'fulfilled');
      expect(won, `round ${round}: one of the two replaces`).toBeGreaterThanOrEqual(0);
      const lost = answers[1 - won];
      expect(lost?.status, `round ${round}`).toBe('rejected');
      const refusal = (lost as PromiseRejectedResult).reason as ServiceError;
      expect(refusal.code).toBe(Status.ALREADY_EXISTS);
      expect(refusal.metadata.get('error-reason')).toEqual(['REQUEST_ID_REUSED']);
      const [winner, refused] = won === 0 ? [first, second] : [second, first];
      expect((await cardState(cardNo))[0]).toBe(winner);
      expect(await app.redis.get(app.keys.serial(winner))).toBe(cardNo);
      // The refused serial names no card, and another card can be given that blank card.
      expect(await app.redis.get(app.keys.serial(refused)), `round ${round}: ${refused} left claimed`).toBeNull();
      const other = String(42_000 + round);
      await openCard(app, other, serialOf(round, 'D'), 1_000);
      expect((await replace(other, refused, `RPL-${other}`)).oldCardSerial).toBe(serialOf(round, 'D'));
      expect(await app.redis.get(app.keys.serial(refused))).toBe(other);
    }
  });

  it('a refused request never frees a claim another request of the same card is using: the pressed-twice request still gets its serial', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const cardNo = String(43_000 + round);
      await openCard(app, cardNo, serialOf(round, 'E'), 1_000);
      // RPL-x-1 is used once (with F); then, at once: RPL-x-1 again with G (refused: reused id) and a
      // new request RPL-x-2 with G (the operator's real replacement). G must end on the card, claimed.
      await replace(cardNo, serialOf(round, 'F'), `RPL-${cardNo}-1`);
      const g = serialOf(round, '9');
      const [reused, real] = await Promise.allSettled([replace(cardNo, g, `RPL-${cardNo}-1`), replace(cardNo, g, `RPL-${cardNo}-2`)]);
      expect(reused.status).toBe('rejected');
      expect(((reused as PromiseRejectedResult).reason as ServiceError).code).toBe(Status.ALREADY_EXISTS);
      expect(real.status).toBe('fulfilled');
      expect((await cardState(cardNo))[0]).toBe(g);
      expect(await app.redis.get(app.keys.serial(g)), `round ${round}: the card's new serial lost its directory entry`).toBe(cardNo);
      expect((await pay(g, 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    }
  });

  it('a refusal keeps a claim another request of the card holds at that moment (claim, script and release in a fixed order)', async () => {
    await openCard(app, '3201', 'AA003201', 1_000);
    await replace('3201', 'BB003201', 'RPL-3201-1');
    const ctx = app.context;
    // Y, the operator's new request for blank card CC, has claimed it and not run its script yet.
    const y = await claimCardSerial(ctx, 'CC003201', '3201', clock.now());
    // X, RPL-3201-1 used again with CC (past the domain's early check: it raced that id's first use).
    const x = await claimCardSerial(ctx, 'CC003201', '3201', clock.now());
    if (!y.claimed || !x.claimed) throw new Error('both claims of the same card must pass');
    expect((await app.ledger.replaceCard('3201', 'RPL-3201-1', 'CC003201')).code).toBe('key_reused');
    expect(await releaseCardSerial(ctx, 'CC003201', '3201', x.token)).toBe(false);
    expect(await app.redis.get(app.keys.serial('CC003201'))).toBe('3201');
    // Y goes through: the card is on CC and CC names the card.
    expect((await app.ledger.replaceCard('3201', 'RPL-3201-2', 'CC003201')).code).toBe('replaced');
    await settleCardSerial(ctx, 'CC003201', '3201', y.token);
    expect(await app.redis.get(app.keys.serial('CC003201'))).toBe('3201');
    expect((await pay('CC003201', 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    // A refusal never releases an entry the card already had (its old serial BB): BB stays the card's.
    const z = await claimCardSerial(ctx, 'BB003201', '3201', clock.now());
    if (!z.claimed) throw new Error("the card's own old serial must pass the claim");
    expect((await app.ledger.replaceCard('3201', 'RPL-3201-2', 'BB003201')).code).toBe('key_reused');
    expect(await releaseCardSerial(ctx, 'BB003201', '3201', z.token)).toBe(false);
    expect(await app.redis.get(app.keys.serial('BB003201'))).toBe('3201');
    expect((await pay('BB003201', 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_REPLACED);
  });

  it('a switch killed between the claim and replace-card.lua: the blank card is held only until the claim is stale, then another card may take it', async () => {
    await openCard(app, '3202', 'AA003202', 1_000);
    await openCard(app, '3203', 'AA003203', 1_000);
    // What the killed switch left: the claim of BB for 3202, no script run, no settle, no release.
    expect((await claimCardSerial(app.context, 'BB003202', '3202', clock.now())).claimed).toBe(true);
    expect((await grpcError(replace('3203', 'BB003202', 'RPL-3203-1'))).code).toBe(Status.FAILED_PRECONDITION);
    clock.advance(SERIAL_CLAIM_STALE_MS - 1);
    expect((await grpcError(replace('3203', 'BB003202', 'RPL-3203-1'))).code).toBe(Status.FAILED_PRECONDITION);
    clock.advance(1);
    expect((await replace('3203', 'BB003202', 'RPL-3203-1')).oldCardSerial).toBe('AA003203');
    expect(await app.redis.get(app.keys.serial('BB003202'))).toBe('3203');
    expect((await pay('BB003202', 100)).cardNumber).toBe('3203');
    expect((await pay('AA003202', 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    // Confirmed now: it never turns stale again.
    clock.advance(SERIAL_CLAIM_STALE_MS * 2);
    await openCard(app, '3204', 'AA003204', 1_000);
    expect((await grpcError(replace('3204', 'BB003202', 'RPL-3204-1'))).code).toBe(Status.FAILED_PRECONDITION);
  });

  it("a stalled (not killed) switch's replace-card.lua after the takeover: refused, its card stays on its serial, never two accounts on one serial", async () => {
    await openCard(app, '3207', 'AA003207', 5_000);
    await openCard(app, '3208', 'AA003208', 1_000);
    const ctx = app.context;
    // The stalled switch claimed BB for 3207 and stopped before its script (a paused process, a queued command).
    const stalled = await claimCardSerial(ctx, 'BB003207', '3207', clock.now());
    if (!stalled.claimed) throw new Error('the first claim must pass');
    clock.advance(SERIAL_CLAIM_STALE_MS);
    expect((await replace('3208', 'BB003207', 'RPL-3208-1')).oldCardSerial).toBe('AA003208');
    // It wakes and runs its script: refused (before: 'replaced', both accounts on BB, the directory naming
    // 3208 only, 3207's old card dead and its balance reachable by no card).
    expect((await app.ledger.replaceCard('3207', 'RPL-3207-1', 'BB003207')).code).toBe('serial_taken');
    expect(await releaseCardSerial(ctx, 'BB003207', '3207', stalled.token)).toBe(false);
    expect((await cardState('3207'))[0]).toBe('AA003207');
    expect(await app.redis.get(app.keys.serial('BB003207'))).toBe('3208');
    // The operator's retry of 3207's request is refused too, and changes nothing.
    const retry = await grpcError(replace('3207', 'BB003207', 'RPL-3207-1'));
    expect(retry.code).toBe(Status.FAILED_PRECONDITION);
    expect(await app.redis.hget(app.keys.cardReplacements('3207'), 'RPL-3207-1')).toBeNull();
    expect(await app.redis.get(app.keys.serial('BB003207'))).toBe('3208');
    const paid = await pay('AA003207', 100);
    expect([paid.outcome, paid.cardNumber]).toEqual([Outcome.OUTCOME_APPROVED, '3207']);
    expect((await pay('BB003207', 100)).cardNumber).toBe('3208');
    // 3207 can still be replaced onto another blank card.
    expect((await replace('3207', 'CC003207', 'RPL-3207-2')).oldCardSerial).toBe('AA003207');
  });

  it('a switch killed after replace-card.lua but before the claim was settled: the card keeps its new serial, never taken over', async () => {
    await openCard(app, '3205', 'AA003205', 1_000);
    await openCard(app, '3206', 'AA003206', 1_000);
    expect((await claimCardSerial(app.context, 'BB003205', '3205', clock.now())).claimed).toBe(true);
    expect((await app.ledger.replaceCard('3205', 'RPL-3205-1', 'BB003205')).code).toBe('replaced');
    clock.advance(SERIAL_CLAIM_STALE_MS * 2);
    expect((await grpcError(replace('3206', 'BB003205', 'RPL-3206-1'))).code).toBe(Status.FAILED_PRECONDITION);
    // Also after the card moved on to yet other serials: BB was the card's, so it stays the card's.
    await replace('3205', 'CC003205', 'RPL-3205-2');
    await replace('3205', 'DD003205', 'RPL-3205-3');
    expect((await grpcError(replace('3206', 'BB003205', 'RPL-3206-1'))).code).toBe(Status.FAILED_PRECONDITION);
    expect(await app.redis.get(app.keys.serial('BB003205'))).toBe('3205');
  });
});
