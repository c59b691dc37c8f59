// The open model's clock (loadtest/shared/profile.ts): an arrival is due as soon as its intended time
// has passed. The generator measures open-model latency from the intended time, so sending an arrival
// later than that (once: one whole interval, from rounding the count down) adds the delay to every
// figure, most at low rates: the streaming cross-check's 200/s measured 5 ms more than grpc-js.
import { describe, expect, it } from 'vitest';
import { ArrivalClock, constantProfile, lunchRushProfileForDuration } from '../loadtest/shared/profile.js';

describe('bench arrival clock', () => {
  it('makes each arrival of a constant rate due at its intended time, not one interval later', () => {
    const clock = new ArrivalClock(constantProfile(200, 1000));
    expect(clock.arrivalsBy(0)).toBe(0);
    expect(clock.arrivalsBy(0.001)).toBe(1);
    expect(clock.timeOfArrival(1)).toBeCloseTo(5, 9);
    expect(clock.arrivalsBy(4.999)).toBe(1);
    expect(clock.arrivalsBy(5)).toBe(1);
    expect(clock.arrivalsBy(5.001)).toBe(2);
    expect(clock.arrivalsBy(999.999)).toBe(200);
    expect(clock.arrivalsBy(1000)).toBe(200);
  });

  it('agrees with timeOfArrival on a ramping profile: arrival i is due just after its time, and not before', () => {
    const clock = new ArrivalClock(lunchRushProfileForDuration(3000, 9000), 0.5);
    for (let i = 0; i < clock.totalArrivals; i += 37) {
      const t = clock.timeOfArrival(i);
      expect(clock.arrivalsBy(t + 0.01)).toBeGreaterThanOrEqual(i + 1);
      if (t > 0.01) expect(clock.arrivalsBy(t - 0.01)).toBeLessThanOrEqual(i);
    }
  });
});
