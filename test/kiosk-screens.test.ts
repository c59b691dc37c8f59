// The kiosk's screens end to end: the real renderer (kiosk/dist) in Debian's Chromium at the kiosk's
// 1080 x 1920, the same main-process handlers Electron loads behind window.kiosk, a real switch with
// Redis and both payment-channel simulators. Every screen of issue 13 is walked as a person would
// (roles and labels), and a screenshot of each is written to var/screenshots/kiosk/.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeRequest, AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { passwordHash } from './helpers/clients.js';
import { handlerLog, startKioskRig, type KioskRig } from './helpers/kiosk-rig.js';
import { call, openCard, POS_TERMINAL, posClient, terminalMetadata } from './helpers/switch.js';

const PIN = '135790';
let rig: KioskRig;
let page: Page;
let pos: ReturnType<typeof posClient>;
let seq = 0;
let cardCounter = 0;

interface Holder {
  readonly cardNo: string;
  readonly serial: string;
  readonly personNumber: string;
}

/** A card with the password PIN (or, initial: the initial password from its document number). */
async function newHolder(openingFen: number, options: { initial?: boolean; name?: string; status?: string } = {}): Promise<Holder> {
  cardCounter++;
  const cardNo = String(31_000_000 + cardCounter);
  const serial = `CA${String(cardCounter).padStart(6, '0')}`;
  const personNumber = `2023${String(cardCounter).padStart(6, '0')}`;
  const password: Record<string, string> =
    options.initial === true
      ? { pwdinit: '1', docn: `11010119990101${String(cardCounter).padStart(4, '0')}` }
      : { pwd: await passwordHash(rig.app, PIN) };
  await openCard(rig.app, cardNo, serial, openingFen, {
    name: options.name ?? '王小明',
    sno: personNumber,
    ...password,
    ...(options.status === undefined ? {} : { st: options.status }),
  });
  await rig.app.redis.set(rig.app.keys.personNumber(personNumber), cardNo);
  return { cardNo, serial, personNumber };
}

async function ledgerBalance(cardNo: string): Promise<number> {
  return Number(await rig.app.redis.hget(rig.app.keys.account(cardNo), 'bal'));
}

function posTap(serial: string, amountFen = 500): Promise<AuthorizeResponse> {
  seq++;
  return call<AuthorizeRequest, AuthorizeResponse>(
    pos,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: seq, amountFen, credential: { card: { cardSerial: serial } }, pin: '' },
    terminalMetadata(POS_TERMINAL),
  );
}

const screen = (name: string) => page.locator(`#app[data-screen="${name}"]`);
const tap = async (serial: string): Promise<void> => {
  await rig.handlers.cardRead(serial);
};
const press = (name: string | RegExp) => page.getByRole('button', { name, exact: typeof name === 'string' }).click();

/** Types digits (or letters) on the on-screen keypad. */
async function keypad(value: string): Promise<void> {
  for (const ch of value) await page.getByRole('button', { name: ch, exact: true }).first().click();
}

async function enterPin(pin = PIN, submit = '确认'): Promise<void> {
  await keypad(pin);
  await press(submit);
}

beforeAll(async () => {
  rig = await startKioskRig({ label: 'kscreens' });
  await rig.app.terminals.register(POS_TERMINAL);
  pos = posClient(rig.app);
  page = await rig.open();
}, 60_000);
afterAll(async () => {
  pos?.close();
  await rig?.stop();
});

describe('the kiosk screens (zh-CN first, English switch)', () => {
  it('idle: 请刷卡, what the kiosk does, loss report without a card reachable; in both languages', async () => {
    await page.getByRole('heading', { name: '请刷卡' }).waitFor();
    await page.getByText('卡同步 · 充值 · 账单查询').waitFor();
    await page.getByRole('button', { name: /挂失 \/ 解挂/ }).waitFor();
    await rig.screenshot('01-idle-zh');
    await press('English');
    await page.getByRole('heading', { name: 'Tap your card' }).waitFor();
    expect(await page.evaluate('document.documentElement.lang')).toBe('en');
    await rig.screenshot('02-idle-en');
    await press('中文');
    await page.getByRole('heading', { name: '请刷卡' }).waitFor();
  });

  it('card home: masked name, number, balance, small wallet, status, sync state, the initial-password reminder; both languages', async () => {
    const h = await newHolder(12_345, { initial: true, name: '王小明' });
    await tap(h.serial);
    await screen('home').waitFor();
    const text = await page.locator('main').innerText();
    expect(text).toContain(h.cardNo);
    expect(text).toContain('123.45 元');
    expect(text).toContain('0.00 元');
    expect(text).toContain('正常');
    expect(text).toContain('已同步');
    expect(text).not.toContain('王小明');
    expect(text).toMatch(/王\*|\*小明|\*\*明/);
    await page.getByText('您仍在使用初始密码').waitFor();
    await page.getByRole('timer').waitFor();
    await rig.screenshot('03-home-zh');
    await press('English');
    await page.getByRole('heading', { name: 'My campus card' }).waitFor();
    await page.getByText('You still use the initial password').waitFor();
    await rig.screenshot('04-home-en');
    await press('中文');
    // Sync: the tap is the sync; the screen says so clearly.
    await press('卡同步');
    await screen('syncDone').waitFor();
    await page.getByRole('heading', { name: '卡同步完成' }).waitFor();
    await rig.screenshot('05-sync-done');
    await press('返回首页');
    await screen('home').waitFor();
  });

  it('recharge through the WeChat simulator: QR, waiting, success; the balance on screen equals the ledger', async () => {
    const h = await newHolder(1_000);
    await tap(h.serial);
    await screen('home').waitFor();
    await press('充值');
    await screen('rechargeAmount').waitFor();
    await rig.screenshot('06-recharge-amount');
    await press('50.00 元');
    await screen('rechargeChannel').waitFor();
    // A double tap on the channel makes one order.
    await page.getByRole('button', { name: '微信支付' }).dblclick();
    await screen('rechargeWait').waitFor();
    await page.getByRole('img', { name: /请用手机微信支付扫描二维码支付/ }).waitFor();
    const orderId = (await page.locator('.order-id').innerText()).trim();
    expect(orderId).not.toBe('');
    expect(handlerLog(rig).filter((l) => l.includes('"startRecharge"'))).toHaveLength(1);
    await rig.screenshot('07-recharge-qr');
    const deliveries = await rig.sims.wechat.payOrder(orderId);
    expect(deliveries.map((d) => d.status)).toEqual([200]);
    await screen('rechargeDone').waitFor({ timeout: 15_000 });
    const shown = await page.getByTestId('new-balance').innerText();
    const ledger = await ledgerBalance(h.cardNo);
    expect(ledger).toBe(6_000);
    expect(shown).toBe('60.00 元');
    await rig.screenshot('08-recharge-done');
    await press('返回首页');
    expect(await page.locator('main').innerText()).toContain('60.00 元');
  });

  it('recharge: a custom amount over the channel maximum is refused next to the field; Alipay QR can be taken down', async () => {
    await tap((await newHolder(0)).serial);
    await screen('home').waitFor();
    await press('充值');
    await press('其他金额');
    await screen('entry').waitFor();
    await keypad('1000');
    await press('确认');
    await expect(page.getByRole('alert').innerText()).resolves.toContain('金额不能超过 999.00 元');
    await rig.screenshot('09-recharge-over-limit');
    await press('删除');
    await press('确认');
    await screen('rechargeChannel').waitFor();
    expect(await page.locator('main').innerText()).toContain('100.00 元');
    await press('支付宝');
    await screen('rechargeWait').waitFor();
    // 取消 closes the order at Alipay (alipay.trade.close): nothing was charged, and the kiosk says so.
    await press('取消');
    await screen('rechargeCancelled').waitFor();
    expect(await page.locator('main').innerText()).toContain('未扣款');
    await press('返回首页');
    await screen('home').waitFor();
  });

  it('recharge: over the day maximum, and the channel not answering, have their own screens', async () => {
    const h = await newHolder(0);
    await tap(h.serial);
    await screen('home').waitFor();
    // 300.00 yuan a day by default: three orders of 99.90 and one of 50 are too much.
    for (let i = 0; i < 3; i++) {
      const r = await rig.client.recharge({
        cardholder: { card: { cardSerial: h.serial } },
        channel: 1,
        requestId: `pre${i}${h.cardNo}`,
        amountFen: 99_900,
      });
      expect(r.orderId).not.toBe('');
    }
    await press('充值');
    await press('50.00 元');
    await press('微信支付');
    await screen('error').waitFor();
    await expect(page.getByRole('alert').innerText()).resolves.toContain('超出当日充值限额，今日还可充值 3.00 元');
    await rig.screenshot('10-error-over-day-limit');
    await press('返回首页');
    const h2 = await newHolder(0);
    await tap(h2.serial);
    await screen('home').waitFor();
    rig.sims.wechat.failNext('v3', 'http500');
    await press('充值');
    await press('20.00 元');
    await press('微信支付');
    await screen('error').waitFor();
    await expect(page.getByRole('alert').innerText()).resolves.toContain('支付渠道暂时没有响应');
    await rig.screenshot('11-error-channel');
    // Retry reuses the same request id: the switch answers the same order.
    await press('重试');
    await screen('rechargeWait').waitFor();
    await press('取消');
  });

  it('statement: password, then a paged list by date range', async () => {
    const h = await newHolder(100_000);
    for (let i = 0; i < 10; i++) expect((await posTap(h.serial, 100 + i)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    await tap(h.serial);
    await screen('home').waitFor();
    await press('账单');
    await screen('entry').waitFor();
    await page.getByText('校园卡密码（6位数字）').first().waitFor();
    await rig.screenshot('12-statement-password');
    await enterPin();
    await screen('statement').waitFor();
    const rows = page.locator('table.statement tbody tr');
    expect(await rows.count()).toBe(8);
    expect(await rows.first().innerText()).toContain('-1.09');
    await rig.screenshot('13-statement');
    await press('下一页');
    await page.getByText('第 2 页').waitFor();
    expect(await rows.count()).toBe(3); // 10 payments and the opening balance
    await press('上一页');
    await page.getByText('第 1 页').waitFor();
    await press('近7天');
    await screen('statement').waitFor();
    expect(await rows.count()).toBe(8);
    await press('返回首页');
  });

  it('network and electricity fees: the card pays, the provider answers, the balance on screen equals the ledger', async () => {
    const h = await newHolder(20_000);
    await tap(h.serial);
    await screen('home').waitFor();
    await press('网费');
    await keypad('zhang');
    await rig.screenshot('14-network-account');
    await press('下一步');
    await keypad('30');
    await press('下一步');
    await enterPin();
    await screen('feeDone').waitFor();
    expect(await ledgerBalance(h.cardNo)).toBe(17_000);
    expect(await page.locator('main').innerText()).toContain('170.00 元');
    await rig.screenshot('15-network-done');
    await press('返回首页');
    await press('电费');
    await screen('buildings').waitFor();
    await rig.screenshot('16-electricity-building');
    await press('学4');
    await keypad('402');
    await press('下一步');
    await keypad('50');
    await press('下一步');
    await page.getByText('楼栋：学4').waitFor();
    await rig.screenshot('17-electricity-password');
    await enterPin();
    await screen('feeDone').waitFor();
    expect(await ledgerBalance(h.cardNo)).toBe(12_000);
    expect(await page.locator('main').innerText()).toContain('120.00 元');
    await press('返回首页');
  });

  it('password change: a wrong old password says the attempts left next to the field; then it changes', async () => {
    const h = await newHolder(100);
    await tap(h.serial);
    await screen('home').waitFor();
    await press('修改密码');
    await keypad('000000');
    await press('下一步');
    await keypad('246802');
    await press('下一步');
    await keypad('246802');
    await press('确认');
    await expect(page.getByRole('alert').innerText()).resolves.toContain('密码错误，今日还可尝试 4 次');
    await rig.screenshot('18-password-wrong');
    await keypad(PIN);
    await press('下一步');
    await keypad('246802');
    await press('下一步');
    await keypad('246801');
    await press('确认');
    await expect(page.getByRole('alert').innerText()).resolves.toContain('两次输入的新密码不一致');
    await keypad('246802');
    await press('确认');
    await screen('passwordDone').waitFor();
    await rig.screenshot('19-password-done');
    await press('返回首页');
  });

  it('loss with the card: confirmation, then the next POS tap declines; cancelling the loss makes it approve again', async () => {
    const h = await newHolder(5_000);
    expect((await posTap(h.serial)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    await tap(h.serial);
    await screen('home').waitFor();
    await press('挂失');
    await screen('lossConfirm').waitFor();
    await rig.screenshot('20-loss-confirm');
    await press('确认挂失');
    await screen('lossDone').waitFor();
    await rig.screenshot('21-loss-done');
    const declined = await posTap(h.serial);
    expect([declined.outcome, declined.declineReason]).toEqual([Outcome.OUTCOME_DECLINED, DeclineReason.DECLINE_REASON_CARD_LOST]);
    await press('返回首页');
    await page.getByText('此卡已挂失，不能消费').waitFor();
    await rig.screenshot('22-home-lost');
    await press('解挂');
    await enterPin();
    await screen('cancelLossDone').waitFor();
    await rig.screenshot('23-cancel-loss-done');
    expect((await posTap(h.serial)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    await press('返回首页');
    await press('退出');
    await screen('idle').waitFor();
  });

  it('loss without the card, from idle: number + password + confirmation; cancel the same way', async () => {
    const h = await newHolder(5_000);
    await press(/挂失 \/ 解挂/);
    await screen('lossNoCard').waitFor();
    await rig.screenshot('24-loss-no-card');
    await press('挂失');
    await keypad(h.personNumber);
    await rig.screenshot('25-loss-person-number');
    await press('下一步');
    await enterPin(PIN, '确认');
    await screen('lossConfirm').waitFor();
    await press('确认挂失');
    await screen('lossDone').waitFor();
    expect((await posTap(h.serial)).declineReason).toBe(DeclineReason.DECLINE_REASON_CARD_LOST);
    await press('完成');
    await screen('idle').waitFor();
    // An unknown number is said next to the field.
    await press(/挂失 \/ 解挂/);
    await press('解挂');
    await keypad('99999999');
    await press('下一步');
    await enterPin();
    await expect(page.getByRole('alert').innerText()).resolves.toContain('未找到该学号/工号对应的校园卡');
    await press('返回');
    await screen('lossNoCard').waitFor();
    await press('解挂');
    await keypad(h.personNumber);
    await press('下一步');
    await enterPin();
    await screen('cancelLossDone').waitFor();
    expect((await posTap(h.serial)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    await press('完成');
    await screen('idle').waitFor();
  });

  it('failures a person understands: unknown card, replaced card, frozen card, password locked', async () => {
    await tap('0BADCAFE99');
    await screen('error').waitFor();
    await expect(page.getByRole('alert').innerText()).resolves.toContain('无法识别此卡');
    await rig.screenshot('26-error-unknown-card');
    await press('返回刷卡页');
    // A card replaced by a new one: its old serial still names the account, which now has another serial.
    const replaced = await newHolder(100);
    await rig.app.redis.hset(rig.app.keys.account(replaced.cardNo), 'ser', 'FEEDF00D77');
    await tap(replaced.serial);
    await screen('error').waitFor();
    await expect(page.getByRole('alert').innerText()).resolves.toContain('此卡已补办新卡而作废，请使用新卡');
    await rig.screenshot('30-error-card-replaced');
    await press('返回刷卡页');
    const frozen = await newHolder(100, { status: 'F' });
    await tap(frozen.serial);
    await screen('home').waitFor();
    expect(await page.locator('main').innerText()).toContain('已冻结');
    await rig.screenshot('27-home-frozen');
    const h = await newHolder(100);
    await tap(h.serial);
    await screen('home').waitFor();
    await press('账单');
    for (let i = 0; i < 5; i++) {
      await enterPin('000000');
      await page.getByRole('alert').waitFor();
      if (i < 4) await expect(page.getByRole('alert').innerText()).resolves.toContain(`还可尝试 ${4 - i} 次`);
    }
    await screen('error').waitFor();
    await expect(page.getByRole('alert').innerText()).resolves.toContain('今日已锁定');
    await rig.screenshot('28-error-password-locked');
    await press('返回首页');
    await press('退出');
  });

  it('axe-core finds no WCAG 2 A / AA violation (contrast, names, roles) on idle, home, a keypad and the statement', async () => {
    const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    const violations = async (where: string): Promise<string[]> => {
      // Through the DevTools protocol, like Playwright's own calls: the page's CSP allows no inline script.
      await page.evaluate(axeSource);
      const result = await page.evaluate<{ violations: { id: string; nodes: unknown[] }[] }>(
        "axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa'] })",
      );
      return result.violations.map((v) => `${where}: ${v.id} (${v.nodes.length})`);
    };
    const found: string[] = [];
    await screen('idle').waitFor();
    found.push(...(await violations('idle')));
    const h = await newHolder(4_000);
    for (let i = 0; i < 3; i++) expect((await posTap(h.serial, 100)).outcome).toBe(Outcome.OUTCOME_APPROVED);
    await tap(h.serial);
    await screen('home').waitFor();
    found.push(...(await violations('home')));
    await press('账单');
    await keypad('01');
    found.push(...(await violations('keypad')));
    await press('清除');
    await enterPin();
    await screen('statement').waitFor();
    found.push(...(await violations('statement')));
    await press('English');
    found.push(...(await violations('statement (English)')));
    await press('中文');
    await press('退出');
    expect(found).toEqual([]);
  });

  afterAll(async () => {
    const report = await auditLedger(rig.app.redis, rig.app.keys);
    expect(report.problems).toEqual([]);
  });
});
