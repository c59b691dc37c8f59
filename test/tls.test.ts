// TLS for gRPC (issue 9, item 4): the switch served only plaintext, so PINs, passwords, terminal secrets
// and operator tokens crossed the network in clear. A throwaway CA, server and client certificates are
// made with openssl for this file; real grpc-js clients then pay over TLS, a plaintext client cannot
// reach the TLS port, with mTLS a client without (or with a foreign) certificate is refused, bad TLS
// configuration stops the start naming the variable, and the production entry point refuses plaintext
// unless GRPC_PLAINTEXT=allow.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, status as Status, type ChannelCredentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import { PosServiceClient, type AuthorizeRequest, type AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import { ConfigError, loadConfig } from '../switch/config.js';
import { freshPrefix, testRedisUrl } from './helpers/redis.js';
import { call, dumpKeySpace, grpcError, openCard, POS_TERMINAL, startTestSwitch, terminalMetadata, testConfig } from './helpers/switch.js';

const dir = mkdtempSync(join(tmpdir(), 'cardswitch-tls-'));
const file = (name: string): string => join(dir, name);
const CARD_NO = '20230001';
const SERIAL = 'AB12CD34';
const OPENING_FEN = 50_000;

function openssl(...args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('this test makes its certificates with openssl: install it (Debian: apt-get install openssl)');
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

/** A self-signed CA: <name>.key, <name>.crt. */
function makeCa(name: string): void {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=cardswitch test ${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
  );
}

/** A certificate signed by `ca`: <name>.key, <name>.crt. */
function makeCert(name: string, ca: string, extensions: string, days = '2'): void {
  writeFileSync(file(`${name}.ext`), `${extensions}\n`);
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
  );
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    days,
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  );
}

beforeAll(() => {
  makeCa('ca');
  makeCert('server', 'ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth');
  makeCert('terminal', 'ca', 'extendedKeyUsage=clientAuth');
  makeCa('rogue');
  makeCert('rogue-terminal', 'rogue', 'extendedKeyUsage=clientAuth');
  makeCert('expired', 'ca', 'subjectAltName=DNS:localhost', '-1');
  writeFileSync(file('not-pem.txt'), 'this is not a certificate\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pem = (name: string): Buffer => readFileSync(file(name));
const TLS_ENV = { GRPC_TLS_CERT_FILE: file('server.crt'), GRPC_TLS_KEY_FILE: file('server.key') };
const MTLS_ENV = { ...TLS_ENV, GRPC_TLS_CLIENT_CA_FILE: file('ca.crt') };

async function start(label: string, env: Record<string, string>): Promise<SwitchApp> {
  const app = await startTestSwitch(label, env);
  onTestFinished(() => app.stop());
  await app.terminals.register(POS_TERMINAL);
  await openCard(app, CARD_NO, SERIAL, OPENING_FEN);
  return app;
}

let sequence = 0;

/** One 12.50 card tap from POS_TERMINAL through a client with these credentials. */
function tap(app: SwitchApp, channel: ChannelCredentials): Promise<AuthorizeResponse> {
  const client = new PosServiceClient(`127.0.0.1:${app.grpcPort}`, channel);
  onTestFinished(() => client.close());
  const request: AuthorizeRequest = {
    terminalId: POS_TERMINAL.id,
    sequenceNumber: ++sequence,
    amountFen: 1_250,
    credential: { card: { cardSerial: SERIAL } },
    pin: '',
  };
  return call(client, 'authorize', request, terminalMetadata(POS_TERMINAL));
}

async function balance(app: SwitchApp): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(CARD_NO), 'bal'));
}

/** The call fails UNAVAILABLE (the connection never comes up) and the ledger is as it was. */
async function expectRefusedConnection(app: SwitchApp, channel: ChannelCredentials): Promise<void> {
  const before = await dumpKeySpace(app.redis, app.keys.prefix);
  const err = await grpcError(tap(app, channel));
  expect(Status[err.code]).toBe('UNAVAILABLE');
  expect(await dumpKeySpace(app.redis, app.keys.prefix)).toEqual(before);
}

describe('TLS', () => {
  it('a TLS client that trusts the CA pays a card tap', async () => {
    const app = await start('tls-pay', TLS_ENV);
    const paid = await tap(app, credentials.createSsl(pem('ca.crt')));
    expect(paid).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: OPENING_FEN - 1_250 });
    expect(await balance(app)).toBe(OPENING_FEN - 1_250);
  });

  it('a plaintext client cannot reach the TLS port: UNAVAILABLE, nothing charged', async () => {
    const app = await start('tls-plain', TLS_ENV);
    await expectRefusedConnection(app, credentials.createInsecure());
  });

  it("a TLS client that does not trust the server's CA does not connect", async () => {
    const app = await start('tls-untrusted', TLS_ENV);
    await expectRefusedConnection(app, credentials.createSsl(pem('rogue.crt')));
  });
});

describe('mTLS (GRPC_TLS_CLIENT_CA_FILE)', () => {
  it('a terminal with a certificate of the configured CA pays', async () => {
    const app = await start('mtls-pay', MTLS_ENV);
    const paid = await tap(app, credentials.createSsl(pem('ca.crt'), pem('terminal.key'), pem('terminal.crt')));
    expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(await balance(app)).toBe(OPENING_FEN - 1_250);
  });

  it('a client without a certificate is refused: UNAVAILABLE, nothing charged', async () => {
    const app = await start('mtls-nocert', MTLS_ENV);
    await expectRefusedConnection(app, credentials.createSsl(pem('ca.crt')));
  });

  it('a client with a certificate of another CA is refused', async () => {
    const app = await start('mtls-rogue', MTLS_ENV);
    await expectRefusedConnection(app, credentials.createSsl(pem('ca.crt'), pem('rogue-terminal.key'), pem('rogue-terminal.crt')));
  });
});

describe('TLS configuration', () => {
  function problems(env: Record<string, string>): string[] {
    try {
      testConfig('tls-config', env);
    } catch (err) {
      if (err instanceof ConfigError) return [...err.problems];
      throw err;
    }
    return [];
  }

  it('reads the files into the configuration', () => {
    const config = testConfig('tls-config', MTLS_ENV);
    expect(config.grpcTls?.certChain.equals(pem('server.crt'))).toBe(true);
    expect(config.grpcTls?.privateKey.equals(pem('server.key'))).toBe(true);
    expect(config.grpcTls?.clientCa?.equals(pem('ca.crt'))).toBe(true);
    expect(testConfig('tls-config').grpcTls).toBeUndefined();
  });

  it.each([
    [
      'an unreadable certificate file',
      { ...TLS_ENV, GRPC_TLS_CERT_FILE: file('missing.crt') },
      /^GRPC_TLS_CERT_FILE=.*missing\.crt.*cannot read the file \(ENOENT\)/,
    ],
    ['an unreadable key file', { ...TLS_ENV, GRPC_TLS_KEY_FILE: dir }, /^GRPC_TLS_KEY_FILE=.*cannot read the file \(EISDIR\)/],
    [
      'an unreadable client CA file',
      { ...MTLS_ENV, GRPC_TLS_CLIENT_CA_FILE: file('missing-ca.crt') },
      /^GRPC_TLS_CLIENT_CA_FILE=.*cannot read the file/,
    ],
    [
      'a certificate file that is not PEM',
      { ...TLS_ENV, GRPC_TLS_CERT_FILE: file('not-pem.txt') },
      /^GRPC_TLS_CERT_FILE=.*no PEM block of the server certificate/,
    ],
    ['a key in the certificate variable', { ...TLS_ENV, GRPC_TLS_CERT_FILE: file('server.key') }, /^GRPC_TLS_CERT_FILE=.*no PEM block/],
    [
      'the key of another certificate',
      { ...TLS_ENV, GRPC_TLS_KEY_FILE: file('terminal.key') },
      /^GRPC_TLS_KEY_FILE=.*is not the private key of the certificate in GRPC_TLS_CERT_FILE/,
    ],
    [
      'an expired certificate',
      { GRPC_TLS_CERT_FILE: file('expired.crt'), GRPC_TLS_KEY_FILE: file('expired.key') },
      /^GRPC_TLS_CERT_FILE=.*expired on/,
    ],
    [
      'a certificate without its key',
      { GRPC_TLS_CERT_FILE: file('server.crt') },
      /^GRPC_TLS_KEY_FILE: required when GRPC_TLS_CERT_FILE is set/,
    ],
    [
      'a key without its certificate',
      { GRPC_TLS_KEY_FILE: file('server.key') },
      /^GRPC_TLS_CERT_FILE: required when GRPC_TLS_KEY_FILE is set/,
    ],
    [
      'a client CA without TLS',
      { GRPC_TLS_CLIENT_CA_FILE: file('ca.crt') },
      /^GRPC_TLS_CLIENT_CA_FILE: needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE/,
    ],
    [
      'GRPC_PLAINTEXT=allow with TLS',
      { ...TLS_ENV, GRPC_PLAINTEXT: 'allow' },
      /^GRPC_PLAINTEXT=allow: remove it when GRPC_TLS_CERT_FILE is set/,
    ],
    ['GRPC_PLAINTEXT=yes', { GRPC_PLAINTEXT: 'yes' }, /^GRPC_PLAINTEXT="yes": must be one of refuse, allow/],
  ])('%s is a configuration error naming the variable', (_what, env, message) => {
    const found = problems(env);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(message);
  });
});

// --- the production entry point, as deploy/ runs it ---------------------------------------------------

interface Run {
  readonly code: number | null;
  readonly output: string;
}

/**
 * Runs switch/main.ts with the environment `env` on top of a complete one; once its log says it is ready
 * (or it exits) it gets SIGTERM. Resolves with its exit code and everything it printed.
 */
function runMain(env: Record<string, string>): Promise<Run> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'switch/main.ts'], {
    env: {
      PATH: process.env['PATH'] ?? '',
      REDIS_URL: testRedisUrl(),
      KEY_PREFIX: freshPrefix('tlsmain'),
      LEDGER_SHARDS: '16',
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      SWITCH_SERVES: 'grpc',
      TERMINAL_SECRET_PEPPER: 'test-pepper-0123456789',
      PASSWORD_PEPPER: 'test-pepper-0123456789',
      SESSION_SECRET: 'test-session-secret-0123456789abcdef',
      CAMPUS_QR_SECRET: 'test-campus-qr-secret-0123456789abcdef',
      PASSWORD_THREADS: '1',
      SHUTDOWN_GRACE_MS: '1000',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let stopping = false;
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    // Once: a second SIGTERM would meet Node's default handler (main.ts listens for the first only).
    if (!stopping && output.includes('"msg":"cardswitch ready"')) {
      stopping = true;
      proc.kill('SIGTERM');
    }
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const killer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  return new Promise((resolve) =>
    proc.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, output });
    }),
  );
}

describe('the production entry point (switch/main.ts)', () => {
  it('refuses to serve gRPC in plaintext when not told so, naming the variables', async () => {
    const run = await runMain({});
    expect(run.code).toBe(2);
    expect(run.output).toContain('GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE are required');
    expect(run.output).toContain('GRPC_PLAINTEXT=allow');
    expect(run.output).not.toContain('cardswitch ready');
  }, 30_000);

  it('serves plaintext with GRPC_PLAINTEXT=allow, warning in its log', async () => {
    const run = await runMain({ GRPC_PLAINTEXT: 'allow' });
    expect(run.output).toMatch(/"level":40[^\n]*"grpcTransport":"plaintext"[^\n]*PLAINTEXT \(GRPC_PLAINTEXT=allow\)/);
    expect(run.output).toContain('"msg":"cardswitch ready"');
    expect(run.code).toBe(0);
  }, 30_000);

  it('serves TLS with the certificate files, without a warning', async () => {
    const run = await runMain(MTLS_ENV);
    expect(run.output).toMatch(/"grpcTransport":"mtls"[^\n]*gRPC is served over TLS/);
    expect(run.output).not.toContain('PLAINTEXT');
    expect(run.output).toContain('"msg":"cardswitch ready"');
    expect(run.code).toBe(0);
  }, 30_000);
});

it('loadConfig alone (no test defaults) starts without TLS and without GRPC_PLAINTEXT', () => {
  const config = loadConfig({
    TERMINAL_SECRET_PEPPER: 'x'.repeat(16),
    PASSWORD_PEPPER: 'x'.repeat(16),
    SESSION_SECRET: 'x'.repeat(32),
    CAMPUS_QR_SECRET: 'x'.repeat(32),
  });
  expect(config.grpcTls).toBeUndefined();
  expect(config.grpcPlaintextAllowed).toBe(false);
});
