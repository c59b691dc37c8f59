// The production Redis configuration of deploy/ (redis-ledger.conf, and redis-replica.conf which includes
// it) read by a real redis-server 7, on loopback with its own port and directory in place of the
// production ones: every line is a directive Redis accepts, and the settings the ledger relies on hold as
// running values (AOF fsynced at every write, no automatic rewrite, noeviction, no write without a
// replica). The replica, started from redis-replica.conf, follows the primary and refuses writes; once it
// is there, a write on the primary goes through.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../switch/redis/local-redis.js';
import { waitUntil } from './helpers/cluster-load.js';

const DEPLOY = join(process.cwd(), 'deploy', 'redis');

let root = '';
const servers: ChildProcess[] = [];
const clients: Redis[] = [];

/** The file's lines with the host-specific ones (port, dir, include, replicaof) replaced for this test. */
function localCopy(file: string, replace: Readonly<Record<string, string>>): string {
  const seen = new Set<string>();
  const lines = readFileSync(join(DEPLOY, file), 'utf8')
    .split('\n')
    .map((line) => {
      const name = line.trim().split(/\s+/)[0] ?? '';
      if (name in replace) {
        seen.add(name);
        return `${name} ${replace[name]}`;
      }
      return line;
    });
  for (const name of Object.keys(replace)) expect(seen.has(name), `${file} has no "${name}" line`).toBe(true);
  return lines.join('\n');
}

async function start(name: string, conf: string, port: number): Promise<Redis> {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const file = join(root, `${name}.conf`);
  writeFileSync(file, conf);
  let stderr = '';
  const child = spawn('redis-server', [file, '--logfile', join(dir, 'redis.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  servers.push(child);
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  clients.push(client);
  await waitUntil(`redis-server from ${name}.conf`, 20_000, async () => {
    if (child.exitCode !== null)
      throw new Error(`redis-server refused ${name}.conf: ${stderr || readFileSync(join(dir, 'redis.log'), 'utf8')}`);
    try {
      if (client.status !== 'ready') await client.connect();
      return (await client.ping()) === 'PONG';
    } catch {
      client.disconnect();
      return false;
    }
  });
  return client;
}

async function config(client: Redis, name: string): Promise<string | undefined> {
  return ((await client.call('CONFIG', 'GET', name)) as string[])[1];
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'cardswitch-deploy-redis-'));
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(
    servers
      .filter((s) => s.exitCode === null && s.signalCode === null)
      .map((s) => new Promise<void>((resolve) => (s.once('exit', () => resolve()), s.kill('SIGKILL')))),
  );
  rmSync(root, { recursive: true, force: true });
});

it('redis-ledger.conf and redis-replica.conf run as written: durable, no automatic AOF rewrite, no write without a replica', async () => {
  const primaryPort = await freePort();
  const primaryConf = localCopy('redis-ledger.conf', {
    bind: '127.0.0.1',
    port: String(primaryPort),
    dir: join(root, 'primary'),
  });
  const primary = await start('primary', primaryConf, primaryPort);
  expect(await config(primary, 'appendonly')).toBe('yes');
  expect(await config(primary, 'appendfsync')).toBe('always');
  // The nightly timer (deploy/systemd/cardswitch-aof-rewrite.timer) is the only rewrite.
  expect(await config(primary, 'auto-aof-rewrite-percentage')).toBe('0');
  expect(await config(primary, 'maxmemory-policy')).toBe('noeviction');
  expect(await config(primary, 'min-replicas-to-write')).toBe('1');
  // No replica yet: a write is refused, as the ledger wants (the switch answers UNAVAILABLE).
  await expect(primary.set('deploy-test', '1')).rejects.toThrow(/NOREPLICAS/);

  // The replica's file includes the ledger's by its production path: pointed at this test's copy.
  const replicaPort = await freePort();
  const replicaConf = localCopy('redis-replica.conf', {
    include: join(root, 'primary.conf'),
    port: String(replicaPort),
    dir: join(root, 'replica'),
    replicaof: `127.0.0.1 ${primaryPort}`,
  });
  const replica = await start('replica', replicaConf, replicaPort);
  expect(await config(replica, 'replica-read-only')).toBe('yes');
  await waitUntil('the replica to follow the primary', 20_000, async () =>
    String(await primary.call('INFO', 'replication')).includes('connected_slaves:1'),
  );
  await waitUntil('a write on the primary with its replica in place', 20_000, async () => {
    try {
      return (await primary.set('deploy-test', '1')) === 'OK';
    } catch {
      return false;
    }
  });
  await waitUntil('the write on the replica', 20_000, async () => (await replica.get('deploy-test')) === '1');
  await expect(replica.set('deploy-test', '2')).rejects.toThrow(/READONLY/);
}, 90_000);
