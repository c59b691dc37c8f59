// The fault suite's machinery: a switch in a child process of its own (the production entry point,
// switch/main.ts, so kill -9 hits a real process), POS clients that retry a payment under the same
// (terminal, sequence) key until they get an answer, and the ledger check run after each fault.
import { spawn, type ChildProcess } from 'node:child_process';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import { checkLedger, type LedgerCheck } from '../../loadtest/bench/ledger-check.js';
import { CAMPUS_FILE_FORMAT, type CampusFile } from '../../loadtest/shared/campus-data.js';
import { Outcome } from '../../proto/gen/cardswitch/v1/common.js';
import { PosServiceClient, type AuthorizeRequest, type AuthorizeResponse } from '../../proto/gen/cardswitch/v1/pos.js';
import type { Keys } from '../../switch/ledger/keys.js';
import { TEST_PEPPER, TEST_QR_SECRET, TEST_SESSION_SECRET } from './switch.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SWITCH_START_TIMEOUT_MS = 30_000;
const OUTPUT_KEPT_CHARS = 8_000;

/** The switch's environment in the fault suite (switch/config.ts names every variable). */
export function faultSwitchEnv(redisUrl: string, grpcPort: number, keyPrefix: string, operatorToken: string): Record<string, string> {
  return {
    REDIS_URL: redisUrl,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: String(grpcPort),
    // The production entry point refuses plaintext unless told so; loopback tests are plaintext.
    GRPC_PLAINTEXT: 'allow',
    SWITCH_SERVES: 'grpc',
    KEY_PREFIX: keyPrefix,
    LEDGER_SHARDS: '16',
    TERMINAL_SECRET_PEPPER: TEST_PEPPER,
    PASSWORD_PEPPER: TEST_PEPPER,
    SESSION_SECRET: TEST_SESSION_SECRET,
    CAMPUS_QR_SECRET: TEST_QR_SECRET,
    OPERATOR_TOKENS: `faults:${operatorToken}`,
    TERMINAL_CACHE_MS: '1000',
    SHUTDOWN_GRACE_MS: '2000',
    // REDIS_COMMAND_TIMEOUT_MS stays at its production default (2 s), longer than a POS's deadline
    // (CALL_DEADLINE_MS): a stalled ledger must answer within the caller's deadline, not its own timeout.
    STUDENT_NO_PIN_PER_PAYMENT_FEN: '100000000',
    STUDENT_NO_PIN_PER_DAY_FEN: '100000000',
    STUDENT_DAILY_SPEND_LIMIT_FEN: '0',
    STAFF_NO_PIN_PER_PAYMENT_FEN: '100000000',
    STAFF_NO_PIN_PER_DAY_FEN: '100000000',
    STAFF_DAILY_SPEND_LIMIT_FEN: '0',
    PASSWORD_THREADS: '2',
    LOG_LEVEL: 'info',
  };
}

export interface SwitchChild {
  readonly pid: number;
  readonly grpcPort: number;
  /** True once the process has exited, asked or not. */
  exited(): boolean;
  /** True when it exited without the test asking (a crash). */
  crashed(): boolean;
  /** The last few KB of its stdout and stderr, for failure messages. */
  output(): string;
  kill9(): Promise<void>;
  /** SIGTERM: the graceful shutdown of main.ts. */
  stop(): Promise<void>;
}

/** Starts `node --import tsx switch/main.ts` and resolves once it logged "cardswitch ready". */
export async function startSwitchChild(env: Record<string, string>): Promise<SwitchChild> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'switch/main.ts'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let asked = false;
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-OUTPUT_KEPT_CHARS);
  };
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<number>((resolve, reject) => {
    let pending = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      keep(chunk);
      pending += chunk.toString();
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line.includes('"cardswitch ready"')) resolve(Number((JSON.parse(line) as { grpcPort: number }).grpcPort));
        newline = pending.indexOf('\n');
      }
    });
    child.stderr?.on('data', keep);
    void exit.then(() => reject(new Error(`the switch exited during start (${child.exitCode ?? child.signalCode}):\n${output}`)));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), SWITCH_START_TIMEOUT_MS);
  const grpcPort = await ready.finally(() => clearTimeout(timer));
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const signal = async (name: NodeJS.Signals): Promise<void> => {
    asked = true;
    if (!exited()) child.kill(name);
    await exit;
  };
  return {
    pid: child.pid ?? -1,
    grpcPort,
    exited,
    crashed: () => exited() && !asked,
    output: () => output,
    kill9: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
  };
}

export interface PosTerminal {
  readonly id: string;
  readonly secret: string;
}

export interface Approval {
  readonly terminalId: string;
  readonly sequence: number;
  readonly cardNo: string;
  readonly amountFen: number;
}

export interface LoadFigures {
  /** Calls sent, retries included. */
  requests: number;
  /** Payments started (distinct keys). */
  payments: number;
  /** Approvals the clients saw. */
  acknowledged: number;
  declined: number;
  /** Calls answered with a status the client retries (the payment's outcome unknown). */
  retried: number;
  /** Statuses of the retried calls by name. */
  retriedByCode: Record<string, number>;
  /** Payments that ended with a status a POS does not retry (INVALID_ARGUMENT ...): none should. */
  failed: number;
  /** Payments still unanswered when the load was stopped and its settle time ran out. */
  unanswered: number;
}

/** Statuses after which the POS cannot know the outcome and must ask again under the same key. */
const RETRIED = new Set<number>([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.CANCELLED, Status.INTERNAL, Status.UNKNOWN]);
/** A POS's deadline per call: shorter than the switch's Redis command timeout (2 s), as issue 9 measured. */
const CALL_DEADLINE_MS = 1_500;
/** The POS's pause before asking again; its behaviour under test, not a wait for the test's sake. */
const RETRY_BACKOFF_MS = 50;

/** Fast reconnects: the switch comes back within a second or two, and the default backoff starts at 1 s. */
export const CLIENT_OPTIONS = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 500,
  'grpc.min_reconnect_backoff_ms': 100,
} as const;

function metadataOf(t: PosTerminal): Metadata {
  const m = new Metadata();
  m.set('terminal-id', t.id);
  m.set('terminal-secret', t.secret);
  return m;
}

export function authorizeOnce(
  client: PosServiceClient,
  t: PosTerminal,
  request: AuthorizeRequest,
  deadlineMs = CALL_DEADLINE_MS,
): Promise<AuthorizeResponse> {
  return new Promise((resolve, reject) => {
    client.authorize(request, metadataOf(t), { deadline: Date.now() + deadlineMs }, (err, value) => (err ? reject(err) : resolve(value)));
  });
}

/**
 * POS clients, one channel and one payment at a time each, paying random cards. A payment is asked
 * again under the same key after every status whose outcome is unknown, until it is answered.
 */
export class PosLoad {
  readonly figures: LoadFigures = {
    requests: 0,
    payments: 0,
    acknowledged: 0,
    declined: 0,
    retried: 0,
    retriedByCode: {},
    failed: 0,
    unanswered: 0,
  };
  readonly failures: string[] = [];
  private stopping = false;
  private giveUpAtMs = Number.POSITIVE_INFINITY;
  private readonly clients: PosServiceClient[];
  private readonly runs: Promise<void>[] = [];
  private readonly waiters: { test: (f: LoadFigures) => boolean; resolve: () => void }[] = [];

  constructor(
    address: string,
    private readonly terminals: readonly PosTerminal[],
    private readonly cards: readonly { cardNo: string; serial: string }[],
    /** Every approval seen, across loads: the ledger check compares the journal with it. */
    private readonly approvals: Approval[],
    private readonly nextSequence: (terminalId: string) => number,
    /** Payments each terminal keeps in flight at once on its one channel (a front-end processor's many tills). */
    private readonly concurrency = 1,
  ) {
    this.clients = terminals.map(() => new PosServiceClient(address, credentials.createInsecure(), CLIENT_OPTIONS));
  }

  start(): this {
    this.terminals.forEach((t, i) => {
      for (let k = 0; k < this.concurrency; k++)
        this.runs.push(this.run(t, this.clients[i] as PosServiceClient, i + k * this.terminals.length));
    });
    return this;
  }

  /** Resolves once the figures pass `test` (checked on every answer: a condition, not a time). */
  until(test: (f: LoadFigures) => boolean): Promise<void> {
    if (test(this.figures)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  approvedAtLeast(count: number): Promise<void> {
    return this.until((f) => f.acknowledged >= count);
  }

  private wake(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i];
      if (w !== undefined && w.test(this.figures)) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** Starts no new payment; waits for the ones in flight to be answered, at most `settleMs`. */
  async stop(settleMs: number): Promise<LoadFigures> {
    if (!this.stopping) this.giveUpAtMs = Date.now() + settleMs;
    this.stopping = true;
    await Promise.all(this.runs);
    for (const c of this.clients) c.close();
    return this.figures;
  }

  private async run(t: PosTerminal, client: PosServiceClient, worker: number): Promise<void> {
    let n = worker;
    while (!this.stopping) {
      const card = this.cards[(n += 7) % this.cards.length];
      if (card === undefined) throw new Error('no cards');
      // 1.00 .. 19.99: well within every limit, so a decline would itself be a finding.
      const amountFen = 100 + ((n * 7919) % 1900);
      const request: AuthorizeRequest = {
        terminalId: t.id,
        sequenceNumber: this.nextSequence(t.id),
        amountFen,
        credential: { card: { cardSerial: card.serial } },
        pin: '',
      };
      this.figures.payments++;
      await this.payUntilAnswered(client, t, request, card.cardNo);
    }
  }

  private async payUntilAnswered(client: PosServiceClient, t: PosTerminal, request: AuthorizeRequest, cardNo: string): Promise<void> {
    for (;;) {
      if (Date.now() > this.giveUpAtMs) {
        this.figures.unanswered++;
        return;
      }
      this.figures.requests++;
      try {
        const answer = await authorizeOnce(client, t, request);
        this.record(answer, request, t, cardNo);
        return;
      } catch (err) {
        const code = (err as Partial<ServiceError>).code;
        if (code === undefined || !RETRIED.has(code)) {
          this.figures.failed++;
          if (this.failures.length < 5) this.failures.push(`${t.id}#${request.sequenceNumber}: ${(err as Error).message}`);
          return;
        }
        this.figures.retried++;
        const name = Status[code] ?? String(code);
        this.figures.retriedByCode[name] = (this.figures.retriedByCode[name] ?? 0) + 1;
        this.wake();
        await new Promise((resolve) => setTimeout(resolve, RETRY_BACKOFF_MS));
      }
    }
  }

  private record(answer: AuthorizeResponse, request: AuthorizeRequest, t: PosTerminal, cardNo: string): void {
    if (answer.outcome !== Outcome.OUTCOME_APPROVED) {
      this.figures.declined++;
      if (this.failures.length < 5)
        this.failures.push(`${t.id}#${request.sequenceNumber} declined: ${answer.declineReason} ${answer.displayText}`);
      return;
    }
    this.approvals.push({ terminalId: t.id, sequence: request.sequenceNumber, cardNo, amountFen: request.amountFen });
    this.figures.acknowledged++;
    this.wake();
  }
}

export interface FaultLedgerCheck {
  readonly ledger: LedgerCheck;
  /** Cards whose balance is not their opening balance minus the approvals the clients saw. */
  readonly balanceMismatches: string[];
}

/**
 * The bench's ledger check (every approval in the journal exactly once, no entry without an approval,
 * the audit) over the approvals of the whole file, and each card's balance = opening - its approvals.
 */
export async function checkFaultLedger(
  redis: Redis,
  keys: Keys,
  terminals: readonly PosTerminal[],
  openings: ReadonlyMap<string, number>,
  approvals: readonly Approval[],
): Promise<FaultLedgerCheck> {
  const index = new Map(terminals.map((t, i) => [t.id, i]));
  const campus: CampusFile = {
    format: CAMPUS_FILE_FORMAT,
    seed: 'faults',
    note: 'the fault suite',
    noPinPerPaymentFen: { student: 100_000_000, staff: 100_000_000 },
    cards: [],
    terminals: terminals.map((t) => ({ id: t.id, secret: t.secret, kind: 'canteen', merchantId: 'FAULTS' })),
  };
  const pairs = new Float64Array(approvals.length * 2);
  approvals.forEach((a, i) => {
    const terminal = index.get(a.terminalId);
    if (terminal === undefined) throw new Error(`approval of an unknown terminal ${a.terminalId}`);
    pairs[2 * i] = terminal;
    pairs[2 * i + 1] = a.sequence;
  });
  const ledger = await checkLedger(redis, keys, campus, [pairs], []);
  const spent = new Map<string, number>();
  for (const a of approvals) spent.set(a.cardNo, (spent.get(a.cardNo) ?? 0) + a.amountFen);
  const balanceMismatches: string[] = [];
  for (const [cardNo, openingFen] of openings) {
    const balanceFen = Number(await redis.hget(keys.account(cardNo), 'bal'));
    const expectedFen = openingFen - (spent.get(cardNo) ?? 0);
    if (balanceFen !== expectedFen)
      balanceMismatches.push(`card ${cardNo}: balance ${balanceFen}, opening ${openingFen} - approvals = ${expectedFen}`);
  }
  return { ledger, balanceMismatches };
}

/** Fails with `what` when `pending` takes longer than `ms`: a bounded wait on a condition. */
export async function within<T>(ms: number, what: string, pending: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([pending, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** One line CI shows per scenario. */
export function figuresLine(scenario: string, f: LoadFigures, check: FaultLedgerCheck, crashes: number, extra = ''): string {
  const p = check.ledger.payments;
  const codes =
    Object.entries(f.retriedByCode)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  return (
    `fault suite [${scenario}]: requests ${f.requests}, payments ${f.payments}, acknowledged ${f.acknowledged}, ` +
    `lost ${p.missing}, duplicated ${p.duplicated}, unexplained ${p.unexplained}, crashes ${crashes}, ` +
    `retried ${f.retried} (${codes}), declined ${f.declined}, failed ${f.failed}, unanswered ${f.unanswered}, ` +
    `audit ${check.ledger.audit.ok ? 'ok' : 'FAILED'}${extra === '' ? '' : `, ${extra}`}`
  );
}

const CLIENT_SESSION_MEMORY_MB = 256;

export interface RawAnswer {
  /** grpc-status of the answer, or undefined when the stream ended without one (reset, connection lost). */
  readonly status: number | undefined;
  readonly message: string;
  readonly body: Buffer;
  /** The HTTP/2 error that ended the stream, if any (e.g. NGHTTP2_ENHANCE_YOUR_CALM). */
  readonly streamError: string;
}

/**
 * One HTTP/2 connection written to directly, as a client of any language may: grpc-js's own client
 * paces a large message by flow control, a raw writer hands it over at once (the way issue 9 found
 * one 10 MiB message block every later stream of its connection).
 */
export class RawGrpcSession {
  private readonly session: http2.ClientHttp2Session;

  constructor(address: string) {
    // Node's HTTP/2 client keeps at most 10 MB per session by default and refuses its OWN streams with
    // ENHANCE_YOUR_CALM past it (measured: a 10 MiB write then fails before the switch says anything);
    // the client's limit is not what is under test, so it is raised well above the messages sent.
    this.session = http2.connect(`http://${address}`, { maxSessionMemory: CLIENT_SESSION_MEMORY_MB });
    this.session.on('error', () => undefined); // each stream reports its own end
  }

  unary(path: string, message: Uint8Array, metadata: Readonly<Record<string, string>>, deadlineMs: number): Promise<RawAnswer> {
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(message.length, 1);
    return new Promise((resolve) => {
      const stream = this.session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${deadlineMs}m`,
        ...metadata,
      });
      const chunks: Buffer[] = [];
      let status: number | undefined;
      let text = '';
      let streamError = '';
      const take = (headers: http2.IncomingHttpHeaders): void => {
        if (headers['grpc-status'] !== undefined) status = Number(headers['grpc-status']);
        if (headers['grpc-message'] !== undefined) text = decodeURIComponent(String(headers['grpc-message']));
      };
      const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), deadlineMs + 1_000);
      stream.on('response', take);
      stream.on('trailers', take);
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', (err: Error) => (streamError = err.message));
      stream.on('close', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks);
        resolve({ status, message: text, body: body.length >= 5 ? body.subarray(5) : body, streamError });
      });
      stream.end(Buffer.concat([prefix, message]));
    });
  }

  close(): void {
    this.session.close();
  }
}
