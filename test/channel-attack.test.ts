// Attacks on payment codes and their refunds, against a real switch, real Redis and both channel simulators:
// one payment code presented by 300 POS requests at once (different sequence numbers), and a paid payment
// hit by 100 copies of its reversal and 200 different refunds at the same moment. Nobody is charged twice,
// no more goes back than was paid, the journal says exactly what the channel did, and the audit passes
// after every test. (The same notification 300 times in parallel, forged, tampered and replayed ones are
// test/channel-recharge.test.ts's; 300 parallel copies of one refund are test/channel-refund.test.ts's.)
import type { Metadata } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type {
  AuthorizeRequest,
  AuthorizeResponse,
  PosServiceClient,
  RefundRequest,
  RefundResponse,
  ReverseRequest,
  ReverseResponse,
} from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { bindChannelPayer } from '../switch/domain/channel-payers.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { followUpCount, readPaidRecord, refundFollowUpCount } from '../switch/ledger/channel-payments.js';
import { createLogger } from '../switch/log.js';
import { call, openCard, POS_TERMINAL, posClient, readJournal, terminalMetadata, testConfig } from './helpers/switch.js';

const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');

type Channel = 'wechat' | 'alipay';

let sims: ChannelSimulators;
let app: SwitchApp;
let client: PosServiceClient;
let meta: Metadata;
let nextSequence = 1;
let cardSeq = 0;

beforeAll(async () => {
  sims = await startChannelSimulators({ log, notifyBaseUrl: '', latencyMs: 0 });
  app = await startSwitch(
    testConfig('chatk', {
      CHANNEL_POLL_INTERVAL_MS: '30',
      CHANNEL_WECHAT_BUDGET_MS: '5000',
      CHANNEL_ALIPAY_BUDGET_MS: '5000',
      CHANNEL_CALL_TIMEOUT_MS: '3000',
    }),
    log,
    Date.now,
    { channels: sims.channels, gateway: false },
  );
  await app.terminals.register(POS_TERMINAL);
  client = posClient(app);
  meta = terminalMetadata(POS_TERMINAL);
});

afterAll(async () => {
  client?.close();
  await app?.stop();
  await sims?.stop();
});

afterEach(async () => {
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
});

async function payer(channel: Channel): Promise<{ cardNo: string; payerId: string }> {
  cardSeq += 1;
  const cardNo = `6700${String(cardSeq).padStart(4, '0')}`;
  await openCard(app, cardNo, `AK${cardNo}`, 10_000);
  const payerId = channel === 'wechat' ? `oWX-attack-${cardNo}` : sims.alipay.newPayer({ balanceFen: 1_000_000 });
  if (channel === 'wechat') sims.wechat.setBalance(payerId, 1_000_000);
  await bindChannelPayer(app.context, cardNo, channel, payerId);
  return { cardNo, payerId };
}

const balanceOf = (channel: Channel, payerId: string): number =>
  channel === 'wechat' ? sims.wechat.balanceOf(payerId) : sims.alipay.balanceOf(payerId);

function authorize(sequence: number, code: string, amountFen: number): Promise<AuthorizeResponse> {
  return call<AuthorizeRequest, AuthorizeResponse>(
    client,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: sequence, amountFen, credential: { thirdParty: { code } }, pin: '' },
    meta,
  );
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function entries(cardNo: string, outTradeNo?: string): Promise<Record<string, string>[]> {
  const all = await readJournal(app.redis, app.keys.journalOfCard(cardNo));
  return all.map((e) => e.fields).filter((f) => f['c'] === cardNo && (outTradeNo === undefined || f['ot'] === outTradeNo));
}

describe.each(['wechat', 'alipay'] as const)('%s: attacks', (channel) => {
  it('one payment code in 300 parallel Authorize calls (300 sequence numbers) pays at most once', async () => {
    const p = await payer(channel);
    const before = balanceOf(channel, p.payerId);
    const code = channel === 'wechat' ? sims.wechat.newCode(p.payerId) : sims.alipay.newCode(p.payerId);
    const sequences = Array.from({ length: 300 }, () => nextSequence++);
    const answers = await Promise.allSettled(sequences.map((s) => authorize(s, code, 880)));
    await waitFor('every payment decided', async () => (await followUpCount(app.context)) === 0);
    const approved = answers.filter((a) => a.status === 'fulfilled' && a.value.outcome === Outcome.OUTCOME_APPROVED);
    expect(approved.length).toBeLessThanOrEqual(1);
    const paid = (await entries(p.cardNo)).filter((e) => e['k'] === 'cpay');
    const reversed = (await entries(p.cardNo)).filter((e) => e['k'] === 'cprev');
    // The payer is charged for at most one sale, and exactly for the sales the journal keeps.
    expect(paid.length - reversed.length).toBeLessThanOrEqual(1);
    expect(before - balanceOf(channel, p.payerId)).toBe(880 * (paid.length - reversed.length));
  });

  it('100 copies of a reversal and 200 different refunds of one paid payment at once: never more back than was paid', async () => {
    const p = await payer(channel);
    const before = balanceOf(channel, p.payerId);
    const sequence = nextSequence++;
    const code = channel === 'wechat' ? sims.wechat.newCode(p.payerId) : sims.alipay.newCode(p.payerId);
    const paid = await authorize(sequence, code, 1500);
    expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(balanceOf(channel, p.payerId)).toBe(before - 1500);

    const reversal: ReverseRequest = {
      terminalId: POS_TERMINAL.id,
      originalSequenceNumber: sequence,
      amountFen: 1500,
      credential: { thirdParty: { code } },
    };
    const refundOf = (s: number): RefundRequest => ({
      terminalId: POS_TERMINAL.id,
      sequenceNumber: s,
      cardNumber: p.cardNo,
      originalTerminalId: POS_TERMINAL.id,
      originalSequenceNumber: sequence,
      amountFen: 10,
    });
    const attacks: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      attacks.push(
        i % 3 === 0
          ? call<ReverseRequest, ReverseResponse>(client, 'reverse', reversal, meta)
          : call<RefundRequest, RefundResponse>(client, 'refund', refundOf(nextSequence++), meta),
      );
    }
    await Promise.allSettled(attacks);
    await waitFor(
      'every refund and the reversal decided',
      async () => (await refundFollowUpCount(app.context)) === 0 && (await followUpCount(app.context)) === 0,
    );
    // All of it went back, exactly once: refunds plus the reversal's rest equal the payment.
    expect(balanceOf(channel, p.payerId)).toBe(before);
    const journal = await entries(p.cardNo, paid.transactionId);
    const back = journal.filter((e) => e['k'] === 'cref' || e['k'] === 'cprev').reduce((sum, e) => sum + Number(e['a']), 0);
    expect(journal.filter((e) => e['k'] === 'cpay')).toHaveLength(1);
    expect(journal.filter((e) => e['k'] === 'cprev').length).toBeLessThanOrEqual(1);
    expect(back).toBe(1500);
    const record = await readPaidRecord(app.context, p.cardNo, paid.transactionId);
    expect(record.reservedFen).toBe(0);
    expect(record.refundedFen).toBe(journal.filter((e) => e['k'] === 'cref').reduce((sum, e) => sum + Number(e['a']), 0));
  });
});
