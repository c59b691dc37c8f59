// The ledger's Redis client in each of its three forms, chosen by configuration:
//   REDIS_URL=redis://host:port            one Redis (ioredis; the hot path also gets the lean pipeline client)
//   REDIS_CLUSTER_NODES=host:port,...      Redis Cluster (ioredis Cluster: MOVED / ASK / TRYAGAIN / CLUSTERDOWN
//                                          are its own business; no pipeline client, which knows no cluster)
//   REDIS_SENTINELS=host:port,... + REDIS_SENTINEL_MASTER=name
//                                          one master watched by Sentinels (ioredis asks them where the master
//                                          is and follows a failover by itself)
// Every form is typed `Redis` for the code above (app.ts, the ledger): the Cluster client has the same command
// methods; the few things that differ (SCAN and SCRIPT LOAD reach one node only, WAIT goes to the master of a
// key) go through masterNodes() and replica-wait.ts, which look at the real class.
import { Cluster, Redis, type Callback, type ClusterOptions, type RedisOptions } from 'ioredis';
import { describeLedgerRedis, type Config } from '../config.js';

export type LedgerRedisSettings = Pick<
  Config,
  'redisUrl' | 'redisClusterNodes' | 'redisSentinels' | 'redisSentinelMaster' | 'redisPassword' | 'redisCommandTimeoutMs'
>;

/**
 * The switch's fail-closed per-connection options: no offline queue and a bounded command time, so a dead
 * ledger gives UNAVAILABLE fast; reconnecting for ever, at most 2 s apart.
 */
export function failClosedOptions(commandTimeoutMs: number): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 5000,
    retryStrategy: (attempt) => Math.min(50 * attempt, 2000),
  };
}

/** The least time a Sentinel is given to say where the master is (REDIS_COMMAND_TIMEOUT_MS when longer). */
const MIN_SENTINEL_QUESTION_MS = 1000;
/** Retry pause while the cluster is electing a new master or moving a slot (CLUSTERDOWN, TRYAGAIN, a lost node). */
const CLUSTER_RETRY_DELAY_MS = 100;
/** MOVED / ASK / TRYAGAIN redirections followed for one command before it fails (then UNAVAILABLE: unavailable.ts). */
const CLUSTER_MAX_REDIRECTIONS = 32;

export function isCluster(redis: Redis | Cluster): redis is Cluster {
  return redis instanceof Cluster;
}

/** The ledger form in use, for logs and the bench. */
export function ledgerForm(settings: LedgerRedisSettings): 'single' | 'cluster' | 'sentinel' {
  if (settings.redisClusterNodes.length > 0) return 'cluster';
  if (settings.redisSentinels.length > 0) return 'sentinel';
  return 'single';
}

/**
 * A client of the configured ledger. `options` are per-connection options (timeouts, offline queue,
 * auto-pipelining); the cluster and Sentinel forms add their own. Returned lazy (`lazyConnect`) when
 * options ask for it; call connect().
 */
export function ledgerClient(settings: LedgerRedisSettings, options: RedisOptions): Redis {
  const password = settings.redisPassword === '' ? undefined : settings.redisPassword;
  if (settings.redisClusterNodes.length > 0) {
    const { lazyConnect, enableOfflineQueue, enableAutoPipelining: _unused, ...nodeOptions } = options;
    const clusterOptions: ClusterOptions = {
      lazyConnect: lazyConnect ?? false,
      enableOfflineQueue: enableOfflineQueue ?? true,
      // Never auto-pipelined: ioredis follows MOVED / ASK / TRYAGAIN for a single command, but a pipeline
      // whose commands get different answers (some ASK, some not, mid-migration) hands the redirections to
      // the caller (test/cluster-flow's slot migration showed INTERNAL answers before this).
      enableAutoPipelining: false,
      // Writes and reads go to masters: a replica may lag behind the ledger.
      scaleReads: 'master',
      maxRedirections: CLUSTER_MAX_REDIRECTIONS,
      retryDelayOnMoved: 0,
      retryDelayOnTryAgain: CLUSTER_RETRY_DELAY_MS,
      retryDelayOnClusterDown: CLUSTER_RETRY_DELAY_MS,
      retryDelayOnFailover: CLUSTER_RETRY_DELAY_MS,
      slotsRefreshTimeout: Math.max(1000, settings.redisCommandTimeoutMs),
      // Periodic refresh: a failover the switch did not run into is learned within this.
      slotsRefreshInterval: 2000,
      clusterRetryStrategy: (attempt) => Math.min(100 * attempt, 2000),
      redisOptions: { ...nodeOptions, ...(password !== undefined ? { password } : {}) },
    };
    return new Cluster(
      settings.redisClusterNodes.map((n) => ({ host: n.host, port: n.port })),
      clusterOptions,
    ) as unknown as Redis;
  }
  if (settings.redisSentinels.length > 0) {
    // ioredis's default retryStrategy reconnects; the CLI's (() => null) does not.
    const retry = options.retryStrategy;
    const reconnects = retry === undefined || (typeof retry === 'function' && typeof retry(1) === 'number');
    // Until the first connection, one round of the Sentinels: a switch, archiver or CLI started against
    // Sentinels none of which answers fails with a message, as with one Redis at REDIS_URL, instead of
    // asking them again for ever without a word to its caller. After it, a client meant to reconnect asks
    // them for ever (a failover, the Sentinels restarted); the CLI never asks twice.
    const state: SentinelClientState = { reconnects, connectedOnce: false };
    return new SentinelLedgerClient(
      {
        ...options,
        sentinels: settings.redisSentinels.map((n) => ({ host: n.host, port: n.port })),
        name: settings.redisSentinelMaster,
        role: 'master',
        ...(password !== undefined ? { password } : {}),
        // A master that became a replica answers READONLY: reconnect, and ask the Sentinels again.
        reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
        sentinelRetryStrategy: (attempt) => (state.connectedOnce && state.reconnects ? Math.min(100 * attempt, 1000) : null),
        // A Sentinel whose process hangs with its port open (stopped, stuck writing its config) would hold the
        // question "where is the master?" for ever, and the client would never ask the next one
        // (test/sentinel-client). At least a second: a Sentinel on a loaded host may answer late, and one too
        // short a limit for all of them would be no master at all.
        sentinelCommandTimeout: Math.max(MIN_SENTINEL_QUESTION_MS, settings.redisCommandTimeoutMs),
        failoverDetector: true,
      },
      state,
    );
  }
  return new Redis(settings.redisUrl, { ...options, ...(password !== undefined ? { password } : {}) });
}

/**
 * ioredis's Sentinel client, kept connected. ioredis 5 ends a Sentinel client for good (status "end", every
 * command "Connection is closed.") when its failover watch (+switch-master) cancels a connection attempt
 * that is still asking a Sentinel where the master is: SentinelConnector.connect throws, and Redis.connect
 * gives up instead of retrying (test/sentinel-client makes it happen; it left one POS without answers for
 * a minute in a CI run of test/cluster-sentinel). For a client meant to reconnect (its retryStrategy gives a
 * delay; the CLI's gives none and stays ended), an end that quit() or disconnect() did not ask for is
 * reported as an error event and followed by a new connection, tried again at most 2 s apart.
 */
interface SentinelClientState {
  /** The caller wants the connection kept (its retryStrategy gives a delay). */
  readonly reconnects: boolean;
  /** Connected once: an end before that is a failed start, the caller's to report (connect() rejected). */
  connectedOnce: boolean;
}

class SentinelLedgerClient extends Redis {
  private closing = false;
  private endsInARow = 0;
  private revival: NodeJS.Timeout | undefined;

  constructor(
    options: RedisOptions,
    private readonly state: SentinelClientState,
  ) {
    super(options);
    this.on('ready', () => {
      this.state.connectedOnce = true;
      this.endsInARow = 0;
    });
    this.on('end', () => this.revive());
  }

  private revive(): void {
    if (!this.state.reconnects || !this.state.connectedOnce || this.closing || this.revival !== undefined) return;
    this.endsInARow += 1;
    const delayMs = Math.min(100 * this.endsInARow, 2000);
    this.silentEmit(
      'error',
      new Error(
        `the Sentinel client ended without being closed (a failover cancelled its connection attempt); connecting again in ${delayMs} ms`,
      ),
    );
    this.revival = setTimeout(() => {
      this.revival = undefined;
      if (!this.closing && this.status === 'end') this.connect().catch(() => undefined);
    }, delayMs);
  }

  private stopReviving(): void {
    this.closing = true;
    if (this.revival !== undefined) clearTimeout(this.revival);
    this.revival = undefined;
  }

  override connect(callback?: Callback<void>): Promise<void> {
    this.closing = false;
    return super.connect(callback);
  }

  override disconnect(reconnect = false): void {
    if (!reconnect) this.stopReviving();
    super.disconnect(reconnect);
  }

  override quit(callback?: Callback<'OK'>): Promise<'OK'> {
    this.stopReviving();
    return super.quit(callback);
  }
}

/**
 * The nodes that hold data: every master of a cluster (for SCAN, SCRIPT LOAD), or the one connection.
 * A cluster client must be connected (its slot table known).
 */
export function masterNodes(redis: Redis | Cluster): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

/**
 * Every key matching `pattern` on every master (a Cluster's SCAN would walk one random node). During a
 * slot migration a key may be seen on two nodes: callers dedupe.
 */
export async function* scanAllMasters(redis: Redis | Cluster, pattern: string, count: number): AsyncGenerator<string[]> {
  for (const node of masterNodes(redis)) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      if (batch.length > 0) yield batch;
    } while (cursor !== '0');
  }
}

/** For error messages: where the ledger is, without a password. */
export function describeLedger(settings: LedgerRedisSettings & Pick<Config, 'redisSentinelMaster'>): string {
  return describeLedgerRedis(settings);
}
