// The gateway scenario: the card summary a phone page opens with (GET /api/v1/ecard, a bearer token of
// a bound user: the session check in Redis and one read of the account) against GET /bench/hello, the
// cheapest route the same uWebSockets.js process serves (GATEWAY_BENCH_HELLO=true), with the same
// generator at the same settings: closed (N connections, one request each at a time: autocannon) and
// open (a constant arrival rate: http-load.ts's own, as autocannon's overallRate is not one), both in a
// child process (http-load.ts).
import type { HttpChildToParent, HttpRunResult, HttpRunSettings, ParentToHttpChild } from './http-load.js';
import { CpuMeter, cpuUsPer, quiesce, startTaskChild, type TaskChild } from './processes.js';

export const SUMMARY_PATH = '/api/v1/ecard';
export const HELLO_PATH = '/bench/hello';
const QUIESCE_MAX_MS = 30_000;

export interface HttpScenarioResult {
  /** 'gateway-summary' (GET /api/v1/ecard) or 'gateway-hello' (GET /bench/hello, the baseline). */
  readonly name: string;
  readonly route: string;
  /** 'autocannon' (closed) or 'constant-arrival' (open). */
  readonly generator: string;
  readonly mode: 'open' | 'closed';
  readonly connections: number;
  /** Open model: the arrival rate asked for; null closed. */
  readonly rate: number | null;
  /** Distinct bound users (bearer tokens) the requests rotate through. */
  readonly users: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly offeredRate: number | null;
  /** 2xx answers per second (open: over the arrivals' duration). */
  readonly achievedRate: number;
  readonly latencyMs: HttpRunResult['latencyMs'];
  readonly requests: number;
  readonly statusCodes: Record<string, number>;
  /** Non-2xx answers, connection errors and timeouts. */
  readonly errors: number;
  readonly cpuCores: Record<string, number | null>;
  /** CPU microseconds per 2xx answer, per process (`http`: the autocannon child). */
  readonly cpuUsPerAnswer: Record<string, number | null>;
  readonly generatorEventLoopUtilization: number;
}

export interface GatewayRunContext {
  readonly host: string;
  readonly gatewayPort: number;
  /** Processes to measure (switch, redis, bench); the generator child is added as `http`. */
  readonly pids: Readonly<Record<string, number>>;
  readonly tokens: readonly string[];
  readonly connections: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly timeoutMs: number;
}

type HttpChild = TaskChild<ParentToHttpChild, HttpChildToParent>;

async function runOne(ctx: GatewayRunContext, child: HttpChild, route: string, rate: number | undefined): Promise<HttpScenarioResult> {
  const settings = (durationS: number): HttpRunSettings => ({
    url: `http://${ctx.host}:${ctx.gatewayPort}${route}`,
    tokens: ctx.tokens,
    connections: ctx.connections,
    durationS,
    warmupS: 0,
    rate,
    timeoutS: Math.max(1, Math.round(ctx.timeoutMs / 1000)),
  });
  const waitMs = (durationS: number): number => (durationS + 30) * 1000;
  await quiesce(ctx.pids, QUIESCE_MAX_MS);
  const pids = { ...ctx.pids, http: child.pid };
  const warmupS = Math.round(ctx.warmupMs / 1000);
  // The warm-up is a run of its own, so the CPU meter sees only the measured one.
  if (warmupS > 0) await child.request({ type: 'run', settings: settings(warmupS) }, waitMs(warmupS));
  const durationS = Math.max(1, Math.round((ctx.durationMs - ctx.warmupMs) / 1000));
  const meter = new CpuMeter(pids);
  meter.start();
  const answer = await child.request({ type: 'run', settings: settings(durationS) }, waitMs(durationS));
  const cpuCores = meter.stop();
  if (answer.type !== 'result') throw new Error(`http-load answered ${answer.type}`);
  const r = answer.result;
  return {
    name: route === SUMMARY_PATH ? 'gateway-summary' : 'gateway-hello',
    route: `GET ${route}`,
    generator: r.generator,
    mode: rate === undefined ? 'closed' : 'open',
    connections: ctx.connections,
    rate: rate ?? null,
    users: ctx.tokens.length,
    durationS: r.durationS,
    warmupS,
    offeredRate: rate ?? null,
    achievedRate: r.achievedRate,
    latencyMs: r.latencyMs,
    requests: r.requests,
    statusCodes: r.statusCodes,
    errors: r.non2xx + r.errors + r.timeouts,
    cpuCores,
    cpuUsPerAnswer: cpuUsPer(cpuCores, meter.elapsedSeconds, r.status2xx),
    generatorEventLoopUtilization: r.eventLoopUtilization,
  };
}

/** The card summary, then the hello baseline, at the same settings (open at `rate`, or closed). */
export async function runGatewayPair(ctx: GatewayRunContext, rate: number | undefined): Promise<HttpScenarioResult[]> {
  const child = await startTaskChild<ParentToHttpChild, HttpChildToParent>('http-load');
  try {
    const summary = await runOne(ctx, child, SUMMARY_PATH, rate);
    const hello = await runOne(ctx, child, HELLO_PATH, rate);
    return [summary, hello];
  } finally {
    await child.stop();
  }
}
