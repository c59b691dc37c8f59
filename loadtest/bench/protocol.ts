// Messages between the bench's main thread and its load-generator worker threads.
import type { CampusFile } from '../shared/campus-data.js';
import type { ArrivalProfile } from '../shared/profile.js';
import type { TrafficMix } from '../shared/traffic.js';
import type { SettlementCounts } from './settlements.js';

export interface GeneratorSettings {
  readonly workerIndex: number;
  readonly workerCount: number;
  readonly host: string;
  readonly port: number;
  /** 'raw': the bench's own HTTP/2 client (h2-raw.ts); 'node': node:http2. */
  readonly client: 'raw' | 'node';
  /** 'stream': Authorize calls go over PosService/AuthorizeStream (one stream per connection), the rest as set by `client`. */
  readonly authorizeVia: 'unary' | 'stream';
  readonly campus: CampusFile;
  readonly mix: TrafficMix;
  readonly mode: 'open' | 'closed';
  /** Open model: the whole run's arrival profile; this worker sends 1/workerCount of it. */
  readonly profile: ArrivalProfile;
  /** Requests sent before this offset from the start are not in the latency statistics. */
  readonly warmupMs: number;
  /** This worker's HTTP/2 connections. */
  readonly connections: number;
  /** Closed model: this worker's concurrent requests. */
  readonly streams: number;
  /** Open model: at most this many requests in flight; later arrivals wait (and their wait is counted). */
  readonly maxInFlight: number;
  readonly requestTimeoutMs: number;
  readonly seed: number;
  /** Sequence numbers are sequenceBase + n * workerCount + workerIndex + 1, so no two requests share a key. */
  readonly sequenceBase: number;
  /** This worker's campus QR codes, minted by the bench before the run, each sent once (empty without QR in the mix). */
  readonly campusQrCodes: readonly string[];
  /** Alipay / WeChat payment codes minted before the run (each sent once). */
  readonly thirdPartyCodes: readonly string[];
}

export interface HistogramData {
  readonly counts: Float64Array;
  readonly sumUs: number;
  readonly maxUs: number;
}

export interface GeneratorResult {
  readonly workerIndex: number;
  readonly overall: HistogramData;
  /** Open model: each call's lag leaving the worker after its arrival time (calls arriving in the window). */
  readonly sendLag: HistogramData;
  readonly byKind: Record<string, HistogramData>;
  /** Answers by label ('approved', 'declined:insufficient_funds', 'grpc:UNAVAILABLE' ...), whole run. */
  readonly outcomes: Record<string, number>;
  /** Answers by request kind and label, whole run. */
  readonly kindOutcomes: Record<string, Record<string, number>>;
  readonly sent: number;
  readonly completed: number;
  /** Arrivals that were due but never sent (the generator could not keep up, or the run ended). */
  readonly notSent: number;
  readonly errors: number;
  readonly unexpected: number;
  readonly errorSamples: string[];
  /** Completions inside the measurement window (after the warm-up, before the end). */
  readonly completedInWindow: number;
  /** Authorize approvals (not retries) that completed inside the measurement window. */
  readonly approvalsInWindow: number;
  /** Arrivals whose intended time fell inside the measurement window (open model). */
  readonly offeredInWindow: number;
  /** Open model: calls whose intended time fell in the profile's peak window (peakWindowMs). */
  readonly peak: HistogramData;
  readonly peakOffered: number;
  readonly peakCompleted: number;
  /** Per second of the run (by completion time): answers, sum and max of latency in us. */
  readonly timeline: { readonly completed: number[]; readonly sumUs: number[]; readonly maxUs: number[] };
  /** Authorize approvals (not retries): pairs of terminal index and sequence number. */
  readonly approvals: Float64Array;
  /** WaterDebit approvals, the same layout. */
  readonly waterApprovals: Float64Array;
  /** Campus QR approvals (also in `approvals`), the same layout. */
  readonly campusQrApprovals: Float64Array;
  /** Campus QR codes this worker sent; the run stopped early when it ran out (`campusQrExhausted`). */
  readonly campusQrCodesSent: number;
  readonly campusQrExhausted: boolean;
  /** Third-party payments answered approved / pending: (terminal index, sequence) pairs; and codes sent. */
  readonly thirdPartyApprovals: Float64Array;
  readonly thirdPartyPending: Float64Array;
  readonly thirdPartyCodesSent: number;
  readonly thirdPartyExhausted: boolean;
  /** Requests given up on and how they were settled (reversed, or sent again): settlements.ts. */
  readonly settlements: SettlementCounts;
  /** Abandoned payments the switch reversed / tombstoned, and the campus QR ones of those reversed: (terminal index, sequence) pairs. */
  readonly reversedKeys: Float64Array;
  readonly tombstonedKeys: Float64Array;
  readonly campusQrReversedKeys: Float64Array;
  /** Share of the worker's time its event loop was busy: near 1 means the generator itself was the limit. */
  readonly eventLoopUtilization: number;
}

export type WorkerToMain =
  | { readonly type: 'ready' }
  | { readonly type: 'result'; readonly result: GeneratorResult }
  | { readonly type: 'fatal'; readonly message: string };
export type MainToWorker = { readonly type: 'start'; readonly startAtMs: number; readonly durationMs: number };
