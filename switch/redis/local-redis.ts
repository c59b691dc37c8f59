// Starts a private redis-server (used by `npm start` when REDIS_URL is not set, and by the tests).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface LocalRedisOptions {
  readonly dataDir: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly appendOnly: boolean;
  readonly appendFsync: 'always' | 'everysec' | 'no';
  readonly startTimeoutMs: number;
  /** false: no automatic AOF rewrite (auto-aof-rewrite-percentage 0), as deploy/redis/redis-ledger.conf. Default true. */
  readonly autoAofRewrite?: boolean;
}

export interface LocalRedis {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export class RedisServerMissingError extends Error {
  constructor() {
    super(
      'redis-server was not found on PATH. Install it (Debian/Ubuntu: `apt-get install redis-server`; ' +
        'macOS: `brew install redis`) or point REDIS_URL at a running Redis 7.',
    );
  }
}

export function redisServerAvailable(): boolean {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return probe.error === undefined && probe.status === 0;
}

/**
 * The kernel's range for the local ports of outgoing connections (Linux; the common default elsewhere).
 * A port found free inside it can be taken by any connect() on the machine between our probe and the
 * server's own listen, or while a server stopped to start again on the same port: a test run opens
 * thousands of connections, and CI saw "cannot listen" from exactly that.
 */
function ephemeralPorts(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high)) return { low, high };
  } catch {
    // not Linux: fall through to the IANA default
  }
  return { low: 49152, high: 65535 };
}

/** Lowest port freePort() picks from: above the well-known and most registered services' ports. */
const FREE_PORT_FLOOR = 20000;

/**
 * A loopback port free now, chosen at random below the ephemeral range (so no outgoing connection takes it
 * before the caller listens on it, or while the caller's server restarts on it); the kernel's own choice
 * when that range leaves no room.
 */
export async function freePort(): Promise<number> {
  const { low } = ephemeralPorts();
  if (low - FREE_PORT_FLOOR >= 1000) {
    for (let attempt = 0; attempt < 64; attempt++) {
      const port = FREE_PORT_FLOOR + randomInt(low - FREE_PORT_FLOOR);
      if (await portIsFree(port)) return port;
    }
  }
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function startLocalRedis(options: LocalRedisOptions): Promise<LocalRedis> {
  if (!redisServerAvailable()) throw new RedisServerMissingError();
  mkdirSync(options.dataDir, { recursive: true });
  const port = options.port === 0 ? await freePort() : options.port;
  if (options.port !== 0 && !(await portIsFree(port))) {
    throw new Error(
      `port ${port} is already in use (a redis-server left from an earlier run? \`redis-cli -p ${port} shutdown nosave\` stops it); ` +
        'or choose another port with LOCAL_REDIS_PORT, or set REDIS_URL to use a running Redis',
    );
  }
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    options.dataDir,
    '--save',
    '',
    '--appendonly',
    options.appendOnly ? 'yes' : 'no',
    '--appendfsync',
    options.appendFsync,
    '--appenddirname',
    'appendonly',
    '--logfile',
    join(options.dataDir, 'redis.log'),
    '--daemonize',
    'no',
    '--protected-mode',
    'yes',
    ...(options.autoAofRewrite === false ? ['--auto-aof-rewrite-percentage', '0'] : []),
  ];
  // Its own process group: a terminal's Ctrl-C (SIGINT to the whole foreground group) reaches only the
  // switch, which drains its calls and then stops this server itself (stop() below).
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = `redis://127.0.0.1:${port}`;
  await waitUntilReady(url, child, options.startTimeoutMs, () => stderr);
  return {
    url,
    port,
    process: child,
    stop: () => stopChild(child),
  };
}

async function waitUntilReady(url: string, child: ChildProcess, timeoutMs: number, stderr: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code} during start: ${stderr()}`))),
  );
  exited.catch(() => undefined);
  while (Date.now() < deadline) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
    client.on('error', () => undefined); // failures surface through connect() below
    try {
      await Promise.race([client.connect().then(() => client.ping()), exited]);
      client.disconnect();
      return;
    } catch (err) {
      client.disconnect();
      if (child.exitCode !== null) throw err;
      // The server is still starting: wait on the process's own exit or a short poll interval.
      await Promise.race([new Promise((r) => setTimeout(r, 25)), exited]);
    }
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer on ${url} within ${timeoutMs} ms`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
