// Kiosk and operator clients, a settable clock, and password helpers for tests.
import { credentials, Metadata } from '@grpc/grpc-js';
import { AdminServiceClient } from '../../proto/gen/cardswitch/v1/admin.js';
import { KioskServiceClient } from '../../proto/gen/cardswitch/v1/kiosk.js';
import { startSwitch, type StartOptions, type SwitchApp } from '../../switch/app.js';
import type { NewTerminal } from '../../switch/domain/terminals.js';
import { createLogger } from '../../switch/log.js';
import { testConfig } from './switch.js';

export const OPERATOR = { name: 'alice', token: 'alice-token-0123456789' };
export const OPERATOR_ENV = { OPERATOR_TOKENS: `${OPERATOR.name}:${OPERATOR.token}` };

export const KIOSK_TERMINAL: NewTerminal = {
  id: 'KIOSK-D4-01',
  kind: 'kiosk',
  merchantId: 'CARDCENTER',
  location: '学四公寓一层大厅',
  secret: 'kiosk-secret-0123456789',
};

/** A clock the test moves by hand (campus days, lock expiry). */
export class TestClock {
  constructor(public nowMs: number) {}
  readonly now = (): number => this.nowMs;
  advance(ms: number): void {
    this.nowMs += ms;
  }
  advanceDays(days: number): void {
    this.nowMs += days * 86_400_000;
  }
}

export async function startClockedSwitch(
  label: string,
  clock: TestClock,
  overrides: Record<string, string> = {},
  options: StartOptions = {},
): Promise<SwitchApp> {
  const config = testConfig(label, { ...OPERATOR_ENV, ...overrides });
  return startSwitch(config, createLogger(config.logLevel), clock.now, options);
}

export function kioskClient(app: SwitchApp): KioskServiceClient {
  return new KioskServiceClient(`127.0.0.1:${app.grpcPort}`, credentials.createInsecure());
}

export function adminClient(app: SwitchApp): AdminServiceClient {
  return new AdminServiceClient(`127.0.0.1:${app.grpcPort}`, credentials.createInsecure());
}

export function operatorMetadata(token = OPERATOR.token): Metadata {
  const m = new Metadata();
  m.set('operator-token', token);
  return m;
}

/** A card password hash from the pool at the given scrypt cost (1024: what imports stored before they stored none). */
export function passwordHash(app: SwitchApp, pin: string, scryptN = 1024): Promise<string> {
  return app.context.passwords.hash(pin, scryptN);
}
