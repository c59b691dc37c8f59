// The contention-proof measure of Redis's work per payment (loadtest/bench/redis-instructions.ts): a
// private redis-server under callgrind, driven by redis-benchmark. Checks that it runs and that its
// figures mean what the report says (the claim alone is far below the floor, a payment above it, the
// claim inside the script costs about what it costs on its own), not the figures themselves.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { measureRedisInstructions } from '../loadtest/bench/redis-instructions.js';

const missing = ['valgrind', 'redis-benchmark'].filter((tool) => spawnSync(tool, ['--version']).status !== 0);
if (missing.length > 0) process.stderr.write(`redis-instructions test skipped: ${missing.join(', ')} not installed\n`);

describe.skipIf(missing.length > 0)(
  `Redis instructions per call${missing.length > 0 ? ` (skipped: ${missing.join(', ')} missing)` : ''}`,
  () => {
    it('counts the floor, the claim and a payment with and without its claim, each per call', async () => {
      const result = await measureRedisInstructions({ calls: 300, rounds: 1, clients: 8 });
      const k = Object.fromEntries(result.subjects.map((s) => [s.name, s.kInstructionsPerCall]));
      expect(k['floor']).toBeGreaterThan(10);
      expect(k['claim']).toBeLessThan(k['floor']!);
      expect(k['authorize']).toBeGreaterThan(k['floor']!);
      const claimInside = k['authorize']! - k['authorizeWithoutClaim']!;
      expect(claimInside).toBeGreaterThan(0);
      expect(claimInside).toBeLessThan(3 * k['claim']!);
      expect(result.perPaymentVsFloor).toBeCloseTo(k['authorize']! / k['floor']!, 1);
    }, 180_000);
  },
);
