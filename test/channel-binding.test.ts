// Binding Alipay and WeChat to a campus card through the holder's API (the guide's 个人信息绑定): the real
// uWS gateway, a real switch and Redis, the Alipay simulator's authorisation page and oauth.token over
// loopback. Bind, the state on the card summary (绑定 / 未绑定), unbind; a forged, replayed or expired
// state binds nothing; a payer already bound to another card is refused; a WeCom sign-in is told to use
// the WeChat mini-program; 300 parallel bindings of one payer bind it to exactly one card; every bind and
// unbind is in the operator log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { cardOfChannelPayer, channelPayersOfCard } from '../switch/domain/channel-payers.js';
import { createLogger } from '../switch/log.js';
import { openCard, testConfig } from './helpers/switch.js';
import { freePort } from '../switch/redis/local-redis.js';

const DOC = '110105199003071234';
/** The initial password of DOC (its last six characters). */
const PIN = '071234';

let sims: ChannelSimulators;
let app: SwitchApp;
let base = '';
let cardSeq = 0;

beforeAll(async () => {
  // The simulators' adapters take the gateway's address for ALIPAY_NOTIFY_URL: the callback lives on its origin.
  const port = await freePort();
  const log = createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent');
  sims = await startChannelSimulators({ log, notifyBaseUrl: `http://127.0.0.1:${port}`, latencyMs: 0 });
  app = await startSwitch(testConfig('chbind', { GATEWAY_PORT: String(port) }), log, Date.now, { channels: sims.channels });
  base = `http://127.0.0.1:${app.gateway?.port}`;
});
afterAll(async () => {
  await app.stop();
  await sims.stop();
});

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

async function http(method: string, url: string, token = '', body?: unknown): Promise<Answer> {
  const res = await fetch(url.startsWith('http') ? url : `${base}${url}`, {
    method,
    redirect: 'manual',
    headers: {
      ...(token === '' ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  if (res.headers.get('content-type')?.includes('json') === true) parsed = JSON.parse(text) as Record<string, unknown>;
  return { status: res.status, body: parsed, text };
}

interface Holder {
  readonly cardNo: string;
  readonly token: string;
  readonly userId: string;
}

/** A fresh card (initial password PIN) bound to a fresh e-card user, with a session. */
async function holder(provider: 'wecom' | 'wechat' = 'wecom'): Promise<Holder> {
  cardSeq += 1;
  const cardNo = `7800${String(cardSeq).padStart(4, '0')}`;
  const userId = provider === 'wecom' ? `wecom:u${cardNo}` : `wechat:oMiniProgram${cardNo}abcdefgh`;
  await openCard(app, cardNo, `CB${cardNo}`, 1000, { eu: userId, sync: '1', pwd: '', pwdinit: '1', doct: 'R', docn: DOC });
  const sessions = app.gateway?.sessions;
  if (sessions === undefined) throw new Error('no gateway');
  const tokens = await sessions.start({ provider, userId }, cardNo);
  return { cardNo, token: tokens.accessToken, userId };
}

async function channelsShown(h: Holder): Promise<unknown> {
  const summary = await http('GET', '/api/v1/ecard', h.token);
  expect(summary.status).toBe(200);
  return summary.body['channels'];
}

/** POST authorize, then the simulated Alipay page confirms for `payerId`: the callback URL Alipay redirects to. */
async function authorizeAt(h: Holder, payerId: string): Promise<URL> {
  const started = await http('POST', '/api/v1/ecard/channels/alipay/authorize', h.token);
  expect(started.status).toBe(200);
  const page = new URL(String(started.body['authorizeUrl']));
  expect(page.searchParams.get('scope')).toBe('auth_base');
  page.searchParams.set('sim_payer', payerId);
  const redirect = await fetch(page, { redirect: 'manual' });
  expect(redirect.status).toBe(302);
  const callback = new URL(redirect.headers.get('location') ?? '');
  expect(callback.origin).toBe(base);
  expect(callback.pathname).toBe('/api/v1/channels/alipay/oauth-callback');
  return callback;
}

async function oplog(): Promise<Record<string, string>[]> {
  const rows = await app.redis.xrange(app.keys.operatorLog(), '-', '+');
  return rows.map(([, flat]) => {
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
    return fields;
  });
}

function errorCode(answer: Answer): unknown {
  return (answer.body['error'] as Record<string, unknown> | undefined)?.['code'];
}

describe('Alipay (扫码授权)', () => {
  it('binds through the authorisation callback, shows 绑定, unbinds, and logs both', async () => {
    const h = await holder();
    expect(await channelsShown(h)).toEqual({ alipay: 'unbound', wechat: 'unbound' });
    const payer = sims.alipay.newPayer();
    const callback = await authorizeAt(h, payer);
    const bound = await http('GET', callback.toString());
    expect(bound.status).toBe(200);
    expect(bound.text).toContain('支付宝绑定成功');
    expect(await channelsShown(h)).toEqual({ alipay: 'bound', wechat: 'unbound' });
    expect(await cardOfChannelPayer(app.context, 'alipay', payer)).toBe(h.cardNo);

    const unbound = await http('DELETE', '/api/v1/ecard/channels/alipay', h.token);
    expect(unbound).toMatchObject({ status: 200, body: { unbound: true, changed: true, card: { channels: { alipay: 'unbound' } } } });
    expect(await cardOfChannelPayer(app.context, 'alipay', payer)).toBeUndefined();
    const again = await http('DELETE', '/api/v1/ecard/channels/alipay', h.token);
    expect(again).toMatchObject({ status: 200, body: { changed: false } });
    const log = (await oplog()).filter((e) => e['card'] === h.cardNo);
    expect(log.map((e) => [e['op'], e['channel'], e['payer'], e['result']])).toEqual([
      ['channel-bind', 'alipay', payer, 'ok'],
      ['channel-unbind', 'alipay', payer, 'ok'],
      ['channel-unbind', 'alipay', '', 'ok'],
    ]);
  });

  it('a forged or tampered state binds nothing (and leaves the auth_code unused)', async () => {
    const h = await holder();
    const victim = await holder();
    const payer = sims.alipay.newPayer();
    const callback = await authorizeAt(h, payer);
    const state = callback.searchParams.get('state') ?? '';
    const [version, payload, mac] = state.split('.');
    const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as Record<string, unknown>;
    const retargeted = Buffer.from(JSON.stringify({ ...claims, c: victim.cardNo, u: victim.userId })).toString('base64url');
    const forgeries = [
      `${version}.${retargeted}.${mac}`,
      // Another MAC: its first character changed (all six of its bits count; the last character's low
      // bits are base64 padding, so a change there could decode to the same MAC: seen once in CI).
      `${version}.${payload}.${(mac ?? '').startsWith('A') ? 'B' : 'A'}${(mac ?? '').slice(1)}`,
      'v1.e30.AAAA',
      'not-a-state',
      '',
    ];
    for (const forged of forgeries) {
      const url = new URL(callback);
      url.searchParams.set('state', forged);
      const answer = await http('GET', url.toString());
      expect(answer.status).toBe(403);
      expect(errorCode(answer)).toBe('STATE_INVALID');
    }
    expect(await channelPayersOfCard(app.context, h.cardNo)).toEqual({});
    expect(await channelPayersOfCard(app.context, victim.cardNo)).toEqual({});
    // The code was never sent to Alipay: the genuine callback still binds with it.
    expect((await http('GET', callback.toString())).status).toBe(200);
    expect(await channelPayersOfCard(app.context, h.cardNo)).toEqual({ alipay: payer });
    expect(await channelPayersOfCard(app.context, victim.cardNo)).toEqual({});
  });

  it('a replayed state binds nothing more, even with a fresh auth_code of another payer', async () => {
    const h = await holder();
    const payer = sims.alipay.newPayer();
    const callback = await authorizeAt(h, payer);
    expect((await http('GET', callback.toString())).status).toBe(200);
    const replay = await http('GET', callback.toString());
    expect(replay.status).toBe(409);
    expect(errorCode(replay)).toBe('STATE_USED');
    await http('DELETE', '/api/v1/ecard/channels/alipay', h.token);
    const other = sims.alipay.newPayer();
    const swapped = new URL(callback);
    swapped.searchParams.set('auth_code', sims.alipay.newAuthCode(other));
    const answer = await http('GET', swapped.toString());
    expect(errorCode(answer)).toBe('STATE_USED');
    expect(await channelPayersOfCard(app.context, h.cardNo)).toEqual({});
    expect(await cardOfChannelPayer(app.context, 'alipay', other)).toBeUndefined();
  });

  it('a state whose session ended binds nothing; an invalid auth_code is refused', async () => {
    const h = await holder();
    const payer = sims.alipay.newPayer();
    const stale = await authorizeAt(h, payer);
    const badCode = new URL(await authorizeAt(h, payer));
    badCode.searchParams.set('auth_code', 'never-issued-0123456789');
    const refused = await http('GET', badCode.toString());
    expect(refused.status).toBe(409);
    expect(errorCode(refused)).toBe('AUTH_CODE_INVALID');
    expect((await http('DELETE', '/api/v1/session', h.token)).status).toBe(200);
    const afterLogout = await http('GET', stale.toString());
    expect(afterLogout.status).toBe(401);
    expect(await channelPayersOfCard(app.context, h.cardNo)).toEqual({});
  });

  it('a payer already bound to another card is refused; that card keeps it', async () => {
    const first = await holder();
    const second = await holder();
    const payer = sims.alipay.newPayer();
    expect((await http('GET', (await authorizeAt(first, payer)).toString())).status).toBe(200);
    const answer = await http('GET', (await authorizeAt(second, payer)).toString());
    expect(answer.status).toBe(409);
    expect(errorCode(answer)).toBe('PAYER_BOUND_TO_OTHER_CARD');
    expect((answer.body['error'] as Record<string, unknown>)['message']).toContain('已绑定其他校园卡');
    expect(await channelsShown(second)).toEqual({ alipay: 'unbound', wechat: 'unbound' });
    expect(await cardOfChannelPayer(app.context, 'alipay', payer)).toBe(first.cardNo);
    const refusedLog = (await oplog()).filter((e) => e['card'] === second.cardNo);
    expect(refusedLog.map((e) => e['result'])).toEqual(['PAYER_BOUND_TO_OTHER_CARD']);
  });

  it('300 parallel callbacks for one payer from 300 cards bind it to exactly one', async () => {
    const payer = sims.alipay.newPayer();
    const holders = await Promise.all(Array.from({ length: 300 }, () => holder()));
    const callbacks: URL[] = [];
    for (let i = 0; i < holders.length; i += 50) {
      callbacks.push(...(await Promise.all(holders.slice(i, i + 50).map((h) => authorizeAt(h, payer)))));
    }
    const answers = await Promise.all(callbacks.map((url) => http('GET', url.toString())));
    const winners = answers.flatMap((a, i) => (a.status === 200 ? [holders[i]?.cardNo] : []));
    expect(winners).toHaveLength(1);
    for (const a of answers.filter((x) => x.status !== 200)) {
      expect(a.status).toBe(409);
      expect(['PAYER_BOUND_TO_OTHER_CARD', 'BINDING_IN_PROGRESS']).toContain(errorCode(a));
    }
    expect(await cardOfChannelPayer(app.context, 'alipay', payer)).toBe(winners[0]);
    const boundCards = (await Promise.all(holders.map((h) => channelPayersOfCard(app.context, h.cardNo)))).filter(
      (p) => p.alipay !== undefined,
    );
    expect(boundCards).toEqual([{ alipay: payer }]);
  });
});

describe('WeChat (核身)', () => {
  it('a mini-program sign-in binds its openid with the card password; a wrong password binds nothing', async () => {
    const h = await holder('wechat');
    const wrong = await http('POST', '/api/v1/ecard/channels/wechat/bind', h.token, { password: '000000' });
    expect(wrong.status).toBe(403);
    expect(await channelPayersOfCard(app.context, h.cardNo)).toEqual({});
    const missing = await http('POST', '/api/v1/ecard/channels/wechat/bind', h.token, {});
    expect(missing.status).toBe(400);
    expect(missing.body['error']).toMatchObject({ code: 'INVALID_FIELD', field: 'password' });
    const bound = await http('POST', '/api/v1/ecard/channels/wechat/bind', h.token, { password: PIN });
    expect(bound).toMatchObject({ status: 200, body: { bound: true, card: { channels: { alipay: 'unbound', wechat: 'bound' } } } });
    const openid = h.userId.slice('wechat:'.length);
    expect(await cardOfChannelPayer(app.context, 'wechat', openid)).toBe(h.cardNo);
    expect((await http('POST', '/api/v1/ecard/channels/wechat/bind', h.token, { password: PIN })).status).toBe(200);
    const unbound = await http('DELETE', '/api/v1/ecard/channels/wechat', h.token);
    expect(unbound).toMatchObject({ status: 200, body: { changed: true, card: { channels: { wechat: 'unbound' } } } });
    const log = (await oplog()).filter((e) => e['card'] === h.cardNo).map((e) => [e['op'], e['result']]);
    expect(log).toEqual([
      ['channel-bind', 'WRONG_PASSWORD'],
      ['channel-bind', 'ok'],
      ['channel-bind', 'ok'],
      ['channel-unbind', 'ok'],
    ]);
  });

  it('a WeCom sign-in is told that binding WeChat needs the WeChat mini-program', async () => {
    const h = await holder('wecom');
    const answer = await http('POST', '/api/v1/ecard/channels/wechat/bind', h.token, { password: PIN });
    expect(answer.status).toBe(409);
    expect(answer.body['error']).toMatchObject({
      code: 'WECHAT_MINIPROGRAM_REQUIRED',
      message: expect.stringContaining('微信小程序') as unknown,
    });
    expect(await channelPayersOfCard(app.context, h.cardNo)).toEqual({});
  });

  it('refuses an unknown channel and callers without a session or a card', async () => {
    const h = await holder();
    const unknown = await http('DELETE', '/api/v1/ecard/channels/paypal', h.token);
    expect(unknown.status).toBe(400);
    expect(unknown.body['error']).toMatchObject({ code: 'CHANNEL_INVALID', field: 'channel' });
    expect((await http('POST', '/api/v1/ecard/channels/alipay/authorize')).status).toBe(401);
    const sessions = app.gateway?.sessions;
    if (sessions === undefined) throw new Error('no gateway');
    const cardless = await sessions.start({ provider: 'wecom', userId: 'wecom:nobody' }, '');
    const noCard = await http('POST', '/api/v1/ecard/channels/alipay/authorize', cardless.accessToken);
    expect(noCard.status).toBe(403);
    expect(errorCode(noCard)).toBe('NOT_BOUND');
  });
});
