// The phone page's weight and its time to a usable campus QR code on a throttled connection (issue 14):
// `npx tsx loadtest/bench/phone-size.ts [--runs 5]`. Starts its own redis-server (temp dir), a switch with the
// gateway and the identity simulator, binds one card, then opens the page the way WeCom does (?code=…)
// in Debian's Chromium at a phone's viewport, throttled over the DevTools protocol:
//   network "Fast 3G" as Chrome DevTools defines it (562.5 ms latency, 1.44 Mbit/s down, 675 kbit/s up)
//   and "Slow 3G" (2,000 ms, 400 kbit/s, 400 kbit/s), CPU 4x slower.
// Measured per run: bytes on the wire (DevTools' encodedDataLength) for the page's files and for the API
// calls, and the time from navigation start to the QR code drawn (a MutationObserver in the page). Each
// condition runs cold (a new browser context: empty cache) and warm (the same context again: the hashed
// assets come from the cache, index.html is revalidated). The baseline is the same page sent without
// compression (Accept-Encoding: identity), in the same run. Medians of --runs runs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { buildPhone } from '../../phone/build.mjs';
import { startSwitch } from '../../switch/app.js';
import { loadConfig } from '../../switch/config.js';
import { IdentitySimulator } from '../../switch/identity/simulator.js';
import { createLogger } from '../../switch/log.js';
import { startLocalRedis } from '../../switch/redis/local-redis.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const CREDS = { corpId: 'wwphonesize01', corpSecret: 'corp-secret-0123456789', appId: 'wxphonesize01', appSecret: 'app-secret-0123456789' };
const NETWORKS = {
  'fast-3g': { latency: 562.5, downloadThroughput: (1_600_000 * 0.9) / 8, uploadThroughput: (750_000 * 0.9) / 8 },
  'slow-3g': { latency: 2000, downloadThroughput: (500_000 * 0.8) / 8, uploadThroughput: (500_000 * 0.8) / 8 },
} as const;
const CPU_SLOWDOWN = 4;
const PIN = '246810';

interface Sample {
  readonly firstQrMs: number;
  readonly pageBytes: number;
  readonly apiBytes: number;
  /** Of the app's script, as the server chose it (Chromium offers br only over HTTPS). */
  readonly encoding: string;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

async function openOnce(context: BrowserContext, url: string, network: keyof typeof NETWORKS, compressed: boolean): Promise<Sample> {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, ...NETWORKS[network] });
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: CPU_SLOWDOWN });
  if (!compressed) await cdp.send('Network.setExtraHTTPHeaders', { headers: { 'accept-encoding': 'identity' } });
  const urls = new Map<string, string>();
  let pageBytes = 0;
  let apiBytes = 0;
  let encoding = 'identity';
  cdp.on('Network.responseReceived', (e: { requestId: string; response: { url: string; headers: Record<string, string> } }) => {
    urls.set(e.requestId, e.response.url);
    if (e.response.url.endsWith('.js')) encoding = e.response.headers['content-encoding'] ?? 'identity';
  });
  cdp.on('Network.loadingFinished', (e: { requestId: string; encodedDataLength: number }) => {
    const path = new URL(urls.get(e.requestId) ?? 'http://x/').pathname;
    if (path.startsWith('/api/')) apiBytes += e.encodedDataLength;
    else pageBytes += e.encodedDataLength;
  });
  // Runs in the page before its own script (the DevTools protocol is not bound by the page's CSP).
  await page.addInitScript({
    content:
      'new MutationObserver((_, observer) => { if (window.__firstQrMs === undefined && document.querySelector(".qr-box svg") !== null) ' +
      '{ window.__firstQrMs = performance.now(); observer.disconnect(); } }).observe(document, { childList: true, subtree: true });',
  });
  await page.goto(url, { timeout: 120_000 });
  await page.waitForSelector('.qr-box svg', { timeout: 120_000 });
  const firstQrMs = await page.evaluate(() => (globalThis as unknown as { __firstQrMs: number }).__firstQrMs);
  await page.close();
  return { firstQrMs, pageBytes, apiBytes, encoding };
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--runs');
  const runs = at > 0 ? Number(process.argv[at + 1]) : 5;
  const { sizes } = (await buildPhone()) as { sizes: Record<string, number> };
  const dataDir = mkdtempSync(join(tmpdir(), 'phone-size-'));
  const redis = await startLocalRedis({ dataDir, port: 0, appendOnly: false, appendFsync: 'no', startTimeoutMs: 10_000 });
  const sim = new IdentitySimulator(CREDS);
  const { url: simUrl } = await sim.start();
  const log = createLogger('silent');
  const config = loadConfig({
    REDIS_URL: redis.url,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: '0',
    KEY_PREFIX: 'phonesize',
    TERMINAL_SECRET_PEPPER: 'phone-size-pepper-0123456789',
    PASSWORD_PEPPER: 'phone-size-pepper-0123456789',
    SESSION_SECRET: 'phone-size-session-secret-0123456789abcdef',
    CAMPUS_QR_SECRET: 'phone-size-campus-qr-secret-0123456789abcdef',
    WECOM_API_BASE: simUrl,
    WECOM_CORP_ID: CREDS.corpId,
    WECOM_CORP_SECRET: CREDS.corpSecret,
    LOG_LEVEL: 'silent',
  });
  const app = await startSwitch(config, log);
  let browser: Browser | undefined;
  try {
    const base = `http://127.0.0.1:${app.gateway?.port}`;
    await app.ledger.openAccount({
      cardNo: '7001',
      openingFen: 10_000,
      fields: {
        ser: 'EE007001',
        name: '王五',
        sno: 'S7001',
        ht: 'S',
        pwd: await app.context.passwords.hash(PIN, 1024),
        doct: 'R',
        docn: '11010519900307123X',
        phone: '13800138000',
        sync: '1',
      },
    });
    await app.redis.set(app.keys.personNumber('S7001'), '7001');
    const signIn = async (): Promise<string> => {
      const res = await fetch(`${base}/api/v1/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ provider: 'wecom', code: sim.issueCode('wecom', 'wangwu') }),
      });
      return ((await res.json()) as { accessToken: string }).accessToken;
    };
    const bind = await fetch(`${base}/api/v1/ecard/binding`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await signIn()}` },
      body: JSON.stringify({
        bindingType: 'student',
        personNumber: 'S7001',
        password: PIN,
        documentType: 'resident_id',
        documentNumber: '11010519900307123X',
        phone: '13800138000',
        consent: true,
      }),
    });
    if (bind.status !== 201) throw new Error(`binding answered ${bind.status}`);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
    const rows: string[] = [];
    const result: Record<string, unknown> = {
      builtBytes: sizes,
      cpuSlowdown: CPU_SLOWDOWN,
      runs,
      cpu: cpus()[0]?.model,
      cores: cpus().length,
    };
    for (const network of Object.keys(NETWORKS) as (keyof typeof NETWORKS)[]) {
      for (const compressed of [true, false]) {
        const cold: Sample[] = [];
        const warm: Sample[] = [];
        for (let i = 0; i < runs; i++) {
          const context = await browser.newContext({
            viewport: { width: 390, height: 844 },
            deviceScaleFactor: 2,
            isMobile: true,
            hasTouch: true,
          });
          // WeCom opens the page with a fresh code each time.
          cold.push(await openOnce(context, `${base}/phone/?code=${sim.issueCode('wecom', 'wangwu')}`, network, compressed));
          warm.push(await openOnce(context, `${base}/phone/?code=${sim.issueCode('wecom', 'wangwu')}`, network, compressed));
          await context.close();
        }
        for (const [cache, samples] of [
          ['cold', cold],
          ['warm', warm],
        ] as const) {
          const row = {
            network,
            encoding: compressed ? (samples.find((x) => x.encoding !== 'identity')?.encoding ?? 'cached') : 'identity',
            cache,
            firstQrMs: Math.round(median(samples.map((s) => s.firstQrMs))),
            pageBytes: median(samples.map((s) => s.pageBytes)),
            apiBytes: median(samples.map((s) => s.apiBytes)),
          };
          result[`${network}/${row.encoding}/${cache}`] = { ...row, samples: samples.map((s) => Math.round(s.firstQrMs)) };
          rows.push(
            `| ${network} | ${row.encoding} | ${cache} | ${row.pageBytes.toLocaleString('en-US')} | ${row.apiBytes.toLocaleString('en-US')} | ${row.firstQrMs.toLocaleString('en-US')} |`,
          );
        }
      }
    }
    console.log(JSON.stringify(result, null, 2));
    console.log('| network | encoding | cache | page bytes | API bytes | first QR ms (median) |\n| --- | --- | --- | --- | --- | --- |');
    console.log(rows.join('\n'));
  } finally {
    await browser?.close();
    await app.stop();
    await sim.stop();
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
