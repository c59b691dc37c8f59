// Production entry point (`node dist/switch/main.js` after `npm run build`): configuration only from
// the environment, REDIS_URL required, no demo data, no development secrets. gRPC is served over TLS
// (GRPC_TLS_CERT_FILE / GRPC_TLS_KEY_FILE, optionally GRPC_TLS_CLIENT_CA_FILE for terminals' client
// certificates); plaintext only when GRPC_PLAINTEXT=allow says so (behind a TLS-terminating proxy on a
// private network), with a warning in the log: PINs, kiosk passwords, terminal secrets and operator
// tokens cross this connection.
//
// SWITCH_PROCESSES=N (default 1) runs N switch processes sharing one gRPC port through node:cluster
// (the primary accepts connections and hands them round-robin to the workers); see loadtest/RESULTS.md
// for when a second process pays on a given machine.
import cluster from 'node:cluster';
import { startSwitch } from './app.js';
import { channelsFromEnvironment } from './channels/index.js';
import { ConfigError, describeLedgerRedis, ledgerRedisConfigured, loadConfig, type Config } from './config.js';
import { createLogger } from './log.js';
import type { Logger } from 'pino';

const MAX_PROCESSES = 64;

function configFromEnvironment(): Config {
  const config = loadConfig(process.env);
  if (!ledgerRedisConfigured(config)) {
    throw new ConfigError([
      'REDIS_URL (or REDIS_CLUSTER_NODES, or REDIS_SENTINELS) is required (npm start runs a local Redis for development; production names its own)',
    ]);
  }
  return config;
}

/** Refuses to serve gRPC in plaintext unless GRPC_PLAINTEXT=allow says so. */
function checkGrpcTransport(config: Config, serves: { grpc: boolean }): void {
  if (!serves.grpc || config.grpcTls !== undefined || config.grpcPlaintextAllowed) return;
  throw new ConfigError([
    'GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE are required: the production switch serves gRPC over TLS (card PINs, passwords and terminal secrets cross it). ' +
      'Set GRPC_PLAINTEXT=allow only behind a TLS-terminating proxy on a private network (deploy/envoy.yaml)',
  ]);
}

/** What the log says of the gRPC transport; plaintext is a warning every start. */
function logGrpcTransport(log: Logger, config: Config, serves: { grpc: boolean }): void {
  if (!serves.grpc) return;
  if (config.grpcTls === undefined) {
    log.warn(
      { grpcTransport: 'plaintext' },
      'gRPC is served in PLAINTEXT (GRPC_PLAINTEXT=allow): PINs, passwords and terminal secrets cross the network unencrypted unless a TLS proxy is in front',
    );
  } else {
    log.info({ grpcTransport: config.grpcTls.clientCa === undefined ? 'tls' : 'mtls' }, 'gRPC is served over TLS');
  }
}

function processCount(): number {
  const raw = process.env['SWITCH_PROCESSES'] ?? '1';
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PROCESSES)
    throw new ConfigError([`SWITCH_PROCESSES=${raw}: must be a whole number 1..${MAX_PROCESSES}`]);
  return n;
}

/** SWITCH_SERVES: what this process serves, `grpc,gateway` by default (one of them for split deployments). */
function servesFromEnvironment(): { grpc: boolean; gateway: boolean } {
  const raw = (process.env['SWITCH_SERVES'] ?? 'grpc,gateway')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = raw.filter((s) => s !== 'grpc' && s !== 'gateway');
  if (unknown.length > 0 || raw.length === 0)
    throw new ConfigError([`SWITCH_SERVES=${process.env['SWITCH_SERVES']}: must list grpc and/or gateway, comma-separated`]);
  return { grpc: raw.includes('grpc'), gateway: raw.includes('gateway') };
}

function untilSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

async function runSwitch(config: Config): Promise<number> {
  const log = createLogger(config.logLevel);
  const serves = servesFromEnvironment();
  logGrpcTransport(log, config, serves);
  // ALIPAY_* / WECHATPAY_* name the real channels; none configured: no third-party payments.
  const channels = channelsFromEnvironment(process.env, log);
  const app = await startSwitch(config, log, Date.now, { ...serves, channels });
  // Listening for the stop signal before saying ready: a SIGTERM sent on the ready line (an orchestrator, a
  // test) that came before the listener was added met Node's default action and ended the process without
  // stopping the switch (seen once in CI: exit by signal instead of 0).
  const signalled = untilSignal();
  log.info({ grpcPort: app.grpcPort, gatewayPort: app.gateway?.port, redis: describeLedgerRedis(config) }, 'cardswitch ready');
  if (cluster.isWorker) process.send?.({ ready: app.grpcPort });
  await signalled;
  await app.stop();
  log.info('stopped');
  return 0;
}

/** The primary only forks, forwards the stop signal and waits; a worker that dies unasked is replaced. */
async function runPrimary(config: Config, processes: number): Promise<number> {
  const log = createLogger(config.logLevel);
  let stopping = false;
  let ready = 0;
  const fork = (): void => {
    const worker = cluster.fork();
    worker.on('message', (m: { ready?: number }) => {
      if (m.ready !== undefined && ++ready === processes) log.info({ grpcPort: m.ready, processes }, 'cardswitch ready (all processes)');
    });
  };
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    log.error({ pid: worker.process.pid, code, signal }, 'switch process died; starting another');
    fork();
  });
  const signalled = untilSignal(); // before any worker can report ready (runSwitch says why)
  for (let i = 0; i < processes; i++) fork();
  await signalled;
  stopping = true;
  const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          w.once('exit', () => resolve());
          w.process.kill('SIGTERM');
        }),
    ),
  );
  log.info('stopped');
  return 0;
}

async function main(): Promise<number> {
  let config: Config;
  let processes: number;
  try {
    config = configFromEnvironment();
    processes = processCount();
    checkGrpcTransport(config, servesFromEnvironment());
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (cluster.isPrimary && processes > 1) return runPrimary(config, processes);
  return runSwitch(config);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cardswitch failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
