// The identity providers a switch offers, from config.identity: a provider whose corp id / app id is
// empty is off. exchange() is where a sign-in code enters: it checks the provider name and the code,
// and bounds the provider call by config.identity.timeoutMs (and the caller's own signal, if any).
import type { IdentityConfig } from '../config.js';
import { CancelledError, FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import { checkCode, identityUnavailableError, isIdentityProviderName, isNamespacedUserId, IDENTITY_PROVIDER_NAMES } from './provider.js';
import type { Identity, IdentityProvider, IdentityProviderName } from './provider.js';
import { WeChatProvider } from './wechat.js';
import { WeComProvider } from './wecom.js';

export * from './provider.js';
export { WeComProvider, TOKEN_EARLY_REFRESH_MS, type WeComOptions } from './wecom.js';
export { WeChatProvider, type WeChatOptions } from './wechat.js';
export {
  IdentitySimulator,
  SIM_ACCESS_TOKEN_TTL_SEC,
  SIM_CODE_TTL_MS,
  type SimulatedFailure,
  type SimulatorCredentials,
} from './simulator.js';

export const MAX_IDENTITY_TIMEOUT_MS = 30_000;

export interface IdentityProvidersOptions {
  /** Milliseconds since the epoch, for the WeCom token cache (tests may pass their own clock). */
  readonly now?: () => number;
}

export class IdentityProviders {
  private readonly providers = new Map<IdentityProviderName, IdentityProvider>();
  private readonly timeoutMs: number;

  constructor(config: IdentityConfig, log: Logger, options: IdentityProvidersOptions = {}) {
    if (!Number.isInteger(config.timeoutMs) || config.timeoutMs < 1 || config.timeoutMs > MAX_IDENTITY_TIMEOUT_MS) {
      throw new Error(`identity timeout must be 1..${MAX_IDENTITY_TIMEOUT_MS} ms, got ${config.timeoutMs}`);
    }
    this.timeoutMs = config.timeoutMs;
    const { wecom, wechat } = config;
    if (wecom.corpId !== '') {
      const now = options.now;
      this.providers.set('wecom', new WeComProvider({ ...wecom, log, tokenTimeoutMs: config.timeoutMs, ...(now ? { now } : {}) }));
    }
    if (wechat.appId !== '') this.providers.set('wechat', new WeChatProvider({ ...wechat, log }));
  }

  /** The providers that are on, in a stable order (the page offers only these). */
  enabled(): IdentityProviderName[] {
    return IDENTITY_PROVIDER_NAMES.filter((name) => this.providers.has(name));
  }

  /**
   * Exchanges a sign-in code at the named provider. Refusals: InvalidArgumentError (unknown provider,
   * malformed code), FailedPreconditionError PROVIDER_DISABLED, and the adapter's own (see provider.ts);
   * no answer within the timeout is UnavailableError, the caller's `signal` aborting is CancelledError.
   */
  async exchange(name: string, code: string, signal?: AbortSignal): Promise<Identity> {
    if (!isIdentityProviderName(name)) {
      throw new InvalidArgumentError(`provider must be one of ${IDENTITY_PROVIDER_NAMES.join(', ')}`, {
        reason: 'UNKNOWN_PROVIDER',
        zh: '不支持的登录方式',
        field: 'provider',
      });
    }
    checkCode(code);
    const provider = this.providers.get(name);
    if (provider === undefined) {
      throw new FailedPreconditionError(`sign-in with ${name} is not enabled on this switch`, {
        reason: 'PROVIDER_DISABLED',
        zh: name === 'wecom' ? '暂未开通企业微信登录' : '暂未开通微信小程序登录',
      });
    }
    const identity = await this.bounded(name, signal, (bound) => provider.exchange(code, bound));
    // An adapter answering another provider's id would let one provider's user act as another's.
    if (identity.provider !== name || !isNamespacedUserId(identity.userId) || !identity.userId.startsWith(`${name}:`)) {
      throw new Error(`identity adapter ${name} answered an identity of the wrong shape`);
    }
    return identity;
  }

  /** Runs `run` with a signal that aborts at the timeout or when `signal` does; settles by then either way. */
  private async bounded<T>(
    name: IdentityProviderName,
    signal: AbortSignal | undefined,
    run: (bound: AbortSignal) => Promise<T>,
  ): Promise<T> {
    // A function, not a narrowed property: the signal may abort while we wait.
    const callerAborted = (): boolean => signal?.aborted === true;
    if (callerAborted()) throw new CancelledError('the caller went away before the sign-in started');
    const controller = new AbortController();
    const onCallerAbort = (): void => controller.abort();
    signal?.addEventListener('abort', onCallerAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(identityUnavailableError(name, `no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([run(controller.signal), expired]);
    } catch (err) {
      if (callerAborted()) throw new CancelledError('the caller went away during the sign-in');
      throw err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onCallerAbort);
    }
  }
}
