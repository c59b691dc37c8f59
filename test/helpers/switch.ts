// Starts a real switch (gRPC on a free port) against the test redis-server, in a fresh key space.
import { credentials, Metadata } from '@grpc/grpc-js';
import { PosServiceClient } from '../../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../../switch/app.js';
import { loadConfig, type Config } from '../../switch/config.js';
import type { NewTerminal } from '../../switch/domain/terminals.js';
import { createLogger } from '../../switch/log.js';
import { freshPrefix, testRedisUrl } from './redis.js';

export const TEST_PEPPER = 'test-pepper-0123456789';

export function testConfig(label: string, overrides: Record<string, string> = {}): Config {
  return loadConfig({
    REDIS_URL: testRedisUrl(),
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    KEY_PREFIX: freshPrefix(label),
    LEDGER_SHARDS: '16',
    TERMINAL_SECRET_PEPPER: TEST_PEPPER,
    PASSWORD_PEPPER: TEST_PEPPER,
    TERMINAL_CACHE_MS: '0',
    SHUTDOWN_GRACE_MS: '2000',
    LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'silent',
    ...overrides,
  });
}

export async function startTestSwitch(label: string, overrides: Record<string, string> = {}): Promise<SwitchApp> {
  const config = testConfig(label, overrides);
  return startSwitch(config, createLogger(config.logLevel));
}

export const POS_TERMINAL: NewTerminal = {
  id: 'POS-T1',
  kind: 'canteen',
  merchantId: 'CANTEEN1',
  location: '第一食堂 一层',
  secret: 'pos-secret-0123456789',
};

export function posClient(app: SwitchApp): PosServiceClient {
  return new PosServiceClient(`127.0.0.1:${app.grpcPort}`, credentials.createInsecure());
}

export function terminalMetadata(t: { id: string; secret: string }): Metadata {
  const m = new Metadata();
  m.set('terminal-id', t.id);
  m.set('terminal-secret', t.secret);
  return m;
}

/** Promisifies one unary call of a generated grpc-js client. */
export function call<Req, Res>(
  client: unknown,
  method: string,
  request: Req,
  metadata: Metadata,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as Record<string, (r: Req, m: Metadata, cb: (e: Error | null, v: Res) => void) => void>)[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    fn.call(client, request, metadata, (err, value) => (err ? reject(err) : resolve(value)));
  });
}

export async function openCard(app: SwitchApp, cardNo: string, serial: string, openingFen: number, extra: Record<string, string> = {}): Promise<void> {
  await app.ledger.openAccount({ cardNo, openingFen, fields: { ser: serial, name: '张三', sno: `S${cardNo}`, ht: 'S', ...extra } });
  await app.redis.set(app.keys.serial(serial), cardNo);
}
