// The e-card when Redis stalls or dies: the gateway answers 503 fast (never a stale card, never a code
// from nowhere), /healthz says so, a POS gets UNAVAILABLE for a campus QR code, and once Redis is back
// (killed and restarted on its AOF) the open page's socket gets the next payment: the events
// subscription comes back by itself. Runs its own redis-server, as it stops and kills it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as Status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { bindEcard } from '../switch/domain/ecard.js';
import { createLogger } from '../switch/log.js';
import { startLocalRedis, type LocalRedis } from '../switch/redis/local-redis.js';
import { passwordHash } from './helpers/clients.js';
import { call, grpcError, openCard, POS_TERMINAL, posClient, terminalMetadata, testConfig } from './helpers/switch.js';

const PIN = '246810';
const DOC = '11010519900307123X';
const PHONE = '13800138000';

let dataDir = '';
let redis: LocalRedis;
let app: SwitchApp;
let pos: ReturnType<typeof posClient>;
let base = '';
let token = '';
let seq = 0;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cardswitch-ecard-faults-'));
  redis = await startLocalRedis({ dataDir, port: 0, appendOnly: true, appendFsync: 'always', startTimeoutMs: 10_000 });
  const config = { ...testConfig('ecardfaults', { REDIS_COMMAND_TIMEOUT_MS: '300' }), redisUrl: redis.url };
  app = await startSwitch(config, createLogger(config.logLevel));
  base = `http://127.0.0.1:${app.gateway?.port}`;
  await app.terminals.register(POS_TERMINAL);
  pos = posClient(app);
  await openCard(app, '9001', 'FF009001', 10_000, {
    pwd: await passwordHash(app, PIN),
    doct: 'R',
    docn: DOC,
    phone: PHONE,
    sno: 'F9001',
    sync: '1',
  });
  await app.redis.set(app.keys.personNumber('F9001'), '9001');
  await bindEcard(app.context, 'wecom:faults', {
    bindingType: 'student',
    personNumber: 'F9001',
    password: PIN,
    documentType: 'resident_id',
    documentNumber: DOC,
    phone: PHONE,
    consent: true,
  });
  token = (await app.gateway?.sessions.start({ provider: 'wecom', userId: 'wecom:faults' }, '9001'))?.accessToken ?? '';
});
afterAll(async () => {
  pos.close();
  await app.stop();
  await redis.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function get(path: string): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const started = Date.now();
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, ms: Date.now() - started };
}

function payWithQr(payload: string): Promise<AuthorizeResponse> {
  return call(
    pos,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: ++seq, amountFen: 100, credential: { campusQr: { payload } }, pin: '' },
    terminalMetadata(POS_TERMINAL),
  );
}

describe('Redis stalled', () => {
  it('the gateway answers 503 within its timeout, /healthz is 503, a QR payment is UNAVAILABLE; all recover', async () => {
    const code = (await get('/api/v1/ecard/qr')).body['code'] as string;
    redis.process.kill('SIGSTOP');
    try {
      const summary = await get('/api/v1/ecard');
      expect(summary.status).toBe(503);
      expect((summary.body['error'] as { message: string }).message).toMatch(/[\u4e00-\u9fff]/);
      expect(summary.ms).toBeLessThan(2500);
      expect((await get('/api/v1/ecard/qr')).status).toBe(503);
      expect((await fetch(`${base}/healthz`)).status).toBe(503);
      const refused = await grpcError(payWithQr(code));
      expect(refused.code).toBe(Status.UNAVAILABLE);
    } finally {
      redis.process.kill('SIGCONT');
    }
    expect((await get('/api/v1/ecard')).status).toBe(200);
    // The stalled call may have been applied late or not at all: a retry with the same sequence number learns which.
    const retried = await call<object, AuthorizeResponse>(
      pos,
      'authorize',
      { terminalId: POS_TERMINAL.id, sequenceNumber: seq, amountFen: 100, credential: { campusQr: { payload: code } }, pin: '' },
      terminalMetadata(POS_TERMINAL),
    );
    expect(retried.outcome).toBe(Outcome.OUTCOME_APPROVED);
    const balance = Number(await app.redis.hget(app.keys.account('9001'), 'bal'));
    expect(balance).toBe(9_900);
  });
});

describe('Redis killed and restarted', () => {
  it('the open page gets the next payment once Redis is back on its AOF', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${app.gateway?.port}/api/v1/events`, ['cardswitch.events.v1', `bearer.${token}`]);
    const messages: Record<string, unknown>[] = [];
    let onMessage: (() => void) | undefined;
    ws.on('message', (data) => {
      // binaryType is ws's default 'nodebuffer': each message arrives as one Buffer.
      messages.push(JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>);
      onMessage?.();
    });
    const until = (test: () => boolean, ms: number): Promise<void> =>
      new Promise((resolve, reject) => {
        if (test()) return resolve();
        const timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${JSON.stringify(messages)}`)), ms);
        onMessage = () => {
          if (test()) {
            clearTimeout(timer);
            resolve();
          }
        };
      });
    await until(() => messages.some((m) => m['type'] === 'hello'), 2000);
    const port = redis.port;
    redis.process.kill('SIGKILL');
    await new Promise((resolve) => redis.process.once('exit', resolve));
    expect((await get('/api/v1/ecard')).status).toBe(503);
    redis = await startLocalRedis({ dataDir, port, appendOnly: true, appendFsync: 'always', startTimeoutMs: 10_000 });
    // The ledger (AOF, appendfsync always) kept the balance; the clients reconnect by themselves.
    if (app.redis.status !== 'ready') await new Promise((resolve) => app.redis.once('ready', resolve));
    const summary = await get('/api/v1/ecard');
    expect(summary.body['balanceFen']).toBe(9_900);
    // A POS retries a payment the ledger could not take (UNAVAILABLE), with the same sequence number,
    // as a real one does: after a short back-off, until the switch's payment connection is back (the
    // back-off is the client's behaviour under test, not a wait for the test's own sake).
    const code = (await get('/api/v1/ecard/qr')).body['code'] as string;
    const sequenceNumber = ++seq;
    let paid: AuthorizeResponse | undefined;
    for (let i = 0; i < 100 && paid === undefined; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
      paid = await call<object, AuthorizeResponse>(
        pos,
        'authorize',
        { terminalId: POS_TERMINAL.id, sequenceNumber, amountFen: 100, credential: { campusQr: { payload: code } }, pin: '' },
        terminalMetadata(POS_TERMINAL),
      ).catch((err: { code?: number }) => {
        if (err.code !== Status.UNAVAILABLE) throw err;
        return undefined;
      });
    }
    expect(paid?.outcome).toBe(Outcome.OUTCOME_APPROVED);
    await until(() => messages.some((m) => m['type'] === 'payment' && m['approved'] === true), 3000);
    ws.close();
  });
});
