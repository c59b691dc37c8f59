// Daily reconciliation (switch/domain/reconcile.ts, `cardswitch reconcile`) against the real channel
// simulators over loopback and a real switch's ledger in Redis: recharge orders paid at the channel and
// credited in the ledger reconcile clean (exit 0); a difference of each kind injected at the channel
// (simulator bill-line controls) or in the ledger (a credit the channel never saw) is listed with the
// order, both amounts and the card (exit 1), for WeChat Pay's text bill and Alipay's zipped GBK statement.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { runReconcileCommand } from '../switch/cli/reconcile.js';
import { recoverPendingFees } from '../switch/domain/fees.js';
import { reconcileChannelDay, type ReconcileContext } from '../switch/domain/reconcile.js';
import { rechargeCard } from '../switch/domain/recharge.js';
import { providerOrderId } from '../switch/fees/index.js';
import { FeeProviderSimulator } from '../switch/fees/simulator.js';
import type { RechargeChannelCode } from '../switch/ledger/money.js';
import { createLogger } from '../switch/log.js';
import { testRedisUrl } from './helpers/redis.js';
import { openCard, testConfig } from './helpers/switch.js';

const CARD = '20260001';
const OTHER_CARD = '20260002';
/** Pays utility fees at a kiosk (its balance: 100 yuan). */
const FEE_CARD = '20260003';
const FEE_KIOSK = 'KIOSK-R1';
/** The statement day: today in Beijing (the simulators stamp bill lines with the real clock). */
const today = (): string => new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
const signal = (): AbortSignal => AbortSignal.timeout(20_000);

let app: SwitchApp;
let sims: ChannelSimulators;
let ctx: ReconcileContext;
let seq = 0;
const orderId = (label: string): string => `${label}${Date.now().toString(36)}${(seq += 1)}`;
/** The utility-fee provider: it delivers, unless a test makes it silent. */
let feeProvider: FeeProviderSimulator;

beforeEach(async () => {
  feeProvider = new FeeProviderSimulator();
  // The switch's own fee sweep stays out of the way (once an hour): a test runs it itself.
  const config = testConfig('reconcile', { FEE_PROVIDER_TIMEOUT_MS: '20', FEE_RECOVERY_INTERVAL_MS: '3600000' });
  app = await startSwitch(config, createLogger(config.logLevel), Date.now, { feeProvider });
  // WeChat Pay wants a notify_url on every order; nothing listens there (the test pays without notifying).
  sims = await startChannelSimulators({ log: createLogger('silent'), notifyBaseUrl: 'http://127.0.0.1:9', latencyMs: 0 });
  ctx = { keys: app.context.keys, scripts: app.context.scripts, channels: sims.channels };
  await openCard(app, CARD, 'SER-R1', 0);
  await openCard(app, OTHER_CARD, 'SER-R2', 0);
  await openCard(app, FEE_CARD, 'SER-R3', 10_000);
});

afterEach(async () => {
  await sims.stop();
  await app.stop();
});

const CODES: Record<'alipay' | 'wechat', RechargeChannelCode> = { alipay: 'ALIPAY', wechat: 'WECHAT' };

/** The ledger credits an order as the switch does once the channel confirmed it. */
async function credit(channel: 'alipay' | 'wechat', cardNo: string, outTradeNo: string, amountFen: number): Promise<void> {
  await rechargeCard(app.context, {
    cardNo,
    channel: CODES[channel],
    orderId: outTradeNo,
    amountFen,
    source: 'reconcile-test',
    reason: '',
  });
}

/** A recharge order created at the channel, paid by the simulated payer (no notification), credited in the ledger. */
async function paidRecharge(channel: 'alipay' | 'wechat', cardNo: string, amountFen: number): Promise<string> {
  const outTradeNo = orderId(channel === 'alipay' ? 'RA' : 'RW');
  const adapter = sims.channels.get(channel);
  if (adapter === undefined) throw new Error(`no ${channel} adapter`);
  await adapter.createRechargeOrder({ outTradeNo, amountFen, subject: '校园卡充值', expiresInSec: 600 }, signal());
  if (channel === 'alipay') sims.alipay.payOrder(outTradeNo);
  else await sims.wechat.payOrder(outTradeNo, { notify: false });
  await credit(channel, cardNo, outTradeNo, amountFen);
  return outTradeNo;
}

/**
 * A network fee paid from FEE_CARD at a kiosk whose provider never answers (pay and cancel time out): its
 * money stays taken and, the recovery sweep having looked `looks` times (the bound here: 1), it needs an
 * operator when `looks` is 1, or is only pending when 0. Answers its provider order id.
 */
async function silentFee(sequence: number, amountFen: number, looks: 0 | 1): Promise<string> {
  feeProvider.payMode = 'hang';
  feeProvider.cancelMode = 'hang';
  const ref = {
    cardNo: FEE_CARD,
    terminalId: FEE_KIOSK,
    sequence,
    amountFen,
    kind: 'network' as const,
    targetJson: JSON.stringify({ kind: 'network', account: 'zhang.san@campus' }),
  };
  expect((await app.context.money.feeDebit(ref)).code).toBe('pending');
  if (looks === 1) {
    const swept = await recoverPendingFees(app.context, { olderThanMs: 0, maxPerShard: 100, maxUnknownLooks: 1 });
    expect(swept).toMatchObject({ needsAttention: 1, failed: 0, broken: 0 });
  }
  return providerOrderId(FEE_KIOSK, sequence);
}

/** Alipay serves a day's statement once the day ended, or once the simulator is told to publish it. */
function publish(channel: 'alipay' | 'wechat'): void {
  if (channel === 'alipay') sims.alipay.bill(today());
}

describe.each(['wechat', 'alipay'] as const)('%s', (channel) => {
  it('a clean day reconciles: every paid order is in the ledger once with its amount', async () => {
    const a = await paidRecharge(channel, CARD, 5000);
    const b = await paidRecharge(channel, OTHER_CARD, 99_900);
    publish(channel);
    const report = await reconcileChannelDay(ctx, channel, today(), { signal: signal() });
    expect(report.differences).toEqual([]);
    expect(report).toMatchObject({ channel, date: today(), statementLines: 2, ledgerEntries: 2, matchedOrders: 2 });
    expect([a, b]).toHaveLength(2);
  });

  it('lists a difference of each kind: missing in the ledger, missing at the channel, amount differs, duplicated', async () => {
    const clean = await paidRecharge(channel, CARD, 1000);
    const altered = await paidRecharge(channel, CARD, 2000);
    const doubled = await paidRecharge(channel, OTHER_CARD, 3000);
    const ghost = orderId('GHOST');
    const ledgerOnly = orderId('LEDGERONLY');
    const injector = channel === 'alipay' ? sims.alipay : sims.wechat;
    injector.addBillLine({ outTradeNo: ghost, amountFen: 4000 });
    injector.alterBillLine(altered, 2100);
    injector.addBillLine({ outTradeNo: doubled, amountFen: 3000 });
    await credit(channel, OTHER_CARD, ledgerOnly, 500);
    publish(channel);

    const report = await reconcileChannelDay(ctx, channel, today(), { signal: signal() });
    expect(report.matchedOrders).toBe(1);
    const byKind = Object.fromEntries(report.differences.map((d) => [d.kind, d]));
    expect(report.differences.map((d) => d.kind).sort()).toEqual([
      'amount_differs',
      'duplicated',
      'missing_at_channel',
      'missing_in_ledger',
    ]);
    expect(byKind['missing_in_ledger']).toMatchObject({
      outTradeNo: ghost,
      channelNetFen: 4000,
      ledgerNetFen: undefined,
      cardNo: undefined,
    });
    expect(byKind['missing_at_channel']).toMatchObject({
      outTradeNo: ledgerOnly,
      channelNetFen: undefined,
      ledgerNetFen: 500,
      cardNo: OTHER_CARD,
    });
    expect(byKind['amount_differs']).toMatchObject({ outTradeNo: altered, channelNetFen: 2100, ledgerNetFen: 2000, cardNo: CARD });
    expect(byKind['amount_differs']?.message).toContain('difference of 1.00 yuan');
    expect(byKind['duplicated']).toMatchObject({ outTradeNo: doubled, cardNo: OTHER_CARD });
    expect(byKind['duplicated']?.channelTxnIds.length).toBeGreaterThanOrEqual(1);
    for (const d of report.differences) expect(d.outTradeNo).not.toBe(clean);
    expect(byKind['missing_at_channel']?.ledgerEntryIds).toHaveLength(1);
  });
});

it('a payment given back in full at the channel the same day needs no ledger entry', async () => {
  const outTradeNo = orderId('REV');
  sims.wechat.addBillLine({ outTradeNo, amountFen: 800 });
  sims.wechat.addBillLine({ outTradeNo, amountFen: 800, kind: 'refund' });
  const report = await reconcileChannelDay(ctx, 'wechat', today(), { signal: signal() });
  expect(report.differences).toEqual([]);
  expect(report.matchedOrders).toBe(1);
});

it('refuses an unknown channel, a channel not configured and a date that is not a day', async () => {
  await expect(reconcileChannelDay(ctx, 'paypal', today(), { signal: signal() })).rejects.toThrow(/channel must be alipay or wechat/);
  await expect(reconcileChannelDay({ ...ctx, channels: new Map() }, 'wechat', today(), { signal: signal() })).rejects.toThrow(
    /WECHATPAY_MCH_ID/,
  );
  await expect(reconcileChannelDay(ctx, 'wechat', '2026-02-30', { signal: signal() })).rejects.toThrow(/not a calendar date/);
});

describe.each(['wechat', 'alipay'] as const)('%s: utility fees needing an operator', (channel) => {
  it("lists each fee payment of the day that needs an operator, with its amount and card, on the channel's reconciliation", async () => {
    const paid = await paidRecharge(channel, CARD, 5000);
    const attention = await silentFee(1, 1234, 1);
    const stillPending = await silentFee(2, 500, 0);
    publish(channel);
    const report = await reconcileChannelDay(ctx, channel, today(), { signal: signal() });
    expect(report.matchedOrders).toBe(1);
    // The fee is not on any channel's statement: only the one that needs an operator is listed (the
    // pending one is still the sweep's), as what the ledger took from the card.
    expect(report.differences).toEqual([
      expect.objectContaining({
        kind: 'fee_needs_attention',
        outTradeNo: attention,
        channelTxnIds: [],
        channelNetFen: undefined,
        ledgerNetFen: 1234,
        cardNo: FEE_CARD,
      }),
    ]);
    const [fee] = report.differences;
    expect(fee?.ledgerEntryIds).toHaveLength(1);
    expect(fee?.message).toContain('12.34 yuan');
    expect(fee?.message).toContain('fee-attention');
    expect([paid, stillPending]).not.toContain(fee?.outTradeNo);
  });
});

describe('the CLI (npm run cli -- reconcile)', () => {
  function cliEnv(): Record<string, string> {
    const sim = sims.alipay;
    return {
      REDIS_URL: testRedisUrl(),
      KEY_PREFIX: app.context.config.keyPrefix,
      LOG_LEVEL: 'silent',
      ALIPAY_APP_ID: sim.appId,
      ALIPAY_APP_PRIVATE_KEY: sim.appPrivateKeyPem ?? '',
      ALIPAY_PUBLIC_KEY: sim.alipayPublicKeyPem,
      ALIPAY_GATEWAY_URL: sim.gatewayUrl,
    };
  }

  async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
    try {
      const code = await runReconcileCommand(args, cliEnv());
      return { code, out: out.join('\n'), err: err.join('\n') };
    } finally {
      log.mockRestore();
      error.mockRestore();
    }
  }

  it('exits 0 on a clean day and 1 with each difference listed, reaching the channel through ALIPAY_*', async () => {
    const paid = await paidRecharge('alipay', CARD, 1500);
    publish('alipay');
    const clean = await runCli(['--channel', 'alipay', '--date', today()]);
    expect(clean.err).toBe('');
    expect(clean).toMatchObject({ code: 0 });
    expect(clean.out).toContain('RECONCILED');

    const ghost = orderId('GHOST');
    sims.alipay.addBillLine({ outTradeNo: ghost, amountFen: 4321 });
    sims.alipay.alterBillLine(paid, 1400);
    const dirty = await runCli(['--channel', 'alipay', '--date', today()]);
    expect(dirty.code).toBe(1);
    expect(dirty.err).toMatch(new RegExp(`missing_in_ledger\\s+order ${ghost}\\s+channel 43\\.21 / ledger -`));
    expect(dirty.err).toMatch(new RegExp(`amount_differs\\s+order ${paid}\\s+channel 14\\.00 / ledger 15\\.00 yuan .*card ${CARD}`));
    expect(dirty.err).toContain('NOT RECONCILED: 2 difference(s)');
  });

  it('counts the fee payments that need an operator and lists each with its order id and amount (exit 1)', async () => {
    await paidRecharge('alipay', CARD, 1500);
    const first = await silentFee(11, 1000, 1);
    const second = await silentFee(12, 2550, 1);
    publish('alipay');
    const listed = await runCli(['--channel', 'alipay', '--date', today()]);
    expect(listed.code).toBe(1);
    expect(listed.err).toMatch(new RegExp(`fee_needs_attention\\s+order ${first}\\s+channel - / ledger 10\\.00 yuan .*card ${FEE_CARD}`));
    expect(listed.err).toMatch(new RegExp(`fee_needs_attention\\s+order ${second}\\s+channel - / ledger 25\\.50 yuan .*card ${FEE_CARD}`));
    expect(listed.err).toContain('2 fee payment(s) need an operator');
    expect(listed.err).toContain('NOT RECONCILED: 2 difference(s)');
    const json = await runCli(['--channel', 'alipay', '--date', today(), '--json']);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.out) as { differences: { kind: string; outTradeNo: string; ledgerNetFen: number }[] };
    expect(report.differences.map((d) => [d.kind, d.outTradeNo, d.ledgerNetFen])).toEqual([
      ['fee_needs_attention', first, 1000],
      ['fee_needs_attention', second, 2550],
    ]);
  });

  it('exits 2 with a clear message for usage errors and a channel that is not configured', async () => {
    const noDate = await runCli(['--channel', 'alipay']);
    expect(noDate).toMatchObject({ code: 2 });
    expect(noDate.err).toContain('--date YYYY-MM-DD');
    // A wrong date is said first, whatever else is missing (here: the WeChat channel's settings).
    for (const date of ['2026-13-45', 'yesterday']) {
      const badDate = await runCli(['--channel', 'wechat', '--date', date]);
      expect(badDate, date).toMatchObject({ code: 2 });
      expect(badDate.err, date).toContain('reconcile --date: day');
      expect(badDate.err, date).not.toContain('not configured');
    }
    const wechat = await runCli(['--channel', 'wechat', '--date', today()]);
    expect(wechat.code).toBe(2);
    expect(wechat.err).toContain('the wechat channel is not configured');
  });
});
