// Main's own inactivity limit (the renderer's + 15 s) is a backstop for a renderer that hung or closed,
// not a second timeout for the holder: a holder who keeps touching the screen without the renderer calling
// anything (typing slowly on a keypad) stays signed in, because a touch tells main (`stillHere`, at most
// once every few seconds); a renderer that stops still has its holder dropped by main.
// The real renderer in Chromium, the kiosk's handler module, a real switch and Redis.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { passwordHash } from './helpers/clients.js';
import { handlerLog, startKioskRig, type KioskRig } from './helpers/kiosk-rig.js';
import { openCard } from './helpers/switch.js';

let rig: KioskRig;
let page: Page;

beforeAll(async () => {
  // The renderer signs out after 5 s without a touch; main after 5 + 15 = 20 s without hearing from it.
  rig = await startKioskRig({ label: 'kactivity', idleTimeoutSec: 5 });
  page = await rig.open();
}, 60_000);
afterAll(async () => {
  await rig?.stop();
});

const stillHereCalls = () => handlerLog(rig).filter((l) => l.includes('"stillHere"')).length;

it('a holder who keeps touching the screen is not signed out by main mid-flow', async () => {
  await openCard(rig.app, '35000001', '5EED00000001', 9_900, { name: '沈十', pwd: await passwordHash(rig.app, '135790') });
  await rig.handlers.cardRead('5EED00000001');
  await page.locator('#app[data-screen="home"]').waitFor();
  await page.getByRole('button', { name: '网费', exact: true }).click();
  await page.locator('#app[data-screen="entry"]').waitFor();
  const before = stillHereCalls();
  // The holder types the account slowly, a key every 2 s (the renderer's 5 s restarts each time), for
  // 26 s in all: past main's 20 s. The waits are the scenario's own pace, not synchronisation.
  const keys = 'abcdefghijklm';
  for (const k of keys) {
    await page.waitForTimeout(2_000);
    expect(await page.locator('#app').getAttribute('data-screen'), `before typing "${k}"`).toBe('entry');
    await page.getByRole('button', { name: k, exact: true }).click();
  }
  expect(await page.locator('output').innerText()).toBe(keys);
  expect(rig.handlers.holderCardNumber()).toBe('35000001');
  // Throttled: 13 touches in 26 s reach main about every 5 s, not every time.
  const sent = stillHereCalls() - before;
  expect(sent).toBeGreaterThanOrEqual(4);
  expect(sent).toBeLessThanOrEqual(7);
}, 90_000);

it('a renderer that stops (closed or hung) still has its holder dropped by main after its own limit', async () => {
  await openCard(rig.app, '35000002', '5EED00000002', 9_900, { name: '韩十一', pwd: await passwordHash(rig.app, '135790') });
  await rig.handlers.cardRead('5EED00000002');
  await page.locator('#app[data-screen="home"]').waitFor();
  // The renderer's last word to main, then it is gone: nothing calls main any more.
  expect(await page.evaluate('window.kiosk.stillHere()')).toEqual({ ok: true, value: null });
  const lastCallMs = Date.now();
  await page.close();
  for (;;) {
    if (rig.handlers.holderCardNumber() === undefined) break;
    expect(Date.now() - lastCallMs, 'main to forget the holder within its limit').toBeLessThan(30_000);
    await new Promise((r) => setTimeout(r, 200));
  }
  const afterMs = Date.now() - lastCallMs;
  expect(afterMs).toBeGreaterThanOrEqual(19_500);
  expect(handlerLog(rig).at(-1)).toBe(JSON.stringify({ action: 'stillHere', result: 'ok' }));
  // The renderer opened again asks nothing for the dropped holder.
  page = await rig.open();
  expect(await page.evaluate('window.kiosk.stillHere()')).toEqual({ ok: false, error: 'no_card' });
  expect(await page.evaluate('window.kiosk.sync()')).toEqual({ ok: false, error: 'no_card' });
}, 60_000);
