// Which fee provider a switch uses, and with which time bound. The switch context has no provider
// field yet (see the note in grpc/money-handlers.ts), so each context gets one here: a simulator
// unless a provider was set with useFeeProvider (tests, or the start-up code once a real adapter exists).
import type { SwitchContext } from '../context.js';
import type { FeeProvider } from './provider.js';
import { FeeProviderSimulator } from './simulator.js';

export * from './provider.js';
export { FeeProviderSimulator, type SimulatedCancelMode, type SimulatedPayMode } from './simulator.js';

/** Each provider call (pay, cancel) gets at most this long; a kiosk user is waiting at the screen. */
export const DEFAULT_FEE_PROVIDER_TIMEOUT_MS = 3000;
export const MAX_FEE_PROVIDER_TIMEOUT_MS = 30_000;

export interface FeeSettings {
  readonly provider: FeeProvider;
  readonly timeoutMs: number;
}

const settingsByContext = new WeakMap<SwitchContext, FeeSettings>();

export function useFeeProvider(ctx: SwitchContext, provider: FeeProvider, timeoutMs = DEFAULT_FEE_PROVIDER_TIMEOUT_MS): void {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_FEE_PROVIDER_TIMEOUT_MS) {
    throw new RangeError(`fee provider timeout must be 1..${MAX_FEE_PROVIDER_TIMEOUT_MS} ms, got ${timeoutMs}`);
  }
  settingsByContext.set(ctx, { provider, timeoutMs });
}

export function feeSettingsOf(ctx: SwitchContext): FeeSettings {
  let settings = settingsByContext.get(ctx);
  if (settings === undefined) {
    // Loud on purpose: a simulator takes real balances and delivers to nobody.
    ctx.log.warn('no fee provider configured: utility fees go to the built-in simulator (development only)');
    settings = { provider: new FeeProviderSimulator(), timeoutMs: DEFAULT_FEE_PROVIDER_TIMEOUT_MS };
    settingsByContext.set(ctx, settings);
  }
  return settings;
}
