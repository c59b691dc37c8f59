// A retry answers the first answer even when the card changed in between: a kiosk's utility fee retried
// (same kiosk, same sequence number: its answer was lost) after the card office replaced the card, or
// after the holder changed the card password, is the fee already paid, not "card replaced" or "wrong
// password" (the kiosk would tell the holder the fee failed while its money is gone). Found by
// test/conservation-storm.test.ts: duplicates of one fee request answered "paid" and "此卡已换卡作废".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outcome, UtilityKind } from '../proto/gen/cardswitch/v1/common.js';
import type { PayUtilityFeeRequest, PayUtilityFeeResponse } from '../proto/gen/cardswitch/v1/kiosk.js';
import type { SwitchApp } from '../switch/app.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { adminClient, KIOSK_TERMINAL, kioskClient, OPERATOR_ENV, operatorMetadata, passwordHash } from './helpers/clients.js';
import { call, grpcError, openCard, readJournal, startTestSwitch, terminalMetadata } from './helpers/switch.js';

const PIN = '246810';
const NEW_PIN = '135791';
let app: SwitchApp;
let kiosk: ReturnType<typeof kioskClient>;
let admin: ReturnType<typeof adminClient>;
let cardSeq = 0;
let sequence = 0;

beforeAll(async () => {
  app = await startTestSwitch('replay', { ...OPERATOR_ENV, PASSWORD_SCRYPT_N: '1024' });
  await app.terminals.register(KIOSK_TERMINAL);
  kiosk = kioskClient(app);
  admin = adminClient(app);
});
afterAll(async () => {
  kiosk?.close();
  admin?.close();
  await app?.stop();
});

async function card(): Promise<{ cardNo: string; serial: string }> {
  cardSeq++;
  const cardNo = String(74_100_000 + cardSeq);
  const serial = `7E${String(cardSeq).padStart(8, '0')}`;
  await openCard(app, cardNo, serial, 20_000, { pwd: await passwordHash(app, PIN), pwdinit: '0', sync: '1' });
  return { cardNo, serial };
}

function feeRequest(serial: string, password = PIN): PayUtilityFeeRequest {
  return {
    cardholder: { card: { cardSerial: serial } },
    password,
    sequenceNumber: ++sequence,
    kind: UtilityKind.UTILITY_KIND_ELECTRICITY,
    networkAccount: '',
    building: '学4',
    room: '402',
    amountFen: 1_200,
  };
}

const payFee = (req: PayUtilityFeeRequest): Promise<PayUtilityFeeResponse> =>
  call(kiosk, 'payUtilityFee', req, terminalMetadata(KIOSK_TERMINAL));

async function feeEntries(cardNo: string): Promise<number> {
  return (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter((e) => e.fields['k'] === 'fee' && e.fields['c'] === cardNo)
    .length;
}

describe('a kiosk fee retried after the card changed', () => {
  it('after a ReplaceCard: the retry with the card on the reader (now replaced) answers the fee paid', async () => {
    const { cardNo, serial } = await card();
    const req = feeRequest(serial);
    const paid = await payFee(req);
    expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
    await call(admin, 'replaceCard', { cardNumber: cardNo, newCardSerial: '7EFF00000001', requestId: 'replay-r1' }, operatorMetadata());
    expect(await payFee(req)).toEqual(paid);
    expect(await feeEntries(cardNo)).toBe(1);
    expect(Number(await app.redis.hget(app.keys.account(cardNo), 'bal'))).toBe(20_000 - 1_200);
  });

  it('after a password change: the retry with the password it was paid with answers the fee paid', async () => {
    const { cardNo, serial } = await card();
    const req = feeRequest(serial);
    const paid = await payFee(req);
    expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
    await call(
      kiosk,
      'changePassword',
      { cardholder: { card: { cardSerial: serial } }, oldPassword: PIN, newPassword: NEW_PIN },
      terminalMetadata(KIOSK_TERMINAL),
    );
    const attemptsBefore = await app.redis.hmget(app.keys.account(cardNo), 'pday', 'pfail');
    expect(await payFee(req)).toEqual(paid);
    expect(await feeEntries(cardNo)).toBe(1);
    // No wrong attempt was counted against the card for the retry.
    expect(await app.redis.hmget(app.keys.account(cardNo), 'pday', 'pfail')).toEqual(attemptsBefore);
  });

  it('a new request still needs the current card and password', async () => {
    const { cardNo, serial } = await card();
    await call(admin, 'replaceCard', { cardNumber: cardNo, newCardSerial: '7EFF00000002', requestId: 'replay-r2' }, operatorMetadata());
    expect((await grpcError(payFee(feeRequest(serial)))).details).toMatch(/replaced/);
    const wrong = await payFee(feeRequest('7EFF00000002', NEW_PIN));
    expect(wrong.outcome).toBe(Outcome.OUTCOME_DECLINED);
    expect(await feeEntries(cardNo)).toBe(0);
    // The same sequence number with the right password is then paid (a wrong password recorded nothing).
    const ok = await payFee({ ...feeRequest('7EFF00000002'), sequenceNumber: sequence });
    expect(ok.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(await feeEntries(cardNo)).toBe(1);
    const report = await auditLedger(app.redis, app.keys);
    expect(report.problems).toEqual([]);
  });
});
