// A retry answers the first answer even when the card changed in between: a kiosk's utility fee retried
// (same kiosk, same sequence number: its answer was lost) after the card office replaced the card, or
// after the holder changed the card password, is the fee already paid, not "card replaced" or "wrong
// password" (the kiosk would tell the holder the fee failed while its money is gone). Found by
// test/conservation-storm.test.ts: duplicates of one fee request answered "paid" and "此卡已换卡作废".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outcome, RechargeChannel, UtilityKind } from '../proto/gen/cardswitch/v1/common.js';
import type { PayUtilityFeeRequest, PayUtilityFeeResponse, RechargeRequest, RechargeResponse } from '../proto/gen/cardswitch/v1/kiosk.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators } from '../switch/channels/index.js';
import { createLogger } from '../switch/log.js';
import { freePort } from '../switch/redis/local-redis.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { adminClient, KIOSK_TERMINAL, kioskClient, OPERATOR_ENV, operatorMetadata, passwordHash } from './helpers/clients.js';
import { call, grpcError, openCard, readJournal, startTestSwitch, terminalMetadata, testConfig } from './helpers/switch.js';

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

describe('a kiosk recharge order asked again after the card was replaced', () => {
  it('the retry (same kiosk, same requestId, the card on the reader now replaced) answers the same order', async () => {
    const port = await freePort();
    const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
    const sims = await startChannelSimulators({ log, notifyBaseUrl: `http://127.0.0.1:${port}`, latencyMs: 0 });
    const channelApp = await startSwitch(testConfig('replayrch', { ...OPERATOR_ENV, GATEWAY_PORT: String(port) }), log, Date.now, {
      channels: sims.channels,
    });
    const client = kioskClient(channelApp);
    const operator = adminClient(channelApp);
    try {
      await channelApp.terminals.register(KIOSK_TERMINAL);
      await openCard(channelApp, '74200001', '7EAA00000001', 1_000, { sync: '1' });
      const request: RechargeRequest = {
        cardholder: { card: { cardSerial: '7EAA00000001' } },
        channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT,
        requestId: 'replay-order-1',
        amountFen: 2_000,
      };
      const md = terminalMetadata(KIOSK_TERMINAL);
      const first = await call<RechargeRequest, RechargeResponse>(client, 'recharge', request, md);
      await call(
        operator,
        'replaceCard',
        { cardNumber: '74200001', newCardSerial: '7EAA00000002', requestId: 'replay-r3' },
        operatorMetadata(),
      );
      const again = await call<RechargeRequest, RechargeResponse>(client, 'recharge', request, md);
      expect(again.orderId).toBe(first.orderId);
      expect(again.amountFen).toBe(2_000);
      // Paid, it credits the card's account (the one the new card now opens) once.
      await sims.wechat.payOrder(first.orderId);
      expect(Number(await channelApp.redis.hget(channelApp.keys.account('74200001'), 'bal'))).toBe(3_000);
      // A new request with the replaced card is still refused.
      const refused = await grpcError(call(client, 'recharge', { ...request, requestId: 'replay-order-2' }, md));
      expect(refused.details).toMatch(/replaced/);
    } finally {
      client.close();
      operator.close();
      await channelApp.stop();
      await sims.stop();
    }
  });
});
