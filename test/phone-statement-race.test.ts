// The phone page's statement while a payment arrives: "load more" in flight when a payment event reloads
// the first page. Chromium against a real switch, gateway and Redis; the next page's answer is held back by
// Playwright's routing until the reloaded first page is shown, as on a slow mobile link.
import type { Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { DOC, newPhone, openWithCode, PHONE, phoneCard, PIN, screenshot, startPhoneBench, type PhoneBench } from './helpers/phone-page.js';
import { call, POS_TERMINAL, terminalMetadata } from './helpers/switch.js';

let bench: PhoneBench;
let seq = 0;
const STEP_MS = 15_000;
const CARD = '6801';

beforeAll(async () => {
  bench = await startPhoneBench('phonestmt');
}, 120_000);
afterAll(async () => {
  await bench?.stop();
});

function tap(amountFen: number): Promise<AuthorizeResponse> {
  return call(
    bench.pos,
    'authorize',
    {
      terminalId: POS_TERMINAL.id,
      sequenceNumber: ++seq,
      amountFen,
      credential: { card: { cardSerial: `EE${CARD.padStart(6, '0')}` } },
      pin: '',
    },
    terminalMetadata(POS_TERMINAL),
  );
}

describe('the statement while a payment arrives', () => {
  it('a next page answered after a payment reloaded the first page neither loses nor repeats a line', async () => {
    await phoneCard(bench.app, CARD, 50_000);
    const { context, page } = await newPhone(bench.browser);
    try {
      await openWithCode(page, bench.base, bench.sim.issueCode('wecom', 'stmtrace'));
      await page.getByRole('heading', { level: 1, name: '身份认证' }).waitFor({ timeout: STEP_MS });
      await page.getByLabel('学号/工号', { exact: true }).fill(`G${CARD}`);
      await page.getByLabel('卡密码').fill(PIN);
      await page.getByLabel('证件号码').fill(DOC);
      await page.getByLabel('手机号').fill(PHONE);
      await page.getByLabel('同意《隐私政策》和《服务协议》').check();
      await page.getByRole('button', { name: '校园卡绑定' }).click();
      await page.getByRole('heading', { level: 1, name: '电子校园卡' }).waitFor({ timeout: STEP_MS });
      // 25 payments of different amounts: ¥1.01 .. ¥1.25.
      const amounts: number[] = [];
      for (let i = 1; i <= 25; i++) {
        amounts.push(100 + i);
        expect((await tap(100 + i)).outcome).toBe(Outcome.OUTCOME_APPROVED);
      }
      await page.getByRole('link', { name: '查询流水' }).click();
      await page.getByRole('heading', { level: 1, name: '查询流水' }).waitFor({ timeout: STEP_MS });
      const more = page.getByRole('button', { name: '加载更多' });
      await more.waitFor({ timeout: STEP_MS });
      const lines = page.locator('.lines > li');
      expect(await lines.count()).toBe(20);

      // "Load more" is sent; its answer is held until a payment has reloaded the first page.
      let held: Route | undefined;
      const heldSeen = new Promise<void>((resolve) => {
        void page.route(/\/api\/v1\/ecard\/statement\?.*pageToken=/, (route) => {
          held = route;
          resolve();
        });
      });
      await more.click();
      await heldSeen;
      amounts.push(126);
      expect((await tap(126)).outcome).toBe(Outcome.OUTCOME_APPROVED);
      await page.locator('.lines > li').first().filter({ hasText: '1.26' }).waitFor({ timeout: STEP_MS });
      const answered = page.waitForResponse(/\/api\/v1\/ecard\/statement\?.*pageToken=/);
      await held?.continue();
      await page.unroute(/\/api\/v1\/ecard\/statement\?.*pageToken=/);
      await answered;
      // Then the holder reads on to the end.
      for (let i = 0; i < 5 && !(await page.getByText('已经到底了').isVisible()); i++) {
        await more.waitFor({ timeout: STEP_MS });
        const next = page.waitForResponse(/\/api\/v1\/ecard\/statement\?/);
        await more.click();
        await next;
      }
      await page.getByText('已经到底了').waitFor({ timeout: STEP_MS });
      await screenshot(page, 'zh', 'statement-after-race');
      const shown = (await page.locator('.lines .line-amount').allTextContents()).map((s) => s.replace(/[^\d.]/g, ''));
      for (const fen of amounts) {
        const text = (fen / 100).toFixed(2);
        expect(
          shown.filter((s) => s === text),
          `the payment of ¥${text}`,
        ).toHaveLength(1);
      }
    } finally {
      await context.close();
    }
  });
});
