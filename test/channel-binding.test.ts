// Binding Alipay and WeChat to a campus card through the holder's API (the guide's 个人信息绑定): the real
// uWS gateway, a real switch and Redis, the Alipay simulator's authorisation page and oauth.token over
// loopback. Bind, the state on the card summary (绑定 / 未绑定), unbind; a forged, replayed or expired
// state binds nothing; a payer already bound to another card is refused; a WeCom sign-in is told to use
// the WeChat mini-program; 300 parallel bindings of one payer bind it to exactly one card; every bind and
// unbind is in the operator log. Unbinding the e-card ends the card's payers (the leaving holder's payment
// code is declined at a POS, their payer binds elsewhere, the next holder binds their own), and an Alipay
// callback whose code exchange outlasts an unbinding binds nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { cardOfChannelPayer, channelPayersOfCard } from '../switch/domain/channel-payers.js';
import { createLogger } from '../switch/log.js';
import { call, openCard, POS_TERMINAL, posClient, terminalMetadata, testConfig } from './helpers/switch.js';
import { freePort } from '../switch/redis/local-redis.js';

const DOC = '110105199003071234';
/** The initial password of DOC (its last six characters). */
const PIN = '071234';
const PHONE = '13800138000';

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

/** A fresh card (initial password PIN) no e-card user holds yet, found by its person number `P<card>`. */
async function unboundCard(): Promise<string> {
  cardSeq += 1;
  const cardNo = `7800${String(cardSeq).padStart(4, '0')}`;
  await openCard(app, cardNo, `CB${cardNo}`, 1000, {
    sync: '1',
    pwd: '',
    pwdinit: '1',
    doct: 'R',
    docn: DOC,
    phone: PHONE,
    sno: `P${cardNo}`,
  });
  await app.redis.set(app.keys.personNumber(`P${cardNo}`), cardNo);
  return cardNo;
}

/** `userId` signs in and binds the card's e-card through the API (so it can unbind it there too). */
async function bindThroughApi(userId: string, cardNo: string): Promise<Holder> {
  const provider = userId.startsWith('wechat:') ? 'wechat' : 'wecom';
  const tokens = await app.gateway?.sessions.start({ provider, userId }, '');
  if (tokens === undefined) throw new Error('no gateway');
  const form = {
    bindingType: 'student',
    personNumber: `P${cardNo}`,
    password: PIN,
    documentType: 'resident_id',
    documentNumber: DOC,
    phone: PHONE,
    consent: true,
  };
  const bound = await http('POST', '/api/v1/ecard/binding', tokens.accessToken, form);
  expect(bound.status).toBe(201);
  return { cardNo, token: String(bound.body['accessToken']), userId };
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

  it('a HEAD of the callback (a link checker, a prefetch) binds nothing and leaves the state for the browser', async () => {
    // HEAD is answered wherever GET is, by running the GET: here that spent the single-use state and
    // bound the payer, and the holder's own GET then got STATE_USED.
    const h = await holder();
    const payer = sims.alipay.newPayer();
    const callback = await authorizeAt(h, payer);
    const head = await fetch(callback, { method: 'HEAD', redirect: 'manual' });
    expect(head.status).toBe(405);
    expect(head.headers.get('allow')).toBe('GET');
    expect(await channelPayersOfCard(app.context, h.cardNo)).toEqual({});
    const bound = await fetch(callback, { redirect: 'manual' });
    expect(bound.status).toBe(200);
    expect(await bound.text()).toContain('支付宝绑定成功');
    expect(bound.headers.get('content-security-policy')).toContain("frame-ancestors 'none'"); // never in another site's frame
    expect(bound.headers.get('x-frame-options')).toBe('DENY');
    expect(await channelPayersOfCard(app.context, h.cardNo)).toEqual({ alipay: payer });
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

  it("a refused callback lands the holder's browser on a page that says why in zh-CN and English, not on raw JSON", async () => {
    const h = await holder();
    const callback = await authorizeAt(h, sims.alipay.newPayer());
    expect((await http('GET', callback.toString())).status).toBe(200);
    // The holder goes back in the browser and lands on the callback again: a replayed state.
    const browser = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };
    const replay = await fetch(callback.toString(), { headers: browser, redirect: 'manual' });
    expect(replay.status).toBe(409);
    expect(replay.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(replay.headers.get('content-security-policy')).toContain("default-src 'none'");
    // Like every HTML answer of the gateway: never inside another site's frame.
    expect(replay.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(replay.headers.get('x-frame-options')).toBe('DENY');
    const page = await replay.text();
    expect(page).toMatch(/^<!doctype html>/);
    // That link did bind Alipay a moment ago: the page must not say it was not bound (it did, saying
    // 支付宝绑定未完成 / "Alipay was not bound ... start the binding again"), but that the link is used
    // and where to see whether Alipay is bound.
    expect(page).not.toContain('绑定未完成');
    expect(page).not.toMatch(/not bound/i);
    expect(page).toContain('支付宝授权链接已使用');
    expect(page).toMatch(/<p>[^<]*核身状态[^<]*<\/p>/); // the zh-CN text
    expect(page).toMatch(/<p lang="en">[^<]*already used[^<]*<\/p>/i); // and the English one
    expect(page).toContain('STATE_USED');
    expect(await channelsShown(h)).toEqual({ alipay: 'bound', wechat: 'unbound' });
    // A forged state with markup in it is not echoed as markup; the page says the binding did not happen.
    const forged = new URL(callback);
    forged.searchParams.set('state', '<script>alert(1)</script>');
    const refused = await fetch(forged.toString(), { headers: browser });
    expect(refused.status).toBe(403);
    const refusedPage = await refused.text();
    expect(refusedPage).not.toContain('<script>');
    expect(refusedPage).toContain('支付宝绑定未完成');
    expect(refusedPage).toMatch(/<p>[^<]*[\u4e00-\u9fff][^<]*<\/p>/); // the refusal's zh-CN text
    expect(refusedPage).toMatch(/<p lang="en">Alipay was not bound: [^<]*state[^<]*<\/p>/i); // and its English one
    expect(refusedPage).toContain('STATE_INVALID');
    // An API client (no text/html in Accept) keeps the JSON error format.
    expect(errorCode(await http('GET', callback.toString()))).toBe('STATE_USED');
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

  it('a callback whose code exchange outlasts an e-card unbinding binds nothing', async () => {
    const h = await bindThroughApi('wecom:uSlowExchange', await unboundCard());
    const payer = sims.alipay.newPayer();
    const callback = await authorizeAt(h, payer);
    const exchangesBefore = sims.alipay.callCount('alipay.system.oauth.token');
    // The holder's checks pass, then Alipay's oauth.token takes its time; the holder unbinds meanwhile.
    sims.alipay.setLatencyMs(1500);
    try {
      const pending = http('GET', callback.toString());
      while (sims.alipay.callCount('alipay.system.oauth.token') === exchangesBefore) await new Promise((r) => setTimeout(r, 5));
      expect((await http('DELETE', '/api/v1/ecard/binding', h.token, { password: PIN })).status).toBe(200);
      const answer = await pending;
      expect([answer.status, errorCode(answer)]).toEqual([403, 'NOT_BOUND']);
    } finally {
      sims.alipay.setLatencyMs(0);
    }
    expect(await cardOfChannelPayer(app.context, 'alipay', payer)).toBeUndefined();
    expect(await channelPayersOfCard(app.context, h.cardNo)).toEqual({});
    expect(await app.redis.hget(app.keys.account(h.cardNo), 'cpalipay')).toBeNull();
    // The refused bind gave its claim of the payer back.
    expect(await app.redis.get(app.keys.channelPayer('alipay', payer))).toBeNull();
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

describe('unbinding the e-card', () => {
  it("ends the leaving holder's payers: their code is declined, their payer binds elsewhere, the next holder binds their own", async () => {
    const openid = 'oLeavingHolder00000000000001';
    const cardA = await unboundCard();
    const cardB = await unboundCard();
    // X binds card A's e-card, then WeChat (核身) and Alipay to it.
    const x = await bindThroughApi(`wechat:${openid}`, cardA);
    expect((await http('POST', '/api/v1/ecard/channels/wechat/bind', x.token, { password: PIN })).status).toBe(200);
    const alipayPayer = sims.alipay.newPayer();
    expect((await http('GET', (await authorizeAt(x, alipayPayer)).toString())).status).toBe(200);
    expect(await channelsShown(x)).toEqual({ alipay: 'bound', wechat: 'bound' });

    // X unbinds the e-card (card password given): both payers end with it, their records too.
    expect((await http('DELETE', '/api/v1/ecard/binding', x.token, { password: PIN })).status).toBe(200);
    expect(await cardOfChannelPayer(app.context, 'wechat', openid)).toBeUndefined();
    expect(await cardOfChannelPayer(app.context, 'alipay', alipayPayer)).toBeUndefined();
    expect(await app.redis.hmget(app.keys.account(cardA), 'cpalipay', 'cpwechat')).toEqual([null, null]);
    expect(await app.redis.get(app.keys.channelPayer('wechat', openid))).toBeNull();
    expect(await app.redis.get(app.keys.channelPayer('alipay', alipayPayer))).toBeNull();

    // X's WeChat payment code at a campus POS: declined, nothing charged, card A untouched.
    await app.terminals.register(POS_TERMINAL);
    const pos = posClient(app);
    try {
      sims.wechat.setBalance(openid, 100_000);
      const paid = await call<unknown, AuthorizeResponse>(
        pos,
        'authorize',
        {
          terminalId: POS_TERMINAL.id,
          sequenceNumber: 1,
          amountFen: 500,
          credential: { thirdParty: { code: sims.wechat.newCode(openid) } },
          pin: '',
        },
        terminalMetadata(POS_TERMINAL),
      );
      expect([paid.outcome, paid.declineReason]).toEqual([Outcome.OUTCOME_DECLINED, DeclineReason.DECLINE_REASON_PAYER_NOT_BOUND]);
      expect(sims.wechat.balanceOf(openid)).toBe(100_000);
    } finally {
      pos.close();
    }

    // X binds card B and binds the same WeChat there.
    const xOnB = await bindThroughApi(`wechat:${openid}`, cardB);
    expect((await http('POST', '/api/v1/ecard/channels/wechat/bind', xOnB.token, { password: PIN })).status).toBe(200);
    expect(await cardOfChannelPayer(app.context, 'wechat', openid)).toBe(cardB);

    // Y binds card A: it shows no payer, and Y binds their own WeChat.
    const y = await bindThroughApi('wechat:oNextHolder0000000000000002', cardA);
    expect(await channelsShown(y)).toEqual({ alipay: 'unbound', wechat: 'unbound' });
    expect((await http('POST', '/api/v1/ecard/channels/wechat/bind', y.token, { password: PIN })).status).toBe(200);
    expect(await channelPayersOfCard(app.context, cardA)).toEqual({ wechat: 'oNextHolder0000000000000002' });
  });
});
