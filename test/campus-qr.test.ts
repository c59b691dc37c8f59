// Campus QR codes through PosService/Authorize against a real switch and Redis: approved once, and
// declined (changing no money) when replayed, raced on two POS, expired, tampered, forged, from another
// binding, after loss, freeze, replacement or unbinding. Cards are bound through the e-card domain.
import { status as Status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import { bindEcard, issueCampusQr, unbindEcard, type BindingForm } from '../switch/domain/ecard.js';
import { cancelCardLoss, reportCardLost } from '../switch/domain/card-status.js';
import { CampusQrCodec } from '../switch/qr/codec.js';
import {
  base32Decode,
  base32Encode,
  CAMPUS_QR_PATTERN,
  CAMPUS_QR_TEXT_LENGTH,
  classifyPaymentCode,
  parseCampusQr,
} from '../switch/qr/format.js';
import { passwordHash, startClockedSwitch, TestClock } from './helpers/clients.js';
import { call, grpcError, openCard, POS_TERMINAL, posClient, terminalMetadata } from './helpers/switch.js';

const PIN = '246810';
const DOC = '11010519900307123X';
const PHONE = '13800138000';
// 2026-11-26 12:00 in campus time (UTC+8): lunch.
const START_MS = Date.UTC(2026, 10, 26, 4, 0, 0);
const POS_2 = { ...POS_TERMINAL, id: 'POS-T2', secret: 'pos-2-secret-0123456789' };

let app: SwitchApp;
let clock: TestClock;
let pos: ReturnType<typeof posClient>;
let seq = 0;

beforeAll(async () => {
  clock = new TestClock(START_MS);
  app = await startClockedSwitch('campusqr', clock, {});
  await app.terminals.register(POS_TERMINAL);
  await app.terminals.register(POS_2);
  pos = posClient(app);
});
afterAll(async () => {
  pos.close();
  await app.stop();
});

/** A synced card with a known password and document, its holder's user id bound to it. */
async function boundCard(cardNo: string, openingFen: number, userId = `wecom:u${cardNo}`): Promise<string> {
  const serial = `CC${cardNo.padStart(6, '0')}`;
  await openCard(app, cardNo, serial, openingFen, {
    pwd: await passwordHash(app, PIN),
    doct: 'R',
    docn: DOC,
    phone: PHONE,
    sno: `Q${cardNo}`,
    sync: '1',
  });
  await app.redis.set(app.keys.personNumber(`Q${cardNo}`), cardNo);
  const form: BindingForm = {
    bindingType: 'student',
    personNumber: `Q${cardNo}`,
    password: PIN,
    documentType: 'resident_id',
    documentNumber: DOC,
    phone: PHONE,
    consent: true,
  };
  await bindEcard(app.context, userId, form);
  return userId;
}

function payWithQr(payload: string, amountFen: number, terminal = POS_TERMINAL, sequenceNumber = ++seq): Promise<AuthorizeResponse> {
  return call(
    pos,
    'authorize',
    { terminalId: terminal.id, sequenceNumber, amountFen, credential: { campusQr: { payload } }, pin: '' },
    terminalMetadata(terminal),
  );
}

async function balance(cardNo: string): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));
}

async function qrOf(userId: string, cardNo: string): Promise<string> {
  return (await issueCampusQr(app.context, userId, cardNo)).code;
}

describe('the code format', () => {
  it('is 79 characters of the QR alphanumeric set that no payment-code scheme can mistake', async () => {
    const user = await boundCard('7001', 10_000);
    const code = await qrOf(user, '7001');
    expect(code).toHaveLength(CAMPUS_QR_TEXT_LENGTH);
    expect(code).toMatch(CAMPUS_QR_PATTERN);
    expect(code).toMatch(/^[0-9A-Z $%*+\-./:]+$/);
    expect(classifyPaymentCode(code)).toBe('campus_qr');
    expect(classifyPaymentCode('281234567890123456')).toBe('alipay');
    expect(classifyPaymentCode('134567890123456789')).toBe('wechat');
    // The POS cannot read whose code it is: the card number is sealed.
    expect(code).not.toContain('7001');
    expect(Buffer.from(base32Decode(code.slice(2)) ?? []).toString('latin1')).not.toContain('7001');
    expect(parseCampusQr(code)?.issuedAtSec).toBe(Math.floor(START_MS / 1000));
  });

  it('round-trips base32 and refuses non-canonical text', () => {
    const bytes = Uint8Array.from({ length: 48 }, (_, i) => (i * 37) & 0xff);
    expect(Array.from(base32Decode(base32Encode(bytes)) ?? [])).toEqual(Array.from(bytes));
    expect(base32Decode('AB')).toBeUndefined();
    expect(base32Decode('a')).toBeUndefined();
  });
});

describe('a campus QR code at the POS', () => {
  it('pays once, answers the card like a tap, and a retry replays the first answer', async () => {
    const user = await boundCard('7101', 10_000);
    const code = await qrOf(user, '7101');
    const sequenceNumber = ++seq;
    const first = await payWithQr(code, 1250, POS_TERMINAL, sequenceNumber);
    expect(first.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(first.cardNumber).toBe('7101');
    expect(first.balanceAfterFen).toBe(8750);
    expect(await payWithQr(code, 1250, POS_TERMINAL, sequenceNumber)).toEqual(first);
    expect(await balance('7101')).toBe(8750);
  });

  it('is declined QR_USED when shown again, and nothing moves', async () => {
    const user = await boundCard('7102', 10_000);
    const code = await qrOf(user, '7102');
    expect((await payWithQr(code, 500)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    const again = await payWithQr(code, 500);
    expect(again.outcome).toBe(Outcome.OUTCOME_DECLINED);
    expect(again.declineReason).toBe(DeclineReason.DECLINE_REASON_QR_USED);
    // A dead code tells the POS nothing about its holder.
    expect(again.cardNumber).toBe('');
    expect(again.balanceAfterFen).toBe(0);
    expect(await balance('7102')).toBe(9500);
  });

  it('is not used up by a decline: over the balance, then within it, the same code pays', async () => {
    const user = await boundCard('7109', 1_000);
    const code = await qrOf(user, '7109');
    expect((await payWithQr(code, 5_000)).declineReason).toBe(DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS);
    expect((await payWithQr(code, 800)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect((await payWithQr(code, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_USED);
    expect(await balance('7109')).toBe(200);
  });

  it('pays once when 300 payments with one code race on two POS', async () => {
    const user = await boundCard('7103', 1_000_000);
    const code = await qrOf(user, '7103');
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => payWithQr(code, 100, i % 2 === 0 ? POS_TERMINAL : POS_2)));
    expect(results.filter((r) => r.outcome === Outcome.OUTCOME_APPROVED)).toHaveLength(1);
    expect(results.filter((r) => r.declineReason === DeclineReason.DECLINE_REASON_QR_USED)).toHaveLength(299);
    expect(await balance('7103')).toBe(999_900);
    expect(await app.redis.xlen(app.keys.journalOfCard('7103'))).toBeGreaterThan(0);
  });

  it('is declined QR_EXPIRED after its 60 seconds, QR_INVALID when altered or forged', async () => {
    const user = await boundCard('7104', 10_000);
    const code = await qrOf(user, '7104');
    clock.advance(61_000);
    const expired = await payWithQr(code, 100);
    expect(expired.declineReason).toBe(DeclineReason.DECLINE_REASON_QR_EXPIRED);
    const fresh = await qrOf(user, '7104');
    const last = fresh.at(-1) === 'A' ? 'B' : 'A';
    const tampered = await payWithQr(fresh.slice(0, -1) + last, 100);
    expect(tampered.declineReason).toBe(DeclineReason.DECLINE_REASON_QR_INVALID);
    const forged = new CampusQrCodec('someone-elses-secret-0123456789abcdef').issue('7104', 1, clock.nowMs);
    expect((await payWithQr(forged, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_INVALID);
    expect((await payWithQr('CQ' + 'A'.repeat(77), 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_INVALID);
    expect(await balance('7104')).toBe(10_000);
    // The genuine fresh code still pays: refusing the forgeries used nothing up.
    expect((await payWithQr(fresh, 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
  });

  it('a code issued within the clock skew ahead is accepted; further ahead it is not', async () => {
    const user = await boundCard('7105', 10_000);
    clock.advance(4_000);
    const ahead = await qrOf(user, '7105');
    clock.advance(-4_000);
    expect((await payWithQr(ahead, 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    clock.advance(10_000);
    const farAhead = await qrOf(user, '7105');
    clock.advance(-10_000);
    expect((await payWithQr(farAhead, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_EXPIRED);
  });

  it('dies with its binding, a loss report, a freeze, a replacement; a new binding gets new codes', async () => {
    const user = await boundCard('7106', 10_000);
    const afterLoss = await qrOf(user, '7106');
    await reportCardLost(app.context, '7106');
    expect((await payWithQr(afterLoss, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_LOST);
    await cancelCardLoss(app.context, '7106');
    // Still dead after the loss is cancelled: the loss moved the card's QR epoch on.
    expect((await payWithQr(afterLoss, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_INVALID);
    const beforeFreeze = await qrOf(user, '7106');
    await app.ledger.setStatus('7106', 'frozen');
    await app.ledger.setStatus('7106', 'active');
    expect((await payWithQr(beforeFreeze, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_INVALID);
    const beforeReplace = await qrOf(user, '7106');
    await app.ledger.replaceCard('7106', 'RPL-7106', 'CD007106');
    expect((await payWithQr(beforeReplace, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_INVALID);
    await app.redis.hset(app.keys.account('7106'), 'sync', '1');
    const beforeUnbind = await qrOf(user, '7106');
    await unbindEcard(app.context, user, PIN);
    expect((await payWithQr(beforeUnbind, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_INVALID);
    await expect(qrOf(user, '7106')).rejects.toMatchObject({ reason: 'NOT_BOUND' });
    // Bound again by another user: the old binding's codes stay dead, the new one's pay.
    const other = await bindAgain('7106', 'wechat:other7106');
    expect((await payWithQr(beforeUnbind, 100)).declineReason).toBe(DeclineReason.DECLINE_REASON_QR_INVALID);
    expect((await payWithQr(await qrOf(other, '7106'), 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(await balance('7106')).toBe(9_900);
  });

  it('keeps the password-free limits and the daily cap, and a PIN retry of the same request pays', async () => {
    const limited = await startClockedSwitch('campusqrlim', clock, {
      STUDENT_NO_PIN_PER_PAYMENT_FEN: '5000',
      STUDENT_NO_PIN_PER_DAY_FEN: '20000',
      STUDENT_DAILY_SPEND_LIMIT_FEN: '7000',
    });
    try {
      await limited.terminals.register(POS_TERMINAL);
      const client = posClient(limited);
      const saved = app;
      app = limited;
      try {
        const user = await boundCard('7107', 100_000);
        const code = await qrOf(user, '7107');
        const sequenceNumber = ++seq;
        const pay = (pin: string) =>
          call<object, AuthorizeResponse>(
            client,
            'authorize',
            { terminalId: POS_TERMINAL.id, sequenceNumber, amountFen: 6000, credential: { campusQr: { payload: code } }, pin },
            terminalMetadata(POS_TERMINAL),
          );
        expect((await pay('')).outcome).toBe(Outcome.OUTCOME_PIN_REQUIRED);
        expect((await pay(PIN)).outcome).toBe(Outcome.OUTCOME_APPROVED);
        const over = await call<object, AuthorizeResponse>(
          client,
          'authorize',
          {
            terminalId: POS_TERMINAL.id,
            sequenceNumber: ++seq,
            amountFen: 2000,
            credential: { campusQr: { payload: await qrOf(user, '7107') } },
            pin: '',
          },
          terminalMetadata(POS_TERMINAL),
        );
        expect(over.declineReason).toBe(DeclineReason.DECLINE_REASON_DAILY_LIMIT_EXCEEDED);
        expect(await balance('7107')).toBe(94_000);
      } finally {
        app = saved;
        client.close();
      }
    } finally {
      await limited.stop();
    }
  });

  it('is refused by Inquire and WaterDebit (a code is for paying once), and reverses like a tap', async () => {
    const user = await boundCard('7108', 10_000);
    const code = await qrOf(user, '7108');
    const inquiry = await grpcError(
      call(pos, 'inquire', { terminalId: POS_TERMINAL.id, credential: { campusQr: { payload: code } } }, terminalMetadata(POS_TERMINAL)),
    );
    expect(inquiry.code).toBe(Status.INVALID_ARGUMENT);
    const sequenceNumber = ++seq;
    expect((await payWithQr(code, 700, POS_TERMINAL, sequenceNumber)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    const reversed = await call<object, { result: number }>(
      pos,
      'reverse',
      { terminalId: POS_TERMINAL.id, originalSequenceNumber: sequenceNumber, amountFen: 700, credential: { campusQr: { payload: code } } },
      terminalMetadata(POS_TERMINAL),
    );
    expect(reversed.result).toBe(1);
    expect(await balance('7108')).toBe(10_000);
  });
});

async function bindAgain(cardNo: string, userId: string): Promise<string> {
  const form: BindingForm = {
    bindingType: 'student',
    personNumber: `Q${cardNo}`,
    password: PIN,
    documentType: 'resident_id',
    documentNumber: DOC,
    phone: PHONE,
    consent: true,
  };
  await bindEcard(app.context, userId, form);
  return userId;
}

describe('card passwords under parallel guessing', () => {
  it('300 parallel wrong passwords get no more checks than the attempts left, then the card locks', async () => {
    await openCard(app, '7201', 'CC007201', 1000, { pwd: await passwordHash(app, PIN), sno: 'Q7201' });
    const checksBefore = app.context.passwords.stats().completed;
    const { checkCardPassword } = await import('../switch/domain/card-password.js');
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => checkCardPassword(app.context, '7201', String(100000 + i))));
    // Five checks were taken (as many as attempts left); the other 295 found them in flight: 'busy'.
    expect(results.filter((r) => !r.ok && r.reason === 'wrong')).toHaveLength(4);
    expect(results.filter((r) => !r.ok && r.reason === 'locked')).toHaveLength(1);
    expect(results.filter((r) => !r.ok && r.reason === 'busy')).toHaveLength(295);
    expect(app.context.passwords.stats().completed - checksBefore).toBeLessThanOrEqual(5);
    // Even the right password is refused now, for the rest of the campus day.
    expect(await checkCardPassword(app.context, '7201', PIN)).toEqual({ ok: false, reason: 'locked' });
  });

  it('300 parallel right passwords: five are checked and pass, the rest are told to retry, nothing locks', async () => {
    await openCard(app, '7202', 'CC007202', 1000, { pwd: await passwordHash(app, PIN), sno: 'Q7202' });
    const { checkCardPassword } = await import('../switch/domain/card-password.js');
    const results = await Promise.all(Array.from({ length: 300 }, () => checkCardPassword(app.context, '7202', PIN)));
    expect(results.filter((r) => r.ok).length).toBeGreaterThanOrEqual(5);
    expect(results.every((r) => r.ok || r.reason === 'busy')).toBe(true);
    expect(await checkCardPassword(app.context, '7202', PIN)).toEqual({ ok: true });
    expect(await app.redis.hget(app.keys.account('7202'), 'pinf')).toBe('0');
  });
});
