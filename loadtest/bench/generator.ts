// The main-thread side of the load generator: starts the worker threads, starts them together, and
// merges what they measured.
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { CampusFile } from '../shared/campus-data.js';
import { constantProfile, peakWindowMs, profileDurationMs, type ArrivalProfile } from '../shared/profile.js';
import type { TrafficMix } from '../shared/traffic.js';
import { Histogram, type LatencySummaryMs } from './histogram.js';
import type { GeneratorResult, GeneratorSettings, MainToWorker, WorkerToMain } from './protocol.js';
import type { SettlementCounts } from './settlements.js';

const WORKER_URL = new URL(`./generator-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
const START_DELAY_MS = 150;
const READY_TIMEOUT_MS = 20_000;

export interface LoadSpec {
  readonly host: string;
  readonly port: number;
  readonly client: 'raw' | 'node';
  /** 'stream': Authorize over PosService/AuthorizeStream (tap-stream). */
  readonly authorizeVia: 'unary' | 'stream';
  readonly campus: CampusFile;
  readonly mix: TrafficMix;
  readonly mode: 'open' | 'closed';
  /** Open model: the arrival profile (constant or lunch rush). Closed model: only its duration is used. */
  readonly profile: ArrivalProfile;
  readonly warmupMs: number;
  readonly workers: number;
  /** Total HTTP/2 connections, spread over the workers (at least one each). */
  readonly connections: number;
  /** Closed model: total requests in flight, spread over the workers. */
  readonly streams: number;
  readonly maxInFlight: number;
  readonly requestTimeoutMs: number;
  readonly seed: number;
  readonly sequenceBase: number;
  /** Campus QR codes for the mix's QR payments, dealt out to the workers in turn (each sent once). */
  readonly campusQrCodes?: readonly string[];
  /** Alipay / WeChat payment codes for the mix's third-party payments, dealt out the same way. */
  readonly thirdPartyCodes?: readonly string[];
  /**
   * Called once every worker is connected and told when to start: the load's first request goes out at
   * `startAtMs` (epoch ms). For what must happen at a moment of the run (a test stalling Redis in its middle).
   */
  readonly onStart?: (startAtMs: number) => void;
}

export interface LoadResult {
  readonly durationMs: number;
  readonly windowMs: number;
  readonly latency: LatencySummaryMs;
  /**
   * Open model: how late the generator itself sent each call after its arrival time (null closed). Every
   * latency counts from the arrival, so this much of it is the generator's (its thread waiting for a core,
   * its own work), not the server's.
   */
  readonly sendLagMs: LatencySummaryMs | null;
  readonly latencyByKind: Record<string, LatencySummaryMs>;
  readonly outcomes: Record<string, number>;
  readonly outcomesByKind: Record<string, Record<string, number>>;
  readonly sent: number;
  readonly completed: number;
  readonly notSent: number;
  readonly errors: number;
  readonly unexpected: number;
  readonly errorSamples: string[];
  readonly offeredRate: number | null;
  readonly achievedRate: number;
  readonly approvals: number;
  readonly approvalsPerSec: number;
  readonly approvalKeys: Float64Array[];
  readonly waterApprovalKeys: Float64Array[];
  readonly campusQrApprovalKeys: Float64Array[];
  readonly campusQrCodesSent: number;
  /** A worker sent every code it had before the run's end, and stopped there. */
  readonly campusQrExhausted: boolean;
  /** Third-party payments answered approved / pending ((terminal index, sequence) pairs per worker). */
  readonly thirdPartyApprovalKeys: Float64Array[];
  readonly thirdPartyPendingKeys: Float64Array[];
  readonly thirdPartyCodesSent: number;
  readonly thirdPartyExhausted: boolean;
  /** Requests given up on (timeout, reset, connection lost, UNAVAILABLE ...) and how they were settled: settlements.ts. */
  readonly settlements: SettlementCounts;
  /** Abandoned payments the switch reversed, or tombstoned; the campus QR ones reversed (pairs per worker). */
  readonly reversedKeys: Float64Array[];
  readonly tombstonedKeys: Float64Array[];
  readonly campusQrReversedKeys: Float64Array[];
  readonly generatorEventLoopUtilization: number[];
  /** Per second of the run: answers completed, mean and max latency (ms). */
  readonly timeline: { readonly second: number; readonly completed: number; readonly meanMs: number; readonly maxMs: number }[];
  /** Open model: the profile's peak window (after the warm-up). */
  readonly peak: {
    readonly startS: number;
    readonly endS: number;
    readonly offeredRate: number;
    readonly achievedRate: number;
    readonly latency: LatencySummaryMs;
  } | null;
}

/**
 * Under tsx (sources), a worker must register tsx's loader itself before it imports a .ts file: Node 20
 * does not pass the main thread's module hooks on to workers, and `--import tsx` in a worker's execArgv
 * does not take effect before the worker's entry module loads. Built code (.js) starts the file directly.
 */
function newGeneratorWorker(settings: GeneratorSettings): Worker {
  if (!WORKER_URL.pathname.endsWith('.ts')) return new Worker(WORKER_URL, { workerData: settings });
  // Resolved here, from this file, so the bench works from any working directory.
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((api) => { api.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: settings });
}

function split(total: number, parts: number, index: number): number {
  return Math.floor(total / parts) + (index < total % parts ? 1 : 0);
}

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

async function startWorkers(spec: LoadSpec): Promise<{ workers: Worker[]; results: Promise<GeneratorResult[]> }> {
  const workers: Worker[] = [];
  const ready: Promise<void>[] = [];
  const results: Promise<GeneratorResult>[] = [];
  for (let i = 0; i < spec.workers; i++) {
    const settings: GeneratorSettings = {
      workerIndex: i,
      workerCount: spec.workers,
      host: spec.host,
      port: spec.port,
      client: spec.client,
      authorizeVia: spec.authorizeVia,
      campus: spec.campus,
      mix: spec.mix,
      mode: spec.mode,
      profile: spec.profile,
      warmupMs: spec.warmupMs,
      connections: Math.max(1, split(spec.connections, spec.workers, i)),
      streams: Math.max(1, split(spec.streams, spec.workers, i)),
      maxInFlight: Math.max(1, Math.floor(spec.maxInFlight / spec.workers)),
      requestTimeoutMs: spec.requestTimeoutMs,
      seed: spec.seed * 1000 + i,
      sequenceBase: spec.sequenceBase,
      campusQrCodes: (spec.campusQrCodes ?? []).filter((_, j) => j % spec.workers === i),
      thirdPartyCodes: (spec.thirdPartyCodes ?? []).filter((_, j) => j % spec.workers === i),
    };
    const worker = newGeneratorWorker(settings);
    workers.push(worker);
    let markReady: () => void = () => undefined;
    let failReady: (err: Error) => void = () => undefined;
    ready.push(new Promise<void>((resolve, reject) => ((markReady = resolve), (failReady = reject))));
    results.push(
      new Promise<GeneratorResult>((resolve, reject) => {
        worker.on('message', (message: WorkerToMain) => {
          if (message.type === 'ready') markReady();
          else if (message.type === 'result') resolve(message.result);
          else {
            const err = new Error(message.message);
            failReady(err);
            reject(err);
          }
        });
        worker.on('error', (err) => (failReady(err), reject(err)));
        worker.on('exit', (code) => {
          const err = new Error(`load-generator worker ${i} exited with code ${code} before reporting`);
          failReady(err);
          reject(err);
        });
      }),
    );
  }
  const all = Promise.all(results);
  all.catch(() => undefined); // surfaced by the caller's await
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`load-generator workers not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
  });
  try {
    await Promise.race([Promise.all(ready), timeout]);
  } catch (err) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return { workers, results: all };
}

/** Runs one load against host:port and merges the workers' measurements. */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const durationMs = profileDurationMs(spec.profile);
  const { workers, results } = await startWorkers(spec);
  const start: MainToWorker = { type: 'start', startAtMs: nowMs() + START_DELAY_MS, durationMs };
  for (const worker of workers) worker.postMessage(start);
  spec.onStart?.(start.startAtMs);
  let merged: GeneratorResult[];
  try {
    merged = await results;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return mergeResults(spec, merged, durationMs);
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
}

function mergeResults(spec: LoadSpec, results: GeneratorResult[], durationMs: number): LoadResult {
  const overall = new Histogram();
  const sendLag = new Histogram();
  const peak = new Histogram();
  let peakOffered = 0,
    peakCompleted = 0;
  const byKind = new Map<string, Histogram>();
  const outcomes: Record<string, number> = {};
  const outcomesByKind: Record<string, Record<string, number>> = {};
  let sent = 0,
    completed = 0,
    notSent = 0,
    errors = 0,
    unexpected = 0,
    completedInWindow = 0,
    offeredInWindow = 0,
    approvals = 0,
    approvalsInWindow = 0;
  const errorSamples: string[] = [];
  for (const r of results) {
    overall.addCounts(r.overall.counts, r.overall.sumUs, r.overall.maxUs);
    sendLag.addCounts(r.sendLag.counts, r.sendLag.sumUs, r.sendLag.maxUs);
    peak.addCounts(r.peak.counts, r.peak.sumUs, r.peak.maxUs);
    peakOffered += r.peakOffered;
    peakCompleted += r.peakCompleted;
    for (const [kind, h] of Object.entries(r.byKind)) {
      let into = byKind.get(kind);
      if (into === undefined) byKind.set(kind, (into = new Histogram()));
      into.addCounts(h.counts, h.sumUs, h.maxUs);
    }
    addCounts(outcomes, r.outcomes);
    for (const [kind, counts] of Object.entries(r.kindOutcomes)) addCounts((outcomesByKind[kind] ??= {}), counts);
    sent += r.sent;
    completed += r.completed;
    notSent += r.notSent;
    errors += r.errors;
    unexpected += r.unexpected;
    completedInWindow += r.completedInWindow;
    offeredInWindow += r.offeredInWindow;
    approvals += r.approvals.length / 2 + r.thirdPartyApprovals.length / 2;
    approvalsInWindow += r.approvalsInWindow;
    errorSamples.push(...r.errorSamples.slice(0, 4));
  }
  const windowMs = Math.max(1, durationMs - spec.warmupMs);
  const latencyByKind: Record<string, LatencySummaryMs> = {};
  for (const [kind, h] of [...byKind].sort(([a], [b]) => a.localeCompare(b))) latencyByKind[kind] = h.summaryMs();
  return {
    durationMs,
    windowMs,
    latency: overall.summaryMs(),
    sendLagMs: spec.mode === 'open' ? sendLag.summaryMs() : null,
    latencyByKind,
    outcomes,
    outcomesByKind,
    sent,
    completed,
    notSent,
    errors: errors + notSent,
    unexpected,
    errorSamples: errorSamples.slice(0, 10),
    offeredRate: spec.mode === 'open' ? round1(offeredInWindow / (windowMs / 1000)) : null,
    achievedRate: round1(completedInWindow / (windowMs / 1000)),
    approvals,
    approvalsPerSec: round1(approvalsInWindow / (windowMs / 1000)),
    approvalKeys: results.map((r) => r.approvals),
    waterApprovalKeys: results.map((r) => r.waterApprovals),
    campusQrApprovalKeys: results.map((r) => r.campusQrApprovals),
    campusQrCodesSent: results.reduce((sum, r) => sum + r.campusQrCodesSent, 0),
    campusQrExhausted: results.some((r) => r.campusQrExhausted),
    thirdPartyApprovalKeys: results.map((r) => r.thirdPartyApprovals),
    thirdPartyPendingKeys: results.map((r) => r.thirdPartyPending),
    thirdPartyCodesSent: results.reduce((sum, r) => sum + r.thirdPartyCodesSent, 0),
    thirdPartyExhausted: results.some((r) => r.thirdPartyExhausted),
    settlements: sumSettlements(results),
    reversedKeys: results.map((r) => r.reversedKeys),
    tombstonedKeys: results.map((r) => r.tombstonedKeys),
    campusQrReversedKeys: results.map((r) => r.campusQrReversedKeys),
    generatorEventLoopUtilization: results.map((r) => Math.round(r.eventLoopUtilization * 100) / 100),
    peak: spec.mode === 'open' ? peakSummary(spec, peak, peakOffered, peakCompleted) : null,
    timeline: mergeTimelines(results),
  };
}

function sumSettlements(results: readonly GeneratorResult[]): SettlementCounts {
  const sum: Record<string, number> = {};
  for (const r of results) addCounts(sum, { ...r.settlements });
  return {
    abandoned: sum['abandoned'] ?? 0,
    reversalsSent: sum['reversalsSent'] ?? 0,
    resent: sum['resent'] ?? 0,
    reversed: sum['reversed'] ?? 0,
    tombstoned: sum['tombstoned'] ?? 0,
    nothingToReverse: sum['nothingToReverse'] ?? 0,
    resentAnswered: sum['resentAnswered'] ?? 0,
    unsettled: sum['unsettled'] ?? 0,
  };
}

function mergeTimelines(results: readonly GeneratorResult[]): LoadResult['timeline'] {
  const seconds = Math.max(0, ...results.map((r) => r.timeline.completed.length));
  const out: LoadResult['timeline'] = [];
  for (let second = 0; second < seconds; second++) {
    let completed = 0,
      sumUs = 0,
      maxUs = 0;
    for (const r of results) {
      completed += r.timeline.completed[second] ?? 0;
      sumUs += r.timeline.sumUs[second] ?? 0;
      maxUs = Math.max(maxUs, r.timeline.maxUs[second] ?? 0);
    }
    out.push({ second, completed, meanMs: completed === 0 ? 0 : Math.round(sumUs / completed) / 1000, maxMs: Math.round(maxUs) / 1000 });
  }
  return out;
}

function peakSummary(spec: LoadSpec, histogram: Histogram, offered: number, completed: number): LoadResult['peak'] {
  const window = peakWindowMs(spec.profile);
  const startMs = Math.max(window.startMs, spec.warmupMs);
  const seconds = Math.max(0.001, (window.endMs - startMs) / 1000);
  return {
    startS: Math.round(startMs) / 1000,
    endS: Math.round(window.endMs) / 1000,
    offeredRate: round1(offered / seconds),
    achievedRate: round1(completed / seconds),
    latency: histogram.summaryMs(),
  };
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** A closed-model run still needs a profile for its length. */
export function closedProfile(durationMs: number): ArrivalProfile {
  return constantProfile(1, durationMs);
}
