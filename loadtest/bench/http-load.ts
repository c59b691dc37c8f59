// The gateway scenario's HTTP load generator, in a child process of its own (forked by gateway.ts), so
// its event loop and the bench's never share a thread. Each 'run' message is one run; the answer is what
// it measured.
//
// Closed model: autocannon (N connections, pipelining 1). Open model: a constant arrival rate of our own
// on node:http keep-alive connections, latency from each arrival's intended time. Not autocannon's
// overallRate: that gives each connection a budget per second which it spends at once, back to back, at
// the top of every second, then waits (lib/httpClient.js), and corrects for coordinated omission as if
// requests were due every millisecond; at 2,000/s over 64 connections GET /bench/hello measured p90 308
// ms that way, against 3 ms closed at ten times the rate.
//
// Every request carries `Authorization: Bearer <token>`, the tokens taken in turn (many users, so no one
// card is hot), for the baseline route too: both cost the generator the same per request.
import { Agent, request } from 'node:http';
import autocannon from 'autocannon';
import { Histogram } from './histogram.js';

export interface HttpRunSettings {
  readonly url: string;
  readonly tokens: readonly string[];
  readonly connections: number;
  readonly durationS: number;
  readonly warmupS: number;
  /** Open model: arrivals per second over all connections (at most `connections` in flight); closed when undefined. */
  readonly rate: number | undefined;
  readonly timeoutS: number;
}

export interface HttpRunResult {
  /** 'autocannon' (closed) or 'constant-arrival' (open, node:http). */
  readonly generator: string;
  readonly durationS: number;
  readonly requests: number;
  readonly status2xx: number;
  readonly non2xx: number;
  readonly statusCodes: Record<string, number>;
  readonly errors: number;
  readonly timeouts: number;
  /** 2xx answers per second over the measured run. */
  readonly achievedRate: number;
  /** Of 2xx answers, ms (closed: autocannon's histogram, 1 ms resolution; open: from the intended time, 1.6 %). */
  readonly latencyMs: {
    readonly mean: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly p999: number;
    readonly max: number;
  };
  /** The generator's event-loop utilisation over the run (near 1: the generator was the limit). */
  readonly eventLoopUtilization: number;
}

export type ParentToHttpChild = { readonly type: 'run'; readonly settings: HttpRunSettings } | { readonly type: 'stop' };
export type HttpChildToParent =
  | { readonly type: 'ready' }
  | { readonly type: 'result'; readonly result: HttpRunResult }
  | { readonly type: 'fatal'; readonly message: string };

function send(message: HttpChildToParent): void {
  process.send?.(message);
}

async function runClosed(s: HttpRunSettings): Promise<HttpRunResult> {
  const options: autocannon.Options & { warmup?: { connections: number; duration: number } } = {
    url: s.url,
    connections: s.connections,
    pipelining: 1,
    duration: s.durationS,
    timeout: s.timeoutS,
    ...(s.warmupS > 0 ? { warmup: { connections: s.connections, duration: s.warmupS } } : {}),
    // One prebuilt request per token: each connection walks the list in turn, so the generator builds
    // no request on the hot path (autocannon rebuilds a request per send when it has a setupRequest).
    requests: s.tokens.map((token) => ({ method: 'GET' as const, headers: { authorization: `Bearer ${token}` } })),
  };
  const elu = performance.eventLoopUtilization();
  const r = await autocannon(options);
  const l = r.latency as autocannon.Histogram & { p99_9?: number; p90?: number };
  const statusCodes: Record<string, number> = {};
  for (const [code, stat] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = stat.count ?? 0;
  return {
    generator: 'autocannon',
    durationS: r.duration,
    requests: r.requests.total,
    status2xx: r['2xx'],
    non2xx: r.non2xx,
    statusCodes,
    errors: r.errors,
    timeouts: r.timeouts,
    achievedRate: Math.round((r['2xx'] / Math.max(0.001, r.duration)) * 10) / 10,
    latencyMs: { mean: Math.round(l.mean * 100) / 100, p50: l.p50, p90: l.p90 ?? 0, p99: l.p99, p999: l.p99_9 ?? 0, max: l.max },
    eventLoopUtilization: Math.round(performance.eventLoopUtilization(elu).utilization * 100) / 100,
  };
}

const TICK_MS = 1;

interface OpenCounts {
  sent: number;
  /** performance.now() of the last answer: an overloaded server answers after the arrivals' end. */
  lastMs: number;
  done: number;
  status2xx: number;
  errors: number;
  timeouts: number;
  readonly statusCodes: Record<string, number>;
}

/** Arrivals at `rate`/s for `durationS`, each at its intended time; resolves once every one has ended. */
function runOpen(s: HttpRunSettings, rate: number): Promise<HttpRunResult> {
  const url = new URL(s.url);
  const agent = new Agent({ keepAlive: true, maxSockets: s.connections, maxFreeSockets: s.connections, scheduling: 'fifo' });
  const total = Math.max(1, Math.floor(rate * s.durationS));
  const histogram = new Histogram();
  const c: OpenCounts = { sent: 0, lastMs: 0, done: 0, status2xx: 0, errors: 0, timeouts: 0, statusCodes: {} };
  const elu = performance.eventLoopUtilization();
  const startMs = performance.now() + 50;
  return new Promise((resolve) => {
    const finish = (): void => {
      c.lastMs = performance.now();
      if (++c.done < total) return;
      agent.destroy();
      resolve(openResult(s, c, histogram, performance.eventLoopUtilization(elu).utilization, (c.lastMs - startMs) / 1000));
    };
    const fire = (i: number, intendedMs: number): void => {
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'GET',
          headers: { authorization: `Bearer ${s.tokens[i % s.tokens.length] ?? ''}` },
        },
        (res) => {
          const code = String(res.statusCode ?? 0);
          res.resume();
          res.on('end', () => {
            c.statusCodes[code] = (c.statusCodes[code] ?? 0) + 1;
            if (code.startsWith('2')) {
              c.status2xx++;
              histogram.record((performance.now() - intendedMs) * 1000);
            }
            finish();
          });
        },
      );
      req.setTimeout(s.timeoutS * 1000, () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        if (err.message === 'timeout') c.timeouts++;
        else c.errors++;
        finish();
      });
      req.end();
    };
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - startMs) * rate) / 1000) + 1);
      while (c.sent < due) {
        fire(c.sent, startMs + (c.sent * 1000) / rate);
        c.sent++;
      }
      if (c.sent < total) setTimeout(tick, TICK_MS);
    };
    setTimeout(tick, Math.max(0, startMs - performance.now()));
  });
}

function openResult(s: HttpRunSettings, c: OpenCounts, h: Histogram, elu: number, elapsedS: number): HttpRunResult {
  const ms = (us: number): number => Math.round(us) / 1000;
  const non2xx = Object.entries(c.statusCodes)
    .filter(([code]) => !code.startsWith('2'))
    .reduce((sum, [, n]) => sum + n, 0);
  return {
    generator: 'constant-arrival',
    durationS: Math.round(Math.max(s.durationS, elapsedS) * 1000) / 1000,
    requests: c.sent,
    status2xx: c.status2xx,
    non2xx,
    statusCodes: c.statusCodes,
    errors: c.errors,
    timeouts: c.timeouts,
    achievedRate: Math.round((c.status2xx / Math.max(s.durationS, elapsedS)) * 10) / 10,
    latencyMs: {
      mean: h.count === 0 ? 0 : ms(h.sumUs / h.count),
      p50: ms(h.quantileUs(0.5)),
      p90: ms(h.quantileUs(0.9)),
      p99: ms(h.quantileUs(0.99)),
      p999: ms(h.quantileUs(0.999)),
      max: ms(h.maxUs),
    },
    eventLoopUtilization: Math.round(elu * 100) / 100,
  };
}

function run(s: HttpRunSettings): Promise<HttpRunResult> {
  return s.rate === undefined ? runClosed(s) : runOpen(s, s.rate);
}

process.on('message', (message: ParentToHttpChild) => {
  if (message.type === 'stop') process.exit(0);
  run(message.settings).then(
    (result) => send({ type: 'result', result }),
    (err: unknown) => send({ type: 'fatal', message: err instanceof Error ? err.message : String(err) }),
  );
});
// The bench died: do not outlive it.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
