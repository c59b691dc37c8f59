// A fee whose answer arrives after the holder changed (another card tapped, or the session ended while
// PayUtilityFee was in flight): the switch charged the first holder, so the kiosk must not drop the
// answer silently. The screen in front of the kiosk says, without the first holder's name or balance,
// that the card ending in ... had its fee paid (or not); the next holder's own session is untouched.
// The real renderer in Chromium, the kiosk's handler module, a real switch and Redis.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PayUtilityFeeResponse } from '../proto/gen/cardswitch/v1/kiosk.js';
import { passwordHash } from './helpers/clients.js';
import { handlerLog, startKioskRig, type KioskRig } from './helpers/kiosk-rig.js';
import { openCard } from './helpers/switch.js';

const PIN = '135790';
let cardCounter = 0;
let rig: KioskRig;
let page: Page;

/** The switch's answer to the next PayUtilityFee, held until the test lets it through. */
let hold: { charged: (res: PayUtilityFeeResponse) => void; release: Promise<void> } | undefined;

async function newHolder(openingFen: number, name: string): Promise<{ cardNo: string; serial: string }> {
  cardCounter++;
  const cardNo = String(36_000_000 + cardCounter);
  const serial = `5BFE${String(cardCounter).padStart(6, '0')}`;
  await openCard(rig.app, cardNo, serial, openingFen, { name, sno: `2025${cardNo}`, pwd: await passwordHash(rig.app, PIN) });
  return { cardNo, serial };
}
const screen = (name: string) => page.locator(`#app[data-screen="${name}"]`);
const press = (name: string) => page.getByRole('button', { name, exact: true }).click();
const ledger = async (cardNo: string) => Number(await rig.app.redis.hget(rig.app.keys.account(cardNo), 'bal'));
async function keypad(value: string): Promise<void> {
  for (const ch of value) await page.getByRole('button', { name: ch, exact: true }).first().click();
}

/** Holder taps, starts a 30.00 yuan network fee and confirms; resolves once the switch has decided it (answer held). */
async function payHeldNetworkFee(serial: string): Promise<PayUtilityFeeResponse> {
  await rig.handlers.cardRead(serial);
  await screen('home').waitFor();
  await press('网费');
  await keypad('jiang');
  await press('下一步');
  await keypad('30');
  await press('下一步');
  await keypad(PIN);
  let release!: () => void;
  const decided = new Promise<PayUtilityFeeResponse>((resolve) => {
    hold = { charged: resolve, release: new Promise<void>((r) => (release = r)) };
  });
  await press('确认');
  const res = await decided;
  heldRelease = release;
  return res;
}
let heldRelease: (() => void) | undefined;
/** The next IdentifyCard's answer, held until released (a tap being read while the fee is answered). */
let holdIdentify: { reached: () => void; release: Promise<void> } | undefined;

beforeAll(async () => {
  rig = await startKioskRig({
    label: 'kfeehand',
    wrapSwitch: (client) => ({
      ...client,
      payUtilityFee: async (req) => {
        const res = await client.payUtilityFee(req);
        const h = hold;
        if (h !== undefined) {
          hold = undefined;
          h.charged(res);
          await h.release;
        }
        return res;
      },
      identifyCard: async (req) => {
        const res = await client.identifyCard(req);
        const h = holdIdentify;
        if (h !== undefined) {
          holdIdentify = undefined;
          h.reached();
          await h.release;
        }
        return res;
      },
    }),
  });
  page = await rig.open();
}, 60_000);
afterAll(async () => {
  heldRelease?.();
  await rig?.stop();
});

describe('a fee answered after another card was tapped', () => {
  it('the first holder is charged once and the screen says their fee was paid (card tail only); the new holder sees their own card', async () => {
    const a = await newHolder(20_000, '蒋九');
    const b = await newHolder(5_000, '韩十一');
    await payHeldNetworkFee(a.serial);
    expect(await ledger(a.cardNo)).toBe(17_000);
    // B taps while A's answer is still on its way.
    await rig.handlers.cardRead(b.serial);
    await screen('home').waitFor();
    expect(await page.locator('main').innerText()).toContain(b.cardNo);
    heldRelease?.();
    const notice = page.getByTestId('earlier-fee');
    await notice.waitFor();
    const zh = await notice.innerText();
    expect(zh).toContain(`尾号 ${a.cardNo.slice(-4)}`);
    expect(zh).toContain('网费 30.00 元已缴费成功');
    expect(zh).not.toContain('蒋');
    expect(zh).not.toContain('170.00');
    const main = await page.locator('main').innerText();
    expect(main).toContain(b.cardNo);
    expect(main).toContain('50.00 元');
    expect(main).not.toContain(a.cardNo);
    await rig.screenshot('45-fee-answered-after-next-tap');
    await press('English');
    expect(await notice.innerText()).toContain(`ending ${a.cardNo.slice(-4)}`);
    await press('中文');
    // B can put it away; A was charged exactly once.
    await press('知道了');
    await expect.poll(() => notice.count()).toBe(0);
    expect(await ledger(a.cardNo)).toBe(17_000);
    expect(await ledger(b.cardNo)).toBe(5_000);
    await press('退出');
    await screen('idle').waitFor();
  }, 60_000);

  it('the session ended (退出) while the fee was in flight: the idle screen says it was paid', async () => {
    const a = await newHolder(20_000, '蒋九');
    await payHeldNetworkFee(a.serial);
    rig.handlers.forget('ended');
    await screen('idle').waitFor();
    heldRelease?.();
    const notice = page.getByTestId('earlier-fee');
    await notice.waitFor();
    expect(await notice.innerText()).toContain(`尾号 ${a.cardNo.slice(-4)}`);
    expect(await notice.innerText()).toContain('已缴费成功');
    await rig.screenshot('46-fee-answered-after-exit');
    expect(await ledger(a.cardNo)).toBe(17_000);
    // The next tap starts clean.
    const b = await newHolder(5_000, '韩十一');
    await rig.handlers.cardRead(b.serial);
    await screen('home').waitFor();
    expect(await notice.count()).toBe(0);
  }, 60_000);

  it('answered while the next card is being read: the notice comes after that card shows, and stays on its screen', async () => {
    const a = await newHolder(20_000, '蒋九');
    const b = await newHolder(5_000, '韩十一');
    await payHeldNetworkFee(a.serial);
    let releaseIdentify!: () => void;
    const reached = new Promise<void>((resolve) => {
      holdIdentify = { reached: resolve, release: new Promise<void>((r) => (releaseIdentify = r)) };
    });
    const told = () => handlerLog(rig).filter((l) => l.includes('earlierFee')).length;
    const toldBefore = told();
    const tap = rig.handlers.cardRead(b.serial);
    await reached;
    // A's answer arrives while B's card is being identified, then B's card shows.
    heldRelease?.();
    await expect.poll(told).toBe(toldBefore + 1);
    releaseIdentify();
    await tap;
    await screen('home').waitFor();
    const notice = page.getByTestId('earlier-fee');
    await notice.waitFor();
    expect(await notice.innerText()).toContain(`尾号 ${a.cardNo.slice(-4)}`);
    expect(await page.locator('main').innerText()).toContain(b.cardNo);
    expect(await ledger(a.cardNo)).toBe(17_000);
    await press('知道了');
    await press('退出');
    await screen('idle').waitFor();
  }, 60_000);
});
