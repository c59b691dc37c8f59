// 取消 on a recharge QR closes the order at the channel (KioskService/CancelRechargeOrder: Alipay
// alipay.trade.close, WeChat Pay's close order), and the kiosk says what became of it: closed there is
// "cancelled, nothing charged" and the QR can no longer be paid; paid before the close got there is the
// credit; a channel that does not answer leaves the order payable, and the kiosk says so.
// The real renderer in Chromium, the kiosk's handler module, a real switch, Redis and both simulators.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { passwordHash } from './helpers/clients.js';
import { startKioskRig, type KioskRig } from './helpers/kiosk-rig.js';
import { openCard } from './helpers/switch.js';

let rig: KioskRig;
let page: Page;
let cardCounter = 0;

/** A card with 5.00 yuan on it, tapped: the home screen is showing. */
async function tapNewCard(): Promise<string> {
  cardCounter++;
  const cardNo = String(35_000_000 + cardCounter);
  const serial = `1C4E${String(cardCounter).padStart(6, '0')}`;
  await openCard(rig.app, cardNo, serial, 500, { name: '韩十', pwd: await passwordHash(rig.app, '135790') });
  await rig.handlers.cardRead(serial);
  await screen('home').waitFor();
  return cardNo;
}

const screen = (name: string) => page.locator(`#app[data-screen="${name}"]`);
const press = (name: string) => page.getByRole('button', { name, exact: true }).click();
const mainText = () => page.locator('main').innerText();
const ledger = async (cardNo: string) => Number(await rig.app.redis.hget(rig.app.keys.account(cardNo), 'bal'));

/** Recharge 20.00 yuan with the channel's button: the QR is up; answers the order id. */
async function showQr(channel: '微信支付' | '支付宝' = '微信支付'): Promise<string> {
  await press('充值');
  await press('20.00 元');
  await press(channel);
  await screen('rechargeWait').waitFor();
  return (await page.locator('.order-id').innerText()).trim();
}

beforeAll(async () => {
  rig = await startKioskRig({ label: 'kcancel', idleTimeoutSec: 600 });
  page = await rig.open();
}, 60_000);
afterAll(async () => {
  await rig?.stop();
});

describe('取消 on a recharge QR', () => {
  it('WeChat: the order is closed at the channel; the kiosk says cancelled, nothing charged; the QR cannot be paid', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr();
    await press('取消');
    await screen('rechargeCancelled').waitFor();
    const zh = await mainText();
    expect(zh).toContain('已取消');
    expect(zh).toContain('未扣款');
    expect(zh).not.toContain('仍可在手机上完成支付');
    await rig.screenshot('35-recharge-cancelled');
    await press('English');
    expect(await mainText()).toContain('nothing was charged');
    await rig.screenshot('36-recharge-cancelled-en');
    await press('中文');
    expect(rig.sims.wechat.order(orderId)?.state).toBe('CLOSED');
    await expect(rig.sims.wechat.payOrder(orderId)).rejects.toThrow(/not payable/);
    expect(await ledger(cardNo)).toBe(500);
    await press('返回首页');
    expect(await mainText()).toContain('5.00 元');
  }, 60_000);

  it('Alipay: closed with alipay.trade.close, the same screen', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr('支付宝');
    await press('取消');
    await screen('rechargeCancelled').waitFor();
    expect(await mainText()).toContain('未扣款');
    expect(() => rig.sims.alipay.payOrder(orderId)).toThrow(/TRADE_CLOSED/);
    expect(await ledger(cardNo)).toBe(500);
    await press('返回首页');
    await screen('home').waitFor();
  }, 60_000);

  it('paid on the phone just before 取消 (its notification not yet there): the kiosk shows the credit', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr();
    await rig.sims.wechat.payOrder(orderId, { notify: false });
    await press('取消');
    await screen('rechargeDone').waitFor();
    expect(await ledger(cardNo)).toBe(2_500);
    expect(await page.getByTestId('new-balance').innerText()).toBe('25.00 元');
    // The notification arriving now credits nothing more.
    expect((await rig.sims.wechat.notify(orderId)).map((d) => d.status)).toEqual([200]);
    expect(await ledger(cardNo)).toBe(2_500);
    await press('返回首页');
    expect(await mainText()).toContain('25.00 元');
  }, 60_000);

  it('main closes only an order of the holder at the screen, made in this session; bad arguments reach nothing', async () => {
    await tapNewCard();
    const first = await showQr();
    // The next holder taps: the first holder's order is not theirs to close.
    await tapNewCard();
    const asked: unknown[] = [];
    for (const arg of [undefined, { orderId: '../../etc' }, { orderId: first, cardSerial: 'DEADBEEF' }, first]) {
      asked.push(await page.evaluate(`window.kiosk.cancelRecharge(${JSON.stringify(arg) ?? ''})`));
    }
    expect(asked).toEqual([
      { ok: false, error: 'bad_request' },
      { ok: false, error: 'bad_request' },
      { ok: false, error: 'bad_request' },
      { ok: false, error: 'bad_request' },
    ]);
    expect(await page.evaluate(`window.kiosk.cancelRecharge({ orderId: ${JSON.stringify(first)} })`)).toEqual({
      ok: false,
      error: 'no_card',
    });
    // Main itself closed the first holder's order when the next card was tapped (kiosk-recharge-leave.test.ts).
    await rig.handlers.closing();
    expect(rig.sims.wechat.order(first)?.state).toBe('CLOSED');
  }, 60_000);

  it('WeChat Pay not answering the close: never "nothing charged"; the order stays payable and a payment is credited', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr();
    rig.sims.wechat.failNext('v3', 'http500');
    await press('取消');
    await screen('rechargeStopped').waitFor();
    const zh = await mainText();
    expect(zh).toContain('仍可在手机上完成支付');
    expect(zh).not.toContain('未扣款');
    expect(rig.sims.wechat.order(orderId)?.state).toBe('NOTPAY');
    await rig.sims.wechat.payOrder(orderId);
    await screen('rechargeDone').waitFor({ timeout: 15_000 });
    expect(await ledger(cardNo)).toBe(2_500);
  }, 60_000);
});
