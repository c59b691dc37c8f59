// `npm start` as a newcomer runs it: its own redis-server under a var/ folder, the demo campus on first
// start, the printed example call works and a tap changes the balance once; Ctrl-C stops everything.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import { PosServiceClient, type AuthorizeResponse, type InquireResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { freePort } from '../switch/redis/local-redis.js';
import { call } from './helpers/switch.js';

const varDir = mkdtempSync(join(tmpdir(), 'cardswitch-start-'));
// Searchable by the postgres user when the tests run as root (npm start's PostgreSQL then runs as postgres).
chmodSync(varDir, 0o711);
let child: ChildProcess | undefined;
let localRedisPort = 0;

afterAll(async () => {
  // npm start runs in a process group of its own here, its redis-server in another: end both if a test failed midway.
  if (child?.pid !== undefined && child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
  if (localRedisPort !== 0) {
    const redis = new Redis(localRedisPort, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => undefined);
    await redis
      .connect()
      .then(() => redis.call('SHUTDOWN', 'NOSAVE'))
      .catch(() => undefined);
    redis.disconnect();
  }
  // Its PostgreSQL too (its own process group as well), if it is still running.
  const postmaster = join(varDir, 'postgres', 'postmaster.pid');
  if (existsSync(postmaster)) {
    try {
      process.kill(Number(readFileSync(postmaster, 'utf8').split('\n')[0]), 'SIGINT');
    } catch {
      // already gone
    }
  }
  rmSync(varDir, { recursive: true, force: true });
});

/** Addresses listening on a TCP port, from /proc/net/tcp and tcp6 (hex, as the kernel writes them). */
function listeningAddresses(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A')
      .map((f) => f[1]?.split(':')[0] ?? ''),
  );
}

/** Resolves with everything printed up to the line that says the switch is ready (or rejects on exit). */
function waitForReady(proc: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      if (out.includes('Ctrl-C stops the switch')) resolve(out);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.once('exit', (code) => reject(new Error(`npm start exited with ${code} before it was ready:\n${out}`)));
  });
}

it('says which package to install when redis-server is missing, and exits without starting anything', async () => {
  const emptyPath = mkdtempSync(join(tmpdir(), 'cardswitch-nopath-'));
  const proc = spawn(process.execPath, ['--import', 'tsx', 'switch/start.ts'], {
    env: { ...process.env, PATH: emptyPath, REDIS_URL: '', CARDSWITCH_VAR_DIR: varDir, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  proc.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  rmSync(emptyPath, { recursive: true, force: true });
  expect(code).toBe(2);
  expect(out).toContain('redis-server was not found');
  expect(out).toContain('apt-get install redis-server');
}, 30_000);

it('starts redis and the switch, loads the demo campus, and a demo tap changes the balance once', async () => {
  const redisPort = await freePort();
  localRedisPort = redisPort;
  // No GRPC_HOST / GATEWAY_HOST: npm start must pick loopback by itself.
  const { GRPC_HOST: _grpcHost, GATEWAY_HOST: _gatewayHost, ...inherited } = process.env;
  // detached: its own process group, so the SIGINT below reaches the whole group as a terminal's Ctrl-C does.
  child = spawn(process.execPath, ['--import', 'tsx', 'switch/start.ts'], {
    detached: true,
    env: {
      ...inherited,
      REDIS_URL: '',
      CARDSWITCH_VAR_DIR: varDir,
      LOCAL_REDIS_PORT: String(redisPort),
      LOCAL_POSTGRES_PORT: String(await freePort()),
      DATABASE_URL: '',
      GRPC_PORT: '0',
      GATEWAY_PORT: '0',
      IDENTITY_SIMULATOR_PORT: '0',
      DEMO_CARDHOLDERS: '50',
      LOG_LEVEL: 'info',
      TERMINAL_SECRET_PEPPER: '',
      PASSWORD_PEPPER: '',
      OPERATOR_TOKENS: '',
      SESSION_SECRET: '',
      CAMPUS_QR_SECRET: '',
      WECOM_CORP_ID: '',
      WECHAT_APP_ID: '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const printed = await waitForReady(child);
  // The journal archive runs on npm start's own PostgreSQL under var/.
  expect(printed).toMatch(/journal archive: postgres:\/\/\S+@127\.0\.0\.1:\d+\/cardswitch, live window 35 days/);
  expect(existsSync(join(varDir, 'postgres', 'PG_VERSION'))).toBe(true);
  const target = /gRPC on (\S+)/.exec(printed)?.[1];
  const terminalId = /-H 'terminal-id: ([^']+)'/.exec(printed)?.[1];
  // The secret is not printed: the call reads it from a file under var/.
  const secretFile = /-H "terminal-secret: \$\(cat '([^']+)'\)"/.exec(printed)?.[1] ?? '';
  const secret = readFileSync(secretFile, 'utf8').trim();
  expect(secret.length).toBeGreaterThanOrEqual(16);
  expect(printed).not.toContain(secret);
  const serial = /serial ([0-9A-F]+)\)/.exec(printed)?.[1];
  expect([target, terminalId, secret, serial].every((v) => v !== undefined && v !== '')).toBe(true);

  const client = new PosServiceClient(target ?? '', credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set('terminal-id', terminalId ?? '');
  metadata.set('terminal-secret', secret ?? '');
  const credential = { card: { cardSerial: serial ?? '' } };
  const before = await call<object, InquireResponse>(client, 'inquire', { terminalId, credential }, metadata);
  const request = { terminalId, sequenceNumber: 1, amountFen: 1250, credential, pin: '' };
  const first = await call<object, AuthorizeResponse>(client, 'authorize', request, metadata);
  const retry = await call<object, AuthorizeResponse>(client, 'authorize', request, metadata);
  const after = await call<object, InquireResponse>(client, 'inquire', { terminalId, credential }, metadata);
  client.close();
  expect(first.outcome).toBe(Outcome.OUTCOME_APPROVED);
  expect(retry).toEqual(first);
  expect(after.balanceFen).toBe(before.balanceFen - 1250);

  // The gateway's address and a development session, as printed: sign in, bind the (now synced) demo
  // card with the printed form, and get a campus QR code.
  const gateway = /Gateway for phones: (http:\/\/\S+)\/api\/v1 /.exec(printed)?.[1] ?? '';
  const simulator = /identity simulator at (http:\/\/\S+) stands in/.exec(printed)?.[1] ?? '';
  const bindingForm = /\/api\/v1\/ecard\/binding .* -d '(\{[^']+\})'/.exec(printed)?.[1] ?? '';
  expect(await (await fetch(`${gateway}/healthz`)).json()).toEqual({ status: 'ok' });
  const post = async (url: string, body: string, token = ''): Promise<Record<string, unknown>> => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token === '' ? {} : { authorization: `Bearer ${token}` }) },
      body,
    });
    return (await res.json()) as Record<string, unknown>;
  };
  const { code } = await post(`${simulator}/sim/code`, '{"provider":"wecom","user":"demo-user"}');
  const session = await post(`${gateway}/api/v1/session`, JSON.stringify({ provider: 'wecom', code }));
  const bound = await post(`${gateway}/api/v1/ecard/binding`, bindingForm, String(session['accessToken']));
  expect(bound['card']).toMatchObject({ synced: true, status: 'active' });
  const qr = await fetch(`${gateway}/api/v1/ecard/qr`, { headers: { authorization: `Bearer ${String(bound['accessToken'])}` } });
  expect(((await qr.json()) as { code: string }).code).toMatch(/^CQ[A-Z2-7]{77}$/);

  // A development server listens on loopback only: gRPC and the gateway.
  const gatewayPort = Number(/:(\d+)$/.exec(gateway)?.[1]);
  for (const port of [Number(/:(\d+)$/.exec(target ?? '')?.[1]), gatewayPort]) {
    const addresses = listeningAddresses(port);
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.every((a) => a === '0100007F')).toBe(true);
  }

  // Ctrl-C: SIGINT to the whole process group. The switch stops first, then it stops redis-server
  // itself (SIGTERM), which the terminal's SIGINT never reached; "stopped" is the last line.
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
  process.kill(-(child.pid ?? 0), 'SIGINT');
  expect(await exited).toBe(0);
  const lastLine = output.trim().split('\n').at(-1) ?? '';
  expect((JSON.parse(lastLine) as { msg: string }).msg).toBe('stopped');
  const redisLog = readFileSync(join(varDir, 'redis', 'redis.log'), 'utf8');
  expect(redisLog).toContain('Received SIGTERM');
  expect(redisLog).not.toContain('Received SIGINT');
  expect(existsSync(secretFile)).toBe(true);
  // PostgreSQL was stopped with the switch.
  expect(existsSync(join(varDir, 'postgres', 'postmaster.pid'))).toBe(false);
  const probe = new Redis(redisPort, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  await expect(probe.connect()).rejects.toThrow();
  probe.disconnect();
  localRedisPort = 0;
}, 90_000);
