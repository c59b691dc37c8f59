// A private redis-server with settings the shared helpers do not give (a password, ACL users, TLS),
// on a free port and its own temp dir; ready once it says so on its stdout (no polling).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../switch/redis/local-redis.js';

export interface PrivateRedisServer {
  readonly port: number;
  readonly child: ChildProcess;
  stop(): void;
}

/** A private redis-server with extra settings (a password, an ACL user, TLS); ready once it says so. */
export async function redisServer(args: string[]): Promise<PrivateRedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'cardswitch-pipe-auth-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
  });
  return {
    port,
    child,
    stop: () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
