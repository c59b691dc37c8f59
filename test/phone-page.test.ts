// The e-card page on a phone (issue 14): Chromium at 390 x 844 (2x, touch) against a real switch, gateway,
// Redis, the identity simulator and both channel simulators. Bind (the form's errors next to their fields,
// the card that was never tapped), the campus QR code paid at a POS over gRPC with the result on the page
// within a second, a WeChat recharge credited, a loss reported and cancelled, fees, the statement paged,
// a dropped connection resumed, the personal centre, and an expired session. Every screen is screenshotted
// in both languages (var/screenshots/phone/{zh,en}/) and checked with axe-core (no serious or critical
// violation), under the page's own Content-Security-Policy.
import type { BrowserContext, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import { call, POS_TERMINAL, terminalMetadata } from './helpers/switch.js';
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
let seq = 0;
const USER = 'lisi';
const CARD = '6101';
/** Generous: a page action and its answer on a loaded 2-core machine. */
const STEP_MS = 15_000;

beforeAll(async () => {
  bench = await startPhoneBench('phone');
}, 120_000);
afterAll(async () => {
  await bench?.stop();
});

function authorize(credential: Record<string, unknown>, amountFen: number): Promise<AuthorizeResponse> {
  return call(
    bench.pos,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: ++seq, amountFen, credential, pin: '' },
    terminalMetadata(POS_TERMINAL),
  );
}

function tap(cardNo: string, amountFen: number): Promise<AuthorizeResponse> {
  return authorize({ card: { cardSerial: `EE${cardNo.padStart(6, '0')}` } }, amountFen);
}

async function signIn(page: Page, user: string): Promise<void> {
  await openWithCode(page, bench.base, bench.sim.issueCode('wecom', user));
}

async function heading(page: Page, name: string): Promise<void> {
  await page.getByRole('heading', { level: 1, name }).waitFor({ timeout: STEP_MS });
}

/** Screenshots the screen in zh-CN, checks it with axe, then the same in English, and back to zh-CN. */
async function bothLanguages(page: Page, name: string, enHeading: string, zhHeading: string, after?: () => Promise<void>): Promise<void> {
  await screenshot(page, 'zh', name);
  expect(await seriousViolations(page), `${name} (zh)`).toEqual([]);
  await page.getByRole('button', { name: 'Switch to English' }).click();
  await heading(page, enHeading);
  await after?.();
  await screenshot(page, 'en', name);
  expect(await seriousViolations(page), `${name} (en)`).toEqual([]);
  await page.getByRole('button', { name: '切换到中文' }).click();
  await heading(page, zhHeading);
}

/** The error shown next to the field labelled `label` (among its aria-describedby), or null. */
async function fieldError(page: Page, label: string): Promise<string | null> {
  const ids = ((await page.getByLabel(label, { exact: true }).getAttribute('aria-describedby')) ?? '').split(' ');
  const errorId = ids.find((id) => id.endsWith('-error'));
  if (errorId === undefined) return null;
  const error = page.locator(`[id="${errorId}"]`);
  return (await error.isVisible()) ? await error.textContent() : null;
}

describe('the e-card page on a phone', () => {
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    await phoneCard(bench.app, CARD, 50_000);
    await phoneCard(bench.app, '6199', 1000, { sync: '0' });
    ({ context, page } = await newPhone(bench.browser));
  });
  afterAll(async () => {
    await context?.close();
  });

  it('shows the sign-in screen without a session, and the development sign-in goes through the identity simulator', async () => {
    const { context: other, page: fresh } = await newPhone(bench.browser);
    const answer = await fresh.goto(`${bench.base}/phone/`);
    expect(answer?.headers()['content-security-policy']).toContain("script-src 'self'");
    await heading(fresh, '登录');
    await bothLanguages(fresh, 'signin', 'Sign in', '登录');
    await fresh.getByRole('button', { name: '通过企业微信登录' }).click();
    // The simulator's WeCom authorisation page: a userid, then back to the page with ?code=&state=.
    await fresh.getByLabel('企业微信账号 WeCom userid').fill('wangwu');
    await fresh.getByRole('button', { name: '登录 Sign in' }).click();
    await heading(fresh, '身份认证');
    expect(new URL(fresh.url()).search).toBe(''); // the code is gone from the address bar
    expect(await fresh.evaluate(() => Object.keys((globalThis as unknown as { localStorage: object }).localStorage))).toEqual([
      'cardswitch.phone.lang',
    ]);
    await other.close();
  });

  it("a sign-in link made by someone else (their WeCom code, not this page's request) never puts the holder on that account's binding form", async () => {
    // Login CSRF: mallory takes a code of her own WeCom account (not spent) and sends the link. The page
    // took any code that came without its own state: the victim was signed in as mallory, saw the binding
    // form, and binding their card there gave mallory the card (its QR code pays from its balance).
    const { context: other, page: victim } = await newPhone(bench.browser);
    try {
      await victim.goto(`${bench.base}/phone/?code=${encodeURIComponent(bench.sim.issueCode('wecom', 'mallory'))}&state=menu`);
      // The page asks WeCom itself, with its own state: in WeCom that is silent (snsapi_base); the
      // simulator asks for a userid.
      await victim.getByLabel('企业微信账号 WeCom userid').waitFor({ timeout: STEP_MS });
      const authorize = new URL(victim.url());
      expect(authorize.pathname).toBe('/connect/oauth2/authorize');
      expect(authorize.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{16,}$/);
      await victim.getByLabel('企业微信账号 WeCom userid').fill('zhaoliu');
      await victim.getByRole('button', { name: '登录 Sign in' }).click();
      await heading(victim, '身份认证');
      const stored = await victim.evaluate(() =>
        (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem(
          'cardswitch.phone.session',
        ),
      );
      const access = (JSON.parse(stored ?? '{}') as { accessToken?: string }).accessToken ?? '';
      const claims = JSON.parse(Buffer.from(access.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: string };
      expect(claims.sub).toBe('wecom:zhaoliu'); // the holder's own account, not mallory's
    } finally {
      await other.close();
    }
  });

  it('binds: each error next to its field, the unsynced card explained, then the card', async () => {
    await signIn(page, USER);
    await heading(page, '身份认证');
    await bothLanguages(page, 'bind', 'Verify your identity', '身份认证');
    await page.getByRole('button', { name: '校园卡绑定' }).click();
    expect(await fieldError(page, '学号/工号')).toBe('请输入4-20位字母或数字的学号/工号');
    expect(await fieldError(page, '卡密码')).toBe('请输入6位数字卡密码');
    expect(await fieldError(page, '证件号码')).toBe('请输入18位身份证号码（最后一位可为X）');
    expect(await fieldError(page, '手机号')).toBe('请输入11位手机号（或+国家代码和号码）');
    expect(await page.getByRole('alert').filter({ hasText: '请修改以下问题' }).getByRole('link').count()).toBe(5);
    expect(await page.getByLabel('学号/工号', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    await screenshot(page, 'zh', 'bind-errors');
    expect(await seriousViolations(page)).toEqual([]);

    // The card was never tapped on a terminal: the page says what to do.
    await page.getByLabel('学号/工号', { exact: true }).fill('G6199');
    await page.getByLabel('卡密码').fill(PIN);
    await page.getByLabel('证件号码').fill(DOC.toLowerCase());
    await page.getByLabel('手机号').fill(PHONE);
    await page.getByLabel('同意《隐私政策》和《服务协议》').check();
    await page.getByRole('button', { name: '校园卡绑定' }).click();
    await page.getByText('这张卡还没有同步').waitFor({ timeout: STEP_MS });
    expect(await fieldError(page, '学号/工号')).toBeNull();

    // A wrong password: the server's refusal lands next to the password.
    await page.getByLabel('学号/工号', { exact: true }).fill(`G${CARD}`);
    await page.getByLabel('卡密码').fill('135790');
    await page.getByRole('button', { name: '校园卡绑定' }).click();
    await page.getByText('卡密码错误', { exact: false }).first().waitFor({ timeout: STEP_MS });
    expect(await fieldError(page, '卡密码')).toMatch(/^卡密码错误，今日还可尝试\d次$/);

    // A phone that is not the card record's: next to the phone.
    await page.getByLabel('卡密码').fill(PIN);
    await page.getByLabel('手机号').fill('13900000000');
    await page.getByRole('button', { name: '校园卡绑定' }).click();
    await page
      .locator('.field.has-error')
      .filter({ has: page.getByLabel('手机号') })
      .waitFor({ timeout: STEP_MS });

    await page.getByLabel('手机号').fill(PHONE);
    await page.getByRole('button', { name: '校园卡绑定' }).click();
    await heading(page, '电子校园卡');
  });

  it('a link to a screen that is no screen (#/__proto__, #/constructor, #/toString) shows the card, never a broken page', async () => {
    // The route was looked up with `in`, which also finds what every object inherits: #/__proto__ threw
    // (nothing drawn), #/constructor drew the word "undefined" instead of a screen.
    const errors: string[] = [];
    const onError = (err: Error): void => void errors.push(err.message);
    page.on('pageerror', onError);
    try {
      for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
        await page.goto(`${bench.base}/phone/#/home`);
        await heading(page, '电子校园卡');
        await page.goto(`${bench.base}/phone/#/${name}`); // from the page: the hash changes
        await heading(page, '电子校园卡');
        expect(await page.locator('main').getAttribute('data-screen'), name).toBe('home');
        await page.reload(); // opened with it: after the card loads
        await heading(page, '电子校园卡');
        expect(await page.locator('main').getAttribute('data-screen'), name).toBe('home');
      }
    } finally {
      page.off('pageerror', onError);
    }
    expect(errors).toEqual([]);
  });

  it("the skip link moves to the screen's content; it does not leave the screen or lose what was typed", async () => {
    // Its href was #main: a hash that is no screen, so following it drew the home screen instead, and a
    // keyboard or screen-reader user lost the form they were on (and what they had typed).
    await page.goto(`${bench.base}/phone/#/network`);
    await heading(page, '网费缴纳');
    await page.getByLabel('校园网账号').fill('lisi2024');
    const skip = page.locator('a.skip');
    await skip.focus();
    await page.keyboard.press('Enter');
    const focused = () => (globalThis as unknown as { document: { activeElement: { id: string } | null } }).document.activeElement?.id;
    expect(await page.evaluate(focused)).toBe('main');
    expect(await page.locator('main').getAttribute('data-screen')).toBe('network');
    expect(await page.getByLabel('校园网账号').inputValue()).toBe('lisi2024');
    expect(new URL(page.url()).hash).toBe('#/network');
    expect(await skip.textContent()).toBe('跳到主要内容'); // what it does, not the home screen's name
    await page.goto(`${bench.base}/phone/#/home`);
    await heading(page, '电子校园卡');
  });

  it('shows the campus QR code; paid at a POS, the page says "used" and the result within a second, then a new code', async () => {
    await page.getByText('账户余额').waitFor();
    expect(await page.locator('.balance-value').textContent()).toBe('¥*****');
    await page.getByRole('button', { name: /点击显示余额/ }).click();
    expect(await page.locator('.balance-value').textContent()).toBe('¥500.00');
    await page.getByRole('img', { name: '校园码，在 POS 机上扫码消费' }).waitFor();
    await page.getByText(/^([1-9]|[12]\d|3[01]) 秒后自动刷新$/).waitFor();
    await page.locator('.banner').waitFor({ state: 'hidden', timeout: STEP_MS });
    await bothLanguages(page, 'home', 'E-card', '电子校园卡');
    // The code on screen: the one the page gets when the holder taps refresh. Switching the language
    // re-drew the screen, which loads its own code: wait until that one is shown (a tap while it loads
    // is taken by that load), and take the answer to the request the tap sent, not the first answer to
    // arrive (a load of the screen drawn before could answer after the tap: the test then paid with a
    // code no longer on screen, and the page rightly did not mark its own code used; 2 of 4 runs).
    await page.getByText(/^([1-9]|[12]\d|3[01]) 秒后自动刷新$/).waitFor();
    const [tapped] = await Promise.all([
      page.waitForRequest((r: Request) => r.url().endsWith('/api/v1/ecard/qr') && r.method() === 'GET', { timeout: STEP_MS }),
      page.getByRole('button', { name: '刷新校园码' }).click(),
    ]);
    const manual = await tapped.response();
    expect(manual?.status()).toBe(200);
    const code = ((await manual?.json()) as { code: string }).code;
    await page.getByRole('button', { name: /点击显示余额/ }).click();

    const nextCode = page.waitForResponse((r) => r.url().endsWith('/api/v1/ecard/qr') && r.status() === 200, { timeout: STEP_MS });
    const paid = await authorize({ campusQr: { payload: code } }, 1250);
    const answeredMs = performance.now();
    expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
    await page.getByRole('status').filter({ hasText: '支付成功' }).waitFor({ timeout: 1000 });
    await page.locator('.qr-used').waitFor({ timeout: 1000 });
    expect(performance.now() - answeredMs).toBeLessThan(1000);
    const result = (await page.locator('.result').textContent()) ?? '';
    expect(result).toContain('第一食堂 一层');
    expect(result).toContain('¥12.50');
    expect(result).toContain('¥487.50');
    expect(await page.locator('.balance-value').textContent()).toBe('¥487.50');
    await screenshot(page, 'zh', 'home-paid');
    expect(await seriousViolations(page)).toEqual([]);
    // The used code is replaced by a new one.
    const next = ((await (await nextCode).json()) as { code: string }).code;
    expect(next).not.toBe(code);
    await page.locator('.qr-used').waitFor({ state: 'detached', timeout: STEP_MS });
  });

  it('says when the connection drops, reconnects, and gets what happened meanwhile', async () => {
    await context.setOffline(true);
    await page.getByText('网络已断开，正在重新连接…').waitFor({ timeout: STEP_MS });
    await screenshot(page, 'zh', 'home-offline');
    expect((await tap(CARD, 300)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    await context.setOffline(false);
    await page.getByRole('status').filter({ hasText: '¥3.00' }).waitFor({ timeout: STEP_MS });
    await page.locator('.banner').waitFor({ state: 'hidden', timeout: STEP_MS });
    expect((await page.locator('.result').textContent()) ?? '').toContain('¥484.50');
  });

  it('recharges through WeChat Pay (the simulator pays the order) and shows the new balance', async () => {
    await page.getByRole('link', { name: '校园卡充值' }).click();
    await heading(page, '校园卡充值');
    await page.getByLabel('充值金额（元）').fill('999.01');
    await page.getByRole('button', { name: '立即充值' }).click();
    expect(await fieldError(page, '充值金额（元）')).toBe('微信单笔充值金额为0.01-999.00元');
    await page.getByLabel('充值金额（元）').fill('');
    await bothLanguages(page, 'recharge', 'Top up', '校园卡充值');
    await page.getByLabel('充值金额（元）').fill('100');
    await page.getByRole('button', { name: '立即充值' }).click();
    await page.getByRole('img', { name: '充值付款二维码' }).waitFor({ timeout: STEP_MS });
    const orderId = (await page.locator('.order-id').textContent()) ?? '';
    expect(orderId).not.toBe('');
    await screenshot(page, 'zh', 'recharge-order');
    expect(await seriousViolations(page)).toEqual([]);
    await bench.sims.wechat.payOrder(orderId);
    await page.getByText('充值成功：¥100.00，当前余额 ¥584.50').waitFor({ timeout: STEP_MS });
    await screenshot(page, 'zh', 'recharge-paid');
    await page.getByRole('link', { name: '返回' }).click();
    await heading(page, '电子校园卡');
    await page.getByRole('button', { name: /点击显示余额/ }).click();
    expect(await page.locator('.balance-value').textContent()).toBe('¥584.50');
  });

  it('reports the card lost and cancels the loss with the password', async () => {
    await page.getByRole('link', { name: '挂失解挂' }).click();
    await heading(page, '挂失解挂');
    await bothLanguages(page, 'loss', 'Report loss', '挂失解挂');
    await page.getByRole('button', { name: '挂失' }).click();
    await page.getByText('已挂失').first().waitFor({ timeout: STEP_MS });
    await bothLanguages(page, 'loss-lost', 'Report loss', '挂失解挂');
    expect((await tap(CARD, 100)).outcome).not.toBe(Outcome.OUTCOME_APPROVED);
    await page.getByLabel('卡密码').fill('111111');
    await page.getByRole('button', { name: '解挂' }).click();
    expect(
      await page
        .getByText(/卡密码错误/)
        .first()
        .waitFor({ timeout: STEP_MS }),
    ).toBeUndefined();
    await page.getByLabel('卡密码').fill(PIN);
    await page.getByRole('button', { name: '解挂' }).click();
    await page.getByRole('button', { name: '挂失' }).waitFor({ timeout: STEP_MS });
    expect(await page.getByText('正常').count()).toBeGreaterThan(0);
  });

  it('pays the network and the electricity fee', async () => {
    await page.getByRole('link', { name: '返回' }).click();
    await page.getByRole('link', { name: '网费缴纳' }).click();
    await heading(page, '网费缴纳');
    await page.getByRole('button', { name: '确认缴费' }).click();
    expect(await fieldError(page, '校园网账号')).toContain('请输入4-32位');
    await bothLanguages(page, 'network', 'Network fee', '网费缴纳');
    await page.getByLabel('校园网账号').fill('lisi2024');
    await page.getByLabel('缴费金额（元，1.00-500.00）').fill('30');
    await page.getByLabel('卡密码').fill(PIN);
    await page.getByRole('button', { name: '确认缴费' }).click();
    await page.locator('.outcome').getByText('缴费成功').waitFor({ timeout: STEP_MS });
    expect((await page.locator('.outcome').textContent()) ?? '').toContain('¥554.50');
    await screenshot(page, 'zh', 'network-paid');
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByRole('link', { name: '返回' }).click();
    await page.getByRole('link', { name: '电费缴纳' }).click();
    await heading(page, '电费缴纳');
    await page.getByLabel('楼栋').fill('学4');
    await page.getByLabel('房间号').fill('402');
    await page.getByLabel('缴费金额（元，1.00-500.00）').fill('10.5');
    await page.getByLabel('卡密码').fill(PIN);
    await page.getByRole('button', { name: '确认缴费' }).click();
    await page.locator('.outcome').getByText('缴费成功').waitFor({ timeout: STEP_MS });
    expect((await page.locator('.outcome').textContent()) ?? '').toContain('¥544.00');
    await bothLanguages(page, 'electricity', 'Electricity fee', '电费缴纳');
  });

  it('pages through the statement and draws spending by day and by merchant', async () => {
    for (let i = 0; i < 20; i++) expect((await tap(CARD, 100 + i)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    await page.getByRole('link', { name: '返回' }).click();
    await page.getByRole('link', { name: '查询流水' }).click();
    await heading(page, '查询流水');
    const lines = page.locator('.lines > li');
    await page.getByRole('button', { name: '加载更多' }).waitFor({ timeout: STEP_MS });
    expect(await lines.count()).toBe(20);
    await page.getByRole('button', { name: '加载更多' }).click();
    await page.getByText('已经到底了').waitFor({ timeout: STEP_MS });
    // 20 taps, the POS QR payment, the offline tap, the recharge, two fees (+ the opening balance, if listed).
    expect(await lines.count()).toBeGreaterThanOrEqual(25);
    await page.getByRole('figure').filter({ hasText: '按日消费' }).waitFor();
    expect((await page.getByRole('figure').filter({ hasText: '按商户消费' }).textContent()) ?? '').toContain('第一食堂 一层');
    await bothLanguages(page, 'statement', 'Statement', '查询流水', async () => {
      await page.getByRole('button', { name: 'Load more' }).click();
      await page.getByText('That is everything').waitFor({ timeout: STEP_MS });
    });
    // Only recharges.
    await page.getByLabel('类型').selectOption('recharge');
    await page.getByRole('button', { name: '查询' }).click();
    await page.getByText('已经到底了').waitFor({ timeout: STEP_MS });
    expect(await lines.count()).toBe(1);
  });

  it('shows the personal centre: card, binding, Alipay / WeChat identity state, password change', async () => {
    await page.getByRole('link', { name: '返回' }).click();
    await page.getByRole('link', { name: '个人中心' }).click();
    await heading(page, '个人中心');
    expect(await page.locator('.channel-row').allTextContents()).toEqual(['支付宝未绑定绑定', '微信未绑定绑定']);
    await bothLanguages(page, 'me', 'My account', '个人中心');
    // A WeCom sign-in has no WeChat openid: the server says so next to the password.
    await page.getByRole('button', { name: '绑定 微信' }).click();
    await page.getByLabel('卡密码').first().fill(PIN);
    await page.getByRole('button', { name: '确认绑定' }).click();
    await page
      .getByText(/小程序/)
      .first()
      .waitFor({ timeout: STEP_MS });
    await page.getByRole('button', { name: '绑定 支付宝' }).click();
    await page.getByRole('img', { name: '支付宝授权二维码' }).waitFor({ timeout: STEP_MS });
    await screenshot(page, 'zh', 'me-alipay');
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByLabel('原密码').fill(PIN);
    await page.getByLabel('新密码', { exact: true }).fill('975310');
    await page.getByLabel('确认新密码').fill('975311');
    await page.getByRole('button', { name: '修改密码' }).click();
    expect(await fieldError(page, '确认新密码')).toBe('两次输入的新密码不一致');
  });

  it('ends an expired session: the page asks to sign in again', async () => {
    await page.getByRole('link', { name: '返回' }).click();
    await heading(page, '电子校园卡');
    bench.advance(8 * 86_400_000); // past the 7-day session
    // The page finds out at its next call to the gateway: this refresh, or one of its own (the live
    // connection's), whichever comes first. When its own came first the button is gone, and the click
    // gives up after 3 s instead of waiting for a button that will not come back (Chromium 156 here).
    await Promise.race([
      page
        .getByRole('button', { name: '刷新校园码' })
        .click({ timeout: 3_000 })
        .catch(() => undefined),
      heading(page, '登录'),
    ]);
    await heading(page, '登录');
    await page.getByText('登录已失效，请重新登录。').waitFor();
    expect(
      await page.evaluate(() =>
        (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem(
          'cardswitch.phone.session',
        ),
      ),
    ).toBeNull();
    await bothLanguages(page, 'session-expired', 'Sign in', '登录');
  });

  it('signs out on logout, and unbinding ends the session on this page too', async () => {
    await signIn(page, USER);
    await heading(page, '电子校园卡');
    await page.getByRole('link', { name: '个人中心' }).click();
    await page.getByRole('button', { name: '退出登录' }).click();
    await page.getByText('您已退出登录。').waitFor({ timeout: STEP_MS });
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    await signIn(page, USER);
    await heading(page, '电子校园卡');
    await page.getByRole('link', { name: '个人中心' }).click();
    await heading(page, '个人中心');
    const unbind = page.locator('form').filter({ has: page.getByRole('button', { name: '解绑校园卡' }) });
    await unbind.getByLabel('卡密码').fill(PIN);
    await page.getByRole('button', { name: '解绑校园卡' }).click();
    await page.getByText('校园卡已解绑，所有设备已退出登录。').waitFor({ timeout: STEP_MS });
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    // Signed in again, the holder has no card: the binding form.
    await signIn(page, USER);
    await heading(page, '身份认证');
  });
});
