// A recharge QR left some other way than 取消 or its time is closed at the channel all the same, by
// main (kiosk/main/handlers.ts closeOrder: KioskService/CancelRechargeOrder), so it happens with the
// renderer gone too: the next holder taps another card, Exit (退出) is pressed with the QR up, main's
// inactivity backstop signs the holder out. Paid meanwhile: credited (and shown when the holder is still
// there). Also: an Alipay QR nobody scanned (no trade at Alipay yet) lives only as long as the kiosk shows
// it, and the kiosk says until when; and CancelRechargeOrder's deadline outlasts the switch's channel budget.
// The real renderer in Chromium, the kiosk's handler module, a real switch, Redis and both simulators.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { createKioskHandlers } from '../kiosk/main/handlers.js';
import { kioskSettings } from '../kiosk/main/settings.js';
import { CANCEL_RECHARGE_DEADLINE_MS, CHANNEL_CALL_DEADLINE_MS, type KioskSwitch } from '../kiosk/main/switch-client.js';
import type { KioskEvent } from '../kiosk/shared/api.js';
import { CHANNEL_CALL_TIMEOUT_MS } from '../switch/domain/recharge-orders.js';
import { passwordHash } from './helpers/clients.js';
import { handlerLog, KIOSK_WEB_CONTENTS_ID, startKioskRig, TRUSTED_URL, type KioskRig } from './helpers/kiosk-rig.js';
import { openCard } from './helpers/switch.js';

let rig: KioskRig;
let page: Page;
let cardCounter = 0;

/** A card with 5.00 yuan on it, tapped: the home screen is showing. */
async function tapNewCard(r: KioskRig = rig): Promise<string> {
  cardCounter++;
  const cardNo = String(36_000_000 + cardCounter);
  const serial = `1C5E${String(cardCounter).padStart(6, '0')}`;
  await openCard(r.app, cardNo, serial, 500, { name: '韩十', pwd: await passwordHash(r.app, '135790') });
  await r.handlers.cardRead(serial);
  await r.page.locator('#app[data-screen="home"]').waitFor();
  return cardNo;
}

const screen = (name: string, p: Page = page) => p.locator(`#app[data-screen="${name}"]`);
const press = (name: string, p: Page = page) => p.getByRole('button', { name, exact: true }).click();
const mainText = () => page.locator('main').innerText();
const ledger = async (cardNo: string, r: KioskRig = rig) => Number(await r.app.redis.hget(r.app.keys.account(cardNo), 'bal'));

/** Recharge 20.00 yuan with the channel's button: the QR is up; answers the order id. */
async function showQr(channel: '微信支付' | '支付宝' = '微信支付', p: Page = page): Promise<string> {
  await press('充值', p);
  await press('20.00 元', p);
  await press(channel, p);
  await screen('rechargeWait', p).waitFor();
  return (await p.locator('.order-id').innerText()).trim();
}

/** HH:MM:SS of a time in campus time (UTC+8), as the kiosk writes it. */
const campusClock = (ms: number) => new Date(ms + 8 * 3_600_000).toISOString().slice(11, 19);

beforeAll(async () => {
  rig = await startKioskRig({ label: 'kleave', idleTimeoutSec: 600 });
  page = await rig.open();
}, 60_000);
afterAll(async () => {
  rig?.sims.wechat.setLatencyMs(0);
  rig?.sims.alipay.setTradeOnScan(false);
  await rig?.stop();
});

describe('the next holder taps another card while a QR is up', () => {
  it('WeChat: the first holder’s order is closed at the channel; nothing of it reaches the next holder', async () => {
    const first = await tapNewCard();
    const orderId = await showQr();
    const second = await tapNewCard();
    await rig.handlers.closing();
    expect(rig.sims.wechat.order(orderId)?.state).toBe('CLOSED');
    await expect(rig.sims.wechat.payOrder(orderId)).rejects.toThrow(/not payable/);
    expect(await ledger(first)).toBe(500);
    expect(await ledger(second)).toBe(500);
    await screen('home').waitFor();
    expect(await mainText()).toContain(second);
  }, 60_000);

  it('paid just before the tap (notification not yet there): credited to the first card, not shown to the next holder', async () => {
    const first = await tapNewCard();
    const orderId = await showQr();
    await rig.sims.wechat.payOrder(orderId, { notify: false });
    const second = await tapNewCard();
    await rig.handlers.closing();
    expect(await ledger(first)).toBe(2_500);
    expect(await ledger(second)).toBe(500);
    const home = await mainText();
    expect(home).toContain(second);
    expect(home).not.toContain('25.00 元');
    // The notification arriving now credits nothing more.
    expect((await rig.sims.wechat.notify(orderId)).map((d) => d.status)).toEqual([200]);
    expect(await ledger(first)).toBe(2_500);
  }, 60_000);
});

describe('退出 (Exit) with the QR up', () => {
  it('Alipay: the order is closed at the channel and the session ends', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr('支付宝');
    await press('退出');
    await screen('idle').waitFor();
    await rig.handlers.closing();
    expect(() => rig.sims.alipay.payOrder(orderId)).toThrow(/TRADE_CLOSED/);
    expect(rig.handlers.holderCardNumber()).toBeUndefined();
    expect(await ledger(cardNo)).toBe(500);
  }, 60_000);

  it('paid just before Exit: the holder is still there, so the credit is shown', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr();
    await rig.sims.wechat.payOrder(orderId, { notify: false });
    await press('退出');
    await screen('rechargeDone').waitFor();
    expect(await page.getByTestId('new-balance').innerText()).toBe('25.00 元');
    expect(await ledger(cardNo)).toBe(2_500);
    await press('退出');
    await screen('idle').waitFor();
  }, 60_000);
});

describe('an Alipay QR nobody scanned (Alipay makes the trade only at the scan)', () => {
  it('lives as long as the kiosk shows it; 取消 cannot close it, and the kiosk says until when it can be paid', async () => {
    rig.sims.alipay.setTradeOnScan(true);
    try {
      const cardNo = await tapNewCard();
      const before = Date.now();
      const orderId = await showQr('支付宝');
      const after = Date.now();
      // The kiosk's QR time (180 s by default) is the order's lifetime (not the switch's 900 s): its end in
      // the ledger, Alipay's time_expire and qr_code_timeout_express ('3m').
      const answer = await rig.client.rechargeOrderState({ orderId });
      expect(answer.expiresAtMs).toBeGreaterThanOrEqual(before + 180_000);
      expect(answer.expiresAtMs).toBeLessThanOrEqual(after + 180_000);
      await press('取消');
      await screen('rechargeStopped').waitFor();
      const zh = await mainText();
      expect(zh).toContain(`此订单在 ${campusClock(answer.expiresAtMs)} 前仍可在手机上完成支付，之后不能再支付`);
      expect(zh).not.toContain('未扣款');
      await rig.screenshot('37-recharge-unscanned-alipay');
      await press('English');
      expect(await mainText()).toContain(`until ${campusClock(answer.expiresAtMs)}, not after`);
      await rig.screenshot('38-recharge-unscanned-alipay-en');
      await press('中文');
      // Scanned and paid before its end: credited all the same.
      rig.sims.alipay.payOrder(orderId);
      await screen('rechargeDone').waitFor({ timeout: 15_000 });
      expect(await ledger(cardNo)).toBe(2_500);
      await press('返回首页');
    } finally {
      rig.sims.alipay.setTradeOnScan(false);
    }
  }, 60_000);
});

describe('a slow channel and CancelRechargeOrder’s deadline', () => {
  it('the kiosk waits longer than the switch gives the channel for the close (and the query after it)', () => {
    // The switch answers ahead of the caller's deadline by at most 0.5 s (switch/grpc/deadline.ts).
    expect(CANCEL_RECHARGE_DEADLINE_MS).toBeGreaterThan(CHANNEL_CALL_TIMEOUT_MS + 500);
  });

  it('WeChat Pay answering in 4.5 s: close refused (paid) then queried, 9 s in all; the kiosk hears the credit', async () => {
    const cardNo = await tapNewCard();
    const orderId = await showQr();
    await rig.sims.wechat.payOrder(orderId, { notify: false });
    rig.sims.wechat.setLatencyMs(4_500);
    const started = Date.now();
    try {
      await press('取消');
      await screen('rechargeDone').waitFor({ timeout: 20_000 });
    } finally {
      rig.sims.wechat.setLatencyMs(0);
    }
    // Past the kiosk's usual 8 s deadline: with it the kiosk gave up (unreachable) and said "still payable"
    // while the switch went on to credit; now the close itself answers paid.
    expect(Date.now() - started).toBeGreaterThan(8_000);
    const cancels = handlerLog(rig).filter((l) => l.includes('"cancelRecharge"'));
    expect(cancels.at(-1)).toBe(JSON.stringify({ action: 'cancelRecharge', result: 'ok' }));
    expect(await page.getByTestId('new-balance').innerText()).toBe('25.00 元');
    expect(await ledger(cardNo)).toBe(2_500);
    await press('返回首页');
  }, 60_000);
});

describe('a slow channel and Recharge’s deadline', () => {
  // Alipay's calls get 10 s in production (ALIPAY_TIMEOUT_MS); the rig's adapters get as long here.
  let slowRig: KioskRig;
  beforeAll(async () => {
    slowRig = await startKioskRig({ label: 'kleaveslow', idleTimeoutSec: 600, channelTimeoutMs: 10_000 });
    await slowRig.open();
  }, 60_000);
  afterAll(async () => {
    slowRig?.sims.alipay.setLatencyMs(0);
    await slowRig?.stop();
  });

  it('Alipay making the order in 9 s: the kiosk waits for it and shows its QR (it gave up at 8 s)', async () => {
    expect(CHANNEL_CALL_DEADLINE_MS).toBeGreaterThan(CHANNEL_CALL_TIMEOUT_MS + 500);
    const p = slowRig.page;
    const cardNo = await tapNewCard(slowRig);
    slowRig.sims.alipay.setLatencyMs(9_000);
    const started = Date.now();
    try {
      await press('充值', p);
      await press('20.00 元', p);
      await press('支付宝', p);
      await screen('rechargeWait', p).waitFor({ timeout: 20_000 });
    } finally {
      slowRig.sims.alipay.setLatencyMs(0);
    }
    expect(Date.now() - started).toBeGreaterThan(8_000);
    const orderId = (await p.locator('.order-id').innerText()).trim();
    // The QR the kiosk shows is the order the channel made; it can be closed as any.
    await press('取消', p);
    await screen('rechargeCancelled', p).waitFor();
    expect(() => slowRig.sims.alipay.payOrder(orderId)).toThrow(/TRADE_CLOSED/);
    expect(await ledger(cardNo, slowRig)).toBe(500);
  }, 60_000);
});

describe('main’s inactivity backstop with the renderer gone', () => {
  let idleRig: KioskRig;
  beforeAll(async () => {
    idleRig = await startKioskRig({ label: 'kleaveidle', idleTimeoutSec: 600, mainIdleMs: 3_000 });
    await idleRig.open();
  }, 60_000);
  afterAll(async () => {
    await idleRig?.stop();
  });

  it('the holder is forgotten and the QR on screen is closed at the channel', async () => {
    const cardNo = await tapNewCard(idleRig);
    const orderId = await showQr('微信支付', idleRig.page);
    // The renderer goes away (crashed, hung): nothing asks main anything any more.
    await idleRig.page.close();
    await expect.poll(() => idleRig.handlers.holderCardNumber(), { timeout: 15_000 }).toBeUndefined();
    await idleRig.handlers.closing();
    expect(idleRig.sims.wechat.order(orderId)?.state).toBe('CLOSED');
    expect(await ledger(cardNo, idleRig)).toBe(500);
  }, 60_000);
});

describe('an order the switch makes after its QR can no longer be shown', () => {
  const TRUSTED = { webContentsId: KIOSK_WEB_CONTENTS_ID, frameUrl: TRUSTED_URL, isMainFrame: true };

  /** The kiosk's handlers over the rig's client, each Recharge answer held until `release()`; the orders made. */
  function heldRecharges(): {
    handlers: ReturnType<typeof createKioskHandlers>;
    made: string[];
    release: () => void;
    events: KioskEvent[];
  } {
    const made: string[] = [];
    const events: KioskEvent[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held: KioskSwitch = {
      ...rig.client,
      recharge: async (req) => {
        const res = await rig.client.recharge(req);
        made.push(res.orderId);
        await gate;
        return res;
      },
    };
    const handlers = createKioskHandlers({
      switch: held,
      settings: kioskSettings({ KIOSK_IDLE_TIMEOUT_SEC: '600' }, 'test kiosk'),
      trustedUrl: TRUSTED_URL,
      trustedWebContentsId: () => KIOSK_WEB_CONTENTS_ID,
      emit: (e) => events.push(e),
    });
    return { handlers, made, release, events };
  }

  async function newCard(): Promise<{ cardNo: string; serial: string }> {
    cardCounter++;
    const cardNo = String(36_000_000 + cardCounter);
    const serial = `1C5E${String(cardCounter).padStart(6, '0')}`;
    await openCard(rig.app, cardNo, serial, 500, { name: '韩十', pwd: await passwordHash(rig.app, '135790') });
    return { cardNo, serial };
  }

  it("the next holder taps while the first one's Recharge is under way: the order made for the first is closed", async () => {
    const a = await newCard();
    const b = await newCard();
    const { handlers, made, release } = heldRecharges();
    try {
      await handlers.cardRead(a.serial);
      const answer = handlers.invoke(TRUSTED, 'startRecharge', { channel: 'wechat', amountFen: 2000 });
      await expect.poll(() => made.length).toBe(1);
      await handlers.cardRead(b.serial);
      expect(handlers.holderCardNumber()).toBe(b.cardNo);
      release();
      expect(await answer).toEqual({ ok: false, error: 'no_card' });
      await handlers.closing();
      expect(rig.sims.wechat.order(made[0] ?? '')?.state).toBe('CLOSED');
      expect(await ledger(a.cardNo)).toBe(500);
    } finally {
      handlers.dispose();
    }
  }, 60_000);

  it('300 recharges of different amounts at once: every order but the last one asked is closed, and the card can still recharge', async () => {
    const a = await newCard();
    const { handlers, made, release } = heldRecharges();
    try {
      await handlers.cardRead(a.serial);
      const answers = Array.from({ length: 300 }, (_, i) =>
        handlers.invoke(TRUSTED, 'startRecharge', { channel: 'wechat', amountFen: 1000 + i }),
      );
      // At most MAX_OPEN_ORDERS_PER_CARD (5) are made; the others are refused as too many unpaid orders.
      await expect.poll(() => made.length).toBe(5);
      release();
      const results = await Promise.all(answers);
      await handlers.closing();
      const open = made.filter((id) => rig.sims.wechat.order(id)?.state !== 'CLOSED');
      // Only the QR the renderer may still show (the last call's, if it was made) stays payable.
      expect(open.length).toBeLessThanOrEqual(1);
      // Each superseded call says its order is finished (or that there were too many), never hands out a QR.
      for (const r of results.slice(0, 299)) expect(['order_finished', 'too_many_orders']).toContain(r.ok ? 'ok' : r.error);
      const last = results[299];
      if (open.length === 1) expect(last).toMatchObject({ ok: true, value: { orderId: open[0] } });
      // Not locked out: a new recharge is made (the ledger's count of unpaid orders went down with the closes).
      handlers.forget('ended');
      await handlers.closing();
      await handlers.cardRead(a.serial);
      const again = await handlers.invoke(TRUSTED, 'startRecharge', { channel: 'alipay', amountFen: 3000 });
      expect(again).toMatchObject({ ok: true, value: { amountFen: 3000 } });
      expect(await ledger(a.cardNo)).toBe(500);
    } finally {
      handlers.dispose();
    }
  }, 60_000);
});
