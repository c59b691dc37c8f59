// One load-generator thread: gRPC frames written by shared/wire.ts over HTTP/2, with no gRPC client
// library in the way. Two transports: the bench's own minimal HTTP/2 client (h2-raw.ts, the default:
// a few microseconds per call) and node:http2 (tens of microseconds per call; kept as a cross-check).
// Open model: arrivals at the profile's rate, latency measured from each arrival's intended time.
// Closed model: a fixed number of requests in flight, each lane sending its next as soon as one ends.
import { connect, constants, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { ArrivalClock, peakWindowMs } from '../shared/profile.js';
import { isExpectedAnswer, MIX_KEYS, rpcPath, TrafficPlanner, type PlannedCall } from '../shared/traffic.js';
import {
  encodeCallFrame,
  encodeStreamedAuthorizeFrame,
  GRPC_FRAME_HEADER_BYTES,
  grpcFrame,
  readStreamedAnswer,
  utf8,
} from '../shared/wire.js';
import { NOT_SENT, RawH2Connection, type CallDone } from './h2-raw.js';
import { encodeRequestHeaders } from './hpack.js';
import { Histogram } from './histogram.js';
import type { GeneratorResult, GeneratorSettings, HistogramData, MainToWorker, WorkerToMain } from './protocol.js';
import { isUndecided, labelOf, Settlements } from './settlements.js';

const settings = workerData as GeneratorSettings;
const port = parentPort;
if (port === null) throw new Error('generator-worker.ts runs as a worker thread');

const MAX_ERROR_SAMPLES = 8;
/** Transport events (a connection or stream opened again) kept at the head of the samples. */
const MAX_TRANSPORT_SAMPLES = 3;
const SWEEP_INTERVAL_MS = 100;
const TICK_MS = 1;
const MAX_TIMELINE_SECONDS = 4 * 3600;

/** Milliseconds on a clock every thread of the process shares. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

class GrowableFloats {
  private data = new Float64Array(4096);
  length = 0;
  push(a: number, b: number): void {
    if (this.length + 2 > this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = a;
    this.data[this.length++] = b;
  }
  finish(): Float64Array {
    return this.data.slice(0, this.length);
  }
}

interface InFlight {
  readonly planned: PlannedCall;
  readonly intendedMs: number;
  readonly sentMs: number;
  cancel: () => void;
  done: boolean;
}

/** Sends one gRPC call; returns how to cancel it. `done` runs exactly once. */
interface Transport {
  connect(): Promise<void>;
  send(planned: PlannedCall, frame: Uint8Array, done: CallDone): () => void;
  close(): void;
}

class NodeHttp2Transport implements Transport {
  private readonly sessions: ClientHttp2Session[] = [];
  private readonly headerCache = new Map<string, OutgoingHttpHeaders>();
  private next = 0;

  constructor(
    private readonly s: GeneratorSettings,
    private readonly onSessionError: (message: string) => void,
  ) {}

  async connect(): Promise<void> {
    for (let i = 0; i < this.s.connections; i++) {
      const session = connect(`http://${this.s.host}:${this.s.port}`);
      await new Promise<void>((resolve, reject) => {
        session.once('connect', () => resolve());
        session.once('error', reject);
      });
      session.on('error', (err: Error) => this.onSessionError(`session: ${err.message}`));
      this.sessions.push(session);
    }
  }

  private headersFor(planned: PlannedCall): OutgoingHttpHeaders {
    const key = `${planned.call.rpc}|${planned.terminalIndex}`;
    let headers = this.headerCache.get(key);
    if (headers === undefined) {
      headers = {
        ':method': 'POST',
        ':scheme': 'http',
        ':authority': `${this.s.host}:${this.s.port}`,
        ':path': rpcPath(planned.call.rpc),
        'content-type': 'application/grpc',
        te: 'trailers',
        'terminal-id': planned.terminal.id,
        'terminal-secret': planned.terminal.secret,
      };
      this.headerCache.set(key, headers);
    }
    return headers;
  }

  send(planned: PlannedCall, frame: Uint8Array, done: CallDone): () => void {
    const session = this.sessions[this.next++ % this.sessions.length];
    if (session === undefined) throw new Error('no HTTP/2 session');
    const stream = session.request(this.headersFor(planned), { endStream: false });
    const chunks: Buffer[] = [];
    let grpcStatus = -1;
    let grpcMessage = '';
    let transportError: string | undefined;
    const readStatus = (headers: Record<string, unknown>): void => {
      const status = headers['grpc-status'];
      if (status !== undefined) grpcStatus = Number(status);
      const message = headers['grpc-message'];
      if (typeof message === 'string') grpcMessage = message;
    };
    stream.on('response', readStatus);
    stream.on('trailers', readStatus);
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', (err: Error) => (transportError = err.message));
    stream.on('close', () => {
      const body = chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      if (stream.rstCode === constants.NGHTTP2_CANCEL) done(-1, '', undefined, 'cancelled');
      else done(grpcStatus, grpcMessage, body, grpcStatus < 0 ? (transportError ?? `stream closed (code ${stream.rstCode})`) : undefined);
    });
    stream.end(frame);
    return () => stream.close(constants.NGHTTP2_CANCEL);
  }

  close(): void {
    for (const session of this.sessions) session.close();
  }
}

class RawTransport implements Transport {
  private readonly connections: RawH2Connection[] = [];
  private readonly blocks = new Map<string, Uint8Array>();
  private readonly reconnecting = new Set<number>();
  private closing = false;
  private next = 0;

  constructor(
    private readonly s: GeneratorSettings,
    private readonly onConnectionLost: (message: string) => void,
  ) {}

  async connect(): Promise<void> {
    for (let i = 0; i < this.s.connections; i++) this.connections.push(await RawH2Connection.connect(this.s.host, this.s.port));
  }

  /**
   * An open connection, round robin. A lost one (the server's GOAWAY, a reset socket) is replaced in
   * the background, as a POS reconnects; while none is open a call fails on the next turn of the event
   * loop (a transport error of a call that never left this client: nothing to settle).
   */
  private pick(): RawH2Connection {
    for (let tries = 0; tries < this.connections.length; tries++) {
      const index = this.next++ % this.connections.length;
      const connection = this.connections[index];
      if (connection === undefined) break;
      if (connection.closed === undefined) return connection;
      this.reconnect(index, connection.closed);
    }
    const any = this.connections[0];
    if (any === undefined) throw new Error('no HTTP/2 connection');
    return any;
  }

  private reconnect(index: number, reason: string): void {
    if (this.reconnecting.has(index) || this.closing) return;
    this.reconnecting.add(index);
    this.onConnectionLost(`connection ${index} lost (${reason}); reconnecting`);
    RawH2Connection.connect(this.s.host, this.s.port).then(
      (connection) => {
        this.reconnecting.delete(index);
        if (this.closing) connection.close();
        else this.connections[index] = connection;
      },
      // The next call on this slot tries again.
      () => this.reconnecting.delete(index),
    );
  }

  private blockFor(planned: PlannedCall): Uint8Array {
    const key = `${planned.call.rpc}|${planned.terminalIndex}`;
    let block = this.blocks.get(key);
    if (block === undefined) {
      block = encodeRequestHeaders([
        [':method', 'POST'],
        [':scheme', 'http'],
        [':path', rpcPath(planned.call.rpc)],
        [':authority', `${this.s.host}:${this.s.port}`],
        ['content-type', 'application/grpc'],
        ['te', 'trailers'],
        ['user-agent', 'cardswitch-bench'],
        ['terminal-id', planned.terminal.id],
        ['terminal-secret', planned.terminal.secret],
      ]);
      this.blocks.set(key, block);
    }
    return block;
  }

  /**
   * Giving up on a call sends nothing once it has left the queue: no RST_STREAM, the stream simply runs
   * to its answer, which is dropped. Resetting every timed-out stream is what an HTTP/2 server's
   * rapid-reset guard (CVE-2023-44487) counts: Node's nghttp2 ends the connection with GOAWAY
   * INTERNAL_ERROR after about a thousand resets, which took every later call of an overloaded run
   * with it. A call still waiting in this client's queue (never written) is dropped from it.
   */
  send(planned: PlannedCall, frame: Uint8Array, done: CallDone): () => void {
    const connection = this.pick();
    let ended = false;
    const once: CallDone = (grpcStatus, grpcMessage, body, transportError) => {
      if (ended) return;
      ended = true;
      done(grpcStatus, grpcMessage, body, transportError);
    };
    const lost = connection.closed;
    if (lost !== undefined) {
      // No connection open (being reconnected): the call fails on the next turn of the event loop, not
      // inside this one, so a closed-model lane that sends again at once lets the reconnection proceed.
      setImmediate(() => once(-1, '', undefined, `${NOT_SENT}${lost}`));
      return () => once(-1, '', undefined, 'cancelled');
    }
    const ref = connection.request(this.blockFor(planned), frame, once);
    return () => {
      if (ref.streamId === 0) connection.cancel(ref);
      else once(-1, '', undefined, 'cancelled');
    };
  }

  close(): void {
    this.closing = true;
    for (const connection of this.connections) connection.close();
  }
}

/** One long-lived AuthorizeStream: bytes out, and how to end it and its connection. */
interface StreamLane {
  write(data: Buffer): void;
  close(): void;
  outgoing: Uint8Array[];
  /** Tags sent on this stream and not yet answered. */
  readonly waiting: Set<number>;
  /** Why the stream ended (the switch ended it, the connection was lost); undefined while open. */
  ended: string | undefined;
}

/** How a lane's stream reports what it receives and its end. */
interface LaneEvents {
  readonly onAnswer: (message: Buffer) => void;
  readonly onEnd: (reason: string) => void;
}

const AUTHORIZE_STREAM_PATH = '/cardswitch.v1.PosService/AuthorizeStream';

/**
 * Authorize over PosService/AuthorizeStream, as a POS front-end processor sends it: one long-lived
 * gRPC stream per connection (per message it costs a few bytes on an open stream, not a call), each
 * payment a StreamedAuthorizeRequest with its own tag and terminal secret, the messages of one
 * event-loop turn written together; on the bench's own HTTP/2 client, or node:http2 with --client node.
 * An answer is handed on as the unary call's would be (a framed AuthorizeResponse, or the refusal's
 * gRPC status). A stream that ends (the switch stopping ends it; a lost connection) fails the payments
 * still waiting on it, which the generator then settles, and is opened again on a new connection, as a
 * front-end processor does; while no stream is open a payment fails at once.
 */
class StreamTransport implements Transport {
  private readonly lanes: StreamLane[] = [];
  private readonly waiting = new Map<number, CallDone>();
  private readonly secrets = new Map<number, Uint8Array>();
  private readonly reopening = new Set<number>();
  private closing = false;
  private nextTag = 1;
  private next = 0;
  private flushScheduled = false;

  constructor(
    private readonly s: GeneratorSettings,
    private readonly onStreamError: (message: string) => void,
  ) {}

  async connect(): Promise<void> {
    for (let i = 0; i < this.s.connections; i++) this.lanes.push(await this.openLane());
  }

  private async openLane(): Promise<StreamLane> {
    const lane: StreamLane = { write: () => undefined, close: () => undefined, outgoing: [], waiting: new Set(), ended: undefined };
    const events: LaneEvents = {
      onAnswer: (message) => this.onAnswer(lane, message),
      onEnd: (reason) => this.laneEnded(lane, reason),
    };
    const io = this.s.client === 'raw' ? await this.rawLane(events) : await this.nodeLane(events);
    lane.write = io.write;
    lane.close = io.close;
    return lane;
  }

  /** Splits the answers' bytes into gRPC messages, across chunk boundaries. */
  private answerReader(onAnswer: (message: Buffer) => void): (chunk: Buffer) => void {
    let pending: Buffer | undefined;
    return (chunk) => {
      let buffer = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
      while (buffer.length >= GRPC_FRAME_HEADER_BYTES) {
        const n = buffer.readUInt32BE(1);
        if (buffer.length < GRPC_FRAME_HEADER_BYTES + n) break;
        onAnswer(buffer.subarray(GRPC_FRAME_HEADER_BYTES, GRPC_FRAME_HEADER_BYTES + n));
        buffer = buffer.subarray(GRPC_FRAME_HEADER_BYTES + n);
      }
      pending = buffer.length === 0 ? undefined : buffer;
    };
  }

  private async rawLane(events: LaneEvents): Promise<Pick<StreamLane, 'write' | 'close'>> {
    const connection = await RawH2Connection.connect(this.s.host, this.s.port);
    const block = encodeRequestHeaders([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', AUTHORIZE_STREAM_PATH],
      [':authority', `${this.s.host}:${this.s.port}`],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
      ['user-agent', 'cardswitch-bench'],
    ]);
    const stream = connection.openStream(block, this.answerReader(events.onAnswer), (status, message, _body, error) =>
      events.onEnd(`AuthorizeStream ended (${error ?? `grpc-status ${status} ${message}`})`),
    );
    return { write: (data) => stream.write(data), close: () => (stream.end(), connection.close()) };
  }

  private async nodeLane(events: LaneEvents): Promise<Pick<StreamLane, 'write' | 'close'>> {
    const session = connect(`http://${this.s.host}:${this.s.port}`);
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
    session.on('error', (err: Error) => this.onStreamError(`session: ${err.message}`));
    const stream = session.request(
      { ':method': 'POST', ':path': AUTHORIZE_STREAM_PATH, 'content-type': 'application/grpc', te: 'trailers' },
      { endStream: false },
    );
    stream.on('data', this.answerReader(events.onAnswer));
    let status = '';
    stream.on('trailers', (headers: Record<string, unknown>) => {
      const message = headers['grpc-message'];
      status = `grpc-status ${String(headers['grpc-status'])} ${typeof message === 'string' ? message : ''}`;
    });
    stream.on('error', (err: Error) => this.onStreamError(`AuthorizeStream: ${err.message}`));
    stream.on('close', () => events.onEnd(`AuthorizeStream ended (${status || `code ${stream.rstCode}`})`));
    return { write: (data) => stream.write(data), close: () => (stream.end(), session.close()) };
  }

  private onAnswer(lane: StreamLane, message: Buffer): void {
    const answer = readStreamedAnswer(message);
    if (answer === undefined) {
      this.onStreamError('AuthorizeStream: an answer did not decode');
      return;
    }
    lane.waiting.delete(answer.tag);
    const done = this.waiting.get(answer.tag);
    if (done === undefined) return; // timed out and given up on this side
    this.waiting.delete(answer.tag);
    if (answer.error !== undefined) done(answer.error.code, Buffer.from(answer.error.message).toString('utf8'), undefined, undefined);
    else done(0, '', Buffer.from(grpcFrame(answer.response ?? new Uint8Array(0))), undefined);
  }

  /** The payments still waiting on an ended stream fail (the generator settles them); the lane is opened again. */
  private laneEnded(lane: StreamLane, reason: string): void {
    if (lane.ended !== undefined) return;
    lane.ended = reason;
    lane.outgoing = [];
    const tags = [...lane.waiting];
    lane.waiting.clear();
    for (const tag of tags) {
      const done = this.waiting.get(tag);
      this.waiting.delete(tag);
      done?.(-1, '', undefined, reason);
    }
    const index = this.lanes.indexOf(lane);
    if (index < 0 || this.closing || this.reopening.has(index)) return;
    this.onStreamError(`${reason}; opening it again`);
    this.reopening.add(index);
    this.openLane().then(
      (fresh) => {
        this.reopening.delete(index);
        if (this.closing) fresh.close();
        else this.lanes[index] = fresh;
      },
      (err: unknown) => {
        this.reopening.delete(index);
        this.onStreamError(`AuthorizeStream could not be opened again: ${String(err)}`);
      },
    );
  }

  /** An open lane, round robin; undefined while none is. */
  private pick(): StreamLane | undefined {
    for (let tries = 0; tries < this.lanes.length; tries++) {
      const lane = this.lanes[this.next++ % this.lanes.length];
      if (lane !== undefined && lane.ended === undefined) return lane;
    }
    return undefined;
  }

  send(planned: PlannedCall, frame: Uint8Array, done: CallDone): () => void {
    const lane = this.pick();
    if (lane === undefined) {
      // On the next turn, as RawTransport does while it reconnects.
      setImmediate(() => done(-1, '', undefined, `${NOT_SENT}no AuthorizeStream open`));
      return () => undefined;
    }
    let secret = this.secrets.get(planned.terminalIndex);
    if (secret === undefined) this.secrets.set(planned.terminalIndex, (secret = utf8(planned.terminal.secret)));
    const tag = this.nextTag++;
    this.waiting.set(tag, done);
    lane.waiting.add(tag);
    lane.outgoing.push(encodeStreamedAuthorizeFrame(tag, secret, frame.subarray(GRPC_FRAME_HEADER_BYTES)));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return () => {
      if (!this.waiting.delete(tag)) return;
      done(-1, '', undefined, 'cancelled');
    };
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const lane of this.lanes) {
      if (lane.outgoing.length === 0 || lane.ended !== undefined) continue;
      lane.write(Buffer.concat(lane.outgoing));
      lane.outgoing = [];
    }
  }

  close(): void {
    this.closing = true;
    for (const lane of this.lanes) lane.close();
  }
}

/** Authorize calls to one transport, every other call to another. */
class SplitTransport implements Transport {
  constructor(
    private readonly authorize: Transport,
    private readonly others: Transport,
  ) {}

  async connect(): Promise<void> {
    await this.authorize.connect();
    await this.others.connect();
  }

  send(planned: PlannedCall, frame: Uint8Array, done: CallDone): () => void {
    return (planned.call.rpc === 'Authorize' ? this.authorize : this.others).send(planned, frame, done);
  }

  close(): void {
    this.authorize.close();
    this.others.close();
  }
}

class Generator {
  private readonly transport: Transport;
  private readonly planner: TrafficPlanner;
  private readonly inFlight = new Set<InFlight>();
  private readonly overall = new Histogram();
  /** Open model: how late each call in the window left this worker after its arrival time (its own lag, not the server's). */
  private readonly sendLag = new Histogram();
  private readonly peak = new Histogram();
  private peakStartMs = 0;
  private peakEndMs = 0;
  private peakOffered = 0;
  private peakCompleted = 0;
  private readonly timeline = { completed: [] as number[], sumUs: [] as number[], maxUs: [] as number[] };
  private readonly byKind = new Map<string, Histogram>();
  private readonly outcomes = new Map<string, number>();
  private readonly kindOutcomes = new Map<string, Map<string, number>>();
  private readonly approvals = new GrowableFloats();
  private readonly waterApprovals = new GrowableFloats();
  private readonly campusQrApprovals = new GrowableFloats();
  private campusQrCodesSent = 0;
  private campusQrExhausted = false;
  private readonly thirdPartyApprovals = new GrowableFloats();
  private readonly thirdPartyPending = new GrowableFloats();
  private readonly reversedKeys = new GrowableFloats();
  private readonly tombstonedKeys = new GrowableFloats();
  private readonly campusQrReversedKeys = new GrowableFloats();
  private readonly settlements: Settlements;
  private thirdPartyCodesSent = 0;
  private thirdPartyExhausted = false;
  private readonly errorSamples: string[] = [];
  /** How many of errorSamples, at its head, are transport events (sample()). */
  private transportSamples = 0;
  private sequenceCounter = 0;
  private sent = 0;
  private completed = 0;
  private notSent = 0;
  private errors = 0;
  private unexpected = 0;
  private completedInWindow = 0;
  private approvalsInWindow = 0;
  private offeredInWindow = 0;
  private startAtMs = 0;
  private windowStartMs = 0;
  private windowEndMs = 0;
  private stopping = false;
  private onIdle: (() => void) | undefined;
  /** The mix sends more than code payments (see count: their latency is kept out of the overall figures). */
  private readonly mixesOtherKinds: boolean;

  constructor(private readonly s: GeneratorSettings) {
    this.mixesOtherKinds = MIX_KEYS.some((k) => k !== 'thirdParty' && s.mix[k] > 0);
    this.planner = new TrafficPlanner(s.campus, {
      mix: s.mix,
      seed: s.seed,
      partition: { index: s.workerIndex, count: s.workerCount },
      walletsOpen: true,
      nextSequence: () => s.sequenceBase + this.sequenceCounter++ * s.workerCount + s.workerIndex + 1,
      // Pre-minted (the bench's main thread sealed them before the run): no AES on this thread's hot path.
      nextCampusQr: () => s.campusQrCodes[this.campusQrCodesSent++],
      nextThirdPartyCode: () => s.thirdPartyCodes[this.thirdPartyCodesSent++],
    });
    const unary = s.client === 'raw' ? new RawTransport(s, (m) => this.sample(m)) : new NodeHttp2Transport(s, (m) => this.sample(m));
    this.transport = s.authorizeVia === 'stream' ? new SplitTransport(new StreamTransport(s, (m) => this.sample(m)), unary) : unary;
    const sinks = {
      reversed: this.reversedKeys,
      tombstoned: this.tombstonedKeys,
      campusQrReversed: this.campusQrReversedKeys,
      waterApprovals: this.waterApprovals,
    };
    this.settlements = new Settlements(
      (planned, frame, done) => this.transport.send(planned, frame, done),
      s.requestTimeoutMs,
      sinks,
      nowMs,
      (m) => this.sample(m),
      () => this.idleCheck(),
    );
  }

  connect(): Promise<void> {
    return this.transport.connect();
  }

  private sample(message: string): void {
    // What happened to the transport (a connection or stream lost and opened again) comes before the calls'
    // errors and is kept when they have filled the samples: a report of hundreds of refused calls around a
    // restart still says the generator reconnected (test/bench-settlements looks for it).
    if (message.endsWith('; reconnecting') || message.endsWith('; opening it again')) {
      if (this.transportSamples >= MAX_TRANSPORT_SAMPLES) return;
      this.errorSamples.splice(this.transportSamples, 0, message);
      this.transportSamples += 1;
      if (this.errorSamples.length > MAX_ERROR_SAMPLES) this.errorSamples.pop();
      return;
    }
    if (this.errorSamples.length < MAX_ERROR_SAMPLES) this.errorSamples.push(message);
  }

  /** Sends one call; `then` runs once it has ended (answer, error or timeout). */
  private send(planned: PlannedCall, intendedMs: number, then: () => void): void {
    const call: InFlight = { planned, intendedMs, sentMs: nowMs(), cancel: () => undefined, done: false };
    if (this.s.mode === 'open' && intendedMs >= this.windowStartMs && intendedMs <= this.windowEndMs)
      this.sendLag.record(Math.max(0, (call.sentMs - intendedMs) * 1000));
    this.inFlight.add(call);
    this.sent++;
    call.cancel = this.transport.send(planned, encodeCallFrame(planned.call), (grpcStatus, grpcMessage, body, transportError) => {
      if (call.done) return;
      this.finish(call, grpcStatus, grpcMessage, body, transportError, then);
    });
  }

  private finish(
    call: InFlight,
    grpcStatus: number,
    grpcMessage: string,
    body: Buffer | undefined,
    transportError: string | undefined,
    then: () => void,
  ): void {
    call.done = true;
    this.inFlight.delete(call);
    const endMs = nowMs();
    const { planned } = call;
    const answer = labelOf(planned, grpcStatus, body, transportError);
    const { message } = answer;
    let { label } = answer;
    if (planned.kind === 'retry' && label !== 'timeout' && !sameBytes(planned.retryOf, message)) label = 'retry_mismatch';
    const detail = label === 'transport_error' ? (transportError ?? '') : safeDecode(grpcMessage);
    this.count(call, label, endMs, detail);
    // Given up on without an answer that decides it: settled the way a POS does (reversed, or re-sent).
    // A call that never left this client needs nothing.
    if (isUndecided(label) && transportError?.startsWith(NOT_SENT) !== true) this.settlements.start(planned);
    // A code payment's approval is a `cpay` entry, not a `pay`: the ledger check looks for it apart.
    if (planned.kind === 'third_party') {
      if (label === 'approved') this.thirdPartyApprovals.push(planned.terminalIndex, planned.sequence);
      else if (label === 'pending') this.thirdPartyPending.push(planned.terminalIndex, planned.sequence);
    } else if (label === 'approved' && planned.call.rpc === 'Authorize' && planned.kind !== 'retry')
      this.approvals.push(planned.terminalIndex, planned.sequence);
    if (label === 'approved' && planned.call.rpc === 'WaterDebit') this.waterApprovals.push(planned.terminalIndex, planned.sequence);
    if (label === 'approved' && planned.kind === 'campus_qr') this.campusQrApprovals.push(planned.terminalIndex, planned.sequence);
    this.planner.completed(planned, label, message === undefined ? undefined : Buffer.from(message));
    const entry = label === 'pin_required' && !this.stopping ? this.planner.pinEntry(planned) : undefined;
    if (entry !== undefined) this.send(entry, endMs, then);
    else then();
  }

  private count(call: InFlight, label: string, endMs: number, grpcMessage: string): void {
    const kind = call.planned.kind;
    this.completed++;
    this.outcomes.set(label, (this.outcomes.get(label) ?? 0) + 1);
    let perKind = this.kindOutcomes.get(kind);
    if (perKind === undefined) this.kindOutcomes.set(kind, (perKind = new Map<string, number>()));
    perKind.set(label, (perKind.get(label) ?? 0) + 1);
    const isError =
      label.startsWith('grpc:') ||
      label === 'timeout' ||
      label === 'transport_error' ||
      label === 'bad_response' ||
      label === 'retry_mismatch';
    if (isError) {
      this.errors++;
      this.sample(`${call.planned.call.rpc} (${kind}): ${label}${grpcMessage === '' ? '' : ` ${grpcMessage}`}`);
    } else if (!isExpectedAnswer(kind, label)) {
      this.unexpected++;
      this.sample(`${call.planned.call.rpc} (${kind}): unexpected ${label}`);
    }
    if (endMs >= this.windowStartMs && endMs <= this.windowEndMs) {
      this.completedInWindow++;
      if (label === 'approved' && call.planned.call.rpc === 'Authorize' && kind !== 'retry') this.approvalsInWindow++;
    }
    const fromMs = this.s.mode === 'open' ? call.intendedMs : call.sentMs;
    const us = (endMs - fromMs) * 1000;
    const second = Math.max(0, Math.floor((endMs - this.startAtMs) / 1000));
    if (second < MAX_TIMELINE_SECONDS) {
      const t = this.timeline;
      t.completed[second] = (t.completed[second] ?? 0) + 1;
      t.sumUs[second] = (t.sumUs[second] ?? 0) + us;
      t.maxUs[second] = Math.max(t.maxUs[second] ?? 0, us);
    }
    if (this.s.mode === 'open' && endMs >= this.peakStartMs && endMs <= this.peakEndMs) this.peakCompleted++;
    // In a mix, a code payment's latency is mostly the channel's (two round trips for WeChat): it goes
    // to its own kind's percentiles only, so the overall and peak figures stay the switch's own.
    const overall = kind !== 'third_party' || !this.mixesOtherKinds;
    if (overall && this.s.mode === 'open' && call.intendedMs >= this.peakStartMs && call.intendedMs <= this.peakEndMs) this.peak.record(us);
    if (call.intendedMs < this.windowStartMs) return;
    if (overall) this.overall.record(us);
    let h = this.byKind.get(kind);
    if (h === undefined) this.byKind.set(kind, (h = new Histogram()));
    h.record(us);
  }

  /** Cancels calls older than the request timeout; they end as 'timeout'. */
  private sweep(): void {
    const limit = nowMs() - this.s.requestTimeoutMs;
    for (const call of this.inFlight) if (call.sentMs < limit) call.cancel();
    this.settlements.sweep();
  }

  async run(startAtMs: number, durationMs: number): Promise<void> {
    this.startAtMs = startAtMs;
    this.windowStartMs = startAtMs + this.s.warmupMs;
    this.windowEndMs = startAtMs + durationMs;
    const peak = peakWindowMs(this.s.profile);
    // The warm-up is left out of the peak window too (a constant profile's peak is the whole run).
    this.peakStartMs = Math.max(startAtMs + peak.startMs, this.windowStartMs);
    this.peakEndMs = startAtMs + peak.endMs;
    const sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAtMs - nowMs())));
    const idle = new Promise<void>((resolve) => (this.onIdle = resolve));
    if (this.s.mode === 'open') this.openLoop(new ArrivalClock(this.s.profile, 1 / this.s.workerCount));
    else this.closedLoop(durationMs);
    await idle;
    clearInterval(sweeper);
  }

  /**
   * True once the mix sends campus QR payments and every pre-minted code has been sent: the run ends
   * there (a code pays once), and the result says so instead of paying with a used code.
   */
  private outOfCampusQrCodes(): boolean {
    if (this.s.mix.thirdParty > 0 && this.thirdPartyCodesSent >= this.s.thirdPartyCodes.length) {
      this.thirdPartyExhausted = true;
      return true;
    }
    if (this.s.mix.campusQr === 0 || this.campusQrCodesSent < this.s.campusQrCodes.length) return false;
    this.campusQrExhausted = true;
    return true;
  }

  private idleCheck(): void {
    if (this.stopping && this.inFlight.size === 0 && this.settlements.size === 0) this.onIdle?.();
  }

  private openLoop(clock: ArrivalClock): void {
    let next = 0;
    const drainUntilMs = this.startAtMs + clock.durationMs + this.s.requestTimeoutMs + SWEEP_INTERVAL_MS * 2;
    const afterCall = (): void => this.idleCheck();
    const tick = (): void => {
      const now = nowMs();
      const due = clock.arrivalsBy(now - this.startAtMs);
      while (next < due && this.inFlight.size < this.s.maxInFlight && !this.outOfCampusQrCodes()) {
        const intended = this.startAtMs + clock.timeOfArrival(next);
        if (intended >= this.windowStartMs && intended <= this.windowEndMs) this.offeredInWindow++;
        if (intended >= this.peakStartMs && intended <= this.peakEndMs) this.peakOffered++;
        next++;
        this.send(this.planner.next(), intended, afterCall);
      }
      if (next >= clock.totalArrivals || now > drainUntilMs || this.campusQrExhausted || this.thirdPartyExhausted) {
        for (let i = next; i < clock.totalArrivals; i++) {
          const intended = this.startAtMs + clock.timeOfArrival(i);
          if (intended >= this.windowStartMs && intended <= this.windowEndMs) this.offeredInWindow++;
          if (intended >= this.peakStartMs && intended <= this.peakEndMs) this.peakOffered++;
        }
        this.notSent += clock.totalArrivals - next;
        this.stopping = true;
        this.idleCheck();
        return;
      }
      setTimeout(tick, TICK_MS);
    };
    tick();
  }

  private closedLoop(durationMs: number): void {
    const endMs = this.startAtMs + durationMs;
    const lane = (): void => {
      if (nowMs() >= endMs || this.outOfCampusQrCodes()) {
        this.stopping = true;
        this.idleCheck();
        return;
      }
      const t = nowMs();
      this.send(this.planner.next(), t, lane);
    };
    for (let i = 0; i < this.s.streams; i++) lane();
  }

  close(): void {
    this.transport.close();
  }

  result(elu: number): GeneratorResult {
    const data = (h: Histogram): HistogramData => ({ counts: h.counts, sumUs: h.sumUs, maxUs: h.maxUs });
    const kinds: Record<string, HistogramData> = {};
    for (const [kind, h] of this.byKind) kinds[kind] = data(h);
    const kindOutcomes: Record<string, Record<string, number>> = {};
    for (const [kind, map] of this.kindOutcomes) kindOutcomes[kind] = Object.fromEntries(map);
    return {
      workerIndex: this.s.workerIndex,
      overall: data(this.overall),
      sendLag: data(this.sendLag),
      peak: data(this.peak),
      peakOffered: this.peakOffered,
      peakCompleted: this.peakCompleted,
      timeline: this.timeline,
      byKind: kinds,
      outcomes: Object.fromEntries(this.outcomes),
      kindOutcomes,
      sent: this.sent,
      completed: this.completed,
      notSent: this.notSent,
      errors: this.errors,
      unexpected: this.unexpected,
      errorSamples: this.errorSamples,
      completedInWindow: this.completedInWindow,
      approvalsInWindow: this.approvalsInWindow,
      offeredInWindow: this.offeredInWindow,
      approvals: this.approvals.finish(),
      waterApprovals: this.waterApprovals.finish(),
      campusQrApprovals: this.campusQrApprovals.finish(),
      campusQrCodesSent: Math.min(this.campusQrCodesSent, this.s.campusQrCodes.length),
      campusQrExhausted: this.campusQrExhausted,
      thirdPartyApprovals: this.thirdPartyApprovals.finish(),
      thirdPartyPending: this.thirdPartyPending.finish(),
      thirdPartyCodesSent: Math.min(this.thirdPartyCodesSent, this.s.thirdPartyCodes.length),
      thirdPartyExhausted: this.thirdPartyExhausted,
      settlements: this.settlements.result(),
      reversedKeys: this.reversedKeys.finish(),
      tombstonedKeys: this.tombstonedKeys.finish(),
      campusQrReversedKeys: this.campusQrReversedKeys.finish(),
      eventLoopUtilization: elu,
    };
  }
}

/** grpc-message is percent-encoded (gRPC over HTTP/2); a malformed one is shown as it came. */
function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function sameBytes(memo: unknown, message: Uint8Array | undefined): boolean {
  if (!(memo instanceof Uint8Array) || message === undefined) return memo === undefined && message === undefined;
  return Buffer.compare(memo, message) === 0;
}

function post(message: WorkerToMain, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
}

const generator = new Generator(settings);
generator.connect().then(
  () => post({ type: 'ready' }),
  (err: unknown) =>
    post({ type: 'fatal', message: `worker ${settings.workerIndex} cannot connect to ${settings.host}:${settings.port}: ${String(err)}` }),
);

port.on('message', (message: MainToWorker) => {
  if (message.type !== 'start') return;
  const eluStart = performance.eventLoopUtilization();
  generator.run(message.startAtMs, message.durationMs).then(
    () => {
      const elu = performance.eventLoopUtilization(eluStart).utilization;
      generator.close();
      const result = generator.result(elu);
      post({ type: 'result', result }, [
        result.approvals.buffer as ArrayBuffer,
        result.waterApprovals.buffer as ArrayBuffer,
        result.campusQrApprovals.buffer as ArrayBuffer,
        result.thirdPartyApprovals.buffer as ArrayBuffer,
        result.thirdPartyPending.buffer as ArrayBuffer,
        result.reversedKeys.buffer as ArrayBuffer,
        result.tombstonedKeys.buffer as ArrayBuffer,
        result.campusQrReversedKeys.buffer as ArrayBuffer,
      ]);
    },
    (err: unknown) => post({ type: 'fatal', message: String(err) }),
  );
});
