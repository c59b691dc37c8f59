// Starts a real switch (gRPC on a free port) against the test redis-server, in a fresh key space.
import { credentials, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import type { Cluster, Redis } from 'ioredis';
import { isCluster } from '../../switch/redis/cluster.js';
import { PosServiceClient } from '../../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../../switch/app.js';
import { loadConfig, type Config } from '../../switch/config.js';
import type { NewTerminal } from '../../switch/domain/terminals.js';
import { createLogger } from '../../switch/log.js';
import { expandJournalRow } from '../../switch/ledger/journal.js';
import { freshPrefix, testRedisUrl } from './redis.js';

export const TEST_PEPPER = 'test-pepper-0123456789';
export const TEST_SESSION_SECRET = 'test-session-secret-0123456789abcdef';
export const TEST_QR_SECRET = 'test-campus-qr-secret-0123456789abcdef';

/** Settings every switch of this test file gets last (the cluster tests: REDIS_CLUSTER_NODES, see redis-cluster.ts). */
let ledgerRedisOverride: Record<string, string> = {};
export function useLedgerRedis(env: Record<string, string>): void {
  ledgerRedisOverride = env;
}

/** True while a suite runs the tests on another ledger (cluster-flow: a Redis Cluster); a test's own REDIS_URL is then not used. */
export function ledgerRedisOverridden(): boolean {
  return Object.keys(ledgerRedisOverride).length > 0;
}

export function testConfig(label: string, overrides: Record<string, string> = {}): Config {
  return loadConfig({
    REDIS_URL: testRedisUrl(),
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    KEY_PREFIX: freshPrefix(label),
    LEDGER_SHARDS: '16',
    TERMINAL_SECRET_PEPPER: TEST_PEPPER,
    PASSWORD_PEPPER: TEST_PEPPER,
    SESSION_SECRET: TEST_SESSION_SECRET,
    CAMPUS_QR_SECRET: TEST_QR_SECRET,
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: '0',
    TERMINAL_CACHE_MS: '0',
    SHUTDOWN_GRACE_MS: '2000',
    LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'silent',
    // Tests of other rules should not trip the password-free limits; the limit tests set their own.
    STUDENT_NO_PIN_PER_PAYMENT_FEN: '100000000',
    STUDENT_NO_PIN_PER_DAY_FEN: '100000000',
    STUDENT_DAILY_SPEND_LIMIT_FEN: '0',
    STAFF_NO_PIN_PER_PAYMENT_FEN: '100000000',
    STAFF_NO_PIN_PER_DAY_FEN: '100000000',
    STAFF_DAILY_SPEND_LIMIT_FEN: '0',
    PASSWORD_THREADS: '2',
    // A test process on a loaded CI machine (two cores, Chromium and other test files beside it) can stall its own
    // event loop past the production default of 2 s; a reply then loses to ioredis's timer, the breaker opens and
    // the test fails on a ledger that was never down. Tests of timeouts and stalls set their own (ledger-stall,
    // faults, ecard-faults, pos-authorize).
    REDIS_COMMAND_TIMEOUT_MS: '10000',
    ...overrides,
    ...ledgerRedisOverride,
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
export function call<Req, Res>(client: unknown, method: string, request: Req, metadata: Metadata): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as Record<string, (r: Req, m: Metadata, cb: (e: Error | null, v: Res) => void) => void>)[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    fn.call(client, request, metadata, (err, value) => (err ? reject(err) : resolve(value)));
  });
}

export async function openCard(
  app: SwitchApp,
  cardNo: string,
  serial: string,
  openingFen: number,
  extra: Record<string, string> = {},
): Promise<void> {
  await app.ledger.openAccount({ cardNo, openingFen, fields: { ser: serial, name: '张三', sno: `S${cardNo}`, ht: 'S', ...extra } });
  await app.redis.set(app.keys.serial(serial), cardNo);
}

/** Resolves with the gRPC status of a call that must fail; throws when the call succeeded instead. */
export async function grpcError(pending: Promise<unknown>): Promise<ServiceError> {
  let value: unknown;
  try {
    value = await pending;
  } catch (err) {
    if (err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number') return err as ServiceError;
    throw err;
  }
  throw new Error(`expected the call to fail with a gRPC status, but it answered ${JSON.stringify(value)}`);
}

export interface JournalEntry {
  readonly id: string;
  readonly fields: Readonly<Record<string, string>>;
}

/** Every entry of one journal stream, oldest first. */
export async function readJournal(redis: Redis, journalKey: string): Promise<JournalEntry[]> {
  const raw = (await redis.xrange(journalKey, '-', '+')).map(expandJournalRow);
  return raw.map(([id, flat]) => {
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
    return { id, fields };
  });
}

/** Every key of a key space with its whole value: equal dumps before and after prove a request changed nothing. */
export async function dumpKeySpace(redis: Redis, prefix: string): Promise<Record<string, unknown>> {
  const keys: string[] = [];
  // A cluster client's SCAN reaches one node: every master is scanned (test/cluster-flow runs files on one).
  const nodes = isCluster(redis as Redis | Cluster) ? (redis as unknown as Cluster).nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
  }
  const dump: Record<string, unknown> = {};
  for (const key of [...new Set(keys)].sort()) {
    const type = await redis.type(key);
    if (type === 'string') dump[key] = await redis.get(key);
    else if (type === 'hash') dump[key] = await redis.hgetall(key);
    else if (type === 'stream') dump[key] = await redis.xrange(key, '-', '+');
    else if (type === 'zset') dump[key] = await redis.zrange(key, 0, -1, 'WITHSCORES');
    else if (type === 'set') dump[key] = (await redis.smembers(key)).sort();
    else if (type === 'list') dump[key] = await redis.lrange(key, 0, -1);
    else dump[key] = `<${type}>`;
    dump[`${key} ttl>0`] = (await redis.ttl(key)) > 0;
  }
  return dump;
}

/** One unary call with raw bytes both ways, to compare answers byte for byte. */
export function unaryBytes(client: Client, path: string, request: Uint8Array, metadata: Metadata): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (bytes: Uint8Array) => Buffer.from(bytes),
      (bytes: Buffer) => bytes,
      request,
      metadata,
      (err, value) => (err ? reject(err) : value === undefined ? reject(new Error('no response')) : resolve(value)),
    );
  });
}
