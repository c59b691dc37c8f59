// The OpenAPI 3.0.3 description of the gateway: every holder route of holder-api.ts, the WebSocket of
// live events, /healthz, /metrics and this document itself (served as GET /api/v1/openapi.json). A plain
// object, no generator: the small helpers below only keep the error answers consistent. Limits and
// patterns come from the modules that enforce them, so the document cannot quietly disagree with them;
// test/openapi.test.ts checks that the paths match holderRoutes() exactly. The human reference is
// docs/gateway-api.md.
import { MAX_PASSWORD_ATTEMPTS_PER_DAY } from '../domain/card-password.js';
import { PERSON_NUMBER_PATTERN } from '../domain/cardholder.js';
import { BINDING_TYPES, DOCUMENT_TYPES } from '../domain/ecard.js';
import { MAX_FEE_FEN, MIN_FEE_FEN, NETWORK_ACCOUNT_PATTERN, ROOM_PATTERN } from '../domain/fees.js';
import { PIN_PATTERN } from '../domain/password.js';
import { STATEMENT_CATEGORIES } from '../domain/reports.js';
import { MAX_TOKEN_LENGTH } from '../domain/sessions.js';
import { IDENTITY_PROVIDER_NAMES, MAX_CODE_LENGTH } from '../identity/provider.js';
import { MAX_CATCH_UP_EVENTS } from '../ledger/events.js';
import { RECHARGE_CHANNELS, UTILITY_KINDS } from '../ledger/money.js';
import {
  DEFAULT_STATEMENT_PAGE_SIZE,
  MAX_PAGE_TOKEN_LENGTH,
  MAX_STATEMENT_LINES_SCANNED,
  MAX_STATEMENT_PAGE_SIZE,
} from '../ledger/statement.js';
import { CAMPUS_QR_MAX_VALID_SEC, CAMPUS_QR_PATTERN, CAMPUS_QR_REFRESH_MS, CAMPUS_QR_TEXT_LENGTH } from '../qr/format.js';
import { GENERIC_ZH } from './errors.js';
import { CLOSE_SESSION_ENDED, EVENTS_PATH, EVENTS_PROTOCOL } from './live-events.js';
import { DEFAULT_MAX_PAYLOAD_LENGTH } from './ws.js';

/** Where the gateway serves this document (serve.ts). */
export const OPENAPI_PATH = '/api/v1/openapi.json';
/** The subprotocol that carries the access token on the events socket (live-events.ts). */
const EVENTS_BEARER_PREFIX = 'bearer.';

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const FEN = 'Integer fen (1 yuan = 100 fen); money is never a decimal anywhere in this API.';
const MS = 'Milliseconds since the Unix epoch (UTC).';

// ---- refusals ----------------------------------------------------------------------------------

/** One refusal a route may answer: the HTTP status, the machine `code`, and the texts the page gets. */
interface Refusal {
  readonly status: number;
  readonly code: string;
  /** `error.message` (zh-CN), as the page gets it (a representative text when it varies). */
  readonly zh: string;
  /** What it means, for the engineer (close to `error.messageEn`). */
  readonly en: string;
  readonly field?: string;
  readonly attemptsLeft?: number;
  /** Seconds in Retry-After, when the gateway sends one. */
  readonly retryAfterSec?: number;
}

function r(
  status: number,
  code: string,
  zh: string,
  en: string,
  extra: Partial<Pick<Refusal, 'field' | 'attemptsLeft' | 'retryAfterSec'>> = {},
): Refusal {
  return { status, code, zh, en, ...extra };
}

function invalidField(field: string, zh: string, en: string): Refusal {
  return r(400, 'INVALID_FIELD', zh, en, { field });
}

// Gateway level (switch/gateway/http.ts, errors.ts): any request with a body, any route.
const MALFORMED_JSON = r(400, 'MALFORMED_JSON', '请求内容有误：不是有效的 JSON', 'the request body is not valid JSON');
const BAD_CONTENT_LENGTH = r(
  400,
  'INVALID_ARGUMENT',
  '请求内容有误：Content-Length 无效',
  'the Content-Length header is not a valid length',
);
const PAYLOAD_TOO_LARGE = r(
  413,
  'PAYLOAD_TOO_LARGE',
  '提交的内容过大',
  'the body is larger than GATEWAY_MAX_BODY_BYTES (default 16384 bytes); the connection is closed',
);
const UNSUPPORTED_MEDIA_TYPE = r(
  415,
  'UNSUPPORTED_MEDIA_TYPE',
  '请求格式不受支持',
  'a request with a body must send Content-Type: application/json',
);
const INTERNAL = r(500, 'INTERNAL', GENERIC_ZH.INTERNAL, 'a fault of the switch; nothing internal is disclosed; retry later');
const UNAVAILABLE = r(
  503,
  'UNAVAILABLE',
  GENERIC_ZH.UNAVAILABLE,
  'the ledger (Redis) did not answer, so the outcome is unknown; retry the same request to learn it',
  { retryAfterSec: 2 },
);
const PASSWORD_CHECK_BUSY = r(
  429,
  'PASSWORD_CHECK_BUSY',
  GENERIC_ZH.UNAVAILABLE,
  'too many password checks are waiting on this switch; retry in a moment (nothing was counted)',
  { retryAfterSec: 1 },
);
const INVALID_BODY = r(400, 'INVALID_BODY', '请求内容应为JSON对象', 'the body must be a JSON object');

// Sessions (switch/domain/sessions.ts).
const TOKEN_MISSING = r(401, 'TOKEN_MISSING', '请先登录', 'no Authorization: Bearer header (or an empty token)');
const TOKEN_INVALID = r(
  401,
  'TOKEN_INVALID',
  '登录信息无效，请重新进入页面',
  'the token is not one of ours (malformed, forged, wrong type: an access token where a refresh token is wanted or the reverse)',
);
const TOKEN_EXPIRED = r(
  401,
  'TOKEN_EXPIRED',
  '登录已过期，请刷新页面',
  'the token expired: refresh the access token, or sign in again when the refresh token expired',
);
const SESSION_ENDED = r(401, 'SESSION_ENDED', '已退出登录或解绑，请重新进入', 'the session ended (logout or unbinding): sign in again');
const AUTH = [TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED, SESSION_ENDED] as const;

// Sign-in (switch/identity/*.ts).
const UNKNOWN_PROVIDER = r(400, 'UNKNOWN_PROVIDER', '不支持的登录方式', `provider must be one of ${IDENTITY_PROVIDER_NAMES.join(', ')}`, {
  field: 'provider',
});
const MALFORMED_CODE = r(
  400,
  'INVALID_CODE',
  '登录参数有误，请重新进入页面',
  `code must be 1-${MAX_CODE_LENGTH} characters of A-Z a-z 0-9 _ -`,
  { field: 'code' },
);
const REJECTED_CODE = r(
  401,
  'INVALID_CODE',
  '登录已失效，请重新进入页面',
  'the provider refused the code (invalid, expired or already used): reload the page for a new code',
);
const NOT_A_MEMBER = r(403, 'NOT_A_MEMBER', '仅限本校师生使用', 'WeCom: the user is not a member of the university (an external contact)');
const HIGH_RISK_USER = r(
  403,
  'HIGH_RISK_USER',
  '该微信账号存在安全风险，暂不能登录，请使用企业微信进入或到卡务中心咨询',
  'WeChat flags the account as high-risk',
);
const PROVIDER_DISABLED = r(
  409,
  'PROVIDER_DISABLED',
  '暂未开通企业微信登录 / 暂未开通微信小程序登录',
  'this switch has that sign-in provider turned off',
);
const IDENTITY_UNAVAILABLE = r(
  503,
  'IDENTITY_UNAVAILABLE',
  '身份认证服务暂不可用，请稍后再试',
  'the WeCom / WeChat API failed or did not answer in time; nothing changed',
  { retryAfterSec: 2 },
);

// The card as bound to the caller.
const NOT_BOUND_TOKEN = r(
  403,
  'NOT_BOUND',
  '尚未绑定校园卡，请先完成绑定',
  'the access token names no card: bind one first (or use the access token the binding answered)',
);
const NOT_BOUND_NOW = r(403, 'NOT_BOUND', '尚未绑定校园卡，请先完成绑定', 'the card of the token is no longer bound to this user');
const BOUND = [NOT_BOUND_TOKEN, NOT_BOUND_NOW] as const;

// Card passwords (switch/domain/card-password.ts, switch/errors.ts).
const WRONG_PASSWORD = r(
  403,
  'WRONG_PASSWORD',
  '卡密码错误，今日还可尝试3次',
  `wrong card password; attemptsLeft says how many tries are left today (${MAX_PASSWORD_ATTEMPTS_PER_DAY} a campus day, shared with POS and kiosk)`,
  { field: 'password', attemptsLeft: 3 },
);
const PASSWORD_LOCKED = r(
  429,
  'PASSWORD_LOCKED',
  '卡密码今日错误次数过多，已锁定，请明日再试',
  `${MAX_PASSWORD_ATTEMPTS_PER_DAY} wrong passwords today: every use of the password is refused until the next campus day (no Retry-After)`,
  { field: 'password', attemptsLeft: 0 },
);
const PASSWORD_BUSY = r(
  429,
  'PASSWORD_BUSY',
  '密码校验过于频繁，请稍后再试',
  'as many checks of this card in flight as attempts left; retry in a moment (nothing was counted)',
  { field: 'password', retryAfterSec: 5 },
);
const PASSWORD_FORMAT = r(
  400,
  'INVALID_PASSWORD',
  '请输入6位数字卡密码',
  'the card password (on a change: the old one) is empty or not exactly 6 digits; show the message next to the password',
  { field: 'password' },
);
const CARD_RECORD_GONE = r(404, 'NOT_FOUND', GENERIC_ZH.NOT_FOUND, 'the bound card has no account any more (operator action)');
const PASSWORD = [PASSWORD_FORMAT, WRONG_PASSWORD, CARD_RECORD_GONE, PASSWORD_LOCKED, PASSWORD_BUSY, PASSWORD_CHECK_BUSY] as const;

// Binding (switch/domain/ecard.ts).
const BINDING_FORM = [
  r(400, 'INVALID_BINDING_TYPE', '请选择绑定类型：学生或教职工', `bindingType must be one of ${BINDING_TYPES.join(', ')}`, {
    field: 'bindingType',
  }),
  r(400, 'INVALID_PERSON_NUMBER', '请输入学号/工号（4-20位字母或数字）', 'personNumber must be 4-20 letters or digits', {
    field: 'personNumber',
  }),
  r(400, 'INVALID_PASSWORD', '卡密码为6位数字；初始密码为证件号后六位，非数字字符用1代替', 'password must be the 6-digit card password', {
    field: 'password',
  }),
  r(
    400,
    'INVALID_DOCUMENT_TYPE',
    '请选择证件类型：身份证或护照（外籍教师、港澳台学生、留学生请选择护照）',
    `documentType must be one of ${DOCUMENT_TYPES.join(', ')}`,
    { field: 'documentType' },
  ),
  r(
    400,
    'INVALID_DOCUMENT_NUMBER',
    '请输入18位身份证号码 / 请输入正确的护照号码',
    'documentNumber does not look like a document number of that type',
    { field: 'documentNumber' },
  ),
  r(
    400,
    'INVALID_PHONE',
    '请输入11位手机号码（境外号码以+和国家代码开头）',
    'phone must be 11 digits starting with 1, or + and the country code',
    { field: 'phone' },
  ),
  r(400, 'CONSENT_REQUIRED', '请阅读并同意《隐私政策》和《服务协议》', 'consent must be true', { field: 'consent' }),
] as const;
const CARD_NOT_FOUND_FOR_PERSON = r(
  404,
  'CARD_NOT_FOUND',
  '未找到该学号/工号对应的校园卡，请核对',
  'no card for this student/staff number',
  { field: 'personNumber' },
);
const BINDING_IN_PROGRESS = r(
  409,
  'BINDING_IN_PROGRESS',
  '正在处理上一次绑定/解绑请求，请稍候',
  'a binding or unbinding of this user is already running (double tap)',
);
const USER_ALREADY_BOUND = r(
  409,
  'USER_ALREADY_BOUND',
  '您已绑定另一张校园卡，请先在个人中心解绑',
  'the user has another card bound; unbind it first',
);
const CARD_BOUND_ELSEWHERE = r(
  409,
  'CARD_BOUND_ELSEWHERE',
  '此卡已绑定其他账号；如非本人操作，请先挂失并到卡务中心处理',
  'the card is bound to another WeCom / WeChat user',
  { field: 'personNumber' },
);
const BINDING_TYPE_MISMATCH = r(
  409,
  'BINDING_TYPE_MISMATCH',
  '该学号/工号登记为教职工，请选择“教职工”绑定类型',
  "bindingType does not match the card's holder type",
  { field: 'bindingType' },
);
const CARD_LOST = r(409, 'CARD_LOST', '此卡已挂失，请先解挂后再使用电子校园卡', 'the card is reported lost');
const CARD_FROZEN = r(409, 'CARD_FROZEN', '此卡已被卡务中心冻结，请到卡务中心办理', 'the card is frozen by the card office');
const CARD_CANCELLED = r(409, 'CARD_CANCELLED', '此卡已注销', 'the card is cancelled');
const CARD_NOT_SYNCED = r(
  409,
  'CARD_NOT_SYNCED',
  '电子校园卡生效前，请先用实体校园卡在校园任一消费终端上贴卡（约2秒显示余额即同步成功），再绑定',
  'the physical card was never tapped on a terminal since migration (or it is a new replacement card): tap it once, then retry',
);
const DOCUMENT_MISMATCH = r(
  409,
  'DOCUMENT_MISMATCH',
  '证件类型或证件号码与校园卡登记信息不一致，请核对；信息有误请与校园卡服务中心联系',
  'documentType / documentNumber differ from the cardholder record (checked after the password)',
  { field: 'documentNumber' },
);
const PHONE_MISMATCH = r(
  409,
  'PHONE_MISMATCH',
  '手机号与校园卡登记信息不一致，请核对；信息有误请与校园卡服务中心联系',
  'phone differs from the cardholder record (checked after the password)',
  { field: 'phone' },
);

// Loss reports (switch/domain/card-status.ts).
const STATUS_CARD_NOT_FOUND = r(404, 'CARD_NOT_FOUND', '未找到此卡', 'the bound card has no account any more');
const LOSS_FROZEN = r(
  409,
  'CARD_FROZEN',
  '此卡已被卡务中心冻结，无法挂失（解挂），请到卡务中心办理',
  'a frozen card: only the card office can change its status',
);
const LOSS_CANCELLED = r(409, 'CARD_CANCELLED', '此卡已注销，无法挂失（解挂）', 'a cancelled card');

// Fees (switch/domain/ecard.ts payFeeFromPhone, switch/domain/fees.ts).
const INVALID_REQUEST_ID = r(
  400,
  'INVALID_REQUEST_ID',
  '请求编号无效，请刷新页面后重试',
  `requestId must be a whole number from 1 to ${MAX_SAFE}`,
  { field: 'requestId' },
);
const FEE_ARGUMENT = r(
  400,
  'INVALID_ARGUMENT',
  GENERIC_ZH.INVALID_ARGUMENT,
  `amountFen outside ${MIN_FEE_FEN}..${MAX_FEE_FEN}, a malformed account / building / room, or a password that is not 6 digits (no field is set)`,
);
const IDEMPOTENCY_CONFLICT = r(
  409,
  'IDEMPOTENCY_CONFLICT',
  GENERIC_ZH.IDEMPOTENCY_CONFLICT,
  'this requestId was already used for a different fee (other amount or target): use a new requestId',
);

// The events socket.
const TOO_MANY_CARD_SOCKETS = r(
  429,
  'TOO_MANY_CONNECTIONS',
  '打开的页面过多，请关闭其他页面后重试',
  'GATEWAY_WS_MAX_PER_CARD sockets of this card are open on this gateway; close one',
);
const TOO_MANY_CONNECTIONS = r(
  503,
  'TOO_MANY_CONNECTIONS',
  '连接人数较多，请稍后再试',
  'GATEWAY_WS_MAX_SOCKETS sockets are open; retry later',
  { retryAfterSec: 5 },
);
const NOT_A_HANDSHAKE = r(
  426,
  'UPGRADE_REQUIRED',
  '请使用支持实时通知（WebSocket）的页面打开',
  'a plain GET (or HEAD) without the WebSocket handshake headers: open it as a WebSocket (the answer carries Upgrade: websocket)',
);
const PROTOCOL_REQUIRED = r(400, 'PROTOCOL_REQUIRED', '请刷新页面后重试', `the subprotocol ${EVENTS_PROTOCOL} was not offered`);
const INVALID_SINCE = invalidField(
  'since',
  '请刷新页面后重试',
  'since is not an event id as received (<ms>-<seq>); checked after the token',
);

const BODY = [MALFORMED_JSON, BAD_CONTENT_LENGTH, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE] as const;

const STATUS_MEANING: Readonly<Record<number, string>> = {
  400: 'The request can never succeed as sent: fix the field named by `error.field` (shown next to it) and resend.',
  401: 'Who is calling is not known. TOKEN_EXPIRED: refresh (POST /api/v1/session/refresh) and retry once; the others: sign in again.',
  403: 'Not allowed for this caller.',
  404: 'Not found.',
  409: 'Refused in the current state of the card, the binding or the request id: nothing changed.',
  413: 'The body is too large; the connection is closed.',
  415: 'The body is not declared as application/json.',
  429: 'Too many attempts or checks: wait (Retry-After when present) or, for PASSWORD_LOCKED, until tomorrow.',
  500: 'A fault of the switch.',
  503: 'A service the request needs did not answer: retry after Retry-After (the same request: it is safe to repeat).',
};

const ERROR_BODY_REF = { $ref: '#/components/schemas/ErrorBody' };

/** The error responses of an operation, grouped by status, each with its codes as an enum. */
function errorResponses(refusals: readonly Refusal[]): Record<string, unknown> {
  const byStatus = new Map<number, Refusal[]>();
  for (const refusal of refusals) {
    const list = byStatus.get(refusal.status) ?? [];
    if (!list.some((x) => x.code === refusal.code && x.field === refusal.field && x.en === refusal.en)) list.push(refusal);
    byStatus.set(refusal.status, list);
  }
  const responses: Record<string, unknown> = {};
  for (const status of [...byStatus.keys()].sort((a, b) => a - b)) {
    const list = byStatus.get(status) ?? [];
    const codes = [...new Set(list.map((x) => x.code))];
    const lines = list.map((x) => `- \`${x.code}\`${x.field === undefined ? '' : ` (field \`${x.field}\`)`}: ${x.en}. 「${x.zh}」`);
    const headers: Record<string, unknown> = {};
    if (status === 401) headers['WWW-Authenticate'] = { $ref: '#/components/headers/WwwAuthenticate' };
    if (list.some((x) => x.retryAfterSec !== undefined)) headers['Retry-After'] = { $ref: '#/components/headers/RetryAfter' };
    const first = list[0] as Refusal;
    responses[String(status)] = {
      description: [STATUS_MEANING[status] ?? '', '', '`error.code`:', ...lines].join('\n'),
      ...(Object.keys(headers).length > 0 ? { headers } : {}),
      content: {
        'application/json': {
          schema: {
            allOf: [
              ERROR_BODY_REF,
              { type: 'object', properties: { error: { type: 'object', properties: { code: { type: 'string', enum: codes } } } } },
            ],
          },
          example: {
            error: {
              code: first.code,
              message: first.zh,
              messageEn: first.en,
              ...(first.field !== undefined ? { field: first.field } : {}),
              ...(first.attemptsLeft !== undefined ? { attemptsLeft: first.attemptsLeft } : {}),
            },
          },
        },
      },
    };
  }
  return responses;
}

function ref(name: string): { $ref: string } {
  return { $ref: `#/components/schemas/${name}` };
}

function jsonBody(schemaName: string, description: string, required = true): Record<string, unknown> {
  return { required, description, content: { 'application/json': { schema: ref(schemaName) } } };
}

function jsonAnswer(schemaName: string, description: string): Record<string, unknown> {
  return { description, content: { 'application/json': { schema: ref(schemaName) } } };
}

const PUBLIC: readonly unknown[] = [];

// ---- schemas -----------------------------------------------------------------------------------

const fen = (description: string, extra: Record<string, unknown> = {}) => ({
  type: 'integer',
  format: 'int64',
  description: `${description} ${FEN}`,
  ...extra,
});
const epochMs = (description: string) => ({ type: 'integer', format: 'int64', minimum: 0, description: `${description} ${MS}` });
const pin = (description: string) => ({ type: 'string', pattern: PIN_PATTERN.source, example: '123456', description, writeOnly: true });

const requestIdSchema = {
  type: 'integer',
  format: 'int64',
  minimum: 1,
  maximum: MAX_SAFE,
  description:
    'Chosen by the page for this payment (e.g. a random integer in 1..2^53-1, made once when the holder confirms) and sent again unchanged on every retry: ' +
    'a retry with the same requestId replays the first answer and never pays twice. The ids of a card are one namespace (all its phones and sessions). ' +
    'A different fee needs a new requestId, also after a decline (a declined requestId replays its decline).',
};

const amountSchema = fen(`The fee, ${MIN_FEE_FEN}..${MAX_FEE_FEN} (1.00 to 500.00 yuan).`, {
  minimum: MIN_FEE_FEN,
  maximum: MAX_FEE_FEN,
  example: 5000,
});

// ---- recharge orders (gateway/recharge-api.ts, domain/recharge-orders.ts) -------------------------

const ORDER_ID_SCHEMA = {
  type: 'string',
  pattern: '^R[0-9a-z]{3}[0-9a-f]{24}$',
  example: 'R00a3f1c2d4e5f60718293a4b5c',
  description: "The order id (also the channel's out_trade_no).",
};

const RECHARGE_SCHEMAS: Record<string, unknown> = {
  RechargeOrderRequest: {
    type: 'object',
    required: ['channel', 'amountFen', 'requestId'],
    properties: {
      channel: { type: 'string', enum: ['alipay', 'wechat'] },
      amountFen: fen('The recharge, 1 .. the channel maximum (WeChat: 99900, at most 999 yuan a time; Alipay: ALIPAY_MAX_RECHARGE_FEN).', {
        minimum: 1,
        example: 5000,
      }),
      requestId: {
        type: 'string',
        pattern: '^[A-Za-z0-9_-]{1,64}$',
        description:
          'Chosen by the page once per recharge; a retry with the same requestId gets the same order (and its QR again) instead of a second order.',
      },
    },
  },
  RechargeOrderCreated: {
    type: 'object',
    description:
      'What the phone pays with. Then poll GET /api/v1/ecard/recharge-orders/{id} (or watch the events socket for the recharge).',
    required: ['orderId', 'channel', 'amountFen', 'expiresAtMs', 'pay'],
    properties: {
      orderId: ORDER_ID_SCHEMA,
      channel: { type: 'string', enum: ['alipay', 'wechat'] },
      amountFen: fen('The order amount.'),
      expiresAtMs: {
        type: 'integer',
        format: 'int64',
        description: 'The channel closes the order unpaid at this time (RECHARGE_ORDER_EXPIRY_SEC after it was made).',
      },
      pay: {
        type: 'object',
        description:
          "kind qr: draw qrContent as a QR code (Alipay qr_code, WeChat Native code_url). kind jsapi (WeChat, when the holder signed in through WeChat): pass appId, timeStamp, nonceStr, package, signType, paySign to WeixinJSBridge 'getBrandWCPayRequest'.",
        required: ['kind'],
        properties: {
          kind: { type: 'string', enum: ['qr', 'jsapi'] },
          qrContent: { type: 'string' },
          appId: { type: 'string' },
          timeStamp: { type: 'string' },
          nonceStr: { type: 'string' },
          package: { type: 'string' },
          signType: { type: 'string' },
          paySign: { type: 'string' },
        },
      },
    },
  },
  RechargeOrderState: {
    type: 'object',
    required: ['orderId', 'channel', 'amountFen', 'state', 'createdAtMs', 'expiresAtMs', 'transactionId'],
    properties: {
      orderId: ORDER_ID_SCHEMA,
      channel: { type: 'string', enum: ['alipay', 'wechat'] },
      amountFen: fen('The order amount.'),
      state: {
        type: 'string',
        enum: ['pending', 'paid', 'expired', 'closed'],
        description: 'paid: credited to the card (once); expired / closed: not paid and never will be (make a new order).',
      },
      createdAtMs: { type: 'integer', format: 'int64' },
      expiresAtMs: { type: 'integer', format: 'int64' },
      transactionId: { type: 'string', description: "The credit's journal id when paid, else ''." },
      balanceAfterFen: fen('The balance right after the credit (paid only).'),
    },
  },
};

// ---- channel binding (gateway/channel-binding-api.ts, domain/channel-binding.ts) ----------------------

const CHANNEL_STATE_SCHEMA = { type: 'string', enum: ['bound', 'unbound'], description: 'bound 绑定 / unbound 未绑定.' };

const CHANNEL_BINDING_SCHEMAS: Record<string, unknown> = {
  ChannelBindingStates: {
    type: 'object',
    description: "核身状态: whether the card's Alipay / WeChat payer is bound (their payment codes pay at campus POS only then).",
    required: ['alipay', 'wechat'],
    properties: { alipay: CHANNEL_STATE_SCHEMA, wechat: CHANNEL_STATE_SCHEMA },
  },
  AlipayAuthorization: {
    type: 'object',
    required: ['authorizeUrl', 'expiresAtMs'],
    properties: {
      authorizeUrl: {
        type: 'string',
        format: 'uri',
        description:
          "Alipay's authorisation page (publicAppAuthorize.htm, scope auth_base) with a signed, single-use state: open it in Alipay (or show it as a QR code to scan with Alipay).",
      },
      expiresAtMs: { type: 'integer', format: 'int64', description: 'The authorisation must be confirmed before this time.' },
    },
  },
  WechatBindRequest: {
    type: 'object',
    required: ['password'],
    properties: { password: { type: 'string', pattern: '^\\d{6}$', description: 'The 6-digit card password (核身).' } },
  },
  ChannelBindingAnswer: {
    type: 'object',
    required: ['card'],
    properties: {
      bound: { type: 'boolean' },
      unbound: { type: 'boolean' },
      changed: { type: 'boolean', description: 'Unbinding: false when nothing was bound.' },
      message: { type: 'string', description: 'zh-CN, for the holder.' },
      card: ref('EcardSummary'),
    },
  },
};

const schemas: Record<string, unknown> = {
  ErrorBody: {
    type: 'object',
    description: 'Every refusal of the gateway, whatever the status (except /healthz, whose 503 is a Health body).',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message', 'messageEn'],
        properties: {
          code: {
            type: 'string',
            pattern: '^[A-Z][A-Z0-9_]*$',
            description:
              'Stable machine code (UPPER_SNAKE_CASE): branch on this, never on the texts. Each operation lists the codes it may answer.',
          },
          message: { type: 'string', description: 'zh-CN, written for the cardholder: show it as is.' },
          messageEn: { type: 'string', description: 'English, for developers and logs; may carry details (never secrets).' },
          field: {
            type: 'string',
            description:
              'The request field (JSON body field or query parameter) the refusal is about: show the message next to that input.',
          },
          attemptsLeft: {
            type: 'integer',
            minimum: 0,
            description: `WRONG_PASSWORD: tries left today (of ${MAX_PASSWORD_ATTEMPTS_PER_DAY}); PASSWORD_LOCKED: 0.`,
          },
        },
      },
    },
  },
  SignInRequest: {
    type: 'object',
    required: ['provider', 'code'],
    properties: {
      provider: {
        type: 'string',
        enum: [...IDENTITY_PROVIDER_NAMES],
        description: 'wecom: the page inside WeCom (企业微信 OAuth); wechat: the WeChat mini-program (wx.login).',
      },
      code: {
        type: 'string',
        pattern: `^[A-Za-z0-9_-]{1,${MAX_CODE_LENGTH}}$`,
        maxLength: MAX_CODE_LENGTH,
        description:
          'The one-time code the provider gave the page (WeCom OAuth redirect `code`, or wx.login() `code`). Usable once, valid about 5 minutes.',
      },
    },
  },
  SessionTokens: {
    type: 'object',
    description:
      'The session tokens (HS256 JWTs, opaque to the page: never parse them). Send the access token as `Authorization: Bearer <accessToken>`; keep the refresh token only to get new access tokens.',
    required: ['accessToken', 'refreshToken', 'accessExpiresAtMs', 'sessionExpiresAtMs'],
    properties: {
      accessToken: {
        type: 'string',
        maxLength: MAX_TOKEN_LENGTH,
        description:
          'Short-lived (SESSION_ACCESS_TTL_SEC, default 900 s; never past the session end). Names the card bound when it was issued.',
      },
      refreshToken: {
        type: 'string',
        maxLength: MAX_TOKEN_LENGTH,
        description:
          'Lives as long as the session (SESSION_TTL_SEC, default 7 days); the same one is answered again by refresh (not rotated).',
      },
      accessExpiresAtMs: epochMs('When the access token stops working: refresh a little before.'),
      sessionExpiresAtMs: epochMs('When the session (and the refresh token) ends: sign in again after it.'),
    },
  },
  SignInAnswer: {
    allOf: [
      ref('SessionTokens'),
      {
        type: 'object',
        required: ['userId', 'bound'],
        properties: {
          userId: {
            type: 'string',
            pattern: '^(wecom|wechat):[A-Za-z0-9_.@-]{1,64}$',
            example: 'wecom:zhangsan',
            description: 'The namespaced user: `wecom:<userid>` or `wechat:<openid>`.',
          },
          bound: {
            type: 'boolean',
            description: 'A card is bound to this user: show the card; otherwise show the binding form (绑定校园卡).',
          },
        },
      },
    ],
  },
  RefreshRequest: {
    type: 'object',
    required: ['refreshToken'],
    properties: { refreshToken: { type: 'string', maxLength: MAX_TOKEN_LENGTH } },
  },
  LogoutAnswer: { type: 'object', required: ['loggedOut'], properties: { loggedOut: { type: 'boolean', enum: [true] } } },
  BindingForm: {
    type: 'object',
    description:
      'The binding form (绑定校园卡, guide figure 3). Checked field by field in this order; the first problem is answered with its field.',
    required: ['bindingType', 'personNumber', 'password', 'documentType', 'documentNumber', 'phone', 'consent'],
    properties: {
      bindingType: {
        type: 'string',
        enum: [...BINDING_TYPES],
        description: 'student 学生 / staff 教职工; must match the card record (BINDING_TYPE_MISMATCH).',
      },
      personNumber: { type: 'string', pattern: PERSON_NUMBER_PATTERN.source, description: '学号/工号: 4-20 letters or digits.' },
      password: pin(
        'The 6-digit card password (卡密码). The initial one is the last six characters of the document number, non-digits replaced by 1. Counted: 5 wrong a day lock it.',
      ),
      documentType: {
        type: 'string',
        enum: [...DOCUMENT_TYPES],
        description:
          'resident_id 身份证 / passport 护照 (foreign staff, Hong Kong / Macao / Taiwan and international students choose passport).',
      },
      documentNumber: {
        type: 'string',
        maxLength: 64,
        description:
          'Trimmed and upper-cased by the server. resident_id: 18 characters, `^\\d{17}[\\dX]$`; passport: `^[A-Z0-9]{5,20}$`. Must match the card record (DOCUMENT_MISMATCH).',
      },
      phone: {
        type: 'string',
        maxLength: 32,
        description:
          'Trimmed. 11 digits starting with 1, or `+` and 6-15 digits (country code first): `^(1\\d{10}|\\+\\d{6,15})$`. Must match the card record (PHONE_MISMATCH).',
      },
      consent: { type: 'boolean', enum: [true], description: 'The holder accepted 《隐私政策》 and 《服务协议》.' },
    },
  },
  BindingAnswer: {
    type: 'object',
    description:
      'The card now bound, and a new access token that names it: use it from now on (the previous access token still names no card and gets 403 NOT_BOUND on card routes). The refresh token is unchanged. ' +
      'If the session ended while the card was being bound (a logout on another page, or its end), the card is bound all the same: the answer is still 201, ' +
      'with signInAgain true, message/messageEn saying so and no token: sign in again (the sign-in answers bound: true). Do not bind again.',
    required: ['card'],
    properties: {
      card: ref('EcardSummary'),
      accessToken: { type: 'string', maxLength: MAX_TOKEN_LENGTH, description: 'Absent when signInAgain is true.' },
      accessExpiresAtMs: epochMs('When the new access token stops working.'),
      signInAgain: { type: 'boolean', description: 'True: bound, but the session ended meanwhile: sign in again.' },
      message: { type: 'string', description: 'zh-CN, for the holder (with signInAgain).' },
      messageEn: { type: 'string', description: 'English (with signInAgain).' },
    },
  },
  PasswordBody: {
    type: 'object',
    required: ['password'],
    properties: { password: pin("The 6-digit card password (counted: wrong ones use up the day's attempts).") },
  },
  UnbindAnswer: {
    type: 'object',
    description: 'The binding ended. Every session of the user ended with it (this one too): drop the tokens and sign in again.',
    required: ['unbound', 'cardNumber', 'endedSessions'],
    properties: {
      unbound: { type: 'boolean', enum: [true] },
      cardNumber: { type: 'string', pattern: '^\\d{4,20}$' },
      endedSessions: { type: 'integer', minimum: 0, description: 'How many sessions of the user were live (on every device).' },
    },
  },
  EcardSummary: {
    type: 'object',
    description: 'The bound card as the e-card page shows it (电子校园卡首页).',
    required: [
      'cardNumber',
      'maskedName',
      'holderType',
      'status',
      'balanceFen',
      'smallWalletFen',
      'synced',
      'initialPassword',
      'binding',
      'channels',
    ],
    properties: {
      cardNumber: { type: 'string', pattern: '^\\d{4,20}$', example: '20230001' },
      maskedName: { type: 'string', example: '张*', description: 'The holder name with all but the family name masked.' },
      holderType: { type: 'string', enum: ['student', 'staff', 'unknown'] },
      status: {
        type: 'string',
        enum: ['active', 'lost', 'frozen', 'cancelled'],
        description: 'active 正常 / lost 已挂失 / frozen 已冻结 / cancelled 已注销.',
      },
      balanceFen: fen('Card balance (余额).', { example: 12345 }),
      smallWalletFen: fen('Small wallet for water (小钱包).', { example: 0 }),
      synced: {
        type: 'boolean',
        description:
          'The physical card was tapped on a terminal since migration; false: ask the holder to tap it once (no campus QR code until then).',
      },
      initialPassword: { type: 'boolean', description: 'The card password is still the initial one: ask the holder to change it.' },
      binding: {
        type: 'object',
        required: ['userId', 'boundAtMs'],
        properties: { userId: { type: 'string' }, boundAtMs: epochMs('When the card was bound.') },
      },
      channels: ref('ChannelBindingStates'),
    },
  },
  CampusQr: {
    type: 'object',
    description:
      `A campus QR code (付款码) for the POS. \`code\` is ${CAMPUS_QR_TEXT_LENGTH} characters: \`CQ\` + RFC 4648 base32 (A-Z 2-7, no padding) of 48 bytes: ` +
      'version (1), the issue time (40-bit seconds), a 12-byte nonce (the single-use code id), the sealed card number and QR epoch, and an AES-256-GCM tag. ' +
      'Render it as a QR code in alphanumeric mode; do not parse it except to read the issue time. Each code pays once; it is refused after `expiresAtMs` ' +
      `(at most ${CAMPUS_QR_MAX_VALID_SEC} s after issue), and at once after a loss report, a freeze, a replacement or an unbinding. ` +
      `Show a new one (GET again) at \`refreshAtMs\` (every ${CAMPUS_QR_REFRESH_MS / 1000} s) and after every payment event that names this code (its \`qrCodeId\`).`,
    required: ['code', 'issuedAtMs', 'expiresAtMs', 'refreshAtMs'],
    properties: {
      code: { type: 'string', pattern: CAMPUS_QR_PATTERN.source, minLength: CAMPUS_QR_TEXT_LENGTH, maxLength: CAMPUS_QR_TEXT_LENGTH },
      issuedAtMs: epochMs('The issue time in the code (whole seconds).'),
      expiresAtMs: epochMs('The code is refused after this.'),
      refreshAtMs: epochMs('When the page should show a new code.'),
    },
  },
  StatementLine: {
    type: 'object',
    description: 'One line of the card statement (交易明细).',
    required: ['transactionId', 'kind', 'amountFen', 'balanceAfterFen', 'atMs', 'merchantId', 'location', 'description'],
    properties: {
      transactionId: { type: 'string', example: '1717400000000-0' },
      kind: {
        type: 'string',
        enum: [...STATEMENT_CATEGORIES],
        description:
          'payment 消费, recharge 充值, refund 退款, reversal 冲正, water 小钱包, fee 缴费 (and its return), adjustment 调账/开户.',
      },
      amountFen: fen("Signed from the holder's view: negative when money left the card (a payment, a fee), positive when it came in.", {
        example: -1200,
      }),
      balanceAfterFen: fen('The card balance right after this line.', { example: 11145 }),
      atMs: epochMs('When the switch decided it.'),
      merchantId: { type: 'string', description: "The terminal's merchant; '' when none." },
      location: { type: 'string', description: "The terminal's place (e.g. 一食堂二楼); '' when none." },
      description: { type: 'string', description: 'zh-CN, e.g. 消费, 微信充值, 网费, 电费退回.' },
    },
  },
  StatementPage: {
    type: 'object',
    description:
      `Newest first. A page may hold fewer than pageSize lines, even none, while \`nextPageToken\` is not empty (with a kinds filter at most ${MAX_STATEMENT_LINES_SCANNED} lines are looked at per request): ` +
      "keep asking while nextPageToken is not ''.",
    required: ['lines', 'nextPageToken'],
    properties: {
      lines: { type: 'array', items: ref('StatementLine'), maxItems: MAX_STATEMENT_PAGE_SIZE },
      nextPageToken: {
        type: 'string',
        maxLength: MAX_PAGE_TOKEN_LENGTH,
        description: "Pass as pageToken (with the same from/to/kinds) for the next page; '' on the last page.",
      },
    },
  },
  LossAnswer: {
    type: 'object',
    required: ['status', 'changed', 'message'],
    properties: {
      status: { type: 'string', enum: ['lost', 'active'], description: 'The card status now.' },
      changed: { type: 'boolean', description: 'False when the card already had that status (nothing changed).' },
      message: { type: 'string', description: 'zh-CN: 挂失成功 / 此卡已挂失 / 解挂成功 / 此卡未挂失.' },
    },
  },
  PasswordChange: {
    type: 'object',
    required: ['oldPassword', 'newPassword'],
    properties: {
      oldPassword: pin('The current card password (counted like any password entry).'),
      newPassword: pin(
        '6 digits; must differ from the old one and from the initial password (last six characters of the document number).',
      ),
    },
  },
  PasswordChangeAnswer: {
    type: 'object',
    required: ['changed', 'message'],
    properties: { changed: { type: 'boolean', enum: [true] }, message: { type: 'string', example: '密码修改成功' } },
  },
  NetworkFeeRequest: {
    type: 'object',
    description: 'A campus network top-up (网费) from the card balance.',
    required: ['requestId', 'amountFen', 'password', 'account'],
    properties: {
      requestId: requestIdSchema,
      amountFen: amountSchema,
      password: pin('The 6-digit card password (required on every try, retries included; counted).'),
      account: { type: 'string', pattern: NETWORK_ACCOUNT_PATTERN.source, description: 'The campus network account (校园网账号).' },
    },
  },
  ElectricityFeeRequest: {
    type: 'object',
    description: 'A dormitory electricity fee (电费) from the card balance.',
    required: ['requestId', 'amountFen', 'password', 'building', 'room'],
    properties: {
      requestId: requestIdSchema,
      amountFen: amountSchema,
      password: pin('The 6-digit card password (required on every try, retries included; counted).'),
      building: {
        type: 'string',
        minLength: 1,
        maxLength: 16,
        example: '学4',
        description: "The building (楼栋): 1-16 characters, no control characters, no '|', not starting with a space.",
      },
      room: { type: 'string', pattern: ROOM_PATTERN.source, example: '302', description: 'The room (房间号).' },
    },
  },
  FeeAnswer: {
    type: 'object',
    description:
      'The outcome of a fee (also for a replayed requestId). paid: delivered (receipt set); pending: the money is taken and the provider has not confirmed: retry with the SAME requestId later ' +
      '(never a new one) to learn the outcome, money that is not delivered is given back automatically; returned: the provider refused, the money is back on the card; ' +
      'declined: nothing was taken (reason says why).',
    required: ['outcome', 'reason', 'message', 'balanceAfterFen', 'transactionId', 'receipt'],
    properties: {
      outcome: { type: 'string', enum: ['paid', 'pending', 'returned', 'declined'] },
      reason: {
        type: 'string',
        enum: ['delivered', 'pending', 'given_back', 'insufficient_funds', 'card_lost', 'card_frozen', 'card_cancelled', 'unknown_card'],
        description: 'The ledger outcome; the four declines are insufficient_funds, card_lost, card_frozen, card_cancelled, unknown_card.',
      },
      message: { type: 'string', description: 'zh-CN for the holder, e.g. 缴费成功 / 余额不足 / 缴费失败（…），款项已退回.' },
      balanceAfterFen: fen('The card balance after this request (unchanged for a decline; 0 for unknown_card).'),
      transactionId: { type: 'string', description: "The debit (paid, pending), the give-back (returned); '' for declines." },
      receipt: { type: 'string', description: "The provider's receipt when paid; '' otherwise." },
    },
  },
  Health: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok', 'unavailable'] } } },

  // ---- the events socket: messages ------------------------------------------------------------
  EventsHello: {
    type: 'object',
    description: 'The first message on every socket: which card the stream is about, and the `since` it resumes from.',
    required: ['type', 'cardNumber'],
    properties: {
      type: { type: 'string', enum: ['hello'] },
      cardNumber: { type: 'string', pattern: '^\\d{4,20}$' },
      since: { type: 'string', description: "The `since` of the connection; '' when it started live." },
    },
    example: { type: 'hello', cardNumber: '20230001', since: '1717400000123-0' },
  },
  EventsResync: {
    type: 'object',
    description:
      `Some events after \`since\` cannot be delivered (more than ${MAX_CATCH_UP_EVENTS} missed, no longer kept, the binding started afresh, or the catch-up failed): ` +
      'reload the card (GET /api/v1/ecard, the statement) instead of trusting the picture; the events that could be read and the live ones follow.',
    required: ['type'],
    properties: { type: { type: 'string', enum: ['resync'] } },
  },
  EventsPong: {
    type: 'object',
    description: 'The answer to a client ping.',
    required: ['type'],
    properties: { type: { type: 'string', enum: ['pong'] } },
  },
  EventsPing: {
    type: 'object',
    description: `The only message a client sends (optional; at most ${DEFAULT_MAX_PAYLOAD_LENGTH} bytes, larger messages close the socket; anything else is ignored).`,
    required: ['type'],
    properties: { type: { type: 'string', enum: ['ping'] } },
  },
  CardEvent: {
    type: 'object',
    description:
      'Something that happened to the bound card, in the same step as the change itself (a page is never told of something that did not happen). ' +
      'Amounts in events are magnitudes (never negative): the type says the direction. Fields not listed for a type are absent. ' +
      'payment: amountFen, balanceFen, approved, declineReason (when declined), credential, qrCodeId (campus QR), terminalId, merchantId, transactionId. ' +
      'reversal / refund: amountFen (money back), balanceFen, terminalId, merchantId, transactionId. recharge: amountFen, balanceFen, channel, transactionId. ' +
      'card_status: status, previousStatus. fee: a fee was delivered: amountFen, balanceFen (after the debit), utility, receipt, transactionId. ' +
      'fee_returned: a fee was given back: amountFen, balanceFen, utility, reason, transactionId.',
    required: ['id', 'type', 'atMs'],
    properties: {
      id: {
        type: 'string',
        pattern: '^\\d{1,15}-\\d{1,15}$',
        description:
          'Strictly increasing per card (compare as <ms>,<seq> number pairs): remember the last one and send it as `since` when reconnecting.',
      },
      type: { type: 'string', enum: ['payment', 'reversal', 'refund', 'recharge', 'card_status', 'fee', 'fee_returned'] },
      atMs: epochMs('When it happened.'),
      amountFen: fen('The amount (a magnitude).', { minimum: 0 }),
      balanceFen: fen('The card balance after it.'),
      approved: { type: 'boolean', description: 'payment: approved or declined.' },
      declineReason: {
        type: 'string',
        description:
          'payment, when declined: INSUFFICIENT_FUNDS, CARD_LOST, CARD_FROZEN, UNKNOWN_CARD, CARD_REPLACED, ALREADY_REVERSED, DAILY_LIMIT_EXCEEDED, CARD_CANCELLED, QR_INVALID, QR_EXPIRED, QR_USED, or DECLINED.',
      },
      credential: { type: 'string', enum: ['card', 'campus_qr'], description: 'payment: the physical card or a campus QR code.' },
      qrCodeId: {
        type: 'string',
        description:
          'payment with a campus QR code: the code id (base64url of the 12 nonce bytes, bytes 6..17 of the base32-decoded payload): the code on screen was used, show a new one.',
      },
      terminalId: { type: 'string' },
      merchantId: { type: 'string' },
      location: { type: 'string', description: "The terminal's place (e.g. 一食堂二楼), when it has one." },
      channel: { type: 'string', enum: [...RECHARGE_CHANNELS], description: 'recharge: how the money came in.' },
      utility: { type: 'string', enum: [...UTILITY_KINDS], description: 'fee / fee_returned.' },
      receipt: { type: 'string', description: "fee: the provider's receipt." },
      reason: { type: 'string', description: 'fee_returned: why the provider did not deliver (zh-CN).' },
      status: { type: 'string', enum: ['active', 'lost', 'frozen', 'cancelled'], description: 'card_status: the new status.' },
      previousStatus: { type: 'string', enum: ['active', 'lost', 'frozen', 'cancelled'], description: 'card_status: the status before.' },
      transactionId: { type: 'string', description: 'The journal entry (matches StatementLine.transactionId).' },
    },
    example: {
      id: '1717400000123-0',
      type: 'payment',
      atMs: 1717400000123,
      amountFen: 1200,
      balanceFen: 11145,
      approved: true,
      credential: 'campus_qr',
      qrCodeId: 'q2Jd8m1Xb0fV3kLp',
      terminalId: 'POS-C1-017',
      merchantId: 'canteen-1',
      location: '一食堂二楼',
      transactionId: '1717400000123-0',
    },
  },
  EventsServerMessage: {
    description: 'Every message the server sends: JSON text frames, one message each.',
    oneOf: [ref('EventsHello'), ref('EventsResync'), ref('EventsPong'), ref('CardEvent')],
  },
  ...RECHARGE_SCHEMAS,
  ...CHANNEL_BINDING_SCHEMAS,
};

// ---- operations --------------------------------------------------------------------------------

const RECHARGE_AMOUNT = r(
  400,
  'AMOUNT_OUT_OF_RANGE',
  '微信充值单笔金额为0.01-999.00元',
  "amountFen is outside 1 .. the channel's single-recharge maximum",
  { field: 'amountFen' },
);
const RECHARGE_REFUSALS = [
  invalidField('channel', '请选择充值方式（支付宝或微信）', 'channel is not alipay or wechat'),
  invalidField('requestId', '请求编号无效，请刷新页面后重试', 'requestId is not 1-64 of A-Z a-z 0-9 _ -'),
  invalidField('amountFen', '请输入充值金额', 'amountFen is not a whole number'),
  RECHARGE_AMOUNT,
  r(
    409,
    'DAILY_RECHARGE_LIMIT',
    '超过当日充值限额，今日还可充值…元',
    "today's recharges and unpaid orders with this one pass DAILY_RECHARGE_LIMIT_FEN",
    { field: 'amountFen' },
  ),
  r(409, 'CHANNEL_NOT_AVAILABLE', '暂不支持…充值', 'this switch has no such channel configured', { field: 'channel' }),
  r(
    409,
    'ORDER_FINISHED',
    '该充值订单已完成或已过期，请重新发起充值',
    "this requestId's order is paid, closed or about to expire: use a new requestId",
    { field: 'requestId' },
  ),
  r(409, 'CARD_CANCELLED', '此卡已注销，不能充值', 'the card is cancelled'),
  r(
    429,
    'TOO_MANY_OPEN_ORDERS',
    '未支付的充值订单过多，请先完成支付或稍后再试',
    'the card has 5 unpaid orders: pay one or wait until they expire',
    { retryAfterSec: 1 },
  ),
  r(503, 'CHANNEL_UNAVAILABLE', '…暂时无法下单，请稍后重试', 'the channel did not answer: retry with the same requestId', {
    retryAfterSec: 2,
  }),
];

const RECHARGE_PATHS: Record<string, unknown> = {
  '/api/v1/ecard/recharge-orders': {
    post: {
      operationId: 'createRechargeOrder',
      tags: ['recharge'],
      summary: 'Make a recharge order paid through Alipay or WeChat (校园卡充值)',
      description:
        'Answers what the phone pays with (a QR, or WeChat JSAPI parameters when the holder signed in through WeChat). The card is credited only when the channel says the order is paid ' +
        '(its signed notification, or the switch asking the channel), exactly once; the events socket then carries a recharge event. ' +
        "The amount counts against the day's recharge maximum from the moment the order is made until it is paid or closed.",
      requestBody: jsonBody('RechargeOrderRequest', 'The recharge.'),
      responses: {
        '201': jsonAnswer('RechargeOrderCreated', 'The order, pending, and what to pay with.'),
        ...errorResponses([...BODY, INVALID_BODY, ...RECHARGE_REFUSALS, ...AUTH, ...BOUND, IDEMPOTENCY_CONFLICT, UNAVAILABLE, INTERNAL]),
      },
    },
  },
  '/api/v1/ecard/recharge-orders/{id}': {
    get: {
      operationId: 'rechargeOrderState',
      tags: ['recharge'],
      summary: "A recharge order's state",
      description:
        'pending, paid, expired or closed. A pending order older than RECHARGE_QUERY_DELAY_MS is first asked about at the channel (its notification may have been lost), so polling this settles it.',
      parameters: [{ name: 'id', in: 'path', required: true, schema: ORDER_ID_SCHEMA }],
      responses: {
        '200': jsonAnswer('RechargeOrderState', 'The order.'),
        ...errorResponses([
          ...AUTH,
          ...BOUND,
          r(404, 'ORDER_NOT_FOUND', '找不到该充值订单', 'no order with this id of this card'),
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  '/api/v1/channels/{channel}/notify': {
    post: {
      operationId: 'channelNotify',
      tags: ['recharge'],
      summary: "A payment channel's notification (for Alipay and WeChat Pay, not for pages)",
      description:
        "The notify_url of every order. No bearer token: the channel's signature over the raw body is the authentication (Alipay: form-encoded RSA2; WeChat Pay: APIv3 JSON with Wechatpay-* headers), at most 64 KiB. " +
        'Answered as the channel expects: Alipay `success` / `fail`, WeChat Pay `{"code":"SUCCESS"}` (200) / `{"code":"FAIL"}` (500). A notification that does not verify gets the failure answer and credits nothing; ' +
        'a verified one for an unknown order, another amount, or an unpaid state is acknowledged, credits nothing and is logged for reconciliation.',
      security: [],
      parameters: [{ name: 'channel', in: 'path', required: true, schema: { type: 'string', enum: ['alipay', 'wechat'] } }],
      requestBody: {
        required: true,
        content: {
          'application/x-www-form-urlencoded': { schema: { type: 'object' } },
          'application/json': { schema: { type: 'object' } },
        },
      },
      responses: {
        '200': { description: 'Handled (the channel stops resending).', content: { 'text/plain': { schema: { type: 'string' } } } },
        ...errorResponses([PAYLOAD_TOO_LARGE, r(404, 'NOT_FOUND', '找不到该页面或接口', 'no such channel here'), INTERNAL]),
      },
    },
  },
};

const CHANNEL_NOT_CONFIGURED = r(409, 'CHANNEL_NOT_CONFIGURED', '本校暂未开通支付宝付款', 'this switch has no Alipay channel configured');
const PAYER_BINDING_CONFLICTS = [
  r(
    409,
    'PAYER_BOUND_TO_OTHER_CARD',
    '该支付宝账户已绑定其他校园卡，请先解绑',
    'the payer is bound to another card: unbind it there first',
  ),
  r(
    409,
    'CARD_BOUND_TO_OTHER_PAYER',
    '该校园卡已绑定其他支付宝账户，请先解绑',
    'the card has another payer of the channel: unbind it first',
  ),
  r(409, 'BINDING_IN_PROGRESS', '正在处理上一次绑定/解绑请求，请稍候', 'a binding or unbinding of this payer is running: retry'),
];
const STATE_REFUSALS = [
  r(403, 'STATE_INVALID', '授权链接无效，请回到E卡通页面重新发起绑定', 'state is missing or not one this switch signed', {
    field: 'state',
  }),
  r(409, 'STATE_EXPIRED', '授权已超时，请回到E卡通页面重新发起绑定', 'the authorisation was started more than 10 minutes ago', {
    field: 'state',
  }),
  r(
    409,
    'STATE_USED',
    '该授权链接已使用过，不能再次使用。请回到E卡通个人中心查看支付宝核身状态：仍为未绑定时再重新发起绑定',
    'this state already bound (or tried to bind) once',
    { field: 'state' },
  ),
  r(400, 'AUTH_CODE_INVALID', '支付宝授权未完成，请重新发起绑定', 'auth_code is missing or too long', { field: 'auth_code' }),
  r(409, 'AUTH_CODE_INVALID', '支付宝授权已失效，请重新发起绑定', 'Alipay refused the auth_code (expired or used)', { field: 'auth_code' }),
  r(503, 'CHANNEL_UNAVAILABLE', '支付宝暂时无法确认授权，请稍后刷新重试', 'Alipay did not answer the code exchange: reload the callback'),
];

const CHANNEL_BINDING_PATHS: Record<string, unknown> = {
  '/api/v1/ecard/channels/alipay/authorize': {
    post: {
      operationId: 'authorizeAlipay',
      tags: ['channel-binding'],
      summary: 'Start binding Alipay to the card (支付宝 个人信息绑定)',
      description:
        "Answers Alipay's authorisation page for this holder. After the holder confirms, Alipay sends the browser to GET /api/v1/channels/alipay/oauth-callback, which binds. " +
        "The state inside the URL is signed, tied to this session and card, single use, and valid 10 minutes. The card summary's channels.alipay shows the result.",
      responses: {
        '200': jsonAnswer('AlipayAuthorization', 'Where to send the holder.'),
        ...errorResponses([...AUTH, ...BOUND, CHANNEL_NOT_CONFIGURED, UNAVAILABLE, INTERNAL]),
      },
    },
  },
  '/api/v1/channels/alipay/oauth-callback': {
    get: {
      operationId: 'alipayOauthCallback',
      tags: ['channel-binding'],
      summary: "Alipay's redirect after the holder confirmed the authorisation (for Alipay, not for pages)",
      description:
        "No bearer token: the signed state says who asked. Binds the Alipay user of auth_code (alipay.system.oauth.token) to the state's card while its session is live and the card is still the user's. " +
        'A forged, expired or replayed state binds nothing. Answers a small page (zh-CN, English) the holder reads; refusals are the JSON error body.',
      security: PUBLIC,
      parameters: [
        { name: 'auth_code', in: 'query', required: true, schema: { type: 'string', maxLength: 64 } },
        { name: 'state', in: 'query', required: true, schema: { type: 'string', maxLength: 400 } },
      ],
      responses: {
        '200': { description: 'Bound: a page saying so.', content: { 'text/html': { schema: { type: 'string' } } } },
        ...errorResponses([
          ...STATE_REFUSALS,
          SESSION_ENDED,
          NOT_BOUND_NOW,
          CHANNEL_NOT_CONFIGURED,
          ...PAYER_BINDING_CONFLICTS,
          r(409, 'CARD_CANCELLED', '该卡已注销', 'the card is cancelled'),
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  '/api/v1/ecard/channels/wechat/bind': {
    post: {
      operationId: 'bindWechat',
      tags: ['channel-binding'],
      summary: 'Bind WeChat to the card (微信 核身绑定)',
      description:
        "Inside the WeChat mini-program: the card password confirms the holder, and the openid they signed in with becomes the card's WeChat payer. " +
        'A WeCom sign-in has no WeChat openid and is refused (WECHAT_MINIPROGRAM_REQUIRED). Binding again changes nothing.',
      requestBody: jsonBody('WechatBindRequest', 'The card password.'),
      responses: {
        '200': jsonAnswer('ChannelBindingAnswer', 'Bound; the card with channels.wechat bound.'),
        ...errorResponses([
          ...BODY,
          invalidField('password', '请输入6位卡密码', 'password is missing or not a string'),
          ...PASSWORD,
          ...AUTH,
          ...BOUND,
          r(
            409,
            'WECHAT_MINIPROGRAM_REQUIRED',
            '请在微信小程序“信息科大E卡通”中登录后完成微信核身绑定',
            'signed in through WeCom: no WeChat openid',
          ),
          ...PAYER_BINDING_CONFLICTS,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  '/api/v1/ecard/channels/{channel}': {
    delete: {
      operationId: 'unbindChannel',
      tags: ['channel-binding'],
      summary: 'Unbind Alipay or WeChat from the card (解绑)',
      description: 'No password: it only takes a way of paying away. changed is false when nothing was bound.',
      parameters: [{ name: 'channel', in: 'path', required: true, schema: { type: 'string', enum: ['alipay', 'wechat'] } }],
      responses: {
        '200': jsonAnswer('ChannelBindingAnswer', 'Unbound; the card with the channel unbound.'),
        ...errorResponses([
          r(400, 'CHANNEL_INVALID', '支付渠道应为支付宝或微信', 'channel is not alipay or wechat', { field: 'channel' }),
          ...AUTH,
          ...BOUND,
          PAYER_BINDING_CONFLICTS[2] as Refusal,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
};

const CARD_TAG = 'card';

const paths: Record<string, unknown> = {
  '/api/v1/session': {
    post: {
      operationId: 'signIn',
      tags: ['session'],
      summary: 'Sign in with a WeCom or WeChat mini-program code (登录)',
      description:
        'The page inside WeCom gets `code` from the WeCom OAuth redirect (snsapi_base); the mini-program from `wx.login()`. The switch exchanges it at the provider ' +
        '(WeCom: members only) and starts a session. `bound` says whether to show the card or the binding form. Each code works once: after INVALID_CODE reload the page for a new one.',
      security: PUBLIC,
      requestBody: jsonBody('SignInRequest', 'The provider and its one-time code.'),
      responses: {
        '201': jsonAnswer('SignInAnswer', 'Signed in: a new session.'),
        ...errorResponses([
          ...BODY,
          INVALID_BODY,
          invalidField('provider', '请选择登录方式', 'provider is not a string'),
          invalidField('code', '缺少登录凭证，请重新进入页面', 'code is not a string'),
          UNKNOWN_PROVIDER,
          MALFORMED_CODE,
          REJECTED_CODE,
          NOT_A_MEMBER,
          HIGH_RISK_USER,
          PROVIDER_DISABLED,
          IDENTITY_UNAVAILABLE,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
    delete: {
      operationId: 'logout',
      tags: ['session'],
      summary: 'Log out (退出登录)',
      description:
        'Ends this session: its access and refresh tokens stop working at once (on this device only). Needs a valid access token: refresh first if it expired.',
      responses: {
        '200': jsonAnswer('LogoutAnswer', 'The session ended.'),
        ...errorResponses([...AUTH, UNAVAILABLE, INTERNAL]),
      },
    },
  },
  '/api/v1/session/refresh': {
    post: {
      operationId: 'refreshSession',
      tags: ['session'],
      summary: 'A new access token for the refresh token (续期)',
      description:
        'Answers a new access token naming the card the user has bound now, and the same refresh token. Call it shortly before accessExpiresAtMs, or once after a 401 TOKEN_EXPIRED. ' +
        'A refresh token of an ended session (logout, unbinding) or past sessionExpiresAtMs is refused: sign in again.',
      security: PUBLIC,
      requestBody: jsonBody('RefreshRequest', 'The refresh token of the session.'),
      responses: {
        '200': jsonAnswer('SessionTokens', 'A new access token (the refresh token is the same).'),
        ...errorResponses([
          ...BODY,
          INVALID_BODY,
          invalidField('refreshToken', '登录已过期，请重新进入页面', 'refreshToken is not a string'),
          ...AUTH,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  '/api/v1/ecard/binding': {
    post: {
      operationId: 'bindEcard',
      tags: ['binding'],
      summary: 'Bind a campus card to the signed-in user (绑定校园卡)',
      description:
        "One card per user and one user per card. Order of the checks: the form (400, field by field), the student/staff number (404), the user's other binding, " +
        "binding type, card status, synchronisation and another user's binding (409, before the password is counted), the card password (403/429, counted), " +
        'then document and phone against the card record (409). Every attempt is written to the operator log (never the password or the document number). ' +
        'Binding again the card already bound to the user answers 201 as well. The answer carries a new access token that names the card: use it from now on.',
      requestBody: jsonBody('BindingForm', 'The binding form.'),
      responses: {
        '201': jsonAnswer('BindingAnswer', 'Bound.'),
        ...errorResponses([
          ...BODY,
          INVALID_BODY,
          ...BINDING_FORM,
          ...AUTH,
          WRONG_PASSWORD,
          CARD_NOT_FOUND_FOR_PERSON,
          CARD_RECORD_GONE,
          BINDING_IN_PROGRESS,
          USER_ALREADY_BOUND,
          CARD_BOUND_ELSEWHERE,
          BINDING_TYPE_MISMATCH,
          CARD_LOST,
          CARD_FROZEN,
          CARD_CANCELLED,
          CARD_NOT_SYNCED,
          DOCUMENT_MISMATCH,
          PHONE_MISMATCH,
          PASSWORD_LOCKED,
          PASSWORD_BUSY,
          PASSWORD_CHECK_BUSY,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
    delete: {
      operationId: 'unbindEcard',
      tags: ['binding'],
      summary: 'Unbind the card (解除绑定), card password required',
      description:
        'Ends the binding: every campus QR code of it dies at once, the event stream starts afresh, and every session of the user (on every device, this one too) ends: ' +
        'drop the tokens and sign in again. The password travels in a JSON body on DELETE (send Content-Type: application/json).',
      requestBody: jsonBody('PasswordBody', 'The card password.'),
      responses: {
        '200': jsonAnswer('UnbindAnswer', 'Unbound; all sessions of the user ended.'),
        ...errorResponses([
          ...BODY,
          INVALID_BODY,
          invalidField('password', '请输入6位卡密码', 'password is not a string'),
          ...AUTH,
          ...PASSWORD,
          BINDING_IN_PROGRESS,
          NOT_BOUND_NOW,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  '/api/v1/ecard': {
    get: {
      operationId: 'getEcard',
      tags: [CARD_TAG],
      summary: 'The bound card: balance, status, holder (电子校园卡)',
      description: 'One read of the card. Reload it after a `resync` on the events socket and when the page comes back to the foreground.',
      responses: {
        '200': jsonAnswer('EcardSummary', 'The card.'),
        ...errorResponses([...AUTH, ...BOUND, UNAVAILABLE, INTERNAL]),
      },
    },
  },
  '/api/v1/ecard/qr': {
    get: {
      operationId: 'issueCampusQr',
      tags: [CARD_TAG],
      summary: 'A new campus QR code for paying at a POS (付款码)',
      description:
        "Only for an active, synced card. Ask for a new one at refreshAtMs, when the page is shown again, and after a payment event with this code's qrCodeId. Never cache codes.",
      responses: {
        '200': jsonAnswer('CampusQr', 'A fresh code.'),
        ...errorResponses([
          ...AUTH,
          ...BOUND,
          r(409, 'CARD_LOST', '此卡已挂失，请先解挂后再使用电子校园卡', 'the card is reported lost: no code is issued'),
          r(409, 'CARD_FROZEN', '此卡已被卡务中心冻结，请到卡务中心办理', 'the card is frozen: no code is issued'),
          r(409, 'CARD_CANCELLED', '此卡已注销', 'the card is cancelled: no code is issued'),
          r(409, 'CARD_NOT_SYNCED', CARD_NOT_SYNCED.zh, 'the card (a new replacement card?) was not tapped on a terminal yet'),
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  '/api/v1/ecard/statement': {
    get: {
      operationId: 'getStatement',
      tags: [CARD_TAG],
      summary: 'The card statement, newest first, paged (交易明细)',
      description:
        'Filters by time and kind; page with nextPageToken. Changing from/to/kinds starts from the first page again (a token is tied to its card and filter).',
      parameters: [
        {
          name: 'from',
          in: 'query',
          required: false,
          schema: { type: 'integer', format: 'int64', minimum: 0, maximum: 999_999_999_999_999 },
          description: `Inclusive lower bound. ${MS} Absent or 0: unbounded. Must be before \`to\`.`,
        },
        {
          name: 'to',
          in: 'query',
          required: false,
          schema: { type: 'integer', format: 'int64', minimum: 0, maximum: 999_999_999_999_999 },
          description: `Exclusive upper bound. ${MS} Absent or 0: unbounded.`,
        },
        {
          name: 'kinds',
          in: 'query',
          required: false,
          style: 'form',
          explode: false,
          schema: { type: 'array', items: { type: 'string', enum: [...STATEMENT_CATEGORIES] } },
          description: 'Comma-separated, e.g. `payment,recharge`. Absent: every kind.',
        },
        {
          name: 'pageSize',
          in: 'query',
          required: false,
          schema: { type: 'integer', minimum: 1, maximum: MAX_STATEMENT_PAGE_SIZE, default: DEFAULT_STATEMENT_PAGE_SIZE },
        },
        {
          name: 'pageToken',
          in: 'query',
          required: false,
          schema: { type: 'string', maxLength: MAX_PAGE_TOKEN_LENGTH },
          description: "The previous page's nextPageToken; absent for the first page.",
        },
      ],
      responses: {
        '200': jsonAnswer('StatementPage', 'One page.'),
        ...errorResponses([
          invalidField('from', '日期范围有误 / 开始日期应早于结束日期', 'from is not a millisecond count, or not before to'),
          invalidField('to', '日期范围有误', 'to is not a millisecond count'),
          invalidField('kinds', '流水类型有误', `kinds may hold ${STATEMENT_CATEGORIES.join(', ')}`),
          invalidField('pageSize', '每页条数有误', `pageSize must be 1..${MAX_STATEMENT_PAGE_SIZE}`),
          r(
            400,
            'PAGE_TOKEN_INVALID',
            '翻页信息已失效，请从第一页重新查看',
            'pageToken was not issued for this card and filter (or was altered): ask for the first page again',
          ),
          ...AUTH,
          ...BOUND,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  '/api/v1/ecard/loss': {
    post: {
      operationId: 'reportLoss',
      tags: [CARD_TAG],
      summary: 'Report the card lost (挂失), no password needed',
      description:
        'A stolen card must be stoppable at once, so the signed-in holder needs no password. The card and every campus QR code stop working. ' +
        'Reporting a lost card again changes nothing (changed: false). No body is needed (an empty JSON object is fine).',
      requestBody: { required: false, content: { 'application/json': { schema: { type: 'object' } } } },
      responses: {
        '200': jsonAnswer('LossAnswer', 'The card is lost now.'),
        ...errorResponses([...BODY, ...AUTH, ...BOUND, STATUS_CARD_NOT_FOUND, LOSS_FROZEN, LOSS_CANCELLED, UNAVAILABLE, INTERNAL]),
      },
    },
  },
  '/api/v1/ecard/loss/cancel': {
    post: {
      operationId: 'cancelLoss',
      tags: [CARD_TAG],
      summary: 'Cancel a loss report (解挂), card password required',
      description: 'The card works again (fetch a new campus QR code). Cancelling on an active card changes nothing (changed: false).',
      requestBody: jsonBody('PasswordBody', 'The card password.'),
      responses: {
        '200': jsonAnswer('LossAnswer', 'The card is active now.'),
        ...errorResponses([
          ...BODY,
          INVALID_BODY,
          invalidField('password', '请输入6位卡密码', 'password is not a string'),
          ...AUTH,
          ...BOUND,
          ...PASSWORD,
          STATUS_CARD_NOT_FOUND,
          LOSS_FROZEN,
          LOSS_CANCELLED,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  '/api/v1/ecard/password': {
    post: {
      operationId: 'changePassword',
      tags: [CARD_TAG],
      summary: 'Change the card password (修改卡密码)',
      description:
        'The old password is checked and counted like any entry. The new one is 6 digits, differs from the old one and from the initial password. ' +
        'It is the card password everywhere (POS, kiosk, phone).',
      requestBody: jsonBody('PasswordChange', 'The old and the new password.'),
      responses: {
        '200': jsonAnswer('PasswordChangeAnswer', 'Changed.'),
        ...errorResponses([
          ...BODY,
          INVALID_BODY,
          invalidField('oldPassword', '请输入6位卡密码', 'oldPassword is not a string'),
          invalidField('newPassword', '请输入6位新密码', 'newPassword is not a string'),
          r(400, 'INVALID_NEW_PASSWORD', '新密码应为6位数字', 'the new password is not exactly 6 digits', { field: 'newPassword' }),
          r(400, 'NEW_PASSWORD_SAME', '新密码不能与原密码相同', 'the new password equals the old one', { field: 'newPassword' }),
          r(
            400,
            'NEW_PASSWORD_INITIAL',
            '新密码不能是初始密码（证件号后六位）',
            'the new password is the initial one (the last six characters of the document number)',
            { field: 'newPassword' },
          ),
          r(
            409,
            'PASSWORD_CHANGED_MEANWHILE',
            '密码刚被其他操作修改，本次修改未生效，请用当前密码重试',
            'another change of the password was stored after the old password was checked; this one was not made',
          ),
          ...AUTH,
          ...BOUND,
          ...PASSWORD,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  '/api/v1/ecard/fees/network': {
    post: {
      operationId: 'payNetworkFee',
      tags: ['fees'],
      summary: 'Pay a campus network fee from the card (网费充值)',
      description: feeDescription(),
      requestBody: jsonBody('NetworkFeeRequest', 'The fee.'),
      responses: {
        '200': jsonAnswer('FeeAnswer', 'The outcome (including declines: read `outcome`).'),
        ...errorResponses([
          ...BODY,
          INVALID_BODY,
          invalidField('account', '请输入校园网账号', 'account is not a string'),
          invalidField('requestId', '请求编号无效，请刷新页面后重试', 'requestId is not a whole number'),
          invalidField('amountFen', '请输入缴费金额（1.00-500.00元）', 'amountFen is not a whole number'),
          invalidField('password', '请输入6位卡密码', 'password is not a string'),
          INVALID_REQUEST_ID,
          FEE_ARGUMENT,
          ...AUTH,
          ...BOUND,
          ...PASSWORD,
          IDEMPOTENCY_CONFLICT,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  '/api/v1/ecard/fees/electricity': {
    post: {
      operationId: 'payElectricityFee',
      tags: ['fees'],
      summary: 'Pay a dormitory electricity fee from the card (电费充值)',
      description: feeDescription(),
      requestBody: jsonBody('ElectricityFeeRequest', 'The fee.'),
      responses: {
        '200': jsonAnswer('FeeAnswer', 'The outcome (including declines: read `outcome`).'),
        ...errorResponses([
          ...BODY,
          INVALID_BODY,
          invalidField('building', '请输入楼栋', 'building is not a string'),
          invalidField('room', '请输入房间号', 'room is not a string'),
          invalidField('requestId', '请求编号无效，请刷新页面后重试', 'requestId is not a whole number'),
          invalidField('amountFen', '请输入缴费金额（1.00-500.00元）', 'amountFen is not a whole number'),
          invalidField('password', '请输入6位卡密码', 'password is not a string'),
          INVALID_REQUEST_ID,
          FEE_ARGUMENT,
          ...AUTH,
          ...BOUND,
          ...PASSWORD,
          IDEMPOTENCY_CONFLICT,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
    },
  },
  ...RECHARGE_PATHS,
  ...CHANNEL_BINDING_PATHS,
  [EVENTS_PATH]: {
    get: {
      operationId: 'cardEvents',
      tags: ['events'],
      summary: 'Live events of the bound card over a WebSocket (实时动态)',
      description: [
        `A WebSocket, not a JSON resource: open \`wss://<host>${EVENTS_PATH}?since=<last event id>\` offering two subprotocols, \`${EVENTS_PROTOCOL}\` first and \`${EVENTS_BEARER_PREFIX}<accessToken>\` ` +
          `(browsers cannot set headers on a WebSocket): \`new WebSocket(url, ['${EVENTS_PROTOCOL}', '${EVENTS_BEARER_PREFIX}' + accessToken])\`. The server answers 101 and echoes \`${EVENTS_PROTOCOL}\`; ` +
          'a refused upgrade is answered with the usual status and error body instead.',
        '',
        `Server messages (JSON text frames, see x-websocket-messages): \`{"type":"hello","cardNumber":...}\` first; then, when \`since\` was given, the events after it (at most ${MAX_CATCH_UP_EVENTS}), ` +
          'or `{"type":"resync"}` when some are no longer kept (reload the card); then one CardEvent per message as things happen. The client may send `{"type":"ping"}` and gets `{"type":"pong"}`. ' +
          'Ignore an event whose id is not after the last one you processed. Without `since` the stream starts live.',
        '',
        `Closing: a client that stops reading is dropped once more than GATEWAY_WS_MAX_BACKPRESSURE_BYTES (default 65536) wait to be sent to it; a socket silent for GATEWAY_WS_IDLE_TIMEOUT_SEC ` +
          `(default 120 s; the server pings, browsers answer by themselves) is closed; a client message over ${DEFAULT_MAX_PAYLOAD_LENGTH} bytes closes it; shutdown closes with 1001. ` +
          `Close code ${CLOSE_SESSION_ENDED}: the session or the binding ended (logout, unbinding): do not reconnect, sign in again. ` +
          'On any other close, reconnect with backoff and `since` = the last event id (refresh the access token first when it is close to expiry).',
      ].join('\n'),
      security: [{ websocketBearer: [] }],
      parameters: [
        {
          name: 'since',
          in: 'query',
          required: false,
          schema: { type: 'string', pattern: '^\\d{1,15}-\\d{1,15}$' },
          description: 'The id of the last event the page processed; absent on a first connection.',
        },
        {
          name: 'Sec-WebSocket-Protocol',
          in: 'header',
          required: true,
          schema: { type: 'string' },
          example: `${EVENTS_PROTOCOL}, ${EVENTS_BEARER_PREFIX}eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2ln`,
          description: `The offered subprotocols: \`${EVENTS_PROTOCOL}\` and \`${EVENTS_BEARER_PREFIX}<accessToken>\` (set by the WebSocket constructor's second argument).`,
        },
      ],
      responses: {
        '101': {
          description: 'Switching protocols: the socket is open; the first message is EventsHello.',
          headers: {
            'Sec-WebSocket-Protocol': { description: 'The chosen subprotocol.', schema: { type: 'string', enum: [EVENTS_PROTOCOL] } },
          },
        },
        ...errorResponses([
          PROTOCOL_REQUIRED,
          INVALID_SINCE,
          ...AUTH,
          ...BOUND,
          NOT_A_HANDSHAKE,
          TOO_MANY_CARD_SOCKETS,
          TOO_MANY_CONNECTIONS,
          UNAVAILABLE,
          INTERNAL,
        ]),
      },
      'x-websocket-messages': {
        subprotocol: EVENTS_PROTOCOL,
        server: [ref('EventsHello'), ref('EventsResync'), ref('EventsPong'), ref('CardEvent')],
        client: [ref('EventsPing')],
      },
    },
  },
  '/healthz': {
    get: {
      operationId: 'health',
      tags: ['operations'],
      summary: 'Readiness for load balancers',
      description: 'No authentication. 503 when the switch is not ready (its check failed or did not answer within 2 s).',
      security: PUBLIC,
      responses: {
        '200': { description: 'Ready.', content: { 'application/json': { schema: ref('Health'), example: { status: 'ok' } } } },
        '503': {
          description: 'Not ready.',
          content: { 'application/json': { schema: ref('Health'), example: { status: 'unavailable' } } },
        },
      },
    },
  },
  '/metrics': {
    get: {
      operationId: 'metrics',
      tags: ['operations'],
      summary: 'Prometheus metrics',
      description:
        'For the monitoring system, not for phones: with GATEWAY_METRICS_TOKEN set, the scraper sends `Authorization: Bearer <token>`; without it, only scrapers on loopback are answered (403 METRICS_FORBIDDEN otherwise).',
      security: PUBLIC,
      responses: {
        '200': {
          description: 'The Prometheus text exposition format.',
          content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: { type: 'string' } } },
        },
        ...errorResponses([r(403, 'METRICS_FORBIDDEN', '无权访问', 'not a loopback scraper, and no (or a wrong) metrics token'), INTERNAL]),
      },
    },
  },
  [OPENAPI_PATH]: {
    get: {
      operationId: 'openApi',
      tags: ['operations'],
      summary: 'This document (OpenAPI 3.0.3)',
      security: PUBLIC,
      responses: {
        '200': { description: 'The document.', content: { 'application/json': { schema: { type: 'object' } } } },
      },
    },
  },
};

function feeDescription(): string {
  return (
    `Pays from the card balance (${MIN_FEE_FEN}..${MAX_FEE_FEN} fen) with the card password. Idempotent per requestId: a retry with the same requestId (after a timeout, a 503, ` +
    'a lost answer, or a pending outcome) replays the answer and never pays twice; the same requestId with another amount or target is 409 IDEMPOTENCY_CONFLICT. ' +
    'Every try needs the password again, and a wrong one is counted. A 200 is not necessarily a payment: read `outcome`. ' +
    'pending: show 缴费结果待确认 and retry later with the same requestId; money that is not delivered is given back by itself. ' +
    'Requests are remembered for REQUEST_TTL_DAYS (default 7 days).'
  );
}

const info = {
  title: 'cardswitch gateway: e-card page API (电子校园卡)',
  version: '1.0.0',
  description: [
    "The HTTP/WebSocket API the cardholder's phone uses: the e-card page inside WeCom (企业微信) and the WeChat mini-program. Human reference: docs/gateway-api.md.",
    '',
    `- Money is always integer fen (\`amountFen\`, \`balanceFen\`, ...; 1 yuan = 100 fen), never decimals. Times are ${MS.toLowerCase()}`,
    '- Authentication: `Authorization: Bearer <accessToken>` from POST /api/v1/session (all routes but sign-in, refresh and the operations routes); the events socket takes it as a subprotocol.',
    '- Bodies are JSON objects sent with `Content-Type: application/json`, at most GATEWAY_MAX_BODY_BYTES (default 16384 bytes: 413 beyond, 415 for another type, 400 MALFORMED_JSON for broken JSON).',
    '- Every refusal is `{ "error": { "code", "message" (zh-CN, show it), "messageEn", "field"?, "attemptsLeft"? } }`; branch on `code`. 404 NOT_FOUND for an unknown path, 405 METHOD_NOT_ALLOWED (with Allow) for another method on a known one.',
    '- 401 answers carry `WWW-Authenticate: Bearer`; 429 and 503 answers carry `Retry-After` where a retry makes sense.',
    '- Every answer has `Cache-Control: no-store`. There is no CORS support (OPTIONS is 405): serve the web page from the same origin as the API.',
  ].join('\n'),
};

function buildDocument(): Record<string, unknown> {
  return {
    openapi: '3.0.3',
    info,
    servers: [
      {
        url: '/',
        description: 'The gateway (GATEWAY_HOST:GATEWAY_PORT, default port 8080), normally behind the campus HTTPS reverse proxy.',
      },
    ],
    tags: [
      { name: 'session', description: 'Signing in and out (登录).' },
      { name: 'binding', description: 'Binding a campus card to the WeCom / WeChat user (绑定).' },
      { name: CARD_TAG, description: 'The bound card: summary, campus QR code, statement, loss report, password.' },
      { name: 'fees', description: 'Network and electricity fees paid from the card (缴费).' },
      { name: 'channel-binding', description: 'Binding Alipay / WeChat to the card so their payment codes pay at campus POS (核身).' },
      { name: 'recharge', description: "Recharge orders paid through Alipay or WeChat Pay (充值), and the channels' notifications." },
      { name: 'events', description: 'Live events (WebSocket).' },
      { name: 'operations', description: 'Health, metrics, this document.' },
    ],
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'The accessToken of POST /api/v1/session (or /refresh, or the binding answer).',
        },
        websocketBearer: {
          type: 'apiKey',
          in: 'header',
          name: 'Sec-WebSocket-Protocol',
          description: `The events socket only: the access token offered as the subprotocol \`${EVENTS_BEARER_PREFIX}<accessToken>\`, next to \`${EVENTS_PROTOCOL}\`.`,
        },
      },
      headers: {
        RetryAfter: {
          description:
            'Seconds to wait before retrying (PASSWORD_CHECK_BUSY 1, UNAVAILABLE / IDENTITY_UNAVAILABLE 2, PASSWORD_BUSY / TOO_MANY_CONNECTIONS 5; none for PASSWORD_LOCKED).',
          schema: { type: 'integer', minimum: 1 },
        },
        WwwAuthenticate: { description: 'Always `Bearer`.', schema: { type: 'string', enum: ['Bearer'] } },
      },
      schemas,
    },
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

let built: Record<string, unknown> | undefined;

/** The OpenAPI 3.0.3 document of the gateway: built once, deeply frozen (serve it as JSON). */
export function openApiDocument(): Record<string, unknown> {
  built ??= deepFreeze(buildDocument());
  return built;
}
