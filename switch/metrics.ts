// Prometheus metrics of one switch. Each switch owns its Registry (never prom-client's global one):
// tests start several switches in one process, and a global registry would refuse the second set of
// names. Helpers are typed and cheap, because the payment path calls them: label children are resolved
// once (authorizations: all 15 at start; latencies: on first use, then from a Map) so an observation
// costs a Map lookup and a bucket increment, not a label-object hash per call.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** 'pending': a third-party code whose channel has not answered yet (OUTCOME_PENDING). */
export type AuthorizationOutcome = 'approved' | 'declined' | 'pin_required' | 'pending' | 'error';
export type CredentialKind = 'card' | 'campus_qr' | 'third_party';
export type RedisClientName = 'pipeline' | 'ioredis';

export interface PasswordPoolGauges {
  readonly queueSize: number;
  readonly threads: number;
}

export interface Metrics {
  /** Its own registry, for tests that read one value; the app scrapes through render(). */
  readonly registry: Registry;
  authorization(outcome: AuthorizationOutcome, credential: CredentialKind): void;
  /** One gRPC call (or one AuthorizeStream payment) ended with `code`, a gRPC status name ('OK', 'UNAVAILABLE' ...). */
  grpcCall(method: string, code: string, seconds: number): void;
  /** `route` is the route template (or 'unmatched'), never the raw URL: label cardinality stays bounded. */
  httpRequest(route: string, method: string, status: number, seconds: number): void;
  redisError(client: RedisClientName): void;
  websocketOpened(): void;
  websocketClosed(): void;
  /** Where the password-pool gauges read their values at scrape time (the app passes PasswordPool.stats). */
  setPasswordPoolSource(source: () => PasswordPoolGauges): void;
  render(): Promise<{ contentType: string; body: string }>;
}

/** 0.5 ms .. 5 s: a cached tap answers in about a millisecond, a ledger timeout takes seconds. */
export const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const OUTCOMES: readonly AuthorizationOutcome[] = ['approved', 'declined', 'pin_required', 'pending', 'error'];
const CREDENTIALS: readonly CredentialKind[] = ['card', 'campus_qr', 'third_party'];

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const authorizations = new Counter({
    name: 'cardswitch_authorizations_total',
    help: 'POS payments decided (Authorize and AuthorizeStream), by outcome and credential kind',
    labelNames: ['outcome', 'credential'] as const,
    registers,
  });
  const authorizationChildren = new Map<string, Counter.Internal>();
  for (const outcome of OUTCOMES) {
    for (const credential of CREDENTIALS) authorizationChildren.set(`${outcome}|${credential}`, authorizations.labels(outcome, credential));
  }

  const grpcDuration = new Histogram({
    name: 'cardswitch_grpc_request_duration_seconds',
    help: 'gRPC calls (and AuthorizeStream payments) from arrival to answer, by method and final status',
    labelNames: ['method', 'code'] as const,
    buckets: LATENCY_BUCKETS_SECONDS,
    registers,
  });
  const grpcChildren = new Map<string, Histogram.Internal<'method' | 'code'>>();

  const httpDuration = new Histogram({
    name: 'cardswitch_http_request_duration_seconds',
    help: 'Gateway HTTP requests from arrival to answer, by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: LATENCY_BUCKETS_SECONDS,
    registers,
  });
  const httpChildren = new Map<string, Histogram.Internal<'route' | 'method' | 'status'>>();

  const redisErrors = new Counter({
    name: 'cardswitch_redis_errors_total',
    help: 'Redis connection errors and ledger calls that failed because Redis did not answer, by client',
    labelNames: ['client'] as const,
    registers,
  });
  const redisChildren = { pipeline: redisErrors.labels('pipeline'), ioredis: redisErrors.labels('ioredis') };

  let poolSource: (() => PasswordPoolGauges) | undefined;
  new Gauge({
    name: 'cardswitch_password_pool_queue',
    help: 'Password checks waiting for a worker thread',
    registers,
    collect() {
      if (poolSource !== undefined) this.set(poolSource().queueSize);
    },
  });
  new Gauge({
    name: 'cardswitch_password_pool_threads',
    help: 'Worker threads of the password pool',
    registers,
    collect() {
      if (poolSource !== undefined) this.set(poolSource().threads);
    },
  });
  const websockets = new Gauge({ name: 'cardswitch_websockets_open', help: 'Gateway WebSockets open now', registers });

  return {
    registry,
    authorization(outcome, credential) {
      const child = authorizationChildren.get(`${outcome}|${credential}`);
      if (child === undefined) throw new RangeError(`unknown authorization labels ${outcome}/${credential}`);
      child.inc();
    },
    grpcCall(method, code, seconds) {
      const key = `${method}|${code}`;
      let child = grpcChildren.get(key);
      if (child === undefined) grpcChildren.set(key, (child = grpcDuration.labels(method, code)));
      child.observe(seconds);
    },
    httpRequest(route, method, status, seconds) {
      const key = `${route}|${method}|${status}`;
      let child = httpChildren.get(key);
      if (child === undefined) httpChildren.set(key, (child = httpDuration.labels(route, method, String(status))));
      child.observe(seconds);
    },
    redisError(client) {
      redisChildren[client].inc();
    },
    websocketOpened() {
      websockets.inc();
    },
    websocketClosed() {
      websockets.dec();
    },
    setPasswordPoolSource(source) {
      poolSource = source;
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
