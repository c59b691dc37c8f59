// The holder binds Alipay / WeChat to the card (the guide's 个人信息绑定): thin handlers over
// domain/channel-binding.ts. The state shown on the page (绑定 / 未绑定) is the card summary's `channels`
// (GET /api/v1/ecard). Documented in openapi.ts and docs/gateway-api.md.
//
//   POST   /api/v1/ecard/channels/alipay/authorize      -> { authorizeUrl, expiresAtMs }
//   GET    /api/v1/channels/alipay/oauth-callback       Alipay's redirect (?auth_code=&state=): binds, answers a page
//   POST   /api/v1/ecard/channels/wechat/bind           { password } (核身, inside the WeChat mini-program)
//   DELETE /api/v1/ecard/channels/:channel              unbinds alipay or wechat
import type { SwitchContext } from '../context.js';
import { bindWechatPayer, completeAlipayAuthorization, startAlipayAuthorization, unbindPayer } from '../domain/channel-binding.js';
import { ecardSummary } from '../domain/ecard.js';
import { bearerToken, type AuthenticatedSession, type Sessions } from '../domain/sessions.js';
import { InvalidArgumentError, PermissionDeniedError } from '../errors.js';
import { httpErrorOf } from './errors.js';
import type { GatewayRequest, GatewayResponse, Route } from './http.js';

export interface ChannelBindingDeps {
  readonly ctx: SwitchContext;
  readonly sessions: Sessions;
}

/** The code exchange with Alipay is one call; the adapter's own ALIPAY_TIMEOUT_MS bounds it too. */
const CALLBACK_TIMEOUT_MS = 15_000;
const NOT_BOUND = { reason: 'NOT_BOUND', zh: '尚未绑定校园卡，请先完成绑定' };

async function boundCaller(deps: ChannelBindingDeps, req: GatewayRequest): Promise<AuthenticatedSession> {
  const session = await deps.sessions.authenticate(bearerToken(req.headers['authorization']));
  if (session.cardNo === '')
    throw new PermissionDeniedError('no card is bound to this user; bind one first (POST /api/v1/ecard/binding)', NOT_BOUND);
  return session;
}

function passwordOf(req: GatewayRequest): string {
  const body = req.body;
  const password =
    typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>)['password'] : undefined;
  if (typeof password !== 'string') {
    throw new InvalidArgumentError('password is required (a string)', {
      reason: 'INVALID_FIELD',
      zh: '请输入6位卡密码',
      field: 'password',
    });
  }
  return password;
}

async function authorizeAlipay(deps: ChannelBindingDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await boundCaller(deps, req);
  return { status: 200, body: await startAlipayAuthorization(deps.ctx, session) };
}

const CALLBACK_PAGE_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/** Like every HTML answer of the gateway: never inside another site's frame (X-Frame-Options for old web views). */
const CALLBACK_PAGE_HEADERS = { 'content-security-policy': CALLBACK_PAGE_CSP, 'x-frame-options': 'DENY' };

/** Text for an HTML page: every character markup gives meaning to is escaped. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The page a refused callback lands the holder's browser on: why, zh-CN first, then English. A used state
 * is not a failed binding: its first use may have bound Alipay (the holder went back, or the browser
 * loaded the address again), so that page says the link is used and where to see the state, not
 * "not bound".
 */
function refusedPage(code: string, zh: string, en: string): string {
  const used = code === 'STATE_USED';
  const title = used ? '支付宝授权链接已使用' : '支付宝绑定未完成';
  return [
    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">',
    `<meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title></head>`,
    `<body><main><h1>${title}</h1><p>${escapeHtml(zh)}</p>`,
    `<p lang="en">${used ? 'Alipay: ' : 'Alipay was not bound: '}${escapeHtml(en)}</p>`,
    `<p><small>${escapeHtml(code)}</small></p></main></body></html>`,
  ].join('');
}

/** The page the holder's browser lands on after Alipay: plain text a person reads, zh-CN first. */
function boundPage(): string {
  return [
    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1"><title>支付宝绑定成功</title></head>',
    '<body><main><h1>支付宝绑定成功</h1><p>现在可以在校内 POS 机上使用支付宝付款码消费。请返回 E卡通 个人中心查看核身状态。</p>',
    '<p lang="en">Alipay is now bound to your campus card: you can pay with your Alipay payment code at campus POS.</p></main></body></html>',
  ].join('');
}

/**
 * Alipay's redirect lands the holder's browser here: a refusal (a replayed or expired state, a code
 * Alipay did not accept ...) is a page a person reads, with the refusal's status, for a browser (Accept
 * names text/html); other callers keep the JSON error format.
 */
async function alipayCallback(deps: ChannelBindingDeps, req: GatewayRequest): Promise<GatewayResponse> {
  try {
    return await completeAlipayCallback(deps, req);
  } catch (err) {
    const mapped = httpErrorOf(err);
    if (mapped === undefined || !(req.headers['accept'] ?? '').includes('text/html')) throw err;
    if (mapped.serious) deps.ctx.log.error({ err }, 'alipay authorisation callback failed');
    else if (mapped.ledgerUnavailable) deps.ctx.log.warn({ err }, 'alipay authorisation callback failed: the ledger did not answer (503)');
    const { code, message, messageEn } = mapped.body.error;
    return {
      status: mapped.status,
      body: refusedPage(code, message, messageEn),
      contentType: 'text/html; charset=utf-8',
      headers: { ...mapped.headers, ...CALLBACK_PAGE_HEADERS },
    };
  }
}

async function completeAlipayCallback(deps: ChannelBindingDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const signal = AbortSignal.timeout(CALLBACK_TIMEOUT_MS);
  await completeAlipayAuthorization(
    deps.ctx,
    { authCode: req.query.get('auth_code') ?? '', state: req.query.get('state') ?? '' },
    async (session) => {
      // Live session of this user (a logout or an unbinding of the e-card ends the authorisation too).
      await deps.sessions.reissue(session, session.cardNo);
    },
    signal,
  );
  return {
    status: 200,
    body: boundPage(),
    contentType: 'text/html; charset=utf-8',
    headers: CALLBACK_PAGE_HEADERS,
  };
}

async function bindWechat(deps: ChannelBindingDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await boundCaller(deps, req);
  await bindWechatPayer(deps.ctx, session, passwordOf(req));
  return {
    status: 200,
    body: { bound: true, message: '微信核身绑定成功', card: await ecardSummary(deps.ctx, session.userId, session.cardNo) },
  };
}

async function unbind(deps: ChannelBindingDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await boundCaller(deps, req);
  const result = await unbindPayer(deps.ctx, session, req.params['channel'] ?? '');
  return { status: 200, body: { unbound: true, ...result, card: await ecardSummary(deps.ctx, session.userId, session.cardNo) } };
}

/** The binding routes of the holder API. */
export function channelBindingRoutes(deps: ChannelBindingDeps): Route[] {
  const h = (fn: (d: ChannelBindingDeps, req: GatewayRequest) => Promise<GatewayResponse>) => (req: GatewayRequest) => fn(deps, req);
  return [
    { method: 'POST', path: '/api/v1/ecard/channels/alipay/authorize', handler: h(authorizeAlipay) },
    { method: 'GET', path: '/api/v1/channels/alipay/oauth-callback', handler: h(alipayCallback), noHead: true },
    { method: 'POST', path: '/api/v1/ecard/channels/wechat/bind', handler: h(bindWechat) },
    { method: 'DELETE', path: '/api/v1/ecard/channels/:channel', handler: h(unbind) },
  ];
}
