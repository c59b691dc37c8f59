// The OpenAPI document of the gateway (switch/gateway/openapi.ts) against the code: every holder route
// is documented with its method and nothing else is, every $ref resolves, bearer security where the
// handlers ask for a token, and the refusals the domain raises are listed under the HTTP status the
// gateway maps them to. No Redis for those: building the routes touches nothing, and the refusals are
// built by the same functions the domain throws them from. One part asks a real gateway (a switch on the
// test Redis): a card password that is not 6 digits, sent to every route that checks one, is answered
// with a code that route documents for 400.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { passwordBusyError } from '../switch/domain/card-password.js';
import { checkBindingForm } from '../switch/domain/ecard.js';
import { bearerToken } from '../switch/domain/sessions.js';
import { PasswordLockedError, WrongPasswordError } from '../switch/errors.js';
import { httpErrorOf } from '../switch/gateway/errors.js';
import { holderRoutes } from '../switch/gateway/holder-api.js';
import { rechargeRoutes } from '../switch/gateway/recharge-api.js';
import { channelBindingRoutes } from '../switch/gateway/channel-binding-api.js';
import { LiveEvents } from '../switch/gateway/live-events.js';
import { OPENAPI_PATH, openApiDocument } from '../switch/gateway/openapi.js';
import { checkCode, identityUnavailableError, invalidCodeError } from '../switch/identity/provider.js';
import { createLogger } from '../switch/log.js';
import { openCard, testConfig } from './helpers/switch.js';

type Json = Record<string, unknown>;

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
/** Documented operations that are not holder routes (built into the gateway, or served beside them). */
const NOT_HOLDER_ROUTES = [
  'GET /healthz',
  'GET /metrics',
  `GET ${OPENAPI_PATH}`,
  'GET /api/v1/events',
  'POST /api/v1/channels/{channel}/notify',
];
/** Holder routes a page calls without an access token (the Alipay callback is Alipay's redirect: its signed state says who). */
const PUBLIC_HOLDER_ROUTES = ['POST /api/v1/session', 'POST /api/v1/session/refresh', 'GET /api/v1/channels/alipay/oauth-callback'];
const BINDING = ['/api/v1/ecard/binding', 'post'] as const;

const doc = openApiDocument() as Json;
const paths = doc['paths'] as Record<string, Json>;

function routes() {
  const ctx = { config: { terminalPepper: 'x'.repeat(20) } } as never;
  return [
    ...holderRoutes({ ctx, sessions: {} as never, identity: {} as never, statements: {} as never }),
    ...rechargeRoutes({ ctx, sessions: {} as never }),
    ...channelBindingRoutes({ ctx, sessions: {} as never }),
  ];
}

/** `/things/:id` as OpenAPI writes it: `/things/{id}`. */
function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function operations(): { key: string; path: string; method: string; op: Json }[] {
  const out: { key: string; path: string; method: string; op: Json }[] = [];
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (HTTP_METHODS.includes(method)) out.push({ key: `${method.toUpperCase()} ${path}`, path, method, op: op as Json });
    }
  }
  return out;
}

function operation(path: string, method: string): Json {
  const op = paths[path]?.[method];
  expect(op, `${method.toUpperCase()} ${path} is documented`).toBeDefined();
  return op as Json;
}

/** The machine codes an operation documents for one status (or all statuses). */
function codesOf(path: string, method: string, status?: number): string[] {
  const responses = operation(path, method)['responses'] as Record<string, Json>;
  const codes: string[] = [];
  for (const [key, response] of Object.entries(responses)) {
    if (status !== undefined && key !== String(status)) continue;
    const schema = (response['content'] as Record<string, Json> | undefined)?.['application/json']?.['schema'] as Json | undefined;
    for (const part of (schema?.['allOf'] as Json[] | undefined) ?? []) {
      const code = ((part['properties'] as Json | undefined)?.['error'] as Json | undefined)?.['properties'] as Json | undefined;
      codes.push(...(((code?.['code'] as Json | undefined)?.['enum'] as string[] | undefined) ?? []));
    }
  }
  return codes;
}

/** The refusal is listed under the status and code the gateway answers it with. */
function expectDocumented(path: string, method: string, err: unknown): void {
  const mapped = httpErrorOf(err);
  expect(mapped, String(err)).toBeDefined();
  const { status, body } = mapped as NonNullable<typeof mapped>;
  expect(codesOf(path, method, status), `${method.toUpperCase()} ${path}: ${status} ${body.error.code}`).toContain(body.error.code);
}

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (err) {
    return err;
  }
  throw new Error('expected a refusal');
}

/** Resolves a local JSON pointer (#/a/b) in the document. */
function resolvePointer(pointer: string): unknown {
  if (!pointer.startsWith('#/')) return undefined;
  let at: unknown = doc;
  for (const raw of pointer.slice(2).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof at !== 'object' || at === null || !Object.prototype.hasOwnProperty.call(at, part)) return undefined;
    at = (at as Json)[part];
  }
  return at;
}

function collectRefs(value: unknown, where: string, out: { ref: string; where: string }[]): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => collectRefs(item, `${where}/${i}`, out));
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref') out.push({ ref: String(child), where });
      else collectRefs(child, `${where}/${key}`, out);
    }
  }
}

describe('the OpenAPI document and the holder routes', () => {
  it('documents every holder route with its method, and no route that does not exist', () => {
    const fromCode = routes().map((route) => `${route.method} ${openApiPath(route.path)}`);
    expect(fromCode.length).toBeGreaterThan(10);
    const documented = operations()
      .map((o) => o.key)
      .filter((key) => !NOT_HOLDER_ROUTES.includes(key));
    expect([...documented].sort()).toEqual([...fromCode].sort());
    for (const key of NOT_HOLDER_ROUTES) expect(operations().map((o) => o.key)).toContain(key);
  });

  it('asks for the bearer token on every holder route but sign-in and refresh, and says what 401 carries', () => {
    const global = doc['security'];
    for (const route of routes()) {
      const key = `${route.method} ${route.path}`;
      const op = operation(openApiPath(route.path), route.method.toLowerCase());
      const security = (op['security'] ?? global) as Json[];
      if (PUBLIC_HOLDER_ROUTES.includes(key)) {
        expect(security, key).toEqual([]);
        continue;
      }
      expect(
        security.some((requirement) => 'bearerAuth' in requirement),
        key,
      ).toBe(true);
      expectDocumented(
        openApiPath(route.path),
        route.method.toLowerCase(),
        thrown(() => bearerToken(undefined)),
      );
      expectDocumented(
        openApiPath(route.path),
        route.method.toLowerCase(),
        thrown(() => bearerToken('Basic dXNlcjpwYXNz')),
      );
      expect(codesOf(openApiPath(route.path), route.method.toLowerCase(), 401)).toEqual(
        expect.arrayContaining(['TOKEN_EXPIRED', 'SESSION_ENDED']),
      );
    }
  });

  it('gives every holder operation a summary, a description, a success answer and the error body', () => {
    for (const route of routes()) {
      const op = operation(openApiPath(route.path), route.method.toLowerCase());
      const key = `${route.method} ${route.path}`;
      expect(typeof op['summary'], key).toBe('string');
      expect(typeof op['description'], key).toBe('string');
      const statuses = Object.keys(op['responses'] as Json);
      expect(
        statuses.some((s) => /^2\d\d$/.test(s)),
        key,
      ).toBe(true);
      expect(statuses, key).toContain('500');
      for (const status of statuses.filter((s) => /^[45]\d\d$/.test(s)))
        expect(codesOf(openApiPath(route.path), route.method.toLowerCase(), Number(status)).length, `${key} ${status}`).toBeGreaterThan(0);
      if (op['requestBody'] !== undefined) expect(statuses, key).toEqual(expect.arrayContaining(['413', '415']));
    }
  });
});

describe('the OpenAPI document is well formed', () => {
  it('has the top-level parts of OpenAPI 3.0 and the components the page needs', () => {
    expect(doc['openapi']).toMatch(/^3\.0\.\d+$/);
    const info = doc['info'] as Json;
    expect(typeof info['title']).toBe('string');
    expect(typeof info['version']).toBe('string');
    const components = doc['components'] as Json;
    const schemas = components['schemas'] as Json;
    for (const name of [
      'ErrorBody',
      'SessionTokens',
      'EcardSummary',
      'CampusQr',
      'StatementPage',
      'StatementLine',
      'FeeAnswer',
      'CardEvent',
    ]) {
      expect(schemas[name], name).toBeDefined();
    }
    const schemes = components['securitySchemes'] as Json;
    for (const { key, op } of operations()) {
      for (const requirement of ((op['security'] ?? doc['security']) as Json[]) ?? []) {
        for (const scheme of Object.keys(requirement)) expect(schemes[scheme], `${key}: ${scheme}`).toBeDefined();
      }
    }
  });

  it('resolves every $ref inside the document', () => {
    const refs: { ref: string; where: string }[] = [];
    collectRefs(doc, '#', refs);
    expect(refs.length).toBeGreaterThan(50);
    for (const { ref, where } of refs) expect(resolvePointer(ref), `${ref} at ${where}`).toBeDefined();
  });

  it('has unique operation ids, a description on every response, and only valid statuses', () => {
    const ids = operations().map((o) => o.op['operationId']);
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { key, op } of operations()) {
      for (const [status, response] of Object.entries(op['responses'] as Record<string, Json>)) {
        expect(status, key).toMatch(/^[1-5]\d\d$/);
        expect(typeof response['description'], `${key} ${status}`).toBe('string');
      }
    }
  });

  it('documents the WebSocket as a 101 upgrade with its messages', () => {
    const op = operation('/api/v1/events', 'get');
    const responses = op['responses'] as Json;
    expect(responses['101']).toBeDefined();
    expect(JSON.stringify(op)).toContain('cardswitch.events.v1');
    expect((op['parameters'] as Json[]).map((p) => p['name'])).toContain('since');
    const messages = op['x-websocket-messages'] as Json;
    expect((messages['server'] as Json[]).map((m) => m['$ref'])).toEqual(
      expect.arrayContaining(['#/components/schemas/CardEvent', '#/components/schemas/EventsHello', '#/components/schemas/EventsResync']),
    );
    expect(codesOf('/api/v1/events', 'get', 401)).toContain('TOKEN_MISSING');
  });

  it('is built once, frozen all the way down, and plain JSON', () => {
    expect(openApiDocument()).toBe(doc);
    expect(Object.isFrozen(doc)).toBe(true);
    expect(Object.isFrozen(paths['/api/v1/ecard/binding'])).toBe(true);
    expect(Object.isFrozen((doc['components'] as Json)['schemas'])).toBe(true);
    expect(() => {
      (doc as { openapi: string }).openapi = '2.0';
    }).toThrow(TypeError);
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
  });
});

describe('the refusals the domain raises are documented under their status', () => {
  it('lists the binding refusals, the password ones included', () => {
    expect(codesOf(...BINDING)).toEqual(
      expect.arrayContaining([
        'CARD_NOT_SYNCED',
        'DOCUMENT_MISMATCH',
        'PHONE_MISMATCH',
        'CARD_BOUND_ELSEWHERE',
        'USER_ALREADY_BOUND',
        'BINDING_TYPE_MISMATCH',
        'BINDING_IN_PROGRESS',
        'CARD_NOT_FOUND',
        'CARD_LOST',
        'CARD_FROZEN',
        'CARD_CANCELLED',
        'WRONG_PASSWORD',
        'PASSWORD_LOCKED',
      ]),
    );
    expect(codesOf(...BINDING, 409)).toEqual(
      expect.arrayContaining(['CARD_NOT_SYNCED', 'DOCUMENT_MISMATCH', 'PHONE_MISMATCH', 'CARD_BOUND_ELSEWHERE']),
    );
    for (const [path, method] of [
      BINDING,
      ['/api/v1/ecard/binding', 'delete'],
      ['/api/v1/ecard/loss/cancel', 'post'],
      ['/api/v1/ecard/password', 'post'],
      ['/api/v1/ecard/fees/network', 'post'],
      ['/api/v1/ecard/fees/electricity', 'post'],
    ] as const) {
      expectDocumented(path, method, new WrongPasswordError(3));
      expectDocumented(path, method, new PasswordLockedError());
      expectDocumented(path, method, passwordBusyError());
    }
  });

  it('lists every check of the binding form, field by field', () => {
    const valid: Record<string, unknown> = {
      bindingType: 'student',
      personNumber: '20230001',
      password: '123456',
      documentType: 'resident_id',
      documentNumber: '11010519491231002X',
      phone: '13800138000',
      consent: true,
    };
    const fields = Object.keys(valid);
    const reasons = new Set<string>();
    for (let i = 0; i < fields.length; i++) {
      const partial = Object.fromEntries(fields.slice(0, i).map((f) => [f, valid[f]]));
      const err = thrown(() => checkBindingForm(partial));
      expect((err as { field?: string }).field).toBe(fields[i]);
      reasons.add(String((err as { reason?: string }).reason));
      expectDocumented(...BINDING, err);
    }
    expect(reasons.size).toBe(fields.length);
    expect(() => checkBindingForm(valid)).not.toThrow();
  });

  it('lists the sign-in refusals of the identity providers', () => {
    expectDocumented(
      '/api/v1/session',
      'post',
      thrown(() => checkCode('not a code!')),
    );
    expectDocumented('/api/v1/session', 'post', invalidCodeError('wecom'));
    expectDocumented('/api/v1/session', 'post', identityUnavailableError('wechat', 'timeout'));
    expect(codesOf('/api/v1/session', 'post')).toEqual(
      expect.arrayContaining(['UNKNOWN_PROVIDER', 'NOT_A_MEMBER', 'PROVIDER_DISABLED', 'IDENTITY_UNAVAILABLE']),
    );
  });

  it('lists the refusals of the events upgrade', async () => {
    const events = new LiveEvents({} as never, {} as never, {} as never);
    const refused = await events
      .authenticate({ query: new URLSearchParams(), protocols: ['bearer.x'], headers: {}, remoteAddress: '' })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expectDocumented('/api/v1/events', 'get', refused);
  });

  it('lists a fee retry with another amount as a conflict', () => {
    for (const kind of ['network', 'electricity'])
      expect(codesOf(`/api/v1/ecard/fees/${kind}`, 'post', 409)).toContain('IDEMPOTENCY_CONFLICT');
  });
});

describe('a card password that is not 6 digits, answered by a real gateway', () => {
  const DOC = '110105199003071234';
  const CARD = '79300001';
  const HOLDER = 'wechat:oPasswordFormat000000000001';
  let app: SwitchApp;
  let base = '';
  let holderToken = '';
  let newcomerToken = '';

  beforeAll(async () => {
    app = await startSwitch(testConfig('openapipw'), createLogger('silent'), Date.now);
    base = `http://127.0.0.1:${app.gateway?.port}`;
    // A card bound to HOLDER (the account names the user, the user record names the card), initial password.
    await openCard(app, CARD, 'PWF00001', 1000, { eu: HOLDER, sync: '1', pwd: '', pwdinit: '1', doct: 'R', docn: DOC });
    await app.redis.hset(app.keys.ecardUser(HOLDER), 'card', CARD, 'boundMs', '1');
    const sessions = app.gateway?.sessions;
    if (sessions === undefined) throw new Error('no gateway');
    holderToken = (await sessions.start({ provider: 'wechat', userId: HOLDER }, CARD)).accessToken;
    newcomerToken = (await sessions.start({ provider: 'wecom', userId: 'wecom:pwformat.newcomer' }, '')).accessToken;
  });
  afterAll(async () => {
    await app.stop();
  });

  const bindingForm = {
    bindingType: 'student',
    personNumber: 'P79300001',
    password: '12345',
    documentType: 'resident_id',
    documentNumber: DOC,
    phone: '13800138000',
    consent: true,
  };
  // Every route that checks a card password, with everything else well formed; `field` the answer names.
  const cases = [
    { method: 'post', path: '/api/v1/ecard/binding', newcomer: true, body: bindingForm, field: 'password' },
    { method: 'delete', path: '/api/v1/ecard/binding', body: { password: '12345' }, field: 'password' },
    { method: 'post', path: '/api/v1/ecard/loss/cancel', body: { password: '12345' }, field: 'password' },
    { method: 'post', path: '/api/v1/ecard/password', body: { oldPassword: '12345', newPassword: '135790' }, field: 'password' },
    { method: 'post', path: '/api/v1/ecard/password', body: { oldPassword: '071234', newPassword: '13579' }, field: 'newPassword' },
    {
      method: 'post',
      path: '/api/v1/ecard/fees/network',
      body: { requestId: 1, amountFen: 100, password: '12345', account: 'net0001' },
      field: 'password',
    },
    {
      method: 'post',
      path: '/api/v1/ecard/fees/electricity',
      body: { requestId: 2, amountFen: 100, password: '12345', building: '1', room: '101' },
      field: 'password',
    },
    { method: 'post', path: '/api/v1/ecard/channels/wechat/bind', body: { password: '12345' }, field: 'password' },
  ] as const;

  it.each(cases)('$method $path ($field) answers a code it documents for 400', async ({ method, path, body, field, ...rest }) => {
    const token = 'newcomer' in rest ? newcomerToken : holderToken;
    const res = await fetch(`${base}${path}`, {
      method: method.toUpperCase(),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const { error } = (await res.json()) as { error: { code: string; field?: string } };
    const served = (await (await fetch(`${base}${OPENAPI_PATH}`)).json()) as Json;
    const response = (((served['paths'] as Record<string, Json>)[path]?.[method] as Json)['responses'] as Record<string, Json>)['400'];
    const schema = (response?.['content'] as Record<string, Json> | undefined)?.['application/json']?.['schema'] as Json | undefined;
    const documented = ((schema?.['allOf'] as Json[] | undefined) ?? []).flatMap(
      (part) =>
        ((
          (((part['properties'] as Json | undefined)?.['error'] as Json | undefined)?.['properties'] as Json | undefined)?.['code'] as
            Json | undefined
        )?.['enum'] as string[] | undefined) ?? [],
    );
    expect([res.status, error.field]).toEqual([400, field]);
    expect(documented, `${method.toUpperCase()} ${path} answered ${error.code}`).toContain(error.code);
  });
});
