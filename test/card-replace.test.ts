// AdminService/ReplaceCard is idempotent by its request id, against a real switch and Redis: a retry of
// a replacement answers that replacement's first answer at any later time (also after a later
// replacement of the same card) and changes nothing; the same id with another new serial is refused;
// 300 copies of one request fired at once make one replacement and get one answer.
import { status as Status, type Metadata } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplaceCardRequest, ReplaceCardResponse } from '../proto/gen/cardswitch/v1/admin.js';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import { adminClient, operatorMetadata, startClockedSwitch, TestClock } from './helpers/clients.js';
import { call, dumpKeySpace, grpcError, openCard, POS_TERMINAL, posClient, terminalMetadata, unaryBytes } from './helpers/switch.js';

const REPLACE = '/cardswitch.v1.AdminService/ReplaceCard';

let app: SwitchApp;
let admin: ReturnType<typeof adminClient>;
let pos: ReturnType<typeof posClient>;
let seq = 0;
const opMd: Metadata = operatorMetadata();

beforeAll(async () => {
  app = await startClockedSwitch('replace', new TestClock(Date.UTC(2026, 10, 26, 2, 0, 0)));
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
