// `npm run bench -- [options]` (see options.ts for the list, loadtest/README.md for the result file).
// One run: a private redis-server with AOF appendfsync always, a demo campus loaded straight into the
// ledger (the last --bound-cards cards bound to e-card users), the switch in a child process, the
// scenarios (the POS's, and the gateway's: the card summary against /bench/hello, idle WebSockets), the
// baselines (a no-op grpc-js server, the authorize script alone, h2load on Inquire), then the ledger
// check: every approval exactly once in the journals, each QR approval one code's single-use mark, each
// Alipay / WeChat code payment one `cpay` entry (the channel simulators run in this process, channels.ts),
// and the audit.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { startSwitch } from '../../switch/app.js';
import { loadConfig, type Config } from '../../switch/config.js';
import { DEFAULT_DEMO_CARDHOLDERS, DEFAULT_DEMO_SEED } from '../../switch/data/demo.js';
import { Sessions } from '../../switch/domain/sessions.js';
import { TerminalRegistry } from '../../switch/domain/terminals.js';
import { announceSessionEnded } from '../../switch/ledger/events.js';
import { Keys } from '../../switch/ledger/keys.js';
import { Ledger } from '../../switch/ledger/ledger.js';
import { Scripts } from '../../switch/ledger/scripts.js';
import { SessionStore } from '../../switch/ledger/sessions.js';
import { TerminalRecords } from '../../switch/ledger/terminals.js';
import { WaterLedger } from '../../switch/ledger/water.js';
import { createLogger } from '../../switch/log.js';
import { CampusQrCodec } from '../../switch/qr/codec.js';
import { ledgerClient } from '../../switch/redis/cluster.js';
import {
  clusterReport,
  compareForms,
  CLUSTER_FORMS,
  optionsForForm,
  startBenchLedger,
  type BenchLedger,
  type BenchLedgerForm,
} from './cluster.js';
import type { CampusFile } from '../shared/campus-data.js';
import { constantProfile, lunchRushProfileForDuration } from '../shared/profile.js';
import {
  CAMPUS_QR_ONLY_MIX,
  INQUIRY_ONLY_MIX,
  MIX_KEYS,
  THIRD_PARTY_ONLY_MIX,
  LUNCH_RUSH_MIX,
  mixWithout,
  parseMix,
  TAP_ONLY_MIX,
  type TrafficMix,
} from '../shared/traffic.js';
import { BENCH_OPENING_FEN, demoCampus, loadCampus, toCampusFile } from './campus.js';
import { BenchChannels, cardBalancesFen, channelsFromSpec, type MintedThirdPartyCodes } from './channels.js';
import { bindCards, countUsedMarks, mintCampusQrCodes, mintSessions, splitCampus, type BoundCard, type MintedCodes } from './ecard.js';
import { exportEcardUsers } from './export-ecard.js';
import { runGatewayPair, type HttpScenarioResult } from './gateway.js';
import { closedProfile, runLoad, type LoadResult } from './generator.js';
import { runH2loadInquire } from './h2load.js';
import { checkLedger, type LedgerCheck, type ThirdPartyInput } from './ledger-check.js';
import {
  capacityScenarioOf,
  MAX_QR_DURATION_MS,
  parseOptions,
  USAGE,
  usesChannels,
  type BenchOptions,
  type ScenarioPlan,
} from './options.js';
import { isImplemented } from './probe.js';
import {
  CpuMeter,
  cpuUsPer,
  DiskMeter,
  MachineCpuMeter,
  quiesce,
  startServerChild,
  type DiskReport,
  type GcReport,
  type MachineCpuReport,
  type MemoryReport,
} from './processes.js';
import { runRedisBaseline } from './redis-baseline.js';
import { runGrpcJsStream } from './stream-crosscheck.js';
import { redisBenchmarkAvailable, runRedisBenchmarkScript, runRedisWorkBaselines } from './redis-benchmark.js';
import { startLocalRedis } from '../../switch/redis/local-redis.js';
import { commandStats, scenarioStats, waitForAofRewrite } from './redis-stats.js';
import {
  humanReport,
  liveEventCostOf,
  thirdPartyCostOf,
  pairedComparison,
  pairedSlice,
  ratiosOf,
  RESULT_SCHEMA,
  targetsOf,
  type BenchResult,
  type CampusQrRun,
  type InstantCodesRun,
  type PairedRuns,
  type PairedSlice,
  type ScenarioResult,
  type ThirdPartyRun,
} from './report.js';
import { runWebSockets, type WebSocketsResult } from './websockets.js';
import { historyBaseline, historyReport, runHistoryBench, type HistoryBenchResult } from './history.js';

const HOST = '127.0.0.1';
const KEY_PREFIX = 'bench';
const REDIS_BASELINE_PREFIX = 'benchredis';
/** Sequence numbers of scenario i start at (i + 1) * 2^36: no two scenarios of a run share a key. */
const SEQUENCE_BLOCK = 2 ** 36;
/** Sequence block of the warm-up run (scenarios use 1, 2, ...; the h2load cross-check the next one). */
const WARM_UP_INDEX = 100;
/** At most this long between scenarios for the switch and Redis to finish the previous one's work. */
const QUIESCE_MAX_MS = 30_000;
/** At most this long for an AOF rewrite to finish before a scenario (waitForAofRewrite throws past it). */
const AOF_REWRITE_WAIT_MAX_MS = 180_000;
/**
 * qr closed mints this many codes per second of the run: twice tap closed's approvals in the same run
 * (or this default without one). A generator that runs out stops and the run is marked as an error.
 */
const QR_CODES_PER_SEC_WITHOUT_TAP = 8000;
const MAX_QR_CODES = 500_000;
/** websockets: at most this long for the switch's RSS to settle before each memory figure. */
const WS_MEMORY_SETTLE_MAX_MS = 20_000;
/** websockets: sockets opened and closed before the measured round (at most a tenth of them). */
const WS_WARMUP_SOCKETS = 500;

/** The switch's configuration for the bench: production defaults, except limits that would decline a hot card. */
function switchEnv(options: BenchOptions, redisUrl: string): Record<string, string> {
  const pepper = randomBytes(18).toString('base64url');
  return {
    REDIS_URL: redisUrl,
    GRPC_HOST: HOST,
    GRPC_PORT: '0',
    KEY_PREFIX,
    LEDGER_SHARDS: String(options.shards),
    TERMINAL_SECRET_PEPPER: pepper,
    PASSWORD_PEPPER: `${pepper}-pw`,
    SESSION_SECRET: `${pepper}-session-secret-0123456789`,
    CAMPUS_QR_SECRET: `${pepper}-campus-qr-secret-0123456789`,
    LOG_LEVEL: 'warn',
    // The gateway on a free port, with the like-for-like baseline route /bench/hello.
    GATEWAY_HOST: HOST,
    GATEWAY_PORT: '0',
    GATEWAY_BENCH_HELLO: 'true',
    PASSWORD_SCRYPT_N: String(options.scryptN),
    // A hot card pays hundreds of meals a run: lift the per-day limits so taps approve, but keep the
    // per-payment password-free limit, so PIN payments still need the PIN.
    STUDENT_NO_PIN_PER_DAY_FEN: '100000000',
    STUDENT_DAILY_SPEND_LIMIT_FEN: '0',
    STAFF_NO_PIN_PER_DAY_FEN: '100000000',
    STAFF_DAILY_SPEND_LIMIT_FEN: '0',
  };
}

interface RunningTarget {
  readonly port: number;
  readonly gatewayPort: number | undefined;
  readonly pid: number;
  memory(): Promise<MemoryReport | undefined>;
  /** The switch child's garbage collections since the last call; undefined in-process (the generator's would count too). */
  gc(): Promise<GcReport | undefined>;
  stop(): Promise<void>;
}

/** The bench process's own memory (the in-process switch shares it with the generator; no GC is forced). */
function ownMemory(): Promise<MemoryReport> {
  const m = process.memoryUsage();
  return Promise.resolve({
    rssBytes: m.rss,
    heapTotalBytes: m.heapTotal,
    heapUsedBytes: m.heapUsed,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
    gcRan: false,
  });
}

async function startTarget(
  options: BenchOptions,
  env: Record<string, string>,
  config: Config,
  channels: BenchChannels | undefined,
): Promise<RunningTarget> {
  if (!options.switchInProcess) return startServerChild('switch-child', env);
  const log = createLogger(config.logLevel, 'bench-switch');
  const app = await startSwitch(config, log, Date.now, channels === undefined ? {} : { channels: channelsFromSpec(channels.spec(), log) });
  return {
    port: app.grpcPort,
    gatewayPort: app.gateway?.port,
    pid: process.pid,
    memory: ownMemory,
    gc: () => Promise.resolve(undefined),
    stop: () => app.stop(),
  };
}

function mixFor(plan: ScenarioPlan, options: BenchOptions, lacking: readonly (keyof TrafficMix)[]): TrafficMix {
  if (plan.scenario === 'tap' || plan.scenario === 'tap-stream' || plan.scenario === 'tap-bound') return TAP_ONLY_MIX;
  if (plan.scenario === 'qr') return CAMPUS_QR_ONLY_MIX;
  if (plan.scenario === 'inquiry') return INQUIRY_ONLY_MIX;
  if (plan.scenario === 'thirdparty') return THIRD_PARTY_ONLY_MIX;
  return mixWithout(parseMix(options.mix, LUNCH_RUSH_MIX), lacking);
}

/** What the e-card scenarios need: the bound cards and the switch's secrets' tools (set-up only). */
interface EcardContext {
  readonly boundCampus: CampusFile;
  readonly bound: readonly BoundCard[];
  readonly codec: CampusQrCodec;
  readonly sessions: Sessions;
  readonly keys: Keys;
}

interface ScenarioContext {
  readonly options: BenchOptions;
  /** The cards that are not bound (every card when no scenario needs bound ones). */
  readonly campus: CampusFile;
  readonly pids: Record<string, number>;
  /** The ledger's Redis, for INFO commandstats around each switch scenario. */
  readonly redis: Redis;
  readonly ecard: EcardContext | undefined;
  /** The channel simulators and their payers (thirdparty, tap+thirdparty, lunch-rush); undefined otherwise. */
  readonly channels: BenchChannels | undefined;
  /** Starts another switch child on the same ledger (the websockets scenario's own); undefined in-process. */
  readonly startSwitch: (() => Promise<RunningTarget>) | undefined;
}

/** Per scenario, beyond the plan: another campus (the bound cards), codes minted once the switch is quiet. */
interface ScenarioExtras {
  readonly campus?: CampusFile;
  readonly mintCodes?: () => MintedCodes;
  readonly mintThirdPartyCodes?: () => MintedThirdPartyCodes;
}

interface ScenarioRun {
  readonly result: ScenarioResult;
  readonly load: LoadResult;
}

async function runScenario(
  ctx: ScenarioContext,
  target: { readonly port: number; readonly name: string; readonly gc?: () => Promise<GcReport | undefined> },
  plan: ScenarioPlan,
  mix: TrafficMix,
  index: number,
  adjustments: string[],
  shape?: { readonly connections: number; readonly streams: number },
  extras: ScenarioExtras = {},
): Promise<ScenarioRun> {
  const o = ctx.options;
  const open = plan.mode === 'open' && plan.rate !== undefined;
  const rate = plan.rate ?? 1;
  const profile = !open
    ? closedProfile(o.durationMs)
    : plan.scenario === 'lunch-rush'
      ? lunchRushProfileForDuration(rate, o.durationMs)
      : constantProfile(rate, o.durationMs);
  const connections = shape?.connections ?? o.connections;
  const streams = shape?.streams ?? o.streams;
  const workers = Math.min(o.workers, connections);
  const warmupMs = Math.min(o.warmupMs, o.durationMs / 2);
  // Each scenario starts on a quiet switch and Redis, not in the tail of the one before, nor beside an
  // AOF rewrite the one before started (its child process is not among the pids quiesce watches).
  const rewriteWaitMs = await waitForAofRewrite(ctx.redis, AOF_REWRITE_WAIT_MAX_MS);
  if (rewriteWaitMs > 1000) adjustments.push(`waited ${rewriteWaitMs} ms for an AOF rewrite to finish before starting`);
  const settled = await quiesce(ctx.pids, QUIESCE_MAX_MS);
  if (!settled.quiet)
    adjustments.push(`the switch or Redis was still busy ${settled.waitedMs} ms after the previous scenario; started anyway`);
  // Codes are minted now, on a quiet switch, so they are seconds old when the run starts (accepted for 60 s).
  const codes = extras.mintCodes?.();
  const thirdPartyCodes = extras.mintThirdPartyCodes?.();
  const onSwitch = target.name === 'switch';
  const statsBefore = onSwitch ? await commandStats(ctx.redis) : undefined;
  await target.gc?.(); // counted from here
  const meter = new CpuMeter(ctx.pids);
  const diskMeter = new DiskMeter();
  const machineMeter = new MachineCpuMeter();
  meter.start();
  diskMeter.start();
  machineMeter.start();
  const campus = extras.campus ?? ctx.campus;
  const load = await runLoad({
    host: HOST,
    port: target.port,
    client: o.client,
    authorizeVia: plan.scenario === 'tap-stream' ? 'stream' : 'unary',
    campus,
    mix,
    mode: plan.mode,
    profile,
    warmupMs,
    workers,
    connections,
    streams,
    maxInFlight: o.maxInFlight,
    requestTimeoutMs: o.requestTimeoutMs,
    seed: index + 1,
    sequenceBase: (index + 1) * SEQUENCE_BLOCK,
    campusQrCodes: codes?.payloads,
    thirdPartyCodes: thirdPartyCodes?.codes,
  });
  const cpu = meter.stop();
  const disk = diskMeter.stop();
  const machineCpu = machineMeter.stop();
  const switchGc = (await target.gc?.()) ?? null;
  const redis = statsBefore === undefined ? null : scenarioStats(statsBefore, await commandStats(ctx.redis), load.approvals);
  const campusQr = codes === undefined ? null : await campusQrRun(ctx, codes, load);
  if (campusQr?.exhausted === true)
    adjustments.push(`the generator sent all ${campusQr.codesMinted} minted codes before the run's end and stopped: raise the budget`);
  const thirdParty = thirdPartyCodes === undefined ? null : thirdPartyRun(ctx, thirdPartyCodes, load, null);
  if (thirdParty?.exhausted === true)
    adjustments.push(`the generator sent all ${thirdParty.codesMinted} payment codes before the run's end and stopped: raise the budget`);
  const run = {
    workers,
    connections,
    streams,
    open,
    cpu,
    cpuSeconds: meter.elapsedSeconds,
    waiting: { ...meter.waiting },
    machineCpu,
    adjustments,
    warmupMs,
    cards: campus.cards.length,
    bound: extras.campus !== undefined,
    redis,
    switchGc,
    disk,
    campusQr,
    thirdParty,
  };
  return { result: toScenarioResult(plan, target.name, load, run), load };
}

function thirdPartyRun(
  ctx: ScenarioContext,
  codes: MintedThirdPartyCodes,
  load: LoadResult,
  stream: ThirdPartyRun['stream'],
): ThirdPartyRun {
  const pairs = (keys: readonly Float64Array[]): number => keys.reduce((sum, k) => sum + k.length / 2, 0);
  return {
    channelLatencyMs: ctx.options.channelLatencyMs,
    codesMinted: codes.codes.length,
    wechatCodes: codes.wechat,
    alipayCodes: codes.alipay,
    scriptedPending: codes.scriptedPending,
    mintMs: codes.mintMs,
    codesSent: load.thirdPartyCodesSent,
    exhausted: load.thirdPartyExhausted,
    approvals: pairs(load.thirdPartyApprovalKeys),
    pending: pairs(load.thirdPartyPendingKeys),
    stream,
  };
}

async function campusQrRun(ctx: ScenarioContext, codes: MintedCodes, load: LoadResult): Promise<CampusQrRun> {
  let approvals = 0;
  for (const keys of load.campusQrApprovalKeys) approvals += keys.length / 2;
  return {
    codesMinted: codes.payloads.length,
    mintMs: codes.mintMs,
    codesSent: load.campusQrCodesSent,
    exhausted: load.campusQrExhausted,
    approvals,
    usedMarks: await countUsedMarks(ctx.redis, codes.markKeys),
  };
}

interface RunShape {
  readonly workers: number;
  readonly connections: number;
  readonly streams: number;
  readonly open: boolean;
  readonly cpu: Record<string, number | null>;
  readonly adjustments: string[];
  readonly warmupMs: number;
  readonly cpuSeconds: number;
  /** Per process, threads waiting for a core on average (CpuMeter.waiting); absent where not measured. */
  readonly waiting?: Record<string, number | null>;
  /** The whole machine's CPU (MachineCpuMeter); absent where not measured. */
  readonly machineCpu?: MachineCpuReport | null;
  readonly cards: number;
  readonly bound: boolean;
  readonly redis: ScenarioResult['redis'];
  /** The switch child's garbage collections during the scenario; absent where no one asked. */
  readonly switchGc?: GcReport | null;
  /** The machine's disks during the scenario; absent where no one measured. */
  readonly disk?: DiskReport | null;
  readonly campusQr: CampusQrRun | null;
  readonly thirdParty: ThirdPartyRun | null;
}

function toScenarioResult(plan: ScenarioPlan, target: string, load: LoadResult, run: RunShape): ScenarioResult {
  return {
    name: plan.scenario,
    mode: plan.mode,
    target,
    profile: !run.open ? 'none' : plan.scenario === 'lunch-rush' ? 'lunch-rush' : 'constant',
    durationS: load.durationMs / 1000,
    warmupS: run.warmupMs / 1000,
    rate: run.open ? (plan.rate ?? null) : null,
    workers: run.workers,
    connections: run.connections,
    streams: run.open ? null : run.streams,
    offeredRate: load.offeredRate,
    achievedRate: load.achievedRate,
    approvalsPerSec: load.approvalsPerSec,
    latencyMs: load.latency,
    peak:
      load.peak === null
        ? null
        : {
            startS: load.peak.startS,
            endS: load.peak.endS,
            offeredRate: load.peak.offeredRate,
            achievedRate: load.peak.achievedRate,
            latencyMs: load.peak.latency,
          },
    latencyMsByKind: load.latencyByKind,
    timeline: load.timeline,
    outcomes: load.outcomes,
    outcomesByKind: load.outcomesByKind,
    requests: { sent: load.sent, completed: load.completed, notSent: load.notSent },
    errors:
      load.errors +
      (run.campusQr?.exhausted === true ? 1 : 0) +
      (run.thirdParty?.exhausted === true ? 1 : 0) +
      (run.thirdParty?.stream?.errors ?? 0),
    unexpected: load.unexpected,
    settlements: load.settlements,
    errorSamples: load.errorSamples,
    cpuCores: run.cpu,
    runQueueWait: run.waiting ?? null,
    machineCpu: run.machineCpu ?? null,
    sendLagMs: load.sendLagMs,
    generatorEventLoopUtilization: load.generatorEventLoopUtilization,
    mixAdjustments: run.adjustments,
    cards: run.cards,
    boundCards: run.bound,
    cpuUsPerAnswer: cpuUsPer(run.cpu, run.cpuSeconds, load.completed),
    cpuUsPerApproval: cpuUsPer(run.cpu, run.cpuSeconds, load.approvals),
    redis: run.redis,
    switchGc: run.switchGc ?? null,
    disk: run.disk ?? null,
    campusQr: run.campusQr,
    thirdParty: run.thirdParty,
  };
}

async function lackingRpcs(port: number, campus: CampusFile): Promise<{ lacking: (keyof TrafficMix)[]; notes: string[] }> {
  const lacking: (keyof TrafficMix)[] = [];
  const notes: string[] = [];
  const water = campus.terminals.find((t) => t.kind === 'water');
  const settle = campus.terminals.find((t) => t.kind === 'settlement');
  if (water !== undefined && !(await isImplemented(HOST, port, 'WaterDebit', water))) {
    lacking.push('water');
    notes.push('WaterDebit answers UNIMPLEMENTED on this switch: water debits left out of the mix');
  }
  if (settle !== undefined && !(await isImplemented(HOST, port, 'Settle', settle))) {
    lacking.push('settle');
    notes.push('Settle answers UNIMPLEMENTED on this switch: settlement swipes left out of the mix');
  }
  return { lacking, notes };
}

interface Approvals {
  readonly payments: Float64Array[];
  readonly waterDebits: Float64Array[];
  readonly campusQr: Float64Array[];
  readonly thirdParty: Float64Array[];
  readonly thirdPartyPending: Float64Array[];
  /** Single-use marks the qr scenarios' codes left (each counted right after its run). */
  campusQrMarks: number;
  /** Payments the generator gave up on and reversed (settlements.ts). */
  readonly settled: { reversed: Float64Array[]; tombstoned: Float64Array[]; campusQrReversed: Float64Array[] };
}

function collect(into: Approvals, load: LoadResult): void {
  into.payments.push(...load.approvalKeys);
  into.waterDebits.push(...load.waterApprovalKeys);
  into.campusQr.push(...load.campusQrApprovalKeys);
  into.thirdParty.push(...load.thirdPartyApprovalKeys);
  into.thirdPartyPending.push(...load.thirdPartyPendingKeys);
  into.settled.reversed.push(...load.reversedKeys);
  into.settled.tombstoned.push(...load.tombstonedKeys);
  into.settled.campusQrReversed.push(...load.campusQrReversedKeys);
}

function announce(what: string, options: BenchOptions): void {
  process.stdout.write(`running ${what} for ${options.durationMs / 1000} s ...\n`);
}

/**
 * A freshly started switch stalls for most of a second on its first load (JIT, the terminal and card
 * caches); this closed-loop tap run takes that hit before the first measured scenario. Its approvals are
 * in the ledger check like any other; its numbers are not reported.
 */
async function warmUp(ctx: ScenarioContext, port: number, approvals: Approvals): Promise<void> {
  const primeMs = ctx.options.quick ? 1000 : 3000;
  process.stdout.write(`warming the switch up for ${primeMs / 1000} s ...\n`);
  const plan: ScenarioPlan = { scenario: 'tap', mode: 'closed', rate: undefined };
  const options = { ...ctx.options, durationMs: primeMs, warmupMs: 0 };
  const run = await runScenario({ ...ctx, options }, { port, name: 'switch' }, plan, TAP_ONLY_MIX, WARM_UP_INDEX, []);
  collect(approvals, run.load);
}

interface SwitchRuns {
  readonly scenarios: ScenarioResult[];
  /** The plans as run: a `--rate auto` plan with its rate. */
  readonly plans: readonly ScenarioPlan[];
  readonly gateway: BenchResult['gateway'];
  readonly websockets: WebSocketsResult | null;
}

function needEcard(ctx: ScenarioContext, scenario: string): EcardContext {
  if (ctx.ecard === undefined || ctx.ecard.bound.length === 0)
    throw new Error(`the ${scenario} scenario needs bound cards (--bound-cards)`);
  return ctx.ecard;
}

/** The codes of one qr run: enough for twice tap closed's rate in this run (closed), or the arrivals (open). */
function qrMinter(ctx: ScenarioContext, plan: ScenarioPlan, done: readonly ScenarioResult[], index: number): () => MintedCodes {
  const e = needEcard(ctx, 'qr');
  const tapClosed = done.find((s) => s.name === 'tap' && s.mode === 'closed');
  const perSec =
    plan.mode === 'open' && plan.rate !== undefined
      ? plan.rate * 1.02
      : tapClosed === undefined
        ? QR_CODES_PER_SEC_WITHOUT_TAP
        : Math.max(1000, 2 * tapClosed.approvalsPerSec);
  const count = Math.min(MAX_QR_CODES, Math.ceil((perSec * ctx.options.durationMs) / 1000) + 100);
  return () => {
    process.stdout.write(`minting ${count} campus QR codes ...\n`);
    return mintCampusQrCodes(e.codec, e.keys, e.bound, count, index + 1);
  };
}

function needChannels(ctx: ScenarioContext): BenchChannels {
  if (ctx.channels === undefined) throw new Error('the channel simulators were not started (no scenario pays with payment codes)');
  return ctx.channels;
}

/**
 * The codes of one run that pays with payment codes: closed, each of --streams lanes pays at most once
 * per channel round trip (WeChat takes two calls, Alipay one: the latency is the floor of a payment);
 * open, the arrivals times the mix's share of code payments. Minted when the run starts (they live 60 s).
 */
function thirdPartyMinter(ctx: ScenarioContext, mode: 'open' | 'closed', openRate: number, share: number): () => MintedThirdPartyCodes {
  const channels = needChannels(ctx);
  const o = ctx.options;
  const perSec = mode === 'open' ? openRate * share * 1.05 : (o.streams * 1000) / Math.max(5, o.channelLatencyMs);
  const count = Math.ceil((perSec * o.durationMs) / 1000) + 100;
  return () => {
    process.stdout.write(`minting ${count} Alipay / WeChat payment codes ...\n`);
    return channels.mint(count, o.thirdPartyChannels);
  };
}

function shareOf(mix: TrafficMix, key: keyof TrafficMix): number {
  const total = MIX_KEYS.reduce((sum, k) => sum + mix[k], 0);
  return total === 0 ? 0 : mix[key] / total;
}

/** What runScenario needs beyond the plan for the scenarios that pay with payment codes. */
function thirdPartyExtras(ctx: ScenarioContext, plan: ScenarioPlan, mix: TrafficMix): ScenarioExtras {
  if (plan.scenario === 'thirdparty') return { mintThirdPartyCodes: thirdPartyMinter(ctx, plan.mode, plan.rate ?? 0, 1) };
  if (plan.scenario === 'lunch-rush' && mix.thirdParty > 0)
    return { mintThirdPartyCodes: thirdPartyMinter(ctx, plan.mode, plan.rate ?? 0, shareOf(mix, 'thirdParty')) };
  return {};
}

/**
 * tap+thirdparty: tap closed (as the tap scenario) while --thirdparty-rate code payments/s wait on the
 * channel beside it (open model, its own generator thread and connection). The record is tap's; the
 * code payments are its `thirdParty.stream`. Compared with tap closed of the same run. Whether the
 * waiting itself takes anything from the taps, whatever the code payments' own CPU costs, is measured
 * in four phases of half the duration each (after a warm-up phase of the same load, not counted), in the
 * order waiting, instant, instant, waiting (instant:
 * the same taps beside the same code payments answered at once, the simulators' latency 0): the same
 * work without the wait, and the order cancels what drifts through the run (the ledger growing, the AOF
 * rewrites coming further apart as it grows; the earlier order, waiting then instant, gave 0.86-0.99).
 * The record and `thirdParty.stream` are the first phase's; `stream.instant` sums the
 * instant phases and `stream.waiting` both waiting ones (thirdPartyCost; loadtest/README.md).
 */
async function runTapWithThirdParty(
  ctx: ScenarioContext,
  port: number,
  index: number,
): Promise<ScenarioRun & { stream: LoadResult; instant: LoadResult[] }> {
  const o = ctx.options;
  const adjustments: string[] = [];
  const settled = await quiesce(ctx.pids, QUIESCE_MAX_MS);
  if (!settled.quiet)
    adjustments.push(`the switch or Redis was still busy ${settled.waitedMs} ms after the previous scenario; started anyway`);
  const phaseMs = Math.max(1000, Math.round(o.durationMs / 2));
  const codes = thirdPartyMinter(ctx, 'open', o.thirdPartyRate, 1)();
  // Not counted: the same load first, so the code payments' path is warm (JIT, the channel's keep-alive
  // sockets) when the phases begin. Without it the first phase ran 20-38 % below the last.
  process.stdout.write(`warming up for ${phaseMs / 1000} s, not counted ...\n`);
  const warming = await tapsBesideCodes(ctx, port, index, thirdPartyMinter(ctx, 'open', o.thirdPartyRate, 1)().codes, 0, phaseMs);
  const statsBefore = await commandStats(ctx.redis);
  const waiting = await tapsBesideCodes(ctx, port, index, codes.codes, 1, phaseMs);
  const redis = scenarioStats(statsBefore, await commandStats(ctx.redis), waiting.taps.approvals + waiting.stream.approvals);
  const instantPhases = [
    await tapsBesideInstantCodes(ctx, port, index, 2, phaseMs),
    await tapsBesideInstantCodes(ctx, port, index, 3, phaseMs),
  ];
  process.stdout.write(`and once more for ${phaseMs / 1000} s with the code payments waiting ${o.channelLatencyMs} ms ...\n`);
  const waitingAgain = await tapsBesideCodes(ctx, port, index, thirdPartyMinter(ctx, 'open', o.thirdPartyRate, 1)().codes, 4, phaseMs);
  const instant = phasesSummary(instantPhases);
  const waitingBoth = phasesSummary([waiting, waitingAgain]);
  const stream = waiting.stream;
  const thirdParty = thirdPartyRun(ctx, codes, stream, {
    rate: o.thirdPartyRate,
    offeredRate: stream.offeredRate,
    achievedRate: stream.achievedRate,
    approvalsPerSec: stream.approvalsPerSec,
    latencyMs: stream.latency,
    outcomes: stream.outcomes,
    errors: stream.errors,
    unexpected: stream.unexpected,
    errorSamples: stream.errorSamples,
    instant,
    waiting: waitingBoth,
    warmUp: phasesSummary([warming]),
  });
  if (thirdParty.exhausted) adjustments.push(`the code payments used all ${thirdParty.codesMinted} codes before the run's end`);
  if (instant.exhausted) adjustments.push('the code payments answered at once used all their codes before the phase ended');
  if (waitingAgain.stream.thirdPartyExhausted) adjustments.push('the last waiting phase used all its codes before it ended');
  const plan: ScenarioPlan = { scenario: 'tap+thirdparty', mode: 'closed', rate: undefined };
  const run: RunShape = {
    workers: waiting.workers,
    connections: o.connections,
    streams: o.streams,
    open: false,
    cpu: waiting.cpu,
    cpuSeconds: waiting.seconds,
    adjustments,
    warmupMs: waiting.warmupMs,
    cards: ctx.campus.cards.length,
    bound: false,
    redis,
    campusQr: null,
    thirdParty,
  };
  const extra = [warming, ...instantPhases, waitingAgain].flatMap((phase) => [phase.taps, phase.stream]);
  return { result: toScenarioResult(plan, 'switch', waiting.taps, run), load: waiting.taps, stream, instant: extra };
}

/** Code payments answered (approved, pending or declined): one the generator gave up on cost the switch little. */
function answeredCodes(outcomes: Readonly<Record<string, number>>): number {
  return Object.entries(outcomes)
    .filter(([label]) => label !== 'timeout' && label !== 'transport_error')
    .reduce((sum, [, n]) => sum + n, 0);
}

interface TapsBesideCodes {
  readonly taps: LoadResult;
  readonly stream: LoadResult;
  readonly cpu: Record<string, number | null>;
  readonly seconds: number;
  readonly workers: number;
  readonly warmupMs: number;
}

/**
 * Tap closed and, beside it, the code payments open at --thirdparty-rate; `phase` (0 the warm-up, 1-4 the
 * measured ones) keeps their sequence numbers apart.
 */
async function tapsBesideCodes(
  ctx: ScenarioContext,
  port: number,
  index: number,
  codes: readonly string[],
  phase: 0 | 1 | 2 | 3 | 4,
  durationMs: number,
): Promise<TapsBesideCodes> {
  const o = ctx.options;
  const meter = new CpuMeter(ctx.pids);
  meter.start();
  const warmupMs = Math.min(o.warmupMs, durationMs / 2);
  const common = {
    host: HOST,
    port,
    client: o.client,
    authorizeVia: 'unary',
    campus: ctx.campus,
    warmupMs,
    maxInFlight: o.maxInFlight,
    requestTimeoutMs: o.requestTimeoutMs,
  } as const;
  const workers = Math.min(o.workers, o.connections);
  const base = (index + 1) * SEQUENCE_BLOCK + (phase * SEQUENCE_BLOCK) / 16;
  const [taps, stream] = await Promise.all([
    runLoad({
      ...common,
      mix: TAP_ONLY_MIX,
      mode: 'closed',
      profile: closedProfile(durationMs),
      workers,
      connections: o.connections,
      streams: o.streams,
      seed: index + 1 + phase * 1000,
      sequenceBase: base,
    }),
    runLoad({
      ...common,
      mix: THIRD_PARTY_ONLY_MIX,
      mode: 'open',
      profile: constantProfile(o.thirdPartyRate, durationMs),
      workers: 1,
      connections: 1,
      streams: 1,
      seed: index + 501 + phase * 1000,
      sequenceBase: base + SEQUENCE_BLOCK / 2,
      thirdPartyCodes: codes,
    }),
  ]);
  const cpu = meter.stop();
  const perTap = cpuUsPer(cpu, meter.elapsedSeconds, taps.approvals)['switch'];
  process.stdout.write(
    `  ${phase === 0 ? 'warm-up' : `phase ${phase} of 4`}: taps ${taps.approvalsPerSec}/s (switch ${perTap ?? '?'} µs per tap, codes included), ` +
      `code payments ${stream.approvalsPerSec}/s p50 ${stream.latency.p50} ms\n`,
  );
  return { taps, stream, cpu, seconds: meter.elapsedSeconds, workers, warmupMs };
}

/** One of tap+thirdparty's instant phases: the same, the channel simulators answering at once. */
async function tapsBesideInstantCodes(
  ctx: ScenarioContext,
  port: number,
  index: number,
  phase: 2 | 3,
  durationMs: number,
): Promise<TapsBesideCodes> {
  const o = ctx.options;
  const channels = needChannels(ctx);
  process.stdout.write(`running it again for ${durationMs / 1000} s with the code payments answered at once ...\n`);
  const codes = thirdPartyMinter(ctx, 'open', o.thirdPartyRate, 1)();
  channels.setLatencyMs(0);
  try {
    return await tapsBesideCodes(ctx, port, index, codes.codes, phase, durationMs);
  } finally {
    channels.setLatencyMs(o.channelLatencyMs);
  }
}

/** Phases of tap+thirdparty summed: approvals/s over their measured windows, switch CPU over their whole length. */
function phasesSummary(phases: readonly TapsBesideCodes[]): InstantCodesRun {
  const sum = (f: (p: TapsBesideCodes) => number): number => phases.reduce((total, p) => total + f(p), 0);
  const tapApprovals = sum((p) => p.taps.approvals);
  const windowS = sum((p) => p.taps.windowMs / 1000);
  const seconds = sum((p) => p.seconds);
  const cpuCores: Record<string, number | null> = {};
  for (const name of Object.keys(phases[0]?.cpu ?? {})) {
    const coreSeconds = phases
      .map((p) => p.cpu[name])
      .map((c, i) => (c === null || c === undefined ? null : c * (phases[i]?.seconds ?? 0)));
    cpuCores[name] =
      coreSeconds.some((c) => c === null) || seconds <= 0
        ? null
        : Math.round((coreSeconds.reduce<number>((a, c) => a + (c ?? 0), 0) / seconds) * 1000) / 1000;
  }
  const per = cpuUsPer(cpuCores, seconds, tapApprovals);
  return {
    tapApprovals,
    tapApprovalsPerSec: windowS <= 0 ? 0 : Math.round((sum((p) => p.taps.approvalsPerSec * (p.taps.windowMs / 1000)) / windowS) * 10) / 10,
    codesAnswered: sum((p) => answeredCodes(p.stream.outcomes)),
    cpuCores,
    switchCpuUsPerTapApproval: per['switch'] ?? null,
    exhausted: phases.some((p) => p.stream.thirdPartyExhausted),
    phases: phases.length,
  };
}

async function runGatewayScenario(
  ctx: ScenarioContext,
  target: RunningTarget,
  plan: ScenarioPlan,
  tokens: readonly string[],
): Promise<HttpScenarioResult[]> {
  if (target.gatewayPort === undefined) throw new Error('the switch reported no gateway port');
  announce(
    `gateway ${plan.mode}${plan.rate === undefined ? '' : ` @${plan.rate}/s`}: GET /api/v1/ecard, then GET /bench/hello,`,
    ctx.options,
  );
  const o = ctx.options;
  return runGatewayPair(
    // --quick: no warm-up run (CI proves the path; its figures are not compared).
    {
      host: HOST,
      gatewayPort: target.gatewayPort,
      pids: ctx.pids,
      tokens,
      connections: o.httpConnections,
      durationMs: o.durationMs,
      warmupMs: o.quick ? 0 : Math.min(o.warmupMs, o.durationMs / 2),
      timeoutMs: o.requestTimeoutMs,
    },
    plan.rate,
  );
}

/**
 * On a switch process of its own (websockets.ts says why), started for the scenario and stopped after
 * it; with --switch-in-process or --quick (whose few hundred sockets are in the noise), on the switch of
 * the run.
 */
async function runWebSocketsScenario(ctx: ScenarioContext, target: RunningTarget): Promise<WebSocketsResult> {
  const e = needEcard(ctx, 'websockets');
  const o = ctx.options;
  process.stdout.write(
    `starting ${o.websockets} sessions, then holding ${o.websockets} WebSockets over ${e.bound.length} cards for ${o.wsHoldMs / 1000} s ...\n`,
  );
  const tokens = await mintSessions(e.sessions, e.bound, o.websockets);
  const own = ctx.startSwitch === undefined || o.quick ? undefined : await ctx.startSwitch();
  const gateway = own ?? target;
  try {
    if (gateway.gatewayPort === undefined) throw new Error('the switch reported no gateway port');
    return await runWebSockets({
      host: HOST,
      gatewayPort: gateway.gatewayPort,
      switchPid: gateway.pid,
      pids: { ...ctx.pids, switch: gateway.pid },
      tokens,
      cards: e.bound.length,
      openRatePerSec: o.wsOpenRate,
      concurrency: o.wsConcurrency,
      holdMs: o.wsHoldMs,
      memory: () => gateway.memory(),
      // --quick reads memory once: its few hundred sockets are within the noise of RSS anyway.
      settleMaxMs: o.quick ? 0 : WS_MEMORY_SETTLE_MAX_MS,
      warmupSockets: o.quick ? 0 : Math.min(WS_WARMUP_SOCKETS, Math.floor(tokens.length / 10)),
    });
  } finally {
    await own?.stop();
  }
}

async function runSwitchScenarios(ctx: ScenarioContext, target: RunningTarget, approvals: Approvals): Promise<SwitchRuns> {
  const port = target.port;
  const scenarios: ScenarioResult[] = [];
  const httpRuns: HttpScenarioResult[] = [];
  let websockets: WebSocketsResult | null = null;
  let gatewayTokens: string[] | undefined;
  await warmUp(ctx, port, approvals);
  const { lacking, notes } = await lackingRpcs(port, ctx.campus);
  const plans: ScenarioPlan[] = [];
  for (const [index, asked] of ctx.options.plans.entries()) {
    const { plan, autoRate } = withAutoRate(asked, scenarios);
    plans.push(plan);
    if (plan.scenario === 'websockets') {
      websockets = await runWebSocketsScenario(ctx, target);
      continue;
    }
    if (plan.scenario === 'gateway') {
      // One session per bound user, many users so no one card is hot (minted once: access tokens live 15 min).
      const e = needEcard(ctx, 'gateway');
      gatewayTokens ??= await mintSessions(e.sessions, e.bound, e.bound.length);
      httpRuns.push(...(await runGatewayScenario(ctx, target, plan, gatewayTokens)));
      continue;
    }
    if (plan.scenario === 'tap+thirdparty') {
      announce(`tap closed with ${ctx.options.thirdPartyRate} code payments/s beside it`, ctx.options);
      const both = await runTapWithThirdParty(ctx, port, index);
      collect(approvals, both.load);
      collect(approvals, both.stream);
      for (const load of both.instant) collect(approvals, load);
      scenarios.push(both.result);
      continue;
    }
    announce(`${plan.scenario} ${plan.mode}${plan.rate === undefined ? '' : ` @${plan.rate}/s`}`, ctx.options);
    const adjustments = plan.scenario === 'lunch-rush' ? [...notes] : [];
    let mix = mixFor(plan, ctx.options, lacking);
    // Codes are minted ahead and live 60 s: a longer lunch rush pays without them (said in the result).
    if (plan.scenario === 'lunch-rush' && mix.thirdParty > 0 && ctx.options.durationMs > MAX_QR_DURATION_MS) {
      mix = { ...mix, thirdParty: 0 };
      adjustments.push(
        `third-party payment codes left out: they are minted ahead and live 60 s, the run is over ${MAX_QR_DURATION_MS / 1000} s`,
      );
    }
    const extras: ScenarioExtras =
      plan.scenario === 'qr'
        ? { campus: needEcard(ctx, 'qr').boundCampus, mintCodes: qrMinter(ctx, plan, scenarios, index) }
        : plan.scenario === 'tap-bound'
          ? { campus: needEcard(ctx, 'tap-bound').boundCampus }
          : thirdPartyExtras(ctx, plan, mix);
    const run = await runScenario(ctx, { port, name: 'switch', gc: () => target.gc() }, plan, mix, index, adjustments, undefined, extras);
    collect(approvals, run.load);
    approvals.campusQrMarks += run.result.campusQr?.usedMarks ?? 0;
    scenarios.push(autoRate === null ? run.result : { ...run.result, autoRate });
  }
  return { scenarios, plans, gateway: httpRuns.length === 0 ? null : { users: gatewayTokens?.length ?? 0, runs: httpRuns }, websockets };
}

/**
 * `--rate auto`: an open plan's rate is its fraction of the achieved rate of the capacity scenario
 * (the same scenario closed; the lunch rush: its own mix closed) measured earlier in this run.
 */
function withAutoRate(plan: ScenarioPlan, done: readonly ScenarioResult[]): { plan: ScenarioPlan; autoRate: ScenarioResult['autoRate'] } {
  if (plan.autoFraction === undefined || plan.mode !== 'open') return { plan, autoRate: null };
  const capacityScenario = capacityScenarioOf(plan.scenario);
  const capacity = done.find((s) => s.name === capacityScenario && s.mode === 'closed' && s.target === 'switch');
  if (capacity === undefined || capacity.achievedRate <= 0)
    throw new Error(`--rate auto: ${plan.scenario} open needs ${capacityScenario} closed earlier in the run`);
  const rate = Math.max(1, Math.round(capacity.achievedRate * plan.autoFraction));
  process.stdout.write(
    `  --rate auto: ${plan.scenario} open at ${rate}/s (${plan.autoFraction} of ${capacityScenario} closed's ${capacity.achievedRate}/s)\n`,
  );
  return {
    plan: { ...plan, rate },
    autoRate: { fraction: plan.autoFraction, capacityScenario, capacityPerSec: capacity.achievedRate },
  };
}

/** The rate of the streaming cross-check: far below capacity, so both clients see the switch's own latency. */
const STREAM_CHECK_RATE = 200;

/**
 * Issue 15 item 6: AuthorizeStream at a low rate measured by the bench's own generator and by the
 * stock grpc-js client, one after the other, the same taps; both p50s and their ratio.
 */
async function crossCheckStream(
  ctx: ScenarioContext,
  port: number,
  approvals: Approvals,
): Promise<BenchResult['baselines']['streamCrossCheck']> {
  // --quick: a second each (it only has to show both clients agree on a few hundred taps).
  const o = ctx.options.quick ? { ...ctx.options, durationMs: 1000, warmupMs: 250 } : ctx.options;
  const plan: ScenarioPlan = { scenario: 'tap-stream', mode: 'open', rate: STREAM_CHECK_RATE };
  announce(`tap-stream open @${STREAM_CHECK_RATE}/s, own generator then grpc-js (the streaming cross-check)`, o);
  const own = await runScenario({ ...ctx, options: o }, { port, name: 'switch' }, plan, TAP_ONLY_MIX, o.plans.length + 1, [], {
    connections: 1,
    streams: 1,
  });
  collect(approvals, own.load);
  const grpcJs = await runGrpcJsStream({
    host: HOST,
    port,
    campus: ctx.campus,
    rate: STREAM_CHECK_RATE,
    durationMs: o.durationMs,
    warmupMs: Math.min(o.warmupMs, o.durationMs / 2),
    sequenceBase: (o.plans.length + 3) * SEQUENCE_BLOCK,
  });
  approvals.payments.push(grpcJs.approvalKeys);
  const { approvalKeys: _keys, ...grpcJsRecord } = grpcJs;
  return {
    rate: STREAM_CHECK_RATE,
    own: { achievedRate: own.result.achievedRate, latencyMs: own.result.latencyMs, errors: own.result.errors },
    grpcJs: grpcJsRecord,
    p50GrpcJsVsOwn: own.result.latencyMs.p50 > 0 ? Math.round((grpcJs.latencyMs.p50 / own.result.latencyMs.p50) * 1000) / 1000 : null,
  };
}

/** h2load's shape (1 connection, 50 streams) with the bench's own generator, then h2load itself. */
async function crossCheckInquire(
  ctx: ScenarioContext,
  port: number,
  approvals: Approvals,
): Promise<BenchResult['baselines']['h2loadInquire']> {
  announce('inquiry closed, 1 connection x 50 streams (h2load shape)', ctx.options);
  const plan: ScenarioPlan = { scenario: 'inquiry', mode: 'closed', rate: undefined };
  const own = await runScenario(
    { ...ctx, options: { ...ctx.options, workers: 1 } },
    { port, name: 'switch' },
    plan,
    INQUIRY_ONLY_MIX,
    ctx.options.plans.length,
    [],
    { connections: 1, streams: 50 },
  );
  collect(approvals, own.load);
  process.stdout.write(`running h2load Inquire (${ctx.options.h2loadRequests} requests) ...\n`);
  const h2 = await runH2loadInquire(HOST, port, ctx.campus, ctx.options.h2loadRequests);
  return { ...h2, ownGenerator: { achievedRate: own.result.achievedRate, latencyMs: own.result.latencyMs } };
}

/** Sequence blocks of the paired slices on the switch: above the scenarios', the cross-checks' and the warm-up's. */
const PAIRED_INDEX = 300;

/**
 * Issue 15: its throughput ratios again, measured as `--pairs` pairs of alternating slices: tap closed
 * and the no-op grpc-js server; the no-op stream, tap-stream closed and redis-benchmark on the project's
 * per-payment Redis work (one after the other, the stream in the middle). The scenarios and their
 * baselines otherwise run minutes apart, and this machine's speed moves between minutes (RESULTS.md: one
 * full run's tap closed at 4,267/s against 8,770-9,067/s in the others, its ratio 0.34 against 0.65-0.69).
 * Pairs alternate which side runs first. Every slice on the switch is in the ledger check.
 */
async function pairedRatios(ctx: ScenarioContext, target: RunningTarget, approvals: Approvals, p: Prepared): Promise<PairedRuns | null> {
  const o = ctx.options;
  const closed = (scenario: string): boolean => o.plans.some((plan) => plan.scenario === scenario && plan.mode === 'closed');
  const unary = closed('tap');
  const stream = closed('tap-stream');
  if (!o.baselines || o.pairs === 0 || (!unary && !stream)) return null;
  const sliceCtx: ScenarioContext = {
    ...ctx,
    options: { ...o, durationMs: o.pairDurationMs, warmupMs: Math.min(o.warmupMs, o.pairDurationMs / 4) },
  };
  process.stdout.write(
    `running issue 15's ratios as ${o.pairs} pairs of alternating ${o.pairDurationMs / 1000} s slices (${[unary ? 'tap closed / no-op' : '', stream ? 'no-op stream / tap-stream closed / redis-benchmark on the project work' : ''].filter(Boolean).join('; ')}) ...\n`,
  );
  const noop = await startServerChild('noop-server', {});
  const noopPids: Record<string, number> = { ...ctx.pids, noop: noop.pid };
  delete noopPids['switch'];
  const fsync = (process.env['BENCH_REDIS_FSYNC'] as 'always' | 'everysec' | 'no' | undefined) ?? 'always';
  const freshDir = mkdtempSync(join(tmpdir(), 'cardswitch-bench-pair-'));
  let next = PAIRED_INDEX;
  const onSwitch = async (scenario: 'tap' | 'tap-stream'): Promise<ScenarioResult> => {
    const plan: ScenarioPlan = { scenario, mode: 'closed', rate: undefined };
    const run = await runScenario(sliceCtx, { port: target.port, name: 'switch', gc: () => target.gc() }, plan, TAP_ONLY_MIX, next++, []);
    collect(approvals, run.load);
    return run.result;
  };
  const onNoop = async (scenario: 'tap' | 'tap-stream'): Promise<ScenarioResult> => {
    const plan: ScenarioPlan = { scenario, mode: 'closed', rate: undefined };
    // Sequence numbers do not matter to the no-op server; its answers never reach the ledger check.
    return (await runScenario({ ...sliceCtx, pids: noopPids }, { port: noop.port, name: 'noop-grpc' }, plan, TAP_ONLY_MIX, 1000, []))
      .result;
  };
  const unaryPairs: PairedSlice[] = [];
  const streamPairs: PairedSlice[] = [];
  const workPairs: PairedSlice[] = [];
  try {
    // On a fresh redis-server of its own with the same persistence, as the redis-benchmark baselines are.
    const fresh =
      stream && redisBenchmarkAvailable()
        ? await startLocalRedis({ dataDir: freshDir, port: 0, appendOnly: true, appendFsync: fsync, startTimeoutMs: 10_000 })
        : undefined;
    try {
      const projectWork = async (pair: number): Promise<{ perSec: number; allApproved: boolean }> => {
        await quiesce(ctx.pids, QUIESCE_MAX_MS);
        const r = await runRedisBenchmarkScript(
          {
            redisUrl: fresh?.url ?? '',
            keyPrefix: `${REDIS_BASELINE_PREFIX}-pair`,
            shards: o.shards,
            clients: o.redisLanes,
            requests: o.redisBenchmarkRequests,
            limits: p.config.limits,
          },
          pair,
        );
        // A run whose payments were not all approved (declines and replays cost Redis less) has no ratio.
        return { perSec: r.approvalsPerSec ?? 0, allApproved: (r.approvals ?? 0) >= Math.floor((r.requests ?? 0) * 0.99) };
      };
      // The no-op child is new: its first calls run before V8 has compiled its hot paths (the switch has
      // served the whole run by now). One unmeasured slice of each kind first, as the switch had its warm-up.
      if (unary) await onNoop('tap');
      if (stream) await onNoop('tap-stream');
      for (let pair = 0; pair < o.pairs; pair++) {
        const subjectFirst = pair % 2 === 1;
        if (unary) {
          const first = subjectFirst ? await onSwitch('tap') : await onNoop('tap');
          const second = subjectFirst ? await onNoop('tap') : await onSwitch('tap');
          const [s, b] = subjectFirst ? [first, second] : [second, first];
          const noopServerUs = b.cpuUsPerAnswer['noop'] ?? null;
          unaryPairs.push(
            pairedSlice(s.achievedRate, b.achievedRate, subjectFirst, s, { target: 0.85, cores: cpus().length, noopServerUs }),
          );
        }
        if (stream) {
          // The stream slice in the middle, each baseline next to it, their order turned every pair.
          const before = subjectFirst ? (fresh === undefined ? undefined : await projectWork(pair)) : await onNoop('tap-stream');
          const s = await onSwitch('tap-stream');
          const after = subjectFirst ? await onNoop('tap-stream') : fresh === undefined ? undefined : await projectWork(pair);
          const noopStream = (subjectFirst ? after : before) as ScenarioResult;
          const work = (subjectFirst ? before : after) as { perSec: number; allApproved: boolean } | undefined;
          streamPairs.push(pairedSlice(s.achievedRate, noopStream.achievedRate, subjectFirst, s));
          if (work !== undefined) {
            const noopServerUs = noopStream.cpuUsPerAnswer['noop'] ?? null;
            const slice = pairedSlice(s.approvalsPerSec, work.perSec, !subjectFirst, s, {
              target: 0.8,
              cores: cpus().length,
              noopServerUs,
            });
            workPairs.push(work.allApproved ? slice : { ...slice, ratio: null });
          }
        }
      }
    } finally {
      await fresh?.stop();
    }
  } finally {
    await noop.stop();
    rmSync(freshDir, { recursive: true, force: true });
  }
  const ms = o.pairDurationMs;
  return {
    tapClosedVsNoopGrpc: unary ? pairedComparison('tap closed', 'no-op unary', ms, unaryPairs) : null,
    tapStreamClosedVsNoopStream: stream ? pairedComparison('tap-stream closed', 'no-op stream', ms, streamPairs) : null,
    tapStreamClosedVsRedisProjectWork:
      workPairs.length === 0 ? null : pairedComparison('tap-stream closed', 'redis-benchmark project work', ms, workPairs),
  };
}

async function noopBaseline(
  ctx: ScenarioContext,
  plan: ScenarioPlan = { scenario: 'tap', mode: 'closed', rate: undefined },
): Promise<ScenarioResult> {
  const noop = await startServerChild('noop-server', {});
  try {
    announce(`no-op grpc-js baseline, ${plan.scenario} ${plan.mode}${plan.rate === undefined ? '' : ` @${plan.rate}/s`}`, ctx.options);
    const pids: Record<string, number> = { ...ctx.pids, noop: noop.pid };
    delete pids['switch'];
    // Sequence numbers do not matter to the no-op server; its answers never reach the ledger check.
    return (await runScenario({ ...ctx, pids }, { port: noop.port, name: 'noop-grpc' }, plan, TAP_ONLY_MIX, 1000, [])).result;
  } finally {
    await noop.stop();
  }
}

function redisVersion(): string {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return /v=([\d.]+)/.exec(probe.stdout ?? '')?.[1] ?? 'unknown';
}

function machine(): BenchResult['machine'] {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
    node: process.version,
    redis: redisVersion(),
    platform: `${process.platform} ${process.arch}`,
  };
}

interface Prepared {
  readonly config: Config;
  readonly env: Record<string, string>;
  /** The whole campus (the ledger check maps terminals through it). */
  readonly campus: CampusFile;
  /** The cards that are not bound: every scenario but the e-card ones pays with these. */
  readonly unbound: CampusFile;
  readonly ecard: EcardContext | undefined;
  readonly redis: Redis;
  readonly keys: Keys;
  readonly campusLoadMs: number;
  /** The channel simulators, their payers bound to the last --thirdparty-payers unbound cards (kept out of `unbound`). */
  readonly channels: BenchChannels | undefined;
}

function needsBoundCards(options: BenchOptions): boolean {
  return options.plans.some(
    (p) => p.scenario === 'qr' || p.scenario === 'tap-bound' || p.scenario === 'gateway' || p.scenario === 'websockets',
  );
}

/** Binds the last --bound-cards cards to e-card users (set-up, see ecard.ts), when a scenario needs them. */
async function prepareEcard(
  options: BenchOptions,
  config: Config,
  deps: { redis: Redis; keys: Keys; ledger: Ledger },
  campus: CampusFile,
): Promise<{ unbound: CampusFile; ecard: EcardContext | undefined }> {
  if (!needsBoundCards(options)) return { unbound: campus, ecard: undefined };
  const { unbound, bound: boundCampus } = splitCampus(campus, options.boundCards);
  process.stdout.write(`binding ${boundCampus.cards.length} cards to e-card users ...\n`);
  const bound = await bindCards({ ...deps, now: Date.now }, boundCampus.cards);
  const sessions = new Sessions({
    store: new SessionStore(deps.redis, deps.keys),
    config: config.sessions,
    now: Date.now,
    announceEnded: (sessionId) => announceSessionEnded(deps.ledger, sessionId),
  });
  return { unbound, ecard: { boundCampus, bound, codec: new CampusQrCodec(config.campusQr.secret), sessions, keys: deps.keys } };
}

async function prepare(options: BenchOptions, local: BenchLedger): Promise<Prepared> {
  // The ledger's form (one Redis, a cluster, the durable mode): its settings on top (loadtest/bench/cluster.ts).
  const env = { ...switchEnv(options, local.url), ...local.env };
  const config = loadConfig(env);
  const redis = ledgerClient(config, { enableAutoPipelining: true, maxRetriesPerRequest: 1 });
  const keys = new Keys(KEY_PREFIX, options.shards);
  const scripts = await Scripts.load(redis);
  const ledger = new Ledger(keys, scripts, config.requestTtlSec);
  const water = new WaterLedger(keys, scripts, config.requestTtlSec);
  const terminals = new TerminalRegistry(new TerminalRecords({ keys, scripts }), config.terminalPepper, 0);
  const demo = demoCampus(options.cardholders, options.seed);
  const noPin = { student: config.limits.student.noPinPerPaymentFen, staff: config.limits.staff.noPinPerPaymentFen };
  const campus = toCampusFile(demo, { noPinPerPaymentFen: noPin, pins: options.pinCards, note: 'bench campus (in memory)' });
  process.stdout.write(`loading ${demo.cardholders.length} cards and ${demo.terminals.length} terminals ...\n`);
  const loaded = await loadCampus(
    { redis, keys, ledger, water, terminals, passwordPepper: config.passwordPepper },
    demo,
    campus,
    BENCH_OPENING_FEN,
  );
  const { unbound: notBound, ecard } = await prepareEcard(options, config, { redis, keys, ledger }, campus);
  const { unbound, channels } = await prepareChannels(options, { redis, keys, scripts }, notBound);
  if (channels !== undefined) env['BENCH_CHANNELS'] = JSON.stringify(channels.spec());
  return { config, env, campus, unbound, ecard, redis, keys, campusLoadMs: loaded.elapsedMs, channels };
}

/** The channel simulators and a WeChat and an Alipay payer for each of the last --thirdparty-payers cards. */
async function prepareChannels(
  options: BenchOptions,
  access: { readonly redis: Redis; readonly keys: Keys; readonly scripts: Scripts },
  campus: CampusFile,
): Promise<{ unbound: CampusFile; channels: BenchChannels | undefined }> {
  if (!usesChannels(options)) return { unbound: campus, channels: undefined };
  const { unbound, bound: payerCampus } = splitCampus(campus, options.thirdPartyPayers);
  process.stdout.write(
    `starting the Alipay / WeChat simulators (${options.channelLatencyMs} ms per answer), binding payers to ${payerCampus.cards.length} cards ...\n`,
  );
  const channels = await BenchChannels.start(createLogger('warn', 'bench-channels'), options.channelLatencyMs);
  try {
    await channels.bindPayers(access, payerCampus.cards);
  } catch (err) {
    await channels.stop();
    throw err;
  }
  return { unbound, channels };
}

/** How long the ledger check waits for the switch's follow-up to decide the payments answered pending. */
const FOLLOW_UP_WAIT_MAX_MS = 60_000;

/**
 * Waits (bounded) until the switch's follow-up has decided every code payment answered pending; run
 * before the switch stops. Answers how many are still undecided.
 */
async function waitForFollowUps(p: Prepared): Promise<number> {
  if (p.channels === undefined) return 0;
  const deadline = Date.now() + FOLLOW_UP_WAIT_MAX_MS;
  let left = await p.redis.zcard(p.keys.channelPaymentsPending());
  if (left > 0) process.stdout.write(`waiting for the switch to follow up ${left} pending code payments ...\n`);
  while (left > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    left = await p.redis.zcard(p.keys.channelPaymentsPending());
  }
  return left;
}

/** The bench's side of the code payments for the ledger check. */
async function thirdPartyInput(p: Prepared, approvals: Approvals, followUpsLeft: number): Promise<ThirdPartyInput | null> {
  const channels = p.channels;
  if (channels === undefined) return null;
  const left = followUpsLeft;
  return {
    approvals: approvals.thirdParty,
    pending: approvals.thirdPartyPending,
    payersDebitedFen: channels.payersDebitedFen(),
    followUpsLeft: left,
    payerCardBalancesFen: await cardBalancesFen(p.redis, p.keys, channels.payerCards),
    payerCardBalancesBeforeFen: channels.payerCardBalancesAtBindFen,
  };
}

async function baselines(
  ctx: ScenarioContext,
  p: Prepared,
  local: BenchLedger,
): Promise<
  Pick<
    BenchResult['baselines'],
    'noopGrpc' | 'noopGrpcOpen' | 'noopStream' | 'noopStreamOpen' | 'redisScript' | 'redisBenchmarkScript' | 'redisWork'
  >
> {
  if (!ctx.options.baselines)
    return {
      noopGrpc: null,
      noopGrpcOpen: null,
      noopStream: null,
      noopStreamOpen: null,
      redisScript: null,
      redisBenchmarkScript: null,
      redisWork: null,
    };
  const noopGrpc = await noopBaseline(ctx);
  // The same open-model arrival rate against the no-op server: the latency floor of this machine and generator.
  const tapOpen = ctx.options.plans.find((plan) => plan.scenario === 'tap' && plan.mode === 'open');
  const noopGrpcOpen = tapOpen === undefined ? null : await noopBaseline(ctx, tapOpen);
  // AuthorizeStream against the no-op server's stream, when the run has tap-stream: like for like.
  const stream = (mode: 'open' | 'closed') => ctx.options.plans.find((plan) => plan.scenario === 'tap-stream' && plan.mode === mode);
  const streamClosed = stream('closed');
  const streamOpen = stream('open');
  const noopStream = streamClosed === undefined ? null : await noopBaseline(ctx, streamClosed);
  const noopStreamOpen = streamOpen === undefined ? null : await noopBaseline(ctx, streamOpen);
  process.stdout.write(`running the authorize script alone (${ctx.options.redisLanes} lanes) for ${ctx.options.durationMs / 1000} s ...\n`);
  const redisScript = await runRedisBaseline({
    redisUrl: local.url,
    keyPrefix: REDIS_BASELINE_PREFIX,
    shards: ctx.options.shards,
    accounts: Math.min(2000, ctx.options.cardholders),
    lanes: ctx.options.redisLanes,
    durationMs: ctx.options.durationMs,
    warmupMs: Math.min(ctx.options.warmupMs, ctx.options.durationMs / 2),
    limits: p.config.limits,
  });
  process.stdout.write(
    `running redis-benchmark (${ctx.options.redisLanes} clients, ${ctx.options.redisBenchmarkRequests} calls each, a fresh redis-server): the minimal debit (floor), the sequence claim, the authorize script, 3 rounds in turn ...\n`,
  );
  // On a fresh redis-server of its own with the same persistence, not the bench's: after the scenarios
  // that one holds a million and more keys, and the floor's 60,000 new keys could land on the key space's
  // incremental rehash (the floor's CPU per call moved 12-22 µs between runs that way), or beside an AOF
  // rewrite. Like for like: the floor, the claim and the script each start on the same small key space.
  const fsync = (process.env['BENCH_REDIS_FSYNC'] as 'always' | 'everysec' | 'no' | undefined) ?? 'always';
  const freshDir = mkdtempSync(join(tmpdir(), 'cardswitch-bench-rb-'));
  const fresh = redisBenchmarkAvailable()
    ? await startLocalRedis({ dataDir: freshDir, port: 0, appendOnly: true, appendFsync: fsync, startTimeoutMs: 10_000 })
    : undefined;
  const redisWork =
    fresh === undefined
      ? null
      : await runRedisWorkBaselines({
          redisUrl: fresh.url,
          keyPrefix: `${REDIS_BASELINE_PREFIX}-rb`,
          shards: ctx.options.shards,
          clients: ctx.options.redisLanes,
          requests: ctx.options.redisBenchmarkRequests,
          limits: p.config.limits,
        }).finally(async () => {
          await fresh.stop();
          rmSync(freshDir, { recursive: true, force: true });
        });
  const redisBenchmarkScript = redisWork?.script ?? {
    available: redisBenchmarkAvailable(),
    note: 'redis-benchmark not found: skipped (Debian/Ubuntu: apt-get install -y redis-tools)',
  };
  return { noopGrpc, noopGrpcOpen, noopStream, noopStreamOpen, redisScript, redisBenchmarkScript, redisWork };
}

async function bench(
  options: BenchOptions,
  form: BenchLedgerForm = 'single',
): Promise<BenchResult & { history: HistoryBenchResult | null }> {
  const startedAt = new Date().toISOString();
  const machineInfo = machine();
  const dataDir = mkdtempSync(join(tmpdir(), 'cardswitch-bench-'));
  const fsync = (process.env['BENCH_REDIS_FSYNC'] as 'always' | 'everysec' | 'no' | undefined) ?? 'always';
  const local = await startBenchLedger(form, dataDir, fsync);
  let prepared: Prepared | undefined;
  try {
    prepared = await prepare(options, local);
    const p = prepared;
    const target = await startTarget(options, p.env, p.config, p.channels);
    const pids: Record<string, number> = { switch: target.pid, redis: local.process.pid ?? 0, bench: process.pid };
    // The websockets scenario's own switch: its young generation held at 1 MB, so V8 growing it to tens
    // of MB under the upgrades and giving that back seconds later does not swamp what the sockets hold
    // (see websockets.ts). No throughput is measured on that process.
    const startSwitch = options.switchInProcess ? undefined : () => startServerChild('switch-child', p.env, ['--max-semi-space-size=1']);
    const ctx: ScenarioContext = {
      options,
      campus: p.unbound,
      pids,
      redis: p.redis,
      ecard: p.ecard,
      channels: p.channels,
      startSwitch,
    };
    const approvals: Approvals = {
      payments: [],
      waterDebits: [],
      campusQr: [],
      thirdParty: [],
      thirdPartyPending: [],
      campusQrMarks: 0,
      settled: { reversed: [], tombstoned: [], campusQrReversed: [] },
    };
    let runs: SwitchRuns;
    let h2loadInquire: BenchResult['baselines']['h2loadInquire'] = null;
    let streamCrossCheck: BenchResult['baselines']['streamCrossCheck'] = null;
    let followUpsLeft = 0;
    let paired: PairedRuns | null = null;
    // BENCH_REDIS_LATENCY_MS=N: Redis's own latency monitor records every event slower than N ms
    // (aof-fsync-always, command, fork ...), printed after the switch scenarios.
    const latencyThresholdMs = process.env['BENCH_REDIS_LATENCY_MS'];
    if (latencyThresholdMs !== undefined) await p.redis.call('CONFIG', 'SET', 'latency-monitor-threshold', latencyThresholdMs);
    // Issue 17: Redis's memory and journal length before the scenarios (loadtest/bench/history.ts).
    const beforeScenarios = form === 'single' && options.redis === 'single' ? await historyBaseline(p.redis, p.keys) : undefined;
    try {
      runs = await runSwitchScenarios(ctx, target, approvals);
      if (options.h2load) h2loadInquire = await crossCheckInquire(ctx, target.port, approvals);
      if (options.plans.some((plan) => plan.scenario === 'tap-stream'))
        streamCrossCheck = await crossCheckStream(ctx, target.port, approvals);
      if (form === 'single' && options.redis === 'single') paired = await pairedRatios(ctx, target, approvals, p);
      followUpsLeft = await waitForFollowUps(p);
    } finally {
      await target.stop();
    }
    if (latencyThresholdMs !== undefined) {
      const events = (await p.redis.call('LATENCY', 'LATEST')) as [string, number, number, number][];
      const lines = events.map(([event, , latestMs, maxMs]) => `  redis latency ${event}: latest ${latestMs} ms, max ${maxMs} ms`);
      process.stdout.write(`${lines.length === 0 ? `  redis latency: no event over ${latencyThresholdMs} ms` : lines.join('\n')}\n`);
    }
    // The baselines' open runs take the rates the scenarios ran at (--rate auto resolved).
    const base = {
      ...(await baselines({ ...ctx, options: { ...options, plans: runs.plans } }, p, local)),
      h2loadInquire,
      streamCrossCheck,
    };
    process.stdout.write('checking the ledger (every approval exactly once, audit) ...\n');
    const ledgerCheck: LedgerCheck = await checkLedger(
      p.redis,
      p.keys,
      p.campus,
      approvals.payments,
      approvals.waterDebits,
      { approvals: approvals.campusQr, usedMarks: approvals.campusQrMarks },
      await thirdPartyInput(p, approvals, followUpsLeft),
      approvals.settled,
    );
    const { scenarios, gateway, websockets } = runs;
    // After the ledger check: the archive step archives and trims the journal the check has just read.
    const history = beforeScenarios === undefined ? null : await runHistoryBench(p.redis, p.keys, beforeScenarios, scenarios);
    const ratios = ratiosOf(scenarios, base, gateway, paired);
    const passed =
      ledgerCheck.passed &&
      scenarios.every((s) => s.errors === 0) &&
      (gateway?.runs ?? []).every((r) => r.errors === 0) &&
      (websockets === null || websockets.allOpenAtOnce);
    return {
      schema: RESULT_SCHEMA,
      startedAt,
      finishedAt: new Date().toISOString(),
      command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
      quick: options.quick,
      machine: machineInfo,
      settings: {
        cardholders: p.campus.cards.length,
        pinCards: p.campus.cards.filter((c) => c.pin !== '').length,
        terminals: p.campus.terminals.length,
        shards: options.shards,
        openingBalanceFen: BENCH_OPENING_FEN,
        redisPersistence: `AOF, appendfsync always, ${process.env['BENCH_REDIS_AOF_REWRITE'] === 'auto' ? 'automatic AOF rewrites' : 'no automatic AOF rewrite (scheduled at night in production)'}`,
        switchProcess: options.switchInProcess ? 'in-process' : 'child',
        scryptN: options.scryptN,
        campusLoadMs: p.campusLoadMs,
        boundCards: p.ecard?.bound.length ?? 0,
      },
      scenarios,
      baselines: base,
      gateway,
      websockets,
      liveEventCost: liveEventCostOf(scenarios),
      thirdPartyCost: thirdPartyCostOf(scenarios),
      ratios,
      targets: targetsOf(scenarios, ratios, ledgerCheck, websockets),
      ledgerCheck,
      passed,
      paired,
      history,
    };
  } finally {
    prepared?.redis.disconnect();
    await prepared?.channels?.stop();
    await local.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * `--export-campus FILE`: npm start's demo campus (same seed and size) with every card's PIN, for k6;
 * with `--ecard-users N` also N of its cards bound in the running switch's ledger, with sessions.
 */
async function exportCampus(options: BenchOptions, file: string): Promise<void> {
  const config = loadConfig({
    ...process.env,
    TERMINAL_SECRET_PEPPER: 'export-only-not-used-0',
    PASSWORD_PEPPER: 'export-only-not-used-0',
    SESSION_SECRET: 'export-only-not-used-0123456789abcdef',
    CAMPUS_QR_SECRET: 'export-only-not-used-0123456789abcdef',
  });
  const count = Number(process.env['DEMO_CARDHOLDERS'] ?? DEFAULT_DEMO_CARDHOLDERS);
  const cardholders = options.explicit.cardholders ? options.cardholders : count;
  const seed = options.explicit.seed ? options.seed : DEFAULT_DEMO_SEED;
  const demo = toCampusFile(demoCampus(cardholders, seed), {
    noPinPerPaymentFen: { student: config.limits.student.noPinPerPaymentFen, staff: config.limits.staff.noPinPerPaymentFen },
    pins: 'all',
    note: 'DEMO ONLY: terminal secrets, initial card passwords and e-card session tokens of the demo campus that npm start loads. Never commit or share for a real campus.',
  });
  let campus: CampusFile = demo;
  if (options.ecardUsers > 0) {
    const { users, skipped } = await exportEcardUsers(demo, options.ecardUsers);
    for (const line of skipped.slice(0, 10)) process.stderr.write(`skipped card ${line}\n`);
    campus = { ...demo, ecardUsers: users };
  }
  mkdirSync(dirname(resolve(file)), { recursive: true });
  writeFileSync(file, `${JSON.stringify(campus)}\n`, { mode: 0o600 });
  const ecard = campus.ecardUsers === undefined ? '' : `, ${campus.ecardUsers.length} bound e-card users with sessions`;
  process.stdout.write(`wrote ${file}: ${campus.cards.length} cards, ${campus.terminals.length} terminals${ecard} (seed ${seed})\n`);
}

export async function main(argv: readonly string[]): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (options.exportCampus !== undefined) {
    await exportCampus(options, options.exportCampus);
    return 0;
  }
  if (options.redis === 'cluster') {
    // One Redis, the cluster, the cluster in the durable mode: each its own fresh ledger and checks.
    const runs = {} as Record<BenchLedgerForm, BenchResult>;
    for (const form of CLUSTER_FORMS) {
      process.stdout.write(`\n=== ledger on ${form} ===\n`);
      runs[form] = await bench(optionsForForm(options, form), form);
    }
    const comparison = compareForms(`npm run bench -- ${argv.join(' ')}`.trim(), runs);
    mkdirSync(dirname(resolve(options.out)), { recursive: true });
    writeFileSync(options.out, `${JSON.stringify(comparison, null, 2)}\n`);
    process.stdout.write(clusterReport(comparison, options.out));
    return comparison.passed ? 0 : 1;
  }
  const result = await bench(options);
  mkdirSync(dirname(resolve(options.out)), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(humanReport(result, options.out) + historyReport(result.history));
  return result.passed ? 0 : 1;
}

const invokedDirectly =
  process.argv[1] !== undefined &&
  resolve(process.argv[1]).replace(/\.[cm]?[jt]s$/, '') === resolve(new URL(import.meta.url).pathname).replace(/\.[cm]?[jt]s$/, '');
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
