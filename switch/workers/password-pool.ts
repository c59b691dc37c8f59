// A bounded piscina pool for card-password hashing. scrypt is synchronous CPU work (a full-cost hash is
// about 59 ms), so on the event loop it would stall every other request; in the pool it costs the
// main thread one message per task. Bulk hashing is batched many PINs per task, as the piscina docs advise.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import { MAX_PINS_PER_TASK, type PasswordTask, type PasswordWorkerData } from './password-worker.js';

/** The pool's queue is full: the caller should answer RESOURCE_EXHAUSTED and let the client retry later. */
export class PasswordPoolBusyError extends Error {
  override readonly name = 'PasswordPoolBusyError';
}

export interface PasswordPoolOptions {
  readonly pepper: string;
  /** Threads kept alive while idle; default 1 so the first verification does not pay a thread start. */
  readonly minThreads?: number;
  /** Default os.availableParallelism(). */
  readonly maxThreads?: number;
  /** Tasks waiting for a thread before PasswordPoolBusyError; default 1000. */
  readonly maxQueue?: number;
  /** An idle thread above minThreads exits after this long; default 30 s. */
  readonly idleTimeoutMs?: number;
}

export interface PasswordPoolStats {
  readonly threads: number;
  readonly queueSize: number;
  readonly completed: number;
  readonly utilization: number;
  readonly runTimeMsP50: number;
  readonly waitTimeMsP50: number;
  readonly waitTimeMsP99: number;
}

export const DEFAULT_MAX_QUEUE = 1000;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 30_000;
/**
 * One hashMany task carries about this much scrypt work (sum of N): 32 PINs at the import cost, 2 at full
 * cost, so a task holds its thread for roughly 100-120 ms and a live verification never waits behind seconds.
 */
const BATCH_COST_N = 32 * 1024;

// Sources run through tsx or vitest (this file ends .ts); the build runs from dist (.js). The worker
// is the sibling file with the same extension, and a .ts worker needs the tsx loader in its own thread:
// Node 20 does not pass the main thread's module hooks on to workers.
const MODULE_EXTENSION = extname(fileURLToPath(import.meta.url));
const WORKER_URL = new URL(`./password-worker${MODULE_EXTENSION}`, import.meta.url);

function workerExecArgv(): string[] {
  if (MODULE_EXTENSION !== '.ts') return [];
  // Resolved from this file, not the process's working directory, so `npx cardswitch` works from anywhere.
  const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return ['--import', tsxLoader];
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a whole number >= 1, got ${value}`);
  return value;
}

export function batchSizeFor(N: number): number {
  return Math.max(1, Math.min(MAX_PINS_PER_TASK, Math.floor(BATCH_COST_N / N)));
}

export class PasswordPool {
  private readonly pool: Piscina<PasswordTask, string | boolean | string[]>;
  readonly maxThreads: number;
  readonly maxQueue: number;

  constructor(options: PasswordPoolOptions) {
    if (options.pepper === '') throw new RangeError('the password pool needs a non-empty pepper');
    this.maxThreads = positiveInteger(options.maxThreads ?? availableParallelism(), 'maxThreads');
    const minThreads = Math.min(options.minThreads ?? 1, this.maxThreads);
    this.maxQueue = positiveInteger(options.maxQueue ?? DEFAULT_MAX_QUEUE, 'maxQueue');
    const workerData: PasswordWorkerData = { pepper: options.pepper };
    this.pool = new Piscina({
      filename: WORKER_URL.href,
      execArgv: workerExecArgv(),
      workerData,
      minThreads,
      maxThreads: this.maxThreads,
      maxQueue: this.maxQueue,
      idleTimeout: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      concurrentTasksPerWorker: 1,
      atomics: 'sync',
      closeTimeout: CLOSE_TIMEOUT_MS,
      recordTiming: true,
    });
  }

  async hash(pin: string, N: number): Promise<string> {
    return expectString(await this.run({ op: 'hash', pin, N }));
  }

  async verify(pin: string, encoded: string): Promise<boolean> {
    const result = await this.run({ op: 'verify', pin, encoded });
    if (typeof result !== 'boolean') throw new Error(`password worker answered ${typeof result} to verify`);
    return result;
  }

  /**
   * Hashes many PINs, in order. At most maxThreads * 2 tasks of one call are queued at once, so a bulk
   * import keeps every thread busy without filling the queue that live verifications share.
   */
  async hashMany(pins: readonly string[], N: number): Promise<string[]> {
    const size = batchSizeFor(N);
    const batches: string[][] = [];
    for (let i = 0; i < pins.length; i += size) batches.push(pins.slice(i, i + size));
    const results: string[][] = new Array<string[]>(batches.length);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < batches.length) {
        const index = next++;
        const batch = batches[index] ?? [];
        results[index] = expectStrings(await this.run({ op: 'hashMany', pins: batch, N }), batch.length);
      }
    };
    const lanes = Math.min(batches.length, this.maxThreads * 2);
    await Promise.all(Array.from({ length: lanes }, lane));
    return results.flat();
  }

  stats(): PasswordPoolStats {
    const histogram = this.pool.histogram;
    return {
      threads: this.pool.threads.length,
      queueSize: this.pool.queueSize,
      completed: this.pool.completed,
      utilization: this.pool.utilization,
      runTimeMsP50: histogram.runTime.p50,
      waitTimeMsP50: histogram.waitTime.p50,
      waitTimeMsP99: histogram.waitTime.p99,
    };
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private async run(task: PasswordTask): Promise<string | boolean | string[]> {
    // Checked here as well as by piscina so the caller gets one clear error class either way.
    if (this.pool.queueSize >= this.maxQueue) throw busy(this.maxQueue);
    try {
      return await this.pool.run(task);
    } catch (err) {
      if (err instanceof Error && err.message === 'Task queue is at limit') throw busy(this.maxQueue);
      throw err;
    }
  }
}

function busy(maxQueue: number): PasswordPoolBusyError {
  return new PasswordPoolBusyError(`password checks are busy (${maxQueue} waiting); try again shortly`);
}

function expectString(result: string | boolean | string[]): string {
  if (typeof result !== 'string') throw new Error(`password worker answered ${typeof result} to hash`);
  return result;
}

function expectStrings(result: string | boolean | string[], count: number): string[] {
  if (!Array.isArray(result) || result.length !== count) {
    throw new Error(`password worker answered ${JSON.stringify(result).slice(0, 80)} to hashMany of ${count}`);
  }
  return result;
}
