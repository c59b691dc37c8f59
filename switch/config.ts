import { availableParallelism } from 'node:os';

// Configuration from environment variables, validated at start-up. Every problem is reported at
// once, each naming the variable, what it got and what it accepts. README "Configuration" lists them.

export interface Config {
  /** Empty: `npm start` runs its own redis-server under var/. */
  readonly redisUrl: string;
  readonly redisCommandTimeoutMs: number;
  readonly grpcHost: string;
  readonly grpcPort: number;
  readonly keyPrefix: string;
  readonly ledgerShards: number;
  readonly terminalPepper: string;
  readonly passwordPepper: string;
  readonly maxPaymentFen: number;
  readonly requestTtlSec: number;
  readonly terminalCacheMs: number;
  readonly shutdownGraceMs: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly passwordThreads: number;
  readonly passwordQueueMax: number;
  readonly passwordIdleMs: number;
  /** scrypt cost of passwords people set (and of rehashing imported ones after a successful check). */
  readonly passwordScryptN: number;
  /** Password-free limits and daily cap per holder type; a card's own values override them. */
  readonly limits: {
    readonly student: HolderLimits;
    readonly staff: HolderLimits;
  };
  readonly wechatMaxRechargeFen: number;
  readonly alipayMaxRechargeFen: number;
  readonly counterMaxRechargeFen: number;
  readonly dailyRechargeLimitFen: number;
  /** Each call to the utility-fee provider (pay, cancel) gets at most this long. */
  readonly feeProviderTimeoutMs: number;
  /** How often fee requests left pending (crash, provider silent) are finished in the background. */
  readonly feeRecoveryIntervalMs: number;
  /** operator name -> token, from OPERATOR_TOKENS="alice:token1,bob:token2". */
  readonly operatorTokens: ReadonlyMap<string, string>;
}

export interface HolderLimits {
  readonly noPinPerPaymentFen: number;
  readonly noPinPerDayFen: number;
  readonly dailySpendLimitFen: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  string(name: string, fallback: string, check?: (v: string) => string | undefined): string {
    const value = this.env[name] ?? fallback;
    const problem = check?.(value);
    if (problem !== undefined) this.problems.push(`${name}=${JSON.stringify(value)}: ${problem}`);
    return value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^-?\d+$/.test(raw.trim())) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: must be a whole number between ${min} and ${max}`);
      return fallback;
    }
    const value = Number(raw.trim());
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      this.problems.push(`${name}=${raw}: must be between ${min} and ${max}`);
      return fallback;
    }
    return value;
  }

  choice<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: must be one of ${allowed.join(', ')}`);
      return fallback;
    }
    return raw as T;
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const MIN_PEPPER_LENGTH = 16;

function checkRedisUrl(v: string): string | undefined {
  if (v === '') return undefined;
  return /^rediss?:\/\/[^\s]+$/.test(v) ? undefined : 'must look like redis://host:port or rediss://host:port';
}

function checkPepper(v: string): string | undefined {
  return v.length >= MIN_PEPPER_LENGTH ? undefined : `must be at least ${MIN_PEPPER_LENGTH} characters of secret random text`;
}

export function loadConfig(env: Env = process.env): Config {
  const r = new Reader(env);
  const config: Config = {
    redisUrl: r.string('REDIS_URL', '', checkRedisUrl),
    redisCommandTimeoutMs: r.integer('REDIS_COMMAND_TIMEOUT_MS', 2000, 50, 60_000),
    grpcHost: r.string('GRPC_HOST', '0.0.0.0', (v) => (/^[A-Za-z0-9.:[\]-]+$/.test(v) ? undefined : 'must be a host name or IP address')),
    grpcPort: r.integer('GRPC_PORT', 50051, 0, 65535),
    keyPrefix: r.string('KEY_PREFIX', 'cs', (v) => (/^[A-Za-z0-9_.-]{1,32}$/.test(v) ? undefined : 'must be 1-32 of A-Z a-z 0-9 _ . -')),
    ledgerShards: r.integer('LEDGER_SHARDS', 256, 1, 16384),
    terminalPepper: r.string('TERMINAL_SECRET_PEPPER', '', checkPepper),
    passwordPepper: r.string('PASSWORD_PEPPER', '', checkPepper),
    maxPaymentFen: r.integer('MAX_PAYMENT_FEN', 100_000, 1, 100_000_000),
    requestTtlSec: r.integer('REQUEST_TTL_DAYS', 7, 1, 366) * 86_400,
    terminalCacheMs: r.integer('TERMINAL_CACHE_MS', 1000, 0, 600_000),
    shutdownGraceMs: r.integer('SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    logLevel: r.choice('LOG_LEVEL', 'info', LOG_LEVELS),
    passwordThreads: r.integer('PASSWORD_THREADS', Math.max(1, availableParallelism()), 1, 64),
    passwordQueueMax: r.integer('PASSWORD_QUEUE_MAX', 1000, 1, 100_000),
    passwordIdleMs: r.integer('PASSWORD_IDLE_MS', 30_000, 0, 3_600_000),
    passwordScryptN: r.integer('PASSWORD_SCRYPT_N', 16384, 1024, 131072),
    limits: {
      student: {
        noPinPerPaymentFen: r.integer('STUDENT_NO_PIN_PER_PAYMENT_FEN', 5_000, 0, 100_000_000),
        noPinPerDayFen: r.integer('STUDENT_NO_PIN_PER_DAY_FEN', 20_000, 0, 100_000_000),
        dailySpendLimitFen: r.integer('STUDENT_DAILY_SPEND_LIMIT_FEN', 100_000, 0, 100_000_000),
      },
      staff: {
        noPinPerPaymentFen: r.integer('STAFF_NO_PIN_PER_PAYMENT_FEN', 10_000, 0, 100_000_000),
        noPinPerDayFen: r.integer('STAFF_NO_PIN_PER_DAY_FEN', 30_000, 0, 100_000_000),
        dailySpendLimitFen: r.integer('STAFF_DAILY_SPEND_LIMIT_FEN', 200_000, 0, 100_000_000),
      },
    },
    wechatMaxRechargeFen: r.integer('WECHAT_MAX_RECHARGE_FEN', 99_900, 1, 100_000_000),
    alipayMaxRechargeFen: r.integer('ALIPAY_MAX_RECHARGE_FEN', 99_900, 1, 100_000_000),
    counterMaxRechargeFen: r.integer('COUNTER_MAX_RECHARGE_FEN', 200_000, 1, 100_000_000),
    dailyRechargeLimitFen: r.integer('DAILY_RECHARGE_LIMIT_FEN', 300_000, 0, 100_000_000),
    feeProviderTimeoutMs: r.integer('FEE_PROVIDER_TIMEOUT_MS', 3000, 1, 30_000),
    feeRecoveryIntervalMs: r.integer('FEE_RECOVERY_INTERVAL_MS', 60_000, 1000, 3_600_000),
    operatorTokens: parseOperatorTokens(r, env['OPERATOR_TOKENS'] ?? ''),
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

function parseOperatorTokens(r: Reader, raw: string): ReadonlyMap<string, string> {
  const tokens = new Map<string, string>();
  if (raw.trim() === '') return tokens;
  for (const entry of raw.split(',')) {
    const match = /^\s*([A-Za-z0-9_.-]{1,32}):(\S{16,128})\s*$/.exec(entry);
    if (match === null) {
      r.problems.push('OPERATOR_TOKENS: each entry must be name:token (name 1-32 of A-Z a-z 0-9 _ . -, token 16-128 characters), separated by commas');
      return new Map();
    }
    tokens.set(match[1] ?? '', match[2] ?? '');
  }
  return tokens;
}
