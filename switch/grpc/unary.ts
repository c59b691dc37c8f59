// Thin, uniform unary handlers: safe decoding (a malformed message is INVALID_ARGUMENT, not
// INTERNAL), the authenticated terminal, cancellation, the caller's deadline (a call still waiting
// just before it is answered UNAVAILABLE: deadline.ts), and one error mapping for every RPC.
import { Metadata, status as Status } from '@grpc/grpc-js';
import type { handleUnaryCall, sendUnaryData, ServerUnaryCall, ServiceDefinition } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Terminal } from '../domain/terminals.js';
import { terminalOf } from './auth.js';
import { operatorOf } from './operator-auth.js';
import { InvalidArgumentError, mapError } from './errors.js';
import type { Metrics } from '../metrics.js';
import { unavailableRedisClient } from '../redis/unavailable.js';
import { atDeadline, DEADLINE_OVER_REFUSAL, DEADLINE_REFUSAL, deadlineOver } from './deadline.js';

/** Stands in for a request whose bytes did not decode; handlers answer it with INVALID_ARGUMENT. */
export class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/** Wraps every method's request deserializer so a decoding failure reaches the handler as a value. */
export function withSafeDecoding<S extends ServiceDefinition>(service: S): S {
  const wrapped: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    wrapped[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          // ts-proto refuses 64-bit values a JavaScript number cannot hold exactly; say which limit.
          if (reason.includes('MAX_SAFE_INTEGER')) {
            return new UndecodableRequest(
              `a 64-bit field (sequence_number or amount_fen) is above ${Number.MAX_SAFE_INTEGER}; sequence numbers must be 1..${Number.MAX_SAFE_INTEGER}`,
            );
          }
          return new UndecodableRequest(reason);
        }
      },
    };
  }
  return wrapped as S;
}

export interface CallContext {
  readonly metadata: Metadata;
  /** True once the client cancelled or the deadline passed. A function property: handlers pass it on detached. */
  readonly cancelled: () => boolean;
}

/** What every unary handler needs besides its body; the SwitchContext is one. */
export interface UnaryDeps {
  readonly log: Logger;
  readonly metrics: Metrics;
}

export function unary<Req, Res>(
  deps: UnaryDeps,
  rpc: string,
  body: (request: Req, context: CallContext) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  const { metrics } = deps;
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const startedMs = performance.now();
    const request = call.request as unknown;
    if (request instanceof UndecodableRequest) {
      const err = toServiceError(new InvalidArgumentError(`the ${rpc} request could not be decoded: ${request.reason}`), deps, rpc);
      metrics.grpcCall(rpc, Status[err.code], (performance.now() - startedMs) / 1000);
      callback(err);
      return;
    }
    if (deadlineOver(call.getDeadline())) {
      metrics.grpcCall(rpc, Status[DEADLINE_OVER_REFUSAL.code], (performance.now() - startedMs) / 1000);
      callback(Object.assign(new Error(DEADLINE_OVER_REFUSAL.details), { ...DEADLINE_OVER_REFUSAL, metadata: new Metadata() }));
      return;
    }
    let answered = false;
    const cancelDeadline = atDeadline(call.getDeadline(), () => {
      // The body goes on (its Redis commands have their own timeout) but starts nothing new: see cancelled().
      answered = true;
      deps.log.debug({ rpc }, "answered UNAVAILABLE at the caller's deadline");
      metrics.grpcCall(rpc, Status[DEADLINE_REFUSAL.code], (performance.now() - startedMs) / 1000);
      callback(Object.assign(new Error(DEADLINE_REFUSAL.details), { ...DEADLINE_REFUSAL, metadata: new Metadata() }));
    });
    const context: CallContext = { metadata: call.metadata, cancelled: () => answered || call.cancelled };
    body(request as Req, context).then(
      (response) => {
        cancelDeadline();
        if (answered) return;
        answered = true;
        metrics.grpcCall(rpc, 'OK', (performance.now() - startedMs) / 1000);
        callback(null, response);
      },
      (err: unknown) => {
        cancelDeadline();
        if (answered) {
          if (mapError(err).serious) deps.log.warn({ err, rpc }, 'call failed after it was answered at its deadline');
          return;
        }
        answered = true;
        const refusal = toServiceError(err, deps, rpc);
        metrics.grpcCall(rpc, Status[refusal.code], (performance.now() - startedMs) / 1000);
        callback(refusal);
      },
    );
  };
}

function toServiceError(err: unknown, { log, metrics }: UnaryDeps, rpc: string) {
  const mapped = mapError(err);
  if (mapped.serious) log.error({ err, rpc }, 'call failed');
  else log.debug({ rpc, details: mapped.details }, 'call refused');
  const redisClient = unavailableRedisClient(err);
  if (redisClient !== undefined) metrics.redisError(redisClient);
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(mapped.trailers ?? {})) metadata.set(key, value);
  return Object.assign(new Error(mapped.details), { code: mapped.code, details: mapped.details, metadata });
}

export function callingTerminal(context: CallContext): Terminal {
  return terminalOf(context.metadata);
}

export function callingOperator(context: CallContext): string {
  return operatorOf(context.metadata);
}
