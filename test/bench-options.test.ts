// The bench's command line (loadtest/bench/options.ts): `--rate auto` plans the capacity run first.
import { describe, expect, it } from 'vitest';
import { DEFAULT_AUTO_RATE_FRACTION, parseOptions } from '../loadtest/bench/options.js';
import { mergeRounds } from '../loadtest/bench/redis-benchmark.js';
import { pairedComparison, pairedSlice, ratiosOf, switchBudget, targetsOf, type BenchResult } from '../loadtest/bench/report.js';

describe('bench --rate', () => {
  it('auto: each open plan takes a fraction of its closed capacity, which runs first', () => {
    const o = parseOptions(['--scenario', 'tap-stream,lunch-rush', '--mode', 'open', '--rate', 'auto']);
    expect(o.plans).toEqual([
      { scenario: 'tap-stream', mode: 'closed', rate: undefined },
      { scenario: 'tap-stream', mode: 'open', rate: undefined, autoFraction: DEFAULT_AUTO_RATE_FRACTION },
      // The lunch rush's capacity is its own mix closed, not tap closed (the mix carries about a third).
      { scenario: 'lunch-rush', mode: 'closed', rate: undefined },
      { scenario: 'lunch-rush', mode: 'open', rate: undefined, autoFraction: DEFAULT_AUTO_RATE_FRACTION },
    ]);
  });

  it('auto:F sets the fraction; a closed plan asked for is not added twice; gateway keeps --http-rate', () => {
    const o = parseOptions(['--scenario', 'tap,gateway', '--rate', 'auto:0.5']);
    expect(o.plans.filter((p) => p.scenario === 'tap')).toEqual([
      { scenario: 'tap', mode: 'closed', rate: undefined },
      { scenario: 'tap', mode: 'open', rate: undefined, autoFraction: 0.5 },
    ]);
    expect(o.plans.find((p) => p.scenario === 'gateway' && p.mode === 'open')?.rate).toBe(2000);
  });

  it('a number stays an absolute rate; a bad auto fraction is refused', () => {
    expect(parseOptions(['--scenario', 'tap', '--mode', 'open', '--rate', '3000']).plans).toEqual([
      { scenario: 'tap', mode: 'open', rate: 3000 },
    ]);
    expect(() => parseOptions(['--rate', 'auto:1.5'])).toThrow(/auto:F/);
    expect(() => parseOptions(['--rate', 'auto:0'])).toThrow(/auto:F/);
  });
});

describe("redis-benchmark's rounds", () => {
  const round = (callsPerSec: number, cpu: number, p99: number, max: number) => ({
    available: true,
    note: 'floor',
    requests: 1000,
    callsPerSec,
    approvals: 1000,
    approvalsPerSec: callsPerSec,
    latencyMs: { avg: 1, p50: 1, p95: 2, p99, max },
    redisCpuUsPerCall: cpu,
    aofBytesPerCall: 190,
    memoryBytesPerCall: 130,
  });

  it('merges into rates over the whole time, footprints over all calls and the median round latency', () => {
    const merged = mergeRounds([round(1000, 20, 5, 9), round(500, 30, 7, 40), round(1000, 10, 6, 8)]);
    // 3000 calls in 1 + 2 + 1 s.
    expect(merged.requests).toBe(3000);
    expect(merged.callsPerSec).toBe(750);
    expect(merged.approvals).toBe(3000);
    expect(merged.approvalsPerSec).toBe(750);
    expect(merged.redisCpuUsPerCall).toBe(20);
    expect(merged.aofBytesPerCall).toBe(190);
    expect(merged.latencyMs?.p99).toBe(6);
    expect(merged.latencyMs?.max).toBe(40);
    expect(merged.note).toMatch(/3 rounds/);
  });

  it('has no footprint when a round has none, and gives back a failed round as it is', () => {
    expect(mergeRounds([round(1000, 20, 5, 9), { ...round(1000, 20, 5, 9), redisCpuUsPerCall: null }]).redisCpuUsPerCall).toBeNull();
    const failed = { available: true, note: "could not read redis-benchmark's CSV" };
    expect(mergeRounds([round(1000, 20, 5, 9), failed])).toBe(failed);
  });
});

describe('paired slices (--pairs)', () => {
  it('takes the defaults, and refuses a slice too short to measure', () => {
    expect(parseOptions([])).toMatchObject({ pairs: 3, pairDurationMs: 5000 });
    expect(parseOptions(['--quick'])).toMatchObject({ pairs: 1, pairDurationMs: 2000 });
    expect(parseOptions(['--pairs', '0', '--pair-duration', '0']).pairs).toBe(0);
    expect(() => parseOptions(['--pair-duration', '0.2'])).toThrow(/at least 0.5 s/);
    expect(() => parseOptions(['--pairs', '21'])).toThrow(/from 0 to 20/);
  });

  it('reports the median pair (odd and even counts), its spread, and no median when a pair has no ratio', () => {
    const odd = pairedComparison('tap closed', 'no-op unary', 5000, [
      pairedSlice(6000, 10_000, false),
      pairedSlice(4000, 10_000, true),
      pairedSlice(7000, 10_000, false),
    ]);
    expect(odd.pairs.map((p) => p.ratio)).toEqual([0.6, 0.4, 0.7]);
    expect(odd).toMatchObject({ medianRatio: 0.6, minRatio: 0.4, maxRatio: 0.7 });
    const even = pairedComparison('a', 'b', 5000, [pairedSlice(6, 10, false), pairedSlice(7, 10, true)]);
    expect(even.medianRatio).toBe(0.65);
    const broken = pairedComparison('a', 'b', 5000, [pairedSlice(6, 10, false), pairedSlice(7, 0, true)]);
    expect(broken.medianRatio).toBeNull();
    expect(pairedComparison('a', 'b', 5000, []).medianRatio).toBeNull();
  });

  it("turns a pair's target into what the switch may spend per answer, beside a server that does nothing", () => {
    // 2 cores, baseline 10,000/s, target 0.85: 8,500 answers/s leave 235.3 µs of CPU per answer; the
    // generator and Redis spent 80 + 50 of it in the subject slice.
    const b = switchBudget(0.85, 2, 10_000, { bench: 80, redis: 50, switch: 140 }, 95);
    expect(b).toEqual({ target: 0.85, cores: 2, switchUsAllowed: 105, switchUs: 140, noopServerUs: 95 });
    expect(switchBudget(0.8, 2, 10_000, { bench: 80, switch: 1 }, null).switchUsAllowed).toBeNull();
    const subject = { cpuUsPerAnswer: { bench: 80, redis: 50, switch: 140 }, cpuCores: {}, switchGc: null, disk: null } as never;
    const c = pairedComparison('tap closed', 'no-op unary', 5000, [
      pairedSlice(6000, 10_000, false, subject, { target: 0.85, cores: 2, noopServerUs: 95 }),
      pairedSlice(6000, 12_500, true, subject, { target: 0.85, cores: 2, noopServerUs: 99 }),
      pairedSlice(6000, 8000, false, subject, { target: 0.85, cores: 2, noopServerUs: 90 }),
    ]);
    // Allowances 105, 58 (2e6 / 10,625 - 130) and 164 (2e6 / 6,800 - 130): the median is 105.
    expect(c.pairs.map((p) => p.budget?.switchUsAllowed)).toEqual([105, 58, 164]);
    expect(c.budget).toEqual({ switchUsAllowed: 105, switchUs: 140, noopServerUs: 95 });
  });

  it('judges the 0.85 and 0.80 targets on the pairs when the run has them, on the single runs otherwise', () => {
    const scenario = (name: string, rate: number) =>
      ({ name, mode: 'closed', target: 'switch', achievedRate: rate, approvalsPerSec: rate, latencyMs: { p99: 1 } }) as never;
    const scenarios = [scenario('tap', 9000)];
    const baselines = {
      noopGrpc: { achievedRate: 10_000, latencyMs: { p99: 1 } },
      noopGrpcOpen: null,
      noopStream: null,
      noopStreamOpen: null,
      redisScript: null,
      redisBenchmarkScript: null,
      h2loadInquire: null,
    } as unknown as BenchResult['baselines'];
    // 0.9 from the single runs: met.
    expect(targetsOf(scenarios, ratiosOf(scenarios, baselines), null)['tapClosedAtLeast85PercentOfNoop']).toBe(true);
    // The alternating slices say 0.7: not met.
    const paired = {
      tapClosedVsNoopGrpc: pairedComparison('tap closed', 'no-op unary', 5000, [pairedSlice(7000, 10_000, false)]),
      tapStreamClosedVsNoopStream: null,
      tapStreamClosedVsRedisProjectWork: pairedComparison('tap-stream closed', 'work', 5000, [pairedSlice(9000, 10_000, true)]),
    };
    const ratios = ratiosOf(scenarios, baselines, null, paired);
    expect(ratios['pairedTapClosedVsNoopGrpc']).toBe(0.7);
    expect(ratios['tapClosedVsNoopGrpc']).toBe(0.9);
    const targets = targetsOf(scenarios, ratios, null);
    expect(targets['tapClosedAtLeast85PercentOfNoop']).toBe(false);
    expect(targets['tapStreamClosedAtLeast80PercentOfRedisProjectWork']).toBe(true);
  });
});
