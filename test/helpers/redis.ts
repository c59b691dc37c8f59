// Each test gets its own key space: a fresh prefix on the shared test redis-server.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { Redis } from 'ioredis';

export function testRedisUrl(): string {
  return inject('redisUrl');
}

export function freshPrefix(label: string): string {
  return `t${label.replace(/[^A-Za-z0-9]/g, '').slice(0, 12)}${randomBytes(4).toString('hex')}`;
}

export function connect(): Redis {
  return new Redis(testRedisUrl(), { maxRetriesPerRequest: 1, enableAutoPipelining: true });
}
