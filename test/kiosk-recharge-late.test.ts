// A recharge QR the kiosk takes down (its own time is up, or Cancel) is closed at the channel
// (KioskService/CancelRechargeOrder; test/kiosk-recharge-cancel.test.ts). When the channel does not
// answer the close, the order stays payable until it expires (RECHARGE_ORDER_EXPIRY_SEC, 900 s by default,
// against the kiosk's 180 s). So the kiosk says only what is true: paid shows the credit, closed says
// nothing was charged, still payable says a payment made is still credited (never "未扣款"), and a payment
// made later shows up on the home screen.
// The real renderer in Chromium, the kiosk's handler module, a real switch, Redis and the WeChat simulator.
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
  const cardNo = String(34_000_000 + cardCounter);
  const serial = `1A7E${String(cardCounter).padStart(6, '0')}`;
  await openCard(rig.app, cardNo, serial, 500, { name: '蒋九', pwd: await passwordHash(rig.app, '135790') });
  await rig.handlers.cardRead(serial);
  await screen('home').waitFor();
  return cardNo;
}

const screen = (name: string) => page.locator(`#app[data-screen="${name}"]`);
const press = (name: string) => page.getByRole('button', { name, exact: true }).click();
const mainText = () => page.locator('main').innerText();
const ledger = async (cardNo: string) => Number(await rig.app.redis.hget(rig.app.keys.account(cardNo), 'bal'));

/** Recharge 20.00 yuan with WeChat Pay: the QR is up; answers the order id. */
async function showQr(): Promise<string> {
  await press('充值');
  await press('20.00 元');
  await press('微信支付');
  await screen('rechargeWait').waitFor();
  return (await page.locator('.order-id').innerText()).trim();
}

beforeAll(async () => {
  // The QR's own time at its minimum (10 s); the switch's default wait before it asks the channel about
  // an order (10 s), so that only the last look at a QR that timed out reaches the channel.
  rig = await startKioskRig({ label: 'klate', idleTimeoutSec: 600, env: { KIOSK_QR_TIMEOUT_SEC: '10' } });
  page = await rig.open();
}, 60_000);
afterAll(async () => {
  await rig?.stop();
});

describe('a recharge QR taken down while the order can still be paid', () => {
  it('timed out, the close unanswered: never "nothing charged"; paid a moment later, the kiosk shows the credit and the new balance', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr();
    // WeChat Pay does not answer the close the kiosk asks for when the QR's time is up.
    rig.sims.wechat.failNext('v3', 'http500');
    await screen('rechargeStopped').waitFor({ timeout: 30_000 });
    const zh = await mainText();
    expect(zh).toContain('二维码已关闭');
    expect(zh).toContain('仍可在手机上完成支付');
    expect(zh).toContain('请勿重复付款');
    expect(zh).not.toContain('未扣款');
    await rig.screenshot('32-recharge-qr-closed');
    await press('English');
    const en = await mainText();
    expect(en).toContain('can still be paid on your phone');
    expect(en).toContain('do not pay again');
    expect(en).not.toContain('nothing was charged');
    await rig.screenshot('33-recharge-qr-closed-en');
    await press('中文');
    // The holder had scanned the QR and confirms on the phone now: the switch credits the card.
    expect((await rig.sims.wechat.payOrder(orderId)).map((d) => d.status)).toEqual([200]);
    await screen('rechargeDone').waitFor({ timeout: 15_000 });
    expect(await ledger(cardNo)).toBe(2_500);
    expect(await page.getByTestId('new-balance').innerText()).toBe('25.00 元');
    await press('返回首页');
    expect(await mainText()).toContain('25.00 元');
  }, 60_000);

  it('cancelled, the close unanswered, then paid while the holder is on the home screen: the balance there updates, with a notice', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr();
    rig.sims.wechat.failNext('v3', 'http500');
    await press('取消');
    await screen('rechargeStopped').waitFor();
    expect(await mainText()).not.toContain('未扣款');
    await press('返回首页');
    await screen('home').waitFor();
    expect(await mainText()).toContain('5.00 元');
    await rig.sims.wechat.payOrder(orderId);
    await page.getByText('您扫码支付的 20.00 元已充入卡中').waitFor({ timeout: 15_000 });
    expect(await ledger(cardNo)).toBe(2_500);
    expect(await mainText()).toContain('25.00 元');
    await rig.screenshot('34-home-late-credit');
  }, 60_000);

  it('closed at the channel before the QR timed out: "nothing charged" is true, and said', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr();
    rig.sims.wechat.expireOrder(orderId);
    await screen('rechargeExpired').waitFor({ timeout: 30_000 });
    expect(await mainText()).toContain('二维码已失效，未扣款');
    expect(await ledger(cardNo)).toBe(500);
    await press('返回首页');
    expect(await mainText()).toContain('5.00 元');
  }, 60_000);

  it('timed out, closed at the channel: "nothing charged" is true, and said; the QR cannot be paid any more', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr();
    await screen('rechargeExpired').waitFor({ timeout: 30_000 });
    expect(await mainText()).toContain('二维码已失效，未扣款');
    expect(rig.sims.wechat.order(orderId)?.state).toBe('CLOSED');
    expect(await ledger(cardNo)).toBe(500);
    await press('返回首页');
  }, 60_000);

  it('paid but the notification lost: closing the timed-out QR finds the payment and shows it', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr();
    await rig.sims.wechat.payOrder(orderId, { notify: false });
    await screen('rechargeDone').waitFor({ timeout: 30_000 });
    expect(await ledger(cardNo)).toBe(2_500);
    expect(await page.getByTestId('new-balance').innerText()).toBe('25.00 元');
    await press('返回首页');
    expect(await mainText()).toContain('25.00 元');
  }, 60_000);
});
