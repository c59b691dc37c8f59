// Secrets and personal data must not reach the logs: a password hash, a card serial or a payment code
// travelling as a Redis command's argument, a password inside a URL. Each test plants a distinctive value,
// makes the product log at its most verbose level, and looks for the value in everything it wrote.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KioskConfigError, loadKioskConfig } from '../kiosk/main/settings.js';
import WebSocket from 'ws';
import { startGateway } from '../switch/gateway/http.js';
import { createLogger } from '../switch/log.js';
import { createMetrics } from '../switch/metrics.js';
import { freePort } from '../switch/redis/local-redis.js';
import { startSwitch } from '../switch/app.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { startTestCluster, useClusterLedger, type TestCluster } from './helpers/redis-cluster.js';
import {
  call,
  grpcError,
  openCard,
  POS_TERMINAL,
  posClient,
  startTestSwitch,
  terminalMetadata,
  testConfig,
  useLedgerRedis,
} from './helpers/switch.js';
import { redisServer, type PrivateRedisServer } from './helpers/redis-server.js';

const PLANTED = 'pl4nted-s3cret-9f1c2e';

/** A trace-level logger as the product makes it, and everything it wrote. */
function capturedLogger(): { log: ReturnType<typeof createLogger>; text: () => string; lines: () => Record<string, unknown>[] } {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      out += chunk.toString();
      done();
    },
  });
  const log = createLogger('trace', 'test', sink);
  return {
    log,
    text: () => out,
    lines: () =>
      out
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('the log', () => {
  let server: PrivateRedisServer;
  beforeAll(async () => {
    server = await redisServer([]);
  });
  afterAll(() => server.stop());

  it("logs a Redis reply error with its message and command name, never the command's arguments", async () => {
    // ioredis puts `command: { name, args }` on every reply error; a script's ARGV carries password hashes
    // (password.lua ok/set) and card serials (authorize.lua), and the switch logs unexpected errors whole.
    const client = new Redis({ port: server.port, maxRetriesPerRequest: 1 });
    let caught: unknown;
    try {
      await client.call('FCALL', 'no_such_function', 0, 'set', PLANTED);
    } catch (err) {
      caught = err;
    } finally {
      client.disconnect();
    }
    expect((caught as { command?: { args?: unknown[] } }).command?.args).toContain(PLANTED);
    const { log, text, lines } = capturedLogger();
    log.error({ err: caught, rpc: 'ChangePassword' }, 'call failed');
    log.error({ err: new Error('wrapped', { cause: caught }) }, 'call failed');
    log.error(caught as Error);
    expect(text()).not.toContain(PLANTED);
    const first = lines()[0] as { err: { message: string; command: { name: string } } };
    expect(first.err.message).toMatch(/Function not found/);
    expect(first.err.command.name).toMatch(/^fcall$/i);
  });
});

describe("the kiosk's start-up problems", () => {
  it('a credential file that is not valid JSON is refused without quoting the secret', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiosk-credential-'));
    try {
      const file = join(dir, 'credential.json');
      // Typos an installer makes: the secret unquoted, a trailing comma, a missing closing quote.
      const broken = [
        `{"terminalId": "KIOSK-9", "secret": ${PLANTED}}`,
        `{"terminalId": "KIOSK-9", "secret": "${PLANTED}",}`,
        `{"terminalId": "KIOSK-9", "secret": "${PLANTED}}`,
        `{"terminalId": "KIOSK-9" "secret": "${PLANTED}"}`,
      ];
      for (const text of broken) {
        writeFileSync(file, text);
        chmodSync(file, 0o600);
        let caught: unknown;
        try {
          loadKioskConfig({ KIOSK_CREDENTIAL_FILE: file });
        } catch (err) {
          caught = err;
        }
        expect(caught, text).toBeInstanceOf(KioskConfigError);
        const message = (caught as Error).message;
        expect(message).toContain(file);
        for (let i = 0; i + 5 <= PLANTED.length; i++) expect(message, text).not.toContain(PLANTED.slice(i, i + 5));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a start-up that cannot reach its archive', () => {
  it('names the DATABASE_URL without any piece of its password, even one holding an @', async () => {
    const port = await freePort();
    // Nothing listens there: the archive cannot be opened and the switch does not start.
    const url = `postgres://archiver:ab@${PLANTED}@127.0.0.1:${port}/journal`;
    let caught: unknown;
    try {
      const app = await startTestSwitch('leak-dburl', { DATABASE_URL: url });
      await app.stop();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(Error);
    const message = (caught as Error).message;
    expect(message).toContain('cannot open the journal archive at postgres://***@127.0.0.1');
    expect(message).not.toContain(PLANTED.slice(0, 8));
    expect(message).not.toContain(PLANTED.slice(-8));
  });
});

describe('a switch on a Redis Cluster whose script fails', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster();
    useClusterLedger(cluster.cluster);
  }, 60_000);
  afterAll(async () => {
    useLedgerRedis({});
    await cluster.stop();
  });

  it('logs the failed payment at trace level without the card serial the script was given', async () => {
    // On a Cluster the scripts run on ioredis, whose reply errors carry the command's arguments.
    const { log, text } = capturedLogger();
    const app = await startSwitch(testConfig('leak-cluster'), log);
    const pos = posClient(app);
    const serial = 'A1B2C3D4E5F60718';
    try {
      await app.terminals.register(POS_TERMINAL);
      await openCard(app, '50010001', serial, 10_000);
      // A damaged account record: authorize.lua's first read of it answers WRONGTYPE (a ReplyError, not an outage).
      const account = app.keys.account('50010001');
      await app.redis.del(account);
      await app.redis.set(account, 'damaged');
      const tap = call<unknown, AuthorizeResponse>(
        pos,
        'authorize',
        { terminalId: POS_TERMINAL.id, sequenceNumber: 1, amountFen: 100, credential: { card: { cardSerial: serial } }, pin: '' },
        terminalMetadata(POS_TERMINAL),
      );
      const refused = await grpcError(tap);
      expect(refused.details).not.toContain(serial);
      const failed = text()
        .split('\n')
        .filter((l) => l.includes('"call failed"'));
      expect(failed.join('\n')).toMatch(/WRONGTYPE/);
      expect(text()).not.toContain(serial);
    } finally {
      pos.close();
      await app.stop();
    }
  }, 60_000);
});

describe('the gateway refusing a WebSocket it cannot open', () => {
  it('logs the subprotocols a client offered without the bearer token among them', async () => {
    const { log, text } = capturedLogger();
    const gateway = await startGateway({
      host: '127.0.0.1',
      port: 0,
      maxBodyBytes: 1024,
      log,
      metrics: createMetrics(),
      shutdownGraceMs: 1000,
      routes: [],
      ws: {
        path: '/api/v1/events',
        maxBackpressureBytes: 64 * 1024,
        idleTimeoutSec: 8,
        maxSockets: 10,
        // A mistake in an app's authenticate: a subprotocol the client did not offer. The gateway refuses (500) and logs it.
        authenticate: () => Promise.resolve({ key: 'k', protocol: 'cardswitch.other.v1' }),
      },
    });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const client = new WebSocket(`ws://127.0.0.1:${gateway.port}/api/v1/events`, ['cardswitch.events.v1', `bearer.${PLANTED}`]);
        client.on('open', () => reject(new Error('the upgrade was accepted')));
        client.on('error', () => undefined);
        client.on('unexpected-response', (_req, res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
      });
      expect(status).toBe(500);
      expect(text()).toContain('authenticate chose a subprotocol the client did not offer');
      expect(text()).toContain('cardswitch.events.v1');
      expect(text()).not.toContain(PLANTED);
    } finally {
      await gateway.shutdown();
    }
  });
});
