// The gateway on its own (`npm run gateway`): the holder API, live events, /healthz and /metrics of
// one process, without the gRPC server, against the ledger of REDIS_URL. Several of these may run
// beside the switches behind a load balancer: each listens on the events channel, so a page gets its
// events whichever gateway its socket reached. With no REDIS_URL it uses the local Redis and the
// secrets of `npm start` in this checkout (var/), like the CLI.
import { startSwitch } from '../app.js';
import { ConfigError, ledgerRedisConfigured, loadConfig } from '../config.js';
import { applyLocalDefaults } from '../dev-env.js';
import { createLogger } from '../log.js';

async function main(): Promise<number> {
  const env = process.env;
  const note = applyLocalDefaults(env);
  // On npm start's development Redis and secrets: loopback only, as npm start itself, unless told otherwise.
  if (note !== undefined && (env['GATEWAY_HOST'] ?? '') === '' && (env['GRPC_HOST'] ?? '') === '') env['GATEWAY_HOST'] = '127.0.0.1';
  let config;
  try {
    config = loadConfig(env);
    if (!ledgerRedisConfigured(config))
      throw new ConfigError(['REDIS_URL is required (or run npm start once in this checkout, then npm run gateway uses its Redis)']);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const log = createLogger(config.logLevel, 'cardswitch-gateway');
  if (note !== undefined) log.info(note);
  const app = await startSwitch(config, log, Date.now, { grpc: false });
  const port = app.gateway?.port ?? 0;
  log.info({ port, identityProviders: app.gateway?.identity.enabled() }, 'gateway ready (no gRPC in this process)');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await app.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`gateway failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
