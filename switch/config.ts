import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

// Configuration from environment variables, validated at start-up. Every problem is reported at
// once, each naming the variable, what it got and what it accepts. README "Configuration" lists them.

/** DATABASE_URL and the archiver's settings (docs/history.md). */
export interface HistoryConfig {
  /** Empty: no archive, unless `npm start` runs its own PostgreSQL under var/ (then it sets this). */
  readonly databaseUrl: string;
  /** HISTORY_ARCHIVE=off: the switch does not run the archiver itself (`npm run archiver` does). */
  readonly archive: boolean;
  /** Journal entries and statement lines younger than this stay in Redis (HISTORY_LIVE_WINDOW_DAYS). */
  readonly liveWindowMs: number;
  /** Entries per archive transaction. */
  readonly batchSize: number;
  /** How long the archiver rests when every shard is caught up. */
  readonly intervalMs: number;
  /** HISTORY_TRIM=off keeps everything in Redis (archived all the same). */
  readonly trim: boolean;
}

export interface Config {
  /** Empty: `npm start` runs its own redis-server under var/. */
  readonly redisUrl: string;
  readonly redisCommandTimeoutMs: number;
  /**
   * Redis Cluster seed nodes (REDIS_CLUSTER_NODES=host:port,host:port,...); empty: not a cluster. The
   * ioredis Cluster client then finds every master and replica itself (switch/redis/cluster.ts).
   */
  readonly redisClusterNodes: readonly RedisNode[];
  /** Sentinels (REDIS_SENTINELS=host:port,...) watching the ledger's master REDIS_SENTINEL_MASTER; empty: none. */
  readonly redisSentinels: readonly RedisNode[];
  readonly redisSentinelMaster: string;
  /** Password of the Redis nodes when REDIS_URL does not carry one (cluster and Sentinel forms). */
  readonly redisPassword: string;
  /**
   * LEDGER_DURABILITY: `replica` acknowledges a payment only after WAIT confirmed a replica has it
   * (redis/replica-wait.ts); `none` (default) acknowledges what the master answered.
   */
  readonly ledgerDurability: 'none' | 'replica';
  /** WAIT's timeout in the durable mode: past it the payment is answered UNAVAILABLE (the POS retries it). */
  readonly ledgerWaitTimeoutMs: number;
  readonly grpcHost: string;
  readonly grpcPort: number;
  /** TLS for gRPC (GRPC_TLS_*); undefined: plaintext (npm start and tests on loopback, or GRPC_PLAINTEXT=allow). */
  readonly grpcTls: GrpcTlsConfig | undefined;
  /** GRPC_PLAINTEXT=allow: the production entry point may serve gRPC without TLS (it refuses otherwise). */
  readonly grpcPlaintextAllowed: boolean;
  readonly keyPrefix: string;
  readonly ledgerShards: number;
  /** The journal archive (switch/history/, docs/history.md). */
  readonly history: HistoryConfig;
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
  /**
   * Wrong card passwords one terminal (POS, kiosk) may enter per clock hour, across all cards; beyond
   * it the terminal's password checks are refused until the next hour (guessing across many cards).
   */
  readonly terminalPasswordFailuresPerHour: number;
  /** Password-free limits and daily cap per holder type; a card's own values override them. */
  readonly limits: {
    readonly student: HolderLimits;
    readonly staff: HolderLimits;
  };
  readonly wechatMaxRechargeFen: number;
  readonly alipayMaxRechargeFen: number;
  readonly counterMaxRechargeFen: number;
  readonly dailyRechargeLimitFen: number;
  /** Recharge orders (domain/recharge-orders.ts): the channel closes an unpaid order this long after it is made. */
  readonly rechargeOrderExpirySec: number;
  /** A pending order is queried at the channel once it is this old (its notification may be lost). */
  readonly rechargeQueryDelayMs: number;
  /** How often the settlement loop looks for pending orders to query. */
  readonly rechargeSettleIntervalMs: number;
  /** Alipay 校园派: the school name a payer picks; a payment for another school is refunded. */
  readonly campusSchoolName: string;
  /** Each call to the utility-fee provider (pay, cancel) gets at most this long. */
  readonly feeProviderTimeoutMs: number;
  /** How often fee requests left pending (crash, provider silent) are finished in the background. */
  readonly feeRecoveryIntervalMs: number;
  /** Third-party payment codes at the POS (domain/channel-payment.ts): how the switch follows up an undecided one. */
  readonly channelPayment: ChannelPaymentConfig;
  /** operator name -> token, from OPERATOR_TOKENS="alice:token1,bob:token2". */
  readonly operatorTokens: ReadonlyMap<string, string>;
  /** The HTTP/WebSocket gateway for phones (and, later, payment channels). */
  readonly gateway: GatewayConfig;
  /** Cardholders' sessions on the e-card page (signed, expiring tokens). */
  readonly sessions: SessionConfig;
  /** The campus QR code: its key, lifetime and the clock skew tolerated between switch instances. */
  readonly campusQr: CampusQrConfig;
  /** Who the phone's user is: WeCom (企业微信) and the WeChat mini-program. */
  readonly identity: IdentityConfig;
}

export interface GrpcTlsConfig {
  /** PEM: the server certificate, then any intermediates (GRPC_TLS_CERT_FILE). */
  readonly certChain: Buffer;
  /** PEM: its private key, unencrypted (GRPC_TLS_KEY_FILE). */
  readonly privateKey: Buffer;
  /** PEM: the CA(s) whose client certificates are accepted (GRPC_TLS_CLIENT_CA_FILE); set: mTLS, a client without one is refused. */
  readonly clientCa: Buffer | undefined;
}

export interface GatewayConfig {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** A request body larger than this is refused with 413. */
  readonly maxBodyBytes: number;
  /** Bytes waiting to be sent to one WebSocket before the socket is dropped (a client that stopped reading). */
  readonly wsMaxBackpressureBytes: number;
  /** A WebSocket that sends and receives nothing for this long is closed (the page pings every 30 s). */
  readonly wsIdleTimeoutSec: number;
  /** Most WebSockets open at once; beyond it a new one is refused with 503. */
  readonly wsMaxSockets: number;
  /** Most WebSockets of one card on one gateway (a holder's tabs and devices); beyond it 429. */
  readonly wsMaxPerCard: number;
  /** Serve GET /bench/hello (the bench's baseline route); off in production. */
  readonly benchHello: boolean;
  /** GET /metrics needs `Authorization: Bearer <token>` when set; when empty, only loopback scrapers get it. */
  readonly metricsToken: string;
}

export interface SessionConfig {
  /** HMAC key of the session tokens (HS256), at least 32 characters. */
  readonly secret: string;
  /** Lifetime of an access token; the page refreshes it with its refresh token. */
  readonly accessTtlSec: number;
  /** Lifetime of a session (its refresh token); logout or unbinding ends it sooner. */
  readonly sessionTtlSec: number;
}

export interface CampusQrConfig {
  /** Secret the QR codes are sealed with (AES-256-GCM under a key derived from it), at least 32 characters. */
  readonly secret: string;
  /** How long a code is accepted after it was issued; at most 60 s (the PBOC barcode rules). */
  readonly validSec: number;
  /** How far an issuing switch's clock may run ahead of the accepting one's. */
  readonly clockSkewMs: number;
}

export interface IdentityConfig {
  /** WeCom (企业微信) OAuth: getuserinfo. Empty corp id: WeCom sign-in is off. */
  readonly wecom: { readonly apiBase: string; readonly corpId: string; readonly corpSecret: string };
  /** WeChat mini-program: jscode2session. Empty app id: WeChat sign-in is off. */
  readonly wechat: { readonly apiBase: string; readonly appId: string; readonly appSecret: string };
  /** Each call to an identity provider gets at most this long. */
  readonly timeoutMs: number;
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

  /** A URL that may carry a password (REDIS_URL, DATABASE_URL): its problems show it without user and password. */
  url(name: string, check: (v: string) => string | undefined): string {
    const value = this.env[name] ?? '';
    const problem = check(value);
    if (problem !== undefined) this.problems.push(`${name}=${JSON.stringify(withoutUrlCredentials(value))}: ${problem}`);
    return value;
  }

  /** A token checked for its shape only: its problems say how long it is, never what it is. */
  token(name: string, check: (v: string) => string | undefined): string {
    const value = this.env[name] ?? '';
    const problem = check(value);
    if (problem !== undefined) this.problems.push(`${name}: the value (${value.length} characters) ${problem}`);
    return value;
  }

  /**
   * A secret (pepper, signing key): its problems never repeat the value, which would put (a piece of) it in
   * the log, and each says how to make one.
   */
  secret(name: string, minLength: number): string {
    const value = this.env[name] ?? '';
    const generate = `generate one with: openssl rand -base64 32 (every instance of a campus shares it)`;
    if (PLACEHOLDER.test(value)) this.problems.push(`${name}: still the example's placeholder (change-me...); ${generate}`);
    else if (value.length < minLength)
      this.problems.push(
        `${name}: ${value === '' ? 'not set' : `${value.length} characters`}; must be at least ${minLength} characters of secret random text, ${generate}`,
      );
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

/**
 * A URL as a message may show it: whatever stands between `//` and its last `@` (user and password; a
 * password may hold an unencoded `/` or `@`, which URL parsers accept) becomes `***`, and so does the value
 * of a query parameter named like a password, secret or token (libpq and node-postgres take
 * `?password=` and `?sslpassword=`, ioredis every query option). The query goes first: a password there
 * may hold an `@`.
 */
export function withoutUrlCredentials(url: string): string {
  return url.replace(/([?&][^=&#]*(?:pass|secret|token)[^=&#]*=)[^&#]*/gi, '$1***').replace(/^([^/@]*\/\/)?.*@/s, '$1***@');
}

function checkRedisUrl(v: string): string | undefined {
  if (v === '') return undefined;
  if (!/^rediss?:\/\/[^\s]+$/.test(v)) return 'must look like redis://host:port or rediss://host:port';
  // The database, if any, is a number: redis://host:port/2 (the hot-path client and ioredis both SELECT it).
  const path = /^rediss?:\/\/[^/]*(\/.*)?$/.exec(v)?.[1] ?? '';
  // A / in the password ends the host part for URL parsers too; the "path" then holds the rest of the password.
  if (path.includes('@')) return 'a / in the user or password must be written %2F';
  // What the clients do with it (pipeline-client.ts, ioredis): parse it, then decode user and password.
  try {
    const parsed = new URL(v);
    decodeURIComponent(parsed.username);
    decodeURIComponent(parsed.password);
  } catch {
    // Without user and password, does the rest parse? If not, the host or port is what is wrong.
    if (!URL.canParse(v.replace(/^(rediss?:\/\/).*@/s, '$1')))
      return 'does not parse as a URL: check the host and the port (a number 1..65535), as in redis://host:6379';
    return 'does not parse as a URL: percent-encode a # ? % or / in the user or password (%23 %3F %25 %2F)';
  }
  return path === '' || path === '/' || /^\/\d{1,5}$/.test(path)
    ? undefined
    : `must look like redis://host:port or redis://user:password@host:port/N, with a database number N after the last /, not ${withoutUrlCredentials(path)}`;
}

function checkUrl(v: string): string | undefined {
  return /^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(v) ? undefined : 'must be an http:// or https:// URL';
}

const MIN_SIGNING_SECRET_LENGTH = 32;
/**
 * deploy/cardswitch.env.example's placeholders ("change-me-to-..."): long enough to pass the length checks,
 * so a copied example must be refused by name, or a campus would run on secrets printed in the repository.
 */
const PLACEHOLDER = /change-me/i;

export interface ChannelPaymentConfig {
  /** How often an undecided payment is queried at its channel (WeChat: every few seconds; Alipay: 3-5 s). */
  readonly pollIntervalMs: number;
  /** How long after it was sent an undecided WeChat payment is cancelled (reversed) instead of queried again. */
  readonly wechatBudgetMs: number;
  /** The same for Alipay. */
  readonly alipayBudgetMs: number;
  /** Each call to a channel (pay, query, cancel, refund) gets at most this long; then it counts as unknown. */
  readonly callTimeoutMs: number;
}

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/** `host:port,host:port` (REDIS_CLUSTER_NODES, REDIS_SENTINELS); a problem is reported under `name`. */
function readNodes(r: Reader, env: Env, name: string): RedisNode[] {
  const raw = (env[name] ?? '').trim();
  if (raw === '') return [];
  const nodes: RedisNode[] = [];
  for (const part of raw.split(',')) {
    const match = /^\s*([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})\s*$/.exec(part);
    const port = match === null ? NaN : Number(match[2]);
    if (match === null || !(port >= 1 && port <= 65535)) {
      // Shown without user and password: a URL put here by mistake may carry them.
      const shown = raw
        .split(',')
        .map((p) => withoutUrlCredentials(p.trim()))
        .join(',');
      r.problems.push(`${name}=${JSON.stringify(shown)}: must be host:port,host:port,... (got "${withoutUrlCredentials(part.trim())}")`);
      return [];
    }
    nodes.push({ host: (match[1] as string).replace(/^\[|\]$/g, ''), port });
  }
  return nodes;
}

/** True when some Redis is configured (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS); npm start runs its own otherwise. */
export function ledgerRedisConfigured(config: Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisSentinels'>): boolean {
  return config.redisUrl !== '' || config.redisClusterNodes.length > 0 || config.redisSentinels.length > 0;
}

/** Where the ledger is, for logs and messages (no password). */
export function describeLedgerRedis(
  config: Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisSentinels' | 'redisSentinelMaster'>,
): string {
  if (config.redisClusterNodes.length > 0)
    return `Redis Cluster via ${config.redisClusterNodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  if (config.redisSentinels.length > 0)
    return `Redis master "${config.redisSentinelMaster}" via Sentinels ${config.redisSentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
  return withoutUrlCredentials(config.redisUrl);
}

/** What the archiver process (switch/history/main.ts) needs of the switch's settings: the ledger and the archive. */
export type ArchiverConfig = Pick<
  Config,
  | 'redisUrl'
  | 'redisCommandTimeoutMs'
  | 'redisClusterNodes'
  | 'redisSentinels'
  | 'redisSentinelMaster'
  | 'redisPassword'
  | 'ledgerDurability'
  | 'ledgerWaitTimeoutMs'
  | 'keyPrefix'
  | 'ledgerShards'
  | 'history'
  | 'logLevel'
>;

/** The ledger's Redis, read the same way for the switch and the archiver. */
function readLedgerRedis(
  r: Reader,
  env: Env,
): Omit<ArchiverConfig, 'ledgerDurability' | 'ledgerWaitTimeoutMs' | 'keyPrefix' | 'ledgerShards' | 'history' | 'logLevel'> {
  return {
    redisUrl: r.url('REDIS_URL', checkRedisUrl),
    redisCommandTimeoutMs: r.integer('REDIS_COMMAND_TIMEOUT_MS', 2000, 50, 60_000),
    redisClusterNodes: readNodes(r, env, 'REDIS_CLUSTER_NODES'),
    redisSentinels: readNodes(r, env, 'REDIS_SENTINELS'),
    redisSentinelMaster: r.string('REDIS_SENTINEL_MASTER', 'cardswitch', (v) =>
      /^[A-Za-z0-9._-]{1,64}$/.test(v) ? undefined : 'must be 1-64 of A-Z a-z 0-9 . _ -',
    ),
    redisPassword: r.string('REDIS_PASSWORD', ''),
  };
}

function readKeyPrefix(r: Reader): string {
  return r.string('KEY_PREFIX', 'cs', (v) => (/^[A-Za-z0-9_.-]{1,32}$/.test(v) ? undefined : 'must be 1-32 of A-Z a-z 0-9 _ . -'));
}

function readHistory(r: Reader): HistoryConfig {
  return {
    databaseUrl: r.url('DATABASE_URL', (v) =>
      v === '' || /^postgres(ql)?:\/\//.test(v) ? undefined : 'must be a postgres:// URL, or empty',
    ),
    archive: r.choice('HISTORY_ARCHIVE', 'on', ['on', 'off']) === 'on',
    liveWindowMs: r.integer('HISTORY_LIVE_WINDOW_DAYS', 35, 1, 3660) * 86_400_000,
    batchSize: r.integer('HISTORY_ARCHIVE_BATCH', 1000, 1, 2000),
    intervalMs: r.integer('HISTORY_ARCHIVE_INTERVAL_MS', 1000, 10, 600_000),
    trim: r.choice('HISTORY_TRIM', 'on', ['on', 'off']) === 'on',
  };
}

/** More than one ledger named: a problem for `r`. */
function checkOneLedgerForm(r: Reader, config: Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisSentinels'>): void {
  const redisForms = [config.redisUrl !== '', config.redisClusterNodes.length > 0, config.redisSentinels.length > 0].filter(Boolean).length;
  if (redisForms > 1)
    r.problems.push('REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS: set one of them (they name three different ledgers)');
}

/** The durable mode: the switch answers, and the archiver archives, only what a replica holds. */
function readDurability(r: Reader): Pick<Config, 'ledgerDurability' | 'ledgerWaitTimeoutMs'> {
  return {
    ledgerDurability: r.choice('LEDGER_DURABILITY', 'none', ['none', 'replica']),
    ledgerWaitTimeoutMs: r.integer('LEDGER_WAIT_TIMEOUT_MS', 1000, 10, 60_000),
  };
}

/**
 * The archiver's settings: the ledger (and its durable mode), the key layout, the archive and the log level, and none of the
 * switch's secrets (the archiver moves journal entries, it never needs a pepper or a signing key).
 */
export function loadArchiverConfig(env: Env = process.env): ArchiverConfig {
  const r = new Reader(env);
  const config: ArchiverConfig = {
    ...readLedgerRedis(r, env),
    ...readDurability(r),
    keyPrefix: readKeyPrefix(r),
    ledgerShards: r.integer('LEDGER_SHARDS', 256, 1, 16384),
    history: readHistory(r),
    logLevel: r.choice('LOG_LEVEL', 'info', LOG_LEVELS),
  };
  checkOneLedgerForm(r, config);
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

export function loadConfig(env: Env = process.env): Config {
  const r = new Reader(env);
  const config: Config = {
    ...readLedgerRedis(r, env),
    ...readDurability(r),
    grpcHost: r.string('GRPC_HOST', '0.0.0.0', (v) => (/^[A-Za-z0-9.:[\]-]+$/.test(v) ? undefined : 'must be a host name or IP address')),
    grpcPort: r.integer('GRPC_PORT', 50051, 0, 65535),
    grpcTls: readGrpcTls(r, env, Date.now()),
    grpcPlaintextAllowed: r.choice('GRPC_PLAINTEXT', 'refuse', ['refuse', 'allow']) === 'allow',
    keyPrefix: readKeyPrefix(r),
    ledgerShards: r.integer('LEDGER_SHARDS', 256, 1, 16384),
    history: readHistory(r),
    terminalPepper: r.secret('TERMINAL_SECRET_PEPPER', MIN_PEPPER_LENGTH),
    passwordPepper: r.secret('PASSWORD_PEPPER', MIN_PEPPER_LENGTH),
    maxPaymentFen: r.integer('MAX_PAYMENT_FEN', 100_000, 1, 100_000_000),
    requestTtlSec: r.integer('REQUEST_TTL_DAYS', 7, 1, 366) * 86_400,
    terminalCacheMs: r.integer('TERMINAL_CACHE_MS', 1000, 0, 600_000),
    shutdownGraceMs: r.integer('SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    logLevel: r.choice('LOG_LEVEL', 'info', LOG_LEVELS),
    passwordThreads: r.integer('PASSWORD_THREADS', Math.max(1, availableParallelism()), 1, 64),
    passwordQueueMax: r.integer('PASSWORD_QUEUE_MAX', 1000, 1, 100_000),
    passwordIdleMs: r.integer('PASSWORD_IDLE_MS', 30_000, 0, 3_600_000),
    passwordScryptN: r.integer('PASSWORD_SCRYPT_N', 16384, 1024, 131072),
    terminalPasswordFailuresPerHour: r.integer('TERMINAL_PASSWORD_FAILURES_PER_HOUR', 20, 1, 10_000),
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
    rechargeOrderExpirySec: r.integer('RECHARGE_ORDER_EXPIRY_SEC', 900, 60, 86_400),
    rechargeQueryDelayMs: r.integer('RECHARGE_QUERY_DELAY_MS', 10_000, 0, 3_600_000),
    rechargeSettleIntervalMs: r.integer('RECHARGE_SETTLE_INTERVAL_MS', 5000, 50, 3_600_000),
    campusSchoolName: r.string('CAMPUS_SCHOOL_NAME', '北京信息科技大学', (v) =>
      v.trim() !== '' && v.length <= 64 ? undefined : 'must be 1-64 characters',
    ),
    feeProviderTimeoutMs: r.integer('FEE_PROVIDER_TIMEOUT_MS', 3000, 1, 30_000),
    feeRecoveryIntervalMs: r.integer('FEE_RECOVERY_INTERVAL_MS', 60_000, 1000, 3_600_000),
    channelPayment: {
      pollIntervalMs: r.integer('CHANNEL_POLL_INTERVAL_MS', 4000, 10, 60_000),
      wechatBudgetMs: r.integer('CHANNEL_WECHAT_BUDGET_MS', 45_000, 100, 600_000),
      alipayBudgetMs: r.integer('CHANNEL_ALIPAY_BUDGET_MS', 60_000, 100, 600_000),
      callTimeoutMs: r.integer('CHANNEL_CALL_TIMEOUT_MS', 10_000, 50, 60_000),
    },
    operatorTokens: parseOperatorTokens(r, env['OPERATOR_TOKENS'] ?? ''),
    gateway: {
      host: r.string('GATEWAY_HOST', env['GRPC_HOST'] ?? '0.0.0.0', (v) =>
        /^[A-Za-z0-9.:[\]-]+$/.test(v) ? undefined : 'must be a host name or IP address',
      ),
      port: r.integer('GATEWAY_PORT', 8080, 0, 65535),
      maxBodyBytes: r.integer('GATEWAY_MAX_BODY_BYTES', 16 * 1024, 256, 1024 * 1024),
      wsMaxBackpressureBytes: r.integer('GATEWAY_WS_MAX_BACKPRESSURE_BYTES', 64 * 1024, 1024, 16 * 1024 * 1024),
      wsIdleTimeoutSec: r.integer('GATEWAY_WS_IDLE_TIMEOUT_SEC', 120, 8, 3600),
      wsMaxSockets: r.integer('GATEWAY_WS_MAX_SOCKETS', 50_000, 1, 1_000_000),
      wsMaxPerCard: r.integer('GATEWAY_WS_MAX_PER_CARD', 32, 1, 1000),
      benchHello: r.choice('GATEWAY_BENCH_HELLO', 'false', ['true', 'false']) === 'true',
      metricsToken: r.token('GATEWAY_METRICS_TOKEN', (v) =>
        v === '' || /^\S{16,128}$/.test(v) ? undefined : 'must be 16-128 characters without spaces, or empty (loopback only)',
      ),
    },
    sessions: {
      secret: r.secret('SESSION_SECRET', MIN_SIGNING_SECRET_LENGTH),
      accessTtlSec: r.integer('SESSION_ACCESS_TTL_SEC', 900, 1, 86_400),
      sessionTtlSec: r.integer('SESSION_TTL_SEC', 7 * 86_400, 60, 90 * 86_400),
    },
    campusQr: {
      secret: r.secret('CAMPUS_QR_SECRET', MIN_SIGNING_SECRET_LENGTH),
      validSec: r.integer('CAMPUS_QR_VALID_SEC', 60, 5, 60),
      clockSkewMs: r.integer('CAMPUS_QR_CLOCK_SKEW_MS', 5000, 0, 30_000),
    },
    identity: {
      wecom: {
        apiBase: r.string('WECOM_API_BASE', 'https://qyapi.weixin.qq.com', checkUrl),
        corpId: r.string('WECOM_CORP_ID', ''),
        corpSecret: r.string('WECOM_CORP_SECRET', ''),
      },
      wechat: {
        apiBase: r.string('WECHAT_API_BASE', 'https://api.weixin.qq.com', checkUrl),
        appId: r.string('WECHAT_APP_ID', ''),
        appSecret: r.string('WECHAT_APP_SECRET', ''),
      },
      timeoutMs: r.integer('IDENTITY_TIMEOUT_MS', 3000, 100, 30_000),
    },
  };
  if (config.identity.wecom.corpId !== '' && config.identity.wecom.corpSecret === '')
    r.problems.push('WECOM_CORP_SECRET: required when WECOM_CORP_ID is set');
  if (config.identity.wechat.appId !== '' && config.identity.wechat.appSecret === '')
    r.problems.push('WECHAT_APP_SECRET: required when WECHAT_APP_ID is set');
  if (config.grpcTls !== undefined && config.grpcPlaintextAllowed) {
    r.problems.push('GRPC_PLAINTEXT=allow: remove it when GRPC_TLS_CERT_FILE is set (gRPC is served over TLS only)');
  }
  checkOneLedgerForm(r, config);
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** PEM files are small; a larger one is a wrong path (a log, a disk image), refused before it is read whole. */
const MAX_PEM_FILE_BYTES = 1024 * 1024;

/** The contents of a PEM file holding `label` blocks (e.g. CERTIFICATE), or a problem naming the variable. */
function readPem(r: Reader, name: string, path: string, label: RegExp, what: string): Buffer | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    r.problems.push(`${name}=${JSON.stringify(path)}: cannot read the file (${code}); it must name a readable PEM file with ${what}`);
    return undefined;
  }
  if (bytes.length > MAX_PEM_FILE_BYTES) {
    r.problems.push(
      `${name}=${JSON.stringify(path)}: ${bytes.length} bytes is not a PEM file (at most ${MAX_PEM_FILE_BYTES}); it must hold ${what}`,
    );
    return undefined;
  }
  if (!label.test(bytes.toString('latin1'))) {
    r.problems.push(`${name}=${JSON.stringify(path)}: no PEM block of ${what} in the file (it must contain "-----BEGIN ..." lines)`);
    return undefined;
  }
  return bytes;
}

function parsed<T>(r: Reader, name: string, path: string, parse: () => T): T | undefined {
  try {
    return parse();
  } catch (err) {
    r.problems.push(`${name}=${JSON.stringify(path)}: cannot be parsed (${(err as Error).message})`);
    return undefined;
  }
}

/**
 * GRPC_TLS_CERT_FILE + GRPC_TLS_KEY_FILE turn TLS on; GRPC_TLS_CLIENT_CA_FILE adds client certificates
 * (mTLS). Each file is read and checked here, so a wrong path, a key of another certificate or an expired
 * certificate stops the start with a message instead of failing every client's handshake later.
 */
function readGrpcTls(r: Reader, env: Env, nowMs: number): GrpcTlsConfig | undefined {
  const certFile = env['GRPC_TLS_CERT_FILE'] ?? '';
  const keyFile = env['GRPC_TLS_KEY_FILE'] ?? '';
  const caFile = env['GRPC_TLS_CLIENT_CA_FILE'] ?? '';
  if (certFile === '' || keyFile === '') {
    if (certFile !== '')
      r.problems.push('GRPC_TLS_KEY_FILE: required when GRPC_TLS_CERT_FILE is set (the private key of the server certificate)');
    if (keyFile !== '') r.problems.push('GRPC_TLS_CERT_FILE: required when GRPC_TLS_KEY_FILE is set (the server certificate)');
    if (caFile !== '')
      r.problems.push(
        'GRPC_TLS_CLIENT_CA_FILE: needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE (client certificates are checked only over TLS)',
      );
    return undefined;
  }
  const certChain = readPem(r, 'GRPC_TLS_CERT_FILE', certFile, /-----BEGIN CERTIFICATE-----/, 'the server certificate');
  const privateKey = readPem(r, 'GRPC_TLS_KEY_FILE', keyFile, /-----BEGIN (RSA |EC )?PRIVATE KEY-----/, 'an unencrypted private key');
  const clientCa =
    caFile === ''
      ? undefined
      : readPem(r, 'GRPC_TLS_CLIENT_CA_FILE', caFile, /-----BEGIN CERTIFICATE-----/, 'the CA certificate(s) of the terminals');
  if (certChain === undefined || privateKey === undefined || (caFile !== '' && clientCa === undefined)) return undefined;
  const cert = parsed(r, 'GRPC_TLS_CERT_FILE', certFile, () => new X509Certificate(certChain));
  const key: KeyObject | undefined = parsed(r, 'GRPC_TLS_KEY_FILE', keyFile, () => createPrivateKey(privateKey));
  if (clientCa !== undefined) parsed(r, 'GRPC_TLS_CLIENT_CA_FILE', caFile, () => new X509Certificate(clientCa));
  if (cert === undefined || key === undefined) return undefined;
  if (!cert.checkPrivateKey(key)) {
    r.problems.push(
      `GRPC_TLS_KEY_FILE=${JSON.stringify(keyFile)}: is not the private key of the certificate in GRPC_TLS_CERT_FILE=${JSON.stringify(certFile)}`,
    );
    return undefined;
  }
  if (Date.parse(cert.validTo) <= nowMs) {
    r.problems.push(`GRPC_TLS_CERT_FILE=${JSON.stringify(certFile)}: the certificate expired on ${cert.validTo}; renew it`);
    return undefined;
  }
  return { certChain, privateKey, clientCa };
}

function parseOperatorTokens(r: Reader, raw: string): ReadonlyMap<string, string> {
  const tokens = new Map<string, string>();
  if (raw.trim() === '') return tokens;
  for (const entry of raw.split(',')) {
    const match = /^\s*([A-Za-z0-9_.-]{1,32}):(\S{16,128})\s*$/.exec(entry);
    if (match === null) {
      return refuseOperatorTokens(
        r,
        'each entry must be name:token (name 1-32 of A-Z a-z 0-9 _ . -, token 16-128 characters), separated by commas',
      );
    }
    const name = match[1] ?? '';
    const token = match[2] ?? '';
    if (PLACEHOLDER.test(token))
      return refuseOperatorTokens(
        r,
        `operator ${name} still has the example's placeholder token; generate one with: openssl rand -base64 32`,
      );
    if (tokens.has(name)) return refuseOperatorTokens(r, `operator ${name} is named twice; give each operator one entry`);
    // Two operators with one token would both be recorded as the same one (findOperator keeps one match).
    const sharer = [...tokens].find(([, other]) => other === token)?.[0];
    if (sharer !== undefined) {
      return refuseOperatorTokens(r, `operators ${sharer} and ${name} have the same token; give each operator a token of their own`);
    }
    tokens.set(name, token);
  }
  return tokens;
}

/** Records the problem (naming operators, never a token) and configures no operator at all. */
function refuseOperatorTokens(r: Reader, problem: string): ReadonlyMap<string, string> {
  r.problems.push(`OPERATOR_TOKENS: ${problem}`);
  return new Map();
}
