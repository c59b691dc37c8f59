// Baseline: what Redis itself does with the payment script, measured by redis-benchmark (C, Redis's own
// load generator) rather than by a Node client: EVALSHA authorize.lua with the switch's own KEYS and
// ARGV (Ledger.authorizeArguments), every call a new request key (redis-benchmark's __rand_int__), all
// on one account with a balance that never runs out, in its own key prefix of the bench's Redis (AOF,
// appendfsync always). The Node baseline next to it (redis-baseline.ts) measures the script through
// ioredis; this one says how far Redis alone would go on this machine.
import { execFile, spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { Keys } from '../../switch/ledger/keys.js';
import { Ledger, type AuthorizeInput, type HolderLimits } from '../../switch/ledger/ledger.js';
import { Scripts } from '../../switch/ledger/scripts.js';

export interface RedisBenchmarkOptions {
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly shards: number;
  readonly clients: number;
  readonly requests: number;
  readonly limits: { readonly student: HolderLimits; readonly staff: HolderLimits };
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
}

const TIMEOUT_MS = 180_000;
/** Twelve digits, as long as redis-benchmark's `__rand_int__` placeholder, which replaces it. */
const PLACEHOLDER_SEQUENCE = 999_999_999_999;
const AMOUNT_FEN = 1250;
const CARD_NO = '91000001';
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

export async function runRedisBenchmarkScript(options: RedisBenchmarkOptions): Promise<RedisBenchmarkResult> {
  if (!redisBenchmarkAvailable()) {
    return { available: false, note: 'redis-benchmark not found: skipped (Debian/Ubuntu: apt-get install -y redis-tools)' };
  }
  const url = new URL(options.redisUrl);
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
  await redis.connect();
  try {
    const keys = new Keys(options.keyPrefix, options.shards);
    const scripts = await Scripts.load(redis);
    const ledger = new Ledger(keys, scripts, 3600);
    await ledger.openAccount({ cardNo: CARD_NO, openingFen: 1_000_000_000_000, fields: { ser: SERIAL, ht: 'S', name: '基准' } });
    const input: AuthorizeInput = {
      cardNo: CARD_NO,
      presentedSerial: SERIAL,
      amountFen: AMOUNT_FEN,
      credentialKind: 'card',
      terminalId: 'BENCH-RB',
      sequence: PLACEHOLDER_SEQUENCE,
      merchantId: 'BENCH',
      pinVerified: false,
      limits: options.limits,
    };
    const { keys: scriptKeys, args } = ledger.authorizeArguments(input, Date.now());
    const placeholder = String(PLACEHOLDER_SEQUENCE);
    const randomized = (value: string | number): string => String(value).replace(placeholder, '__rand_int__');
    const command = [
      'EVALSHA',
      scripts.shaOf('authorize'),
      String(scriptKeys.length),
      ...scriptKeys.map(randomized),
      ...args.map(randomized),
    ];
    if (!command.some((c, i) => i > 3 && c.includes('__rand_int__')))
      throw new Error('the request key does not carry the sequence number: redis-benchmark would replay one key');
    const balance = async (): Promise<number> => Number(await redis.hget(keys.account(CARD_NO), 'bal'));
    const before = await balance();
    const argv = [
      '-h',
      url.hostname,
      '-p',
      url.port,
      '-c',
      String(options.clients),
      '-n',
      String(options.requests),
      // __rand_int__ draws from 0..r-1 for every call: collisions (replays) are rare and counted below.
      '-r',
      '2000000000',
      '--csv',
      ...command,
    ];
    const output = await new Promise<string>((resolve, reject) =>
      execFile('redis-benchmark', argv, { timeout: TIMEOUT_MS, maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout),
      ),
    );
    const parsed = parseRedisBenchmarkCsv(output);
    if (parsed === undefined) return { available: true, note: `could not read redis-benchmark's CSV: ${output.slice(0, 200)}` };
    const approvals = Math.round((before - (await balance())) / AMOUNT_FEN);
    return {
      available: true,
      note: 'redis-benchmark, EVALSHA authorize.lua, one account, a new request key per call; approvals from the balance it moved',
      command: `redis-benchmark ${argv.map((a) => (/[\s|]/.test(a) ? `'${a}'` : a)).join(' ')}`,
      clients: options.clients,
      requests: options.requests,
      callsPerSec: parsed.rps,
      approvals,
      approvalsPerSec: Math.round(((parsed.rps * approvals) / options.requests) * 10) / 10,
      latencyMs: { avg: parsed.avg, p50: parsed.p50, p95: parsed.p95, p99: parsed.p99, max: parsed.max },
    };
  } finally {
    redis.disconnect();
  }
}
