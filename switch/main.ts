// Production entry point (`node dist/switch/main.js` after `npm run build`): configuration only from
// the environment, REDIS_URL required, no demo data, no development secrets.
import { startSwitch } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './log.js';

function configFromEnvironment(): Config {
  const config = loadConfig(process.env);
  if (config.redisUrl === '') {
    throw new ConfigError(['REDIS_URL is required (npm start runs a local Redis for development; production names its own)']);
  }
  return config;
}

async function main(): Promise<number> {
  let config: Config;
  try {
    config = configFromEnvironment();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const log = createLogger(config.logLevel);
  const app = await startSwitch(config, log);
  log.info({ grpcPort: app.grpcPort, redis: config.redisUrl.replace(/\/\/[^@]*@/, '//***@') }, 'cardswitch ready');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await app.stop();
  log.info('stopped');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cardswitch failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
