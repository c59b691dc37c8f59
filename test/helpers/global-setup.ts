// Spawns one private redis-server (own port, own temp dir, AOF on) for the whole test run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startLocalRedis, type LocalRedis } from '../../switch/redis/local-redis.js';

let redis: LocalRedis | undefined;
let dataDir = '';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

export async function setup(project: TestProject): Promise<void> {
  // Both vitest projects (unit, bench: vitest.config.ts) run this setup; they share one server, as a second
  // start would overwrite the first's handle and leave it running after the tests (seen in a CI run).
  if (redis === undefined) {
    dataDir = mkdtempSync(join(tmpdir(), 'cardswitch-test-redis-'));
    redis = await startLocalRedis({ dataDir, port: 0, appendOnly: true, appendFsync: 'everysec', startTimeoutMs: 10_000 });
  }
  project.provide('redisUrl', redis.url);
}

export async function teardown(): Promise<void> {
  const running = redis;
  redis = undefined;
  await running?.stop();
  if (dataDir !== '') rmSync(dataDir, { recursive: true, force: true });
  dataDir = '';
}
