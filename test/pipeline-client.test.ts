// The hot-path Redis client: RESP parsing in any chunking, in-order replies under a deep pipeline,
// errors, and failing closed on a timeout or a dead server, then coming back.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '../switch/log.js';
import {
  encodeCommand,
  PipelineClient,
  PipelineUnavailableError,
  RedisUrlError,
  RespError,
  RespParser,
  type RespReply,
} from '../switch/redis/pipeline-client.js';
import { freePort, startLocalRedis } from '../switch/redis/local-redis.js';
import { freshPrefix, testRedisUrl } from './helpers/redis.js';
import { redisServer, type PrivateRedisServer } from './helpers/redis-server.js';

const log = createLogger('silent');
const clients: PipelineClient[] = [];
afterAll(() => clients.forEach((c) => c.close()));

function client(url: string, commandTimeoutMs = 2000): PipelineClient {
  const c = PipelineClient.fromUrl(url, { commandTimeoutMs, connectTimeoutMs: 2000, maxPending: 100_000, log });
  if (c === undefined) throw new Error('no pipeline client for this URL');
  clients.push(c);
  return c;
}

describe('RESP parsing', () => {
  const wire = Buffer.from('+OK\r\n-ERR bad thing\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n*3\r\n:1\r\n$3\r\n张\r\n*2\r\n$0\r\n\r\n:-7\r\n');
  const expected: (RespReply | string)[] = ['OK', 'error:ERR bad thing', 42, 'hello', null, null, [1, '张', ['', -7]]];

  it('parses every reply type whole and in any chunking', () => {
    for (let size = 1; size <= wire.length; size++) {
      const seen: (RespReply | string)[] = [];
      const parser = new RespParser((r) => seen.push(r instanceof RespError ? `error:${r.message}` : r));
      for (let i = 0; i < wire.length; i += size) parser.feed(wire.subarray(i, i + size));
      expect(seen, `chunks of ${size} bytes`).toEqual(expected);
    }
  });

  it('only borrows each chunk: the socket reuses one read buffer, overwritten after every feed', () => {
    for (let size = 1; size <= wire.length; size++) {
      const seen: (RespReply | string)[] = [];
      const parser = new RespParser((r) => seen.push(r instanceof RespError ? `error:${r.message}` : r));
      const readBuffer = Buffer.alloc(size);
      for (let i = 0; i < wire.length; i += size) {
        const bytes = wire.copy(readBuffer, 0, i, i + size);
        parser.feed(readBuffer.subarray(0, bytes));
        readBuffer.fill(0x2a); // the next read lands here: anything kept must have been copied
      }
      expect(seen, `chunks of ${size} bytes`).toEqual(expected);
    }
  });

  it('consumes a whole array that holds an error, so the next reply stays in step', () => {
    const seen: (RespReply | string)[] = [];
    const parser = new RespParser((r) => seen.push(r instanceof RespError ? `error:${r.message}` : r));
    parser.feed(Buffer.from('*3\r\n:1\r\n-ERR inner\r\n$2\r\nok\r\n+NEXT\r\n'));
    expect(seen).toEqual(['error:ERR inner', 'NEXT']);
  });

  it('encodes arguments by byte length', () => {
    expect(encodeCommand(['SET', 'k', '余额', 12])).toBe('*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\n余额\r\n$2\r\n12\r\n');
  });

  it('takes every one-Redis URL ioredis takes, and refuses what is not one, saying why', () => {
    const options = { commandTimeoutMs: 100, connectTimeoutMs: 100, maxPending: 1, log };
    for (const url of ['rediss://host:6380', 'redis://:secret@host:6379', 'redis://app:p%40ss@host:6379/2', 'redis://host']) {
      expect(PipelineClient.fromUrl(url, options), url).toBeInstanceOf(PipelineClient);
    }
    expect(() => PipelineClient.fromUrl('redis://host:6379/two', options)).toThrow(RedisUrlError);
    expect(() => PipelineClient.fromUrl('redis://host:6379/two', options)).toThrow(/database .* must be a number/);
    expect(() => PipelineClient.fromUrl('http://host:6379', options)).toThrow(/redis:\/\/ or rediss:\/\//);
  });

  it('says once connected that the hot path runs on it, with TLS, AUTH and the database, never the password', async () => {
    const said: Record<string, unknown>[] = [];
    const spy = { ...log, info: (fields: Record<string, unknown>) => said.push(fields) } as unknown as typeof log;
    const c = PipelineClient.fromUrl(testRedisUrl(), { commandTimeoutMs: 2000, connectTimeoutMs: 2000, maxPending: 10, log: spy });
    clients.push(c);
    await c.connect();
    expect(said).toEqual([expect.objectContaining({ redisClient: 'pipeline', tls: false, auth: false, db: 0 })]);
  });
});

describe('against a real redis-server', () => {
  it('answers a deep pipeline in order and passes errors through', async () => {
    const c = client(testRedisUrl());
    await c.connect();
    const prefix = freshPrefix('pipe');
    const replies = await Promise.all(Array.from({ length: 5000 }, (_, i) => c.command(['INCRBY', `${prefix}:n`, i])));
    let sum = 0;
    replies.forEach((r, i) => {
      sum += i;
      expect(r).toBe(sum);
    });
    await expect(c.command(['EVALSHA', '0'.repeat(40), 0])).rejects.toThrow(/^NOSCRIPT/);
    expect(await c.command(['GET', `${prefix}:n`])).toBe(String(sum));
    // An error inside an array reply fails that command only; the next reply is still its own.
    await expect(c.command(['EVAL', "return {1, redis.error_reply('NESTED boom'), 3}", 0])).rejects.toThrow(/NESTED boom/);
    expect(await c.command(['PING'])).toBe('PONG');
  });

  it('reads replies larger than its read buffer, among many small ones, byte for byte', async () => {
    const c = client(testRedisUrl());
    await c.connect();
    const prefix = freshPrefix('pipe-big');
    // About 128,600 bytes of one- and three-byte characters: more than one read of the 64 KiB buffer.
    const big = Array.from({ length: 100_000 }, (_, i) => (i % 7 === 0 ? '张' : String.fromCharCode(97 + (i % 26)))).join('');
    await c.command(['SET', `${prefix}:big`, big]);
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) => c.command(i % 10 === 0 ? ['GET', `${prefix}:big`] : ['ECHO', `small-${i}`])),
    );
    replies.forEach((r, i) => expect(r === big || r === `small-${i}`, `reply ${i}`).toBe(true));
    expect(replies.filter((r) => r === big)).toHaveLength(4);
  });

  it('fails closed when a command outlives its deadline, and works again afterwards', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cardswitch-pipe-'));
    const local = await startLocalRedis({ dataDir, port: 0, appendOnly: false, appendFsync: 'no', startTimeoutMs: 10_000 });
    const admin = new Redis(local.url);
    try {
      const c = client(local.url, 200);
      await c.connect();
      await admin.call('CLIENT', 'PAUSE', '10000', 'WRITE');
      const late = c.command(['SET', 'k', 'v']).catch((e: unknown) => e);
      expect(await late).toBeInstanceOf(PipelineUnavailableError);
      await admin.call('CLIENT', 'UNPAUSE');
      expect(await c.command(['SET', 'k', 'w'])).toBe('OK');
      // A dead server: commands fail closed; after a restart on the same port they succeed again.
      await local.stop();
      expect(await c.command(['GET', 'k']).catch((e: unknown) => e)).toBeInstanceOf(PipelineUnavailableError);
    } finally {
      admin.disconnect();
      await local.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('AUTH, SELECT and TLS from REDIS_URL (production runs the path the bench measures)', () => {
  const PASSWORD = 'pw-s3cr3t/with:odd@chars';
  const encoded = encodeURIComponent(PASSWORD);
  let server: PrivateRedisServer;
  afterAll(() => server?.stop());

  it('authenticates with the password or an ACL user, and works in the database the URL names', async () => {
    server = await redisServer(['--requirepass', PASSWORD, '--user', 'ledger', 'on', '>ledger-pw', '~*', '&*', '+@all']);
    const c = client(`redis://:${encoded}@127.0.0.1:${server.port}/3`);
    // A command made while the connection is still being made waits for AUTH and SELECT, then goes.
    const connecting = c.connect();
    const early = c.command(['SET', 'pipe-auth:k', 'in-db-3']);
    await connecting;
    expect(await early).toBe('OK');
    const admin = new Redis({ port: server.port, password: PASSWORD, db: 3 });
    try {
      expect(await admin.get('pipe-auth:k')).toBe('in-db-3');
      await admin.select(0);
      expect(await admin.get('pipe-auth:k')).toBeNull();
    } finally {
      admin.disconnect();
    }
    const user = client(`redis://ledger:ledger-pw@127.0.0.1:${server.port}`);
    await user.connect();
    expect(await user.command(['ACL', 'WHOAMI'])).toBe('ledger');
  });

  it('a wrong or missing password stops the connect with the reason, and names no password', async () => {
    const errors: string[] = [];
    const spy = { ...log, error: (_fields: unknown, message: string) => errors.push(message) } as unknown as typeof log;
    const wrong = PipelineClient.fromUrl(`redis://:not-it@127.0.0.1:${server.port}`, {
      commandTimeoutMs: 2000,
      connectTimeoutMs: 2000,
      maxPending: 10,
      log: spy,
    });
    clients.push(wrong);
    const err = await wrong.connect().catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(PipelineUnavailableError);
    expect((err as Error).message).toMatch(/refused AUTH .*REDIS_URL.*WRONGPASS/);
    expect((err as Error).message).not.toContain('not-it');
    expect(errors.join('\n')).toMatch(/WRONGPASS/);
    expect(errors.join('\n')).not.toContain('not-it');
    wrong.close();
    const none = client(`redis://127.0.0.1:${server.port}`);
    await none.connect();
    // No AUTH asked for: the server's NOAUTH comes back on the command, never a silent success.
    await expect(none.command(['GET', 'k'])).rejects.toThrow(/NOAUTH/);
  });

  it('a Redis that stalls during AUTH fails the connect and what waited on it, closed; once it answers, the client works', async () => {
    const admin = new Redis({ port: server.port, password: PASSWORD });
    try {
      // Paused for 1.5 s: even CLIENT UNPAUSE waits for that, so the pause ends by itself.
      await admin.call('CLIENT', 'PAUSE', '1500', 'ALL');
      const c = PipelineClient.fromUrl(`redis://:${encoded}@127.0.0.1:${server.port}`, {
        commandTimeoutMs: 300,
        connectTimeoutMs: 300,
        maxPending: 10,
        log,
      });
      clients.push(c);
      const connecting = c.connect().catch((e: unknown) => e);
      const waiting = c.command(['SET', 'pipe-auth:stalled', 'x']).catch((e: unknown) => e);
      // Both end (no hang) as unavailable: the outcome of nothing is guessed.
      expect(await waiting).toBeInstanceOf(PipelineUnavailableError);
      expect(await connecting).toBeInstanceOf(PipelineUnavailableError);
      // It keeps reconnecting in the background; the first command after Redis answers again succeeds.
      let reply: unknown;
      for (let attempt = 0; attempt < 400 && reply === undefined; attempt++) {
        reply = await c.command(['SET', 'pipe-auth:stalled', 'y']).catch((e: unknown) => {
          if (!(e instanceof PipelineUnavailableError)) throw e;
          return new Promise((resolve) => setTimeout(() => resolve(undefined), 10));
        });
      }
      expect(reply).toBe('OK');
      expect(await admin.get('pipe-auth:stalled')).toBe('y');
    } finally {
      admin.disconnect();
    }
  });

  it('AUTHs again on every reconnection', async () => {
    const c = client(`redis://:${encoded}@127.0.0.1:${server.port}/2`);
    await c.connect();
    expect(await c.command(['CLIENT', 'SETNAME', 'pipe-reauth'])).toBe('OK');
    const admin = new Redis({ port: server.port, password: PASSWORD });
    try {
      expect(await admin.call('CLIENT', 'KILL', 'SKIPME', 'yes', 'TYPE', 'normal')).toBeGreaterThan(0);
    } finally {
      admin.disconnect();
    }
    // The next commands fail closed until the client is back (its first reconnection is immediate).
    let reply: unknown;
    for (let attempt = 0; attempt < 200 && reply === undefined; attempt++) {
      reply = await c.command(['SET', 'pipe-auth:again', 'yes']).catch((e: unknown) => {
        if (!(e instanceof PipelineUnavailableError)) throw e;
        return new Promise((resolve) => setImmediate(() => resolve(undefined)));
      });
    }
    expect(reply).toBe('OK');
    expect(await c.command(['GET', 'pipe-auth:again'])).toBe('yes');
  });

  it('speaks TLS to a rediss:// URL and checks the server certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cardswitch-pipe-tls-'));
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca');
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
    readFileSync(join(dir, 'server.csr'));
    execFileSync('sh', ['-c', 'printf "subjectAltName=DNS:localhost,IP:127.0.0.1" > ext.cnf'], { cwd: dir });
    openssl(
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
    );
    const tlsPort = await freePort();
    const tlsServer = await redisServer([
      '--tls-port',
      String(tlsPort),
      '--tls-cert-file',
      join(dir, 'server.crt'),
      '--tls-key-file',
      join(dir, 'server.key'),
      '--tls-ca-cert-file',
      join(dir, 'ca.crt'),
      '--tls-auth-clients',
      'no',
      '--requirepass',
      PASSWORD,
    ]);
    try {
      const options = { commandTimeoutMs: 2000, connectTimeoutMs: 2000, maxPending: 10, log };
      const c = PipelineClient.fromUrl(`rediss://:${encoded}@localhost:${tlsPort}/1`, {
        ...options,
        tlsOptions: { ca: readFileSync(join(dir, 'ca.crt')) },
      });
      clients.push(c);
      await c.connect();
      expect(await c.command(['SET', 'pipe-tls:k', 'over-tls'])).toBe('OK');
      // The value and a large one come back whole through TLS's own chunking.
      const big = 'x'.repeat(200_000);
      expect(await Promise.all([c.command(['SET', 'pipe-tls:big', big]), c.command(['GET', 'pipe-tls:big'])])).toEqual(['OK', big]);
      // Without the CA the certificate is not trusted: no connection, and no command ever written.
      const untrusted = PipelineClient.fromUrl(`rediss://:${encoded}@localhost:${tlsPort}`, options);
      clients.push(untrusted);
      await expect(untrusted.connect()).rejects.toThrow(PipelineUnavailableError);
    } finally {
      tlsServer.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
