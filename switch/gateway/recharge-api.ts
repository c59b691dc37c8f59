// The holder's recharge orders (/api/v1/ecard/recharge-orders): make one (what the phone pays with: a
// QR, or WeChat JSAPI parameters when the holder signed in through WeChat) and read its state. Thin:
// the rules are in domain/recharge-orders.ts. The credit itself arrives through the channel's
// notification (channel-notify.ts) or the switch's own query, and is announced on the live-events
// WebSocket by recharge.lua like every card event. Documented in openapi.ts and docs/gateway-api.md.
import type { SwitchContext } from '../context.js';
import { InvalidArgumentError, PermissionDeniedError } from '../errors.js';
import { requireBoundCard } from '../domain/ecard.js';
import { newRechargeOrder, rechargeOrderState } from '../domain/recharge-orders.js';
import { bearerToken, type AuthenticatedSession, type Sessions } from '../domain/sessions.js';
import type { GatewayRequest, GatewayResponse, Route } from './http.js';

export interface RechargeApiDeps {
  readonly ctx: SwitchContext;
  readonly sessions: Sessions;
}

const WECHAT_USER_PREFIX = 'wechat:';

async function boundCaller(deps: RechargeApiDeps, req: GatewayRequest): Promise<AuthenticatedSession> {
  const session = await deps.sessions.authenticate(bearerToken(req.headers['authorization']));
  if (session.cardNo === '') {
    throw new PermissionDeniedError('no card is bound to this user; bind one first (POST /api/v1/ecard/binding)', {
      reason: 'NOT_BOUND',
      zh: '尚未绑定校园卡，请先完成绑定',
    });
  }
  await requireBoundCard(deps.ctx, session.userId, session.cardNo);
  return session;
}

function field<T>(body: Record<string, unknown>, name: string, isType: (v: unknown) => v is T, zh: string, what: string): T {
  const value = body[name];
  if (!isType(value)) throw new InvalidArgumentError(`${name} is required (${what})`, { reason: 'INVALID_FIELD', zh, field: name });
  return value;
}
const isString = (v: unknown): v is string => typeof v === 'string';
const isInteger = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

async function createOrder(deps: RechargeApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await boundCaller(deps, req);
  const body = req.body;
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidArgumentError('the request body must be a JSON object', { reason: 'INVALID_BODY', zh: '请求内容应为JSON对象' });
  }
  const fields = body as Record<string, unknown>;
  const channel = field(fields, 'channel', isString, '请选择充值方式（支付宝或微信）', 'alipay or wechat');
  const amountFen = field(fields, 'amountFen', isInteger, '请输入充值金额', 'a whole number of fen');
  const requestId = field(fields, 'requestId', isString, '请求编号无效，请刷新页面后重试', 'a string');
  // Signed in through WeChat and paying with WeChat: pay inside WeChat (JSAPI) as that openid.
  const payerId =
    channel === 'wechat' && session.userId.startsWith(WECHAT_USER_PREFIX) ? session.userId.slice(WECHAT_USER_PREFIX.length) : undefined;
  const order = await newRechargeOrder(deps.ctx, {
    cardNo: session.cardNo,
    channel,
    amountFen,
    requestId,
    source: 'holder',
    userId: session.userId,
    ...(payerId === undefined ? {} : { payerId }),
  });
  return { status: 201, body: order };
}

async function orderState(deps: RechargeApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await boundCaller(deps, req);
  return { status: 200, body: await rechargeOrderState(deps.ctx, session.cardNo, req.params['id'] ?? '') };
}

export function rechargeRoutes(deps: RechargeApiDeps): Route[] {
  return [
    { method: 'POST', path: '/api/v1/ecard/recharge-orders', handler: (req) => createOrder(deps, req) },
    { method: 'GET', path: '/api/v1/ecard/recharge-orders/:id', handler: (req) => orderState(deps, req) },
  ];
}
