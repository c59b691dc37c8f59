// The holder binds their Alipay or WeChat account to their campus card (the guide, sections 二.1 and
// 三.1), so that the channel's payment codes may pay at a campus POS. The binding store is
// channel-payers.ts; this module runs the guide's flows and writes every attempt to the operator log.
//
//   Alipay (扫码授权): the holder, signed in on the e-card page, asks for the authorisation URL; Alipay
//     shows the confirmation and redirects the browser to our callback with auth_code and our `state`.
//     The callback carries no session token (it is Alipay's redirect), so `state` carries who asked:
//     session, user, card, a nonce and an expiry, HMAC-signed with a key derived from SESSION_SECRET.
//     It is single use (the nonce is claimed in the ledger before the code is exchanged) and counts
//     only while its session is live and the card is still bound to its user. The auth_code is turned
//     into the Alipay user id (alipay.system.oauth.token) and that payer is bound to the card.
//   WeChat (核身): inside the mini-program the holder is signed in with their openid (user id
//     `wechat:<openid>`); binding confirms the identity with the card password, as the e-card binding
//     does, and stores that openid as the card's WeChat payer. A WeCom sign-in has no WeChat openid.
//
// WECHATPAY_APP_ID must be the mini-program's appid: an openid belongs to one appid, and WeChat Pay
// names the payer of a payment code by the openid of the merchant's appid.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuthCodeResult } from '../channels/alipay/adapter.js';
import type { PaymentChannel } from '../channels/channel.js';
import type { SwitchContext } from '../context.js';
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError, UnavailableError } from '../errors.js';
import { claimId, releaseId } from '../ledger/money.js';
import { appendOperatorLog } from '../ledger/oplog.js';
import { requireCardPassword } from './card-password.js';
import { bindChannelPayer, PAYER_CHANNELS, PAYER_ID_PATTERN, unbindChannelPayer, type PayerChannel } from './channel-payers.js';
import { requireBoundCard } from './ecard.js';

/** Who is calling, as the gateway's session says (sessions.ts AuthenticatedSession). */
export interface HolderSession {
  readonly userId: string;
  readonly sessionId: string;
  readonly cardNo: string;
}

/** An authorisation started must be finished within this (Alipay's page, the confirmation, the redirect). */
export const AUTHORIZE_STATE_TTL_MS = 10 * 60 * 1000;
/** The claim namespace of used states (ledger idClaim): a state's nonce binds at most once. */
const STATE_CLAIM_NAMESPACE = 'alipay-oauth-state';
const STATE_VERSION = 'v1';
/** The callback's query values are bounded before anything is done with them. */
const MAX_STATE_LENGTH = 400;
const MAX_AUTH_CODE_LENGTH = 64;
const CHANNEL_ZH: Readonly<Record<PayerChannel, string>> = { alipay: '支付宝', wechat: '微信' };

/** What the Alipay adapter offers for the binding (AlipayChannel); a channel without it cannot bind. */
interface AlipayAuthorisation {
  authorizationUrl(state: string): string;
  userIdOfAuthCode(authCode: string, signal: AbortSignal): Promise<AuthCodeResult>;
}

function alipayAuthorisation(ctx: SwitchContext): AlipayAuthorisation {
  const channel: (PaymentChannel & Partial<AlipayAuthorisation>) | undefined = ctx.channels.get('alipay');
  if (channel?.authorizationUrl === undefined || channel.userIdOfAuthCode === undefined) {
    throw new FailedPreconditionError('the Alipay channel is not configured on this switch (ALIPAY_APP_ID)', {
      reason: 'CHANNEL_NOT_CONFIGURED',
      zh: '本校暂未开通支付宝付款',
    });
  }
  return channel as AlipayAuthorisation;
}

async function logAttempt(ctx: SwitchContext, action: string, userId: string, fields: Record<string, string>): Promise<void> {
  await appendOperatorLog(ctx, action, userId, fields);
}

function outcomeOf(err: unknown): string {
  const reason = (err as { reason?: unknown }).reason;
  return typeof reason === 'string' ? reason : err instanceof Error ? err.name : 'error';
}

/** Runs one bind/unbind and writes it to the operator log with its outcome (never a password or an auth_code). */
async function logged<T>(
  ctx: SwitchContext,
  action: string,
  userId: string,
  fields: () => Record<string, string>,
  work: () => Promise<T>,
): Promise<T> {
  try {
    const result = await work();
    await logAttempt(ctx, action, userId, { ...fields(), result: 'ok' });
    return result;
  } catch (err) {
    await logAttempt(ctx, action, userId, { ...fields(), result: outcomeOf(err) }).catch(() => undefined);
    throw err;
  }
}

// ---- state -------------------------------------------------------------------------------------

interface StateClaims {
  /** Session id. */
  readonly s: string;
  /** User id. */
  readonly u: string;
  /** Card number. */
  readonly c: string;
  /** Nonce: claimed once. */
  readonly n: string;
  /** Expiry, ms since the epoch. */
  readonly e: number;
}

function stateKey(ctx: SwitchContext): Buffer {
  // Derived, so a state can never pass for a session token (or the other way round).
  return createHmac('sha256', ctx.config.sessions.secret).update('alipay-oauth-state/v1').digest();
}

function stateMac(ctx: SwitchContext, payload: string): string {
  return createHmac('sha256', stateKey(ctx)).update(`${STATE_VERSION}.${payload}`).digest('base64url');
}

function signState(ctx: SwitchContext, claims: StateClaims): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${STATE_VERSION}.${payload}.${stateMac(ctx, payload)}`;
}

function stateInvalid(): PermissionDeniedError {
  return new PermissionDeniedError('the authorisation state is not one this switch issued', {
    reason: 'STATE_INVALID',
    zh: '授权链接无效，请回到E卡通页面重新发起绑定',
    field: 'state',
  });
}

/** The claims of a state this switch signed, or STATE_INVALID / STATE_EXPIRED. */
function openState(ctx: SwitchContext, state: string): StateClaims {
  const parts = state.split('.');
  if (state.length > MAX_STATE_LENGTH || parts.length !== 3 || parts[0] !== STATE_VERSION) throw stateInvalid();
  const [, payload = '', mac = ''] = parts;
  const expected = Buffer.from(stateMac(ctx, payload));
  const given = Buffer.from(mac);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw stateInvalid();
  let claims: Partial<StateClaims>;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Partial<StateClaims>;
  } catch {
    throw stateInvalid();
  }
  const { s, u, c, n, e } = claims;
  if (typeof s !== 'string' || typeof u !== 'string' || typeof c !== 'string' || typeof n !== 'string' || typeof e !== 'number') {
    throw stateInvalid();
  }
  if (ctx.now() > e) {
    throw new FailedPreconditionError('the authorisation took too long; start it again', {
      reason: 'STATE_EXPIRED',
      zh: '授权已超时，请回到E卡通页面重新发起绑定',
      field: 'state',
    });
  }
  return { s, u, c, n, e };
}

// ---- Alipay ------------------------------------------------------------------------------------

export interface AlipayAuthorizationStart {
  /** The page to open in Alipay (the phone page shows it as a QR or opens it). */
  readonly authorizeUrl: string;
  readonly expiresAtMs: number;
}

/** Starts the Alipay binding of the caller's card: the authorisation URL with a signed, single-use state. */
export async function startAlipayAuthorization(ctx: SwitchContext, session: HolderSession): Promise<AlipayAuthorizationStart> {
  const alipay = alipayAuthorisation(ctx);
  await requireBoundCard(ctx, session.userId, session.cardNo);
  const expiresAtMs = ctx.now() + AUTHORIZE_STATE_TTL_MS;
  const state = signState(ctx, {
    s: session.sessionId,
    u: session.userId,
    c: session.cardNo,
    n: randomBytes(16).toString('base64url'),
    e: expiresAtMs,
  });
  return { authorizeUrl: alipay.authorizationUrl(state), expiresAtMs };
}

export interface AlipayCallback {
  readonly authCode: string;
  readonly state: string;
}

export interface ChannelBound {
  readonly cardNo: string;
  readonly channel: PayerChannel;
}

/**
 * Finishes the Alipay binding from the authorisation redirect. `sessionLive` throws unless the state's
 * session is still live (the gateway's Sessions). A forged, expired or replayed state binds nothing.
 */
export async function completeAlipayAuthorization(
  ctx: SwitchContext,
  callback: AlipayCallback,
  sessionLive: (session: HolderSession) => Promise<void>,
  signal: AbortSignal,
): Promise<ChannelBound> {
  if (callback.state === '' || callback.state.length > MAX_STATE_LENGTH) throw stateInvalid();
  if (callback.authCode === '' || callback.authCode.length > MAX_AUTH_CODE_LENGTH) {
    throw new InvalidArgumentError('auth_code is missing or too long (the Alipay authorisation did not complete)', {
      reason: 'AUTH_CODE_INVALID',
      zh: '支付宝授权未完成，请重新发起绑定',
      field: 'auth_code',
    });
  }
  const alipay = alipayAuthorisation(ctx);
  const claims = openState(ctx, callback.state);
  const session: HolderSession = { userId: claims.u, sessionId: claims.s, cardNo: claims.c };
  let payerId = '';
  return logged(
    ctx,
    'channel-bind',
    claims.u,
    () => ({ card: claims.c, channel: 'alipay', payer: payerId }),
    async () => {
      await sessionLive(session);
      await requireBoundCard(ctx, session.userId, session.cardNo);
      payerId = await exchangeOnce(ctx, alipay, claims, callback.authCode, signal);
      await bindChannelPayer(ctx, claims.c, 'alipay', payerId, claims.u);
      return { cardNo: claims.c, channel: 'alipay' };
    },
  );
}

/** Claims the state's nonce (single use), then exchanges the code for the payer's user id. */
async function exchangeOnce(
  ctx: SwitchContext,
  alipay: AlipayAuthorisation,
  claims: StateClaims,
  authCode: string,
  signal: AbortSignal,
): Promise<string> {
  const claimKey = ctx.keys.idClaim(STATE_CLAIM_NAMESPACE, claims.n);
  const claimed = await claimId(ctx.scripts, claimKey, claims.c, Math.ceil(AUTHORIZE_STATE_TTL_MS / 1000));
  if (claimed !== 'claimed_now') {
    // Not "start again": the use before may have bound Alipay (the holder went back to this page).
    throw new FailedPreconditionError(
      'this authorisation link was already used and cannot be used again; see the Alipay state in the personal centre of the e-card page, and start the binding again only if it is still unbound',
      {
        reason: 'STATE_USED',
        zh: '该授权链接已使用过，不能再次使用。请回到E卡通个人中心查看支付宝核身状态：仍为未绑定时再重新发起绑定',
        field: 'state',
      },
    );
  }
  const result = await alipay.userIdOfAuthCode(authCode, signal);
  if (result.status === 'ok') return result.payer.payerId;
  if (result.status === 'invalid') {
    throw new FailedPreconditionError(`Alipay did not accept the authorisation code (${result.message}); start the binding again`, {
      reason: 'AUTH_CODE_INVALID',
      zh: '支付宝授权已失效，请重新发起绑定',
      field: 'auth_code',
    });
  }
  // Nobody knows whether Alipay took the code: the state may be used again (a reload of the page).
  await releaseId(ctx.scripts, claimKey, claims.c).catch(() => undefined);
  throw new UnavailableError(`Alipay did not answer the authorisation (${result.message}); try again`, {
    reason: 'CHANNEL_UNAVAILABLE',
    zh: '支付宝暂时无法确认授权，请稍后刷新重试',
  });
}

// ---- WeChat ------------------------------------------------------------------------------------

const WECHAT_USER_PREFIX = 'wechat:';

/** 核身: the card password confirms the holder; their mini-program openid becomes the card's WeChat payer. */
export async function bindWechatPayer(ctx: SwitchContext, session: HolderSession, password: string): Promise<ChannelBound> {
  if (!session.userId.startsWith(WECHAT_USER_PREFIX)) {
    throw new FailedPreconditionError('binding WeChat Pay needs the WeChat mini-program: this sign-in (WeCom) has no WeChat openid', {
      reason: 'WECHAT_MINIPROGRAM_REQUIRED',
      zh: '请在微信小程序“信息科大E卡通”中登录后完成微信核身绑定',
    });
  }
  const openid = session.userId.slice(WECHAT_USER_PREFIX.length);
  return logged(
    ctx,
    'channel-bind',
    session.userId,
    () => ({ card: session.cardNo, channel: 'wechat', payer: openid }),
    async () => {
      if (!PAYER_ID_PATTERN.test(openid))
        throw new InvalidArgumentError('this WeChat sign-in does not carry an openid the channel can name');
      await requireBoundCard(ctx, session.userId, session.cardNo);
      await requireCardPassword(ctx, session.cardNo, password);
      await bindChannelPayer(ctx, session.cardNo, 'wechat', openid, session.userId);
      return { cardNo: session.cardNo, channel: 'wechat' };
    },
  );
}

// ---- both --------------------------------------------------------------------------------------

export function checkPayerChannel(channel: string): PayerChannel {
  if (!(PAYER_CHANNELS as readonly string[]).includes(channel)) {
    throw new InvalidArgumentError(`channel must be one of ${PAYER_CHANNELS.join(', ')}`, {
      reason: 'CHANNEL_INVALID',
      zh: '支付渠道应为支付宝或微信',
      field: 'channel',
    });
  }
  return channel as PayerChannel;
}

/** Ends the card's binding of `channel` (no password: it only takes a way of paying away). */
export async function unbindPayer(
  ctx: SwitchContext,
  session: HolderSession,
  channelName: string,
): Promise<{ changed: boolean; message: string }> {
  const channel = checkPayerChannel(channelName);
  let payer = '';
  return logged(
    ctx,
    'channel-unbind',
    session.userId,
    () => ({ card: session.cardNo, channel, payer }),
    async () => {
      await requireBoundCard(ctx, session.userId, session.cardNo);
      payer = (await unbindChannelPayer(ctx, session.cardNo, channel)) ?? '';
      return { changed: payer !== '', message: payer !== '' ? `已解除${CHANNEL_ZH[channel]}绑定` : `尚未绑定${CHANNEL_ZH[channel]}` };
    },
  );
}
