// Baseline: what Redis itself does with the payment script, measured by redis-benchmark (C, Redis's own
// load generator) rather than by a Node client: FCALL authorize.lua (a Redis Function) with the switch's own KEYS and
// ARGV (Ledger.authorizeArguments), every call a new request key (redis-benchmark's __rand_int__), all
// on one account with a balance that never runs out, in its own key prefix of the bench's Redis (AOF,
// appendfsync always). The Node baseline next to it (redis-baseline.ts) measures the script through
// ioredis; this one says how far Redis alone would go on this machine.
//
// Beside it (issue 15): the sequence claim (the plain SET NX GET each payment sends before the script)
// driven the same way, so the project's whole per-payment Redis work is measured, and the physical
// floor: a minimal idempotent debit script (read the balance, check, decrement, record the request key
// with an expiry; nothing else) with the same persistence. Each run also reads Redis's own CPU, the AOF
// bytes and the memory it added per call from INFO before and after.
import { execFile, spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { Keys } from '../../switch/ledger/keys.js';
import { Ledger, type AuthorizeInput, type HolderLimits } from '../../switch/ledger/ledger.js';
import { preparedCommand, Scripts } from '../../switch/ledger/scripts.js';
import { commandStats, footprint, waitForAofRewrite } from './redis-stats.js';
import { benchAccountFields } from './campus.js';

export interface RedisBenchmarkOptions {
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly shards: number;
  readonly clients: number;
  readonly requests: number;
  readonly limits: { readonly student: HolderLimits; readonly staff: HolderLimits };
  /**
   * runRedisWorkBaselines: how many times the floor and the project's work are driven in turn (default 3),
   * `requests` calls each time. The ratio is the median of the rounds' ratios: each round's two runs are
   * seconds apart, and this machine's speed moves between minutes (RESULTS fifteenth session: one run's
   * floor against the next one's moved the ratio between 2.0x and 3.1x).
   */
  readonly rounds?: number;
}

export interface RedisBenchmarkResult {
  readonly available: boolean;
  readonly note: string;
  readonly command?: string;
  readonly clients?: number;
  readonly requests?: number;
  readonly callsPerSec?: number;
  /** Calls that moved money (the rest replayed a request key redis-benchmark happened to draw twice). */
  readonly approvals?: number;
  readonly approvalsPerSec?: number;
  readonly latencyMs?: { readonly avg: number; readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number };
  /** Per call, from INFO before and after the run: Redis's CPU (µs), AOF bytes appended, memory added (bytes). */
  readonly redisCpuUsPerCall?: number | null;
  readonly aofBytesPerCall?: number | null;
  readonly memoryBytesPerCall?: number | null;
  /** (authorize.lua runs) the script took the sequence claim itself, as the switch does on one Redis. */
  readonly claimInScript?: boolean;
}

/**
 * The minimal idempotent debit (the floor): the request key first (a replay answers its record), then
 * the balance read, checked and decremented, and the request key recorded with its expiry.
 *   KEYS[1] account hash (field bal)   KEYS[2] request key   ARGV[1] amount (fen)   ARGV[2] ttl (s)
 */
export const MINIMAL_DEBIT_LUA = `local done = redis.call('GET', KEYS[2])
if done then return tonumber(done) end
local amount = tonumber(ARGV[1])
local balance = tonumber(redis.call('HGET', KEYS[1], 'bal'))
if balance == nil or balance < amount then return 0 end
redis.call('HINCRBY', KEYS[1], 'bal', -amount)
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
return 1`;

/**
 * The floor is called the way the project's payment is, as a Redis Function (FCALL): called by EVALSHA
 * it cost Redis ~2.5k more instructions per call (66.8k against 64.3k; loadtest/RESULTS.md, fourteenth
 * session), a saving the floor must have too for the ratio to compare the work, not the call.
 */
export const FLOOR_FUNCTION = 'bench_minimal_debit';

/** Loads the floor's library (replacing one of the same name) and returns the FCALL that runs it. */
export async function loadFloorFunction(
  redis: Redis,
  account: string,
  requestKey: string,
  amountFen: number,
  ttlSec: number,
): Promise<string[]> {
  await redis.call(
    'FUNCTION',
    'LOAD',
    'REPLACE',
    `#!lua name=${FLOOR_FUNCTION}\nredis.register_function('${FLOOR_FUNCTION}', function(KEYS, ARGV)\n${MINIMAL_DEBIT_LUA}\nend)\n`,
  );
  return ['FCALL', FLOOR_FUNCTION, '2', account, requestKey, String(amountFen), String(ttlSec)];
}

export interface RedisWorkBaselines {
  /** authorize.lua alone (FCALL), as before. */
  readonly script: RedisBenchmarkResult;
  /** The sequence claim alone (SET NX GET EX on a new key per call). */
  readonly claim: RedisBenchmarkResult;
  /** The minimal idempotent debit script: the physical floor of a Redis-with-fsync ledger here. */
  readonly floor: RedisBenchmarkResult;
  /**
   * The project's per-payment Redis work. On one Redis the sequence claim rides in the script
   * (authorize.lua's claim key), so it is the script's run alone; where it cannot (a Cluster), claim +
   * script, derived: Redis runs them one after the other on its one thread, so its rate is
   * 1 / (1/claim + 1/script) and its footprint the sum.
   */
  readonly project: {
    readonly approvalsPerSec: number | null;
    readonly redisCpuUsPerApproval: number | null;
    readonly aofBytesPerApproval: number | null;
    readonly memoryBytesPerApproval: number | null;
  };
  /** The project's Redis CPU per approval over the floor's, the median of the rounds' (target: at most 2). */
  readonly projectCpuVsFloor: number | null;
  /** Each round's ratio, in the order they ran (null where a round had no figure, or not every payment of it was approved). */
  readonly projectCpuVsFloorRounds: (number | null)[];
  /** True when the script run took the sequence claim itself (one Redis: the switch's own path). */
  readonly claimInScript: boolean;
}

const TIMEOUT_MS = 180_000;
/** Twelve digits, as long as redis-benchmark's `__rand_int__` placeholder, which replaces it. */
const PLACEHOLDER_SEQUENCE = 999_999_999_999;
const AMOUNT_FEN = 1250;
const CARD_NO = '91000001';
const REQUEST_TTL_SEC = 3600;
const SERIAL = 'B0000001';

export function redisBenchmarkAvailable(): boolean {
  const probe = spawnSync('redis-benchmark', ['--version'], { encoding: 'utf8' });
  return probe.error === undefined && probe.status === 0;
}

/**
 * The CSV row of redis-benchmark --csv:
 * "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms".
 */
export function parseRedisBenchmarkCsv(
  output: string,
): { rps: number; avg: number; p50: number; p95: number; p99: number; max: number } | undefined {
  const rows = output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('"') && !line.startsWith('"test"'));
  const last = rows.at(-1);
  if (last === undefined) return undefined;
  const cells = last.slice(1, -1).split('","');
  const numbers = cells.slice(-7).map(Number);
  if (numbers.length !== 7 || numbers.some((n) => !Number.isFinite(n))) return undefined;
  const [rps, avg, , p50, p95, p99, max] = numbers as [number, number, number, number, number, number, number];
  return { rps, avg, p50, p95, p99, max };
}

async function drive(
  redis: Redis,
  url: URL,
  clients: number,
  requests: number,
  command: readonly string[],
): Promise<{ argv: string[]; output: string; footprint: ReturnType<typeof footprint> }> {
  const argv = [
    '-h',
    url.hostname,
    '-p',
    url.port,
    '-c',
    String(clients),
    '-n',
    String(requests),
    // __rand_int__ draws from 0..r-1 for every call: collisions (replays) are rare and counted by the callers.
    '-r',
    '2000000000',
    '--csv',
    ...command,
  ];
  const before = await commandStats(redis);
  const output = await new Promise<string>((resolve, reject) =>
    execFile('redis-benchmark', argv, { timeout: TIMEOUT_MS, maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout),
    ),
  );
  return { argv, output, footprint: footprint(before, await commandStats(redis), requests) };
}

function commandLine(argv: readonly string[]): string {
  return `redis-benchmark ${argv.map((a) => (/[\s|]/.test(a) ? `'${a}'` : a)).join(' ')}`;
}

/**
 * authorize.lua driven by redis-benchmark on one card. `round` picks the card and the terminal: each
 * round of runRedisWorkBaselines pays with a card of its own, as one card's day would reach the daily
 * limits of the bench's settings (a second round on one card was declined for more than half its calls),
 * and from a terminal of its own. Two redis-benchmark runs seconds apart drew the same `__rand_int__`
 * numbers now and then (seen here: a whole floor round answered as replays, a third of a script round
 * refused as sequences another run's card had claimed). So every run's keys carry their round (the
 * floor's and the claim's too).
 */
export async function runRedisBenchmarkScript(options: RedisBenchmarkOptions, round = 0): Promise<RedisBenchmarkResult> {
  const cardNo = String(Number(CARD_NO) + round);
  const serial = `${SERIAL}-${round}`;
  if (!redisBenchmarkAvailable()) {
    return { available: false, note: 'redis-benchmark not found: skipped (Debian/Ubuntu: apt-get install -y redis-tools)' };
  }
  const url = new URL(options.redisUrl);
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
  await redis.connect();
  try {
    const keys = new Keys(options.keyPrefix, options.shards);
    const scripts = await Scripts.load(redis);
    const ledger = new Ledger(keys, scripts, REQUEST_TTL_SEC);
    const opened = await ledger.openAccount({ cardNo, openingFen: 1_000_000_000_000, fields: benchAccountFields(serial) });
    if (!opened) throw new Error(`card ${cardNo} is open already: each run of the script needs a card of its own`);
    const input: AuthorizeInput = {
      cardNo,
      presentedSerial: serial,
      amountFen: AMOUNT_FEN,
      credentialKind: 'card',
      terminalId: `BENCH-RB-${round}`,
      sequence: PLACEHOLDER_SEQUENCE,
      merchantId: 'BENCH',
      pinVerified: false,
      limits: options.limits,
      // As the switch sends a card tap on one Redis: the sequence claim rides in the script.
      claimSequence: ledger.claimsInScript,
    };
    const { keys: scriptKeys, args } = ledger.authorizeArguments(input, Date.now());
    const placeholder = String(PLACEHOLDER_SEQUENCE);
    const randomized = (value: string | number): string => String(value).replace(placeholder, '__rand_int__');
    const command = preparedCommand(await ledger.prepareAuthorize(options.limits), scriptKeys.map(randomized), args.map(randomized)).map(
      String,
    );
    if (!command.some((c, i) => i > 3 && c.includes('__rand_int__')))
      throw new Error('the request key does not carry the sequence number: redis-benchmark would replay one key');
    const balance = async (): Promise<number> => Number(await redis.hget(keys.account(cardNo), 'bal'));
    const before = await balance();
    const { argv, output, footprint: f } = await drive(redis, url, options.clients, options.requests, command);
    const parsed = parseRedisBenchmarkCsv(output);
    if (parsed === undefined) return { available: true, note: `could not read redis-benchmark's CSV: ${output.slice(0, 200)}` };
    const approvals = Math.round((before - (await balance())) / AMOUNT_FEN);
    return {
      available: true,
      claimInScript: input.claimSequence === true,
      note: `redis-benchmark, FCALL authorize.lua${input.claimSequence === true ? ' with the sequence claim in it' : ''}, one account, a new request key per call; approvals from the balance it moved`,
      command: commandLine(argv),
      clients: options.clients,
      requests: options.requests,
      callsPerSec: parsed.rps,
      approvals,
      approvalsPerSec: Math.round(((parsed.rps * approvals) / options.requests) * 10) / 10,
      latencyMs: { avg: parsed.avg, p50: parsed.p50, p95: parsed.p95, p99: parsed.p99, max: parsed.max },
      redisCpuUsPerCall: f.cpuUsPer,
      aofBytesPerCall: f.aofBytesPer,
      memoryBytesPerCall: f.memoryBytesPer,
    };
  } finally {
    redis.disconnect();
  }
}

/** The sequence claim alone: SET <terminal's slot>:seq:<n> <card> EX <ttl> NX GET, a new key per call. */
async function runClaim(redis: Redis, url: URL, options: RedisBenchmarkOptions, round = 0): Promise<RedisBenchmarkResult> {
  const keys = new Keys(options.keyPrefix, options.shards);
  const key = keys.sequenceClaim(`BENCH-RBC-${round}`, PLACEHOLDER_SEQUENCE).replace(String(PLACEHOLDER_SEQUENCE), '__rand_int__');
  if (!key.includes('__rand_int__')) throw new Error('the claim key does not carry the sequence number');
  const {
    argv,
    output,
    footprint: f,
  } = await drive(redis, url, options.clients, options.requests, ['SET', key, CARD_NO, 'EX', String(REQUEST_TTL_SEC), 'NX', 'GET']);
  const parsed = parseRedisBenchmarkCsv(output);
  if (parsed === undefined) return { available: true, note: `could not read redis-benchmark's CSV: ${output.slice(0, 200)}` };
  return {
    available: true,
    note: 'redis-benchmark, the sequence claim (SET NX GET EX), a new key per call',
    command: commandLine(argv),
    clients: options.clients,
    requests: options.requests,
    callsPerSec: parsed.rps,
    latencyMs: { avg: parsed.avg, p50: parsed.p50, p95: parsed.p95, p99: parsed.p99, max: parsed.max },
    redisCpuUsPerCall: f.cpuUsPer,
    aofBytesPerCall: f.aofBytesPer,
    memoryBytesPerCall: f.memoryBytesPer,
  };
}

/** The floor: MINIMAL_DEBIT_LUA on one account, a new request key per call. */
async function runFloor(redis: Redis, url: URL, options: RedisBenchmarkOptions, round = 0): Promise<RedisBenchmarkResult> {
  const account = `${options.keyPrefix}-floor${round}:acct`;
  await redis.hset(account, 'bal', 1_000_000_000_000);
  const command = await loadFloorFunction(
    redis,
    account,
    `${options.keyPrefix}-floor${round}:req:__rand_int__`,
    AMOUNT_FEN,
    REQUEST_TTL_SEC,
  );
  const balance = async (): Promise<number> => Number(await redis.hget(account, 'bal'));
  const before = await balance();
  const {
    argv,
    output,
    footprint: f,
  } = await drive(redis, url, options.clients, options.requests, command).finally(() =>
    redis.call('FUNCTION', 'DELETE', FLOOR_FUNCTION).catch(() => undefined),
  );
  const parsed = parseRedisBenchmarkCsv(output);
  if (parsed === undefined) return { available: true, note: `could not read redis-benchmark's CSV: ${output.slice(0, 200)}` };
  const approvals = Math.round((before - (await balance())) / AMOUNT_FEN);
  return {
    available: true,
    note: 'redis-benchmark, FCALL of the minimal idempotent debit script (GET request key, HGET, HINCRBY, SET EX), one account',
    command: commandLine(argv),
    clients: options.clients,
    requests: options.requests,
    callsPerSec: parsed.rps,
    approvals,
    approvalsPerSec: Math.round(((parsed.rps * approvals) / options.requests) * 10) / 10,
    latencyMs: { avg: parsed.avg, p50: parsed.p50, p95: parsed.p95, p99: parsed.p99, max: parsed.max },
    redisCpuUsPerCall: f.cpuUsPer,
    aofBytesPerCall: f.aofBytesPer,
    memoryBytesPerCall: f.memoryBytesPer,
  };
}

function sum(...values: (number | null | undefined)[]): number | null {
  if (values.some((v) => v === null || v === undefined)) return null;
  return Math.round((values as number[]).reduce((a, b) => a + b, 0) * 10) / 10;
}

/** The rounds of one subject as one result: rates over the whole time, footprints per call over all calls. */
export function mergeRounds(rounds: readonly RedisBenchmarkResult[]): RedisBenchmarkResult {
  const first = rounds[0];
  if (first === undefined) throw new Error('no rounds to merge');
  if (rounds.length === 1) return first;
  const failed = rounds.find((r) => r.callsPerSec === undefined || r.requests === undefined);
  if (failed !== undefined) return failed;
  const requests = rounds.reduce((a, r) => a + (r.requests ?? 0), 0);
  const seconds = rounds.reduce((a, r) => a + (r.requests ?? 0) / (r.callsPerSec ?? 1), 0);
  const callsPerSec = Math.round((requests / seconds) * 100) / 100;
  const approvals = rounds.every((r) => r.approvals !== undefined) ? rounds.reduce((a, r) => a + (r.approvals ?? 0), 0) : undefined;
  const perCall = (pick: (r: RedisBenchmarkResult) => number | null | undefined): number | null => {
    const values = rounds.map(pick);
    if (values.some((v) => v === null || v === undefined)) return null;
    // Every round makes `requests` calls: the mean per call is the total over all calls.
    return Math.round(((values as number[]).reduce((a, v) => a + v, 0) / values.length) * 10) / 10;
  };
  const latencies = rounds.map((r) => r.latencyMs).filter((l) => l !== undefined);
  const mid = (pick: (l: NonNullable<RedisBenchmarkResult['latencyMs']>) => number): number => median(latencies.map(pick)) ?? NaN;
  return {
    ...first,
    note: `${first.note}; ${rounds.length} rounds between the other subjects' (rates over the whole time, latencies the median round's)`,
    requests,
    callsPerSec,
    ...(approvals === undefined ? {} : { approvals, approvalsPerSec: Math.round(((callsPerSec * approvals) / requests) * 10) / 10 }),
    ...(latencies.length === rounds.length
      ? {
          latencyMs: {
            avg: mid((l) => l.avg),
            p50: mid((l) => l.p50),
            p95: mid((l) => l.p95),
            p99: mid((l) => l.p99),
            max: Math.max(...latencies.map((l) => l.max)),
          },
        }
      : {}),
    redisCpuUsPerCall: perCall((r) => r.redisCpuUsPerCall),
    aofBytesPerCall: perCall((r) => r.aofBytesPerCall),
    memoryBytesPerCall: perCall((r) => r.memoryBytesPerCall),
  };
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const half = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[half] as number) : ((sorted[half - 1] as number) + (sorted[half] as number)) / 2;
}

/** The project's per-payment Redis work from a claim run and a script run (see RedisWorkBaselines.project). */
function projectWork(claim: RedisBenchmarkResult, script: RedisBenchmarkResult): RedisWorkBaselines['project'] {
  if (script.claimInScript === true) {
    return {
      approvalsPerSec: script.approvalsPerSec ?? null,
      redisCpuUsPerApproval: script.redisCpuUsPerCall ?? null,
      aofBytesPerApproval: script.aofBytesPerCall ?? null,
      memoryBytesPerApproval: script.memoryBytesPerCall ?? null,
    };
  }
  return {
    approvalsPerSec:
      claim.callsPerSec !== undefined && script.approvalsPerSec !== undefined && claim.callsPerSec > 0 && script.approvalsPerSec > 0
        ? Math.round(1 / (1 / claim.callsPerSec + 1 / script.approvalsPerSec))
        : null,
    redisCpuUsPerApproval: sum(claim.redisCpuUsPerCall, script.redisCpuUsPerCall),
    aofBytesPerApproval: sum(claim.aofBytesPerCall, script.aofBytesPerCall),
    memoryBytesPerApproval: sum(claim.memoryBytesPerCall, script.memoryBytesPerCall),
  };
}

function cpuRatio(project: RedisWorkBaselines['project'], floor: RedisBenchmarkResult): number | null {
  const floorCpu = floor.redisCpuUsPerCall;
  if (project.redisCpuUsPerApproval === null || floorCpu === null || floorCpu === undefined || floorCpu === 0) return null;
  return Math.round((project.redisCpuUsPerApproval / floorCpu) * 1000) / 1000;
}

/**
 * The floor, the claim and the script, each driven by redis-benchmark in turn, `rounds` times, and the
 * project's sum. The ratio is the median of the rounds' (each compares runs seconds apart); the
 * subjects' figures are over all their rounds.
 */
export async function runRedisWorkBaselines(options: RedisBenchmarkOptions): Promise<RedisWorkBaselines | null> {
  if (!redisBenchmarkAvailable()) return null;
  const rounds = options.rounds ?? 3;
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`rounds must be a whole number >= 1, got ${rounds}`);
  const url = new URL(options.redisUrl);
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
  await redis.connect();
  // No AOF rewrite starts meanwhile (its fork would land in one run's CPU, and the AOF's size restarts):
  // each run's bytes per call are what it appended. Restored after.
  const rewrite = ((await redis.call('CONFIG', 'GET', 'auto-aof-rewrite-percentage')) as string[])[1] ?? '100';
  await redis.call('CONFIG', 'SET', 'auto-aof-rewrite-percentage', '0');
  try {
    // A rewrite the scenarios before started would take a core for its whole length: wait it out.
    await waitForAofRewrite(redis, TIMEOUT_MS);
    const floors: RedisBenchmarkResult[] = [];
    const claims: RedisBenchmarkResult[] = [];
    const scripts: RedisBenchmarkResult[] = [];
    const ratios: (number | null)[] = [];
    for (let round = 0; round < rounds; round++) {
      const floor = await runFloor(redis, url, options, round);
      const claim = await runClaim(redis, url, options, round);
      const script = await runRedisBenchmarkScript(options, round);
      floors.push(floor);
      claims.push(claim);
      scripts.push(script);
      // A round whose payments were not all approved (declines and replays cost Redis less) has no ratio.
      const allApproved = (r: RedisBenchmarkResult): boolean => (r.approvals ?? 0) >= Math.floor((r.requests ?? 0) * 0.99);
      const approved = allApproved(script) && allApproved(floor);
      ratios.push(approved ? cpuRatio(projectWork(claim, script), floor) : null);
    }
    const floor = mergeRounds(floors);
    const claim = mergeRounds(claims);
    const script = mergeRounds(scripts);
    const known = ratios.filter((r): r is number => r !== null);
    const middle = known.length === ratios.length ? median(known) : null;
    return {
      script,
      claim,
      floor,
      project: projectWork(claim, script),
      claimInScript: script.claimInScript === true,
      projectCpuVsFloor: middle === null ? null : Math.round(middle * 1000) / 1000,
      projectCpuVsFloorRounds: ratios,
    };
  } finally {
    await redis.call('CONFIG', 'SET', 'auto-aof-rewrite-percentage', rewrite).catch(() => undefined);
    redis.disconnect();
  }
}
