// The WeChat mini-program: wx.login() gives the page a `code`; we exchange it for the user's openid.
//
//   GET {apiBase}/sns/jscode2session?appid=&secret=&js_code=&grant_type=authorization_code
//       -> {openid, session_key, unionid?}      (no errcode on success)
//       -> {errcode, errmsg}                    40029 invalid code, 40163 code used, 45011 rate limit,
//                                               40226 high-risk user, -1 system busy
//
// session_key is the key of the user's encrypted mini-program data; we have no use for it, so it is
// dropped here and never logged, stored or returned.
import { PermissionDeniedError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  apiUrl,
  checkCode,
  errcodeOf,
  getProviderJson,
  identityUnavailableError,
  invalidCodeError,
  namespacedUserId,
  providerRefused,
  stringField,
  type Identity,
  type IdentityProvider,
  type ProviderCall,
} from './provider.js';

export interface WeChatOptions {
  readonly apiBase: string;
  readonly appId: string;
  readonly appSecret: string;
  readonly log: Logger;
}

/** 40029 invalid code, 40163 code already used. */
const ERRCODES_INVALID_CODE: ReadonlySet<number> = new Set([40029, 40163]);
const ERRCODE_HIGH_RISK_USER = 40226;
/** Our own configuration is wrong (40013 invalid appid, 40125 invalid secret, 40001 invalid credential). */
const ERRCODES_MISCONFIGURED: ReadonlySet<number> = new Set([40001, 40013, 40125]);

export class WeChatProvider implements IdentityProvider {
  readonly name = 'wechat' as const;

  constructor(private readonly options: WeChatOptions) {
    if (options.appId === '' || options.appSecret === '') throw new Error('WeChatProvider needs an app id and an app secret');
  }

  async exchange(code: string, signal: AbortSignal): Promise<Identity> {
    checkCode(code);
    const call: ProviderCall = { provider: 'wechat', step: 'jscode2session', log: this.options.log };
    const url = apiUrl(this.options.apiBase, '/sns/jscode2session', {
      appid: this.options.appId,
      secret: this.options.appSecret,
      js_code: code,
      grant_type: 'authorization_code',
    });
    const answer = await getProviderJson(url, signal, call);
    const errcode = errcodeOf(answer);
    if (ERRCODES_INVALID_CODE.has(errcode)) throw invalidCodeError('wechat');
    if (errcode === ERRCODE_HIGH_RISK_USER) {
      throw new PermissionDeniedError('WeChat flags this account as high-risk; it may not sign in to the e-card', {
        reason: 'HIGH_RISK_USER',
        zh: '该微信账号存在安全风险，暂不能登录，请使用企业微信进入或到卡务中心咨询',
      });
    }
    // Anything else (45011 rate limit, -1 busy) is the provider being unavailable to us for a moment.
    if (errcode !== 0) throw providerRefused(call, answer, ERRCODES_MISCONFIGURED.has(errcode) ? 'error' : 'warn');
    const openid = stringField(answer, 'openid');
    const userId = openid === undefined ? undefined : namespacedUserId('wechat', openid);
    if (userId === undefined) {
      this.options.log.warn({ provider: 'wechat', step: call.step, failure: 'openid' }, 'identity provider answered no usable openid');
      throw identityUnavailableError('wechat', 'jscode2session: no usable openid');
    }
    return { provider: 'wechat', userId };
  }
}
