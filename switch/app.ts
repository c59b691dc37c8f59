// Wires the switch together: Redis, the Lua scripts, the ledger wrappers, the domain services, the gRPC
// server and the gateway. The one place that builds services: each is made once here and put in the
// SwitchContext (context.ts) or handed to the handlers that use it; nothing is built on first use.
import { Redis } from 'ioredis';
import { PosServiceService } from '../proto/gen/cardswitch/v1/pos.js';
import { withFastEncoders } from './grpc/fast-encode.js';
import type { Config } from './config.js';
import { NO_CHANNELS, type PaymentChannels } from './channels/index.js';
import { CardDirectory } from './domain/cards.js';
import { PosDomain } from './domain/pos.js';
import { ChannelFollowUp, ChannelPayments } from './domain/channel-payment.js';
import { StatementReader } from './domain/reports.js';
import { WaterDomain } from './domain/water.js';
import { TerminalRegistry } from './domain/terminals.js';
import { terminalAuthInterceptor } from './grpc/auth.js';
import { posService } from './grpc/pos-service.js';
import { AuthorizeStreams } from './grpc/authorize-stream.js';
import { startGrpcServer, type RunningGrpcServer } from './grpc/server.js';
import { Keys } from './ledger/keys.js';
import { Ledger } from './ledger/ledger.js';
import { MoneyLedger } from './ledger/money.js';
import { SequenceClaims } from './ledger/claims.js';
import { WaterLedger } from './ledger/water.js';
import { CampusQrCodec } from './qr/codec.js';
import { Scripts } from './ledger/scripts.js';
import { TerminalRecords } from './ledger/terminals.js';
import { CardDirectoryRecords } from './ledger/card-directory.js';
import { foldLegacyCardLimits } from './ledger/limits-fold.js';
import { checkShardCount } from './ledger/meta.js';
import { PipelineClient } from './redis/pipeline-client.js';
import { guardIoredis, LedgerBreaker } from './redis/breaker.js';
import { failClosedOptions, ledgerClient, ledgerForm } from './redis/cluster.js';
import { ReplicaWait } from './redis/replica-wait.js';
import { describeLedgerRedis } from './config.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import type { SwitchContext } from './context.js';
import { PasswordPool } from './workers/password-pool.js';
import { feeSettings, FeeProviderSimulator, type FeeProvider } from './fees/index.js';
import { recoverPendingFees } from './domain/fees.js';
import { settlePendingRechargeOrders } from './domain/recharge-orders.js';
import { adminService } from './grpc/admin-service.js';
import { kioskService } from './grpc/kiosk-service.js';
import { operatorAuthInterceptor } from './grpc/operator-auth.js';
import { AdminServiceService } from '../proto/gen/cardswitch/v1/admin.js';
import { KioskServiceService } from '../proto/gen/cardswitch/v1/kiosk.js';
import { serveGateway, type RunningHolderGateway } from './gateway/serve.js';
import { openHistory, type RunningHistory } from './history/wiring.js';

const MAX_CACHED_SERIALS = 500_000;
/** Ledger commands waiting for Redis at once; beyond this the switch answers UNAVAILABLE instead of queueing. */
const MAX_PENDING_LEDGER_COMMANDS = 20_000;
/** While the ledger is down: a probe PING at most this often, and how long a call waits for it before UNAVAILABLE. */
const LEDGER_PROBE_INTERVAL_MS = 100;
const LEDGER_HOLD_MS = 50;

export interface SwitchApp {
  /** 0 when the gRPC server was not started (the gateway on its own). */
  readonly grpcPort: number;
  /** The HTTP/WebSocket gateway; undefined when it was not started. */
  readonly gateway: RunningHolderGateway | undefined;
  readonly redis: Redis;
  readonly keys: Keys;
  readonly ledger: Ledger;
  readonly terminals: TerminalRegistry;
  readonly cards: CardDirectory;
  readonly context: SwitchContext;
  /** Graceful: stops taking calls, drains, then closes Redis. */
  stop(): Promise<void>;
}

/** One Redis at `url` with the fail-closed options (redis/cluster.ts): a dead ledger gives UNAVAILABLE fast. */
export function connectRedis(url: string, commandTimeoutMs: number): Redis {
  return new Redis(url, failClosedOptions(commandTimeoutMs));
}

/**
 * Finishes fee requests whose money was taken but whose provider call never settled (crash, silence):
 * once at start-up (what a crash of this or another instance left behind need not wait a whole
 * interval), then every interval. Each sweep takes only requests older than the interval.
 */
function startFeeRecovery(ctx: SwitchContext): () => Promise<void> {
  let running: Promise<void> | undefined;
  const sweep = (): void => {
    if (running !== undefined) return;
    running = recoverPendingFees(ctx, { olderThanMs: ctx.config.feeRecoveryIntervalMs, maxPerShard: 100 })
      .then((report) => ctx.log.debug({ report }, 'fee recovery sweep'))
      .catch((err: unknown) => ctx.log.error({ err }, 'fee recovery sweep failed'))
      .finally(() => (running = undefined));
  };
  const timer = setInterval(sweep, ctx.config.feeRecoveryIntervalMs);
  timer.unref();
  sweep();
  // Stopping waits for a sweep under way, so it never runs into the closed Redis connection.
  return async () => {
    clearInterval(timer);
    await running;
  };
}

/**
 * Settles recharge orders whose notification never came: every RECHARGE_SETTLE_INTERVAL_MS it queries
 * the channel about each pending order older than RECHARGE_QUERY_DELAY_MS (the pending index is in
 * Redis, so a restart picks up where the last process stopped). Off when no channel is configured.
 */
function startRechargeSettlement(ctx: SwitchContext): () => Promise<void> {
  if (ctx.channels.size === 0) return () => Promise.resolve();
  let running: Promise<void> | undefined;
  const sweep = (): void => {
    if (running !== undefined) return;
    running = settlePendingRechargeOrders(ctx, { olderThanMs: ctx.config.rechargeQueryDelayMs, maxPerShard: 100 })
      .then((report) => ctx.log.debug({ report }, 'recharge settlement sweep'))
      .catch((err: unknown) => ctx.log.error({ err }, 'recharge settlement sweep failed'))
      .finally(() => (running = undefined));
  };
  const timer = setInterval(sweep, ctx.config.rechargeSettleIntervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}

/** Domain services the handlers are handed (each holds the context; one of each per switch). */
interface HandlerServices {
  readonly pos: PosDomain;
  readonly water: WaterDomain;
  readonly statements: StatementReader;
}

/** The gRPC server with the three services, terminal and operator authentication. */
function serveGrpc(context: SwitchContext, { pos, water, statements }: HandlerServices): Promise<RunningGrpcServer> {
  const { config, log } = context;
  const streams = new AuthorizeStreams(pos, { maxPaymentFen: config.maxPaymentFen, metrics: context.metrics }, context.terminals, log);
  return startGrpcServer({
    host: config.grpcHost,
    port: config.grpcPort,
    tls: config.grpcTls,
    shutdownGraceMs: config.shutdownGraceMs,
    interceptors: [terminalAuthInterceptor(context.terminals, log), operatorAuthInterceptor(config.operatorTokens, log)],
    services: [
      {
        name: 'cardswitch.v1.PosService',
        definition: withFastEncoders(PosServiceService),
        implementation: posService(context, { pos, water, streams }),
      },
      { name: 'cardswitch.v1.KioskService', definition: KioskServiceService, implementation: kioskService(context, statements) },
      { name: 'cardswitch.v1.AdminService', definition: AdminServiceService, implementation: adminService(context, statements) },
    ],
    log,
    onShutdown: [() => streams.drain()],
  });
}

/** No campus fee system is reachable from here: the simulator stands in, and says so in the log. */
function simulatedFeeProvider(log: Logger): FeeProvider {
  // Loud on purpose: a simulator takes real balances and delivers to nobody.
  log.warn('utility fees go to the built-in provider simulator (development only); pass a real adapter as StartOptions.feeProvider');
  return new FeeProviderSimulator();
}

async function connectLedgerRedis(config: Config, log: Logger, metrics: Metrics): Promise<Redis> {
  // One Redis, a Redis Cluster or a Sentinel-watched master (redis/cluster.ts); the same fail-closed options.
  const redis =
    ledgerForm(config) === 'single'
      ? connectRedis(config.redisUrl, config.redisCommandTimeoutMs)
      : ledgerClient(config, failClosedOptions(config.redisCommandTimeoutMs));
  redis.on('error', (err: Error) => {
    metrics.redisError('ioredis');
    log.warn({ err: err.message }, 'redis connection problem');
  });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${describeLedgerRedis(config)}: ${(err as Error).message}`);
  }
  return redis;
}

export interface StartOptions {
  /** Serve gRPC (PosService, KioskService, AdminService); default true. */
  readonly grpc?: boolean;
  /** Serve the HTTP/WebSocket gateway; default true. */
  readonly gateway?: boolean;
  /**
   * Where utility fees are delivered (called with FEE_PROVIDER_TIMEOUT_MS). Default: the built-in
   * simulator, with a warning in the log (no campus adapter exists yet); tests pass their own.
   */
  readonly feeProvider?: FeeProvider;
  /**
   * The third-party payment channels, built by the caller: main.ts from ALIPAY_* / WECHATPAY_*
   * (channels/index.ts channelsFromEnvironment), npm start and tests against the loopback simulators
   * (startChannelSimulators). Default: none. The caller closes what it built.
   */
  readonly channels?: PaymentChannels;
}

/** V8's allocation-site pretenuring off (see SWITCH_NODE_FLAGS). */
export const NO_PRETENURING_FLAG = '--no-allocation-site-pretenuring';
/** The old generation may grow by half its live size between mark-compacts, not V8's default 2-4x. */
export const HEAP_GROWING_FLAG = '--heap-growing-percent=50';

/**
 * The Node flags the switch is started with: package.json start, deploy/systemd, the README's production
 * command and the bench's switch child (test/node-flags.test.ts holds them to this list). Both are
 * command-line flags, given before V8 starts, not set from here: a V8 flag changed while the process runs
 * is not something V8 promises to take safely.
 *
 * - NO_PRETENURING_FLAG: under load V8 learned, early in a run, to allocate some per-call object straight
 *   into the old generation; each such object, dead a few milliseconds later, still pointed at the call's
 *   younger objects, so scavenges kept and promoted whole calls: 6-9 KB per call, a mark-compact every
 *   2-4 s. Runs of tap closed that ended that way: 7 of 20 with pretenuring on (the HTTP/2 stream table
 *   already in), 0 of 10 with it off (loadtest/RESULTS.md, "Ninth session").
 * - HEAP_GROWING_FLAG: about 0.46 KB of each unary call still reaches the old generation (tenth session:
 *   cause not found). With V8's default growth the old generation gathered ~110 MB of it before each
 *   mark-compact, whose pause was then 220-300 ms with both cores busy (finalising the calls' HTTP/2
 *   header strings, sweeping), and the calls that arrived meanwhile, all in flight at once, were promoted
 *   in turn: the open model's p99 was 313-922 ms in 4 of 4 runs. Growing by half, a mark-compact comes
 *   every 1.5-2.5 s and pauses 26-50 ms (loadtest/RESULTS.md, "Tenth session").
 */
export const SWITCH_NODE_FLAGS: readonly string[] = [NO_PRETENURING_FLAG, HEAP_GROWING_FLAG];
let nodeFlagsChecked = false;

/** Says once whether this process was started with SWITCH_NODE_FLAGS, and which ones to add when not. */
function checkNodeFlags(log: Logger): void {
  if (nodeFlagsChecked) return;
  nodeFlagsChecked = true;
  const missing = SWITCH_NODE_FLAGS.filter((flag) => !process.execArgv.includes(flag));
  if (missing.length === 0)
    log.info({ nodeFlags: SWITCH_NODE_FLAGS }, "V8's garbage collector is set for the switch (loadtest/RESULTS.md)");
  else
    log.warn(
      { missing },
      `start node with ${missing.join(' ')}: without them the switch's old generation fills with per-call garbage and its garbage collector pauses for hundreds of milliseconds under load (switch/app.ts SWITCH_NODE_FLAGS, loadtest/RESULTS.md)`,
    );
}

export async function startSwitch(
  config: Config,
  log: Logger,
  now: () => number = Date.now,
  options: StartOptions = {},
): Promise<SwitchApp> {
  checkNodeFlags(log);
  // Each switch has its own registry: tests start several in one process. Ledger calls that fail because
  // Redis did not answer are counted where they are answered (grpc/unary.ts, the stream, the gateway).
  const metrics = createMetrics();
  const redis = await connectLedgerRedis(config, log, metrics);
  // Both clients fail fast together while the ledger is known down (redis/breaker.ts).
  const breaker = new LedgerBreaker({
    probeIntervalMs: LEDGER_PROBE_INTERVAL_MS,
    holdMs: LEDGER_HOLD_MS,
    maxHeld: MAX_PENDING_LEDGER_COMMANDS,
    log,
  });
  guardIoredis(redis, breaker);
  let grpc: RunningGrpcServer | undefined;
  let gateway: RunningHolderGateway | undefined;
  let passwords: PasswordPool | undefined;
  let history: RunningHistory | undefined;
  // The lean hot-path client speaks to one Redis only: a cluster or a Sentinel-watched master runs the
  // scripts on the ioredis client, which follows MOVED / ASK and failovers.
  const fast =
    ledgerForm(config) !== 'single'
      ? undefined
      : PipelineClient.fromUrl(config.redisUrl, {
          commandTimeoutMs: config.redisCommandTimeoutMs,
          connectTimeoutMs: 5000,
          maxPending: MAX_PENDING_LEDGER_COMMANDS,
          log,
          breaker,
        });
  try {
    const keys = new Keys(config.keyPrefix, config.ledgerShards);
    await checkShardCount(redis, keys);
    await fast?.connect();
    const durable = config.ledgerDurability === 'replica' ? new ReplicaWait(redis, fast, config.ledgerWaitTimeoutMs) : undefined;
    const scripts = await Scripts.load(redis, fast, durable);
    const access = { keys, scripts };
    const ledger = new Ledger(keys, scripts, config.requestTtlSec, now);
    // The payment script carries the limits and lifetimes in its text: made and loaded now (a Redis
    // Function library), so a bad setting stops the start instead of the first payment. The libraries of
    // earlier settings go (another switch still running with them loads its own again when it must).
    const authorize = await ledger.prepareAuthorize(config.limits, { prune: true });
    log.info(
      { library: authorize.library, ...(authorize.pruned.length > 0 ? { deleted: authorize.pruned } : {}) },
      'the payment script (authorize.lua) is loaded as a Redis Function',
    );
    // Card limits kept as the three fields of older ledgers become the one field authorize.lua reads
    // (ledger/limits-fold.ts), before the first payment; once per ledger.
    const fold = await foldLegacyCardLimits(redis, keys, scripts);
    if (fold.ran && fold.folded.length > 0) {
      log.info(
        { accounts: fold.accounts, folded: fold.folded.length, cards: fold.folded.slice(0, 20) },
        'card limits folded into one field',
      );
    }
    const money = new MoneyLedger(keys, scripts, config.requestTtlSec, now);
    const claims = new SequenceClaims(access, config.requestTtlSec);
    const terminals = new TerminalRegistry(new TerminalRecords({ keys, scripts }), config.terminalPepper, config.terminalCacheMs);
    const cards = new CardDirectory(new CardDirectoryRecords({ keys, scripts }), MAX_CACHED_SERIALS);
    passwords = new PasswordPool({
      pepper: config.passwordPepper,
      maxThreads: config.passwordThreads,
      maxQueue: config.passwordQueueMax,
      idleTimeoutMs: config.passwordIdleMs,
    });
    const fees = feeSettings(options.feeProvider ?? simulatedFeeProvider(log), config.feeProviderTimeoutMs);
    const campusQr = new CampusQrCodec(config.campusQr.secret);
    // The journal archive and its archiver when DATABASE_URL is set (history/wiring.ts).
    history = await openHistory(config, { redis, keys, log, now });
    const context: SwitchContext = {
      config,
      log,
      channels: options.channels ?? NO_CHANNELS,
      keys,
      scripts,
      ledger,
      money,
      claims,
      terminals,
      cards,
      passwords,
      fees,
      campusQr,
      metrics,
      ...(history === undefined ? {} : { archive: history.store }),
      now,
    };
    metrics.setPasswordPoolSource(() => context.passwords.stats());
    // Payment codes: one ChannelPayments for the POS and the follow-up loop of undecided ones.
    const channelPayments = new ChannelPayments(context);
    const channelFollowUp = new ChannelFollowUp(context, channelPayments);
    const services: HandlerServices = {
      pos: new PosDomain(context, channelPayments),
      water: new WaterDomain(context, new WaterLedger(keys, scripts, config.requestTtlSec, now)),
      statements: new StatementReader(context),
    };
    const stopFeeRecovery = startFeeRecovery(context);
    channelFollowUp.start();
    const stopRechargeSettlement = startRechargeSettlement(context);
    if (options.grpc !== false) grpc = await serveGrpc(context, services);
    if (options.gateway !== false) gateway = await serveGateway(context, { redis, statements: services.statements });
    const [runningGrpc, runningGateway, pool, runningHistory] = [grpc, gateway, passwords, history];
    const stop = async (): Promise<void> => {
      await Promise.all([
        stopFeeRecovery(),
        stopRechargeSettlement(),
        channelFollowUp.stop(),
        runningGrpc?.shutdown(),
        runningGateway?.shutdown(),
      ]);
      await runningHistory?.stop();
      await pool.close();
      breaker.stop();
      fast?.close();
      await redis.quit().catch(() => redis.disconnect());
    };
    return { grpcPort: runningGrpc?.port ?? 0, gateway: runningGateway, redis, keys, ledger, terminals, cards, context, stop };
  } catch (err) {
    await gateway?.shutdown();
    await grpc?.shutdown();
    await passwords?.close();
    await history?.stop();
    breaker.stop();
    fast?.close();
    redis.disconnect();
    throw err;
  }
}
