// Card passwords, password-free limits, daily cap, loss, replacement, freeze: the rules of issue 3,
// against a real switch and Redis.
import { status as Status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CardStatus, DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import { requireCardPassword } from '../switch/domain/card-password.js';
import { reportCardLost } from '../switch/domain/card-status.js';
import {
  adminClient,
  KIOSK_TERMINAL,
  kioskClient,
  operatorMetadata,
  passwordHash,
  startClockedSwitch,
  TestClock,
} from './helpers/clients.js';
import { call, openCard, POS_TERMINAL, posClient, terminalMetadata } from './helpers/switch.js';

const PIN = '135790';
const LIMITS = {
  STUDENT_NO_PIN_PER_PAYMENT_FEN: '5000',
  STUDENT_NO_PIN_PER_DAY_FEN: '8000',
  STUDENT_DAILY_SPEND_LIMIT_FEN: '20000',
  // One POS sends 40 PIN payments at once below; a terminal's checks in flight count against its
  // wrong passwords left of the hour (test/terminal-password-limit.test.ts tests that limit).
  TERMINAL_PASSWORD_FAILURES_PER_HOUR: '100',
};
// 2026-11-26 10:00 in campus time (UTC+8).
const START_MS = Date.UTC(2026, 10, 26, 2, 0, 0);

let app: SwitchApp;
let clock: TestClock;
let seq = 0;
let pos: ReturnType<typeof posClient>;
let kiosk: ReturnType<typeof kioskClient>;
let admin: ReturnType<typeof adminClient>;
const posMd = terminalMetadata(POS_TERMINAL);
const kioskMd = terminalMetadata(KIOSK_TERMINAL);

beforeAll(async () => {
  clock = new TestClock(START_MS);
  app = await startClockedSwitch('cardrules', clock, LIMITS);
  await app.terminals.register(POS_TERMINAL);
  await app.terminals.register(KIOSK_TERMINAL);
  pos = posClient(app);
  kiosk = kioskClient(app);
  admin = adminClient(app);
});
afterAll(async () => {
  pos.close();
  kiosk.close();
  admin.close();
  await app.stop();
});

async function newCard(cardNo: string, serial: string, openingFen: number, extra: Record<string, string> = {}): Promise<void> {
  await openCard(app, cardNo, serial, openingFen, {
    pwd: await passwordHash(app, PIN),
    pwdinit: '1',
    docn: '110105199003071234',
    sno: `P${cardNo}`,
    ...extra,
  });
  await app.redis.set(app.keys.personNumber(`P${cardNo}`), cardNo);
}

function pay(serial: string, amountFen: number, pin = '', sequenceNumber = ++seq): Promise<AuthorizeResponse> {
  return call(
    pos,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber, amountFen, credential: { card: { cardSerial: serial } }, pin },
    posMd,
  );
}

async function balance(cardNo: string): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));
}

async function journalLength(cardNo: string): Promise<number> {
  return app.redis.xlen(app.keys.journalOfCard(cardNo));
}

async function expectStatus(promise: Promise<unknown>, code: Status): Promise<ServiceError> {
  const err = (await promise.then(
    () => undefined,
    (e: unknown) => e,
  )) as ServiceError | undefined;
  expect(err, `expected gRPC status ${Status[code]}`).toBeDefined();
  expect(err?.code).toBe(code);
  expect(err?.details.length).toBeGreaterThan(0);
  return err as ServiceError;
}

describe('password-free limits and PIN payments', () => {
  it('asks for the PIN over the per-payment limit, records nothing, then approves with the PIN on the same sequence number', async () => {
    await newCard('1001', 'AA001001', 50_000);
    const before = await journalLength('1001');
    const small = await pay('AA001001', 4000);
    expect(small.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const sequenceNumber = ++seq;
    const big = await pay('AA001001', 6000, '', sequenceNumber);
    expect(big.outcome).toBe(Outcome.OUTCOME_PIN_REQUIRED);
    expect(await balance('1001')).toBe(46_000);
    expect(await journalLength('1001')).toBe(before + 1);
    const withPin = await pay('AA001001', 6000, PIN, sequenceNumber);
    expect(withPin.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(withPin.balanceAfterFen).toBe(40_000);
  });

  it("asks for the PIN once the day's password-free total would pass its limit, and counts only password-free payments", async () => {
    await newCard('1002', 'AA001002', 50_000);
    expect((await pay('AA001002', 4000)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect((await pay('AA001002', 3000)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect((await pay('AA001002', 2000)).outcome).toBe(Outcome.OUTCOME_PIN_REQUIRED);
    expect((await pay('AA001002', 2000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect((await pay('AA001002', 1000)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect((await pay('AA001002', 100)).outcome).toBe(Outcome.OUTCOME_PIN_REQUIRED);
    expect(await balance('1002')).toBe(40_000);
  });

  it('enforces the daily spending cap even with the PIN, and resets it on the next campus day', async () => {
    await newCard('1003', 'AA001003', 100_000);
    expect((await pay('AA001003', 15_000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    const over = await pay('AA001003', 6000, PIN);
    expect(over.outcome).toBe(Outcome.OUTCOME_DECLINED);
    expect(over.declineReason).toBe(DeclineReason.DECLINE_REASON_DAILY_LIMIT_EXCEEDED);
    expect(await balance('1003')).toBe(85_000);
    clock.advanceDays(1);
    expect((await pay('AA001003', 6000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('lets an operator give one card its own limits', async () => {
    await newCard('1004', 'AA001004', 50_000);
    expect((await pay('AA001004', 7000)).outcome).toBe(Outcome.OUTCOME_PIN_REQUIRED);
    await call(
      admin,
      'setCardLimits',
      { cardNumber: '1004', noPinPerPaymentFen: 10_000, noPinPerDayFen: 30_000, dailySpendLimitFen: -1 },
      operatorMetadata(),
    );
    expect((await pay('AA001004', 7000)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    await call(
      admin,
      'setCardLimits',
      { cardNumber: '1004', noPinPerPaymentFen: -1, noPinPerDayFen: -1, dailySpendLimitFen: -1 },
      operatorMetadata(),
    );
    expect((await pay('AA001004', 7000)).outcome).toBe(Outcome.OUTCOME_PIN_REQUIRED);
    await expectStatus(
      call(
        admin,
        'setCardLimits',
        { cardNumber: '1004', noPinPerPaymentFen: -5, noPinPerDayFen: 0, dailySpendLimitFen: 0 },
        operatorMetadata(),
      ),
      Status.INVALID_ARGUMENT,
    );
    await expectStatus(
      call(
        admin,
        'setCardLimits',
        { cardNumber: '9999', noPinPerPaymentFen: 1, noPinPerDayFen: 1, dailySpendLimitFen: 1 },
        operatorMetadata(),
      ),
      Status.NOT_FOUND,
    );
  });
});

describe('wrong passwords', () => {
  it('declines a wrong PIN with the attempts left, locks after five, and unlocks the next day', async () => {
    await newCard('1101', 'AA001101', 50_000);
    for (let left = 4; left >= 1; left--) {
      const wrong = await pay('AA001101', 6000, '000000');
      expect(wrong.outcome).toBe(Outcome.OUTCOME_DECLINED);
      expect(wrong.declineReason).toBe(DeclineReason.DECLINE_REASON_WRONG_PIN);
      expect(wrong.pinAttemptsLeft).toBe(left);
    }
    const fifth = await pay('AA001101', 6000, '000000');
    expect(fifth.declineReason).toBe(DeclineReason.DECLINE_REASON_PIN_LOCKED);
    const rightButLocked = await pay('AA001101', 6000, PIN);
    expect(rightButLocked.declineReason).toBe(DeclineReason.DECLINE_REASON_PIN_LOCKED);
    // The lock is shared: the kiosk refuses the password too.
    await expectStatus(
      call(kiosk, 'cancelLoss', { cardholder: { personNumber: 'P1101' }, password: PIN }, kioskMd),
      Status.RESOURCE_EXHAUSTED,
    );
    expect(await balance('1101')).toBe(50_000);
    clock.advanceDays(1);
    expect((await pay('AA001101', 6000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('rehashes an imported low-cost password at full cost after a correct entry', async () => {
    await newCard('1102', 'AA001102', 50_000);
    const imported = await app.redis.hget(app.keys.account('1102'), 'pwd');
    expect(imported).toMatch(/^scrypt\$1024\$/);
    expect((await pay('AA001102', 6000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(await app.redis.hget(app.keys.account('1102'), 'pwd')).toMatch(new RegExp(`^scrypt\\$${app.context.config.passwordScryptN}\\$`));
    expect((await pay('AA001102', 6000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });
});

describe('change password', () => {
  it('needs the old password, refuses the same or the initial one, and then only the new one works', async () => {
    await newCard('1201', 'AA001201', 50_000);
    const holder = { card: { cardSerial: 'AA001201' } };
    await expectStatus(
      call(kiosk, 'changePassword', { cardholder: holder, oldPassword: PIN, newPassword: PIN }, kioskMd),
      Status.INVALID_ARGUMENT,
    );
    // The initial password of document 110105199003071234 is 071234.
    await expectStatus(
      call(kiosk, 'changePassword', { cardholder: holder, oldPassword: PIN, newPassword: '071234' }, kioskMd),
      Status.INVALID_ARGUMENT,
    );
    await expectStatus(
      call(kiosk, 'changePassword', { cardholder: holder, oldPassword: PIN, newPassword: '12345' }, kioskMd),
      Status.INVALID_ARGUMENT,
    );
    const wrong = await expectStatus(
      call(kiosk, 'changePassword', { cardholder: holder, oldPassword: '999999', newPassword: '246802' }, kioskMd),
      Status.PERMISSION_DENIED,
    );
    expect(wrong.metadata.get('password-attempts-left')).toEqual(['4']);
    await call(kiosk, 'changePassword', { cardholder: holder, oldPassword: PIN, newPassword: '246802' }, kioskMd);
    expect(await app.redis.hget(app.keys.account('1201'), 'pwdinit')).toBe('0');
    expect((await pay('AA001201', 6000, PIN)).declineReason).toBe(DeclineReason.DECLINE_REASON_WRONG_PIN);
    expect((await pay('AA001201', 6000, '246802')).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('300 parallel changes with the right old password: exactly one is told "changed", and its new password is the one that works', async () => {
    // The card's hash is at the import cost (1024), so the first right check also stores a full-cost rehash:
    // the change must then replace that rehash, not the hash it verified, and still succeed once.
    await newCard('1202', 'AA001202', 50_000);
    const holder = { card: { cardSerial: 'AA001202' } };
    const newPins = Array.from({ length: 300 }, (_, i) => String(200_000 + i));
    const answers = await Promise.all(
      newPins.map((newPassword) =>
        call(kiosk, 'changePassword', { cardholder: holder, oldPassword: PIN, newPassword }, kioskMd).then(
          () => 'changed',
          (e: ServiceError) => `${Status[e.code]} ${/\(([^)]*)\)$/.exec(e.details)?.[1] ?? e.details}`,
        ),
      ),
    );
    const told = newPins.filter((_, i) => answers[i] === 'changed');
    expect(told).toHaveLength(1);
    const stored = (await app.redis.hget(app.keys.account('1202'), 'pwd')) ?? '';
    expect(await app.context.passwords.verify(told[0] ?? '', stored)).toBe(true);
    expect(await app.context.passwords.verify(PIN, stored)).toBe(false);
    // The others: changed meanwhile (their old password was right against the hash the winner replaced),
    // wrong (checked after it), or busy (more checks of the card in flight than attempts left).
    const others = new Set(answers.filter((a) => a !== 'changed').map((a) => a.split(' ')[0]));
    expect([...others].every((code) => ['ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED'].includes(code ?? ''))).toBe(true);
    for (const answer of answers.filter((a) => a.startsWith('ALREADY_EXISTS')))
      expect(answer).toBe('ALREADY_EXISTS 密码刚被修改，本次修改未生效');
    expect((await pay('AA001202', 6000, told[0] ?? '')).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('a change whose old password was verified before another change completed is refused as "changed meanwhile", not stored over it', async () => {
    await newCard('1203', 'AA001203', 50_000, { pwd: await passwordHash(app, PIN, app.context.config.passwordScryptN) });
    const holder = { card: { cardSerial: 'AA001203' } };
    const pool = app.context.passwords;
    const verify = pool.verify.bind(pool);
    let interleaved = false;
    // The pool verifies the first change's old password; before it answers, a second change runs to the end.
    const spy = vi.spyOn(pool, 'verify').mockImplementation(async (pin, encoded) => {
      const right = await verify(pin, encoded);
      if (!interleaved) {
        interleaved = true;
        await call(kiosk, 'changePassword', { cardholder: holder, oldPassword: PIN, newPassword: '314159' }, kioskMd);
      }
      return right;
    });
    try {
      const first = await expectStatus(
        call(kiosk, 'changePassword', { cardholder: holder, oldPassword: PIN, newPassword: '271828' }, kioskMd),
        Status.ALREADY_EXISTS,
      );
      expect(first.details).toContain('changed by another request at the same time, so this change was not made');
      expect(first.details).toContain('密码刚被修改');
    } finally {
      spy.mockRestore();
    }
    expect(interleaved).toBe(true);
    const stored = (await app.redis.hget(app.keys.account('1203'), 'pwd')) ?? '';
    expect(await pool.verify('314159', stored)).toBe(true);
    expect((await pay('AA001203', 6000, '314159')).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });
});

describe('card sync', () => {
  it('a kiosk tap identifies the card, completes the sync and nags about the initial password', async () => {
    await newCard('1301', 'AA001301', 12_345);
    const res = await call<
      object,
      { card: { synced: boolean; balanceFen: number; initialPassword: boolean; maskedName: string }; displayText: string }
    >(kiosk, 'identifyCard', { card: { cardSerial: 'aa001301' } }, kioskMd);
    expect(res.card).toMatchObject({ synced: true, balanceFen: 12_345, initialPassword: true, maskedName: '张*' });
    expect(res.displayText).toContain('修改初始密码');
    expect(await app.redis.hget(app.keys.account('1301'), 'sync')).toBe('1');
  });
});

describe('loss, cancel loss, freeze, replace', () => {
  it('a card reported lost by tap is declined, shows as lost, and works again after cancel with the password', async () => {
    await newCard('1401', 'AA001401', 50_000);
    const lost = await call<object, { status: CardStatus }>(
      kiosk,
      'reportLoss',
      { cardholder: { card: { cardSerial: 'AA001401' } }, password: '' },
      kioskMd,
    );
    expect(lost.status).toBe(CardStatus.CARD_STATUS_LOST);
    const declined = await pay('AA001401', 100);
    expect(declined.declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_LOST);
    const withPin = await pay('AA001401', 6000, PIN);
    expect(withPin.declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_LOST);
    const inquiry = await call<object, { status: CardStatus }>(
      pos,
      'inquire',
      { terminalId: POS_TERMINAL.id, credential: { card: { cardSerial: 'AA001401' } } },
      posMd,
    );
    expect(inquiry.status).toBe(CardStatus.CARD_STATUS_LOST);
    expect(await balance('1401')).toBe(50_000);
    await expectStatus(
      call(kiosk, 'cancelLoss', { cardholder: { card: { cardSerial: 'AA001401' } }, password: '' }, kioskMd),
      Status.INVALID_ARGUMENT,
    );
    await expectStatus(
      call(kiosk, 'cancelLoss', { cardholder: { card: { cardSerial: 'AA001401' } }, password: '111111' }, kioskMd),
      Status.PERMISSION_DENIED,
    );
    const back = await call<object, { status: CardStatus }>(
      kiosk,
      'cancelLoss',
      { cardholder: { card: { cardSerial: 'AA001401' } }, password: PIN },
      kioskMd,
    );
    expect(back.status).toBe(CardStatus.CARD_STATUS_ACTIVE);
    expect((await pay('AA001401', 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('reports loss by student/staff number only with the right password', async () => {
    await newCard('1402', 'AA001402', 50_000);
    await expectStatus(
      call(kiosk, 'reportLoss', { cardholder: { personNumber: 'P1402' }, password: '111111' }, kioskMd),
      Status.PERMISSION_DENIED,
    );
    expect(await app.redis.hget(app.keys.account('1402'), 'st')).toBe('A');
    await call(kiosk, 'reportLoss', { cardholder: { personNumber: 'P1402' }, password: PIN }, kioskMd);
    expect(await app.redis.hget(app.keys.account('1402'), 'st')).toBe('L');
    await expectStatus(call(kiosk, 'reportLoss', { cardholder: { personNumber: 'NOSUCH1' }, password: PIN }, kioskMd), Status.NOT_FOUND);
  });

  it('a frozen card is declined, cannot be reported lost at a kiosk, and pays again once unfrozen', async () => {
    await newCard('1403', 'AA001403', 50_000);
    await expectStatus(
      call(admin, 'setCardFrozen', { cardNumber: '1403', frozen: true, reason: '' }, operatorMetadata()),
      Status.INVALID_ARGUMENT,
    );
    await call(admin, 'setCardFrozen', { cardNumber: '1403', frozen: true, reason: '学生处通知' }, operatorMetadata());
    expect((await pay('AA001403', 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_FROZEN);
    await expectStatus(
      call(kiosk, 'reportLoss', { cardholder: { card: { cardSerial: 'AA001403' } }, password: '' }, kioskMd),
      Status.FAILED_PRECONDITION,
    );
    await call(admin, 'setCardFrozen', { cardNumber: '1403', frozen: false, reason: '解除' }, operatorMetadata());
    expect((await pay('AA001403', 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    const log = await app.redis.xrange(app.keys.operatorLog(), '-', '+');
    expect(log.filter(([, f]) => f.includes('1403')).map(([, f]) => f[1])).toEqual(['freeze', 'unfreeze']);
  });

  it("a lost or frozen card is declined for its status at a PIN pad, without its password being checked: a finder's wrong PINs never lock the owner out", async () => {
    await newCard('1411', 'AA001411', 50_000);
    await newCard('1412', 'AA001412', 50_000);
    await reportCardLost(app.context, '1411');
    await call(admin, 'setCardFrozen', { cardNumber: '1412', frozen: true, reason: '学生处通知' }, operatorMetadata());
    const cases = [
      { cardNo: '1411', serial: 'AA001411', reason: DeclineReason.DECLINE_REASON_CARD_LOST },
      { cardNo: '1412', serial: 'AA001412', reason: DeclineReason.DECLINE_REASON_CARD_FROZEN },
    ];
    for (const { cardNo, serial, reason } of cases) {
      const checksBefore = app.context.passwords.stats().completed;
      // Over the password-free limit (5000), with a wrong PIN: as many tries as would lock the password.
      const answers: AuthorizeResponse[] = [];
      for (let i = 0; i < 5; i++) answers.push(await pay(serial, 6000, '000000'));
      expect(answers.map((a) => a.declineReason)).toEqual(Array(5).fill(reason));
      expect(answers.every((a) => a.pinAttemptsLeft === 0)).toBe(true);
      expect(app.context.passwords.stats().completed).toBe(checksBefore);
      expect(await app.redis.hget(app.keys.account(cardNo), 'pfail')).toBeNull();
      // The decline is recorded like any other: a retry with the right PIN replays it.
      const sequenceNumber = ++seq;
      const first = await pay(serial, 6000, '000000', sequenceNumber);
      expect(await pay(serial, 6000, PIN, sequenceNumber)).toEqual(first);
      // The owner's right password still works (the kiosk's checks: cancel loss, change password, bind).
      await requireCardPassword(app.context, cardNo, PIN);
      expect(await balance(cardNo)).toBe(50_000);
    }
    const back = await call<object, { status: CardStatus }>(
      kiosk,
      'cancelLoss',
      { cardholder: { card: { cardSerial: 'AA001411' } }, password: PIN },
      kioskMd,
    );
    expect(back.status).toBe(CardStatus.CARD_STATUS_ACTIVE);
    expect((await pay('AA001411', 6000, PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('a replacement card takes over the balance; the old serial is dead; a serial in use is refused', async () => {
    await newCard('1404', 'AA001404', 50_000);
    await newCard('1405', 'AA001405', 1_000);
    await call(kiosk, 'reportLoss', { cardholder: { card: { cardSerial: 'AA001404' } }, password: '' }, kioskMd);
    await expectStatus(
      call(admin, 'replaceCard', { cardNumber: '1404', newCardSerial: 'AA001405', requestId: 'RPL-1404-AA001405' }, operatorMetadata()),
      Status.FAILED_PRECONDITION,
    );
    await expectStatus(
      call(admin, 'replaceCard', { cardNumber: '1404', newCardSerial: 'xyz', requestId: 'RPL-1404-xyz' }, operatorMetadata()),
      Status.INVALID_ARGUMENT,
    );
    const replaced = await call<object, { oldCardSerial: string; card: { status: CardStatus; balanceFen: number; synced: boolean } }>(
      admin,
      'replaceCard',
      { cardNumber: '1404', newCardSerial: 'BB001404', requestId: 'RPL-1404-BB001404' },
      operatorMetadata(),
    );
    expect(replaced.oldCardSerial).toBe('AA001404');
    expect(replaced.card).toMatchObject({ status: CardStatus.CARD_STATUS_ACTIVE, balanceFen: 50_000, synced: false });
    const old = await pay('AA001404', 100);
    expect(old.declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_REPLACED);
    const fresh = await pay('BB001404', 100);
    expect(fresh).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 49_900, cardNumber: '1404' });
    await expectStatus(call(kiosk, 'identifyCard', { card: { cardSerial: 'AA001404' } }, kioskMd), Status.FAILED_PRECONDITION);
    expect(await balance('1405')).toBe(1_000);
  });
  it('a retried replacement (same new serial) answers the real old serial and changes nothing: the tapped new card stays synced', async () => {
    await newCard('1406', 'AA001406', 50_000);
    const replace = () =>
      call<object, { oldCardSerial: string; card: { status: CardStatus; synced: boolean } }>(
        admin,
        'replaceCard',
        { cardNumber: '1406', newCardSerial: 'BB001406', requestId: 'RPL-1406-BB001406' },
        operatorMetadata(),
      );
    expect((await replace()).oldCardSerial).toBe('AA001406');
    // The new card is tapped once (the sync); then the operator's retry of the replacement arrives.
    await call(kiosk, 'identifyCard', { card: { cardSerial: 'BB001406' } }, kioskMd);
    const before = await app.redis.hmget(app.keys.account('1406'), 'ser', 'sync', 'eq');
    expect(before.slice(0, 2)).toEqual(['BB001406', '1']);
    const retry = await replace();
    expect(retry.oldCardSerial).toBe('AA001406');
    expect(retry.card).toMatchObject({ status: CardStatus.CARD_STATUS_ACTIVE, synced: true });
    expect(await app.redis.hmget(app.keys.account('1406'), 'ser', 'sync', 'eq')).toEqual(before);
    const log = await app.redis.xrange(app.keys.operatorLog(), '-', '+');
    const entries = log.filter(([, f]) => f.includes('1406')).map(([, f]) => f);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toEqual(expect.arrayContaining(['replace-card', 'AA001406', 'BB001406']));
    // A card "replaced" by the serial it already has, never replaced before: refused, nothing written.
    await newCard('1407', 'AA001407', 1_000);
    const own = await app.redis.hmget(app.keys.account('1407'), 'ser', 'sync', 'eq');
    await expectStatus(
      call(admin, 'replaceCard', { cardNumber: '1407', newCardSerial: 'AA001407', requestId: 'RPL-1407-AA001407' }, operatorMetadata()),
      Status.FAILED_PRECONDITION,
    );
    expect(await app.redis.hmget(app.keys.account('1407'), 'ser', 'sync', 'eq')).toEqual(own);
  });

  /** The card office's freeze or unfreeze; answers the card's status after it. */
  async function setFrozen(cardNo: string, frozen: boolean): Promise<CardStatus> {
    const reason = frozen ? '学生处通知' : '解除冻结';
    return (await call<object, { status: CardStatus }>(admin, 'setCardFrozen', { cardNumber: cardNo, frozen, reason }, operatorMetadata()))
      .status;
  }

  async function unfreezeLog(cardNo: string): Promise<string[][]> {
    const log = await app.redis.xrange(app.keys.operatorLog(), '-', '+');
    return log.filter(([, f]) => f[1] === 'unfreeze' && f.includes(cardNo)).map(([, f]) => f);
  }

  it("freezing and unfreezing a lost card leaves it lost: the finder's tap is declined, and only the holder's password cancels the loss", async () => {
    await newCard('1421', 'AA001421', 50_000);
    const lost = { cardholder: { card: { cardSerial: 'AA001421' } }, password: '' };
    await call(kiosk, 'reportLoss', lost, kioskMd);
    expect(await setFrozen('1421', true)).toBe(CardStatus.CARD_STATUS_FROZEN);
    // A retried freeze (the first answer lost) must not make 'frozen' the status to go back to.
    expect(await setFrozen('1421', true)).toBe(CardStatus.CARD_STATUS_FROZEN);
    expect((await pay('AA001421', 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_FROZEN);
    // Frozen, the holder cannot report it lost again: the freeze must keep the loss for them.
    await expectStatus(call(kiosk, 'reportLoss', lost, kioskMd), Status.FAILED_PRECONDITION);
    expect(await setFrozen('1421', false)).toBe(CardStatus.CARD_STATUS_LOST);
    expect(await app.redis.hmget(app.keys.account('1421'), 'st', 'fst')).toEqual(['L', null]);
    // The finder taps it under the password-free limits.
    expect((await pay('AA001421', 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_LOST);
    expect(await balance('1421')).toBe(50_000);
    // A retried unfreeze is refused, saying the card is lost, and changes nothing.
    const retry = await expectStatus(setFrozen('1421', false), Status.FAILED_PRECONDITION);
    expect(retry.details).toContain('is lost, not frozen');
    expect(await app.redis.hget(app.keys.account('1421'), 'st')).toBe('L');
    expect((await unfreezeLog('1421')).map((f) => f.slice(-4))).toEqual([['from', 'frozen', 'to', 'lost']]);
    // The loss is cancelled as usual: with the holder's password only.
    const cancel = (password: string) =>
      call<object, { status: CardStatus }>(kiosk, 'cancelLoss', { cardholder: { card: { cardSerial: 'AA001421' } }, password }, kioskMd);
    await expectStatus(cancel('111111'), Status.PERMISSION_DENIED);
    expect((await cancel(PIN)).status).toBe(CardStatus.CARD_STATUS_ACTIVE);
    expect((await pay('AA001421', 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('an active card unfreezes to active; a card frozen before the earlier status was kept unfreezes to active, logged', async () => {
    await newCard('1422', 'AA001422', 50_000);
    expect(await setFrozen('1422', true)).toBe(CardStatus.CARD_STATUS_FROZEN);
    expect(await setFrozen('1422', true)).toBe(CardStatus.CARD_STATUS_FROZEN);
    expect(await app.redis.hmget(app.keys.account('1422'), 'st', 'fst')).toEqual(['F', 'A']);
    expect(await setFrozen('1422', false)).toBe(CardStatus.CARD_STATUS_ACTIVE);
    expect(await app.redis.hmget(app.keys.account('1422'), 'st', 'fst')).toEqual(['A', null]);
    expect((await pay('AA001422', 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    // Frozen by a switch before this one: 'F' and no remembered status. The operator asks for it back.
    await newCard('1423', 'AA001423', 50_000);
    await app.redis.hset(app.keys.account('1423'), 'st', 'F');
    expect(await setFrozen('1423', false)).toBe(CardStatus.CARD_STATUS_ACTIVE);
    expect((await unfreezeLog('1423'))[0]).toEqual(expect.arrayContaining(['from', 'frozen', 'to', 'active', 'remembered', 'none']));
    expect((await pay('AA001423', 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('a card replaced while frozen from lost unfreezes to active: the lost card is dead', async () => {
    await newCard('1424', 'AA001424', 50_000);
    await call(kiosk, 'reportLoss', { cardholder: { card: { cardSerial: 'AA001424' } }, password: '' }, kioskMd);
    await setFrozen('1424', true);
    await call(admin, 'replaceCard', { cardNumber: '1424', newCardSerial: 'BB001424', requestId: 'RPL-1424-BB001424' }, operatorMetadata());
    expect(await app.redis.hmget(app.keys.account('1424'), 'st', 'fst')).toEqual(['F', 'A']);
    expect(await setFrozen('1424', false)).toBe(CardStatus.CARD_STATUS_ACTIVE);
    expect((await pay('BB001424', 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect((await pay('AA001424', 100)).outcome).not.toBe(Outcome.OUTCOME_APPROVED);
  });
});

describe('operator authentication', () => {
  it('refuses AdminService without a valid operator token and changes nothing', async () => {
    await newCard('1501', 'AA001501', 50_000);
    await expectStatus(
      call(admin, 'setCardFrozen', { cardNumber: '1501', frozen: true, reason: 'x' }, operatorMetadata('wrong-token-0123456789')),
      Status.UNAUTHENTICATED,
    );
    await expectStatus(call(admin, 'getCard', { cardNumber: '1501' }, terminalMetadata(POS_TERMINAL)), Status.UNAUTHENTICATED);
    expect(await app.redis.hget(app.keys.account('1501'), 'st')).toBe('A');
  });

  it('refuses a POS terminal on KioskService and a kiosk on PosService', async () => {
    await expectStatus(call(kiosk, 'identifyCard', { card: { cardSerial: 'AA001501' } }, posMd), Status.PERMISSION_DENIED);
    await expectStatus(
      pay('AA001501', 100).then(() =>
        call(
          pos,
          'authorize',
          { terminalId: KIOSK_TERMINAL.id, sequenceNumber: 1, amountFen: 1, credential: { card: { cardSerial: 'AA001501' } }, pin: '' },
          kioskMd,
        ),
      ),
      Status.PERMISSION_DENIED,
    );
  });
});

describe('password checks stay off the event loop', () => {
  it('answers inquiries while many full-cost password checks are running', async () => {
    // Eight cards with five PIN payments each: a card has at most as many password checks in flight
    // as attempts left (5). Their own caps lifted: five PIN payments would pass the daily spending cap.
    const fullCost = await passwordHash(app, PIN, 16384);
    for (let i = 0; i < 8; i++) await newCard(`161${i}`, `AA00161${i}`, 1_000_000, { pwd: fullCost, lim: ',,0' });
    await newCard('1602', 'AA001602', 1_000);
    let pinDone = 0;
    const pinPayments = Array.from({ length: 40 }, (_, i) =>
      pay(`AA00161${i % 8}`, 6000, PIN).then((r) => {
        pinDone++;
        return r;
      }),
    );
    const doneAtEachInquiry: number[] = [];
    for (let i = 0; i < 10; i++) {
      await call(pos, 'inquire', { terminalId: POS_TERMINAL.id, credential: { card: { cardSerial: 'AA001602' } } }, posMd);
      doneAtEachInquiry.push(pinDone);
    }
    const results = await Promise.all(pinPayments);
    expect(results.every((r) => r.outcome === Outcome.OUTCOME_APPROVED)).toBe(true);
    // All ten inquiries were answered while password checks were still queued or running.
    expect(doneAtEachInquiry.at(-1)).toBeLessThan(40);
  });
});

describe('retries of PIN payments', () => {
  it('replays a decided PIN payment without checking the password again', async () => {
    await newCard('1701', 'AA001701', 50_000);
    const sequenceNumber = ++seq;
    const first = await pay('AA001701', 6000, PIN, sequenceNumber);
    expect(first.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const checksBefore = app.context.passwords.stats().completed;
    // Even a wrong PIN on the retry replays the first answer: the request was decided, nothing is charged again.
    const retry = await pay('AA001701', 6000, '000000', sequenceNumber);
    expect(retry).toEqual(first);
    expect(app.context.passwords.stats().completed).toBe(checksBefore);
    expect(await app.redis.hget(app.keys.account('1701'), 'pfail')).not.toBe('1');
    expect(await balance('1701')).toBe(44_000);
  });
});
