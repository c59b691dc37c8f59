// The gRPC server: services, terminal authentication, grpc.health.v1, server reflection, and a
// graceful shutdown (health NOT_SERVING, drain in-flight calls, force after a bounded grace).
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import { withSafeDecoding } from './unary.js';
import type { ServerInterceptor } from '@grpc/grpc-js';

export const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url));

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
  // text, checked again in the handler); every field of every other request has its own limit.
  'grpc.max_receive_message_length': 9 * 1024 * 1024,
  'grpc.max_concurrent_streams': 1000,
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_permit_without_calls': 1,
  // channelz stays on although no channelz service is served: its per-call bookkeeping costs a little
  // (h2load on the no-op PosService: 5,888-6,921 calls/s with it, 6,397-6,969 without), but grpc-js
  // 1.14 tracks a server's sessions only with it, and forceShutdown() needs them to end a call that
  // outlives the grace period (test/pos-server.test.ts fails without).
} as const;

export interface ServiceRegistration {
  readonly name: string;
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
}

export interface GrpcServerOptions {
  readonly host: string;
  readonly port: number;
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

export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const server = new Server({ ...GRPC_SERVER_OPTIONS, interceptors: options.interceptors });
  const statusMap: Record<string, 'SERVING' | 'NOT_SERVING'> = { '': 'SERVING' };
  for (const s of options.services) {
    server.addService(withSafeDecoding(s.definition), s.implementation);
    statusMap[s.name] = 'SERVING';
  }
  const health = new HealthImplementation(statusMap);
  health.addToServer(server);
  const reflection = new ReflectionService(loadSync(protoFiles(join(PROTO_ROOT, 'cardswitch')), { includeDirs: [PROTO_ROOT] }));
  reflection.addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, ServerCredentials.createInsecure(), (err, bound) =>
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
