// A fee is never paid twice from the phone page (docs/gateway-api.md, "Fees and requestId idempotency"): when
// the answer is lost (the gateway paid, the phone never heard) or the outcome is still pending after the
// page's own retries, pressing 确认缴费 again sends the same requestId and the server replays the first answer,
// also after a reload of the page and with a mistyped password in between; once the outcome is final, the
// next payment of the same fee gets a new id and is paid. Chromium against a real switch, gateway and Redis;
// the lost answers are made by Playwright's routing (the request reaches the gateway, its answer is dropped).
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DOC,
  newPhone,
  openWithCode,
  PHONE,
  phoneCard,
  PIN,
  screenshot,
  seriousViolations,
  startPhoneBench,
  type PhoneBench,
} from './helpers/phone-page.js';

let bench: PhoneBench;
/** Generous: a page action and its answer on a loaded 2-core machine. */
const STEP_MS = 15_000;
/** The page's own retries of a lost or pending answer wait 2 + 4 + 6 s before it gives up. */
const GIVE_UP_MS = 40_000;

beforeAll(async () => {
  bench = await startPhoneBench('phonefee');
}, 120_000);
afterAll(async () => {
  await bench?.stop();
});

/** A phone signed in as `user` with card `cardNo` bound, on the fee screen `title` (网费缴纳 / 电费缴纳). */
async function feeScreen(user: string, cardNo: string, title: string): Promise<{ context: BrowserContext; page: Page }> {
  await phoneCard(bench.app, cardNo, 50_000);
  const { context, page } = await newPhone(bench.browser);
  const code = bench.sim.issueCode('wecom', user);
  await openWithCode(page, bench.base, code);
  await page.getByRole('heading', { level: 1, name: '身份认证' }).waitFor({ timeout: STEP_MS });
  await page.getByLabel('学号/工号', { exact: true }).fill(`G${cardNo}`);
  await page.getByLabel('卡密码').fill(PIN);
  await page.getByLabel('证件号码').fill(DOC);
  await page.getByLabel('手机号').fill(PHONE);
  await page.getByLabel('同意《隐私政策》和《服务协议》').check();
  await page.getByRole('button', { name: '校园卡绑定' }).click();
  await page.getByRole('heading', { level: 1, name: '电子校园卡' }).waitFor({ timeout: STEP_MS });
  await page.getByRole('link', { name: title }).click();
  await page.getByRole('heading', { level: 1, name: title }).waitFor({ timeout: STEP_MS });
  return { context, page };
}

async function balanceFen(cardNo: string): Promise<number> {
  return Number(await bench.app.redis.hget(bench.app.keys.account(cardNo), 'bal'));
}

describe('a fee on the phone page after a lost or pending answer', () => {
  it('a fee whose answer was lost is not paid twice when the holder presses pay again; the next fee is new', async () => {
    const CARD = '6301';
    const { context, page } = await feeScreen('zzfee', CARD, '网费缴纳');
    const ids: number[] = [];
    let lost = 0;
    await page.route('**/api/v1/ecard/fees/network', async (route) => {
      ids.push((route.request().postDataJSON() as { requestId: number }).requestId);
      if (lost < 4) {
        lost++;
        await route.fetch(); // paid at the gateway ...
        await route.abort('failed'); // ... and the answer lost on the way back
      } else await route.continue();
    });
    const pay = async (): Promise<void> => {
      await page.getByLabel('校园网账号').fill('zz2024');
      await page.getByLabel('缴费金额（元，1.00-500.00）').fill('30');
      await page.getByLabel('卡密码').fill(PIN);
      await page.getByRole('button', { name: '确认缴费' }).click();
    };
    await pay();
    await page.getByText('网络连接失败').first().waitFor({ timeout: GIVE_UP_MS });
    await page.locator('.outcome').getByText('不会重复扣款').waitFor({ timeout: STEP_MS });
    expect(lost).toBe(4);
    await screenshot(page, 'zh', 'network-answer-lost');
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByRole('button', { name: '确认缴费' }).click();
    await page.locator('.outcome').getByText('缴费成功').waitFor({ timeout: STEP_MS });
    expect((await page.locator('.outcome').textContent()) ?? '').toContain('¥470.00');
    await screenshot(page, 'zh', 'network-paid-after-lost-answer');
    expect(new Set(ids).size).toBe(1);
    expect(await balanceFen(CARD)).toBe(47_000);

    // The outcome was final: the same fee paid again is a second, intended payment with its own id.
    await pay();
    await page.locator('.outcome').getByText('¥440.00').waitFor({ timeout: STEP_MS });
    expect((await page.locator('.outcome').textContent()) ?? '').toContain('缴费成功');
    expect(ids).toHaveLength(6);
    expect(ids[5]).not.toBe(ids[0]);
    expect(await balanceFen(CARD)).toBe(44_000);
    await context.close();
  }, 120_000);

  it('a pending electricity fee is asked again with the same id after a reload and a mistyped password', async () => {
    const CARD = '6302';
    const { context, page } = await feeScreen('zzpend', CARD, '电费缴纳');
    const ids: number[] = [];
    let pending = 0;
    await page.route('**/api/v1/ecard/fees/electricity', async (route) => {
      ids.push((route.request().postDataJSON() as { requestId: number }).requestId);
      const response = await route.fetch();
      const answer = (await response.json()) as Record<string, unknown>;
      // Paid at the gateway, but the phone is told what a provider that has not confirmed yet makes it say.
      if (answer['outcome'] === 'paid' && pending < 4) {
        pending++;
        await route.fulfill({
          response,
          json: { ...answer, outcome: 'pending', reason: 'pending', message: '缴费结果待确认', receipt: '' },
        });
      } else await route.fulfill({ response });
    });
    const pay = async (password: string): Promise<void> => {
      await page.getByLabel('楼栋').fill('学4');
      await page.getByLabel('房间号').fill('402');
      await page.getByLabel('缴费金额（元，1.00-500.00）').fill('12.5');
      await page.getByLabel('卡密码').fill(password);
      await page.getByRole('button', { name: '确认缴费' }).click();
    };
    await pay(PIN);
    await page.locator('.outcome').getByText('缴费结果待确认').waitFor({ timeout: GIVE_UP_MS });
    await page.getByRole('button', { name: '确认缴费' }).waitFor({ timeout: STEP_MS });
    expect(pending).toBe(4);
    expect(await balanceFen(CARD)).toBe(48_750);

    // WeCom reloads a page it put in the background: the holder comes back and types the fee in again.
    await page.reload();
    await page.getByRole('heading', { level: 1, name: '电费缴纳' }).waitFor({ timeout: STEP_MS });
    await pay('135790');
    await page.getByText('密码错误').first().waitFor({ timeout: STEP_MS });
    await pay(PIN);
    await page.locator('.outcome').getByText('缴费成功').waitFor({ timeout: STEP_MS });
    expect((await page.locator('.outcome').textContent()) ?? '').toContain('¥487.50');
    expect(ids).toHaveLength(6);
    expect(new Set(ids).size).toBe(1);
    expect(await balanceFen(CARD)).toBe(48_750);
    await context.close();
  }, 120_000);
});
