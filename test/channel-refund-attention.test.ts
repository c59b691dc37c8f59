// Merchant refunds of code payments whose channel never gives a final answer (a system error on every
// refund query): the switch's follow-up asks again a bounded number of times, then the refund needs an
// operator: off the follow-up, listed by `npm run cli -- refund-attention` (exit 1). The POS sending the
// same refund again still asks the channel, and its final answer settles the refund once (the payer gets
// the money back once, one `cref` entry) and takes it off the list (exit 0). Real switch, real Redis, both
// channel simulators over loopback; the audit passes after each test.
import type { Metadata } from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type {
  AuthorizeRequest,
  AuthorizeResponse,
  PosServiceClient,
  RefundRequest,
  RefundResponse,
} from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { runRefundAttentionCommand } from '../switch/cli/refund-attention.js';
import { bindChannelPayer } from '../switch/domain/channel-payers.js';
import { followUpRefund, outRefundNoOf } from '../switch/domain/channel-refund.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { refundAttentionCount, refundFollowUpCount } from '../switch/ledger/channel-payments.js';
import { createLogger } from '../switch/log.js';
import { testRedisUrl } from './helpers/redis.js';
import { call, grpcError, openCard, POS_TERMINAL, posClient, readJournal, terminalMetadata, testConfig } from './helpers/switch.js';

/** What an operator reads: campus time (UTC+8) with its offset, computed here apart from the CLI's own code. */
function campusClock(ms: number): string {
  return `${new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ')} +08:00`;
}
/** An ISO time in UTC ('...Z'), which operators in campus time misread by 8 hours. */
const UTC_ISO = /\d{2}:\d{2}:\d{2}(\.\d+)?Z/;

const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
const MAX_UNKNOWN = 3;
/** The switch's own follow-up looks at a refund a minute after each look: the test makes every look itself. */
const CHANNEL_CONFIG = { CHANNEL_POLL_INTERVAL_MS: '60000', CHANNEL_CALL_TIMEOUT_MS: '2000' };

let sims: ChannelSimulators;
let app: SwitchApp;
let client: PosServiceClient;
let meta: Metadata;
let nextSequence = 1;
let cardSeq = 0;

beforeAll(async () => {
  sims = await startChannelSimulators({ log, notifyBaseUrl: '', latencyMs: 0 });
  app = await startSwitch(testConfig('chrfat', CHANNEL_CONFIG), log, Date.now, { channels: sims.channels });
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

async function runCli(args: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const logSpy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const errSpy = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    const code = await runRefundAttentionCommand(args, {
      REDIS_URL: testRedisUrl(),
      KEY_PREFIX: app.context.config.keyPrefix,
      LOG_LEVEL: 'silent',
    });
    return { code, out: out.join('\n') };
  } finally {
    logSpy.mockRestore();
    errSpy.mockRestore();
  }
}

describe.each(['wechat', 'alipay'] as const)('%s: a refund the channel never answers for good', (channel) => {
  it('is asked a bounded number of times, then needs an operator; the POS asking again settles it once', async () => {
    cardSeq += 1;
    const cardNo = `6700${String(cardSeq).padStart(4, '0')}`;
    await openCard(app, cardNo, `RA${cardNo}`, 10_000);
    const payerId = channel === 'wechat' ? `oWX-rfattn-${cardNo}` : sims.alipay.newPayer({ balanceFen: 100_000 });
    if (channel === 'wechat') sims.wechat.setBalance(payerId, 100_000);
    await bindChannelPayer(app.context, cardNo, channel, payerId);
    const balance = (): number => (channel === 'wechat' ? sims.wechat.balanceOf(payerId) : sims.alipay.balanceOf(payerId));
    const calls = (): { refunds: number; queries: number } =>
      channel === 'wechat'
        ? { refunds: sims.wechat.callCount('/secapi/pay/refund'), queries: sims.wechat.callCount('/pay/refundquery') }
        : { refunds: sims.alipay.callCount('alipay.trade.refund'), queries: sims.alipay.callCount('alipay.trade.fastpay.refund.query') };
    // The channel's every answer about the refund, from now on until the test says otherwise: a system error.
    const failRefund = (): void => {
      if (channel === 'wechat') sims.wechat.failNext('refund', 'systemerror');
      else sims.alipay.failNext('alipay.trade.refund', 'system_error', 1);
    };
    const failQuery = (): void => {
      if (channel === 'wechat') sims.wechat.failNext('refundquery', 'systemerror');
      else sims.alipay.failNext('alipay.trade.fastpay.refund.query', 'system_error', 1);
    };

    const sequence = nextSequence++;
    const code = channel === 'wechat' ? sims.wechat.newCode(payerId) : sims.alipay.newCode(payerId);
    const paid = await call<AuthorizeRequest, AuthorizeResponse>(
      client,
      'authorize',
      { terminalId: POS_TERMINAL.id, sequenceNumber: sequence, amountFen: 500, credential: { thirdParty: { code } }, pin: '' },
      meta,
    );
    expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const paidBalance = balance();

    const refundSeq = nextSequence++;
    const refund = (): Promise<RefundResponse> =>
      call<RefundRequest, RefundResponse>(
        client,
        'refund',
        {
          terminalId: POS_TERMINAL.id,
          sequenceNumber: refundSeq,
          cardNumber: cardNo,
          originalTerminalId: POS_TERMINAL.id,
          originalSequenceNumber: sequence,
          amountFen: 200,
        },
        meta,
      );
    failRefund();
    const unknown = await grpcError(refund());
    expect(unknown.code).toBe(Status.UNAVAILABLE);
    const item = { cardNo, terminalId: POS_TERMINAL.id, sequence: refundSeq };
    const member = `${cardNo}|${POS_TERMINAL.id}|${refundSeq}`;

    for (let look = 1; look <= MAX_UNKNOWN; look++) {
      failQuery();
      const before = calls();
      await followUpRefund(app.context, item, `test-${channel}`, { maxUnknownAnswers: MAX_UNKNOWN });
      // Each look asks the refund query once; a query without a final word never sends the refund again.
      expect(calls()).toEqual({ refunds: before.refunds, queries: before.queries + 1 });
      const pending = await app.redis.zscore(app.keys.channelRefundsPending(), member);
      const attention = await app.redis.zscore(app.keys.channelRefundsAttention(), member);
      if (look < MAX_UNKNOWN) {
        expect(pending).not.toBeNull();
        expect(attention).toBeNull();
      } else {
        // Given up: off the follow-up (the switch's loop no longer asks), on the attention list.
        expect(pending).toBeNull();
        expect(attention).not.toBeNull();
      }
    }
    expect(balance()).toBe(paidBalance);
    expect(await refundFollowUpCount(app.context)).toBe(0);

    const listed = await runCli(['--json', '--channel', channel]);
    expect(listed.code).toBe(1);
    expect(JSON.parse(listed.out)).toEqual([
      expect.objectContaining({
        channel,
        cardNo,
        terminalId: POS_TERMINAL.id,
        sequence: refundSeq,
        outTradeNo: paid.transactionId,
        outRefundNo: outRefundNoOf(app.context, POS_TERMINAL.id, refundSeq),
        amountFen: 200,
        unknownAnswers: MAX_UNKNOWN,
        recordKept: true,
      }),
    ]);
    // The text list: times in campus time with the offset, never UTC.
    const text = await runCli(['--channel', channel]);
    const listedRefund = (JSON.parse(listed.out) as { createdAtMs: number; sinceMs: number }[])[0]!;
    expect(text.out).toContain(`made ${campusClock(listedRefund.createdAtMs)}`);
    expect(text.out).toContain(`given up ${campusClock(listedRefund.sinceMs)}`);
    expect(text.out).not.toMatch(UTC_ISO);
    const other = channel === 'wechat' ? 'alipay' : 'wechat';
    expect((await runCli(['--channel', other])).code).toBe(0);
    expect((await runCli(['--channel', 'paypal'])).code).toBe(2);

    // The channel answers again: the POS sends the same refund; it is asked about (not found: the first
    // send failed), sent once more with the same refund number, refunded once, and leaves the list.
    const before = calls();
    const settled = await refund();
    expect(settled.refundableLeftFen).toBe(300);
    expect(calls()).toEqual({ refunds: before.refunds + 1, queries: before.queries + 1 });
    expect(balance()).toBe(paidBalance + 200);
    const again = await refund();
    expect(again).toEqual(settled);
    expect(balance()).toBe(paidBalance + 200);
    const entries = (await readJournal(app.redis, app.keys.journalOfCard(cardNo))).filter((e) => e.fields['ot'] === paid.transactionId);
    expect(entries.map((e) => e.fields['k'])).toEqual(['cpay', 'cref']);
    expect(await refundAttentionCount(app.context)).toBe(0);
    expect(await app.redis.hget(app.keys.channelRefundsUnknown(), member)).toBeNull();
    expect((await runCli(['--channel', channel])).code).toBe(0);
  });
});
