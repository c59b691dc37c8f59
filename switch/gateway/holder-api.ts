// The cardholder's API for the e-card page (/api/v1/...): thin handlers that check the JSON, find who
// is calling, call the domain (switch/domain/ecard.ts, sessions.ts, card-status.ts, card-password.ts,
// reports.ts) and shape its answer. No business rule lives here. Documented in openapi.ts and
// docs/gateway-api.md.
import type { SwitchContext } from '../context.js';
import { InvalidArgumentError, PermissionDeniedError, UnauthenticatedError } from '../errors.js';
import { changeCardPassword, requireCardPassword } from '../domain/card-password.js';
import { sessionEnded } from '../domain/card-events.js';
import { cancelCardLoss, reportCardLost } from '../domain/card-status.js';
import { bindEcard, boundCardOf, ecardSummary, issueCampusQr, payFeeFromPhone, requireBoundCard, unbindEcard } from '../domain/ecard.js';
import { checkUtilityTarget } from '../domain/fees.js';
import {
  DEFAULT_STATEMENT_PAGE_SIZE,
  MAX_STATEMENT_PAGE_SIZE,
  STATEMENT_CATEGORIES,
  type StatementReader,
  type StatementCategory,
  type StatementEntry,
} from '../domain/reports.js';
import { bearerToken, type AccessGrant, type AuthenticatedSession, type Sessions } from '../domain/sessions.js';
import type { IdentityProviders } from '../identity/index.js';
import type { FeeAnswer } from '../ledger/money.js';
import type { GatewayRequest, GatewayResponse, Route } from './http.js';

export interface HolderApiDeps {
  readonly ctx: SwitchContext;
  readonly sessions: Sessions;
  readonly identity: IdentityProviders;
  /** The switch's one StatementReader (built by app.ts). */
  readonly statements: StatementReader;
}

const NOT_BOUND = { reason: 'NOT_BOUND', zh: '尚未绑定校园卡，请先完成绑定' };

function ok(body: unknown, status = 200): GatewayResponse {
  return { status, body };
}

/** The JSON object a POST carries; anything else is refused. */
function objectBody(req: GatewayRequest): Record<string, unknown> {
  const body = req.body;
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidArgumentError('the request body must be a JSON object', { reason: 'INVALID_BODY', zh: '请求内容应为JSON对象' });
  }
  return body as Record<string, unknown>;
}

function stringField(body: Record<string, unknown>, name: string, zh: string): string {
  const value = body[name];
  if (typeof value !== 'string')
    throw new InvalidArgumentError(`${name} is required (a string)`, { reason: 'INVALID_FIELD', zh, field: name });
  return value;
}

function integerField(body: Record<string, unknown>, name: string, zh: string): number {
  const value = body[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new InvalidArgumentError(`${name} must be a whole number`, { reason: 'INVALID_FIELD', zh, field: name });
  }
  return value;
}

const PASSWORD_ZH = '请输入6位卡密码';

/** Who is calling (any live session). */
function caller(deps: HolderApiDeps, req: GatewayRequest): Promise<AuthenticatedSession> {
  return deps.sessions.authenticate(bearerToken(req.headers['authorization']));
}

/** Who is calling, with the card bound to them: an unbound user reaches only the binding endpoints. */
async function boundCaller(deps: HolderApiDeps, req: GatewayRequest): Promise<AuthenticatedSession> {
  const session = await caller(deps, req);
  if (session.cardNo === '')
    throw new PermissionDeniedError('no card is bound to this user; bind one first (POST /api/v1/ecard/binding)', NOT_BOUND);
  return session;
}

// ---- sessions ----------------------------------------------------------------------------------

async function signIn(deps: HolderApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const body = objectBody(req);
  const provider = stringField(body, 'provider', '请选择登录方式');
  const code = stringField(body, 'code', '缺少登录凭证，请重新进入页面');
  const identity = await deps.identity.exchange(provider, code);
  const cardNo = await boundCardOf(deps.ctx, identity.userId);
  const tokens = await deps.sessions.start(identity, cardNo);
  return ok({ ...tokens, userId: identity.userId, bound: cardNo !== '' }, 201);
}

async function refresh(deps: HolderApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const token = stringField(objectBody(req), 'refreshToken', '登录已过期，请重新进入页面');
  const tokens = await deps.sessions.refresh(token, (userId) => boundCardOf(deps.ctx, userId));
  return ok(tokens);
}

async function logout(deps: HolderApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await caller(deps, req);
  await deps.sessions.logout(session.sessionId);
  // Its pages' sockets close on every gateway (they would otherwise keep getting events).
  await sessionEnded(deps.ctx, session.sessionId);
  return ok({ loggedOut: true });
}

// ---- binding -----------------------------------------------------------------------------------

async function bind(deps: HolderApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await caller(deps, req);
  const { cardNo } = await bindEcard(deps.ctx, session.userId, objectBody(req));
  let access: AccessGrant;
  try {
    access = await deps.sessions.reissue(session, cardNo);
  } catch (err) {
    // The card IS bound: the session ended (a logout on another page) or ran out between the binding and
    // the new token. A 401 would read as "the binding failed" and send the holder to bind again (409
    // USER_ALREADY_BOUND); the answer says it is bound and to sign in again (the sign-in finds the card).
    if (!(err instanceof UnauthenticatedError)) throw err;
    return ok(
      {
        card: await ecardSummary(deps.ctx, session.userId, cardNo),
        signInAgain: true,
        message: '绑定成功。您的登录已结束（已在其他页面退出或登录已过期），请重新登录后使用电子校园卡。',
        messageEn: 'The card is bound. Your session ended meanwhile (logged out elsewhere, or expired): sign in again to use the e-card.',
      },
      201,
    );
  }
  return ok({ card: await ecardSummary(deps.ctx, session.userId, cardNo), ...access }, 201);
}

async function unbind(deps: HolderApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await caller(deps, req);
  const password = stringField(objectBody(req), 'password', PASSWORD_ZH);
  const { cardNo } = await unbindEcard(deps.ctx, session.userId, password);
  // Every session of the user ends with the binding (this one too): the page signs in again.
  const endedSessions = await deps.sessions.endAllOf(session.userId);
  return ok({ unbound: true, cardNumber: cardNo, endedSessions });
}

// ---- the card ----------------------------------------------------------------------------------

async function summary(deps: HolderApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await boundCaller(deps, req);
  return ok(await ecardSummary(deps.ctx, session.userId, session.cardNo));
}

async function campusQr(deps: HolderApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await boundCaller(deps, req);
  return ok(await issueCampusQr(deps.ctx, session.userId, session.cardNo));
}

async function reportLoss(deps: HolderApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  // The signed-in holder of the binding may report the card lost without the password (a stolen card
  // must be stoppable at once); cancelling needs the password.
  const session = await boundCaller(deps, req);
  await requireBoundCard(deps.ctx, session.userId, session.cardNo);
  const change = await reportCardLost(deps.ctx, session.cardNo);
  return ok({ status: 'lost', changed: change.changed, message: change.changed ? '挂失成功' : '此卡已挂失' });
}

async function cancelLoss(deps: HolderApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await boundCaller(deps, req);
  const password = stringField(objectBody(req), 'password', PASSWORD_ZH);
  await requireBoundCard(deps.ctx, session.userId, session.cardNo);
  await requireCardPassword(deps.ctx, session.cardNo, password);
  const change = await cancelCardLoss(deps.ctx, session.cardNo);
  return ok({ status: 'active', changed: change.changed, message: change.changed ? '解挂成功' : '此卡未挂失' });
}

async function changePassword(deps: HolderApiDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const session = await boundCaller(deps, req);
  const body = objectBody(req);
  const oldPassword = stringField(body, 'oldPassword', PASSWORD_ZH);
  const newPassword = stringField(body, 'newPassword', '请输入6位新密码');
  await requireBoundCard(deps.ctx, session.userId, session.cardNo);
  await changeCardPassword(deps.ctx, session.cardNo, oldPassword, newPassword);
  return ok({ changed: true, message: '密码修改成功' });
}

// ---- statement ---------------------------------------------------------------------------------

function timeParam(query: URLSearchParams, name: string): number {
  const raw = query.get(name);
  if (raw === null || raw === '') return 0;
  if (!/^\d{1,15}$/.test(raw))
    throw new InvalidArgumentError(`${name} must be milliseconds since the epoch`, {
      reason: 'INVALID_FIELD',
      zh: '日期范围有误',
      field: name,
    });
  return Number(raw);
}

/** `?from=&to=` (ms, to exclusive), `kinds=payment,recharge`, `pageSize=1..100`, `pageToken=`. */
function statementQuery(query: URLSearchParams) {
  const fromMs = timeParam(query, 'from');
  const toMs = timeParam(query, 'to');
  if (fromMs > 0 && toMs > 0 && fromMs >= toMs)
    throw new InvalidArgumentError('from must be before to', { reason: 'INVALID_FIELD', zh: '开始日期应早于结束日期', field: 'from' });
  const categories = new Set<StatementCategory>();
  for (const kind of (query.get('kinds') ?? '')
    .split(',')
    .filter((k) => k !== '')
    .slice(0, 16)) {
    if (!(STATEMENT_CATEGORIES as readonly string[]).includes(kind)) {
      throw new InvalidArgumentError(`kinds may hold ${STATEMENT_CATEGORIES.join(', ')}`, {
        reason: 'INVALID_FIELD',
        zh: '流水类型有误',
        field: 'kinds',
      });
    }
    categories.add(kind as StatementCategory);
  }
  const sizeText = query.get('pageSize') ?? '';
  const pageSize = sizeText === '' ? DEFAULT_STATEMENT_PAGE_SIZE : Number(sizeText);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_STATEMENT_PAGE_SIZE) {
    throw new InvalidArgumentError(`pageSize must be 1..${MAX_STATEMENT_PAGE_SIZE}`, {
      reason: 'INVALID_FIELD',
      zh: '每页条数有误',
      field: 'pageSize',
    });
  }
  return { fromMs, toMs, categories, pageSize, pageToken: query.get('pageToken') ?? '' };
}

function lineJson(line: StatementEntry) {
  return {
    transactionId: line.transactionId,
    kind: line.category,
    amountFen: line.amountFen,
    balanceAfterFen: line.balanceAfterFen,
    atMs: line.atMs,
    merchantId: line.merchantId,
    location: line.location,
    description: line.description,
  };
}

function statementHandler(deps: HolderApiDeps): (req: GatewayRequest) => Promise<GatewayResponse> {
  const reader = deps.statements;
  return async (req) => {
    const session = await boundCaller(deps, req);
    const query = statementQuery(req.query);
    await requireBoundCard(deps.ctx, session.userId, session.cardNo);
    const page = await reader.read(session.cardNo, query);
    return ok({ lines: page.lines.map(lineJson), nextPageToken: page.nextPageToken });
  };
}

// ---- fees --------------------------------------------------------------------------------------

const FEE_OUTCOMES: Readonly<Record<FeeAnswer['code'], string>> = {
  delivered: 'paid',
  pending: 'pending',
  given_back: 'returned',
  insufficient_funds: 'declined',
  card_lost: 'declined',
  card_frozen: 'declined',
  card_cancelled: 'declined',
  unknown_card: 'declined',
};
const FEE_TEXT: Readonly<Record<FeeAnswer['code'], string>> = {
  delivered: '缴费成功',
  pending: '缴费结果待确认，请稍后用同一请求编号重试查询；未到账的款项将自动退回',
  given_back: '缴费失败，款项已退回',
  insufficient_funds: '余额不足',
  card_lost: '此卡已挂失',
  card_frozen: '此卡已冻结',
  card_cancelled: '此卡已注销',
  unknown_card: '未找到此卡',
};

function feeHandler(deps: HolderApiDeps, kind: 'network' | 'electricity'): (req: GatewayRequest) => Promise<GatewayResponse> {
  return async (req) => {
    const session = await boundCaller(deps, req);
    const body = objectBody(req);
    const target =
      kind === 'network'
        ? checkUtilityTarget('network', stringField(body, 'account', '请输入校园网账号'), '', '')
        : checkUtilityTarget('electricity', '', stringField(body, 'building', '请输入楼栋'), stringField(body, 'room', '请输入房间号'));
    const answer = await payFeeFromPhone(deps.ctx, session.userId, session.cardNo, {
      requestId: integerField(body, 'requestId', '请求编号无效，请刷新页面后重试'),
      amountFen: integerField(body, 'amountFen', '请输入缴费金额（1.00-500.00元）'),
      password: stringField(body, 'password', PASSWORD_ZH),
      target,
    });
    return ok({
      outcome: FEE_OUTCOMES[answer.code],
      reason: answer.code,
      message: answer.code === 'given_back' && answer.detail !== '' ? `缴费失败（${answer.detail}），款项已退回` : FEE_TEXT[answer.code],
      balanceAfterFen: answer.balanceAfterFen,
      transactionId: answer.transactionId,
      receipt: answer.code === 'delivered' ? answer.detail : '',
    });
  };
}

/** Every route of the holder API. */
export function holderRoutes(deps: HolderApiDeps): Route[] {
  const h = (fn: (d: HolderApiDeps, req: GatewayRequest) => Promise<GatewayResponse>) => (req: GatewayRequest) => fn(deps, req);
  return [
    { method: 'POST', path: '/api/v1/session', handler: h(signIn) },
    { method: 'POST', path: '/api/v1/session/refresh', handler: h(refresh) },
    { method: 'DELETE', path: '/api/v1/session', handler: h(logout) },
    { method: 'POST', path: '/api/v1/ecard/binding', handler: h(bind) },
    { method: 'DELETE', path: '/api/v1/ecard/binding', handler: h(unbind) },
    { method: 'GET', path: '/api/v1/ecard', handler: h(summary) },
    { method: 'GET', path: '/api/v1/ecard/qr', handler: h(campusQr) },
    { method: 'GET', path: '/api/v1/ecard/statement', handler: statementHandler(deps) },
    { method: 'POST', path: '/api/v1/ecard/loss', handler: h(reportLoss) },
    { method: 'POST', path: '/api/v1/ecard/loss/cancel', handler: h(cancelLoss) },
    { method: 'POST', path: '/api/v1/ecard/password', handler: h(changePassword) },
    { method: 'POST', path: '/api/v1/ecard/fees/network', handler: feeHandler(deps, 'network') },
    { method: 'POST', path: '/api/v1/ecard/fees/electricity', handler: feeHandler(deps, 'electricity') },
  ];
}
