// The binding form when the session ends while the card is being bound (a logout on another page of the
// same session): the gateway answers 201 with signInAgain and no token (test/ecard-gateway.test.ts). The page
// must say the card IS bound and ask to sign in again, not show an error that sends the holder to bind again.
// Chromium at phone size against a real switch, gateway and Redis.
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DOC, newPhone, openWithCode, phoneCard, PHONE, PIN, screenshot, startPhoneBench, type PhoneBench } from './helpers/phone-page.js';

let bench: PhoneBench;
let context: BrowserContext;
let page: Page;
const STEP_MS = 15_000;

beforeAll(async () => {
  bench = await startPhoneBench('phonebindlogout');
  ({ context, page } = await newPhone(bench.browser));
}, 120_000);
afterAll(async () => {
  await context?.close();
  await bench?.stop();
});

it('bound while the session ended: the page says it is bound and to sign in again, on the sign-in screen', async () => {
  const personNumber = await phoneCard(bench.app, '6301', 5000);
  await openWithCode(page, bench.base, bench.sim.issueCode('wecom', 'sunba'));
  await page.getByRole('heading', { level: 1, name: '身份认证' }).waitFor({ timeout: STEP_MS });
  await page.getByLabel('学号/工号', { exact: true }).fill(personNumber);
  await page.getByLabel('卡密码').fill(PIN);
  await page.getByLabel('证件号码').fill(DOC);
  await page.getByLabel('手机号').fill(PHONE);
  await page.getByLabel('同意《隐私政策》和《服务协议》').check();
  const sessions = bench.app.gateway!.sessions;
  const reissue = sessions.reissue.bind(sessions);
  // Another page of this session logs out after the binding script ran, before the new token is signed.
  sessions.reissue = async (session, cardNo) => {
    await sessions.logout(session.sessionId);
    return reissue(session, cardNo);
  };
  try {
    await page.getByRole('button', { name: '校园卡绑定' }).click();
    await page.getByText('校园卡已绑定成功').waitFor({ timeout: STEP_MS });
  } finally {
    sessions.reissue = reissue;
  }
  expect(await bench.app.redis.hget(bench.app.keys.account('6301'), 'eu')).toBe('wecom:sunba');
  expect(await page.locator('main').innerText()).toContain('请重新登录');
  expect(await page.locator('main').innerText()).not.toContain('已绑定其他');
  await screenshot(page, 'zh', 'bind-session-ended');
  // Signing in again goes straight to the card.
  await openWithCode(page, bench.base, bench.sim.issueCode('wecom', 'sunba'));
  await page.getByRole('heading', { level: 1, name: '电子校园卡' }).waitFor({ timeout: STEP_MS });
}, 60_000);
