// Fail fast while the ledger is known to be down. Both Redis clients of a switch (the hot-path
// pipeline and ioredis) share one breaker: once a command of either times out or a connection is
// lost, every further command is refused at once with LedgerDownError (the caller answers
// UNAVAILABLE: retry with the same sequence number) instead of waiting for a Redis that is not
// answering, and commands already waiting are released too. A probe (PING, on each connection) runs
// until Redis answers one; then the breaker closes and calls flow.
//
// Why: a stalled Redis (SIGSTOP, a Sentinel failover) used to hold every call for the whole command
// timeout, step after step (up to 3.8 s a payment), while new calls piled up behind; callers' deadlines
// passed and their cancellations (RST_STREAM) tripped nghttp2's rapid-reset guard (1,000 resets, then
// 33 a second), which ends the whole HTTP/2 connection with GOAWAY(INTERNAL_ERROR): every call on it
// failed with INTERNAL (test/ledger-stall.test.ts).
import { Command, type Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { IdTable } from '../id-table.js';

/**
 * The ledger is known to be down. `sent` false: refused before anything went to Redis; true: the
 * command was sent and its caller stopped waiting when the breaker opened (its outcome is unknown).
 */
export class LedgerDownError extends Error {
  override readonly name = 'LedgerDownError';
  constructor(
    /** The client that refused (for cardswitch_redis_errors_total). */
    readonly client: 'pipeline' | 'ioredis',
    reason: string,
    readonly sent: boolean,
  ) {
    super(
      sent
        ? `Connection is closed: the ledger stopped answering (${reason}) while this command waited; its outcome is unknown`
        : `Connection is closed: the ledger is not answering (${reason}); nothing was sent`,
    );
  }
}

export interface BreakerOptions {
  /** Pause between two failed probes. A probe sent while Redis is stalled is answered as soon as it resumes. */
  readonly probeIntervalMs: number;
  /**
   * While open, a command waits this long for the breaker to close before it is refused: a command
   * sent the moment Redis resumes goes through instead of being refused a millisecond before the
   * probe's answer arrives. Short: it is how long a refusal takes while the ledger is down.
   */
  readonly holdMs: number;
  /** At most this many commands held at once; beyond that, refused at once. */
  readonly maxHeld: number;
  readonly log: Logger;
}

type Probe = () => Promise<unknown>;
/** Answers the commands a client has waiting, with the reason the breaker opened. */
type Releaser = (reason: string) => void;
type Client = 'pipeline' | 'ioredis';

export class LedgerBreaker {
  private openReason: string | undefined;
  private openedAtMs = 0;
  private readonly probes: Probe[] = [];
  private readonly releasers: Releaser[] = [];
  private readonly sleepers: (() => void)[] = [];
  private readonly held = new Set<() => void>();
  private stopped = false;

  constructor(private readonly options: BreakerOptions) {}

  /** True while the ledger is known to be down. */
  get isOpen(): boolean {
    return this.openReason !== undefined;
  }

  /** The refusal for a command while open. */
  refusal(client: Client): LedgerDownError {
    return new LedgerDownError(client, this.openReason ?? 'the ledger connection broke', false);
  }

  /** While open: resolves if the breaker closes within holdMs, else rejects with the refusal. */
  admit(client: Client): Promise<void> {
    if (this.openReason === undefined) return Promise.resolve();
    if (this.held.size >= this.options.maxHeld) return Promise.reject(this.refusal(client));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.held.delete(admitted);
        reject(this.refusal(client));
      }, this.options.holdMs);
      const admitted = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.held.add(admitted);
    });
  }

  /**
   * A client joins: `probe` checks its connection answers (it must bypass the breaker); `release`
   * fails the commands it has waiting when the breaker opens.
   */
  attach(probe: Probe, release: Releaser): void {
    this.probes.push(probe);
    this.releasers.push(release);
  }

  /** A command timed out or a connection was lost: open, release what waits, probe until Redis answers. */
  trip(reason: string): void {
    if (this.stopped || this.openReason !== undefined) return;
    this.openReason = reason;
    this.openedAtMs = Date.now();
    this.options.log.warn({ reason }, 'ledger unavailable: refusing ledger calls until Redis answers again');
    for (const release of this.releasers) release(reason);
    // Each client probes on its own connection; the first answer closes the breaker (a client whose
    // connection is still coming back waits for it, or refuses, on its own terms).
    for (const probe of this.probes) void this.probeUntilClosed(probe);
  }

  /** Redis answered (a probe, or ioredis's ready check after a reconnect): calls flow again. */
  close(): void {
    if (this.openReason === undefined) return;
    this.openReason = undefined;
    this.options.log.warn({ downMs: Date.now() - this.openedAtMs }, 'ledger available again');
    const held = [...this.held];
    this.held.clear();
    for (const admitted of held) admitted();
    this.wake();
  }

  /** A client's connection is (back) up: probe now instead of after the pause. */
  wake(): void {
    for (const wake of this.sleepers.splice(0)) wake();
  }

  private async probeUntilClosed(probe: Probe): Promise<void> {
    while (this.openReason !== undefined && !this.stopped) {
      const sentMs = Date.now();
      try {
        await probe();
        this.close();
      } catch {
        // A probe that waited out its command timeout is followed at once, so one is always waiting
        // in Redis while it is stalled (answered the moment it resumes); one refused at once (no
        // connection) is repeated after probeIntervalMs, or when the connection is back (wake).
        const waitMs = this.options.probeIntervalMs - (Date.now() - sentMs);
        if (waitMs > 0) await this.sleep(waitMs);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const sleepers = this.sleepers;
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        const i = sleepers.indexOf(done);
        if (i >= 0) sleepers.splice(i, 1);
        resolve();
      }
      sleepers.push(done);
    });
  }

  /** The switch is stopping: no more probes. */
  stop(): void {
    this.stopped = true;
    this.wake();
  }
}

/** Whether an ioredis failure means the ledger did not answer (rather than a refusal by Redis). */
function isOutage(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const m = err.message;
  return (
    m.includes('Command timed out') ||
    m.includes('Connection is closed') ||
    m.includes("Stream isn't writeable") ||
    m.includes('ECONNRESET') ||
    m.includes('ECONNREFUSED')
  );
}

interface IoredisCommand {
  readonly name: string;
  readonly promise: Promise<unknown>;
  reject(err: Error): void;
}

/**
 * Puts `redis` (ioredis) behind the breaker: commands are refused while it is open (after the short
 * hold; once the connection is ready: ioredis's own start-up commands pass), a command that times out
 * or finds the connection gone opens it, and the commands waiting when it opens are released. The
 * probe is a PING sent past the guard.
 */
export function guardIoredis(redis: Redis, breaker: LedgerBreaker): void {
  const send = redis.sendCommand.bind(redis) as (command: IoredisCommand, ...rest: unknown[]) => unknown;
  // Not a Set: one entry comes and goes per command (switch/id-table.ts says why that matters).
  const waiting = new IdTable<IoredisCommand>();
  let lastId = 0;
  const sendWatched = (command: IoredisCommand, rest: unknown[]): unknown => {
    const result = send(command, ...rest);
    const id = (lastId = (lastId + 1) % 0x7fffffff);
    waiting.set(id, command);
    command.promise.then(
      () => waiting.delete(id),
      (err: unknown) => {
        waiting.delete(id);
        if (isOutage(err)) breaker.trip(`ioredis ${command.name}: ${(err as Error).message}`);
      },
    );
    return result;
  };
  const guarded = (command: IoredisCommand, ...rest: unknown[]): unknown => {
    // Until the connection is ready ioredis refuses by itself (no offline queue); its own start-up commands pass.
    if (!breaker.isOpen || redis.status !== 'ready') return sendWatched(command, rest);
    breaker.admit('ioredis').then(
      () => sendWatched(command, rest),
      (err: Error) => command.reject(err),
    );
    return command.promise;
  };
  (redis as unknown as { sendCommand: typeof guarded }).sendCommand = guarded;
  // Past the guard (and past auto-pipelining, which would send it later through the guard).
  const probe = (): Promise<unknown> => {
    const ping = new Command('ping', []);
    send(ping);
    return ping.promise;
  };
  // The ready check after a reconnect is an answer from Redis.
  redis.on('ready', () => breaker.close());
  breaker.attach(probe, (reason) => {
    // A late reply still finds its command in ioredis's queue (replies stay in step); the caller has its answer.
    const released = [...waiting.values()];
    waiting.clear();
    for (const command of released) command.reject(new LedgerDownError('ioredis', reason, true));
  });
}
