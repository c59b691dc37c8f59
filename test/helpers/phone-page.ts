// The phone page's test bench: the page built (phone/build.mjs), a real switch + gateway + Redis, the
// identity simulator and both channel simulators over loopback, a canteen POS over gRPC, and Debian's
// Chromium driven by playwright-core at a phone's viewport. The switch's clock is the real one plus an
// offset a test may move (an expired session), so the browser's and the switch's times agree otherwise.
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startChannelSimulators, type ChannelSimulators } from '../../switch/channels/index.js';
import { startSwitch, type SwitchApp } from '../../switch/app.js';
import { IdentitySimulator } from '../../switch/identity/simulator.js';
import { createLogger } from '../../switch/log.js';
import { buildPhone } from '../../phone/build.mjs';
import { passwordHash } from './clients.js';
import { openCard, POS_TERMINAL, posClient, testConfig } from './switch.js';
import { freePort } from '../../switch/redis/local-redis.js';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = join(new URL('../..', import.meta.url).pathname, 'var/screenshots/phone');
export const PIN = '246810';
export const DOC = '11010519900307123X';
export const PHONE = '13800138000';
const CREDS = {
  corpId: 'wwcampus0001',
  corpSecret: 'corp-secret-0123456789',
  appId: 'wx0123456789abcdef',
  appSecret: 'app-secret-0123456789',
};

export interface PhoneBench {
  readonly app: SwitchApp;
  readonly sim: IdentitySimulator;
  readonly sims: ChannelSimulators;
  readonly browser: Browser;
  readonly base: string;
  readonly pos: ReturnType<typeof posClient>;
  /** Moves the switch's clock (and the identity simulator's) by `ms`. */
  advance(ms: number): void;
  stop(): Promise<void>;
}

export async function startPhoneBench(label: string, env: Record<string, string> = {}): Promise<PhoneBench> {
  await buildPhone();
  let offsetMs = 0;
  const now = (): number => Date.now() + offsetMs;
  const sim = new IdentitySimulator(CREDS, { now });
  const { url } = await sim.start();
  const port = await freePort();
  const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
  const sims = await startChannelSimulators({ log, notifyBaseUrl: `http://127.0.0.1:${port}`, latencyMs: 0, now });
  const config = testConfig(label, {
    GATEWAY_PORT: String(port),
    WECOM_API_BASE: url,
    WECOM_CORP_ID: CREDS.corpId,
    WECOM_CORP_SECRET: CREDS.corpSecret,
    WECHAT_API_BASE: url,
    WECHAT_APP_ID: CREDS.appId,
    WECHAT_APP_SECRET: CREDS.appSecret,
    RECHARGE_QUERY_DELAY_MS: '60000',
    ...env,
  });
  const app = await startSwitch(config, log, now, { channels: sims.channels });
  await app.terminals.register(POS_TERMINAL);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  const pos = posClient(app);
  return {
    app,
    sim,
    sims,
    browser,
    base: `http://127.0.0.1:${app.gateway?.port}`,
    pos,
    advance(ms) {
      offsetMs += ms;
    },
    async stop() {
      await browser.close().catch(() => undefined);
      pos.close();
      await app.stop();
      await sims.stop();
      await sim.stop();
    },
  };
}

/** A card with the test password, document and phone, synced unless told otherwise; its person number is G<cardNo>. */
export async function phoneCard(app: SwitchApp, cardNo: string, openingFen: number, extra: Record<string, string> = {}): Promise<string> {
  await openCard(app, cardNo, `EE${cardNo.padStart(6, '0')}`, openingFen, {
    pwd: await passwordHash(app, PIN),
    doct: 'R',
    docn: DOC,
    phone: PHONE,
    sno: `G${cardNo}`,
    sync: '1',
    ...extra,
  });
  await app.redis.set(app.keys.personNumber(`G${cardNo}`), cardNo);
  return `G${cardNo}`;
}

/** A phone: 390 x 844 CSS pixels at 2x, touch, zh-CN. */
export async function newPhone(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    locale: 'zh-CN',
    timezoneId: 'Asia/Shanghai',
  });
  const page = await context.newPage();
  page.on('dialog', (dialog) => void dialog.accept());
  return { context, page };
}

/**
 * Opens the page the way WeCom brings the holder back from the page's own authorisation request: with the
 * code and the state the page kept (a code without it, on an account with no card, is asked for again).
 */
export async function openWithCode(page: Page, base: string, code: string): Promise<void> {
  await page.goto(`${base}/phone/`);
  await page.evaluate(() =>
    (globalThis as unknown as { sessionStorage: { setItem(k: string, v: string): void } }).sessionStorage.setItem(
      'cardswitch.phone.oauthState',
      'test-state',
    ),
  );
  await page.goto(`${base}/phone/?code=${encodeURIComponent(code)}&state=test-state`);
}

export async function screenshot(page: Page, lang: 'zh' | 'en', name: string): Promise<string> {
  const path = join(SCREENSHOT_DIR, lang, `${name}.png`);
  mkdirSync(dirname(path), { recursive: true });
  // From the top, so the sticky header sits where a person sees it, not where the last focus scrolled to.
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path, fullPage: true, animations: 'disabled' });
  return path;
}

// Evaluated through the DevTools protocol, which the page's CSP (script-src 'self') does not stop, unlike an
// injected <script> tag; so the page is tested under its real CSP.
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core's serious and critical violations on the page as it is now (id: target list). */
export async function seriousViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (
      globalThis as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } }
    ).axe;
    const result = await axe.run();
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.map((n) => n.target.join(' ')) }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.targets.join(', ')}`);
}
