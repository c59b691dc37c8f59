// PosService/AuthorizeStream: the payments of many terminals on one long-lived stream, for POS
// front-end processors. Per payment it costs a message on an open stream instead of a whole call
// (HTTP/2 stream, headers, interceptors, trailers), which is most of what a unary call costs the
// switch (loadtest/RESULTS.md). Each message is authenticated with its own terminal's credentials and
// paid by the same authorizePayment (authorize.ts) as Authorize; answers go out as payments are decided.
//
// Bounded: at most MAX_STREAM_IN_FLIGHT payments of a stream are being decided or wait for their
// answer to be taken by the client; beyond that the switch stops reading the stream (HTTP/2 flow
// control holds the sender). On shutdown every open stream is answered and ended with OK.
import { status as Status, type handleBidiStreamingCall, type ServerDuplexStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { StreamedAuthorizeRequest, StreamedAuthorizeResponse } from '../../proto/gen/cardswitch/v1/pos.js';
import type { PosDomain } from '../domain/pos.js';
import type { TerminalRegistry } from '../domain/terminals.js';
import { authenticateTerminal } from './auth.js';
import { mapError } from './errors.js';
import { authorizePayment, type PaymentOptions } from './authorize.js';
import { unavailableRedisClient } from '../redis/unavailable.js';
import { UndecodableRequest } from './unary.js';

export const MAX_STREAM_IN_FLIGHT = 512;
/** Refused terminals a stream logs one by one; the rest are counted in one line when it ends. */
export const MAX_LOGGED_REFUSALS = 10;
const RPC_PATH = '/cardswitch.v1.PosService/AuthorizeStream';

type Call = ServerDuplexStream<StreamedAuthorizeRequest, StreamedAuthorizeResponse>;

export class AuthorizeStreams {
  private readonly open = new Set<StreamSession>();
  private draining = false;

  constructor(
    private readonly domain: PosDomain,
    private readonly options: PaymentOptions,
    private readonly registry: TerminalRegistry,
    private readonly log: Logger,
  ) {}

  handler(): handleBidiStreamingCall<StreamedAuthorizeRequest, StreamedAuthorizeResponse> {
    return (call: Call) => {
      const session = new StreamSession(call, this, () => this.open.delete(session));
      this.open.add(session);
      if (this.draining) session.drain();
    };
  }

  /** The server is stopping: answer what was read, refuse what comes after, end every stream. */
  drain(): void {
    this.draining = true;
    for (const session of this.open) session.drain();
  }

  get openStreams(): number {
    return this.open.size;
  }

  /** One payment of a stream, answered with its tag; never throws. Timed like a call, under method "AuthorizeStream". */
  async pay(
    message: StreamedAuthorizeRequest | UndecodableRequest,
    cancelled: () => boolean,
    refusals: StreamRefusals = { logged: 0, unlogged: 0 },
  ): Promise<StreamedAuthorizeResponse> {
    const startedMs = performance.now();
    const answer = await this.decide(message, cancelled, refusals);
    const code = answer.error === undefined ? 'OK' : (Status[answer.error.code] ?? String(answer.error.code));
    this.options.metrics?.grpcCall('AuthorizeStream', code, (performance.now() - startedMs) / 1000);
    return answer;
  }

  private async decide(
    message: StreamedAuthorizeRequest | UndecodableRequest,
    cancelled: () => boolean,
    refusals: StreamRefusals,
  ): Promise<StreamedAuthorizeResponse> {
    if (message instanceof UndecodableRequest) {
      return refusal(0, Status.INVALID_ARGUMENT, `a message of the stream could not be decoded (its tag is unknown): ${message.reason}`);
    }
    const { tag, terminalSecret, request } = message;
    try {
      if (request === undefined)
        return refusal(tag, Status.INVALID_ARGUMENT, 'request is missing: each message carries one AuthorizeRequest');
      if (request.terminalId === '' || terminalSecret === '') {
        return refusal(tag, Status.UNAUTHENTICATED, 'send the terminal in request.terminal_id and its secret in terminal_secret');
      }
      const terminal = await authenticateTerminal(this.registry, RPC_PATH, request.terminalId, terminalSecret);
      if ('code' in terminal) {
        // Whoever sends a message names its terminal: a line for each would let a client without
        // credentials write the log as fast as it sends. The first few, then a count when the stream ends.
        if (refusals.logged < MAX_LOGGED_REFUSALS) {
          refusals.logged++;
          this.log.info({ rpc: 'AuthorizeStream', code: Status[terminal.code], details: terminal.details }, 'terminal refused');
        } else refusals.unlogged++;
        return refusal(tag, terminal.code, terminal.details);
      }
      return { tag, response: await authorizePayment(this.domain, this.options, terminal, request, cancelled) };
    } catch (err) {
      const mapped = mapError(err);
      const redisClient = unavailableRedisClient(err);
      if (redisClient !== undefined) this.options.metrics?.redisError(redisClient);
      if (mapped.serious) this.log.error({ err, rpc: 'AuthorizeStream' }, 'payment failed');
      else this.log.debug({ rpc: 'AuthorizeStream', details: mapped.details }, 'payment refused');
      return refusal(tag, mapped.code, mapped.details);
    }
  }

  /** A stream ended whose refused terminals were not all logged: how many were not. */
  refusalsNotLogged(refusals: StreamRefusals): void {
    if (refusals.unlogged === 0) return;
    this.log.info(
      { rpc: 'AuthorizeStream', refused: refusals.unlogged, logged: refusals.logged },
      'AuthorizeStream ended: refused terminals not logged one by one',
    );
  }

  /** pay() never throws; this is for a failure to hand an answer to the stream. */
  failed(err: unknown): void {
    this.log.error({ err, rpc: 'AuthorizeStream' }, 'could not send an answer on the stream');
  }

  /** A payment read after the switch began to stop. */
  stopping(message: StreamedAuthorizeRequest | UndecodableRequest): StreamedAuthorizeResponse {
    const tag = message instanceof UndecodableRequest ? 0 : message.tag;
    return refusal(tag, Status.UNAVAILABLE, 'the switch is stopping; nothing was charged; send this payment again on a new stream');
  }
}

/** A stream's refused terminals: logged one by one, and beyond MAX_LOGGED_REFUSALS only counted. */
interface StreamRefusals {
  logged: number;
  unlogged: number;
}

function refusal(tag: number, code: Status, message: string): StreamedAuthorizeResponse {
  return { tag, error: { code, message } };
}

class StreamSession {
  private inFlight = 0;
  private paused = false;
  private readEnded = false;
  private draining = false;
  private finished = false;
  private readonly refusals: StreamRefusals = { logged: 0, unlogged: 0 };

  constructor(
    private readonly call: Call,
    private readonly streams: AuthorizeStreams,
    private readonly onFinished: () => void,
  ) {
    call.on('data', (message: StreamedAuthorizeRequest | UndecodableRequest) => this.onMessage(message));
    call.on('end', () => {
      this.readEnded = true;
      this.maybeFinish();
    });
    // The client went away: answers already decided are lost to it; a retry with the same sequence
    // number gets them back.
    call.on('cancelled', () => this.close());
    call.on('error', () => this.close());
  }

  drain(): void {
    this.draining = true;
    this.maybeFinish();
  }

  private onMessage(message: StreamedAuthorizeRequest | UndecodableRequest): void {
    if (this.finished) return;
    this.inFlight++;
    if (this.inFlight >= MAX_STREAM_IN_FLIGHT && !this.paused) {
      this.paused = true;
      this.call.pause();
    }
    if (this.draining) {
      this.send(this.streams.stopping(message));
      return;
    }
    this.streams
      .pay(message, () => this.call.cancelled || this.finished, this.refusals)
      .then((answer) => this.send(answer))
      .catch((err: unknown) => this.streams.failed(err));
  }

  private send(answer: StreamedAuthorizeResponse): void {
    if (this.finished) return;
    // An answer counts against the bound until the stream has taken it (the client reads).
    this.call.write(answer, () => {
      this.inFlight--;
      if (this.paused && this.inFlight <= MAX_STREAM_IN_FLIGHT / 2) {
        this.paused = false;
        this.call.resume();
      }
      this.maybeFinish();
    });
  }

  private maybeFinish(): void {
    if (this.finished || this.inFlight > 0 || !(this.readEnded || this.draining)) return;
    this.finished = true;
    this.onFinished();
    this.streams.refusalsNotLogged(this.refusals);
    this.call.end();
  }

  private close(): void {
    if (this.finished) return;
    this.finished = true;
    this.onFinished();
    // Payments still being decided count after this line; it says what was refused by the time the client went.
    this.streams.refusalsNotLogged(this.refusals);
  }
}
