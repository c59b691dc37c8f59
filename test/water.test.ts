// PosService WaterDebit / Settle (the small wallet) against a real switch and the real test Redis: the
// first settlement swipe opens the wallet with 10.00, water controllers spend only from it, a later swipe
// charges what was spent, declines change no money, retries replay the first answer byte for byte, and
// the journal accounts for every fen. Every test starts its own switch in a fresh key space.
import { status as Status } from '@grpc/grpc-js';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import {
  SettleRequest,
  SettleResponse,
  WaterDebitRequest,
  WaterDebitResponse,
  type PosServiceClient,
} from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import type { NewTerminal } from '../switch/domain/terminals.js';
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
const WALLET_FEN = 1_000;

const SETTLE_TERMINAL: NewTerminal = {
  id: 'SETTLE-XY1',
  kind: 'settlement',
  merchantId: 'BATH-XY',
  location: '小营浴室 结算机',
  secret: 'settle-secret-0123456789',
};

const WATER_TERMINAL: NewTerminal = {
  id: 'WATER-XY17',
  kind: 'water',
  merchantId: 'BATH-XY',
  location: '小营浴室 17号淋浴',
  secret: 'water-secret-0123456789',
};

const WATER_DEBIT = '/cardswitch.v1.PosService/WaterDebit';
const SETTLE = '/cardswitch.v1.PosService/Settle';

interface Fixture {
  readonly app: SwitchApp;
  readonly client: PosServiceClient;
}

/** A switch in a fresh key space with the three terminal kinds registered and one card opened. */
async function start(label: string, openingFen = OPENING_FEN): Promise<Fixture> {
  const app = await startTestSwitch(label);
  onTestFinished(() => app.stop());
  await app.terminals.register(SETTLE_TERMINAL);
  await app.terminals.register(WATER_TERMINAL);
  await app.terminals.register(POS_TERMINAL);
  await openCard(app, CARD_NO, SERIAL, openingFen);
  const client = posClient(app);
  onTestFinished(() => client.close());
  return { app, client };
}

function debitRequest(sequenceNumber: number, amountFen: number, overrides: Partial<WaterDebitRequest> = {}): WaterDebitRequest {
  return { terminalId: WATER_TERMINAL.id, sequenceNumber, amountFen, credential: { card: { cardSerial: SERIAL } }, ...overrides };
}

function settleRequest(sequenceNumber: number, overrides: Partial<SettleRequest> = {}): SettleRequest {
  return { terminalId: SETTLE_TERMINAL.id, sequenceNumber, credential: { card: { cardSerial: SERIAL } }, ...overrides };
}

async function waterDebit(
  f: Fixture,
  req: WaterDebitRequest,
  terminal: NewTerminal = WATER_TERMINAL,
): Promise<{ res: WaterDebitResponse; bytes: Buffer }> {
  const bytes = await unaryBytes(f.client, WATER_DEBIT, WaterDebitRequest.encode(req).finish(), terminalMetadata(terminal));
  return { res: WaterDebitResponse.decode(bytes), bytes };
}

async function settle(
  f: Fixture,
  req: SettleRequest,
  terminal: NewTerminal = SETTLE_TERMINAL,
): Promise<{ res: SettleResponse; bytes: Buffer }> {
  const bytes = await unaryBytes(f.client, SETTLE, SettleRequest.encode(req).finish(), terminalMetadata(terminal));
  return { res: SettleResponse.decode(bytes), bytes };
}

async function account(
  app: SwitchApp,
  cardNo = CARD_NO,
): Promise<{ balanceFen: number; walletFen: number; version: number; opened: boolean }> {
  const [bal, wal, ver, wopen] = await app.redis.hmget(app.keys.account(cardNo), 'bal', 'wal', 'ver', 'wopen');
  return { balanceFen: Number(bal), walletFen: Number(wal), version: Number(ver), opened: wopen === '1' };
}

async function journalOf(app: SwitchApp, cardNo = CARD_NO): Promise<JournalEntry[]> {
  return (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter((e) => e.fields['c'] === cardNo);
}

async function statementOf(app: SwitchApp, cardNo = CARD_NO): Promise<string[]> {
  return app.redis.zrange(app.keys.statement(cardNo), 0, -1);
}

/** The money of one card: account hash (without the sync flag a tap may set), journal, statement. */
async function moneyState(app: SwitchApp, cardNo = CARD_NO): Promise<unknown> {
  const { sync: _sync, ...fields } = await app.redis.hgetall(app.keys.account(cardNo));
  return {
    account: fields,
    journal: await journalOf(app, cardNo),
    journalLength: await app.redis.xlen(app.keys.journalOfCard(cardNo)),
    statement: await app.redis.zrange(app.keys.statement(cardNo), 0, -1, 'WITHSCORES'),
  };
}

/** Opens the wallet with the first settlement swipe (sequence 1). */
async function openWallet(f: Fixture): Promise<SettleResponse> {
  const { res } = await settle(f, settleRequest(1));
  expect(res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, opened: true, movedToWalletFen: WALLET_FEN });
  return res;
}

/**
 * Replays the card's journal party by party: the account and wallet it gives must equal the stored
 * ones, every entry's `b` / `wb` must equal the running account / wallet, and the money that left
 * (to the water merchant) plus what is left on the card must equal what came in (the opening balance).
 */
async function expectConserved(app: SwitchApp, openingFen: number, cardNo = CARD_NO): Promise<void> {
  const parties = new Map<string, number>();
  const add = (party: string, fen: number) => parties.set(party, (parties.get(party) ?? 0) + fen);
  for (const { fields } of await journalOf(app, cardNo)) {
    const amountFen = Number(fields['a']);
    expect(Number.isSafeInteger(amountFen) && amountFen > 0).toBe(true);
    add(fields['f'] ?? '', -amountFen);
    add(fields['t'] ?? '', amountFen);
    expect(Number(fields['b'])).toBe(parties.get(`a:${cardNo}`) ?? 0);
    if (['wopen', 'wset', 'wpay'].includes(fields['k'] ?? '')) expect(Number(fields['wb'])).toBe(parties.get(`w:${cardNo}`) ?? 0);
  }
  const stored = await account(app, cardNo);
  const accountFen = parties.get(`a:${cardNo}`) ?? 0;
  const walletFen = parties.get(`w:${cardNo}`) ?? 0;
  const merchantFen = parties.get(`m:${WATER_TERMINAL.merchantId}`) ?? 0;
  expect(accountFen).toBe(stored.balanceFen);
  expect(walletFen).toBe(stored.walletFen);
  expect(parties.get('x:opening') ?? 0).toBe(-openingFen);
  expect(accountFen + walletFen + merchantFen).toBe(openingFen);
  expect(stored.walletFen).toBeGreaterThanOrEqual(0);
  expect(stored.walletFen).toBeLessThanOrEqual(WALLET_FEN);
  expect(stored.balanceFen).toBeGreaterThanOrEqual(0);
}

describe('opening the small wallet', () => {
  it('the first settlement swipe moves 10.00 from the account into the wallet, with a wopen entry and statement line', async () => {
    const f = await start('wopen');
    const before = await account(f.app);
    expect(before.opened).toBe(false);

    const { res } = await settle(f, settleRequest(1));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_APPROVED,
      declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
      balanceAfterFen: OPENING_FEN - WALLET_FEN,
      spentFen: 0,
      movedToWalletFen: WALLET_FEN,
      smallWalletAfterFen: WALLET_FEN,
      opened: true,
    });
    expect(res.displayText).toContain('10.00');
    expect(res.displayText).toContain('490.00');
    expect(await account(f.app)).toEqual({
      balanceFen: OPENING_FEN - WALLET_FEN,
      walletFen: WALLET_FEN,
      version: before.version + 1,
      opened: true,
    });

    const entries = (await journalOf(f.app)).filter((e) => e.fields['k'] === 'wopen');
    expect(entries).toHaveLength(1);
    expect(entries[0]?.fields).toMatchObject({
      k: 'wopen',
      c: CARD_NO,
      a: '1000',
      f: `a:${CARD_NO}`,
      t: `w:${CARD_NO}`,
      b: String(OPENING_FEN - WALLET_FEN),
      wb: '1000',
      v: String(before.version + 1),
      tm: SETTLE_TERMINAL.id,
      sq: '1',
    });
    const txnId = entries[0]?.id ?? '';
    expect(await statementOf(f.app)).toContain(`${txnId}|wopen|-1000|${OPENING_FEN - WALLET_FEN}|${SETTLE_TERMINAL.id}|1`);
    await expectConserved(f.app, OPENING_FEN);
  });

  it('a first swipe with less than 10.00 on the account is declined INSUFFICIENT_FUNDS and opens nothing', async () => {
    const f = await start('wopenpoor', 999);
    const before = await moneyState(f.app);

    const { res } = await settle(f, settleRequest(1));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS,
      balanceAfterFen: 999,
      movedToWalletFen: 0,
      smallWalletAfterFen: 0,
      opened: false,
    });
    expect(res.displayText).toContain('余额不足');
    expect(await moneyState(f.app)).toEqual(before);
  });

  it('a water debit before the wallet is opened is declined SMALL_WALLET_EMPTY, telling to swipe the settlement POS', async () => {
    const f = await start('notopened');
    const before = await moneyState(f.app);

    const { res } = await waterDebit(f, debitRequest(1, 100));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_SMALL_WALLET_EMPTY,
      smallWalletAfterFen: 0,
      transactionId: '',
    });
    expect(res.displayText).toContain('请先在结算机上刷卡');
    expect(await moneyState(f.app)).toEqual(before);
  });

  it('a tap on a water controller completes the card sync even when declined', async () => {
    const f = await start('sync');
    await f.app.redis.hset(f.app.keys.account(CARD_NO), 'sync', '0');
    await waterDebit(f, debitRequest(1, 100));
    expect(await f.app.redis.hget(f.app.keys.account(CARD_NO), 'sync')).toBe('1');
    await f.app.redis.hset(f.app.keys.account(CARD_NO), 'sync', '0');
    await settle(f, settleRequest(1));
    expect(await f.app.redis.hget(f.app.keys.account(CARD_NO), 'sync')).toBe('1');
  });
});

describe('water spending', () => {
  it('spends only from the wallet: the account balance is unchanged and the answer is the wallet', async () => {
    const f = await start('wpay');
    await openWallet(f);
    const before = await account(f.app);

    const { res } = await waterDebit(f, debitRequest(1, 250));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_APPROVED,
      declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
      smallWalletAfterFen: 750,
    });
    expect(res.displayText).toContain('小钱包余额7.50元');
    expect(await account(f.app)).toEqual({ ...before, walletFen: 750, version: before.version + 1 });

    const entries = (await journalOf(f.app)).filter((e) => e.fields['k'] === 'wpay');
    expect(entries).toHaveLength(1);
    expect(entries[0]?.id).toBe(res.transactionId);
    expect(entries[0]?.fields).toMatchObject({
      k: 'wpay',
      c: CARD_NO,
      a: '250',
      f: `w:${CARD_NO}`,
      t: `m:${WATER_TERMINAL.merchantId}`,
      b: String(before.balanceFen),
      wb: '750',
      tm: WATER_TERMINAL.id,
      sq: '1',
    });
    expect(await statementOf(f.app)).toContain(`${res.transactionId}|wpay|-250|750|${WATER_TERMINAL.id}|1`);
    await expectConserved(f.app, OPENING_FEN);
  });

  it('a debit larger than the wallet is declined SMALL_WALLET_EMPTY and changes nothing; the exact rest is spendable', async () => {
    const f = await start('wshort');
    await openWallet(f);
    expect((await waterDebit(f, debitRequest(1, 600))).res.smallWalletAfterFen).toBe(400);
    const before = await moneyState(f.app);

    const { res } = await waterDebit(f, debitRequest(2, 401));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_SMALL_WALLET_EMPTY,
      smallWalletAfterFen: 400,
      transactionId: '',
    });
    expect(res.displayText).toContain('4.00');
    expect(await moneyState(f.app)).toEqual(before);

    expect((await waterDebit(f, debitRequest(3, 400))).res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, smallWalletAfterFen: 0 });
    expect((await waterDebit(f, debitRequest(4, 1))).res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_SMALL_WALLET_EMPTY,
      smallWalletAfterFen: 0,
    });
    expect((await account(f.app)).walletFen).toBe(0);
    await expectConserved(f.app, OPENING_FEN);
  });

  it('exactly 10.00 is spendable between two settlements, and again after the next one', async () => {
    const f = await start('wcap');
    await openWallet(f);
    let sequence = 1;
    for (const amountFen of [300, 300, 400]) {
      expect((await waterDebit(f, debitRequest(sequence++, amountFen))).res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    }
    expect((await waterDebit(f, debitRequest(sequence++, 1))).res.declineReason).toBe(DeclineReason.DECLINE_REASON_SMALL_WALLET_EMPTY);

    const settled = await settle(f, settleRequest(2));
    expect(settled.res).toMatchObject({
      outcome: Outcome.OUTCOME_APPROVED,
      spentFen: 1_000,
      movedToWalletFen: 1_000,
      balanceAfterFen: OPENING_FEN - 2_000,
    });

    expect((await waterDebit(f, debitRequest(sequence++, 1_000))).res).toMatchObject({
      outcome: Outcome.OUTCOME_APPROVED,
      smallWalletAfterFen: 0,
    });
    expect((await waterDebit(f, debitRequest(sequence++, 1))).res.outcome).toBe(Outcome.OUTCOME_DECLINED);
    await expectConserved(f.app, OPENING_FEN);
  });
});

describe('settlement', () => {
  it('charges what was spent by refilling the wallet to 10.00, answering the balance and the amount spent', async () => {
    const f = await start('wset');
    await openWallet(f);
    await waterDebit(f, debitRequest(1, 250));
    const before = await account(f.app);

    const { res } = await settle(f, settleRequest(2));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_APPROVED,
      balanceAfterFen: OPENING_FEN - WALLET_FEN - 250,
      spentFen: 250,
      movedToWalletFen: 250,
      smallWalletAfterFen: WALLET_FEN,
      opened: false,
    });
    expect(res.displayText).toBe('结算成功 本次消费2.50元 余额487.50元');
    expect(await account(f.app)).toEqual({
      balanceFen: OPENING_FEN - WALLET_FEN - 250,
      walletFen: WALLET_FEN,
      version: before.version + 1,
      opened: true,
    });
    const entries = (await journalOf(f.app)).filter((e) => e.fields['k'] === 'wset');
    expect(entries).toHaveLength(1);
    expect(entries[0]?.fields).toMatchObject({
      a: '250',
      f: `a:${CARD_NO}`,
      t: `w:${CARD_NO}`,
      b: String(OPENING_FEN - WALLET_FEN - 250),
      wb: '1000',
      tm: SETTLE_TERMINAL.id,
      sq: '2',
    });
    expect(await statementOf(f.app)).toContain(`${entries[0]?.id}|wset|-250|${OPENING_FEN - WALLET_FEN - 250}|${SETTLE_TERMINAL.id}|2`);
    await expectConserved(f.app, OPENING_FEN);
  });

  it('with nothing spent: approved, moves nothing and writes no journal entry or statement line', async () => {
    const f = await start('wsetnone');
    await openWallet(f);
    const before = await moneyState(f.app);

    const { res } = await settle(f, settleRequest(2));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_APPROVED,
      balanceAfterFen: OPENING_FEN - WALLET_FEN,
      spentFen: 0,
      movedToWalletFen: 0,
      smallWalletAfterFen: WALLET_FEN,
      opened: false,
    });
    expect(res.displayText).toContain('本次消费0.00元');
    expect(await moneyState(f.app)).toEqual(before);
  });

  it('a balance smaller than what was spent refills what it covers: balance 0, never negative, wallet below 10.00', async () => {
    const f = await start('wsetpartial', 1_100);
    await openWallet(f);
    await waterDebit(f, debitRequest(1, 300));

    const { res } = await settle(f, settleRequest(2));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_APPROVED,
      balanceAfterFen: 0,
      spentFen: 300,
      movedToWalletFen: 100,
      smallWalletAfterFen: 800,
    });
    expect(res.displayText).toContain('余额不足');
    expect(await account(f.app)).toMatchObject({ balanceFen: 0, walletFen: 800 });
    await expectConserved(f.app, 1_100);

    // The wallet still spends what it holds; the next settlement then has nothing to charge it with.
    expect((await waterDebit(f, debitRequest(2, 800))).res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, smallWalletAfterFen: 0 });
    const before = await moneyState(f.app);
    const again = await settle(f, settleRequest(3));
    expect(again.res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS,
      balanceAfterFen: 0,
      spentFen: 1_000,
      movedToWalletFen: 0,
      smallWalletAfterFen: 0,
    });
    expect(await moneyState(f.app)).toEqual(before);
    await expectConserved(f.app, 1_100);
  });

  it('a zero balance with something spent is declined INSUFFICIENT_FUNDS and changes nothing', async () => {
    const f = await start('wsetzero', WALLET_FEN);
    expect((await openWallet(f)).balanceAfterFen).toBe(0);
    await waterDebit(f, debitRequest(1, 100));
    const before = await moneyState(f.app);

    const { res } = await settle(f, settleRequest(2));

    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS,
      balanceAfterFen: 0,
      spentFen: 100,
      movedToWalletFen: 0,
      smallWalletAfterFen: 900,
    });
    expect(res.displayText).toContain('余额不足');
    expect(await moneyState(f.app)).toEqual(before);
    await expectConserved(f.app, WALLET_FEN);
  });
});

describe('idempotency on (terminal, sequence number)', () => {
  it('a settlement retry returns the first answer byte for byte and moves no money, also after the wallet changed', async () => {
    const f = await start('settleretry');
    const first = await settle(f, settleRequest(1));
    await waterDebit(f, debitRequest(1, 500));
    const before = await moneyState(f.app);

    const retry = await settle(f, settleRequest(1));

    expect(retry.bytes.equals(first.bytes)).toBe(true);
    expect(retry.res.opened).toBe(true);
    expect(await moneyState(f.app)).toEqual(before);
  });

  it('a water debit retry returns the first answer byte for byte and spends once', async () => {
    const f = await start('debitretry');
    await openWallet(f);
    const first = await waterDebit(f, debitRequest(1, 300));
    await waterDebit(f, debitRequest(2, 100));
    const before = await moneyState(f.app);

    const retry = await waterDebit(f, debitRequest(1, 300));

    expect(retry.bytes.equals(first.bytes)).toBe(true);
    expect(retry.res.smallWalletAfterFen).toBe(700);
    expect(await moneyState(f.app)).toEqual(before);
    expect((await account(f.app)).walletFen).toBe(600);
  });

  it('a retry of a declined water debit replays the decline even after the wallet was refilled', async () => {
    const f = await start('debitretrydecl');
    const first = await waterDebit(f, debitRequest(1, 300));
    expect(first.res.declineReason).toBe(DeclineReason.DECLINE_REASON_SMALL_WALLET_EMPTY);
    await openWallet(f);
    const before = await moneyState(f.app);

    const retry = await waterDebit(f, debitRequest(1, 300));

    expect(retry.bytes.equals(first.bytes)).toBe(true);
    expect(await moneyState(f.app)).toEqual(before);
  });

  it('the same water key with a different amount is ALREADY_EXISTS and changes nothing', async () => {
    const f = await start('debitconflict');
    await openWallet(f);
    const first = await waterDebit(f, debitRequest(1, 300));
    const before = await dumpKeySpace(f.app.redis, f.app.keys.prefix);

    const err = await grpcError(waterDebit(f, debitRequest(1, 301)));

    expect(err.code).toBe(Status.ALREADY_EXISTS);
    expect(err.details).toMatch(/sequence number 1\b/);
    expect(await dumpKeySpace(f.app.redis, f.app.keys.prefix)).toEqual(before);
    expect((await waterDebit(f, debitRequest(1, 300))).bytes.equals(first.bytes)).toBe(true);
  });

  it.each([
    ['in the same ledger shard', true],
    ['in another ledger shard', false],
  ] as const)('the same key with another card (%s) is ALREADY_EXISTS on both RPCs and changes nothing', async (_where, sameShard) => {
    const f = await start(sameShard ? 'wothersame' : 'wotherx');
    const otherCard = cardInShard(f.app, CARD_NO, sameShard);
    const other = { credential: { card: { cardSerial: 'CD34EF5601' } } };
    await openCard(f.app, otherCard, 'CD34EF5601', OPENING_FEN);
    await openWallet(f);
    await waterDebit(f, debitRequest(1, 100));
    const before = await dumpKeySpace(f.app.redis, f.app.keys.prefix);

    expect((await grpcError(settle(f, settleRequest(1, other)))).code).toBe(Status.ALREADY_EXISTS);
    expect((await grpcError(waterDebit(f, debitRequest(1, 100, other)))).code).toBe(Status.ALREADY_EXISTS);

    expect(await dumpKeySpace(f.app.redis, f.app.keys.prefix)).toEqual(before);
  });
});

/** A card number whose account lives in the same ledger shard as `cardNo`, or in another one. */
function cardInShard(app: SwitchApp, cardNo: string, same: boolean): string {
  const shard = app.keys.shardOf(cardNo);
  for (let n = 20239000; n < 20240000; n++) {
    const candidate = String(n);
    if (candidate !== cardNo && (app.keys.shardOf(candidate) === shard) === same) return candidate;
  }
  throw new Error('no card number found for the shard');
}

describe('card refusals', () => {
  it.each([
    ['lost', DeclineReason.DECLINE_REASON_CARD_LOST],
    ['frozen', DeclineReason.DECLINE_REASON_CARD_FROZEN],
    ['cancelled', DeclineReason.DECLINE_REASON_CARD_CANCELLED],
  ] as const)('a %s card is declined on both RPCs and nothing changes', async (status, reason) => {
    const f = await start(`w${status}`);
    await openWallet(f);
    await waterDebit(f, debitRequest(1, 400));
    await f.app.ledger.setStatus(CARD_NO, status);
    const before = await moneyState(f.app);

    const debit = await waterDebit(f, debitRequest(2, 100));
    const settled = await settle(f, settleRequest(2));

    expect(debit.res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: reason,
      smallWalletAfterFen: 600,
      transactionId: '',
    });
    // The settlement POS shows the amount spent from the wallet and still owed (4.00), not 0: nothing is charged.
    expect(settled.res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: reason,
      movedToWalletFen: 0,
      spentFen: 400,
      smallWalletAfterFen: 600,
      balanceAfterFen: OPENING_FEN - WALLET_FEN,
    });
    expect(settled.res.displayText).toContain('小钱包消费4.00元未结算');
    expect(await moneyState(f.app)).toEqual(before);
    // A retry answers the same bytes; once the card is active again the same 4.00 is charged.
    expect((await settle(f, settleRequest(2))).bytes).toEqual(settled.bytes);
    await f.app.ledger.setStatus(CARD_NO, 'active');
    expect((await settle(f, settleRequest(3))).res).toMatchObject({
      outcome: Outcome.OUTCOME_APPROVED,
      spentFen: 400,
      movedToWalletFen: 400,
    });
  });

  it('a lost card whose wallet was never opened is declined with nothing spent', async () => {
    const f = await start('wlostnew');
    await f.app.ledger.setStatus(CARD_NO, 'lost');
    const settled = await settle(f, settleRequest(1));
    expect(settled.res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_CARD_LOST,
      spentFen: 0,
      movedToWalletFen: 0,
      smallWalletAfterFen: 0,
      opened: false,
      displayText: '此卡已挂失',
    });
  });

  it("a replaced card's old serial is declined CARD_REPLACED on both RPCs; the new card works", async () => {
    const f = await start('wreplaced');
    await openWallet(f);
    const newSerial = 'EF56AB7890';
    await f.app.ledger.replaceCard(CARD_NO, 'RPL-1', newSerial);
    await f.app.redis.set(f.app.keys.serial(newSerial), CARD_NO);
    const before = await moneyState(f.app);

    const debit = await waterDebit(f, debitRequest(1, 100));
    const settled = await settle(f, settleRequest(2));

    expect(debit.res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_CARD_REPLACED,
      smallWalletAfterFen: 0,
    });
    expect(settled.res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_CARD_REPLACED,
      balanceAfterFen: 0,
    });
    expect(await moneyState(f.app)).toEqual(before);

    const withNewCard = await waterDebit(f, debitRequest(2, 100, { credential: { card: { cardSerial: newSerial } } }));
    expect(withNewCard.res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, smallWalletAfterFen: 900 });
  });

  it('an unknown card is declined UNKNOWN_CARD on both RPCs; only the sequence claims are recorded', async () => {
    const f = await start('wunknown');
    const before = await dumpKeySpace(f.app.redis, f.app.keys.prefix);
    const unknown = { credential: { card: { cardSerial: 'DEADBEEF01' } } };

    const debit = await waterDebit(f, debitRequest(1, 100, unknown));
    const settled = await settle(f, settleRequest(1, unknown));

    expect(debit.res).toMatchObject({ outcome: Outcome.OUTCOME_DECLINED, declineReason: DeclineReason.DECLINE_REASON_UNKNOWN_CARD });
    expect(settled.res).toMatchObject({ outcome: Outcome.OUTCOME_DECLINED, declineReason: DeclineReason.DECLINE_REASON_UNKNOWN_CARD });
    expect(withoutClaims(await dumpKeySpace(f.app.redis, f.app.keys.prefix))).toEqual(withoutClaims(before));
    expect(await f.app.redis.exists(f.app.keys.sequenceClaim(WATER_TERMINAL.id, 1), f.app.keys.sequenceClaim(SETTLE_TERMINAL.id, 1))).toBe(
      2,
    );
  });

  it('a retry of an unknown-card decline replays it byte for byte, even after the serial was registered in between', async () => {
    const f = await start('wunknownretry');
    const unknown = { credential: { card: { cardSerial: 'CAFE0001' } } };
    const debit = await waterDebit(f, debitRequest(1, 100, unknown));
    const settled = await settle(f, settleRequest(1, unknown));
    await openCard(f.app, '20230002', 'CAFE0001', OPENING_FEN);
    const before = await moneyState(f.app, '20230002');

    expect((await waterDebit(f, debitRequest(1, 100, unknown))).bytes.equals(debit.bytes)).toBe(true);
    expect((await settle(f, settleRequest(1, unknown))).bytes.equals(settled.bytes)).toBe(true);
    expect(await moneyState(f.app, '20230002')).toEqual(before);
  });
});

/** A key-space dump without the (terminal, sequence) claims, which a request records before its script runs. */
function withoutClaims(dump: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(dump).filter(([key]) => !key.includes(':{T:')));
}

describe('refused calls', () => {
  const cases: { name: string; code: Status; send: (f: Fixture) => Promise<unknown> }[] = [
    {
      name: 'a water controller calling Settle',
      code: Status.PERMISSION_DENIED,
      send: (f) => settle(f, settleRequest(5, { terminalId: WATER_TERMINAL.id }), WATER_TERMINAL),
    },
    {
      name: 'a settlement POS calling WaterDebit',
      code: Status.PERMISSION_DENIED,
      send: (f) => waterDebit(f, debitRequest(5, 100, { terminalId: SETTLE_TERMINAL.id }), SETTLE_TERMINAL),
    },
    {
      name: 'a canteen POS calling Settle',
      code: Status.PERMISSION_DENIED,
      send: (f) => settle(f, settleRequest(5, { terminalId: POS_TERMINAL.id }), POS_TERMINAL),
    },
    {
      name: 'a canteen POS calling WaterDebit',
      code: Status.PERMISSION_DENIED,
      send: (f) => waterDebit(f, debitRequest(5, 100, { terminalId: POS_TERMINAL.id }), POS_TERMINAL),
    },
    { name: 'water amount 0', code: Status.INVALID_ARGUMENT, send: (f) => waterDebit(f, debitRequest(5, 0)) },
    { name: 'water amount 1001', code: Status.INVALID_ARGUMENT, send: (f) => waterDebit(f, debitRequest(5, 1_001)) },
    { name: 'water sequence 0', code: Status.INVALID_ARGUMENT, send: (f) => waterDebit(f, debitRequest(0, 100)) },
    {
      name: 'water debit with a campus QR code',
      code: Status.INVALID_ARGUMENT,
      send: (f) => waterDebit(f, debitRequest(5, 100, { credential: { campusQr: { payload: 'QR-1' } } })),
    },
    {
      name: 'settlement with a campus QR code',
      code: Status.INVALID_ARGUMENT,
      send: (f) => settle(f, settleRequest(5, { credential: { campusQr: { payload: 'QR-1' } } })),
    },
    {
      name: 'settlement without a credential',
      code: Status.INVALID_ARGUMENT,
      send: (f) => settle(f, settleRequest(5, { credential: undefined })),
    },
    {
      name: 'settlement for another terminal id',
      code: Status.PERMISSION_DENIED,
      send: (f) => settle(f, settleRequest(5, { terminalId: 'SETTLE-OTHER' })),
    },
  ];

  it.each(cases)('$name is refused with its status and changes nothing', async ({ code, send }) => {
    const f = await start('wrefused');
    await openWallet(f);
    await waterDebit(f, debitRequest(1, 100));
    const before = await dumpKeySpace(f.app.redis, f.app.keys.prefix);

    expect((await grpcError(send(f))).code).toBe(code);

    expect(await dumpKeySpace(f.app.redis, f.app.keys.prefix)).toEqual(before);
  });
});

describe('wallet moves are not payments', () => {
  // Neither kind may call Reverse at all (grpc/auth.ts RPC_KINDS); reverse.lua refuses a wallet move too.
  it('Reverse of a water debit or a settlement is PERMISSION_DENIED for its terminal and moves no money', async () => {
    const f = await start('wnorev');
    await openWallet(f);
    await waterDebit(f, debitRequest(1, 300));
    const before = await moneyState(f.app);
    const reverse = (terminal: NewTerminal, originalSequenceNumber: number, amountFen: number) =>
      new Promise((resolve, reject) =>
        f.client.reverse(
          { terminalId: terminal.id, originalSequenceNumber, amountFen, credential: { card: { cardSerial: SERIAL } } },
          terminalMetadata(terminal),
          (err, value) => (err ? reject(err) : resolve(value)),
        ),
      );

    expect((await grpcError(reverse(WATER_TERMINAL, 1, 300))).code).toBe(Status.PERMISSION_DENIED);
    expect((await grpcError(reverse(SETTLE_TERMINAL, 1, 1_000))).code).toBe(Status.PERMISSION_DENIED);

    expect(await moneyState(f.app)).toEqual(before);
  });
});

describe('ledger invariants', () => {
  it('a stored wallet above 10.00 stops both scripts with INTERNAL and nothing changes', async () => {
    const f = await start('winvariant');
    await openWallet(f);
    await f.app.redis.hset(f.app.keys.account(CARD_NO), 'wal', '1500');
    const before = await dumpKeySpace(f.app.redis, f.app.keys.prefix);

    expect((await grpcError(waterDebit(f, debitRequest(1, 100)))).code).toBe(Status.INTERNAL);
    expect((await grpcError(settle(f, settleRequest(2)))).code).toBe(Status.INTERNAL);

    expect(withoutClaims(await dumpKeySpace(f.app.redis, f.app.keys.prefix))).toEqual(withoutClaims(before));
  });

  it('a mixed day of swipes conserves money: account + wallet + paid to the water merchant == the opening balance', async () => {
    const openingFen = 2_345;
    const f = await start('wconserve', openingFen);
    let waterSequence = 1;
    let settleSequence = 1;
    await settle(f, settleRequest(settleSequence++));
    for (const amountFen of [123, 456, 1_000, 421, 77]) {
      await waterDebit(f, debitRequest(waterSequence++, amountFen));
      await expectConserved(f.app, openingFen);
    }
    for (let i = 0; i < 3; i++) {
      await settle(f, settleRequest(settleSequence++));
      await waterDebit(f, debitRequest(waterSequence++, 999));
      await expectConserved(f.app, openingFen);
    }
    const merchantFen = (await journalOf(f.app)).filter((e) => e.fields['k'] === 'wpay').reduce((sum, e) => sum + Number(e.fields['a']), 0);
    const { balanceFen, walletFen } = await account(f.app);
    expect(balanceFen + walletFen + merchantFen).toBe(openingFen);
    expect(balanceFen).toBe(0);
  });
});
