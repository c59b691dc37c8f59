// The WeCom state check (8482111) on a page that cannot keep the state: a holder whose browser refuses
// sessionStorage (a locked-down web-view, private mode) is told why sign-in cannot finish, never left on
// 正在登录… for good. Chromium against a real switch, gateway and Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newPhone, screenshot, startPhoneBench, type PhoneBench } from './helpers/phone-page.js';

let bench: PhoneBench;
const STEP_MS = 15_000;

beforeAll(async () => {
  bench = await startPhoneBench('phonestate');
}, 120_000);
afterAll(async () => {
  await bench?.stop();
});

describe('sign-in on a page that cannot keep its state', () => {
  it('a WeCom code of an account without a card, with sessionStorage refused, ends on the sign-in screen saying why', async () => {
    const { context, page } = await newPhone(bench.browser);
    try {
      await context.addInitScript(() => {
        Object.defineProperty(globalThis, 'sessionStorage', {
          get() {
            throw new DOMException('storage is disabled', 'SecurityError');
          },
        });
      });
      await page.goto(`${bench.base}/phone/?code=${encodeURIComponent(bench.sim.issueCode('wecom', 'nostorage'))}`);
      await page.getByRole('heading', { level: 1, name: '登录' }).waitFor({ timeout: STEP_MS });
      expect(await page.locator('main').innerText()).toContain('无法确认');
      expect(page.url()).not.toContain('code=');
      await screenshot(page, 'zh', 'signin-no-storage');
    } finally {
      await context.close();
    }
  });
});
