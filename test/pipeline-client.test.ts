// The hot-path Redis client: RESP parsing in any chunking, in-order replies under a deep pipeline,
// errors, and failing closed on a timeout or a dead server, then coming back.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '../switch/log.js';
import {
  encodeCommand,
  PipelineClient,
  PipelineUnavailableError,
  RespError,
  RespParser,
  type RespReply,
} from '../switch/redis/pipeline-client.js';
import { startLocalRedis } from '../switch/redis/local-redis.js';
import { freshPrefix, testRedisUrl } from './helpers/redis.js';

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

  it('is used only for plain redis:// URLs', () => {
    const options = { commandTimeoutMs: 100, connectTimeoutMs: 100, maxPending: 1, log };
    expect(PipelineClient.fromUrl('rediss://host:6380', options)).toBeUndefined();
    expect(PipelineClient.fromUrl('redis://:secret@host:6379', options)).toBeUndefined();
    expect(PipelineClient.fromUrl('redis://host:6379/2', options)).toBeUndefined();
  });

  it('says which client the hot path runs on: ioredis for a URL it does not take, itself once connected', async () => {
    const said: Record<string, unknown>[] = [];
    const spy = { ...log, info: (fields: Record<string, unknown>) => said.push(fields) } as unknown as typeof log;
    const options = { commandTimeoutMs: 2000, connectTimeoutMs: 2000, maxPending: 10, log: spy };
    expect(PipelineClient.fromUrl('rediss://host:6380', options)).toBeUndefined();
    expect(said).toEqual([expect.objectContaining({ redisClient: 'ioredis', why: 'TLS' })]);
    const c = PipelineClient.fromUrl(testRedisUrl(), options);
    if (c === undefined) throw new Error('no pipeline client for a plain URL');
    clients.push(c);
    await c.connect();
    expect(said.at(-1)).toEqual(expect.objectContaining({ redisClient: 'pipeline' }));
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
