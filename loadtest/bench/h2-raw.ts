// A minimal HTTP/2 client (RFC 9113) for unary gRPC calls over cleartext TCP, for the load generator:
// one HEADERS frame (a cached header block) and one DATA frame (the gRPC message) per request, written
// as one buffer; answers parsed straight from the socket. Long-lived streams too (openStream: many
// messages each way, for AuthorizeStream), with the server's per-stream flow control honoured. It costs a few microseconds per call where
// node:http2 costs tens, so on a 2-core machine the generator leaves the cores to the server.
//
// What it does of HTTP/2: connection preface and SETTINGS (and their ACKs), PING ACKs, flow control of
// what it sends (connection window and MAX_CONCURRENT_STREAMS, with a queue) and of what it receives
// (it opens a large window and refills it), HEADERS + CONTINUATION with the HPACK decoder, DATA,
// RST_STREAM, GOAWAY. No TLS, no server push (disabled), no priorities.
import { connect as tcpConnect, type Socket } from 'node:net';
import { HpackDecoder } from './hpack.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER = 9;
const TYPE_DATA = 0x0,
  TYPE_HEADERS = 0x1,
  TYPE_RST_STREAM = 0x3,
  TYPE_SETTINGS = 0x4,
  TYPE_PING = 0x6,
  TYPE_GOAWAY = 0x7;
const TYPE_WINDOW_UPDATE = 0x8,
  TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1,
  FLAG_ACK = 0x1,
  FLAG_END_HEADERS = 0x4,
  FLAG_PADDED = 0x8,
  FLAG_PRIORITY = 0x20;
const SETTINGS_ENABLE_PUSH = 0x2,
  SETTINGS_MAX_CONCURRENT_STREAMS = 0x3,
  SETTINGS_INITIAL_WINDOW_SIZE = 0x4,
  SETTINGS_MAX_FRAME_SIZE = 0x5;
const MAX_WINDOW = 2 ** 31 - 1;
const DEFAULT_WINDOW = 65_535;
/** Refill the connection's receive window once this much has been consumed. */
const RECEIVE_REFILL = 2 ** 30;
const ERROR_CANCEL = 0x8;
const MAX_STREAM_ID = 2 ** 31 - 1;
const CONNECT_TIMEOUT_MS = 5000;

/**
 * The start of `transportError` for a call that never left this client (its connection was closed
 * before the call was written): the server cannot have seen it.
 */
export const NOT_SENT = 'not sent: ';

/** How a call ended: grpcStatus -1 when the answer carried none (then `transportError` says why). */
export type CallDone = (grpcStatus: number, grpcMessage: string, body: Buffer | undefined, transportError: string | undefined) => void;

interface StreamState {
  readonly done: CallDone;
  grpcStatus: number;
  grpcMessage: string;
  chunks: Buffer[] | undefined;
  /** Long-lived streams: DATA is handed on as it comes instead of collected. */
  readonly onData?: (data: Buffer) => void;
  /** Long-lived streams: what may still be sent on this stream, and what waits for that window. */
  sendWindow: number;
  outgoing: Buffer[];
  endRequested: boolean;
  received: number;
}

/** A long-lived stream of a RawH2Connection. */
export interface RawStream {
  /** Sends bytes (gRPC frames) on the stream, as the flow-control windows allow. */
  write(data: Buffer): void;
  /** Ends the sending side (END_STREAM) once everything written has been sent. */
  end(): void;
}

interface Pending {
  readonly headerBlock: Uint8Array;
  readonly body: Uint8Array;
  readonly done: CallDone;
  readonly ref: { streamId: number };
}

function frameHeader(out: Buffer, at: number, length: number, type: number, flags: number, streamId: number): void {
  out[at] = (length >>> 16) & 0xff;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out.writeUInt32BE(streamId, at + 5);
}

function controlFrame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  frameHeader(out, 0, payload.length, type, flags, streamId);
  payload.copy(out, FRAME_HEADER);
  return out;
}

export class RawH2Connection {
  private readonly streams = new Map<number, StreamState>();
  /** The long-lived streams among them (openStream), flushed when a window opens. */
  private readonly longStreams = new Map<number, StreamState>();
  private readonly queue: Pending[] = [];
  private readonly decoder = new HpackDecoder();
  private nextStreamId = 1;
  private sendWindow = DEFAULT_WINDOW;
  private maxConcurrent = Infinity;
  private maxFrameSize = 16_384;
  /** The server's SETTINGS_INITIAL_WINDOW_SIZE: each new stream's send window. */
  private initialSendWindow = DEFAULT_WINDOW;
  private received = 0;
  private pending: Buffer | undefined;
  private headerBlock: { streamId: number; flags: number; parts: Buffer[] } | undefined;
  private corked = false;
  private closedReason: string | undefined;
  private onSettings: (() => void) | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => this.fail(`socket error: ${err.message}`));
    socket.on('close', () => this.fail('connection closed'));
  }

  /** Connects and completes the HTTP/2 handshake (the server's SETTINGS has arrived). */
  static async connect(host: string, port: number): Promise<RawH2Connection> {
    const socket = tcpConnect({ host, port });
    const connection = new RawH2Connection(socket);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`HTTP/2 handshake with ${host}:${port} timed out`)), CONNECT_TIMEOUT_MS);
      socket.once('error', (err) => (clearTimeout(timer), reject(err)));
      connection.onSettings = () => (clearTimeout(timer), resolve());
      socket.once('connect', () => connection.sendPreface());
    });
    return connection;
  }

  private sendPreface(): void {
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(SETTINGS_ENABLE_PUSH, 0);
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 6);
    settings.writeUInt32BE(MAX_WINDOW, 8);
    const increment = Buffer.alloc(4);
    increment.writeUInt32BE(MAX_WINDOW - DEFAULT_WINDOW, 0);
    this.socket.write(
      Buffer.concat([PREFACE, controlFrame(TYPE_SETTINGS, 0, 0, settings), controlFrame(TYPE_WINDOW_UPDATE, 0, 0, increment)]),
    );
  }

  /** Why the connection can no longer carry calls (GOAWAY, closed, socket error); undefined while it can. */
  get closed(): string | undefined {
    return this.closedReason;
  }

  get inFlight(): number {
    return this.streams.size + this.queue.length;
  }

  /**
   * Sends one unary call; `done` runs exactly once. Returns a handle whose streamId is set once the
   * call leaves the queue (0 while it waits for flow control).
   */
  request(headerBlock: Uint8Array, body: Uint8Array, done: CallDone): { streamId: number } {
    const ref = { streamId: 0 };
    if (this.closedReason !== undefined) {
      done(-1, '', undefined, `${NOT_SENT}${this.closedReason}`);
      return ref;
    }
    this.queue.push({ headerBlock, body, done, ref });
    this.flushQueue();
    return ref;
  }

  /**
   * Opens a long-lived stream (HEADERS without END_STREAM): `onData` gets each DATA payload, `done` runs
   * once when the stream ends (with the trailers' grpc-status) or breaks.
   */
  openStream(headerBlock: Uint8Array, onData: (data: Buffer) => void, done: CallDone): RawStream {
    if (this.closedReason !== undefined) throw new Error(this.closedReason);
    if (headerBlock.length > this.maxFrameSize) throw new Error('header block larger than one frame');
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;
    const state: StreamState = {
      done,
      grpcStatus: -1,
      grpcMessage: '',
      chunks: undefined,
      onData,
      sendWindow: this.initialSendWindow,
      outgoing: [],
      endRequested: false,
      received: 0,
    };
    this.streams.set(streamId, state);
    this.longStreams.set(streamId, state);
    const out = Buffer.allocUnsafe(FRAME_HEADER + headerBlock.length);
    frameHeader(out, 0, headerBlock.length, TYPE_HEADERS, FLAG_END_HEADERS, streamId);
    out.set(headerBlock, FRAME_HEADER);
    this.write(out);
    return {
      write: (data) => {
        state.outgoing.push(data);
        this.flushStream(streamId, state);
      },
      end: () => {
        state.endRequested = true;
        this.flushStream(streamId, state);
      },
    };
  }

  /** Sends what a long-lived stream has waiting, as far as its window and the connection's allow. */
  private flushStream(streamId: number, state: StreamState): void {
    while (state.outgoing.length > 0) {
      const next = state.outgoing[0] as Buffer;
      const room = Math.min(state.sendWindow, this.sendWindow, this.maxFrameSize);
      if (room <= 0) return;
      const chunk = next.length <= room ? next : next.subarray(0, room);
      if (chunk.length === next.length) state.outgoing.shift();
      else state.outgoing[0] = next.subarray(room);
      const last = state.endRequested && state.outgoing.length === 0;
      const out = Buffer.allocUnsafe(FRAME_HEADER + chunk.length);
      frameHeader(out, 0, chunk.length, TYPE_DATA, last ? FLAG_END_STREAM : 0, streamId);
      out.set(chunk, FRAME_HEADER);
      state.sendWindow -= chunk.length;
      this.sendWindow -= chunk.length;
      this.write(out);
      if (last) {
        state.endRequested = false;
        return;
      }
    }
    if (state.endRequested) {
      state.endRequested = false;
      const out = Buffer.allocUnsafe(FRAME_HEADER);
      frameHeader(out, 0, 0, TYPE_DATA, FLAG_END_STREAM, streamId);
      this.write(out);
    }
  }

  /** Ends a call early (a client-side timeout): RST_STREAM CANCEL, and `done` with 'cancelled'. */
  cancel(ref: { streamId: number }): void {
    const stream = this.streams.get(ref.streamId);
    if (stream !== undefined) {
      this.streams.delete(ref.streamId);
      const code = Buffer.alloc(4);
      code.writeUInt32BE(ERROR_CANCEL, 0);
      this.write(controlFrame(TYPE_RST_STREAM, 0, ref.streamId, code));
      stream.done(-1, '', undefined, 'cancelled');
      return;
    }
    const index = this.queue.findIndex((p) => p.ref === ref);
    if (index >= 0) this.queue.splice(index, 1)[0]?.done(-1, '', undefined, 'cancelled');
  }

  close(): void {
    this.closedReason ??= 'closed by the client';
    this.socket.end();
  }

  private write(buffer: Buffer): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(buffer);
  }

  private flushQueue(): void {
    while (this.queue.length > 0 && this.streams.size < this.maxConcurrent) {
      const next = this.queue[0];
      if (next === undefined || next.body.length > this.sendWindow) return;
      if (this.nextStreamId > MAX_STREAM_ID) {
        this.fail('stream ids used up on this connection');
        return;
      }
      this.queue.shift();
      this.start(next);
    }
  }

  private start(call: Pending): void {
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;
    call.ref.streamId = streamId;
    const headers = call.headerBlock;
    if (headers.length > this.maxFrameSize || call.body.length > this.maxFrameSize) throw new Error('request larger than one frame');
    const out = Buffer.allocUnsafe(FRAME_HEADER * 2 + headers.length + call.body.length);
    frameHeader(out, 0, headers.length, TYPE_HEADERS, FLAG_END_HEADERS, streamId);
    out.set(headers, FRAME_HEADER);
    const dataAt = FRAME_HEADER + headers.length;
    frameHeader(out, dataAt, call.body.length, TYPE_DATA, FLAG_END_STREAM, streamId);
    out.set(call.body, dataAt + FRAME_HEADER);
    this.sendWindow -= call.body.length;
    this.streams.set(streamId, {
      done: call.done,
      grpcStatus: -1,
      grpcMessage: '',
      chunks: undefined,
      sendWindow: 0,
      outgoing: [],
      endRequested: false,
      received: 0,
    });
    this.write(out);
  }

  private fail(reason: string): void {
    if (this.closedReason === undefined) this.closedReason = reason;
    const streams = [...this.streams.values()];
    this.streams.clear();
    this.longStreams.clear();
    const queued = this.queue.splice(0);
    for (const s of streams) s.done(-1, '', undefined, reason);
    for (const q of queued) q.done(-1, '', undefined, `${NOT_SENT}${reason}`);
    this.onSettings = undefined;
  }

  private onData(chunk: Buffer): void {
    let buffer = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    while (buffer.length - at >= FRAME_HEADER) {
      const length = (buffer[at]! << 16) | (buffer[at + 1]! << 8) | buffer[at + 2]!;
      if (buffer.length - at < FRAME_HEADER + length) break;
      const type = buffer[at + 3]!;
      const flags = buffer[at + 4]!;
      const streamId = buffer.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = buffer.subarray(at + FRAME_HEADER, at + FRAME_HEADER + length);
      at += FRAME_HEADER + length;
      this.onFrame(type, flags, streamId, payload);
    }
    buffer = buffer.subarray(at);
    this.pending = buffer.length === 0 ? undefined : buffer;
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.headerBlock !== undefined && type !== TYPE_CONTINUATION) {
      this.fail('protocol error: header block interrupted');
      return;
    }
    switch (type) {
      case TYPE_DATA:
        return this.onDataFrame(flags, streamId, payload);
      case TYPE_HEADERS:
        return this.onHeadersFrame(flags, streamId, payload);
      case TYPE_CONTINUATION:
        return this.onContinuation(flags, streamId, payload);
      case TYPE_RST_STREAM:
        return this.endStream(streamId, `stream reset by the server (code ${payload.readUInt32BE(0)})`);
      case TYPE_SETTINGS:
        return this.onSettingsFrame(flags, payload);
      case TYPE_PING:
        if ((flags & FLAG_ACK) === 0) this.write(controlFrame(TYPE_PING, FLAG_ACK, 0, payload));
        return;
      case TYPE_GOAWAY:
        return this.onGoaway(payload);
      case TYPE_WINDOW_UPDATE: {
        const increment = payload.readUInt32BE(0) & 0x7fffffff;
        if (streamId === 0) this.sendWindow += increment;
        else {
          const stream = this.streams.get(streamId);
          if (stream !== undefined) stream.sendWindow += increment;
        }
        this.flushQueue();
        this.flushLongStreams();
        return;
      }
      default:
        return; // PRIORITY, PUSH_PROMISE (push is disabled), unknown types: ignored as the spec allows
    }
  }

  private onSettingsFrame(flags: number, payload: Buffer): void {
    if ((flags & FLAG_ACK) !== 0) return;
    for (let i = 0; i + 6 <= payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      if (id === SETTINGS_MAX_CONCURRENT_STREAMS) this.maxConcurrent = value;
      else if (id === SETTINGS_MAX_FRAME_SIZE) this.maxFrameSize = value;
      else if (id === SETTINGS_INITIAL_WINDOW_SIZE) {
        // RFC 9113 6.9.2: a change applies to every open stream's window by the difference.
        for (const stream of this.longStreams.values()) stream.sendWindow += value - this.initialSendWindow;
        this.initialSendWindow = value;
      }
    }
    this.write(controlFrame(TYPE_SETTINGS, FLAG_ACK, 0, Buffer.alloc(0)));
    this.onSettings?.();
    this.onSettings = undefined;
    this.flushQueue();
    this.flushLongStreams();
  }

  private flushLongStreams(): void {
    for (const [id, stream] of this.longStreams) if (stream.outgoing.length > 0 || stream.endRequested) this.flushStream(id, stream);
  }

  private onGoaway(payload: Buffer): void {
    const lastStreamId = payload.readUInt32BE(0) & 0x7fffffff;
    this.closedReason = `server sent GOAWAY (code ${payload.readUInt32BE(4)})`;
    for (const [id, stream] of this.streams) {
      if (id > lastStreamId) {
        this.streams.delete(id);
        this.longStreams.delete(id);
        stream.done(-1, '', undefined, this.closedReason);
      }
    }
    for (const q of this.queue.splice(0)) q.done(-1, '', undefined, `${NOT_SENT}${this.closedReason}`);
  }

  private onDataFrame(flags: number, streamId: number, payload: Buffer): void {
    this.received += payload.length;
    if (this.received >= RECEIVE_REFILL) {
      const increment = Buffer.alloc(4);
      increment.writeUInt32BE(this.received, 0);
      this.write(controlFrame(TYPE_WINDOW_UPDATE, 0, 0, increment));
      this.received = 0;
    }
    const stream = this.streams.get(streamId);
    if (stream !== undefined) {
      const data = (flags & FLAG_PADDED) !== 0 ? payload.subarray(1, payload.length - payload[0]!) : payload;
      if (stream.onData === undefined) (stream.chunks ??= []).push(data);
      else {
        // A long-lived stream may receive more than its initial window: refill it as the connection's.
        stream.received += payload.length;
        if (stream.received >= RECEIVE_REFILL) {
          const increment = Buffer.alloc(4);
          increment.writeUInt32BE(stream.received, 0);
          this.write(controlFrame(TYPE_WINDOW_UPDATE, 0, streamId, increment));
          stream.received = 0;
        }
        stream.onData(data);
      }
    }
    if ((flags & FLAG_END_STREAM) !== 0) this.endStream(streamId, undefined);
  }

  private onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    let fragment = payload;
    if ((flags & FLAG_PADDED) !== 0) fragment = fragment.subarray(1, fragment.length - payload[0]!);
    if ((flags & FLAG_PRIORITY) !== 0) fragment = fragment.subarray(5);
    if ((flags & FLAG_END_HEADERS) !== 0) this.onHeaderBlock(flags, streamId, fragment);
    else this.headerBlock = { streamId, flags, parts: [fragment] };
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.headerBlock;
    if (block === undefined || block.streamId !== streamId) {
      this.fail('protocol error: unexpected CONTINUATION');
      return;
    }
    block.parts.push(payload);
    if ((flags & FLAG_END_HEADERS) === 0) return;
    this.headerBlock = undefined;
    this.onHeaderBlock(block.flags, streamId, Buffer.concat(block.parts));
  }

  private onHeaderBlock(flags: number, streamId: number, block: Buffer): void {
    const stream = this.streams.get(streamId);
    // Every block is decoded, even of a cancelled stream: the decoder's table must follow the server's.
    this.decoder.decode(block, (name, value) => {
      if (stream === undefined) return;
      if (name === 'grpc-status') stream.grpcStatus = Number(value);
      else if (name === 'grpc-message') stream.grpcMessage = value;
    });
    if ((flags & FLAG_END_STREAM) !== 0) this.endStream(streamId, undefined);
  }

  private endStream(streamId: number, error: string | undefined): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    this.streams.delete(streamId);
    this.longStreams.delete(streamId);
    const chunks = stream.chunks;
    const body = chunks === undefined ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    stream.done(error === undefined ? stream.grpcStatus : -1, stream.grpcMessage, body, error);
    this.flushQueue();
  }
}
