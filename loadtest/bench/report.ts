// The result file (loadtest/results/latest.json; its fields are documented in loadtest/README.md) and
// the short report printed at the end of a run.
import type { HttpScenarioResult } from './gateway.js';
import type { LatencySummaryMs } from './histogram.js';
import type { H2loadResult } from './h2load.js';
import type { LedgerCheck } from './ledger-check.js';
import type { RedisScenarioStats } from './redis-stats.js';
import type { SettlementCounts } from './settlements.js';
import type { WebSocketsResult } from './websockets.js';
import type { RedisBaselineResult } from './redis-baseline.js';
import type { RedisBenchmarkResult, RedisWorkBaselines } from './redis-benchmark.js';
import type { GrpcJsStreamResult } from './stream-crosscheck.js';
import type { DiskReport, GcReport, MachineCpuReport } from './processes.js';

export const RESULT_SCHEMA = 'cardswitch-bench/1';

export interface ScenarioResult {
  readonly name: string;
  readonly mode: 'open' | 'closed';
  /** 'switch' or 'noop-grpc'. */
  readonly target: string;
  readonly profile: 'constant' | 'lunch-rush' | 'none';
  readonly durationS: number;
  readonly warmupS: number;
  /** Open model: the arrival rate asked for (lunch-rush: the peak). */
  readonly rate: number | null;
  readonly workers: number;
  readonly connections: number;
  /** Closed model: requests in flight. */
  readonly streams: number | null;
  /** Requests/s that were due in the measurement window (open model); null in the closed model. */
  readonly offeredRate: number | null;
  /** Answers/s completed in the measurement window. */
  readonly achievedRate: number;
  /** Approved Authorize answers/s (retries not counted) in the measurement window. */
  readonly approvalsPerSec: number;
  readonly latencyMs: LatencySummaryMs;
  /** Open model: the arrival profile's peak window (lunch rush 11:55-12:10, squeezed), after the warm-up. */
  readonly peak: {
    readonly startS: number;
    readonly endS: number;
    readonly offeredRate: number;
    readonly achievedRate: number;
    readonly latencyMs: LatencySummaryMs;
  } | null;
  readonly latencyMsByKind: Record<string, LatencySummaryMs>;
  /** Per second of the run (warm-up included): answers completed, mean and max latency in ms. */
  readonly timeline: { readonly second: number; readonly completed: number; readonly meanMs: number; readonly maxMs: number }[];
  readonly outcomes: Record<string, number>;
  readonly outcomesByKind: Record<string, Record<string, number>>;
  readonly requests: { readonly sent: number; readonly completed: number; readonly notSent: number };
  /** gRPC errors, transport errors, timeouts, unreadable answers, retries that did not replay, arrivals never sent. */
  readonly errors: number;
  /** Business answers outside what the request kind should get (see isExpectedAnswer in shared/traffic.ts). */
  readonly unexpected: number;
  /**
   * Requests the generator gave up on (timeout, reset, lost connection, UNAVAILABLE ...) and how it settled
   * them as a POS does: payments reversed (Reverse, same terminal and sequence), small-wallet moves sent
   * again (loadtest/bench/settlements.ts). Absent in results written before issue 15's generator fix.
   */
  readonly settlements?: SettlementCounts;
  readonly errorSamples: string[];
  /** Cores each process used during the scenario (1.0 = one core busy). */
  readonly cpuCores: Record<string, number | null>;
  /**
   * Per process, its threads' time ready to run but waiting for a core, as threads waiting on average
   * over the scenario (/proc/<pid>/task/<tid>/schedstat): how much the processes queued for the machine's
   * cores. Absent or null where not measured.
   */
  readonly runQueueWait?: Record<string, number | null> | null;
  /** The whole machine's CPU over the scenario in cores (/proc/stat): busy, softirq, steal, idle; absent or null where not measured. */
  readonly machineCpu?: MachineCpuReport | null;
  /** Open model: how late the generator sent each call after its arrival time (part of every latency); null closed. */
  readonly sendLagMs?: LatencySummaryMs | null;
  /** Per generator worker thread: share of time its event loop was busy (near 1: the generator was the limit). */
  readonly generatorEventLoopUtilization: number[];
  readonly mixAdjustments: string[];
  /** Cards the scenario's payments draw from, and whether they are bound to e-card users (a live event per payment). */
  readonly cards: number;
  readonly boundCards: boolean;
  /** CPU microseconds per answer and per approval, per process, over the whole scenario (warm-up included on both sides). */
  readonly cpuUsPerAnswer: Record<string, number | null>;
  readonly cpuUsPerApproval: Record<string, number | null>;
  /** Redis's own figures for the scenario (INFO commandstats); null for the no-op baselines. */
  readonly redis: RedisScenarioStats | null;
  /** The switch child's garbage collections during the scenario (warm-up included); null where not asked (baselines, in-process). */
  readonly switchGc: GcReport | null;
  /**
   * The machine's disks over the scenario (all whole disks, warm-up included; /sys/block): with AOF
   * `appendfsync always` Redis ends every turn that wrote with an fsync, so their time per flush bounds
   * how many turns a second the ledger can take. Absent in results before this field; null off Linux.
   */
  readonly disk?: DiskReport | null;
  /** qr: the codes minted before the run and what became of them; null for other scenarios. */
  readonly campusQr: CampusQrRun | null;
  /** thirdparty, tap+thirdparty, lunch-rush: the payment codes minted and what became of them; null elsewhere. */
  readonly thirdParty: ThirdPartyRun | null;
  /** `--rate auto`: the rate was `fraction` of `capacityPerSec`, the achieved rate of `capacityScenario` closed earlier in the run. */
  readonly autoRate?: { readonly fraction: number; readonly capacityScenario: string; readonly capacityPerSec: number } | null;
}

export interface ThirdPartyRun {
  /** Each answer of the channel simulators waited this long. */
  readonly channelLatencyMs: number;
  readonly codesMinted: number;
  readonly wechatCodes: number;
  readonly alipayCodes: number;
  /** Codes scripted "paying, then paid": the POS is answered OUTCOME_PENDING. */
  readonly scriptedPending: number;
  readonly mintMs: number;
  readonly codesSent: number;
  /** The generator sent every code before the run's end (it stopped there: an error). */
  readonly exhausted: boolean;
  readonly approvals: number;
  /** Answered OUTCOME_PENDING: counted, not queried; the switch's follow-up decides them (the ledger check waits for it). */
  readonly pending: number;
  /** tap+thirdparty: the code payments sent beside the taps (open model); null in the other scenarios. */
  readonly stream: {
    /** The instant phases summed: the same taps and code payments, the channel answering at once (absent in older results). */
    /** The instant phases summed. */
    readonly instant?: InstantCodesRun;
    /** Both waiting phases summed (the first is the record's own; absent in results before the four-phase order). */
    readonly waiting?: InstantCodesRun;
    /** The warm-up phase before them (waiting, not counted in any ratio). */
    readonly warmUp?: InstantCodesRun;
    readonly rate: number;
    readonly offeredRate: number | null;
    readonly achievedRate: number;
    readonly approvalsPerSec: number;
    readonly latencyMs: LatencySummaryMs;
    readonly outcomes: Record<string, number>;
    readonly errors: number;
    readonly unexpected: number;
    readonly errorSamples: string[];
  } | null;
}

/**
 * Phases of tap+thirdparty summed: the instant ones (the same taps beside the same code payments, the
 * simulators answering at once) or the waiting ones.
 */
export interface InstantCodesRun {
  readonly tapApprovals: number;
  readonly tapApprovalsPerSec: number;
  /** Code payments answered (approved, pending or declined). */
  readonly codesAnswered: number;
  readonly cpuCores: Readonly<Record<string, number | null>>;
  /** The switch's CPU over the phase (the code payments' included) per tap approval. */
  readonly switchCpuUsPerTapApproval: number | null;
  readonly exhausted: boolean;
  /** How many phases this sums (absent: one, in runs before the four-phase order). */
  readonly phases?: number;
}

export interface CampusQrRun {
  readonly codesMinted: number;
  readonly mintMs: number;
  readonly codesSent: number;
  /** The generator sent every code before the run's end (its lanes stopped there: an error). */
  readonly exhausted: boolean;
  readonly approvals: number;
  /** Single-use marks in Redis of the minted codes, read right after the run: one per paid code. */
  readonly usedMarks: number;
}

/** What a bound card's live event costs a payment: tap-bound against tap, same run. */
export interface LiveEventCost {
  readonly tapApprovalsPerSec: number;
  readonly tapBoundApprovalsPerSec: number;
  readonly tapBoundVsTap: number | null;
  /** Per approval, tap / tap-bound: CPU of the switch and of Redis (µs), Redis's script time (µs), events published. */
  readonly switchCpuUsPerApproval: readonly [number | null, number | null];
  readonly redisCpuUsPerApproval: readonly [number | null, number | null];
  readonly redisScriptUsPerApproval: readonly [number | null, number | null];
  readonly publishesPerApproval: readonly [number | null, number | null];
}

/**
 * Issue 12 per switch CPU. Two measures:
 *  - aloneVsBeside: what a card tap costs the switch while code payments wait on the channel beside it,
 *    their own switch CPU (measured in thirdparty closed of the same run) taken out. Only as good as that
 *    figure fits tap+thirdparty: a code payment alone at the switch's limit and one beside busy taps do
 *    not cost the same (batching), so this can be off either way (null when the remainder is not positive).
 *  - waitingVsInstant: tap+thirdparty's phases (waiting, instant, instant, waiting; each kind summed), the
 *    same taps beside the same code payments, waiting on the channel (80 ms) and answered at once: the
 *    same work, only the wait differs, seconds apart.
 *    1.0 = waiting takes nothing from the taps; no subtraction, so no negative remainder.
 */
export interface ThirdPartyCost {
  /** tap closed: switch CPU µs per tap approval. */
  readonly tapSwitchCpuUsAlone: number | null;
  /** thirdparty closed: switch CPU µs per code payment answered (approved, pending or declined). */
  readonly codeSwitchCpuUs: number | null;
  /** thirdparty closed: the bench process's CPU µs per code payment (the channel simulators' signing and the generator). */
  readonly codeBenchCpuUs: number | null;
  /** tap+thirdparty: code payments answered and tap approvals (whole run), and the switch's CPU over them. */
  readonly codePaymentsBeside: number;
  readonly tapApprovalsBeside: number;
  /** (switch CPU of tap+thirdparty - code payments x codeSwitchCpuUs) / tap approvals. */
  readonly tapSwitchCpuUsBeside: number | null;
  /** tapSwitchCpuUsAlone / tapSwitchCpuUsBeside: 1.0 = the payments waiting beside take nothing from a tap. */
  readonly aloneVsBeside: number | null;
  /** Cores the code payments took during tap+thirdparty by these figures (switch + bench), of the machine's. */
  readonly codeCoresBeside: number | null;
  /** tap+thirdparty, both phases: switch CPU µs per tap approval, the code payments' CPU included. */
  readonly tapSwitchCpuUsBesideWaiting: number | null;
  readonly tapSwitchCpuUsBesideInstant: number | null;
  /** tapSwitchCpuUsBesideInstant / tapSwitchCpuUsBesideWaiting: 1.0 = waiting costs the taps no switch CPU. */
  readonly waitingVsInstantCpu: number | null;
  /** Tap approvals/s beside waiting code payments / beside code payments answered at once (wall clock). */
  readonly waitingVsInstantThroughput: number | null;
  /** Code payments answered in each phase (the two should be alike for the comparison to hold). */
  readonly codePaymentsBesideInstant: number | null;
  /** Code payments answered in both waiting phases (null in runs before the four-phase order). */
  readonly codePaymentsBesideWaiting: number | null;
}

export interface BenchResult {
  readonly schema: typeof RESULT_SCHEMA;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly command: string;
  readonly quick: boolean;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly memoryGiB: number;
    readonly loadAverageAtStart: number[];
    readonly node: string;
    readonly redis: string;
    readonly platform: string;
  };
  readonly settings: {
    readonly cardholders: number;
    readonly pinCards: number;
    readonly terminals: number;
    readonly shards: number;
    readonly openingBalanceFen: number;
    readonly redisPersistence: string;
    readonly switchProcess: 'child' | 'in-process';
    readonly scryptN: number;
    readonly campusLoadMs: number;
    /** Cards bound to e-card users (the last ones of the campus); 0 when no scenario needed them. */
    readonly boundCards: number;
  };
  readonly scenarios: ScenarioResult[];
  readonly baselines: {
    readonly noopGrpc: ScenarioResult | null;
    /** The no-op server at the tap-open arrival rate (null when tap open was not run). */
    readonly noopGrpcOpen: ScenarioResult | null;
    /** The no-op server's AuthorizeStream, tap-stream closed / open (null when tap-stream was not run). */
    readonly noopStream: ScenarioResult | null;
    readonly noopStreamOpen: ScenarioResult | null;
    readonly redisScript: RedisBaselineResult | null;
    /** The same script driven by redis-benchmark (C): what Redis alone does on this machine. */
    readonly redisBenchmarkScript: RedisBenchmarkResult | null;
    /**
     * Issue 15's physical floor: the minimal idempotent debit, the sequence claim and the script, each
     * driven by redis-benchmark, with Redis's CPU, AOF bytes and memory per call (null without redis-benchmark).
     */
    readonly redisWork?: RedisWorkBaselines | null;
    /**
     * AuthorizeStream at a low rate, the bench's own generator against the stock grpc-js client (issue 15
     * item 6); null when tap-stream was not run.
     */
    readonly streamCrossCheck?: {
      readonly rate: number;
      readonly own: { readonly achievedRate: number; readonly latencyMs: LatencySummaryMs; readonly errors: number };
      readonly grpcJs: Omit<GrpcJsStreamResult, 'approvalKeys'>;
      readonly p50GrpcJsVsOwn: number | null;
    } | null;
    readonly h2loadInquire:
      (H2loadResult & { readonly ownGenerator?: { readonly achievedRate: number; readonly latencyMs: LatencySummaryMs } }) | null;
  };
  /** gateway: the card summary and the hello baseline, per mode (null when not run). */
  readonly gateway: { readonly users: number; readonly runs: HttpScenarioResult[] } | null;
  /** websockets: N idle live-event sockets held at once (null when not run). */
  readonly websockets: WebSocketsResult | null;
  readonly liveEventCost: LiveEventCost | null;
  /** Card taps beside code payments waiting on the channel, per switch CPU (null without tap, thirdparty and tap+thirdparty). */
  readonly thirdPartyCost?: ThirdPartyCost | null;
  readonly ratios: Record<string, number | null>;
  readonly targets: Record<string, boolean | null>;
  readonly ledgerCheck: LedgerCheck | null;
  readonly passed: boolean;
  /**
   * Issue 15's throughput ratios measured in alternating slices, both sides minutes apart at most
   * (`--pairs`; null without baselines, with `--pairs 0`, or without the closed scenarios they compare).
   */
  readonly paired?: PairedRuns | null;
}

/** One pair of slices: the subject (the switch) and its baseline, run one right after the other. */
export interface PairedSlice {
  readonly subjectPerSec: number;
  readonly baselinePerSec: number;
  /** subject / baseline (null when the baseline measured nothing). */
  readonly ratio: number | null;
  /** Pairs alternate which side runs first, so a machine slowing through the step weighs on both sides alike. */
  readonly subjectFirst: boolean;
  /** The subject slice's CPU per answer (µs) and cores, per process: which of them a slow slice was slow in. */
  readonly subjectCpuUsPerAnswer?: Record<string, number | null>;
  readonly subjectCpuCores?: Record<string, number | null>;
  /** The switch's mark-compacts in the subject slice (null where not known). */
  readonly subjectMarkCompacts?: number | null;
  /** The disks during the subject slice. */
  readonly subjectDisk?: DiskReport | null;
  /** The whole machine's CPU during the subject slice (cores: busy, softirq, steal, idle). */
  readonly subjectMachineCpu?: MachineCpuReport | null;
  /** What the switch could spend per answer in this pair for the ratio to reach its target (see SwitchBudget). */
  readonly budget?: SwitchBudget | null;
}

/**
 * A pair's ratio target as CPU: on this machine the generator, the switch and Redis share the same cores,
 * so a closed run's rate is about the cores over the CPU all three spend per answer. For the subject to
 * reach `target` x the baseline's rate with every core busy, the switch may spend at most
 * cores / (target x baseline rate) minus what the generator and Redis spent per answer in the subject
 * slice. A grpc-js server that does nothing (the no-op's server process, same pair) is the least any
 * switch can spend per call: when the allowance is below it, no switch could meet the target at this
 * pair's speed on this machine, whatever it did.
 */
export interface SwitchBudget {
  readonly target: number;
  /** The machine's cores (all of them, so the allowance is the most the target could leave the switch). */
  readonly cores: number;
  /** The most the switch may spend per answer (µs) for the target; null where a figure is missing. */
  readonly switchUsAllowed: number | null;
  /** What the switch spent per answer in the subject slice (µs). */
  readonly switchUs: number | null;
  /** What the no-op grpc-js server's process spent per call in the same pair (µs): the least a switch spends. */
  readonly noopServerUs: number | null;
}

/** A pair's switch budget: the generator ('bench') and Redis per answer are the subject slice's. */
export function switchBudget(
  target: number,
  cores: number,
  baselinePerSec: number,
  subjectCpuUsPerAnswer: Readonly<Record<string, number | null>> | undefined,
  noopServerUs: number | null,
): SwitchBudget {
  const generator = subjectCpuUsPerAnswer?.['bench'] ?? null;
  const redis = subjectCpuUsPerAnswer?.['redis'] ?? null;
  const allowed =
    generator === null || redis === null || baselinePerSec <= 0
      ? null
      : Math.round((cores * 1e6) / (target * baselinePerSec) - generator - redis);
  return { target, cores, switchUsAllowed: allowed, switchUs: subjectCpuUsPerAnswer?.['switch'] ?? null, noopServerUs };
}

/** A ratio target measured as alternating slices; its figure is the median of the pairs' ratios. */
export interface PairedComparison {
  readonly subject: string;
  readonly baseline: string;
  /** Each slice's measured length (the subject's; redis-benchmark's runs as long as its calls take). */
  readonly sliceMs: number;
  readonly pairs: PairedSlice[];
  readonly medianRatio: number | null;
  readonly minRatio: number | null;
  readonly maxRatio: number | null;
  /** The pairs' medians of their switch budgets (null where the pairs have none). */
  readonly budget: {
    readonly switchUsAllowed: number | null;
    readonly switchUs: number | null;
    readonly noopServerUs: number | null;
  } | null;
}

export interface PairedRuns {
  /** tap closed (Authorize) against the no-op grpc-js server, achieved calls/s (target 0.85). */
  readonly tapClosedVsNoopGrpc: PairedComparison | null;
  /** tap-stream closed against the no-op server's AuthorizeStream, achieved calls/s. */
  readonly tapStreamClosedVsNoopStream: PairedComparison | null;
  /** tap-stream closed against redis-benchmark driving the project's per-payment Redis work, approvals/s (target 0.80). */
  readonly tapStreamClosedVsRedisProjectWork: PairedComparison | null;
}

/** The pairs' ratios and their median (the middle pair's; the mean of the two middle ones for an even count). */
export function pairedComparison(subject: string, baseline: string, sliceMs: number, pairs: readonly PairedSlice[]): PairedComparison {
  const known = pairs.map((p) => p.ratio);
  const all = known.every((r): r is number => r !== null) && known.length > 0 ? [...known].sort((a, b) => a - b) : null;
  const middle =
    all === null
      ? null
      : all.length % 2 === 1
        ? all[(all.length - 1) / 2]
        : ((all[all.length / 2 - 1] ?? 0) + (all[all.length / 2] ?? 0)) / 2;
  return {
    subject,
    baseline,
    sliceMs,
    pairs: [...pairs],
    medianRatio: middle === null || middle === undefined ? null : Math.round(middle * 1000) / 1000,
    minRatio: all?.[0] ?? null,
    maxRatio: all?.[all.length - 1] ?? null,
    budget: budgetMedians(pairs),
  };
}

function budgetMedians(pairs: readonly PairedSlice[]): PairedComparison['budget'] {
  const budgets = pairs.map((p) => p.budget).filter((b): b is SwitchBudget => b !== null && b !== undefined);
  if (budgets.length === 0) return null;
  const median = (read: (b: SwitchBudget) => number | null): number | null => {
    const known = budgets.map(read).filter((v): v is number => v !== null);
    if (known.length === 0) return null;
    const sorted = [...known].sort((a, b) => a - b);
    const half = sorted.length / 2;
    return sorted.length % 2 === 1
      ? (sorted[(sorted.length - 1) / 2] ?? null)
      : Math.round(((sorted[half - 1] ?? 0) + (sorted[half] ?? 0)) / 2);
  };
  return {
    switchUsAllowed: median((b) => b.switchUsAllowed),
    switchUs: median((b) => b.switchUs),
    noopServerUs: median((b) => b.noopServerUs),
  };
}

/** One pair's figures: the ratio of the two rates, rounded like every other ratio of the report. */
export function pairedSlice(
  subjectPerSec: number,
  baselinePerSec: number,
  subjectFirst: boolean,
  subject?: ScenarioResult,
  budget?: { readonly target: number; readonly cores: number; readonly noopServerUs: number | null },
): PairedSlice {
  const slice = { subjectPerSec, baselinePerSec, ratio: ratio(subjectPerSec, baselinePerSec), subjectFirst };
  if (subject === undefined) return slice;
  return {
    ...slice,
    subjectCpuUsPerAnswer: subject.cpuUsPerAnswer,
    subjectCpuCores: subject.cpuCores,
    subjectMarkCompacts: subject.switchGc?.markCompacts.count ?? null,
    subjectDisk: subject.disk ?? null,
    subjectMachineCpu: subject.machineCpu ?? null,
    budget:
      budget === undefined ? null : switchBudget(budget.target, budget.cores, baselinePerSec, subject.cpuUsPerAnswer, budget.noopServerUs),
  };
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  if (a === undefined || b === undefined || b === 0) return null;
  return Math.round((a / b) * 1000) / 1000;
}

function find(scenarios: readonly ScenarioResult[], name: string, mode: string): ScenarioResult | undefined {
  return scenarios.find((s) => s.name === name && s.mode === mode && s.target === 'switch');
}

function http(runs: readonly HttpScenarioResult[], name: string, mode: string): HttpScenarioResult | undefined {
  return runs.find((r) => r.name === name && r.mode === mode);
}

function perApprovalOf(s: ScenarioResult | undefined, read: (s: ScenarioResult) => number | null | undefined): number | null {
  return s === undefined ? null : (read(s) ?? null);
}

export function liveEventCostOf(scenarios: readonly ScenarioResult[]): LiveEventCost | null {
  const tap = find(scenarios, 'tap', 'closed');
  const bound = find(scenarios, 'tap-bound', 'closed');
  if (tap === undefined || bound === undefined) return null;
  const both = (read: (s: ScenarioResult) => number | null | undefined): readonly [number | null, number | null] => [
    perApprovalOf(tap, read),
    perApprovalOf(bound, read),
  ];
  const approvalsOf = (s: ScenarioResult): number => s.outcomes['approved'] ?? 0;
  return {
    tapApprovalsPerSec: tap.approvalsPerSec,
    tapBoundApprovalsPerSec: bound.approvalsPerSec,
    tapBoundVsTap: ratio(bound.approvalsPerSec, tap.approvalsPerSec),
    switchCpuUsPerApproval: both((s) => s.cpuUsPerApproval['switch']),
    redisCpuUsPerApproval: both((s) => s.cpuUsPerApproval['redis']),
    redisScriptUsPerApproval: both((s) => s.redis?.scriptUsPerApproval),
    publishesPerApproval: both((s) =>
      s.redis === null || approvalsOf(s) === 0 ? null : Math.round((s.redis.publishes / approvalsOf(s)) * 1000) / 1000,
    ),
  };
}

export function thirdPartyCostOf(scenarios: readonly ScenarioResult[]): ThirdPartyCost | null {
  const tap = find(scenarios, 'tap', 'closed');
  const codes = find(scenarios, 'thirdparty', 'closed');
  const both = find(scenarios, 'tap+thirdparty', 'closed');
  if (both === undefined || (tap === undefined && both.thirdParty?.stream?.instant === undefined)) return null;
  const tapSwitchCpuUsAlone = tap?.cpuUsPerApproval['switch'] ?? null;
  const codeSwitchCpuUs = codes?.cpuUsPerAnswer['switch'] ?? null;
  const codeBenchCpuUs = codes?.cpuUsPerAnswer['bench'] ?? null;
  // Answered code payments only: one the generator gave up on (timeout) or never got through costs the switch little.
  const codePaymentsBeside = Object.entries(both.thirdParty?.stream?.outcomes ?? {})
    .filter(([label]) => label !== 'timeout' && label !== 'transport_error')
    .reduce((sum, [, n]) => sum + n, 0);
  const tapApprovalsBeside = both.outcomes['approved'] ?? 0;
  const perTap = both.cpuUsPerApproval['switch'];
  const switchUsBeside = perTap === null || perTap === undefined ? null : perTap * tapApprovalsBeside;
  const tapSwitchCpuUsBeside =
    switchUsBeside === null || codeSwitchCpuUs === null || tapApprovalsBeside === 0
      ? null
      : Math.round((switchUsBeside - codePaymentsBeside * codeSwitchCpuUs) / tapApprovalsBeside);
  const seconds = both.durationS;
  const instant = both.thirdParty?.stream?.instant;
  const waiting = both.thirdParty?.stream?.waiting;
  const tapSwitchCpuUsBesideWaiting = waiting === undefined ? (perTap ?? null) : waiting.switchCpuUsPerTapApproval;
  const tapSwitchCpuUsBesideInstant = instant?.switchCpuUsPerTapApproval ?? null;
  return {
    tapSwitchCpuUsAlone,
    codeSwitchCpuUs,
    codeBenchCpuUs,
    codePaymentsBeside,
    tapApprovalsBeside,
    tapSwitchCpuUsBeside,
    // Negative or zero when the code payments' CPU measured alone does not fit this run (a starved machine): no ratio.
    aloneVsBeside:
      tapSwitchCpuUsBeside !== null && tapSwitchCpuUsBeside > 0 ? ratio(tapSwitchCpuUsAlone ?? undefined, tapSwitchCpuUsBeside) : null,
    tapSwitchCpuUsBesideWaiting,
    tapSwitchCpuUsBesideInstant,
    waitingVsInstantCpu: ratio(tapSwitchCpuUsBesideInstant ?? undefined, tapSwitchCpuUsBesideWaiting ?? undefined),
    waitingVsInstantThroughput:
      instant === undefined
        ? null
        : ratio(waiting === undefined ? both.approvalsPerSec : waiting.tapApprovalsPerSec, instant.tapApprovalsPerSec),
    codePaymentsBesideInstant: instant?.codesAnswered ?? null,
    codePaymentsBesideWaiting: waiting?.codesAnswered ?? null,
    codeCoresBeside:
      codeSwitchCpuUs === null || codeBenchCpuUs === null || seconds <= 0
        ? null
        : Math.round(((codePaymentsBeside * (codeSwitchCpuUs + codeBenchCpuUs)) / 1e6 / seconds) * 1000) / 1000,
  };
}

/** The new scenarios' ratios: each against its baseline measured in the same run. */
function ecardRatios(scenarios: readonly ScenarioResult[], gateway: BenchResult['gateway']): Record<string, number | null> {
  const tapClosed = find(scenarios, 'tap', 'closed');
  const tapOpen = find(scenarios, 'tap', 'open');
  const qrClosed = find(scenarios, 'qr', 'closed');
  const qrOpen = find(scenarios, 'qr', 'open');
  const runs = gateway?.runs ?? [];
  const sameRate = qrOpen !== undefined && tapOpen !== undefined && qrOpen.rate === tapOpen.rate;
  return {
    qrClosedVsTapClosed: ratio(qrClosed?.approvalsPerSec, tapClosed?.approvalsPerSec),
    // A code pays only for a bound card, so a QR payment always writes a live event: against taps of
    // bound cards, what is left is the code's own cost (opening it, its single-use mark).
    qrClosedVsTapBoundClosed: ratio(qrClosed?.approvalsPerSec, find(scenarios, 'tap-bound', 'closed')?.approvalsPerSec),
    qrOpenP99VsTapOpenP99: sameRate ? ratio(qrOpen?.latencyMs.p99, tapOpen?.latencyMs.p99) : null,
    // Card taps with a steady stream of code payments waiting on the channel, against taps alone.
    tapClosedWithThirdPartyVsTapClosed: ratio(find(scenarios, 'tap+thirdparty', 'closed')?.approvalsPerSec, tapClosed?.approvalsPerSec),
    // The same per switch CPU, the code payments' own CPU taken out (thirdPartyCost): 1.0 = waiting costs the taps nothing.
    tapSwitchCpuAloneVsBesideThirdParty: thirdPartyCostOf(scenarios)?.aloneVsBeside ?? null,
    // tap+thirdparty's phases (both of each kind summed): switch CPU per tap beside code payments answered at once / beside waiting ones
    // (the code payments' CPU in both): 1.0 = the waiting costs the taps nothing. No subtraction: never negative.
    tapSwitchCpuBesideInstantVsBesideWaitingCodes: thirdPartyCostOf(scenarios)?.waitingVsInstantCpu ?? null,
    // The same by wall clock: tap approvals/s beside waiting code payments / beside ones answered at once.
    tapClosedBesideWaitingVsBesideInstantCodes: thirdPartyCostOf(scenarios)?.waitingVsInstantThroughput ?? null,
    tapBoundClosedVsTapClosed: ratio(find(scenarios, 'tap-bound', 'closed')?.approvalsPerSec, tapClosed?.approvalsPerSec),
    summaryClosedVsHelloClosed: ratio(
      http(runs, 'gateway-summary', 'closed')?.achievedRate,
      http(runs, 'gateway-hello', 'closed')?.achievedRate,
    ),
    summaryOpenVsHelloOpen: ratio(http(runs, 'gateway-summary', 'open')?.achievedRate, http(runs, 'gateway-hello', 'open')?.achievedRate),
    summaryOpenP99VsHelloOpenP99: ratio(
      http(runs, 'gateway-summary', 'open')?.latencyMs.p99,
      http(runs, 'gateway-hello', 'open')?.latencyMs.p99,
    ),
  };
}

export function ratiosOf(
  scenarios: readonly ScenarioResult[],
  baselines: BenchResult['baselines'],
  gateway: BenchResult['gateway'] = null,
  paired: PairedRuns | null = null,
): Record<string, number | null> {
  const tapClosed = find(scenarios, 'tap', 'closed');
  const inquiryClosed = find(scenarios, 'inquiry', 'closed');
  const streamClosed = find(scenarios, 'tap-stream', 'closed');
  const streamOpen = find(scenarios, 'tap-stream', 'open');
  const h2 = baselines.h2loadInquire;
  return {
    tapClosedVsNoopGrpc: ratio(tapClosed?.achievedRate, baselines.noopGrpc?.achievedRate),
    tapClosedVsRedisScript: ratio(tapClosed?.achievedRate, baselines.redisScript?.callsPerSec),
    noopGrpcVsRedisScript: ratio(baselines.noopGrpc?.achievedRate, baselines.redisScript?.callsPerSec),
    tapClosedVsRedisBenchmarkScript: ratio(tapClosed?.approvalsPerSec, baselines.redisBenchmarkScript?.approvalsPerSec),
    tapStreamClosedVsRedisBenchmarkScript: ratio(streamClosed?.approvalsPerSec, baselines.redisBenchmarkScript?.approvalsPerSec),
    tapClosedP99VsNoopP99: ratio(tapClosed?.latencyMs.p99, baselines.noopGrpc?.latencyMs.p99),
    tapOpenP99VsNoopOpenP99: ratio(
      scenarios.find((s) => s.name === 'tap' && s.mode === 'open' && s.target === 'switch')?.latencyMs.p99,
      baselines.noopGrpcOpen?.latencyMs.p99,
    ),
    inquiryClosedVsNoopGrpc: ratio(inquiryClosed?.achievedRate, baselines.noopGrpc?.achievedRate),
    tapStreamClosedVsNoopGrpc: ratio(streamClosed?.achievedRate, baselines.noopGrpc?.achievedRate),
    tapStreamClosedVsNoopStream: ratio(streamClosed?.achievedRate, baselines.noopStream?.achievedRate),
    tapStreamClosedVsTapClosed: ratio(streamClosed?.achievedRate, tapClosed?.achievedRate),
    tapStreamOpenP99VsNoopStreamOpenP99: ratio(streamOpen?.latencyMs.p99, baselines.noopStreamOpen?.latencyMs.p99),
    ownGeneratorVsH2loadInquire: ratio(h2?.ownGenerator?.achievedRate, h2?.reqPerSec),
    ...redisWorkRatios(scenarios, baselines.redisWork ?? null),
    ...ecardRatios(scenarios, gateway),
    // The same ratios from alternating slices (`--pairs`): what the targets are judged on when present.
    pairedTapClosedVsNoopGrpc: paired?.tapClosedVsNoopGrpc?.medianRatio ?? null,
    pairedTapStreamClosedVsNoopStream: paired?.tapStreamClosedVsNoopStream?.medianRatio ?? null,
    pairedTapStreamClosedVsRedisProjectWork: paired?.tapStreamClosedVsRedisProjectWork?.medianRatio ?? null,
  };
}

/**
 * Issue 15: the switch's throughput against redis-benchmark driving the project's own per-payment Redis
 * work (claim + script), and Redis's CPU per approval against the minimal debit's (the floor).
 */
function redisWorkRatios(scenarios: readonly ScenarioResult[], work: RedisWorkBaselines | null): Record<string, number | null> {
  const tapClosed = find(scenarios, 'tap', 'closed');
  const streamClosed = find(scenarios, 'tap-stream', 'closed');
  const floorCpu = work?.floor.redisCpuUsPerCall ?? undefined;
  return {
    tapClosedVsRedisProjectWork: ratio(tapClosed?.approvalsPerSec, work?.project.approvalsPerSec ?? undefined),
    tapStreamClosedVsRedisProjectWork: ratio(streamClosed?.approvalsPerSec, work?.project.approvalsPerSec ?? undefined),
    redisProjectCpuVsFloor: work?.projectCpuVsFloor ?? null,
    redisProjectAofVsFloor: ratio(work?.project.aofBytesPerApproval ?? undefined, work?.floor.aofBytesPerCall ?? undefined),
    redisProjectMemoryVsFloor: ratio(work?.project.memoryBytesPerApproval ?? undefined, work?.floor.memoryBytesPerCall ?? undefined),
    tapClosedRedisCpuVsFloor: ratio(tapClosed?.redis?.cpuUsPerApproval ?? undefined, floorCpu),
    tapStreamClosedRedisCpuVsFloor: ratio(streamClosed?.redis?.cpuUsPerApproval ?? undefined, floorCpu),
  };
}

/** The issue's targets, as far as this run measured them (null: not measured in this run). */
export function targetsOf(
  scenarios: readonly ScenarioResult[],
  ratios: Record<string, number | null>,
  ledger: LedgerCheck | null,
  websockets: WebSocketsResult | null = null,
): Record<string, boolean | null> {
  const tapClosed = find(scenarios, 'tap', 'closed');
  const tapOpen = scenarios.find((s) => s.name === 'tap' && s.mode === 'open' && s.target === 'switch' && (s.rate ?? 0) >= 6000);
  const lunch = find(scenarios, 'lunch-rush', 'open');
  // Judged on the alternating slices' median when the run has them: the scenario and its baseline
  // otherwise ran minutes apart, and this machine's speed moves between minutes (loadtest/RESULTS.md).
  const vsNoop = ratios['pairedTapClosedVsNoopGrpc'] ?? ratios['tapClosedVsNoopGrpc'];
  const streamClosed = find(scenarios, 'tap-stream', 'closed');
  const streamOpen = scenarios.find((s) => s.name === 'tap-stream' && s.mode === 'open' && s.target === 'switch' && (s.rate ?? 0) >= 6000);
  const streamVsNoop = ratios['tapStreamClosedVsNoopGrpc'];
  return {
    tapClosedAtLeast85PercentOfNoop: vsNoop === null || vsNoop === undefined ? null : vsNoop >= 0.85,
    tapClosedAtLeast9000ApprovalsPerSec: tapClosed === undefined ? null : tapClosed.approvalsPerSec >= 9000,
    tapOpen6000P99AtMost15msNoErrors: tapOpen === undefined ? null : tapOpen.latencyMs.p99 <= 15 && tapOpen.errors === 0,
    lunchRushPeakP99AtMost25ms: lunch?.peak == null ? null : lunch.peak.latencyMs.p99 <= 25 && lunch.errors === 0,
    // The same three card-tap targets with the taps sent over AuthorizeStream (a POS front-end processor),
    // against the same unary no-op baseline.
    tapStreamClosedAtLeast85PercentOfNoop: streamVsNoop === null || streamVsNoop === undefined ? null : streamVsNoop >= 0.85,
    tapStreamClosedAtLeast9000ApprovalsPerSec: streamClosed === undefined ? null : streamClosed.approvalsPerSec >= 9000,
    tapStreamOpen6000P99AtMost15msNoErrors: streamOpen === undefined ? null : streamOpen.latencyMs.p99 <= 15 && streamOpen.errors === 0,
    // Issue 15: the same latency targets at a load the machine can carry (--rate auto: 60 % of the capacity measured in the run).
    tapOpenAutoP99AtMost15msNoErrors: autoTarget(scenarios, 'tap', (s) => s.latencyMs.p99 <= 15),
    tapStreamOpenAutoP99AtMost15msNoErrors: autoTarget(scenarios, 'tap-stream', (s) => s.latencyMs.p99 <= 15),
    lunchRushAutoPeakP99AtMost25msNoErrors: autoTarget(scenarios, 'lunch-rush', (s) => s.peak !== null && s.peak.latencyMs.p99 <= 25),
    everyApprovalInLedgerOnceAndAuditPasses: ledger === null ? null : ledger.passed,
    // Issue 15 (like for like: both driven by redis-benchmark, 128 clients, the same persistence).
    redisCpuPerApprovalAtMost2xFloor: atMost(ratios['redisProjectCpuVsFloor'], 2),
    tapStreamClosedAtLeast80PercentOfRedisProjectWork: atLeast(
      ratios['pairedTapStreamClosedVsRedisProjectWork'] ?? ratios['tapStreamClosedVsRedisProjectWork'],
      0.8,
    ),
    qrClosedAtLeast90PercentOfTapClosed: atLeast(ratios['qrClosedVsTapClosed'], 0.9),
    tapClosedWithThirdPartyAtLeast90PercentOfTapClosed: atLeast(ratios['tapClosedWithThirdPartyVsTapClosed'], 0.9),
    tapSwitchCpuBesideThirdPartyAtLeast90PercentOfAlone: atLeast(ratios['tapSwitchCpuAloneVsBesideThirdParty'], 0.9),
    // On the throughput of the two kinds of phase: the CPU ratio counts the code payments' own CPU per tap, so it
    // falls further than the taps do whenever they slow down (fewer taps to share it, less batching).
    waitingCodesCostTapsAtMost10Percent: atLeast(ratios['tapClosedBesideWaitingVsBesideInstantCodes'], 0.9),
    summaryClosedAtLeast40PercentOfHelloClosed: atLeast(ratios['summaryClosedVsHelloClosed'], 0.4),
    tenThousandWebSocketsOpenAtOnce: websockets === null || websockets.requested < 10_000 ? null : websockets.allOpenAtOnce,
  };
}

function atLeast(value: number | null | undefined, min: number): boolean | null {
  return value === null || value === undefined ? null : value >= min;
}

/** An open scenario run at `--rate auto`: the check and no errors; null when the run had none. */
function autoTarget(scenarios: readonly ScenarioResult[], name: string, check: (s: ScenarioResult) => boolean): boolean | null {
  const s = scenarios.find((x) => x.name === name && x.mode === 'open' && x.target === 'switch' && (x.autoRate ?? null) !== null);
  return s === undefined ? null : check(s) && s.errors === 0;
}

function atMost(value: number | null | undefined, max: number): boolean | null {
  return value === null || value === undefined ? null : value <= max;
}

function pairedLines(paired: PairedRuns | null): string[] {
  if (paired === null) return [];
  const comparisons = [paired.tapClosedVsNoopGrpc, paired.tapStreamClosedVsNoopStream, paired.tapStreamClosedVsRedisProjectWork];
  return comparisons
    .filter((c): c is PairedComparison => c !== null)
    .map(
      (c) =>
        `  ${pad(`paired: ${c.subject} / ${c.baseline}`, 30)} median ${c.medianRatio ?? '?'} (${c.minRatio ?? '?'}-${c.maxRatio ?? '?'}) over ${c.pairs.length} pairs of ${c.sliceMs / 1000} s: ` +
        c.pairs.map((p) => `${p.subjectPerSec}/${p.baselinePerSec}`).join(', ') +
        // Per subject slice: the switch's and Redis's CPU per answer and the disks' time per flush, so a
        // slow slice shows whether it was slow in CPU or waiting on the disk.
        `\n  ${pad('', 30)} switch µs / Redis µs / ms per disk flush: ` +
        c.pairs
          .map(
            (p) =>
              `${p.subjectCpuUsPerAnswer?.['switch'] ?? '?'}/${p.subjectCpuUsPerAnswer?.['redis'] ?? '?'}/${p.subjectDisk?.msPerFlush ?? '?'}` +
              (p.subjectMachineCpu == null ? '' : ` (machine busy ${p.subjectMachineCpu.busy}, stolen ${p.subjectMachineCpu.steal})`),
          )
          .join(', ') +
        budgetLine(c),
    );
}

/** What the target leaves the switch per answer at the pairs' speed, beside what a server doing nothing spends. */
function budgetLine(c: PairedComparison): string {
  const b = c.budget;
  if (b === null) return '';
  const target = c.pairs.find((p) => p.budget)?.budget?.target;
  const verdict =
    b.switchUsAllowed === null || b.noopServerUs === null
      ? ''
      : b.switchUsAllowed < b.noopServerUs
        ? ': less than a server that does nothing, so no switch could meet it at these speeds here'
        : b.switchUs !== null && b.switchUs <= b.switchUsAllowed
          ? ': the switch spent within it'
          : `: the switch spent ${b.switchUs === null || b.switchUsAllowed === null ? '?' : b.switchUs - b.switchUsAllowed} µs more`;
  return (
    `\n  ${pad('', 30)} for ${target ?? '?'} the switch may spend ${b.switchUsAllowed ?? '?'} µs per answer (medians; a no-op grpc-js ` +
    `server spends ${b.noopServerUs ?? '?'}, the switch spent ${b.switchUs ?? '?'})${verdict}`
  );
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function scenarioLine(s: ScenarioResult): string {
  const l = s.latencyMs;
  const label = `${s.target === 'switch' ? '' : `${s.target} `}${s.name} ${s.mode}${s.rate === null ? '' : ` @${s.rate}/s`}`;
  const line = `  ${pad(label, 30)} ${pad(`${s.achievedRate}/s`, 11)} approvals ${pad(`${s.approvalsPerSec}/s`, 10)} p50 ${l.p50} p95 ${l.p95} p99 ${l.p99} p99.9 ${l.p999} ms  errors ${s.errors}`;
  const settled = s.settlements;
  const withSettled =
    settled === undefined || settled.abandoned === 0
      ? line
      : `${line}\n  ${pad('  given up on', 30)} ${settled.abandoned}: ${settled.reversalsSent} reversals sent (reversed ${settled.reversed}, ` +
        `tombstoned ${settled.tombstoned}, nothing to reverse ${settled.nothingToReverse}), ${settled.resent} sent again ` +
        `(${settled.resentAnswered} answered), unsettled ${settled.unsettled}`;
  const withWaits = withSettled + waitLine(s);
  if (s.peak === null || s.profile !== 'lunch-rush') return withWaits;
  const p = s.peak.latencyMs;
  return `${withWaits}\n  ${pad('  at the peak', 30)} ${pad(`${s.peak.achievedRate}/s`, 11)} of ${s.peak.offeredRate}/s offered          p50 ${p.p50} p95 ${p.p95} p99 ${p.p99} p99.9 ${p.p999} ms`;
}

/**
 * What of a scenario's latency was the machine's: how late the generator itself sent the calls (open
 * model), and how many threads of each process were ready to run but waiting for a core, on average.
 */
function waitLine(s: ScenarioResult): string {
  const lag = s.sendLagMs ?? null;
  const waits = Object.entries(s.runQueueWait ?? {}).filter((e): e is [string, number] => e[1] !== null);
  const m = s.machineCpu ?? null;
  if (lag === null && waits.length === 0 && m === null) return '';
  const parts: string[] = [];
  if (lag !== null) parts.push(`sent late by the generator p50 ${lag.p50} p99 ${lag.p99} max ${lag.max} ms`);
  if (waits.length > 0) parts.push(`threads waiting for a core ${waits.map(([name, w]) => `${name} ${w}`).join(', ')}`);
  if (m !== null) parts.push(`machine busy ${m.busy} cores (softirq ${m.softirq}), stolen ${m.steal}, idle ${m.idle}`);
  return `\n  ${pad('', 30)} ${parts.join('; ')}`;
}

function httpLine(r: HttpScenarioResult): string {
  const l = r.latencyMs;
  const label = `${r.name} ${r.mode}${r.rate === null ? ` (${r.connections} conn)` : ` @${r.rate}/s`}`;
  return `  ${pad(label, 30)} ${pad(`${r.achievedRate}/s`, 11)} ${pad(`${r.users} users`, 20)} p50 ${l.p50} p90 ${l.p90} p99 ${l.p99} p99.9 ${l.p999} ms  errors ${r.errors}`;
}

function ecardLines(result: BenchResult): string[] {
  const lines: string[] = [];
  for (const r of result.gateway?.runs ?? []) lines.push(httpLine(r));
  const qr = result.scenarios.filter((s) => s.campusQr !== null);
  for (const s of qr) {
    const q = s.campusQr as CampusQrRun;
    lines.push(
      `  qr ${s.mode}: ${q.codesMinted} codes minted in ${q.mintMs} ms, ${q.codesSent} sent, ${q.approvals} approved, ${q.usedMarks} single-use marks${q.exhausted ? ' (RAN OUT OF CODES)' : ''}`,
    );
  }
  for (const s of result.scenarios) {
    const t = s.thirdParty;
    if (t === null) continue;
    lines.push(
      `  ${s.name} ${s.mode}: ${t.codesMinted} codes minted (${t.wechatCodes} WeChat, ${t.alipayCodes} Alipay, ${t.scriptedPending} scripted pending) in ${t.mintMs} ms, ` +
        `${t.codesSent} sent, ${t.approvals} approved, ${t.pending} pending; channel latency ${t.channelLatencyMs} ms${t.exhausted ? ' (RAN OUT OF CODES)' : ''}`,
    );
    const st = t.stream;
    if (st !== null)
      lines.push(
        `    beside the taps: ${st.achievedRate}/s of ${st.offeredRate ?? '?'}/s offered, approvals ${st.approvalsPerSec}/s, p50 ${st.latencyMs.p50} p99 ${st.latencyMs.p99} ms, errors ${st.errors}`,
      );
  }
  const c = result.liveEventCost;
  if (c !== null) {
    const pair = (p: readonly [number | null, number | null]): string => `${p[0] ?? '?'} / ${p[1] ?? '?'}`;
    lines.push(
      `  live events (tap / tap-bound, per approval): switch CPU ${pair(c.switchCpuUsPerApproval)} µs, Redis CPU ${pair(c.redisCpuUsPerApproval)} µs, ` +
        `Redis script time ${pair(c.redisScriptUsPerApproval)} µs, publishes ${pair(c.publishesPerApproval)}`,
    );
  }
  const w = result.websockets;
  if (w !== null) {
    lines.push(
      `  websockets: ${w.opened} of ${w.requested} open at once (server says ${w.serverOpenAfterHold ?? '?'}), ${w.failed} failed, opened in ${w.openingMs} ms ` +
        `(${w.openRatePerSec}/s); gateway memory per socket: RSS ${w.wsBytesPerSocket ?? '?'} B, JS heap ${w.wsHeapBytesPerSocket ?? '?'} B`,
    );
    for (const sample of w.failureSamples.slice(0, 3)) lines.push(`    ${sample}`);
  }
  return lines;
}

export function humanReport(result: BenchResult, outPath: string): string {
  const lines = [
    '',
    `cardswitch bench (${result.quick ? 'quick' : 'full'}) on ${result.machine.cpus} cores, load average at start ${result.machine.loadAverageAtStart.join(' ')}`,
    `campus: ${result.settings.cardholders} cards, ${result.settings.terminals} terminals, ${result.settings.shards} shards; Redis ${result.settings.redisPersistence}; switch ${result.settings.switchProcess}`,
    '',
    ...result.scenarios.map(scenarioLine),
  ];
  const b = result.baselines;
  if (b.noopGrpc !== null) lines.push(scenarioLine(b.noopGrpc));
  if (b.noopGrpcOpen !== null) lines.push(scenarioLine(b.noopGrpcOpen));
  if (b.noopStream !== null) lines.push(scenarioLine(b.noopStream));
  if (b.noopStreamOpen !== null) lines.push(scenarioLine(b.noopStreamOpen));
  if (b.redisScript !== null) {
    const r = b.redisScript;
    lines.push(
      `  ${pad('redis authorize script alone', 30)} ${pad(`${r.callsPerSec}/s`, 11)} (${r.lanes} lanes) p50 ${r.latency.p50} p99 ${r.latency.p99} ms  errors ${r.errors}`,
    );
  }
  if (b.redisBenchmarkScript !== null) {
    const r = b.redisBenchmarkScript;
    lines.push(
      r.available && r.callsPerSec !== undefined
        ? `  ${pad('redis-benchmark script alone', 30)} ${pad(`${r.callsPerSec}/s`, 11)} approvals ${r.approvalsPerSec}/s (${r.clients} clients) p50 ${r.latencyMs?.p50} p99 ${r.latencyMs?.p99} ms`
        : `  redis-benchmark: ${r.note}`,
    );
  }
  const work = b.redisWork ?? null;
  if (work !== null) {
    const row = (label: string, r: RedisBenchmarkResult): string =>
      `  ${pad(label, 30)} ${pad(`${r.callsPerSec ?? '?'}/s`, 11)} Redis CPU ${r.redisCpuUsPerCall ?? '?'} µs, AOF ${r.aofBytesPerCall ?? '?'} B, memory ${r.memoryBytesPerCall ?? '?'} B per call`;
    lines.push(row('redis-benchmark minimal debit', work.floor), row('redis-benchmark sequence claim', work.claim));
    lines.push(
      `  ${pad('project per payment (derived)', 30)} ${pad(`${work.project.approvalsPerSec ?? '?'}/s`, 11)} Redis CPU ${work.project.redisCpuUsPerApproval ?? '?'} µs, AOF ${work.project.aofBytesPerApproval ?? '?'} B, memory ${work.project.memoryBytesPerApproval ?? '?'} B per approval (${work.projectCpuVsFloor ?? '?'} x the floor's CPU: the median of ${work.projectCpuVsFloorRounds.length} rounds, ${work.projectCpuVsFloorRounds.map((r) => r ?? '?').join(' / ')})`,
    );
  }
  for (const s of result.scenarios) {
    if (s.redis === null || s.mode !== 'closed') continue;
    lines.push(
      `  ${pad(`redis per approval, ${s.name}`, 30)} CPU ${s.redis.cpuUsPerApproval ?? '?'} µs, AOF ${s.redis.aofBytesPerApproval ?? '?'} B, memory ${s.redis.memoryBytesPerApproval ?? '?'} B, script ${s.redis.scriptUsPerApproval ?? '?'} µs${s.redis.aofRewrites > 0 ? `, ${s.redis.aofRewrites} AOF rewrite(s) during it` : ''}`,
    );
  }
  for (const s of result.scenarios) {
    if (s.switchGc === null || s.switchGc === undefined) continue;
    const perSecond = (ms: number): string => (s.durationS > 0 ? (ms / s.durationS).toFixed(1) : '?');
    const { markCompacts: mc, scavenges: sv } = s.switchGc;
    lines.push(
      `  ${pad(`switch GC, ${s.name} ${s.mode}`, 30)} mark-compacts ${mc.count} (max ${mc.maxMs} ms, ${perSecond(mc.totalMs)} ms/s), scavenges ${sv.count} (max ${sv.maxMs} ms, ${perSecond(sv.totalMs)} ms/s)`,
    );
  }
  const sc = b.streamCrossCheck ?? null;
  if (sc !== null)
    lines.push(
      `  ${pad(`stream cross-check @${sc.rate}/s`, 30)} own generator ${sc.own.achievedRate}/s p50 ${sc.own.latencyMs.p50} p99 ${sc.own.latencyMs.p99} ms; grpc-js ${sc.grpcJs.achievedRate}/s p50 ${sc.grpcJs.latencyMs.p50} p99 ${sc.grpcJs.latencyMs.p99} ms (written to answered p50 ${sc.grpcJs.writeToAnswerMs.p50}), errors ${sc.grpcJs.errors} (p50 ratio ${sc.p50GrpcJsVsOwn ?? '?'})`,
    );
  const tpc = result.thirdPartyCost ?? null;
  if (tpc !== null)
    lines.push(
      `  ${pad('taps beside code payments', 30)} switch CPU per tap ${tpc.tapSwitchCpuUsAlone ?? '?'} µs alone, ${tpc.tapSwitchCpuUsBeside ?? '?'} µs beside ${tpc.codePaymentsBeside} code payments (each ${tpc.codeSwitchCpuUs ?? '?'} µs switch + ${tpc.codeBenchCpuUs ?? '?'} µs bench, ${tpc.codeCoresBeside ?? '?'} cores): ${tpc.aloneVsBeside ?? '?'}`,
    );
  if (tpc !== null && tpc.tapSwitchCpuUsBesideInstant !== null)
    lines.push(
      `  ${pad('taps beside waiting codes', 30)} switch CPU per tap (codes included) ${tpc.tapSwitchCpuUsBesideWaiting ?? '?'} µs beside waiting, ${tpc.tapSwitchCpuUsBesideInstant} µs beside answered-at-once (${tpc.codePaymentsBesideWaiting ?? tpc.codePaymentsBeside} and ${tpc.codePaymentsBesideInstant ?? '?'} codes; phases waiting, instant, instant, waiting): CPU ${tpc.waitingVsInstantCpu ?? '?'}, taps/s ${tpc.waitingVsInstantThroughput ?? '?'}`,
    );
  if (b.h2loadInquire !== null) {
    const h = b.h2loadInquire;
    lines.push(
      h.available && h.reqPerSec !== undefined
        ? `  ${pad('h2load Inquire (1 conn x 50)', 30)} ${pad(`${h.reqPerSec}/s`, 11)} mean ${h.latencyMs?.mean ?? '?'} ms; own generator same shape ${h.ownGenerator?.achievedRate ?? '?'}/s`
        : `  h2load: ${h.note}`,
    );
  }
  lines.push(...ecardLines(result));
  lines.push(...pairedLines(result.paired ?? null));
  lines.push(
    '',
    `ratios: ${Object.entries(result.ratios)
      .map(([k, v]) => `${k} ${v ?? 'n/a'}`)
      .join(', ')}`,
  );
  lines.push(
    `targets: ${Object.entries(result.targets)
      .map(([k, v]) => `${k} ${v === null ? 'n/a' : v ? 'yes' : 'NO'}`)
      .join(', ')}`,
  );
  const ledger = result.ledgerCheck;
  if (ledger !== null) {
    lines.push(
      `ledger: ${ledger.passed ? 'PASSED' : 'FAILED'}: ${ledger.payments.approvedByClients} approvals, ${ledger.payments.journalEntries} pay entries ` +
        `(missing ${ledger.payments.missing}, duplicated ${ledger.payments.duplicated}, unexplained ${ledger.payments.unexplained}); ` +
        `${ledger.waterDebits.journalEntries} wpay entries; audit ${ledger.audit.ok ? 'ok' : `FAILED (${ledger.audit.problemCount} problems)`} ` +
        `over ${ledger.audit.accounts} accounts, ${ledger.audit.journalEntries} entries`,
    );
    const st = ledger.settled;
    if (st.reversed + st.tombstoned > 0)
      lines.push(
        `  abandoned payments: ${st.passed ? 'ok' : 'FAILED'}: ${st.reversed} reversed (${st.reversedPayEntries} pay + rev, ` +
          `${st.reversedCodePayments} cpay + cprev, ${st.reversedBeforePaid} before paid), ${st.tombstoned} tombstoned with no pay entry; problems ${st.problems}`,
      );
    const t = ledger.thirdParty;
    if (t !== null)
      lines.push(
        `  code payments: ${t.passed ? 'ok' : 'FAILED'}: ${t.approvedByClients} approved + ${t.pendingAnswers} pending, ${t.journalEntries} cpay entries ` +
          `(missing ${t.missing}, duplicated ${t.duplicated}, unexplained ${t.unexplained}, undecided ${t.followUpsLeft}); ${t.journalFen} fen journalled, ` +
          `${t.payersDebitedFen} fen paid at the channels; ${t.payerCardBalancesMoved} of ${t.payerCards} payer cards' balances moved`,
      );
    const samples = [
      ...ledger.payments.samples,
      ...ledger.waterDebits.samples,
      ...st.samples,
      ...(t?.samples ?? []),
      ...ledger.audit.problems,
    ];
    for (const sample of samples) lines.push(`  ${sample}`);
  }
  for (const s of [
    ...result.scenarios,
    ...[b.noopGrpc, b.noopGrpcOpen, b.noopStream, b.noopStreamOpen].filter((x): x is ScenarioResult => x !== null),
  ]) {
    for (const sample of s.errorSamples.slice(0, 3)) lines.push(`  ${s.name} ${s.mode}: ${sample}`);
  }
  lines.push('', `${result.passed ? 'PASSED' : 'FAILED'}: results in ${outPath}`, '');
  return lines.join('\n');
}
