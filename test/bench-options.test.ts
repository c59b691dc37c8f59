// The bench's command line (loadtest/bench/options.ts): `--rate auto` plans the capacity run first.
import { describe, expect, it } from 'vitest';
import { DEFAULT_AUTO_RATE_FRACTION, parseOptions } from '../loadtest/bench/options.js';

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
