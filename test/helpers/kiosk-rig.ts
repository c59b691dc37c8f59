// The kiosk under test: the real renderer (kiosk/dist, built by kiosk/scripts/build.ts) in Debian's
// Chromium driven by playwright-core, with window.kiosk provided through page.exposeBinding so that the
// SAME main-process handler module Electron loads (kiosk/main/handlers.ts) answers, against a real
// switch, real Redis and both channel simulators. The card reader is the handlers' cardRead (what the
// keyboard-wedge reader calls in Electron).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ACTIONS, type KioskEvent } from '../../kiosk/shared/api.js';
import { createKioskHandlers, type KioskHandlers, type SenderInfo } from '../../kiosk/main/handlers.js';
import { kioskSettings } from '../../kiosk/main/settings.js';
import { createSwitchClient, type KioskSwitch } from '../../kiosk/main/switch-client.js';
import { buildKiosk, RENDERER_INDEX } from '../../kiosk/scripts/build.js';
import { startChannelSimulators, type ChannelSimulators } from '../../switch/channels/index.js';
import { startSwitch, type SwitchApp } from '../../switch/app.js';
import { createLogger } from '../../switch/log.js';
import { KIOSK_TERMINAL } from './clients.js';
import { testConfig } from './switch.js';
import { freePort } from '../../switch/redis/local-redis.js';

export const CHROMIUM = '/usr/bin/chromium';
export const KIOSK_VIEWPORT = { width: 1080, height: 1920 };
export const SCREENSHOT_DIR = join(process.cwd(), 'var', 'screenshots', 'kiosk');
export const TRUSTED_URL = pathToFileURL(RENDERER_INDEX).href;
/** The id the rig gives "the kiosk window's webContents". */
export const KIOSK_WEB_CONTENTS_ID = 1;

/** window.kiosk as the preload builds it, over the exposed binding (the same action list). */
const BRIDGE_SCRIPT = `(() => {
  const listeners = [];
  const bridge = {};
  for (const action of ${JSON.stringify(ACTIONS)}) bridge[action] = (arg) => window.__kioskInvoke(action, arg);
  bridge.onEvent = (listener) => { listeners.push(listener); };
  Object.defineProperty(window, '__kioskEmit', { value: (event) => { for (const l of listeners) l(event); } });
  Object.defineProperty(window, 'kiosk', { value: Object.freeze(bridge) });
})();`;

export interface KioskRig {
  /** The switch (a new one after restartSwitch). */
  readonly app: SwitchApp;
  readonly sims: ChannelSimulators;
  readonly handlers: KioskHandlers;
  readonly client: KioskSwitch;
  readonly browser: Browser;
  readonly context: BrowserContext;
  page: Page;
  /** Calls the handlers as from `sender` (the tests of the sender check). */
  invokeAs(sender: SenderInfo, action: string, arg: unknown): ReturnType<KioskHandlers['invoke']>;
  /** Stops the switch; startSwitchAgain starts it again on the same ports and key space. */
  stopSwitch(): Promise<void>;
  startSwitchAgain(): Promise<void>;
  /** Opens the kiosk's page afresh (the renderer restarting). */
  open(): Promise<Page>;
  screenshot(name: string): Promise<void>;
  stop(): Promise<void>;
}

export interface RigOptions {
  readonly label: string;
  readonly env?: Record<string, string>;
  readonly idleTimeoutSec?: number;
  readonly mainIdleMs?: number;
  /** The channel adapters' per-call timeout against the simulators (startChannelSimulators' adapterTimeoutMs). */
  readonly channelTimeoutMs?: number;
  readonly switchEnv?: Record<string, string>;
  /** What main's handlers call instead of the client (the client's answers, delayed or lost on the way back). */
  readonly wrapSwitch?: (client: KioskSwitch) => KioskSwitch;
}

export async function startKioskRig(options: RigOptions): Promise<KioskRig> {
  await buildKiosk();
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const gatewayPort = await freePort();
  const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
  const sims = await startChannelSimulators({
    log,
    notifyBaseUrl: `http://127.0.0.1:${gatewayPort}`,
    latencyMs: 0,
    ...(options.channelTimeoutMs === undefined ? {} : { adapterTimeoutMs: options.channelTimeoutMs }),
  });
  const grpcPort = await freePort();
  const config = testConfig(options.label, {
    GATEWAY_PORT: String(gatewayPort),
    GRPC_PORT: String(grpcPort),
    PASSWORD_SCRYPT_N: '1024',
    ...options.switchEnv,
  });
  let app = await startSwitch(config, log, Date.now, { channels: sims.channels });
  let switchRunning = true;
  await app.terminals.register(KIOSK_TERMINAL);
  const client = createSwitchClient({
    address: `127.0.0.1:${app.grpcPort}`,
    credential: { terminalId: KIOSK_TERMINAL.id, secret: KIOSK_TERMINAL.secret },
  });
  const settings = kioskSettings(
    { KIOSK_IDLE_TIMEOUT_SEC: String(options.idleTimeoutSec ?? 600), KIOSK_DEV: '0', ...options.env },
    KIOSK_TERMINAL.location,
  );
  let page: Page | undefined;
  const logLines: string[] = [];
  const handlers = createKioskHandlers({
    switch: options.wrapSwitch?.(client) ?? client,
    settings,
    trustedUrl: TRUSTED_URL,
    trustedWebContentsId: () => KIOSK_WEB_CONTENTS_ID,
    emit: (event: KioskEvent) => {
      void page?.evaluate(`window.__kioskEmit(${JSON.stringify(event)})`).catch(() => undefined);
    },
    demoCardSerial: undefined,
    log: (line) => logLines.push(JSON.stringify(line)),
    ...(options.mainIdleMs === undefined ? {} : { mainIdleMs: options.mainIdleMs }),
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: KIOSK_VIEWPORT, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  // Every page and frame of the context gets the binding: the handlers decide who may call.
  await context.exposeBinding('__kioskInvoke', (source, action: string, arg: unknown) =>
    handlers.invoke(
      {
        webContentsId: source.page === page ? KIOSK_WEB_CONTENTS_ID : KIOSK_WEB_CONTENTS_ID + 1,
        frameUrl: source.frame.url(),
        isMainFrame: source.frame === source.page.mainFrame(),
      },
      action,
      arg,
    ),
  );
  await context.addInitScript({ content: BRIDGE_SCRIPT });
  const rig: KioskRig = {
    get app(): SwitchApp {
      return app;
    },
    sims,
    handlers,
    client,
    browser,
    context,
    get page(): Page {
      if (page === undefined) throw new Error('the kiosk page is not open');
      return page;
    },
    set page(p: Page) {
      page = p;
    },
    invokeAs: (sender, action, arg) => handlers.invoke(sender, action, arg),
    stopSwitch: async () => {
      await app.stop();
      switchRunning = false;
    },
    startSwitchAgain: async () => {
      app = await startSwitch(config, log, Date.now, { channels: sims.channels });
      switchRunning = true;
    },
    open: async () => {
      await page?.close();
      page = await context.newPage();
      page.setDefaultTimeout(10_000);
      await page.goto(TRUSTED_URL);
      await page.locator('#app[data-screen="idle"]').waitFor();
      return page;
    },
    screenshot: async (name) => {
      await rig.page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`) });
    },
    stop: async () => {
      handlers.dispose();
      client.close();
      await browser.close();
      if (switchRunning) await app.stop();
      await sims.stop();
    },
  };
  Object.defineProperty(rig, 'logLines', { value: logLines });
  return rig;
}

/** The lines the handlers logged (action and result only). */
export function handlerLog(rig: KioskRig): readonly string[] {
  return (rig as unknown as { logLines: string[] }).logLines;
}
