// Login CSRF on the phone page's sign-in (8482111 and after). A WeCom code on a page that cannot keep its
// state (sessionStorage refused: a locked-down web-view, private mode): the holder is told why sign-in cannot
// finish. A mini-program (WeChat) code in a link opened outside the mini-program: someone else's account,
// never the binding form. Chromium against a real switch, gateway, Redis and the identity simulator.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { DOC, newPhone, openWithCode, PHONE, phoneCard, PIN, screenshot, startPhoneBench, type PhoneBench } from './helpers/phone-page.js';

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

  it("a mini-program sign-in link (?provider=wechat&code=...) of someone else's WeChat account, opened outside the mini-program, never shows the binding form", async () => {
    // Mallory takes a wx.login code of her own WeChat account (no card yet) and sends the link. Opened in a
    // browser or WeChat's chat (not the mini-program's web-view), the page signed the victim in as mallory and
    // showed the binding form: a victim who bound their card there gave mallory the card.
    const { context, page } = await newPhone(bench.browser);
    try {
      const code = bench.sim.issueCode('wechat', 'oMallory00000000000000000000');
      await page.goto(`${bench.base}/phone/?provider=wechat&code=${encodeURIComponent(code)}`);
      await page.getByRole('heading', { level: 1, name: '登录' }).waitFor({ timeout: STEP_MS });
      expect(await page.locator('main').innerText()).toContain('小程序');
      expect(await storedSession(page)).toBeNull();
      await screenshot(page, 'zh', 'signin-wechat-link-outside-mini-program');
    } finally {
      await context.close();
    }
  });

  it("the mini-program's own web-view (its user agent says miniProgram) still opens on the binding form", async () => {
    const context = await bench.browser.newContext({
      viewport: { width: 390, height: 844 },
      locale: 'zh-CN',
      userAgent:
        'Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/111.0 Mobile Safari/537.36 MicroMessenger/8.0.43 miniProgram/wx0123456789abcdef',
    });
    try {
      const page = await context.newPage();
      const code = bench.sim.issueCode('wechat', 'oHolder000000000000000000000');
      await page.goto(`${bench.base}/phone/?provider=wechat&code=${encodeURIComponent(code)}`);
      await page.getByRole('heading', { level: 1, name: '身份认证' }).waitFor({ timeout: STEP_MS });
      expect(await storedSession(page)).not.toBeNull();
    } finally {
      await context.close();
    }
  });
  it("a WeCom menu link opened after an abandoned 通过企业微信登录 (a state kept, another one in the link) opens a bound holder's card, not 登录已失效", async () => {
    await phoneCard(bench.app, '6901', 10_000);
    const { context, page } = await newPhone(bench.browser);
    try {
      await openWithCode(page, bench.base, bench.sim.issueCode('wecom', 'menuholder'));
      await page.getByRole('heading', { level: 1, name: '身份认证' }).waitFor({ timeout: STEP_MS });
      await page.getByLabel('学号/工号', { exact: true }).fill('G6901');
      await page.getByLabel('卡密码').fill(PIN);
      await page.getByLabel('证件号码').fill(DOC);
      await page.getByLabel('手机号').fill(PHONE);
      await page.getByLabel('同意《隐私政策》和《服务协议》').check();
      await page.getByRole('button', { name: '校园卡绑定' }).click();
      await page.getByRole('heading', { level: 1, name: '电子校园卡' }).waitFor({ timeout: STEP_MS });
      // The holder pressed 通过企业微信登录 once and came back without finishing: the page keeps that state.
      await page.evaluate(() =>
        (globalThis as unknown as { sessionStorage: { setItem(k: string, v: string): void } }).sessionStorage.setItem(
          'cardswitch.phone.oauthState',
          'abandoned-state',
        ),
      );
      // Then opens the app from WeCom's menu, whose address carries a state of its own.
      await page.goto(`${bench.base}/phone/?code=${encodeURIComponent(bench.sim.issueCode('wecom', 'menuholder'))}&state=menu`);
      await page.getByRole('heading', { level: 1, name: '电子校园卡' }).waitFor({ timeout: STEP_MS });
    } finally {
      await context.close();
    }
  });
});

async function storedSession(page: Page): Promise<string | null> {
  return page.evaluate(() =>
    (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem('cardswitch.phone.session'),
  );
}
