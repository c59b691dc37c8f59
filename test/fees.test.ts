// KioskService/PayUtilityFee against a real switch and Redis, with the fee-provider simulator: the fee
// is paid once per (kiosk, sequence number) with the card password; a provider that refuses, times out
// or errs gets the money given back exactly once; a retry after success never calls the provider
// again; a crash between the debit and the provider is finished by the retry or the recovery sweep.
import { status as Status } from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeclineReason, Outcome, UtilityKind } from '../proto/gen/cardswitch/v1/common.js';
import { PayUtilityFeeRequest, PayUtilityFeeResponse } from '../proto/gen/cardswitch/v1/kiosk.js';
import type { SwitchApp } from '../switch/app.js';
import { runFeeAttentionCommand } from '../switch/cli/fee-attention.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { feesNeedingAttention, MAX_FEE_RETRY_WAIT_MS, payUtilityFee, recoverPendingFees } from '../switch/domain/fees.js';
import { FeeProviderSimulator, providerOrderId, type FeeProvider } from '../switch/fees/index.js';
import { MoneyKeys } from '../switch/ledger/money.js';
import { KIOSK_TERMINAL, kioskClient, passwordHash, startClockedSwitch, TestClock } from './helpers/clients.js';
import { testRedisUrl } from './helpers/redis.js';
import { dumpKeySpace, grpcError, openCard, readJournal, terminalMetadata, unaryBytes } from './helpers/switch.js';

/** What an operator reads: campus time (UTC+8) with its offset, computed here apart from the CLI's own code. */
function campusClock(ms: number): string {
  return `${new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ')} +08:00`;
}
/** An ISO time in UTC ('...Z'), which operators in campus time misread by 8 hours. */
const UTC_ISO = /\d{2}:\d{2}:\d{2}(\.\d+)?Z/;

const PIN = '135790';
const PROVIDER_TIMEOUT_MS = 200;
const START_MS = Date.UTC(2026, 10, 26, 2, 0, 0);
const PAY_FEE = '/cardswitch.v1.KioskService/PayUtilityFee';

let app: SwitchApp;
let kiosk: ReturnType<typeof kioskClient>;
let sim = new FeeProviderSimulator();
let pinHash = '';
let cardCounter = 0;
let seq = 0;

beforeAll(async () => {
  // The switch's provider is built once at start; each test gets a fresh simulator behind it.
  const provider: FeeProvider = {
    pay: (order, signal) => sim.pay(order, signal),
    cancel: (orderId, kind, signal) => sim.cancel(orderId, kind, signal),
  };
  const env = { PASSWORD_SCRYPT_N: '1024', FEE_PROVIDER_TIMEOUT_MS: String(PROVIDER_TIMEOUT_MS) };
  app = await startClockedSwitch('fees', new TestClock(START_MS), env, { feeProvider: provider });
  await app.terminals.register(KIOSK_TERMINAL);
  kiosk = kioskClient(app);
  pinHash = await passwordHash(app, PIN);
});
afterAll(async () => {
  kiosk.close();
  await app.stop();
});
beforeEach(() => {
  sim = new FeeProviderSimulator();
});

async function newCard(openingFen = 20_000): Promise<{ cardNo: string; serial: string }> {
  cardCounter++;
  const cardNo = String(20260000 + cardCounter);
  const serial = `EE${String(cardCounter).padStart(6, '0')}`;
  await openCard(app, cardNo, serial, openingFen, { pwd: pinHash });
  return { cardNo, serial };
}

function networkFee(serial: string, amountFen: number, overrides: Partial<PayUtilityFeeRequest> = {}): PayUtilityFeeRequest {
  return {
    cardholder: { card: { cardSerial: serial } },
    password: PIN,
    sequenceNumber: ++seq,
    kind: UtilityKind.UTILITY_KIND_NETWORK,
    networkAccount: 'zhang.san@campus',
    building: '',
    room: '',
    amountFen,
    ...overrides,
  };
}

function electricityFee(serial: string, amountFen: number, overrides: Partial<PayUtilityFeeRequest> = {}): PayUtilityFeeRequest {
  return {
    ...networkFee(serial, amountFen),
    kind: UtilityKind.UTILITY_KIND_ELECTRICITY,
    networkAccount: '',
    building: '学4',
    room: '402',
    ...overrides,
  };
}

async function payFee(req: PayUtilityFeeRequest): Promise<{ res: PayUtilityFeeResponse; bytes: Buffer }> {
  const bytes = await unaryBytes(kiosk, PAY_FEE, PayUtilityFeeRequest.encode(req).finish(), terminalMetadata(KIOSK_TERMINAL));
  return { res: PayUtilityFeeResponse.decode(bytes), bytes };
}

async function balance(cardNo: string): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));
}

async function entriesOf(cardNo: string) {
  return (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter((e) => e.fields['c'] === cardNo);
}

async function money(cardNo: string): Promise<{ balance: number; journalLength: number; statement: number }> {
  return {
    balance: await balance(cardNo),
    journalLength: await app.redis.xlen(app.keys.journalOfCard(cardNo)),
    statement: await app.redis.zcard(app.keys.statement(cardNo)),
  };
}

function orderOf(req: PayUtilityFeeRequest): string {
  return providerOrderId(KIOSK_TERMINAL.id, req.sequenceNumber);
}

async function pendingCount(cardNo: string): Promise<number> {
  return app.redis.zcard(new MoneyKeys(app.keys).feePendingOfCard(cardNo));
}

describe('paying a fee', () => {
  it('pays a network fee with the card password: approved with the provider receipt, one fee entry', async () => {
    const card = await newCard(20_000);
    const req = networkFee(card.serial, 5_000);
    const { res } = await payFee(req);
    expect(res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 15_000, passwordAttemptsLeft: 0 });
    expect(res.providerReceipt).toMatch(/^SIM-NETWORK-\d+$/);
    expect(res.displayText).toContain('网费缴费成功 50.00元 余额150.00元');
    const entries = await entriesOf(card.cardNo);
    expect(entries.map((e) => e.fields['k'])).toEqual(['open', 'fee']);
    expect(entries[1]?.id).toBe(res.transactionId);
    expect(entries[1]?.fields).toMatchObject({
      a: '5000',
      f: `a:${card.cardNo}`,
      t: 'u:network',
      b: '15000',
      tm: KIOSK_TERMINAL.id,
      sq: String(req.sequenceNumber),
    });
    expect(await app.redis.zrange(app.keys.statement(card.cardNo), 0, -1)).toContain(
      `${res.transactionId}|fee|-5000|15000|${KIOSK_TERMINAL.id}|${req.sequenceNumber}`,
    );
    expect(sim.delivered()).toEqual([
      { orderId: orderOf(req), target: { kind: 'network', account: 'zhang.san@campus' }, amountFen: 5_000, cardNo: card.cardNo },
    ]);
    expect(await pendingCount(card.cardNo)).toBe(0);
  });

  it('pays an electricity fee to a building and room', async () => {
    const card = await newCard(20_000);
    const req = electricityFee(card.serial, 10_000);
    const { res } = await payFee(req);
    expect(res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 10_000 });
    expect(res.displayText).toContain('电费缴费成功');
    expect(sim.delivered()[0]?.target).toEqual({ kind: 'electricity', building: '学4', room: '402' });
    expect((await entriesOf(card.cardNo)).at(-1)?.fields['t']).toBe('u:electricity');
  });

  it('a retry after success replays the answer byte for byte and does not call the provider again', async () => {
    const card = await newCard(20_000);
    const req = networkFee(card.serial, 3_000);
    const first = await payFee(req);
    const after = await money(card.cardNo);
    const again = await payFee(req);
    expect(again.bytes.equals(first.bytes)).toBe(true);
    expect(sim.callsOf(orderOf(req), 'pay')).toBe(1);
    expect(await money(card.cardNo)).toEqual(after);
    // The same sequence number with other parameters is a different request.
    const err = await grpcError(payFee({ ...req, amountFen: 3_001 }));
    expect(err.code).toBe(Status.ALREADY_EXISTS);
    expect(await money(card.cardNo)).toEqual(after);
  });
});

describe('card password and card state', () => {
  it('a wrong password is declined (WRONG_PIN, attempts left), counted, and takes nothing; five lock password use (PIN_LOCKED)', async () => {
    const card = await newCard(20_000);
    const before = await money(card.cardNo);
    const req = networkFee(card.serial, 1_000, { password: '000000' });
    for (let attempt = 1; attempt <= 4; attempt++) {
      const { res } = await payFee(req);
      expect(res).toMatchObject({
        outcome: Outcome.OUTCOME_DECLINED,
        declineReason: DeclineReason.DECLINE_REASON_WRONG_PIN,
        passwordAttemptsLeft: 5 - attempt,
        transactionId: '',
      });
      expect(res.displayText).toContain(`今日还可尝试${5 - attempt}次`);
    }
    expect(await app.redis.hget(app.keys.account(card.cardNo), 'pfail')).toBe('4');
    const fifth = await payFee(req);
    expect(fifth.res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_PIN_LOCKED,
      passwordAttemptsLeft: 0,
    });
    const locked = await payFee({ ...req, password: PIN });
    expect(locked.res.declineReason).toBe(DeclineReason.DECLINE_REASON_PIN_LOCKED);
    expect(await money(card.cardNo)).toEqual(before);
    expect(sim.calls).toEqual([]);
  });

  it('a wrong password, then the right one on the same sequence number, pays once', async () => {
    const card = await newCard(20_000);
    const req = networkFee(card.serial, 1_000, { password: '000001' });
    expect((await payFee(req)).res.declineReason).toBe(DeclineReason.DECLINE_REASON_WRONG_PIN);
    const { res } = await payFee({ ...req, password: PIN });
    expect(res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 19_000 });
  });

  it('a lost or frozen card is declined and nothing is taken; so is an insufficient balance', async () => {
    const lost = await newCard(20_000);
    await app.ledger.setStatus(lost.cardNo, 'lost');
    const beforeLost = await money(lost.cardNo);
    expect((await payFee(networkFee(lost.serial, 1_000))).res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_CARD_LOST,
      balanceAfterFen: 20_000,
    });
    expect(await money(lost.cardNo)).toEqual(beforeLost);

    const frozen = await newCard(20_000);
    await app.ledger.setStatus(frozen.cardNo, 'frozen');
    const beforeFrozen = await money(frozen.cardNo);
    expect((await payFee(networkFee(frozen.serial, 1_000))).res.declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_FROZEN);
    expect(await money(frozen.cardNo)).toEqual(beforeFrozen);

    const poor = await newCard(999);
    const beforePoor = await money(poor.cardNo);
    const { res } = await payFee(networkFee(poor.serial, 1_000));
    expect(res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS,
      balanceAfterFen: 999,
    });
    expect(await money(poor.cardNo)).toEqual(beforePoor);
    expect(sim.calls).toEqual([]);
  });

  it('refuses invalid targets, amounts and passwords with INVALID_ARGUMENT before checking the password', async () => {
    const card = await newCard(100_000);
    const before = { ...(await money(card.cardNo)), account: await app.redis.hgetall(app.keys.account(card.cardNo)) };
    const bad: PayUtilityFeeRequest[] = [
      networkFee(card.serial, 1_000, { networkAccount: 'ab' }),
      networkFee(card.serial, 1_000, { networkAccount: 'has space' }),
      networkFee(card.serial, 1_000, { networkAccount: 'x'.repeat(33) }),
      networkFee(card.serial, 1_000, { building: '学4' }),
      electricityFee(card.serial, 1_000, { room: '40 2' }),
      electricityFee(card.serial, 1_000, { room: '123456789' }),
      electricityFee(card.serial, 1_000, { building: '' }),
      electricityFee(card.serial, 1_000, { building: '学'.repeat(17) }),
      electricityFee(card.serial, 1_000, { building: 'a|b' }),
      electricityFee(card.serial, 1_000, { networkAccount: 'zhang.san' }),
      networkFee(card.serial, 1_000, { kind: UtilityKind.UTILITY_KIND_UNSPECIFIED }),
      networkFee(card.serial, 99),
      networkFee(card.serial, 50_001),
      networkFee(card.serial, 1_000, { sequenceNumber: 0 }),
      networkFee(card.serial, 1_000, { password: '' }),
      networkFee(card.serial, 1_000, { password: '12345' }),
      networkFee(card.serial, 1_000, { cardholder: undefined }),
    ];
    for (const req of bad) {
      const err = await grpcError(payFee(req));
      expect(err.code, JSON.stringify(req)).toBe(Status.INVALID_ARGUMENT);
    }
    expect({ ...(await money(card.cardNo)), account: await app.redis.hgetall(app.keys.account(card.cardNo)) }).toEqual(before);
    expect(sim.calls).toEqual([]);
    // The edges are allowed.
    expect((await payFee(electricityFee(card.serial, 100, { building: '学'.repeat(16), room: 'A-12345' }))).res.outcome).toBe(
      Outcome.OUTCOME_APPROVED,
    );
    expect((await payFee(networkFee(card.serial, 50_000, { networkAccount: 'x'.repeat(32) }))).res.outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('answers NOT_FOUND for an unknown card', async () => {
    const err = await grpcError(payFee(networkFee('DEADBEEF', 1_000)));
    expect(err.code).toBe(Status.NOT_FOUND);
  });

  it('a fee for an account that does not exist takes no sequence number: the next request under it, for a real card, pays', async () => {
    // Below the kiosk (whose password check finds no such card first): fee-debit.lua records no answer
    // for an unknown account, so the request must leave nothing, not even its sequence claim.
    const sequence = ++seq;
    const target = { kind: 'network', account: 'zhang.san@campus' } as const;
    const keySpace = await dumpKeySpace(app.redis, app.keys.prefix);
    const answer = await payUtilityFee(app.context, {
      cardNo: '99999990',
      terminalId: KIOSK_TERMINAL.id,
      sequence,
      target,
      amountFen: 1_000,
    });
    expect(answer.code).toBe('unknown_card');
    expect(await dumpKeySpace(app.redis, app.keys.prefix)).toEqual(keySpace);
    const card = await newCard(20_000);
    const paid = await payFee(networkFee(card.serial, 1_000, { sequenceNumber: sequence }));
    expect(paid.res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(await balance(card.cardNo)).toBe(19_000);
  });
});

describe('provider failures', () => {
  async function expectGivenBackOnce(card: { cardNo: string }, req: PayUtilityFeeRequest, openingFen: number): Promise<Buffer> {
    const first = await payFee(req);
    expect(first.res).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_CHANNEL_DECLINED,
      balanceAfterFen: openingFen,
      providerReceipt: '',
    });
    expect(first.res.displayText).toContain('已退回');
    expect(await balance(card.cardNo)).toBe(openingFen);
    const kinds = (await entriesOf(card.cardNo)).map((e) => [e.fields['k'], e.fields['a'], e.fields['f'], e.fields['t']]);
    expect(kinds).toEqual([
      ['open', String(openingFen), 'x:opening', `a:${card.cardNo}`],
      ['fee', String(req.amountFen), `a:${card.cardNo}`, 'u:network'],
      ['feeback', String(req.amountFen), 'u:network', `a:${card.cardNo}`],
    ]);
    expect(await pendingCount(card.cardNo)).toBe(0);
    // Exactly once: a retry replays the decline and gives nothing back again, whatever the provider does now.
    sim.payMode = 'deliver';
    const after = await money(card.cardNo);
    const again = await payFee(req);
    expect(again.bytes.equals(first.bytes)).toBe(true);
    expect(await money(card.cardNo)).toEqual(after);
    expect(sim.delivered()).toEqual([]);
    return first.bytes;
  }

  it('a refusing provider: the money is given back exactly once and the answer says why', async () => {
    const card = await newCard(20_000);
    sim.payMode = 'refuse';
    const req = networkFee(card.serial, 2_000);
    await expectGivenBackOnce(card, req, 20_000);
    expect(sim.callsOf(orderOf(req), 'pay')).toBe(1);
    expect(sim.callsOf(orderOf(req), 'cancel')).toBe(0);
    const { res } = await payFee(req);
    expect(res.displayText).toContain('户号不存在');
  });

  it('a provider that does not answer in time: the order is voided, then the money is given back exactly once', async () => {
    const card = await newCard(20_000);
    sim.payMode = 'hang';
    const req = networkFee(card.serial, 2_000);
    const startedMs = Date.now();
    await expectGivenBackOnce(card, req, 20_000);
    expect(Date.now() - startedMs).toBeLessThan(PROVIDER_TIMEOUT_MS * 10);
    expect(sim.callsOf(orderOf(req), 'cancel')).toBe(1);
  });

  it('a provider that errs: likewise voided and given back once', async () => {
    const card = await newCard(20_000);
    sim.payMode = 'error';
    await expectGivenBackOnce(card, networkFee(card.serial, 2_000), 20_000);
  });

  it('a provider that delivered but whose answer was lost: cancel reports the receipt, the fee is approved and nothing is given back', async () => {
    const card = await newCard(20_000);
    sim.payMode = 'deliver-then-hang';
    const req = networkFee(card.serial, 2_000);
    const { res } = await payFee(req);
    expect(res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 18_000 });
    expect(res.providerReceipt).toMatch(/^SIM-NETWORK-/);
    expect((await entriesOf(card.cardNo)).map((e) => e.fields['k'])).toEqual(['open', 'fee']);
  });

  it('provider and cancel both silent: the answer is PENDING with the money taken; the retry finishes the job with the same provider order', async () => {
    const card = await newCard(20_000);
    sim.payMode = 'hang';
    sim.cancelMode = 'hang';
    const req = networkFee(card.serial, 2_000);
    const pending = await payFee(req);
    expect(pending.res).toMatchObject({ outcome: Outcome.OUTCOME_PENDING, balanceAfterFen: 18_000, providerReceipt: '' });
    expect(await pendingCount(card.cardNo)).toBe(1);
    // While pending, the record never expires (a provider outage may outlast REQUEST_TTL_DAYS) ...
    const requestKey = app.keys.request(card.cardNo, KIOSK_TERMINAL.id, req.sequenceNumber);
    expect(await app.redis.ttl(requestKey)).toBe(-1);
    sim.payMode = 'deliver';
    sim.cancelMode = 'answer';
    const done = await payFee(req);
    // ... and once final it expires like every request record.
    expect(await app.redis.ttl(requestKey)).toBeGreaterThan(0);
    expect(done.res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 18_000 });
    expect(sim.callsOf(orderOf(req), 'pay')).toBe(2);
    expect(sim.delivered()).toHaveLength(1);
    expect(await pendingCount(card.cardNo)).toBe(0);
    expect(await balance(card.cardNo)).toBe(18_000);
  });
});

describe('a crash between the debit and the provider', () => {
  function refOf(cardNo: string, sequence: number, amountFen: number) {
    return {
      cardNo,
      terminalId: KIOSK_TERMINAL.id,
      sequence,
      amountFen,
      kind: 'network' as const,
      targetJson: JSON.stringify({ kind: 'network', account: 'zhang.san@campus' }),
    };
  }

  it("the kiosk's retry with the same sequence number calls the provider and completes; the fee is taken once", async () => {
    const card = await newCard(20_000);
    const req = networkFee(card.serial, 2_500);
    // The switch took the money and died before calling the provider.
    const debit = await app.context.money.feeDebit(refOf(card.cardNo, req.sequenceNumber, 2_500));
    expect(debit.code).toBe('pending');
    expect(sim.calls).toEqual([]);
    const { res } = await payFee(req);
    expect(res).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 17_500, transactionId: debit.transactionId });
    expect(sim.callsOf(orderOf(req), 'pay')).toBe(1);
    expect((await entriesOf(card.cardNo)).map((e) => e.fields['k'])).toEqual(['open', 'fee']);
  });

  it('without a retry, the recovery sweep delivers or gives back every pending request, once', async () => {
    const deliverCard = await newCard(20_000);
    const refuseCard = await newCard(20_000);
    const money = app.context.money;
    const deliverSeq = ++seq;
    const refuseSeq = ++seq;
    await money.feeDebit(refOf(deliverCard.cardNo, deliverSeq, 1_000));
    await money.feeDebit(refOf(refuseCard.cardNo, refuseSeq, 1_000));
    // The provider already refuses the second order (for example, the account closed meanwhile).
    sim.payMode = 'refuse';
    await sim.pay(
      {
        orderId: providerOrderId(KIOSK_TERMINAL.id, refuseSeq),
        target: { kind: 'network', account: 'zhang.san@campus' },
        amountFen: 1_000,
        cardNo: refuseCard.cardNo,
      },
      new AbortController().signal,
    );
    sim.payMode = 'deliver';

    const report = await recoverPendingFees(app.context, { olderThanMs: 0, maxPerShard: 100 });
    expect(report).toMatchObject({ delivered: 1, givenBack: 1, stillPending: 0, broken: 0 });
    expect(await balance(deliverCard.cardNo)).toBe(19_000);
    expect(await balance(refuseCard.cardNo)).toBe(20_000);
    expect((await entriesOf(refuseCard.cardNo)).map((e) => e.fields['k'])).toEqual(['open', 'fee', 'feeback']);
    expect(await recoverPendingFees(app.context, { olderThanMs: 0, maxPerShard: 100 })).toEqual({
      delivered: 0,
      givenBack: 0,
      stillPending: 0,
      needsAttention: 0,
      settledMeanwhile: 0,
      broken: 0,
      failed: 0,
    });
    // The kiosk's late retry learns the outcome without another provider call.
    const callsBefore = sim.calls.length;
    const late = await payFee(networkFee(deliverCard.serial, 1_000, { sequenceNumber: deliverSeq }));
    expect(late.res.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(sim.calls.length).toBe(callsBefore);
  });
});

describe('the recovery sweep when the provider stays silent about many requests', () => {
  // A switch of its own: a short provider timeout (each silent request costs the sweep two timeouts) and
  // a clock the test moves, so when each request is looked at again is exact.
  const BASE_MS = 60_000;
  const CARD = '77000001';
  const clock = new TestClock(START_MS);
  const holSim = new FeeProviderSimulator();
  /** Orders the provider never answers about (pay and cancel hang until the switch gives up). */
  const silent = new Set<string>();
  /** Runs during the provider's pay of that order (before it hangs): another party settling it meanwhile. */
  const duringPay = new Map<string, () => Promise<unknown>>();
  let hol: SwitchApp;
  const hang = <T>(signal: AbortSignal): Promise<T> =>
    new Promise<T>((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('no answer')), { once: true }));
  /** Every pay the switch asked, silent or not, by order id. */
  const paysAsked = new Map<string, number>();
  const provider: FeeProvider = {
    pay: async (order, signal) => {
      paysAsked.set(order.orderId, (paysAsked.get(order.orderId) ?? 0) + 1);
      await duringPay.get(order.orderId)?.();
      return silent.has(order.orderId) ? hang(signal) : holSim.pay(order, signal);
    },
    cancel: (orderId, kind, signal) => (silent.has(orderId) ? hang(signal) : holSim.cancel(orderId, kind, signal)),
  };
  const sweep = (maxUnknownLooks = 3) =>
    recoverPendingFees(hol.context, { olderThanMs: 0, maxPerShard: 100, retryBaseMs: BASE_MS, maxUnknownLooks });
  const ref = (sequence: number) => ({
    cardNo: CARD,
    terminalId: KIOSK_TERMINAL.id,
    sequence,
    amountFen: 100,
    kind: 'network' as const,
    targetJson: JSON.stringify({ kind: 'network', account: 'zhang.san@campus' }),
  });
  const pendingKey = () => new MoneyKeys(hol.keys).feePendingOfCard(CARD);
  const member = (sequence: number) => `${KIOSK_TERMINAL.id}|${sequence}|${CARD}`;
  /** `npm run cli -- fee-attention` against this switch's ledger: its exit code and what it printed. */
  const feeAttentionCli = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
    const out: string[] = [];
    const err: string[] = [];
    const logSpy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    const errSpy = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
    try {
      const env = { REDIS_URL: testRedisUrl(), KEY_PREFIX: hol.context.config.keyPrefix, LOG_LEVEL: 'silent' };
      return { code: await runFeeAttentionCommand(args, env), out: out.join('\n'), err: err.join('\n') };
    } finally {
      logSpy.mockRestore();
      errSpy.mockRestore();
    }
  };
  const stateOf = async (sequence: number) => hol.redis.hget(hol.keys.request(CARD, KIOSK_TERMINAL.id, sequence), 'pst');
  const scoreOf = async (sequence: number) => hol.redis.zscore(pendingKey(), member(sequence));

  beforeAll(async () => {
    const env = { FEE_PROVIDER_TIMEOUT_MS: '5', FEE_RECOVERY_INTERVAL_MS: '3600000' };
    hol = await startClockedSwitch('feehol', clock, env, { feeProvider: provider });
    await openCard(hol, CARD, 'HOL77000001', 1_000_000);
    // 100 requests the provider is silent about, then one it answers: all in one shard (one card), the
    // money of each taken and the switch gone before it called the provider.
    for (let sequence = 1; sequence <= 100; sequence++) {
      silent.add(providerOrderId(KIOSK_TERMINAL.id, sequence));
      expect((await hol.context.money.feeDebit(ref(sequence))).code).toBe('pending');
      clock.advance(1);
    }
    clock.advance(1_000);
    expect((await hol.context.money.feeDebit(ref(101))).code).toBe('pending');
  }, 60_000);
  afterAll(async () => {
    await hol?.stop();
  });

  it('reaches the younger request behind 100 silent ones: the silent move later, the answered one is delivered', async () => {
    clock.advance(1_000);
    const firstAtMs = clock.nowMs;
    // The shard's first 100 are the silent ones: each is asked, with no final word.
    expect(await sweep()).toMatchObject({ delivered: 0, stillPending: 100, needsAttention: 0, failed: 0, broken: 0 });
    expect(await stateOf(101)).toBe('P');

    // The next sweep reaches the younger one: its provider answers, it is delivered.
    clock.advance(1_000);
    const second = await sweep();
    expect(await stateOf(101)).toBe('A');
    expect(await scoreOf(101)).toBeNull();
    expect(second).toMatchObject({ delivered: 1, stillPending: 0, failed: 0, broken: 0 });
    expect(holSim.callsOf(providerOrderId(KIOSK_TERMINAL.id, 101), 'pay')).toBe(1);
    expect(holSim.delivered().map((o) => o.orderId)).toEqual([providerOrderId(KIOSK_TERMINAL.id, 101)]);
    // The silent ones moved one wait after their look, and were not asked again before then.
    expect(await scoreOf(1)).toBe(String(firstAtMs + BASE_MS));
    expect(await scoreOf(100)).toBe(String(firstAtMs + BASE_MS));
    expect(paysAsked.get(providerOrderId(KIOSK_TERMINAL.id, 1))).toBe(1);
    expect(paysAsked.get(providerOrderId(KIOSK_TERMINAL.id, 100))).toBe(1);
  }, 60_000);

  it('waits longer after each look without an answer, then lists the request for an operator; it stays swept', async () => {
    // Due again: the second look doubles the wait.
    clock.advance(BASE_MS);
    expect(await sweep()).toMatchObject({ stillPending: 100, needsAttention: 0 });
    expect(await scoreOf(7)).toBe(String(clock.nowMs + 2 * BASE_MS));
    expect(await sweep()).toMatchObject({ stillPending: 0, needsAttention: 0 });
    expect((await feesNeedingAttention(hol.context, { maxPerShard: 1000 })).fees).toEqual([]);
    expect(await feeAttentionCli([])).toMatchObject({ code: 0, out: 'no fee payment needs attention' });
    // Fees go to their provider, not to a payment channel: the list takes no --channel (usage, exit 2).
    expect(await feeAttentionCli(['--channel', 'wechat'])).toMatchObject({
      code: 2,
      err: expect.stringContaining('usage: cardswitch fee-attention') as unknown,
    });

    // The third look reaches the bound (3 here): each needs an operator now, and waits four times as long.
    clock.advance(2 * BASE_MS);
    expect(await sweep()).toMatchObject({ stillPending: 100, needsAttention: 100 });
    expect(await scoreOf(7)).toBe(String(clock.nowMs + 4 * BASE_MS));
    const listed = await feesNeedingAttention(hol.context, { maxPerShard: 1000 });
    expect(listed.unread).toBe(0);
    expect(listed.fees).toHaveLength(100);
    expect(listed.fees.find((f) => f.sequence === 7)).toEqual({
      orderId: providerOrderId(KIOSK_TERMINAL.id, 7),
      cardNo: CARD,
      terminalId: KIOSK_TERMINAL.id,
      sequence: 7,
      kind: 'network',
      amountFen: 100,
      debitedAtMs: START_MS + 6,
      debitEntryId: await hol.redis.hget(hol.keys.request(CARD, KIOSK_TERMINAL.id, 7), 'dtx'),
      sinceMs: clock.nowMs,
      unknownLooks: 3,
      nextLookMs: clock.nowMs + 4 * BASE_MS,
    });
    const record = await hol.redis.hmget(hol.keys.request(CARD, KIOSK_TERMINAL.id, 7), 'pst', 'funk', 'fatt');
    expect(record).toEqual(['P', '3', String(clock.nowMs)]);
    // The operator's list: one line each (exit 1), or the same as JSON.
    const text = await feeAttentionCli([]);
    expect(text.code).toBe(1);
    expect(text.out.split('\n')).toHaveLength(100);
    expect(text.out).toContain(`order ${providerOrderId(KIOSK_TERMINAL.id, 7)}  card ${CARD}  kiosk ${KIOSK_TERMINAL.id} #7  1.00 yuan`);
    expect(text.err).toContain('100 fee payment(s) need an operator');
    // Times in campus time with the offset (operators work in UTC+8), never UTC.
    const first = listed.fees[0]!;
    expect(text.out).toContain(`debited ${campusClock(first.debitedAtMs)}`);
    expect(text.out).toContain(`needs an operator since ${campusClock(first.sinceMs)}`);
    expect(text.out).toContain(`next look ${campusClock(first.nextLookMs)}`);
    expect(text.out).not.toMatch(UTC_ISO);
    const json = await feeAttentionCli(['--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out)).toEqual(JSON.parse(JSON.stringify(listed.fees)));

    // Still swept, at the longest wait: the money stays taken (no give-back without the provider's word).
    clock.advance(4 * BASE_MS);
    expect(await sweep()).toMatchObject({ stillPending: 100, needsAttention: 100, givenBack: 0 });
    expect(await scoreOf(7)).toBe(String(clock.nowMs + Math.min(8 * BASE_MS, MAX_FEE_RETRY_WAIT_MS)));
    clock.advance(MAX_FEE_RETRY_WAIT_MS);
    await sweep();
    clock.advance(MAX_FEE_RETRY_WAIT_MS);
    await sweep();
    expect(await scoreOf(7)).toBe(String(clock.nowMs + MAX_FEE_RETRY_WAIT_MS));
    expect(Number(await hol.redis.hget(hol.keys.account(CARD), 'bal'))).toBe(1_000_000 - 101 * 100);
  }, 60_000);

  it('a silent request whose provider answers later is finished once: delivered, or given back when refused', async () => {
    const delivered = providerOrderId(KIOSK_TERMINAL.id, 7);
    const refused = providerOrderId(KIOSK_TERMINAL.id, 8);
    silent.delete(delivered);
    silent.delete(refused);
    // The provider refuses order 8 for good (its account was closed meanwhile), and delivers 7.
    holSim.payMode = 'refuse';
    await holSim.pay(
      { orderId: refused, target: { kind: 'network', account: 'zhang.san@campus' }, amountFen: 100, cardNo: CARD },
      AbortSignal.timeout(1000),
    );
    holSim.payMode = 'deliver';
    clock.advance(MAX_FEE_RETRY_WAIT_MS);
    expect(await sweep()).toMatchObject({ delivered: 1, givenBack: 1, stillPending: 98, needsAttention: 98 });
    expect([await stateOf(7), await stateOf(8)]).toEqual(['A', 'B']);
    expect([await scoreOf(7), await scoreOf(8)]).toEqual([null, null]);
    expect(Number(await hol.redis.hget(hol.keys.account(CARD), 'bal'))).toBe(1_000_000 - 100 * 100);
    const listed = (await feesNeedingAttention(hol.context, { maxPerShard: 1000 })).fees.map((f) => f.sequence);
    expect(listed).toHaveLength(98);
    expect(listed).not.toContain(7);
    expect(listed).not.toContain(8);

    // Later sweeps leave them alone: delivered once, given back once.
    clock.advance(MAX_FEE_RETRY_WAIT_MS);
    expect(await sweep()).toMatchObject({ delivered: 0, givenBack: 0, stillPending: 98 });
    expect(holSim.delivered().filter((o) => o.orderId === delivered)).toHaveLength(1);
    expect(holSim.callsOf(delivered, 'pay')).toBe(1);
    const kinds = (await readJournal(hol.redis, hol.keys.journalOfCard(CARD)))
      .filter((e) => e.fields['c'] === CARD)
      .map((e) => e.fields['k']);
    expect(kinds.filter((k) => k === 'feeback')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'fee')).toHaveLength(101);
  }, 60_000);

  it('a request completed by another party while the sweep asked the provider is not put back in the index', async () => {
    const orderId = providerOrderId(KIOSK_TERMINAL.id, 9);
    // The kiosk's retry (or another switch) gets the receipt while this sweep's pay hangs.
    duringPay.set(orderId, () => hol.context.money.feeComplete(ref(9), 'R-ELSEWHERE-9'));
    clock.advance(MAX_FEE_RETRY_WAIT_MS);
    expect(await sweep()).toMatchObject({ settledMeanwhile: 1, stillPending: 97, delivered: 0, failed: 0, broken: 0 });
    duringPay.delete(orderId);
    expect(await stateOf(9)).toBe('A');
    expect(await scoreOf(9)).toBeNull();
    expect(await hol.redis.zcard(pendingKey())).toBe(97);
  }, 60_000);

  it('an index entry without its record is logged and moved to the longest wait, never holding a place of the sweep', async () => {
    await hol.redis.zadd(pendingKey(), START_MS - 1, member(999));
    clock.advance(MAX_FEE_RETRY_WAIT_MS);
    expect(await sweep()).toMatchObject({ broken: 1, stillPending: 97, failed: 0 });
    expect(await scoreOf(999)).toBe(String(clock.nowMs + MAX_FEE_RETRY_WAIT_MS));
    expect(await hol.redis.exists(hol.keys.request(CARD, KIOSK_TERMINAL.id, 999))).toBe(0);
    await hol.redis.zrem(pendingKey(), member(999));
  }, 60_000);

  it('audits to the fen: every fee and give-back is in the journal, money is conserved', async () => {
    const report = await auditLedger(hol.redis, hol.keys);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
  });
});

describe('the whole ledger', () => {
  it('audits to the fen after all the fees, give-backs and recoveries above (every balance is its journal, money is conserved)', async () => {
    const report = await auditLedger(app.redis, app.keys);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.heldFen).toBe(report.netInflowFen);
  });
});
