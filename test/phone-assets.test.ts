// The gateway serves the phone page (switch/gateway/phone-page.ts): index.html with its CSP and the sign-in
// settings, content-hashed assets cached for a year, brotli or gzip as the client accepts, 304 for a known
// ETag, /phone -> /phone/, and a clear 503 when the page was never built.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import { phonePageRoutes, PHONE_PAGE_CSP } from '../switch/gateway/phone-page.js';
import { createLogger } from '../switch/log.js';
import { buildPhone } from '../phone/build.mjs';
import { startTestSwitch } from './helpers/switch.js';

let app: SwitchApp;
let port = 0;

beforeAll(async () => {
  await buildPhone();
  app = await startTestSwitch('phoneassets', { WECOM_CORP_ID: 'wwcampus0001', WECOM_CORP_SECRET: 'corp-secret-0123456789' });
  port = app.gateway?.port ?? 0;
});
afterAll(async () => {
  await app.stop();
});

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function get(path: string, headers: Record<string, string> = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function decoded(got: Got): string {
  const encoding = got.headers['content-encoding'];
  if (encoding === 'br') return brotliDecompressSync(got.body).toString('utf8');
  if (encoding === 'gzip') return gunzipSync(got.body).toString('utf8');
  return got.body.toString('utf8');
}

describe('the phone page on the gateway', () => {
  it('answers index.html with its CSP, no-cache and an ETag, and the WeCom sign-in settings', async () => {
    const page = await get('/phone/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(PHONE_PAGE_CSP);
    expect(PHONE_PAGE_CSP).toContain("script-src 'self'");
    expect(PHONE_PAGE_CSP).not.toContain('unsafe');
    expect(page.headers['cache-control']).toBe('no-cache');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['content-encoding']).toBeUndefined(); // nothing accepted: identity
    const html = decoded(page);
    expect(html).toContain('content="{&#34;oauthBase&#34;:&#34;https://open.weixin.qq.com&#34;,&#34;appId&#34;:&#34;wwcampus0001&#34;');
    expect(html).not.toContain('%SIGN_IN%');
    const again = await get('/phone/', { 'if-none-match': String(page.headers['etag']) });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    expect((await get('/phone')).headers['location']).toBe('/phone/');
  });

  it('/phone -> /phone/ keeps the query: the sign-in code of a WeCom redirect or a mini-program web-view is not lost', async () => {
    // A redirect_uri or web-view src written without the slash came back to the sign-in screen: the
    // 301 dropped ?code=…, and the holder had to sign in again by hand.
    const wechat = await get('/phone?provider=wechat&code=abc_DEF-123');
    expect(wechat.status).toBe(301);
    expect(wechat.headers['location']).toBe('/phone/?provider=wechat&code=abc_DEF-123');
    expect((await get('/phone?code=c1&state=s1')).headers['location']).toBe('/phone/?code=c1&state=s1');
    // Never anywhere but the page: whatever the query holds stays in the query of /phone/.
    const odd = await get('/phone?//evil.example/%0d%0aSet-Cookie:x=1');
    expect(odd.headers['location']).toBe('/phone/?%2F%2Fevil.example%2F%0D%0ASet-Cookie%3Ax=1');
    expect(odd.headers['set-cookie']).toBeUndefined();
    expect((await get('/phone?')).headers['location']).toBe('/phone/');
  });

  it('serves the hashed assets immutable, brotli or gzip as accepted, and refuses what it does not have', async () => {
    const html = decoded(await get('/phone/'));
    const js = /src="(assets\/app-[A-Z0-9]{8}\.js)"/.exec(html)?.[1];
    const css = /href="(assets\/app-[A-Z0-9]{8}\.css)"/.exec(html)?.[1];
    expect(js).toBeDefined();
    expect(css).toBeDefined();
    const plain = await get(`/phone/${js}`);
    expect(plain.status).toBe(200);
    expect(plain.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const br = await get(`/phone/${js}`, { 'accept-encoding': 'gzip, deflate, br' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers['vary']).toBe('accept-encoding');
    expect(br.body.length).toBeLessThan(plain.body.length / 2);
    expect(decoded(br)).toBe(plain.body.toString('utf8'));
    const gz = await get(`/phone/${js}`, { 'accept-encoding': 'gzip;q=1, br;q=0' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(decoded(gz)).toBe(plain.body.toString('utf8'));
    expect((await get(`/phone/${css}`)).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await get('/phone/assets/app-AAAAAAAA.js')).status).toBe(404);
    expect((await get('/phone/../package.json')).status).toBe(404);
  });

  it('answers 503 with what to do when the page was never built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'phone-'));
    try {
      const routes = phonePageRoutes({ dir: empty, identity: app.context.config.identity, schoolName: 'x', log: createLogger('silent') });
      const index = routes.find((r) => r.path === '/phone/');
      const answer = await index?.handler({} as never);
      expect(answer?.status).toBe(503);
      expect(String(answer?.body)).toContain('npm run build:phone');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
