// Arrival-rate profiles: the lunch hour as a k6 `ramping-arrival-rate` (start rate, then linear ramps),
// and the same profile as a clock the bench harness uses to compute each request's intended send time.
//
// Pure TypeScript: no k6 and no Node imports.

/** A linear ramp from the previous rate to `target` (requests per second) over `durationMs`. */
export interface RateStage {
  readonly durationMs: number;
  readonly target: number;
}

export interface ArrivalProfile {
  readonly startRate: number;
  readonly stages: readonly RateStage[];
}

/**
 * The canteen lunch hour, 11:30 to 13:00 in wall-clock minutes, as a share of the peak rate. Classes end
 * at 11:40-11:50, so the queue builds steeply; the peak is around 12:00; the tail runs out by 13:00.
 */
export const LUNCH_HOUR_SHAPE: readonly { readonly clock: string; readonly minute: number; readonly share: number }[] = [
  { clock: '11:30', minute: 0, share: 0.1 },
  { clock: '11:40', minute: 10, share: 0.35 },
  { clock: '11:48', minute: 18, share: 0.8 },
  { clock: '11:55', minute: 25, share: 1.0 },
  { clock: '12:10', minute: 40, share: 1.0 },
  { clock: '12:25', minute: 55, share: 0.55 },
  { clock: '12:40', minute: 70, share: 0.25 },
  { clock: '13:00', minute: 90, share: 0.05 },
];

export const LUNCH_HOUR_MINUTES = 90;
export const MAX_TIME_FACTOR = 3600;

/**
 * The lunch hour with its peak at `peakRate` requests/s, compressed by `timeFactor` (1 = the real 90
 * minutes, 30 = 3 minutes, 90 = 1 minute).
 */
export function lunchRushProfile(peakRate: number, timeFactor: number): ArrivalProfile {
  if (!(peakRate > 0)) throw new RangeError(`peak rate must be > 0, got ${peakRate}`);
  if (!(timeFactor >= 1 && timeFactor <= MAX_TIME_FACTOR))
    throw new RangeError(`time factor must be 1-${MAX_TIME_FACTOR}, got ${timeFactor}`);
  const first = LUNCH_HOUR_SHAPE[0];
  if (first === undefined) throw new Error('LUNCH_HOUR_SHAPE is empty');
  const stages: RateStage[] = [];
  for (let i = 1; i < LUNCH_HOUR_SHAPE.length; i++) {
    const from = LUNCH_HOUR_SHAPE[i - 1];
    const to = LUNCH_HOUR_SHAPE[i];
    if (from === undefined || to === undefined) continue;
    stages.push({ durationMs: ((to.minute - from.minute) * 60_000) / timeFactor, target: to.share * peakRate });
  }
  return { startRate: first.share * peakRate, stages };
}

/** The lunch hour squeezed into `totalMs`. */
export function lunchRushProfileForDuration(peakRate: number, totalMs: number): ArrivalProfile {
  return lunchRushProfile(peakRate, (LUNCH_HOUR_MINUTES * 60_000) / totalMs);
}

export function constantProfile(rate: number, durationMs: number): ArrivalProfile {
  if (!(rate > 0)) throw new RangeError(`rate must be > 0, got ${rate}`);
  return { startRate: rate, stages: [{ durationMs, target: rate }] };
}

export function profileDurationMs(profile: ArrivalProfile): number {
  return profile.stages.reduce((total, stage) => total + stage.durationMs, 0);
}

export function peakRateOf(profile: ArrivalProfile): number {
  return profile.stages.reduce((peak, stage) => Math.max(peak, stage.target), profile.startRate);
}

/**
 * Where the profile holds its peak rate: the stages that start and end at it (the lunch hour's 11:55 to
 * 12:10; a constant profile's whole length). Targets about "the peak" are measured in this window.
 */
export function peakWindowMs(profile: ArrivalProfile): { startMs: number; endMs: number } {
  const peak = peakRateOf(profile);
  let rate = profile.startRate;
  let at = 0;
  let window: { startMs: number; endMs: number } | undefined;
  for (const stage of profile.stages) {
    if (rate >= peak * 0.999 && stage.target >= peak * 0.999) {
      window =
        window === undefined ? { startMs: at, endMs: at + stage.durationMs } : { startMs: window.startMs, endMs: at + stage.durationMs };
    }
    at += stage.durationMs;
    rate = stage.target;
  }
  return window ?? { startMs: 0, endMs: at };
}

/** Expected number of arrivals over the whole profile. */
export function profileArrivals(profile: ArrivalProfile): number {
  let rate = profile.startRate;
  let total = 0;
  for (const stage of profile.stages) {
    total += ((rate + stage.target) / 2) * (stage.durationMs / 1000);
    rate = stage.target;
  }
  return total;
}

/** A k6 `ramping-arrival-rate` stage list (k6 wants whole requests per time unit). */
export function k6Stages(profile: ArrivalProfile): { duration: string; target: number }[] {
  return profile.stages.map((s) => ({ duration: `${Math.max(1, Math.round(s.durationMs))}ms`, target: Math.max(0, Math.round(s.target)) }));
}

interface Segment {
  readonly startMs: number;
  readonly durationMs: number;
  readonly fromRate: number;
  readonly toRate: number;
  /** Arrivals before this segment. */
  readonly before: number;
  readonly count: number;
}

/**
 * Intended send times of an open-model load: arrival i (0-based) is due at timeOfArrival(i) ms after the
 * start, whatever happened to the earlier ones. Latency measured from these times is free of
 * coordinated omission: a stalled server makes the later requests late, and that lateness is counted.
 */
export class ArrivalClock {
  private readonly segments: Segment[] = [];
  readonly totalArrivals: number;
  readonly durationMs: number;
  private cursor = 0;

  constructor(profile: ArrivalProfile, share = 1) {
    let rate = profile.startRate * share;
    let startMs = 0;
    let before = 0;
    for (const stage of profile.stages) {
      const toRate = stage.target * share;
      const count = ((rate + toRate) / 2) * (stage.durationMs / 1000);
      this.segments.push({ startMs, durationMs: stage.durationMs, fromRate: rate, toRate, before, count });
      before += count;
      startMs += stage.durationMs;
      rate = toRate;
    }
    this.totalArrivals = Math.floor(before);
    this.durationMs = startMs;
  }

  /**
   * Whole arrivals due in [0, tMs): those whose timeOfArrival is before tMs. Arrival i is due at the
   * time the expected count reaches i, so the count is the expected count rounded up (rounding down, as
   * this once did, sent each arrival one interval after its intended time, and an open-model latency,
   * measured from that time, carried the interval: 5 ms at 200/s).
   */
  arrivalsBy(tMs: number): number {
    if (tMs <= 0) return 0;
    if (tMs >= this.durationMs) return this.totalArrivals;
    for (const s of this.segments) {
      if (tMs < s.startMs + s.durationMs) {
        const t = Math.max(0, tMs - s.startMs) / 1000;
        const slope = (s.toRate - s.fromRate) / (s.durationMs / 1000);
        const expected = s.before + s.fromRate * t + (slope * t * t) / 2;
        // The tolerance keeps an arrival due exactly at tMs out of [0, tMs) despite rounding.
        return Math.min(this.totalArrivals, Math.ceil(expected - 1e-9));
      }
    }
    return this.totalArrivals;
  }

  /** When arrival i is due, in ms after the start. Calls with rising i are O(1) amortised. */
  timeOfArrival(i: number): number {
    while (this.cursor > 0 && (this.segments[this.cursor]?.before ?? 0) > i) this.cursor--;
    while (this.cursor < this.segments.length - 1 && (this.segments[this.cursor + 1]?.before ?? Infinity) <= i) this.cursor++;
    const s = this.segments[this.cursor];
    if (s === undefined) return 0;
    const n = i - s.before;
    const seconds = s.durationMs / 1000;
    const slope = (s.toRate - s.fromRate) / seconds;
    let t: number;
    if (Math.abs(slope) < 1e-9) t = s.fromRate > 0 ? n / s.fromRate : 0;
    else t = (-s.fromRate + Math.sqrt(Math.max(0, s.fromRate * s.fromRate + 2 * slope * n))) / slope;
    return s.startMs + Math.min(seconds, Math.max(0, t)) * 1000;
  }
}
