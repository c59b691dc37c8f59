// The bench's command line (loadtest/bench/options.ts): `--rate auto` plans the capacity run first.
import { describe, expect, it } from 'vitest';
import { DEFAULT_AUTO_RATE_FRACTION, parseOptions } from '../loadtest/bench/options.js';
import { mergeRounds } from '../loadtest/bench/redis-benchmark.js';

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
