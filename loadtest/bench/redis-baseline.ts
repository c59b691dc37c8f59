// Baseline: the authorize script alone. One ioredis connection with auto-pipelining (the switch's own
// Redis settings) drives Ledger.authorize, the switch's typed FCALL wrapper, from `lanes` concurrent
// callers: every call a new idempotency key on an approved card tap. It runs in its own key prefix of the
// bench's Redis (AOF, appendfsync always), so the switch's ledger and its checks are untouched.
import { Redis } from 'ioredis';
import { mapBounded } from '../../switch/data/import.js';
import { Keys } from '../../switch/ledger/keys.js';
import { Ledger, type HolderLimits } from '../../switch/ledger/ledger.js';
import { Scripts } from '../../switch/ledger/scripts.js';
import { benchAccountFields } from './campus.js';
import { Histogram, type LatencySummaryMs } from './histogram.js';

export interface RedisBaselineOptions {
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly shards: number;
  readonly accounts: number;
  readonly lanes: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly limits: { readonly student: HolderLimits; readonly staff: HolderLimits };
}

export interface RedisBaselineResult {
  readonly method: string;
  readonly lanes: number;
  readonly durationMs: number;
  readonly callsPerSec: number;
  readonly approvalsPerSec: number;
  readonly latency: LatencySummaryMs;
  readonly errors: number;
  readonly errorSamples: string[];
}

const REQUEST_TTL_SEC = 3600;

export async function runRedisBaseline(options: RedisBaselineOptions): Promise<RedisBaselineResult> {
  const redis = new Redis(options.redisUrl, {
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    lazyConnect: true,
  });
  await redis.connect();
  try {
    const keys = new Keys(options.keyPrefix, options.shards);
    const ledger = new Ledger(keys, await Scripts.load(redis), REQUEST_TTL_SEC);
    const cards = Array.from({ length: options.accounts }, (_, i) => ({
      cardNo: String(90_000_001 + i),
      serial: (0x9000_0000 + i).toString(16).toUpperCase(),
    }));
    await mapBounded(cards, 256, (c) =>
      ledger.openAccount({ cardNo: c.cardNo, openingFen: 100_000_000, fields: benchAccountFields(c.serial) }),
    );
    const histogram = new Histogram();
    const errorSamples: string[] = [];
    let sequence = 0,
      calls = 0,
      approvals = 0,
      errors = 0;
    const startMs = performance.now();
    const windowStartMs = startMs + options.warmupMs;
    const endMs = startMs + options.durationMs;
    const lane = async (laneIndex: number): Promise<void> => {
      while (performance.now() < endMs) {
        const card = cards[(sequence * 7 + laneIndex) % cards.length];
        if (card === undefined) return;
        const sentMs = performance.now();
        try {
          const result = await ledger.authorize({
            cardNo: card.cardNo,
            presentedSerial: card.serial,
            amountFen: 1250,
            credentialKind: 'card',
            terminalId: 'BENCH-REDIS',
            sequence: ++sequence,
            merchantId: 'BENCH',
            pinVerified: false,
            limits: options.limits,
          });
          if (sentMs >= windowStartMs) {
            calls++;
            if (result.code === 'approved') approvals++;
            histogram.record((performance.now() - sentMs) * 1000);
          }
        } catch (err) {
          errors++;
          if (errorSamples.length < 5) errorSamples.push(String(err));
        }
      }
    };
    await Promise.all(Array.from({ length: options.lanes }, (_, i) => lane(i)));
    const seconds = Math.max(0.001, (endMs - windowStartMs) / 1000);
    return {
      method: 'FCALL authorize.lua through Ledger.authorize (ioredis, one connection, auto-pipelining), in the bench process',
      lanes: options.lanes,
      durationMs: options.durationMs,
      callsPerSec: Math.round((calls / seconds) * 10) / 10,
      approvalsPerSec: Math.round((approvals / seconds) * 10) / 10,
      latency: histogram.summaryMs(),
      errors,
      errorSamples,
    };
  } finally {
    redis.disconnect();
  }
}
