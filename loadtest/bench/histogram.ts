// A log-linear latency histogram in microseconds (HdrHistogram's layout with 64 sub-buckets per power of
// two, so every recorded value is kept within 1.6 %). Fixed size, no allocation per value, and
// mergeable: each load-generator worker fills its own and the main thread adds them up.

const LINEAR_LIMIT = 128;
const SUB_BUCKETS = 64;
/** 2^30 us is about 18 minutes: every latency a run can see. */
const MAX_EXPONENT = 30;
export const HISTOGRAM_BUCKETS = LINEAR_LIMIT + (MAX_EXPONENT - 7 + 1) * SUB_BUCKETS;

function bucketOf(us: number): number {
  const v = Math.max(0, Math.min(Math.round(us), 2 ** MAX_EXPONENT - 1));
  if (v < LINEAR_LIMIT) return v;
  const exponent = 31 - Math.clz32(v);
  const sub = v >>> (exponent - 6);
  return LINEAR_LIMIT + (exponent - 7) * SUB_BUCKETS + (sub - SUB_BUCKETS);
}

/** The middle of a bucket's range, in microseconds. */
function valueOf(bucket: number): number {
  if (bucket < LINEAR_LIMIT) return bucket;
  const k = bucket - LINEAR_LIMIT;
  const shift = Math.floor(k / SUB_BUCKETS) + 1;
  const sub = SUB_BUCKETS + (k % SUB_BUCKETS);
  return (sub * 2 ** shift + ((sub + 1) * 2 ** shift - 1)) / 2;
}

export interface LatencySummaryMs {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export class Histogram {
  readonly counts: Float64Array;
  count = 0;
  sumUs = 0;
  maxUs = 0;

  constructor(counts?: ArrayLike<number>) {
    this.counts = new Float64Array(HISTOGRAM_BUCKETS);
    if (counts !== undefined) this.addCounts(counts);
  }

  record(us: number): void {
    this.counts[bucketOf(us)]! += 1;
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  addCounts(counts: ArrayLike<number>, sumUs = 0, maxUs = 0): void {
    if (counts.length !== HISTOGRAM_BUCKETS) throw new RangeError(`histogram of ${counts.length} buckets, expected ${HISTOGRAM_BUCKETS}`);
    for (let i = 0; i < counts.length; i++) {
      const c = counts[i] ?? 0;
      this.counts[i]! += c;
      this.count += c;
    }
    this.sumUs += sumUs;
    this.maxUs = Math.max(this.maxUs, maxUs);
  }

  merge(other: Histogram): void {
    this.addCounts(other.counts, other.sumUs, other.maxUs);
  }

  /** The value at quantile q (0..1), in microseconds; 0 when empty. */
  quantileUs(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return Math.min(valueOf(i), this.maxUs);
    }
    return this.maxUs;
  }

  summaryMs(): LatencySummaryMs {
    const ms = (us: number): number => Math.round(us) / 1000;
    return {
      count: this.count,
      mean: this.count === 0 ? 0 : ms(this.sumUs / this.count),
      p50: ms(this.quantileUs(0.5)),
      p95: ms(this.quantileUs(0.95)),
      p99: ms(this.quantileUs(0.99)),
      p999: ms(this.quantileUs(0.999)),
      max: ms(this.maxUs),
    };
  }
}
