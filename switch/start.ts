// `npm start`: everything a newcomer needs on a fresh machine. Starts a private redis-server with AOF
// (appendfsync always, data under var/) when REDIS_URL is not set, creates development secrets under
// var/ on first start, loads the demo campus into an empty ledger, starts the switch, and prints where
// it listens with a ready-to-paste example call.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEV_SECRETS_FILE, ensureDevSecrets, localRedisPort, VAR_DIR } from './dev-env.js';
import { startSwitch, type SwitchApp } from './app.js';
import { ConfigError, describeLedgerRedis, loadConfig, withoutUrlCredentials, type Config } from './config.js';
import { DEFAULT_DEMO_CARDHOLDERS, DEFAULT_DEMO_SEED, demoDoc, generateDemoCampus } from './data/demo.js';
import { importCardholders, importTerminals, parseCardholdersCsv, parseTerminalsCsv } from './data/import.js';
import { createLogger, type Logger } from './log.js';
import { RedisServerMissingError, startLocalRedis, type LocalRedis } from './redis/local-redis.js';
import { PostgresMissingError, startLocalPostgres, type LocalPostgres } from './history/local-postgres.js';
import { IdentitySimulator } from './identity/simulator.js';
import {
  channelsConfigured,
  channelsFromEnvironment,
  startChannelSimulators,
  type ChannelSimulators,
  type PaymentChannels,
} from './channels/index.js';

/** The credentials the development identity simulator accepts (it stands in for WeCom and WeChat). */
const DEV_IDENTITY = {
  corpId: 'ww-dev-campus',
  corpSecret: 'dev-corp-secret-0123456789',
  appId: 'wx-dev-miniprogram',
  appSecret: 'dev-app-secret-0123456789',
};

/**
 * With neither WeCom nor WeChat configured, sign-ins go to the identity simulator on loopback (its
 * POST /sim/code hands out codes); a configured provider is used as configured.
 */
async function ensureIdentity(env: NodeJS.ProcessEnv, log: Logger): Promise<IdentitySimulator | undefined> {
  if ((env['WECOM_CORP_ID'] ?? '') !== '' || (env['WECHAT_APP_ID'] ?? '') !== '') return undefined;
  const simulator = new IdentitySimulator(DEV_IDENTITY);
  const port = Number(env['IDENTITY_SIMULATOR_PORT'] ?? '8091');
  const { url } = await simulator.start(Number.isInteger(port) && port >= 0 && port <= 65535 ? port : 8091);
  Object.assign(env, {
    WECOM_API_BASE: url,
    WECOM_CORP_ID: DEV_IDENTITY.corpId,
    WECOM_CORP_SECRET: DEV_IDENTITY.corpSecret,
    WECHAT_API_BASE: url,
    WECHAT_APP_ID: DEV_IDENTITY.appId,
    WECHAT_APP_SECRET: DEV_IDENTITY.appSecret,
  });
  log.warn({ url }, 'no WeCom / WeChat configured: sign-ins go to the development identity simulator');
  return simulator;
}

const DEMO_FLAG = 'demoLoaded';

async function ensureRedis(env: NodeJS.ProcessEnv, log: Logger): Promise<LocalRedis | undefined> {
  // A configured ledger (one Redis, a cluster, a Sentinel-watched master) is used as it is.
  if ((env['REDIS_URL'] ?? '') !== '' || (env['REDIS_CLUSTER_NODES'] ?? '') !== '' || (env['REDIS_SENTINELS'] ?? '') !== '')
    return undefined;
  const port = localRedisPort(env);
  const dataDir = join(VAR_DIR, 'redis');
  log.info({ port, dataDir }, 'REDIS_URL is not set: starting a local redis-server (AOF, appendfsync always)');
  const redis = await startLocalRedis({ dataDir, port, appendOnly: true, appendFsync: 'always', startTimeoutMs: 30_000 });
  env['REDIS_URL'] = redis.url;
  return redis;
}

const DEFAULT_LOCAL_POSTGRES_PORT = 55432;

/**
 * The journal archive's PostgreSQL: DATABASE_URL when set; otherwise a private cluster under
 * var/postgres (LOCAL_POSTGRES_PORT, default 55432), unless LOCAL_POSTGRES=off (no archive: the
 * journal then stays in Redis whole).
 */
async function ensurePostgres(env: NodeJS.ProcessEnv, log: Logger): Promise<LocalPostgres | undefined> {
  if ((env['DATABASE_URL'] ?? '') !== '' || env['LOCAL_POSTGRES'] === 'off') return undefined;
  const raw = env['LOCAL_POSTGRES_PORT'] ?? String(DEFAULT_LOCAL_POSTGRES_PORT);
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`LOCAL_POSTGRES_PORT=${raw}: must be a port number 1-65535`);
  const dataDir = join(VAR_DIR, 'postgres');
  log.info({ port, dataDir }, 'DATABASE_URL is not set: starting a local PostgreSQL for the journal archive');
  const postgres = await startLocalPostgres({ dataDir, port, startTimeoutMs: 60_000, database: 'cardswitch' });
  env['DATABASE_URL'] = postgres.url;
  return postgres;
}

async function loadDemoIfEmpty(app: SwitchApp, config: Config, log: Logger): Promise<void> {
  if (process.env['LOAD_DEMO'] === 'false') return;
  if ((await app.redis.hget(app.keys.meta(), DEMO_FLAG)) !== null) return;
  const count = Number(process.env['DEMO_CARDHOLDERS'] ?? DEFAULT_DEMO_CARDHOLDERS);
  log.info({ cardholders: count }, 'empty ledger: loading the demo campus (first start only)');
  const campus = generateDemoCampus({ cardholders: count, seed: DEFAULT_DEMO_SEED });
  const terminals = parseTerminalsCsv(campus.terminalsCsv);
  const cardholders = parseCardholdersCsv(campus.cardholdersCsv);
  if (terminals.errors.length + cardholders.errors.length > 0)
    throw new Error('the demo campus did not pass the importer (a bug in switch/data/demo.ts)');
  const terminalReport = await importTerminals(app.terminals, terminals.rows);
  // One line per chunk of 2,000 cards (a fraction of a second each; nothing is hashed: see data/import.ts).
  const startedMs = performance.now();
  const onProgress = (written: number, total: number): void =>
    log.info(
      { written, total, elapsedMs: Math.round(performance.now() - startedMs) },
      `demo campus: ${written.toLocaleString('en-US')} / ${total.toLocaleString('en-US')} cardholders`,
    );
  const cardReport = await importCardholders({ ledger: app.ledger }, cardholders.rows, { onProgress });
  const problems = [...terminalReport.errors, ...cardReport.errors];
  if (problems.length > 0)
    throw new Error(
      `the demo campus could not be loaded: ${problems
        .slice(0, 5)
        .map((p) => `line ${p.line}: ${p.message}`)
        .join('; ')}`,
    );
  await app.redis.hset(app.keys.meta(), DEMO_FLAG, String(Date.now()));
  log.info(
    { terminals: terminalReport.importedCount, cardholders: cardReport.importedCount, elapsedMs: cardReport.elapsedMs },
    'demo campus loaded',
  );
}

function gatewayLines(app: SwitchApp, config: Config, simulatorUrl: string | undefined): string[] {
  if (app.gateway === undefined) return [];
  const host = config.gateway.host === '0.0.0.0' ? '127.0.0.1' : config.gateway.host;
  const base = `http://${host}:${app.gateway.port}`;
  const card = demoDoc(DEFAULT_DEMO_SEED).cards[0];
  const lines = [
    `Gateway for phones: ${base}/api/v1 (reference: ${base}/api/v1/openapi.json, docs/gateway-api.md), live events ws://${host}:${app.gateway.port}/api/v1/events, ${base}/healthz, ${base}/metrics`,
    `The e-card page (电子校园卡, for a phone or a narrow browser window): ${base}/phone/` +
      (simulatorUrl === undefined ? '' : ` (sign in through the identity simulator; bind demo card ${card?.cardNo} with the form below)`),
  ];
  if (simulatorUrl === undefined) return [...lines, 'Sign-in: WeCom / WeChat as configured (WECOM_* / WECHAT_*).', ''];
  const form = {
    bindingType: card?.holderType,
    personNumber: card?.personNumber,
    password: card?.initialPassword,
    documentType: card?.documentType,
    documentNumber: card?.documentNumber,
    phone: card?.phone,
    consent: true,
  };
  return [
    ...lines,
    `A development session (identity simulator at ${simulatorUrl} stands in for WeCom and WeChat):`,
    `  code=$(curl -s -X POST ${simulatorUrl}/sim/code -H 'content-type: application/json' -d '{"provider":"wecom","user":"demo-user"}' | sed -E 's/.*"code":"([^"]+)".*/\\1/')`,
    `  token=$(curl -s -X POST ${base}/api/v1/session -H 'content-type: application/json' -d "{\\"provider\\":\\"wecom\\",\\"code\\":\\"$code\\"}" | sed -E 's/.*"accessToken":"([^"]+)".*/\\1/')`,
    `Bind demo card ${card?.cardNo} (tap it first: the "Read the card" call above syncs it), then show a campus QR code:`,
    `  token=$(curl -s -X POST ${base}/api/v1/ecard/binding -H "authorization: Bearer $token" -H 'content-type: application/json' -d '${JSON.stringify(form)}' | sed -E 's/.*"accessToken":"([^"]+)".*/\\1/')`,
    `  curl -s ${base}/api/v1/ecard/qr -H "authorization: Bearer $token"`,
    '',
  ];
}

/**
 * The demo POS's secret goes to a file of its own (readable by this user only), never into the output:
 * what `npm start` prints ends up in logs. The printed call reads it with $(cat ...).
 */
function writeDemoPosSecret(secret: string): string {
  const file = join(VAR_DIR, 'demo-pos-secret');
  mkdirSync(VAR_DIR, { recursive: true });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return file;
}

function printReady(app: SwitchApp, config: Config, simulatorUrl: string | undefined): void {
  const doc = demoDoc(DEFAULT_DEMO_SEED);
  const card = doc.cards[0];
  const pos = doc.canteenPos;
  const secretFile = writeDemoPosSecret(pos.secret);
  const secretHeader = `-H "terminal-secret: $(cat '${secretFile}')"`;
  const host = config.grpcHost === '0.0.0.0' ? '127.0.0.1' : config.grpcHost;
  const target = `${host}:${app.grpcPort}`;
  const body = JSON.stringify({
    terminal_id: pos.terminalId,
    sequence_number: Date.now() % 1_000_000_000,
    amount_fen: 1250,
    credential: { card: { card_serial: card?.cardSerial } },
  });
  const lines = [
    '',
    `cardswitch is ready: gRPC on ${target} (PosService, KioskService, AdminService, health, reflection)`,
    `ledger: ${describeLedgerRedis(config)} (key prefix "${config.keyPrefix}", ${config.ledgerShards} shards)`,
    `journal archive: ${config.history.databaseUrl === '' ? 'off (LOCAL_POSTGRES=off; the journal stays in Redis)' : `${withoutUrlCredentials(config.history.databaseUrl)}, live window ${config.history.liveWindowMs / 86_400_000} days (docs/history.md)`}`,
    '',
    `Pay 12.50 with demo card ${card?.cardNo} (${card?.name}, serial ${card?.cardSerial}) at ${pos.location}:`,
    `  grpcurl -plaintext -H 'terminal-id: ${pos.terminalId}' ${secretHeader} \\`,
    `    -d '${body}' ${target} cardswitch.v1.PosService/Authorize`,
    '',
    `Read the card:  grpcurl -plaintext -H 'terminal-id: ${pos.terminalId}' ${secretHeader} -d '{"terminal_id":"${pos.terminalId}","credential":{"card":{"card_serial":"${card?.cardSerial}"}}}' ${target} cardswitch.v1.PosService/Inquire`,
    `Operator token (AdminService metadata operator-token): see OPERATOR_TOKENS in ${DEV_SECRETS_FILE}`,
    '',
    ...gatewayLines(app, config, simulatorUrl),
    `(the demo POS's terminal secret is in ${secretFile}, not printed here)`,
    'Ctrl-C stops the switch gracefully.',
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

/**
 * The payment channels: the real ones when ALIPAY_* / WECHATPAY_* name them, otherwise both loopback
 * simulators (development), whose notifications go to this gateway.
 */
async function paymentChannels(
  env: NodeJS.ProcessEnv,
  config: Config,
  log: Logger,
): Promise<{ channels: PaymentChannels; simulators: ChannelSimulators | undefined }> {
  if (channelsConfigured(env)) return { channels: channelsFromEnvironment(env, log), simulators: undefined };
  const host = config.gateway.host === '0.0.0.0' ? '127.0.0.1' : config.gateway.host;
  const notifyBaseUrl = config.gateway.port === 0 ? '' : `http://${host}:${config.gateway.port}`;
  const simulators = await startChannelSimulators({ log, notifyBaseUrl });
  log.warn(
    { alipay: simulators.alipay.gatewayUrl, wechatPay: simulators.wechat.url },
    'payment channels: no ALIPAY_APP_ID / WECHATPAY_MCH_ID configured, so Alipay and WeChat Pay are the loopback simulators (development)',
  );
  return { channels: simulators.channels, simulators };
}

async function main(): Promise<number> {
  const env = process.env;
  const bootLog = createLogger(env['LOG_LEVEL'] ?? 'info');
  let localRedis: LocalRedis | undefined;
  let localPostgres: LocalPostgres | undefined;
  let identity: IdentitySimulator | undefined;
  let channelSimulators: ChannelSimulators | undefined;
  try {
    // A development server: loopback only unless told otherwise (the production entry point, main.ts,
    // keeps its configured host). The gateway follows GRPC_HOST unless GATEWAY_HOST is set.
    if ((env['GRPC_HOST'] ?? '') === '') env['GRPC_HOST'] = '127.0.0.1';
    ensureDevSecrets(env);
    localRedis = await ensureRedis(env, bootLog);
    localPostgres = await ensurePostgres(env, bootLog);
    identity = await ensureIdentity(env, bootLog);
    const config = loadConfig(env);
    const log = createLogger(config.logLevel);
    const payments = await paymentChannels(env, config, log);
    channelSimulators = payments.simulators;
    const app = await startSwitch(config, log, Date.now, { channels: payments.channels });
    await loadDemoIfEmpty(app, config, log);
    // Listening before saying ready: a Ctrl-C or SIGTERM on the ready message that came before the
    // listener was added would end the process by Node's default action and leave the local
    // redis-server and PostgreSQL it started running.
    const signalled = waitForSignal();
    printReady(app, config, identity?.url);
    await signalled;
    log.info('stopping');
    await app.stop();
    await channelSimulators?.stop();
    await identity?.stop();
    // The local redis-server runs in its own process group (Ctrl-C does not reach it): stopped last,
    // after the switch has drained its calls.
    await localRedis?.stop();
    await localPostgres?.stop();
    log.info('stopped');
    return 0;
  } catch (err) {
    await channelSimulators?.stop();
    await identity?.stop();
    await localRedis?.stop();
    await localPostgres?.stop();
    if (err instanceof PostgresMissingError) {
      process.stderr.write(`${err.message} (or LOCAL_POSTGRES=off to start without the journal archive)\n`);
      return 2;
    }
    if (err instanceof ConfigError || err instanceof RedisServerMissingError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    process.stderr.write(`cardswitch failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('npm start failed:', err);
    process.exit(1);
  },
);
