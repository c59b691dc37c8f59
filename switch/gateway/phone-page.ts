// The e-card page for phones (phone/, issue 14) as static files under /phone/: read once at start from the
// folder phone/build.mjs wrote (phone/dist next to the sources; dist/phone/dist in a `npm run build`), each
// file compressed once (brotli and gzip, kept only where it saves at least a tenth) and answered from memory.
// The files are routes of the gateway like any other (exact paths: the build's file names carry their
// content hash), so the uWS rules of http.ts hold for them too. index.html is never cached without asking
// (ETag, 304) and carries a strict Content-Security-Policy; the hashed assets are immutable for a year.
// The page needs one setting of the switch, where WeCom's web authorisation lives, put into index.html here.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlibConstants, gzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import type { IdentityConfig } from '../config.js';
import type { GatewayRequest, GatewayResponse, Route } from './http.js';

export const PHONE_PAGE_PATH = '/phone/';
/** Where phone/build.mjs writes the page, relative to this module (the same from switch/ and dist/switch/). */
export const PHONE_PAGE_DIR = fileURLToPath(new URL('../../phone/dist/', import.meta.url));
/** The placeholder in phone/index.html that is replaced by the sign-in settings. */
const SIGN_IN_PLACEHOLDER = '%SIGN_IN%';
const WECOM_API_DEFAULT = 'https://qyapi.weixin.qq.com';
const WECOM_OAUTH = 'https://open.weixin.qq.com';
/** Files of the page: a few; anything bigger than this is a mistake of the build, not something to serve. */
const MAX_FILES = 64;
const MAX_FILE_BYTES = 2 * 1024 * 1024;

// connect-src 'self' covers the page's own origin over ws:/wss: (CSP 3); nothing inline, nothing foreign.
export const PHONE_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

interface Variant {
  readonly body: Uint8Array;
  readonly encoding: 'br' | 'gzip' | 'identity';
}

interface Asset {
  readonly path: string;
  readonly contentType: string;
  readonly etag: string;
  readonly cacheControl: string;
  /** Smallest first; the last is always the identity encoding. */
  readonly variants: readonly Variant[];
  readonly extraHeaders: Readonly<Record<string, string>>;
}

export interface PhonePageOptions {
  readonly dir?: string;
  readonly identity: IdentityConfig;
  readonly schoolName: string;
  readonly log: Logger;
}

/** What the page needs to send a holder through WeCom's web authorisation (the simulator's in development). */
export function signInSettings(identity: IdentityConfig, schoolName: string): Record<string, string> {
  const apiBase = identity.wecom.apiBase.replace(/\/+$/, '');
  return {
    oauthBase: apiBase === WECOM_API_DEFAULT ? WECOM_OAUTH : apiBase,
    appId: identity.wecom.corpId,
    school: schoolName,
  };
}

function escapeAttribute(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function compressed(raw: Uint8Array): Variant[] {
  const variants: Variant[] = [];
  const br = brotliCompressSync(raw, {
    params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: raw.byteLength },
  });
  const gz = gzipSync(raw, { level: 9 });
  // Small files (or already compressed ones) are sent as they are: the saving would not pay for the decoding.
  if (br.byteLength <= raw.byteLength * 0.9) variants.push({ body: br, encoding: 'br' });
  if (gz.byteLength <= raw.byteLength * 0.9) variants.push({ body: gz, encoding: 'gzip' });
  variants.push({ body: raw, encoding: 'identity' });
  return variants;
}

function filesOf(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesOf(path) : [path];
  });
}

function loadAssets(dir: string, settings: Record<string, string>): Asset[] {
  const files = filesOf(dir).filter((file) => CONTENT_TYPES[extensionOf(file)] !== undefined);
  if (files.length > MAX_FILES) throw new Error(`${dir} holds ${files.length} files; the phone page has at most ${MAX_FILES}`);
  return files.map((file): Asset => {
    let raw: Uint8Array = readFileSync(file);
    if (raw.byteLength > MAX_FILE_BYTES) throw new Error(`${file} is larger than ${MAX_FILE_BYTES} bytes`);
    const name = relative(dir, file).split(sep).join('/');
    const isIndex = name === 'index.html';
    if (isIndex) {
      const text = Buffer.from(raw).toString('utf8');
      if (!text.includes(SIGN_IN_PLACEHOLDER)) throw new Error(`${file} has no ${SIGN_IN_PLACEHOLDER} placeholder`);
      raw = Buffer.from(text.replace(SIGN_IN_PLACEHOLDER, escapeAttribute(JSON.stringify(settings))), 'utf8');
    }
    return {
      path: isIndex ? PHONE_PAGE_PATH : `${PHONE_PAGE_PATH}${name}`,
      contentType: CONTENT_TYPES[extensionOf(file)] ?? 'application/octet-stream',
      etag: `"${createHash('sha256').update(raw).digest('base64url').slice(0, 22)}"`,
      // Hashed names never change content; index.html (and anything unhashed) is revalidated every time.
      cacheControl: /-[A-Z0-9]{8}\.[a-z]+$/.test(name) ? 'public, max-age=31536000, immutable' : 'no-cache',
      variants: compressed(raw),
      extraHeaders: isIndex ? { 'content-security-policy': PHONE_PAGE_CSP, 'x-frame-options': 'DENY' } : {},
    };
  });
}

function extensionOf(file: string): string {
  const dot = file.lastIndexOf('.');
  return dot < 0 ? '' : file.slice(dot);
}

/** The encodings the client accepts (q=0 refuses one); a missing header accepts only identity. */
function accepted(header: string | undefined): Set<string> {
  const accepts = new Set<string>();
  for (const part of (header ?? '').toLowerCase().split(',')) {
    const [token, ...params] = part.trim().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    if (token !== undefined && token !== '' && (q === undefined || Number(q.slice(2)) > 0)) accepts.add(token);
  }
  return accepts;
}

function answer(asset: Asset, req: GatewayRequest): GatewayResponse {
  const headers: Record<string, string> = {
    'cache-control': asset.cacheControl,
    etag: asset.etag,
    vary: 'accept-encoding',
    ...asset.extraHeaders,
  };
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifNoneMatch !== undefined && ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === asset.etag))
    return { status: 304, body: '', headers, contentType: asset.contentType };
  const accepts = accepted(req.headers['accept-encoding']);
  const variant = asset.variants.find((v) => v.encoding === 'identity' || accepts.has(v.encoding)) ?? asset.variants.at(-1);
  if (variant !== undefined && variant.encoding !== 'identity') headers['content-encoding'] = variant.encoding;
  return { status: 200, body: variant?.body ?? '', headers, contentType: asset.contentType };
}

/**
 * GET routes for the page's files, and /phone -> /phone/. The routes are `raw` only so that the gateway
 * copies Accept-Encoding and If-None-Match for them (they take no body: any byte of one is refused, 413).
 */
export function phonePageRoutes(options: PhonePageOptions): Route[] {
  const dir = options.dir ?? PHONE_PAGE_DIR;
  const raw = { headers: ['accept-encoding', 'if-none-match'], maxBodyBytes: 0 };
  const redirect: Route = {
    method: 'GET',
    path: '/phone',
    // The query goes along: a WeCom redirect_uri or a mini-program web-view src without the slash brings the
    // sign-in code in it. Re-encoded by URLSearchParams (no CR / LF), and always a path of the page itself.
    handler: (req) => {
      const query = req.query.toString();
      return Promise.resolve({
        status: 301,
        body: '',
        headers: { location: query === '' ? PHONE_PAGE_PATH : `${PHONE_PAGE_PATH}?${query}` },
      });
    },
  };
  if (!existsSync(join(dir, 'index.html'))) {
    options.log.warn({ dir }, 'the phone page is not built (npm run build:phone): /phone/ answers 503');
    const notBuilt: Route = {
      method: 'GET',
      path: PHONE_PAGE_PATH,
      handler: () =>
        Promise.resolve({
          status: 503,
          body: '电子校园卡页面尚未构建 / the phone page is not built: run npm run build:phone\n',
          headers: { 'retry-after': '60' },
        }),
    };
    return [redirect, notBuilt];
  }
  const assets = loadAssets(dir, signInSettings(options.identity, options.schoolName));
  options.log.info(
    { dir, files: assets.length, bytes: assets.reduce((sum, a) => sum + (a.variants.at(-1)?.body.byteLength ?? 0), 0) },
    'phone page loaded',
  );
  return [
    redirect,
    ...assets.map((asset): Route => ({ method: 'GET', path: asset.path, raw, handler: (req) => Promise.resolve(answer(asset, req)) })),
  ];
}
