// The gRPC server: services, terminal authentication, grpc.health.v1, server reflection, and a
// graceful shutdown (health NOT_SERVING, drain in-flight calls, force after a bounded grace).
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Server,
  ServerCredentials,
  status as Status,
  type MethodDefinition,
  type ServerInterceptor,
  type ServiceDefinition,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { Logger } from 'pino';
import type { GrpcTlsConfig } from '../config.js';
import { receiveLimitInterceptor } from './receive-limit.js';
import { UndecodableRequest, withSafeDecoding } from './unary.js';

export const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url));
/** grpc-health-check ships the health.proto it serves (…/proto/health/v1/health.proto). */
const HEALTH_PROTO_ROOT = dirname(dirname(dirname(healthProtoPath)));

function protoFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...protoFiles(full));
    else if (name.endsWith('.proto')) out.push(relative(PROTO_ROOT, full));
  }
  return out.sort();
}

/** The switch's grpc-js server options (the bench's no-op baseline server uses the same). */
export const GRPC_SERVER_OPTIONS = {
  // Bounded inputs: the largest legitimate request is an operator's CSV import (at most 8 MiB of
  // UTF-8, data/import.ts MAX_IMPORT_CSV_BYTES, checked again in the handler, one message for both);
  // every other method accepts far less (receive-limit.ts, the
  // first interceptor of startGrpcServer), and every field of every request has its own limit.
  'grpc.max_receive_message_length': 9 * 1024 * 1024,
  // No HTTP/2 session memory limit of Node's own (grpc-js's default, stated here so an upgrade cannot
  // bring back Node's 10 MB one, past which a session refuses new streams with ENHANCE_YOUR_CALM).
  // grpc-js refuses a message over the receive limit as soon as its length prefix arrives, and the
  // connection goes on (test/oversized.test.ts: 10 to 100 MiB, grpc-js and a bare HTTP/2 client).
  'grpc-node.max_session_memory': Number.MAX_SAFE_INTEGER,
  'grpc.max_concurrent_streams': 1000,
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_permit_without_calls': 1,
  // channelz stays on although no channelz service is served: its per-call bookkeeping costs a little
  // (h2load on the no-op PosService: loadtest/RESULTS.md, "Figures once kept in comments", row C3), but
  // grpc-js 1.14 tracks a server's sessions only with it, and forceShutdown() needs them to end a call
  // that outlives the grace period (test/pos-server.test.ts fails without).
} as const;

export interface ServiceRegistration {
  readonly name: string;
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
}

export interface GrpcServerOptions {
  readonly host: string;
  readonly port: number;
  /** Serve TLS (and mTLS with a client CA); undefined: plaintext. */
  readonly tls?: GrpcTlsConfig | undefined;
  readonly shutdownGraceMs: number;
  readonly interceptors: ServerInterceptor[];
  readonly services: readonly ServiceRegistration[];
  readonly log: Logger;
  /** Run when shutdown begins, before the drain (long-lived streams end themselves here). */
  readonly onShutdown?: readonly (() => void)[];
}

export interface RunningGrpcServer {
  readonly port: number;
  /** Health NOT_SERVING, drain, force after the grace period. Resolves when the server is down. */
  shutdown(): Promise<void>;
}

/**
 * Reflection describes our services and grpc.health.v1.Health (so `grpcurl ADDR grpc.health.v1.Health/Check`
 * works without -proto files).
 */
function reflectionService(): ReflectionService {
  const files = [...protoFiles(join(PROTO_ROOT, 'cardswitch')), relative(HEALTH_PROTO_ROOT, healthProtoPath)];
  return new ReflectionService(loadSync(files, { includeDirs: [PROTO_ROOT, HEALTH_PROTO_ROOT] }));
}

type Refusal = { code: Status; details: string };

/** A reflection request that did not decode is answered in the stream, like any other bad request. */
function reflectionRefusal(refusal: Refusal): object {
  return { errorResponse: { errorCode: refusal.code, errorMessage: refusal.details } };
}

/**
 * What health and reflection register (they call addService themselves) gets safe decoding, as our own
 * services do: bytes that do not decode are INVALID_ARGUMENT instead of grpc-js's INTERNAL. A unary or
 * server-streaming call ends with that status; on a bidirectional stream, `inBand` (reflection) answers
 * the message in the stream and the stream goes on, otherwise the stream ends with it.
 */
function refusingUndecodable(server: Server, inBand?: (refusal: Refusal) => object): Pick<Server, 'addService'> {
  return {
    addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation): void {
      const wrapped: Record<string, UntypedHandleCall> = {};
      for (const [name, method] of Object.entries(definition)) {
        const handler = implementation[name] ?? (method.originalName === undefined ? undefined : implementation[method.originalName]);
        if (handler !== undefined) wrapped[name] = refusingHandler(method, handler as Handler, inBand) as UntypedHandleCall;
      }
      server.addService(withSafeDecoding(definition), wrapped);
    },
  };
}

function undecodable(method: MethodDefinition<unknown, unknown>, request: UndecodableRequest): Refusal {
  const rpc = method.path.replace(/^\/(?:[a-z0-9]+\.)*/, '');
  return { code: Status.INVALID_ARGUMENT, details: `the ${rpc} request could not be decoded: ${request.reason}` };
}

/** What the wrappers touch of grpc-js's call objects (ServerUnaryCall, ServerWritableStream, ServerDuplexStream). */
interface CallLike {
  request?: unknown;
  emit(event: string | symbol, ...args: unknown[]): boolean;
  write(message: unknown): boolean;
  pause?(): unknown;
  resume?(): unknown;
  once?(event: 'drain', listener: () => void): unknown;
}
type Handler = (call: CallLike, callback?: (err: Refusal) => void) => unknown;

function refusingHandler(method: MethodDefinition<unknown, unknown>, handler: Handler, inBand?: (refusal: Refusal) => object): Handler {
  if (!method.requestStream) {
    return (call: CallLike, callback?: (err: Refusal) => void) => {
      if (!(call.request instanceof UndecodableRequest)) return handler(call, callback);
      const refusal = undecodable(method, call.request);
      // A unary call answers through its callback; a server stream ends with the status its 'error' event carries.
      if (callback !== undefined) callback(refusal);
      else call.emit('error', refusal);
      return undefined;
    };
  }
  return (call: CallLike) => {
    // Reflection answers every request at once and never looks at what write() returns: a client that
    // sent requests and read no answer had every answer queued in the switch, about 280 bytes of heap
    // per 31-byte request, without credentials (test/pos-server.test.ts). So the stream stops being read
    // while its answers wait (HTTP/2 flow control then holds the client) and goes on once they drained.
    const write = call.write.bind(call);
    let held = false;
    call.write = (message: unknown): boolean => {
      const room = write(message);
      if (!room && !held && call.pause !== undefined && call.resume !== undefined && call.once !== undefined) {
        held = true;
        call.pause();
        call.once('drain', () => {
          held = false;
          call.resume?.();
        });
      }
      return room;
    };
    // The handler reads messages from 'data' events; an undecodable one never reaches it.
    const emit = call.emit.bind(call);
    call.emit = (event: string | symbol, ...args: unknown[]): boolean => {
      const message = args[0];
      if (event !== 'data' || !(message instanceof UndecodableRequest)) return emit(event, ...args);
      const refusal = undecodable(method, message);
      if (inBand !== undefined) call.write(inBand(refusal));
      else emit('error', refusal);
      return true;
    };
    return handler(call);
  };
}

/**
 * Health/Watch of a service this switch does not serve is answered SERVICE_UNKNOWN and watches nothing.
 * grpc-health-check keeps a watcher set per service name ever watched and never drops an emptied one:
 * a client without credentials watching made-up names and hanging up left every name in the switch
 * (about 1.3 KB per 1,000-character name, without end: test/pos-server.test.ts). The served names are
 * fixed when the server starts, so an unknown one can never change status: the stream stays open (as
 * the health protocol has it) with nothing to tell.
 */
function watchingServedOnly(inner: Pick<Server, 'addService'>, served: Record<string, unknown>): Pick<Server, 'addService'> {
  return {
    addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation): void {
      const watch = implementation['watch'] as ((call: CallLike) => unknown) | undefined;
      if (watch === undefined) return inner.addService(definition, implementation);
      const watchServed = (call: CallLike): unknown => {
        const service = (call.request as { service?: unknown } | undefined)?.service;
        if (typeof service === 'string' && Object.hasOwn(served, service)) return watch(call);
        call.write({ status: 'SERVICE_UNKNOWN' });
        return undefined;
      };
      inner.addService(definition, { ...implementation, watch: watchServed as UntypedHandleCall });
    },
  };
}

/** TLS with the configured certificate; with a client CA, every client must present a certificate it signed. */
function serverCredentials(tls: GrpcTlsConfig | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(
    tls.clientCa ?? null,
    [{ cert_chain: tls.certChain, private_key: tls.privateKey }],
    tls.clientCa !== undefined,
  );
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  // The receive limit first: it needs grpc-js's own call, before any interceptor wraps it.
  const server = new Server({ ...GRPC_SERVER_OPTIONS, interceptors: [receiveLimitInterceptor(options.log), ...options.interceptors] });
  const statusMap: Record<string, 'SERVING' | 'NOT_SERVING'> = { '': 'SERVING' };
  for (const s of options.services) {
    server.addService(withSafeDecoding(s.definition), s.implementation);
    statusMap[s.name] = 'SERVING';
  }
  const health = new HealthImplementation(statusMap);
  health.addToServer(watchingServedOnly(refusingUndecodable(server), statusMap));
  reflectionService().addToServer(refusingUndecodable(server, reflectionRefusal));

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, serverCredentials(options.tls), (err, bound) =>
      err ? reject(new Error(`cannot listen on ${options.host}:${options.port}: ${err.message}`)) : resolve(bound),
    ),
  );

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    shuttingDown ??= new Promise<void>((resolve) => {
      for (const name of Object.keys(statusMap)) health.setStatus(name, 'NOT_SERVING');
      options.log.info({ graceMs: options.shutdownGraceMs }, 'shutting down: draining in-flight calls');
      for (const hook of options.onShutdown ?? []) hook();
      const force = setTimeout(() => {
        options.log.warn('grace period over: forcing shutdown');
        server.forceShutdown();
        resolve();
      }, options.shutdownGraceMs);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    return shuttingDown;
  };
  return { port, shutdown };
}
