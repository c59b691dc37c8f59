// The channel payers' binding store (domain/channel-payers.ts over channel-binding.lua) against a real
// Redis: one payer per card per channel, one card per payer, both sides naming each other; parallel
// binders of one payer or of one card end with exactly one binding; a half-written binding (a crash
// between the two slots' calls) counts as none and is taken over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { bindChannelPayer, cardOfChannelPayer, channelPayersOfCard, unbindChannelPayer } from '../switch/domain/channel-payers.js';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../switch/errors.js';
import { createLogger } from '../switch/log.js';
import { openCard, testConfig } from './helpers/switch.js';

const ALIPAY_BUYER = '2088000000000001';
const WECHAT_OPENID = 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o';

let app: SwitchApp;
beforeAll(async () => {
  const config = testConfig('cpayers');
  app = await startSwitch(config, createLogger(config.logLevel), Date.now, { grpc: false, gateway: false });
  for (let i = 1; i <= 12; i++) await openCard(app, `CP${i}`, `SER-CP${i}`, 1000);
});
afterAll(() => app.stop());

describe('channel payer bindings', () => {
  it('binds per channel, answers both ways, rebinding the same pair changes nothing, unbinding ends it', async () => {
    const ctx = app.context;
    await bindChannelPayer(ctx, 'CP1', 'alipay', ALIPAY_BUYER);
    await bindChannelPayer(ctx, 'CP1', 'wechat', WECHAT_OPENID);
    await bindChannelPayer(ctx, 'CP1', 'wechat', WECHAT_OPENID);
    expect(await cardOfChannelPayer(ctx, 'alipay', ALIPAY_BUYER)).toBe('CP1');
    expect(await cardOfChannelPayer(ctx, 'wechat', WECHAT_OPENID)).toBe('CP1');
    // The same id under the other channel is another payer.
    expect(await cardOfChannelPayer(ctx, 'wechat', ALIPAY_BUYER)).toBeUndefined();
    expect(await channelPayersOfCard(ctx, 'CP1')).toEqual({ alipay: ALIPAY_BUYER, wechat: WECHAT_OPENID });

    expect(await unbindChannelPayer(ctx, 'CP1', 'wechat')).toBe(WECHAT_OPENID);
    expect(await unbindChannelPayer(ctx, 'CP1', 'wechat')).toBeUndefined();
    expect(await cardOfChannelPayer(ctx, 'wechat', WECHAT_OPENID)).toBeUndefined();
    expect(await channelPayersOfCard(ctx, 'CP1')).toEqual({ alipay: ALIPAY_BUYER });
    expect(await app.redis.exists(app.keys.channelPayer('wechat', WECHAT_OPENID))).toBe(0);
    // Once unbound, the payer may bind another card.
    await bindChannelPayer(ctx, 'CP2', 'wechat', WECHAT_OPENID);
    expect(await cardOfChannelPayer(ctx, 'wechat', WECHAT_OPENID)).toBe('CP2');
  });

  it('one card per payer and one payer per card; a refused bind changes nothing', async () => {
    const ctx = app.context;
    await bindChannelPayer(ctx, 'CP3', 'alipay', '2088000000000003');
    const before = await app.redis.hgetall(app.keys.account('CP4'));
    const other = await bindChannelPayer(ctx, 'CP4', 'alipay', '2088000000000003').catch((e: unknown) => e);
    expect(other).toBeInstanceOf(AlreadyExistsError);
    expect((other as AlreadyExistsError).reason).toBe('PAYER_BOUND_TO_OTHER_CARD');
    expect(await app.redis.hgetall(app.keys.account('CP4'))).toEqual(before);

    const second = await bindChannelPayer(ctx, 'CP3', 'alipay', '2088000000000033').catch((e: unknown) => e);
    expect(second).toBeInstanceOf(AlreadyExistsError);
    expect((second as AlreadyExistsError).reason).toBe('CARD_BOUND_TO_OTHER_PAYER');
    // The claim of the refused payer was released: it is free for another card.
    expect(await app.redis.exists(app.keys.channelPayer('alipay', '2088000000000033'))).toBe(0);
    expect(await cardOfChannelPayer(ctx, 'alipay', '2088000000000003')).toBe('CP3');
  });

  it('refuses what can never work: unknown card, bad channel, bad payer id', async () => {
    const ctx = app.context;
    await expect(bindChannelPayer(ctx, 'NOPE', 'alipay', '2088000000000009')).rejects.toBeInstanceOf(NotFoundError);
    expect(await app.redis.exists(app.keys.channelPayer('alipay', '2088000000000009'))).toBe(0);
    // @ts-expect-error a channel the store does not know
    await expect(bindChannelPayer(ctx, 'CP5', 'paypal', '2088000000000009')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(bindChannelPayer(ctx, 'CP5', 'alipay', 'bad id!')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(channelPayersOfCard(ctx, 'NOPE')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('parallel binders of one payer: exactly one card gets it', async () => {
    const ctx = app.context;
    const cards = ['CP6', 'CP7', 'CP8', 'CP9'];
    const results = await Promise.allSettled(cards.map((c) => bindChannelPayer(ctx, c, 'wechat', 'oPARALLEL-payer-0001')));
    const won = cards.filter((_, i) => results[i]?.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(AlreadyExistsError);
    expect(await cardOfChannelPayer(ctx, 'wechat', 'oPARALLEL-payer-0001')).toBe(won[0]);
    for (const c of cards)
      expect(await app.redis.hget(app.keys.account(c), 'cpwechat'), c).toBe(c === won[0] ? 'oPARALLEL-payer-0001' : null);
  });

  it('parallel binders of one card with different payers: exactly one payer, the others released', async () => {
    const ctx = app.context;
    const payers = ['oPAR-card-a01', 'oPAR-card-a02', 'oPAR-card-a03', 'oPAR-card-a04'];
    const results = await Promise.allSettled(payers.map((p) => bindChannelPayer(ctx, 'CP10', 'wechat', p)));
    const won = payers.filter((_, i) => results[i]?.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect(await channelPayersOfCard(ctx, 'CP10')).toEqual({ wechat: won[0] });
    for (const p of payers) expect(await app.redis.get(app.keys.channelPayer('wechat', p)), p).toBe(p === won[0] ? 'CP10' : null);
  });

  it('a half-written binding (crash between the slots) counts as none and is taken over', async () => {
    const ctx = app.context;
    // The payer's record names CP11, whose account never got the payer: a crash after the claim.
    await app.redis.set(app.keys.channelPayer('alipay', '2088000000000011'), 'CP11');
    expect(await cardOfChannelPayer(ctx, 'alipay', '2088000000000011')).toBeUndefined();
    expect(await channelPayersOfCard(ctx, 'CP11')).toEqual({});
    await bindChannelPayer(ctx, 'CP12', 'alipay', '2088000000000011');
    expect(await cardOfChannelPayer(ctx, 'alipay', '2088000000000011')).toBe('CP12');
  });
});
