// Command-line options of `npm run bench -- [options]`; every value is checked with a message that
// names the option, what it got and what it accepts.
import { parseArgs } from 'node:util';

export type ScenarioName =
  'tap' | 'qr' | 'tap-bound' | 'thirdparty' | 'tap+thirdparty' | 'tap-stream' | 'lunch-rush' | 'inquiry' | 'gateway' | 'websockets';
export type LoadMode = 'open' | 'closed';
/** In the order a full run takes them: qr and tap-bound right after tap, their baseline. */
export const SCENARIOS: readonly ScenarioName[] = [
  'tap',
  'qr',
  'tap-bound',
  'thirdparty',
  'tap+thirdparty',
  'tap-stream',
  'lunch-rush',
  'inquiry',
  'gateway',
  'websockets',
];
export const MODES: readonly LoadMode[] = ['open', 'closed'];

export interface ScenarioPlan {
  readonly scenario: ScenarioName;
  /** websockets: always 'closed' (a number of sockets held, no arrival rate). */
  readonly mode: LoadMode;
  /** Open model: requests/s (the lunch rush's peak; gateway: --http-rate); undefined in the closed model. */
  readonly rate: number | undefined;
  /**
   * `--rate auto[:F]` (open model): the rate is F (default 0.6) of the capacity measured earlier in the
   * same run, the same scenario closed (the lunch rush: its own mix closed); `rate` is set when the run gets there.
   */
  readonly autoFraction?: number;
}

/** `--rate auto`: the share of the closed-model capacity offered in the open model. */
export const DEFAULT_AUTO_RATE_FRACTION = 0.6;

/** The closed scenario whose achieved rate an open plan's `--rate auto` takes a fraction of. */
export function capacityScenarioOf(scenario: ScenarioName): ScenarioName {
  // The lunch rush's own mix closed (PIN payments with their password checks, code payments, water,
  // settlements: about a third of what taps alone carry), not tap closed: 0.6 of the taps' capacity
  // overloads the mix and measures the queue, not the switch.
  return scenario;
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
  /**
   * Issue 15's throughput ratios again as this many pairs of alternating slices (tap closed and the no-op
   * server; tap-stream closed, the no-op stream and redis-benchmark on the project's work), each slice
   * `pairDurationMs` long: both sides of a ratio seconds apart, not minutes. 0: none.
   */
  readonly pairs: number;
  readonly pairDurationMs: number;
  /**
   * `--redis cluster`: the tap and tap-stream scenarios (closed) against one Redis, a local 3-master Redis
   * Cluster, and that cluster in the durable mode (LEDGER_DURABILITY=replica), one after the other, reported
   * side by side (loadtest/bench/cluster.ts). `single` (default): the usual run on one Redis.
   */
  readonly redis: 'single' | 'cluster';
  readonly client: 'raw' | 'node';
  /** Cards bound to e-card users (the last ones of the campus): qr, tap-bound, gateway and websockets use them. */
  readonly boundCards: number;
  /** gateway: autocannon connections (closed: requests in flight), open model too. */
  readonly httpConnections: number;
  /** websockets: sockets held open at once, new ones per second at most, handshakes in flight at most, hold time. */
  readonly websockets: number;
  readonly wsOpenRate: number;
  readonly wsConcurrency: number;
  readonly wsHoldMs: number;
  /** --export-campus: also bind this many demo cards in npm start's ledger and write their sessions. */
  readonly ecardUsers: number;
  /** thirdparty, tap+thirdparty, lunch-rush: each answer of the channel simulators waits this long. */
  readonly channelLatencyMs: number;
  /** tap+thirdparty: third-party payments per second beside the closed-model taps. */
  readonly thirdPartyRate: number;
  /** Cards with a WeChat and an Alipay payer bound (kept out of every other scenario's campus). */
  readonly thirdPartyPayers: number;
  /** Which channels' codes the code payments use: both in turn (default), or one (its cost per payment alone). */
  readonly thirdPartyChannels: 'both' | 'alipay' | 'wechat';
}

export const DEFAULT_TAP_RATE = 6000;
export const DEFAULT_LUNCH_PEAK_RATE = 3000;
export const DEFAULT_HTTP_RATE = 2000;
/** A campus QR code is accepted for 60 s: a qr scenario (minting included) must end well inside that. */
export const MAX_QR_DURATION_MS = 40_000;
export const DEFAULT_THIRD_PARTY_RATE = 200;
export const DEFAULT_CHANNEL_LATENCY_MS = 80;

/** The scenarios that pay with Alipay / WeChat payment codes (lunch-rush too, unless its mix says thirdParty=0). */
export function usesChannels(o: Pick<BenchOptions, 'plans'>): boolean {
  return o.plans.some((p) => p.scenario === 'thirdparty' || p.scenario === 'tap+thirdparty' || p.scenario === 'lunch-rush');
}

export const USAGE = `npm run bench -- [options]

Starts a private redis-server (AOF, appendfsync always), loads a demo campus, starts the switch in a
child process, drives it with raw HTTP/2 gRPC from worker threads, measures the baselines (a no-op
grpc-js server, the authorize script alone through ioredis and through redis-benchmark, h2load on
Inquire), checks the ledger, and writes loadtest/results/latest.json.

  --scenario LIST     ${SCENARIOS.join(', ')} (comma-separated; default: all)
                      qr: campus QR codes through Authorize (bound cards, codes minted before the run);
                      tap-bound: taps on bound cards (a live event each); gateway: GET /api/v1/ecard and
                      GET /bench/hello with autocannon; websockets: idle live-event sockets held at once;
                      thirdparty: Alipay / WeChat payment codes through Authorize (the channel
                      simulators answer after --channel-latency-ms; codes minted before the run);
                      tap+thirdparty: tap closed while --thirdparty-rate code payments/s wait on the channel
  --mode LIST         open, closed (comma-separated; default: tap, tap-stream and gateway closed+open,
                      lunch-rush open, the others closed)
  --rate N            open model: requests/s (lunch-rush: the peak); default tap ${DEFAULT_TAP_RATE}, lunch-rush ${DEFAULT_LUNCH_PEAK_RATE}
  --rate auto[:F]     open model at F (default ${DEFAULT_AUTO_RATE_FRACTION}) of the capacity measured earlier in the same run:
                      the same scenario closed (lunch-rush: its own mix), run first (added when not asked for)
  --http-rate N       gateway open model: requests/s (default ${DEFAULT_HTTP_RATE})
  --http-connections N  gateway: autocannon connections, pipelining 1 (default 64)
  --bound-cards N     cards bound to e-card users, the last of the campus (default 1000; quick 100)
  --websockets N      websockets: sockets held open at once (default 10000; quick 500)
  --ws-open-rate N    websockets: new sockets per second at most (default 2000)
  --ws-concurrency N  websockets: handshakes in flight at most (default 256)
  --ws-hold S         websockets: seconds to hold them all open (default 5; quick 1)
  --channel-latency-ms N  each answer of the Alipay / WeChat simulators waits N ms (default ${DEFAULT_CHANNEL_LATENCY_MS})
  --thirdparty-rate N tap+thirdparty: code payments per second beside the taps (default ${DEFAULT_THIRD_PARTY_RATE})
  --thirdparty-payers N  cards with a WeChat and an Alipay payer bound (default 200; quick 50)
  --thirdparty-channels both|alipay|wechat  the code payments' channels (default both, in turn)
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
  --pairs N           issue 15's throughput ratios again as N pairs of alternating slices, each side seconds
                      from the other (default 3; quick 1; 0: none); the targets take their median
  --pair-duration S   seconds of each slice (default 5; quick 1)
  --redis cluster     tap and tap-stream (closed) on one Redis, on a local 3-master 3-replica Redis Cluster and
                      on that cluster with LEDGER_DURABILITY=replica, side by side (default: single)
  --client raw|node   load generator transport: the bench's own HTTP/2 client (default) or node:http2
  --quick             a few seconds each (CI): every scenario but lunch-rush and inquiry, closed only,
                      small campus, 500 WebSockets, short baselines
  --export-campus F   write the campus file for k6 (npm start's demo campus, every card's PIN) and exit
  --ecard-users N     with --export-campus: bind N demo cards in npm start's ledger (REDIS_URL, or the
                      local Redis and var/dev-secrets.json as the CLI finds them) and write their sessions
  --help
`;

function thirdPartyChannels(raw: string | undefined): BenchOptions['thirdPartyChannels'] {
  if (raw === undefined || raw === 'both' || raw === 'alipay' || raw === 'wechat') return raw ?? 'both';
  throw new Error(`--thirdparty-channels ${raw}: must be both, alipay or wechat`);
}

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
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const item of items)
    if (!(allowed as readonly string[]).includes(item)) throw new Error(`--${name} ${item}: must be one of ${allowed.join(', ')}`);
  return items as T[];
}

function defaultModes(scenario: ScenarioName): LoadMode[] {
  if (scenario === 'tap' || scenario === 'tap-stream' || scenario === 'gateway') return ['closed', 'open'];
  return scenario === 'lunch-rush' ? ['open'] : ['closed'];
}

const QUICK_SCENARIOS: readonly ScenarioName[] = [
  'tap',
  'qr',
  'tap-bound',
  'thirdparty',
  'tap+thirdparty',
  'tap-stream',
  'gateway',
  'websockets',
];

function plansFor(
  scenarios: ScenarioName[] | undefined,
  modes: LoadMode[] | undefined,
  rates: { rate: number | undefined; autoFraction: number | undefined; httpRate: number },
  quick: boolean,
): ScenarioPlan[] {
  const chosen = scenarios ?? (quick ? [...QUICK_SCENARIOS] : [...SCENARIOS]);
  const plans: ScenarioPlan[] = [];
  for (const scenario of chosen) {
    // tap+thirdparty: the taps closed, the code payments beside them at --thirdparty-rate.
    if (scenario === 'websockets' || scenario === 'tap+thirdparty') {
      plans.push({ scenario, mode: 'closed', rate: undefined });
      continue;
    }
    for (const mode of modes ?? (quick ? ['closed'] : defaultModes(scenario))) {
      const openRate =
        scenario === 'gateway' ? rates.httpRate : (rates.rate ?? (scenario === 'lunch-rush' ? DEFAULT_LUNCH_PEAK_RATE : DEFAULT_TAP_RATE));
      const auto = mode === 'open' && scenario !== 'gateway' ? rates.autoFraction : undefined;
      if (auto === undefined) {
        plans.push({ scenario, mode, rate: mode === 'open' ? openRate : undefined });
        continue;
      }
      // The capacity comes first: the same scenario closed, added when missing.
      const capacity = capacityScenarioOf(scenario);
      if (!plans.some((p) => p.scenario === capacity && p.mode === 'closed'))
        plans.push({ scenario: capacity, mode: 'closed', rate: undefined });
      plans.push({ scenario, mode, rate: undefined, autoFraction: auto });
    }
  }
  return plans;
}

/** `--rate N` or `--rate auto` / `--rate auto:F` (0 < F <= 1). */
function rateOption(raw: string | undefined): { rate: number | undefined; autoFraction: number | undefined } {
  if (raw === undefined) return { rate: undefined, autoFraction: undefined };
  if (raw === 'auto') return { rate: undefined, autoFraction: DEFAULT_AUTO_RATE_FRACTION };
  const auto = /^auto:(0?\.\d+|1(\.0*)?)$/.exec(raw);
  if (auto !== null) {
    const fraction = Number(auto[1]);
    if (fraction > 0 && fraction <= 1) return { rate: undefined, autoFraction: fraction };
  }
  if (raw.startsWith('auto')) throw new Error(`--rate: expected auto or auto:F with 0 < F <= 1 (e.g. auto:0.6), got '${raw}'`);
  return { rate: integer('rate', raw, 0, 1, 1_000_000), autoFraction: undefined };
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
      help: { type: 'boolean' },
      quick: { type: 'boolean' },
      scenario: { type: 'string' },
      mode: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      workers: { type: 'string' },
      connections: { type: 'string' },
      streams: { type: 'string' },
      'max-in-flight': { type: 'string' },
      timeout: { type: 'string' },
      cardholders: { type: 'string' },
      'pin-cards': { type: 'string' },
      shards: { type: 'string' },
      'scrypt-n': { type: 'string' },
      mix: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      'export-campus': { type: 'string' },
      'switch-in-process': { type: 'boolean' },
      'no-baselines': { type: 'boolean' },
      'no-h2load': { type: 'boolean' },
      'h2load-requests': { type: 'string' },
      'redis-benchmark-requests': { type: 'string' },
      'redis-lanes': { type: 'string' },
      pairs: { type: 'string' },
      'pair-duration': { type: 'string' },
      redis: { type: 'string' },
      client: { type: 'string' },
      'bound-cards': { type: 'string' },
      'http-rate': { type: 'string' },
      'http-connections': { type: 'string' },
      websockets: { type: 'string' },
      'ws-open-rate': { type: 'string' },
      'ws-concurrency': { type: 'string' },
      'ws-hold': { type: 'string' },
      'ecard-users': { type: 'string' },
      'channel-latency-ms': { type: 'string' },
      'thirdparty-rate': { type: 'string' },
      'thirdparty-channels': { type: 'string' },
      'thirdparty-payers': { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const { rate, autoFraction } = rateOption(values.rate);
  const httpRate = integer('http-rate', values['http-rate'], DEFAULT_HTTP_RATE, 1, 1_000_000);
  const redis = values.redis ?? 'single';
  if (redis !== 'single' && redis !== 'cluster') throw new Error(`--redis ${redis}: must be single or cluster`);
  const options: BenchOptions = {
    help: values.help === true,
    quick,
    redis,
    plans: plansFor(
      list('scenario', values.scenario, SCENARIOS) ?? (redis === 'cluster' ? ['tap', 'tap-stream'] : undefined),
      list('mode', values.mode, MODES) ?? (redis === 'cluster' ? ['closed'] : undefined),
      { rate, autoFraction, httpRate },
      quick,
    ),
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
    pairs: integer('pairs', values.pairs, quick ? 1 : 3, 0, 20),
    pairDurationMs: seconds('pair-duration', values['pair-duration'], quick ? 2000 : 5000, 120),
    client: clientOf(values.client),
    boundCards: integer('bound-cards', values['bound-cards'], quick ? 100 : 1000, 16, 100_000),
    httpConnections: integer('http-connections', values['http-connections'], 64, 1, 10_000),
    // The client child and the switch each hold one descriptor per socket: stay under a 20,000 soft limit.
    websockets: integer('websockets', values.websockets, quick ? 500 : 10_000, 1, 18_000),
    wsOpenRate: integer('ws-open-rate', values['ws-open-rate'], 2000, 1, 100_000),
    wsConcurrency: integer('ws-concurrency', values['ws-concurrency'], 256, 1, 10_000),
    wsHoldMs: seconds('ws-hold', values['ws-hold'], quick ? 1000 : 5000, 600),
    ecardUsers: integer('ecard-users', values['ecard-users'], 0, 0, 10_000),
    channelLatencyMs: integer('channel-latency-ms', values['channel-latency-ms'], DEFAULT_CHANNEL_LATENCY_MS, 0, 5000),
    thirdPartyRate: integer('thirdparty-rate', values['thirdparty-rate'], DEFAULT_THIRD_PARTY_RATE, 1, 100_000),
    thirdPartyPayers: integer('thirdparty-payers', values['thirdparty-payers'], quick ? 50 : 200, 2, 10_000),
    thirdPartyChannels: thirdPartyChannels(values['thirdparty-channels']),
  };
  checkCombinations(options);
  return options;
}

function checkCombinations(o: BenchOptions): void {
  const uses = (name: ScenarioName): boolean => o.plans.some((p) => p.scenario === name);
  if (uses('qr') && o.durationMs > MAX_QR_DURATION_MS) {
    throw new Error(
      `--duration ${o.durationMs / 1000}: the qr scenario's codes are accepted for 60 s after they are minted; at most ${MAX_QR_DURATION_MS / 1000} s`,
    );
  }
  const codes = uses('thirdparty') || uses('tap+thirdparty');
  if (codes && o.durationMs > MAX_QR_DURATION_MS) {
    throw new Error(
      `--duration ${o.durationMs / 1000}: Alipay / WeChat payment codes live 60 s after they are minted; at most ${MAX_QR_DURATION_MS / 1000} s with thirdparty`,
    );
  }
  if (usesChannels(o) && o.thirdPartyPayers > o.cardholders / 4)
    throw new Error(`--thirdparty-payers ${o.thirdPartyPayers}: at most a quarter of --cardholders ${o.cardholders}`);
  const needsBound = uses('qr') || uses('tap-bound') || uses('gateway') || uses('websockets');
  if (needsBound && o.boundCards > o.cardholders / 2)
    throw new Error(`--bound-cards ${o.boundCards}: at most half of --cardholders ${o.cardholders} (the other half pays unbound)`);
  if (uses('websockets') && Math.ceil(o.websockets / Math.min(o.boundCards, o.cardholders)) > 16) {
    throw new Error(`--websockets ${o.websockets} over --bound-cards ${o.boundCards}: at most 16 sessions per user (the switch keeps 20)`);
  }
  if (o.pairs > 0 && o.pairDurationMs < 500)
    throw new Error(`--pair-duration ${o.pairDurationMs / 1000}: at least 0.5 s a slice (or --pairs 0 for none)`);
  if (o.ecardUsers > 0 && o.exportCampus === undefined) throw new Error('--ecard-users needs --export-campus FILE');
}
