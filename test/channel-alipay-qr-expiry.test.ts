// An Alipay recharge QR (alipay.trade.precreate) has its own expiry, qr_code_timeout_express: counted from
// when Alipay makes the QR, it bounds when a QR nobody scanned can still be scanned and paid (the trade
// exists only from the scan; timeout_express would count from there). The adapter sets it to the order's
// lifetime in whole minutes, rounded down; the simulator refuses a scan or payment after it, as Alipay does,
// and (tradeOnScan) answers ACQ.TRADE_NOT_EXIST to a close of a QR nobody scanned. Adapter and simulator
// share one clock that the test moves: no waiting.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlipayChannel } from '../switch/channels/alipay/adapter.js';
import { AlipaySimulator } from '../switch/channels/alipay/simulator.js';
import { createLogger } from '../switch/log.js';

let clock = Date.now();
const now = (): number => clock;
const sim = new AlipaySimulator({ latencyMs: 0, now, tradeOnScan: true });
let channel: AlipayChannel;
let seq = 0;

beforeAll(async () => {
  await sim.start();
  channel = new AlipayChannel({ config: sim.adapterConfig(), logger: createLogger('silent'), now });
});
afterAll(async () => {
  channel?.close();
  await sim.stop();
});

async function newQr(expiresInSec: number): Promise<string> {
  seq++;
  const outTradeNo = `QRX${Date.now()}${seq}`;
  const made = await channel.createRechargeOrder(
    { outTradeNo, amountFen: 2_000, subject: '校园卡充值', expiresInSec },
    AbortSignal.timeout(5_000),
  );
  expect(made.kind).toBe('qr');
  return outTradeNo;
}

describe('alipay.trade.precreate qr_code_timeout_express', () => {
  it('a QR of a 239 s order (3 whole minutes) can be scanned up to 3 minutes after it was made, not after', async () => {
    const early = await newQr(239);
    const late = await newQr(239);
    clock += 180_000 - 1;
    sim.scanOrder(early);
    clock += 1;
    expect(() => sim.scanOrder(late)).toThrow(/二维码已失效/);
    expect(() => sim.payOrder(late)).toThrow(/二维码已失效/);
    // Scanned in time: payable (until time_expire, 239 s).
    expect(sim.payOrder(early).tradeNo).not.toBe('');
  });

  it('a lifetime that is not whole minutes is rounded down: 150 s gives a 2-minute QR', async () => {
    const outTradeNo = await newQr(150);
    clock += 120_000;
    expect(() => sim.payOrder(outTradeNo)).toThrow(/二维码已失效/);
  });

  it('close of a QR nobody scanned: no trade at Alipay (not_found), and after the QR expired nobody can pay it', async () => {
    const outTradeNo = await newQr(60);
    expect(await channel.closeRechargeOrder(outTradeNo, AbortSignal.timeout(5_000))).toEqual({ status: 'not_found' });
    clock += 60_000;
    expect(() => sim.payOrder(outTradeNo)).toThrow(/二维码已失效/);
    expect(await channel.closeRechargeOrder(outTradeNo, AbortSignal.timeout(5_000))).toEqual({ status: 'not_found' });
  });

  it('close of a scanned QR closes its trade', async () => {
    const outTradeNo = await newQr(60);
    sim.scanOrder(outTradeNo);
    expect(await channel.closeRechargeOrder(outTradeNo, AbortSignal.timeout(5_000))).toEqual({ status: 'closed' });
    expect(() => sim.payOrder(outTradeNo)).toThrow(/TRADE_CLOSED/);
  });

  it('POST /sim/scan (the control route) scans; an unknown order is refused', async () => {
    const res = await fetch(`${sim.baseUrl}/sim/scan`, { method: 'POST', body: JSON.stringify({ outTradeNo: 'NOPE' }) });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/no simulated order NOPE/);
  });
});
