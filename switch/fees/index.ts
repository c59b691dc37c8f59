// Which fee provider a switch uses, and with which time bound. app.ts builds the settings once
// (feeSettings) and puts them in the switch context (SwitchContext.fees); the domain takes them from
// there. No campus adapter exists yet: app.ts passes the built-in simulator unless it is given a
// provider (StartOptions.feeProvider: tests, or the start-up code once a real adapter exists).
import type { FeeProvider } from './provider.js';

export * from './provider.js';
export { FeeProviderSimulator, type SimulatedCancelMode, type SimulatedPayMode } from './simulator.js';

/** Each provider call (pay, cancel) gets at most this long; a kiosk user is waiting at the screen. */
export const DEFAULT_FEE_PROVIDER_TIMEOUT_MS = 3000;
export const MAX_FEE_PROVIDER_TIMEOUT_MS = 30_000;

export interface FeeSettings {
  readonly provider: FeeProvider;
  readonly timeoutMs: number;
}

/** The settings of one switch; refuses a time bound outside 1..MAX_FEE_PROVIDER_TIMEOUT_MS. */
export function feeSettings(provider: FeeProvider, timeoutMs = DEFAULT_FEE_PROVIDER_TIMEOUT_MS): FeeSettings {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_FEE_PROVIDER_TIMEOUT_MS) {
    throw new RangeError(`fee provider timeout must be 1..${MAX_FEE_PROVIDER_TIMEOUT_MS} ms, got ${timeoutMs}`);
  }
  return { provider, timeoutMs };
}
