// A stalled ledger (Redis stopped with SIGSTOP, as in a Sentinel failover) under a steady load of
// payments on one HTTP/2 connection: every caller is answered UNAVAILABLE within its deadline (never
// INTERNAL), the connection stays up, service is back within a second of Redis resuming, and the POS
// retries with the same sequence numbers learn every outcome: each approval is in the ledger exactly
// once and the audit passes. Runs its own redis-server, as it stops it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { type Metadata, status as Status } from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse, StreamedAuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { PROTO_ROOT } from '../switch/grpc/server.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { createLogger } from '../switch/log.js';
import { startLocalRedis, type LocalRedis } from '../switch/redis/local-redis.js';
import { openCard, POS_TERMINAL, posClient, terminalMetadata, testConfig } from './helpers/switch.js';

const CALLS_PER_SECOND = 400;
const BEFORE_STALL_MS = 1000;
const STALL_MS = 8000;
const AFTER_RESUME_MS = 2500;
/** Service must be back this long after Redis resumes. */
const RECOVERY_MS = 1000;
/** The caller's deadline, shorter than the switch's Redis command timeout (2 s, the default): it must be passed down. */
const DEADLINE_MS = 1500;
const CARDS = 50;
const OPENING_FEN = 10_000_000;
const AMOUNT_FEN = 100;

interface Attempt {
  readonly sequence: number;
  readonly card: number;
  readonly startedMs: number;
  /** The caller's deadline (ms since the epoch). */
  readonly deadlineMs: number;
  endedMs: number;
  code: Status;
  details: string;
  outcome?: Outcome;
}

let dataDir = '';
// Set in beforeAll; afterAll checks each, as start-up may have failed half-way.
let redis: LocalRedis;
let app: SwitchApp;
let pos: ReturnType<typeof posClient>;

const cardNo = (i: number): string => String(7_100_000 + i);
const serialOf = (i: number): string => `5A${String(i).padStart(6, '0')}`;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cardswitch-ledger-stall-'));
  redis = await startLocalRedis({ dataDir, port: 0, appendOnly: true, appendFsync: 'everysec', startTimeoutMs: 10_000 });
  const config = { ...testConfig('stall', { REDIS_COMMAND_TIMEOUT_MS: '2000' }), redisUrl: redis.url };
  app = await startSwitch(config, createLogger(config.logLevel));
  await prepare(app);
  pos = posClient(app);
});

afterAll(async () => {
  // Each step even when start-up failed: the redis-server of this file must not outlive it.
  pos?.close();
  redis?.process.kill('SIGCONT');
  await app?.stop();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A switch under test and the POS client of the test's own retries. */
interface Target {
  readonly app: SwitchApp;
  readonly pos: ReturnType<typeof posClient>;
}

/** Terminal and cards of a switch under test. */
async function prepare(target: SwitchApp): Promise<void> {
  await target.terminals.register(POS_TERMINAL);
  for (let i = 0; i < CARDS; i++) await openCard(target, cardNo(i), serialOf(i), OPENING_FEN);
}

/** A payment of the POS retrying below (the load itself runs in a worker thread: pos-load-worker.mjs). */
function pay(
  { pos }: Target,
  sequence: number,
  card: number,
  metadata: Metadata,
): Promise<{ code: Status; details: string; outcome?: Outcome }> {
  const request = {
    terminalId: POS_TERMINAL.id,
    sequenceNumber: sequence,
    amountFen: AMOUNT_FEN,
    credential: { card: { cardSerial: serialOf(card) } },
    pin: '',
  };
  return new Promise((resolve) => {
    pos.authorize(request, metadata, { deadline: Date.now() + 5000 }, (err, response?: AuthorizeResponse) => {
      if (err) resolve({ code: err.code, details: err.details });
      else resolve({ code: Status.OK, details: '', outcome: response?.outcome });
    });
  });
}

interface LoadResult {
  readonly attempts: Attempt[];
  /** Connectivity states the load's channel went through after it was ready, then `final <state>`. */
  readonly states: string[];
  /** The load thread's worst event loop delay. */
  readonly loopDelayMaxMs: number;
}

/** Open-model load on one channel, CALLS_PER_SECOND started on schedule whatever the answers take; `onStarted` at its start. */
function load({ app }: Target, durationMs: number, onStarted: (atMs: number) => void): Promise<LoadResult> {
  const worker = new Worker(new URL('./helpers/pos-load-worker.mjs', import.meta.url), {
    workerData: {
      address: `127.0.0.1:${app.grpcPort}`,
      terminalId: POS_TERMINAL.id,
      terminalSecret: POS_TERMINAL.secret,
      serials: Array.from({ length: CARDS }, (_, i) => serialOf(i)),
      amountFen: AMOUNT_FEN,
      callsPerSecond: CALLS_PER_SECOND,
      durationMs,
      deadlineMs: DEADLINE_MS,
      protoRoot: PROTO_ROOT,
    },
  });
  return new Promise((resolve, reject) => {
    type Sent = Omit<Attempt, 'outcome'> & { outcome: string };
    worker.on(
      'message',
      (message: { type: 'started'; atMs: number } | ({ type: 'done'; attempts: Sent[] } & Omit<LoadResult, 'attempts'>)) => {
        if (message.type === 'started') return onStarted(message.atMs);
        const attempts = message.attempts.map((a) => ({
          ...a,
          outcome: a.outcome === '' ? undefined : Outcome[a.outcome as keyof typeof Outcome],
        }));
        void worker.terminate().then(() => resolve({ attempts, states: message.states, loopDelayMaxMs: message.loopDelayMaxMs }));
      },
    );
    worker.on('error', reject);
  });
}

/** What a POS does with a call that was not answered: the same payment again, same sequence number, until it is. */
async function retryUntilAnswered(target: Target, attempt: Attempt): Promise<Outcome | undefined> {
  const metadata = terminalMetadata(POS_TERMINAL);
  for (let i = 0; i < 50; i++) {
    const answer = await pay(target, attempt.sequence, attempt.card, metadata);
    if (answer.code === Status.OK) return answer.outcome;
    if (answer.code !== Status.UNAVAILABLE)
      throw new Error(`retry of sequence ${attempt.sequence}: ${Status[answer.code]} ${answer.details}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return undefined;
}

function summary(attempts: readonly Attempt[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of attempts) {
    // The first clause of the details: grpc-js appends timings and addresses that differ per call.
    const key = `${Status[a.code] ?? a.code}${
      a.code === Status.OK
        ? ''
        : `: ${
            a.details
              .replace(/ after [0-9.]+s.*/, '')
              .split(',')[0]
              ?.slice(0, 120) ?? ''
          }`
    }`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/**
 * Redis stopped for `stallMs` in the middle of the load: every refusal UNAVAILABLE before its deadline,
 * the connection untouched, full service RECOVERY_MS after Redis resumes, and the POS retries learn
 * every outcome: each approval charged once, the audit sound.
 */
async function stallUnderLoad(target: Target, stallMs: number): Promise<void> {
  const { app } = target;
  let stoppedAtMs = 0;
  let resumedAtMs = 0;
  let stall: Promise<void> = Promise.resolve();
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const { attempts, states, loopDelayMaxMs } = await load(target, BEFORE_STALL_MS + stallMs + AFTER_RESUME_MS, (startedMs) => {
    stall = new Promise<void>((resolve) => {
      setTimeout(
        () => {
          redis.process.kill('SIGSTOP');
          stoppedAtMs = Date.now();
          setTimeout(() => {
            redis.process.kill('SIGCONT');
            resumedAtMs = Date.now();
            resolve();
          }, stallMs);
        },
        Math.max(0, startedMs + BEFORE_STALL_MS - Date.now()),
      );
    });
  });
  await stall;
  loopDelay.disable();

  const counts = summary(attempts);
  const failed = attempts.filter((a) => a.code !== Status.OK);
  const slowest = Math.max(...failed.map((a) => a.endedMs - a.startedMs));
  console.log(
    `ledger stall: ${attempts.length} calls`,
    counts,
    `slowest refusal ${slowest} ms; channel states ${states.join(',')}; event loop delay: the switch's max ${Math.round(loopDelay.max / 1e6)} ms, p99 ${Math.round(loopDelay.percentile(99) / 1e6)} ms, the callers' max ${loopDelayMaxMs} ms`,
  );

  // Nothing failed before the stall, and everything after the recovery window was served.
  expect(summary(attempts.filter((a) => a.endedMs < stoppedAtMs))).toEqual({ OK: attempts.filter((a) => a.endedMs < stoppedAtMs).length });
  const late = attempts.filter((a) => a.startedMs >= resumedAtMs + RECOVERY_MS);
  expect(late.length).toBeGreaterThan(CALLS_PER_SECOND);
  expect(summary(late)).toEqual({ OK: late.length });
  // Every refusal is UNAVAILABLE (retry with the same sequence number), none INTERNAL, none past the deadline.
  expect(failed.length).toBeGreaterThan(0);
  expect(summary(failed.filter((a) => a.code !== Status.UNAVAILABLE))).toEqual({});
  for (const a of failed)
    expect(a.endedMs, `sequence ${a.sequence} answered ${a.endedMs - a.deadlineMs} ms after its deadline`).toBeLessThanOrEqual(
      a.deadlineMs,
    );
  // The one HTTP/2 connection stayed up: no GOAWAY, no reconnect.
  expect(states).toEqual(['final READY']);

  // The POS retries every unanswered payment with its sequence number and learns the real outcome.
  const outcomes = new Map<number, Outcome | undefined>();
  for (const a of attempts) if (a.code === Status.OK) outcomes.set(a.sequence, a.outcome);
  for (let i = 0; i < failed.length; i += 200) {
    await Promise.all(failed.slice(i, i + 200).map(async (a) => outcomes.set(a.sequence, await retryUntilAnswered(target, a))));
  }
  expect([...outcomes.values()].every((o) => o === Outcome.OUTCOME_APPROVED)).toBe(true);
  expect(outcomes.size).toBe(attempts.length);

  // Ledger check: each card paid exactly the approvals its payments got, each once; the audit is sound.
  for (let card = 0; card < CARDS; card++) {
    const approved = attempts.filter((a) => a.card === card).length;
    expect(Number(await app.redis.hget(app.keys.account(cardNo(card)), 'bal'))).toBe(OPENING_FEN - approved * AMOUNT_FEN);
  }
  const report = await auditLedger(app.redis, app.keys);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
}

it(`Redis stopped ${STALL_MS / 1000} s under ${CALLS_PER_SECOND} calls/s on one connection: UNAVAILABLE within the deadline, no INTERNAL, back within ${RECOVERY_MS} ms, money exact`, async () => {
  await stallUnderLoad({ app, pos }, STALL_MS);
}, 60_000);

it('the same with ioredis alone (a Redis URL naming a database has no hot-path pipeline client), Redis stopped 3 s', async () => {
  const config = { ...testConfig('stallio', { REDIS_COMMAND_TIMEOUT_MS: '2000' }), redisUrl: `${redis.url}/0` };
  const alone = await startSwitch(config, createLogger(config.logLevel));
  const client = posClient(alone);
  try {
    await prepare(alone);
    await stallUnderLoad({ app: alone, pos: client }, 3000);
  } finally {
    client.close();
    await alone.stop();
  }
}, 60_000);

it('AuthorizeStream while Redis is stopped: each payment answered UNAVAILABLE under its tag, the stream goes on and pays once Redis is back', async () => {
  const stream = pos.authorizeStream();
  const answers = new Map<number, StreamedAuthorizeResponse & { atMs: number }>();
  let onAnswer: (() => void) | undefined;
  stream.on('data', (answer: StreamedAuthorizeResponse) => {
    answers.set(answer.tag, { ...answer, atMs: Date.now() });
    onAnswer?.();
  });
  stream.on('error', () => undefined);
  const until = (tags: readonly number[]): Promise<void> =>
    new Promise((resolve) => {
      onAnswer = () => tags.every((t) => answers.has(t)) && resolve();
      onAnswer();
    });
  const firstSequence = 1_000_000;
  const send = (tag: number): void => {
    stream.write({
      tag,
      terminalSecret: POS_TERMINAL.secret,
      request: {
        terminalId: POS_TERMINAL.id,
        sequenceNumber: firstSequence + tag,
        amountFen: AMOUNT_FEN,
        credential: { card: { cardSerial: serialOf(tag % CARDS) } },
        pin: '',
      },
    });
  };
  const TAGS = 13; // each tag pays its own card (tag % CARDS)
  const balances = async (): Promise<number[]> =>
    Promise.all(Array.from({ length: TAGS }, async (_, i) => Number(await app.redis.hget(app.keys.account(cardNo(i + 1)), 'bal'))));
  const before = await balances();

  send(1);
  await until([1]);
  expect(answers.get(1)?.response?.outcome).toBe(Outcome.OUTCOME_APPROVED);
  redis.process.kill('SIGSTOP');
  const stoppedAtMs = Date.now();
  try {
    for (let tag = 2; tag <= 11; tag++) send(tag);
    await until([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // The ledger is known down now: a payment sent now is refused at once, not after the command timeout.
    const sentMs = Date.now();
    send(12);
    await until([12]);
    expect(answers.get(12)?.atMs ?? Infinity).toBeLessThan(sentMs + 500);
  } finally {
    redis.process.kill('SIGCONT');
  }
  for (let tag = 2; tag <= 12; tag++) {
    expect(answers.get(tag)?.error?.code, `tag ${tag}`).toBe(Status.UNAVAILABLE);
    // At most the command timeout (2 s) for those waiting when Redis stopped.
    expect((answers.get(tag)?.atMs ?? Infinity) - stoppedAtMs).toBeLessThan(3000);
  }
  // The same stream, Redis back: a new payment is approved, and the refused ones retried with their
  // sequence numbers are each approved once (the stall may or may not have let them through).
  send(13);
  await until([13]);
  expect(answers.get(13)?.response?.outcome).toBe(Outcome.OUTCOME_APPROVED);
  for (let tag = 2; tag <= 12; tag++) {
    answers.delete(tag);
    send(tag);
  }
  await until([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  for (let tag = 2; tag <= 12; tag++) expect(answers.get(tag)?.response?.outcome, `retry of tag ${tag}`).toBe(Outcome.OUTCOME_APPROVED);
  stream.end();
  // Each of the 13 payments was charged exactly once.
  expect(await balances()).toEqual(before.map((fen) => fen - AMOUNT_FEN));
}, 30_000);
