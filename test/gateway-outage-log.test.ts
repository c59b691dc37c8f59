// During a Redis outage every gateway request fails the same way (503, retry): the log gets one warn line
// per request, without a stack, not an error line each (the breaker logs the outage itself, once). A
// failure of our own still logs at error level with its stack.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../switch/gateway/http.js';
import { createMetrics } from '../switch/metrics.js';
import { LedgerDownError } from '../switch/redis/breaker.js';
import { PipelineUnavailableError } from '../switch/redis/pipeline-client.js';

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

const WARN = 40;
const ERROR = 50;

/** The ways a ledger call fails when Redis is down or stalled, as the two clients and the breaker throw them. */
const OUTAGES: Readonly<Record<string, () => Error>> = {
  pipeline: () => new PipelineUnavailableError('Connection is closed: the ledger connection broke'),
  ioredis: () => new Error('Connection is closed.'),
  timeout: () => new Error('Command timed out'),
  breaker: () => new LedgerDownError('ioredis', 'the ledger is known down', false),
};

let gateway: RunningGateway;
const lines: LogLine[] = [];

beforeAll(async () => {
  const log = pino({ level: 'trace' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  gateway = await startGateway({
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 1024,
    log,
    metrics: createMetrics(),
    shutdownGraceMs: 1000,
    routes: [
      ...Object.entries(OUTAGES).map(([name, error]) => ({
        method: 'GET' as const,
        path: `/outage/${name}`,
        handler: () => Promise.reject(error()),
      })),
      { method: 'GET', path: '/bug', handler: () => Promise.reject(new TypeError('cannot read properties of undefined')) },
    ],
  });
});
afterAll(async () => {
  await gateway?.shutdown();
});

async function get(path: string): Promise<{ status: number; logged: LogLine[] }> {
  const before = lines.length;
  const response = await fetch(`http://127.0.0.1:${gateway.port}${path}`);
  await response.arrayBuffer();
  // The line is written before the answer goes out.
  return { status: response.status, logged: lines.slice(before).filter((l) => l.level >= WARN) };
}

describe('the gateway log during a ledger outage', () => {
  it.each(Object.keys(OUTAGES))('a %s outage answers 503 and logs one warn line per request, no stack', async (name) => {
    for (let i = 0; i < 3; i++) {
      const { status, logged } = await get(`/outage/${name}`);
      expect(status).toBe(503);
      expect(logged).toHaveLength(1);
      expect(logged[0]?.level).toBe(WARN);
      expect(logged[0]?.msg).toContain('the ledger did not answer');
      expect(logged[0]?.['route']).toBe(`/outage/${name}`);
      expect(JSON.stringify(logged[0])).not.toContain('"stack"');
    }
  });

  it('a failure of our own still logs at error level with its stack', async () => {
    const { status, logged } = await get('/bug');
    expect(status).toBe(500);
    expect(logged).toHaveLength(1);
    expect(logged[0]?.level).toBe(ERROR);
    expect(JSON.stringify(logged[0])).toContain('"stack"');
  });
});
