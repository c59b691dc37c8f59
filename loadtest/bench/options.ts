// Command-line options of `npm run bench -- [options]`; every value is checked with a message that
// names the option, what it got and what it accepts.
import { parseArgs } from 'node:util';

export type ScenarioName = 'tap' | 'tap-stream' | 'lunch-rush' | 'inquiry';
export type LoadMode = 'open' | 'closed';
export const SCENARIOS: readonly ScenarioName[] = ['tap', 'tap-stream', 'lunch-rush', 'inquiry'];
export const MODES: readonly LoadMode[] = ['open', 'closed'];

export interface ScenarioPlan {
  readonly scenario: ScenarioName;
  readonly mode: LoadMode;
  /** Open model: requests/s (the lunch rush's peak); undefined in the closed model. */
  readonly rate: number | undefined;
}

export interface BenchOptions {
  readonly help: boolean;
  readonly quick: boolean;
  readonly plans: readonly ScenarioPlan[];
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly workers: number;
  readonly connections: number;
  readonly streams: number;
  readonly maxInFlight: number;
  readonly requestTimeoutMs: number;
  readonly cardholders: number;
  /** Whether --cardholders / --seed were given (--export-campus otherwise follows npm start's demo campus). */
  readonly explicit: { readonly cardholders: boolean; readonly seed: boolean };
  readonly pinCards: number;
  readonly shards: number;
  readonly scryptN: number;
  readonly seed: string;
  readonly mix: string;
  readonly out: string;
  readonly exportCampus: string | undefined;
  readonly switchInProcess: boolean;
  readonly baselines: boolean;
  readonly h2load: boolean;
  readonly h2loadRequests: number;
  readonly redisBenchmarkRequests: number;
  readonly redisLanes: number;
  readonly client: 'raw' | 'node';
}

export const DEFAULT_TAP_RATE = 6000;
export const DEFAULT_LUNCH_PEAK_RATE = 3000;

export const USAGE = `npm run bench -- [options]

Starts a private redis-server (AOF, appendfsync always), loads a demo campus, starts the switch in a
child process, drives it with raw HTTP/2 gRPC from worker threads, measures the baselines (a no-op
grpc-js server, the authorize script alone through ioredis and through redis-benchmark, h2load on
Inquire), checks the ledger, and writes loadtest/results/latest.json.

  --scenario LIST     tap, lunch-rush, inquiry (comma-separated; default: all three)
  --mode LIST         open, closed (comma-separated; default: tap closed+open, lunch-rush open, inquiry closed)
  --rate N            open model: requests/s (lunch-rush: the peak); default tap ${DEFAULT_TAP_RATE}, lunch-rush ${DEFAULT_LUNCH_PEAK_RATE}
  --duration S        seconds per scenario (default 10; the lunch hour is squeezed into it)
  --warmup S          seconds at the start of each scenario left out of the statistics (default 2)
  --workers N         load-generator threads (default 1: on 2 shared cores a second thread costs the server more than it adds)
  --connections N     HTTP/2 connections in all (default 4)
  --streams N         closed model: requests in flight in all (default 128)
  --max-in-flight N   open model: at most this many in flight; later arrivals wait, counted late (default 20000)
  --timeout MS        per-request timeout (default 10000)
  --cardholders N     demo campus size (default 20000)
  --pin-cards N       cards with a card password for PIN payments (default 256)
  --shards N          LEDGER_SHARDS (default 256)
  --scrypt-n N        PASSWORD_SCRYPT_N of the switch (default 16384, the production cost)
  --mix LIST          lunch-rush weights, e.g. tap=74,inquiry=10,retry=5,reversal=3,pin=1,water=5,settle=2
  --seed TEXT         demo campus seed (default cardswitch-demo)
  --out FILE          result JSON (default loadtest/results/latest.json)
  --switch-in-process run the switch in the bench process instead of a child process
  --no-baselines      skip the no-op server and Redis baselines
  --no-h2load         skip the h2load cross-check
  --h2load-requests N requests of the h2load cross-check (default 50000)
  --redis-benchmark-requests N  calls of the script-alone run by redis-benchmark (default 60000)
  --redis-lanes N     concurrent callers of the Redis baseline (default 128)
  --client raw|node   load generator transport: the bench's own HTTP/2 client (default) or node:http2
  --quick             a few seconds in all (CI): tap closed, small campus, short baselines
  --export-campus F   write the campus file for k6 (npm start's demo campus, every card's PIN) and exit
  --help
`;

function integer(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(`--${name} ${raw}: must be a whole number from ${min} to ${max}`);
  }
  return value;
}

function seconds(name: string, raw: string | undefined, fallbackMs: number, maxS: number): number {
  if (raw === undefined) return fallbackMs;
  const value = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !(value >= 0) || value > maxS) throw new Error(`--${name} ${raw}: must be seconds from 0 to ${maxS}`);
  return Math.round(value * 1000);
}

function list<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T[] | undefined {
  if (raw === undefined) return undefined;
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const item of items) if (!(allowed as readonly string[]).includes(item)) throw new Error(`--${name} ${item}: must be one of ${allowed.join(', ')}`);
  return items as T[];
}

function defaultModes(scenario: ScenarioName): LoadMode[] {
  if (scenario === 'tap' || scenario === 'tap-stream') return ['closed', 'open'];
  return scenario === 'lunch-rush' ? ['open'] : ['closed'];
}

function plansFor(scenarios: ScenarioName[] | undefined, modes: LoadMode[] | undefined, rate: number | undefined, quick: boolean): ScenarioPlan[] {
  const chosen = scenarios ?? (quick ? ['tap', 'tap-stream'] : [...SCENARIOS]);
  const plans: ScenarioPlan[] = [];
  for (const scenario of chosen) {
    for (const mode of modes ?? (quick ? ['closed'] : defaultModes(scenario))) {
      const openRate = rate ?? (scenario === 'lunch-rush' ? DEFAULT_LUNCH_PEAK_RATE : DEFAULT_TAP_RATE);
      plans.push({ scenario, mode, rate: mode === 'open' ? openRate : undefined });
    }
  }
  return plans;
}

function clientOf(raw: string | undefined): 'raw' | 'node' {
  if (raw === undefined || raw === 'raw') return 'raw';
  if (raw === 'node') return 'node';
  throw new Error(`--client ${raw}: must be raw or node`);
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      help: { type: 'boolean' }, quick: { type: 'boolean' }, scenario: { type: 'string' }, mode: { type: 'string' },
      rate: { type: 'string' }, duration: { type: 'string' }, warmup: { type: 'string' }, workers: { type: 'string' },
      connections: { type: 'string' }, streams: { type: 'string' }, 'max-in-flight': { type: 'string' }, timeout: { type: 'string' },
      cardholders: { type: 'string' }, 'pin-cards': { type: 'string' }, shards: { type: 'string' }, 'scrypt-n': { type: 'string' },
      mix: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' }, 'export-campus': { type: 'string' },
      'switch-in-process': { type: 'boolean' }, 'no-baselines': { type: 'boolean' }, 'no-h2load': { type: 'boolean' },
      'h2load-requests': { type: 'string' }, 'redis-benchmark-requests': { type: 'string' }, 'redis-lanes': { type: 'string' }, client: { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const rate = values.rate === undefined ? undefined : integer('rate', values.rate, 0, 1, 1_000_000);
  return {
    help: values.help === true,
    quick,
    plans: plansFor(list('scenario', values.scenario, SCENARIOS), list('mode', values.mode, MODES), rate, quick),
    durationMs: seconds('duration', values.duration, quick ? 2000 : 10_000, 3600),
    warmupMs: seconds('warmup', values.warmup, quick ? 500 : 2000, 600),
    workers: integer('workers', values.workers, 1, 1, 16),
    connections: integer('connections', values.connections, 4, 1, 256),
    streams: integer('streams', values.streams, 128, 1, 100_000),
    maxInFlight: integer('max-in-flight', values['max-in-flight'], 20_000, 1, 1_000_000),
    requestTimeoutMs: integer('timeout', values.timeout, 10_000, 100, 600_000),
    cardholders: integer('cardholders', values.cardholders, quick ? 2000 : 20_000, 20, 200_000),
    explicit: { cardholders: values.cardholders !== undefined, seed: values.seed !== undefined },
    pinCards: integer('pin-cards', values['pin-cards'], quick ? 32 : 256, 0, 10_000),
    shards: integer('shards', values.shards, 256, 1, 16384),
    scryptN: integer('scrypt-n', values['scrypt-n'], 16384, 1024, 131072),
    seed: values.seed ?? 'cardswitch-demo',
    mix: values.mix ?? '',
    out: values.out ?? 'loadtest/results/latest.json',
    exportCampus: values['export-campus'],
    switchInProcess: values['switch-in-process'] === true,
    baselines: values['no-baselines'] !== true,
    h2load: values['no-h2load'] !== true,
    h2loadRequests: integer('h2load-requests', values['h2load-requests'], quick ? 2000 : 50_000, 100, 10_000_000),
    redisBenchmarkRequests: integer('redis-benchmark-requests', values['redis-benchmark-requests'], quick ? 3000 : 60_000, 100, 10_000_000),
    redisLanes: integer('redis-lanes', values['redis-lanes'], 128, 1, 10_000),
    client: clientOf(values.client),
  };
}
