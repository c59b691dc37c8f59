// A production Redis has a password (and maybe a database number): the switch's payments must still run
// on the lean pipeline client, the path the bench measures (issue 15 item 3), not fall back to ioredis.
import { Writable } from 'node:stream';
import { credentials } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import { PosServiceClient, type AuthorizeRequest, type AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { redisServer, type PrivateRedisServer } from './helpers/redis-server.js';
import { call, openCard, POS_TERMINAL, terminalMetadata, testConfig } from './helpers/switch.js';

const PASSWORD = 'ledger-pw:with/odd@chars';
let server: PrivateRedisServer;

beforeAll(async () => {
  server = await redisServer(['--requirepass', PASSWORD]);
});
afterAll(() => server.stop());

/** A switch on the password-protected Redis, and what it logged. */
async function start(label: string, env: Record<string, string>): Promise<{ app: SwitchApp; logs: Record<string, unknown>[] }> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const app = await startSwitch(testConfig(label, { ...env, LOG_LEVEL: 'info' }), pino({ level: 'info' }, sink));
  onTestFinished(() => app.stop());
  await app.terminals.register(POS_TERMINAL);
  await openCard(app, '30010001', 'A0E10001', 10_000);
  return { app, logs };
}

function tap(app: SwitchApp, sequenceNumber: number): Promise<AuthorizeResponse> {
  const client = new PosServiceClient(`127.0.0.1:${app.grpcPort}`, credentials.createInsecure());
  onTestFinished(() => client.close());
  const request: AuthorizeRequest = {
    terminalId: POS_TERMINAL.id,
    sequenceNumber,
    amountFen: 1_250,
    credential: { card: { cardSerial: 'A0E10001' } },
    pin: '',
  };
  return call(client, 'authorize', request, terminalMetadata(POS_TERMINAL));
}

async function evalshaCalls(db: number): Promise<{ calls: number; keys: number }> {
  const admin = new Redis({ port: server.port, password: PASSWORD, db });
  try {
    const stats = await admin.info('commandstats');
    const keyspace = await admin.info('keyspace');
    return {
      calls: Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0),
      keys: Number(new RegExp(`db${db}:keys=(\\d+)`).exec(keyspace)?.[1] ?? 0),
    };
  } finally {
    admin.disconnect();
  }
}

describe('a password-protected Redis', () => {
  it('REDIS_URL with a password and a database: payments run on the lean client there, and it says so', async () => {
    const before = await evalshaCalls(5);
    const { app, logs } = await start('redis-auth-url', {
      REDIS_URL: `redis://:${encodeURIComponent(PASSWORD)}@127.0.0.1:${server.port}/5`,
    });
    expect(await tap(app, 1)).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 8_750 });
    const hotPath = logs.filter((l) => l['redisClient'] !== undefined);
    expect(hotPath).toEqual([expect.objectContaining({ redisClient: 'pipeline', auth: true, db: 5, tls: false })]);
    expect(JSON.stringify(logs)).not.toContain(PASSWORD);
    const after = await evalshaCalls(5);
    expect(after.calls).toBeGreaterThan(before.calls);
    expect(after.keys).toBeGreaterThan(0);
  });

  it('a database that is not a number stops the configuration, naming REDIS_URL', () => {
    expect(() => testConfig('redis-auth-bad', { REDIS_URL: `redis://127.0.0.1:${server.port}/ledger` })).toThrow(
      /REDIS_URL.*database number/s,
    );
  });
});
