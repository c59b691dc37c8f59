// Development defaults shared by `npm start` and the CLI: secrets made once per checkout under var/,
// and the local redis-server that `npm start` runs. Production sets every variable itself.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT_DIR = fileURLToPath(new URL('../', import.meta.url));
export const VAR_DIR = process.env['CARDSWITCH_VAR_DIR'] ?? join(ROOT_DIR, 'var');
export const DEV_SECRETS_FILE = join(VAR_DIR, 'dev-secrets.json');
export const DEFAULT_LOCAL_REDIS_PORT = 6390;

const SECRET_NAMES = ['TERMINAL_SECRET_PEPPER', 'PASSWORD_PEPPER', 'OPERATOR_TOKENS', 'SESSION_SECRET', 'CAMPUS_QR_SECRET'] as const;

function newSecret(name: (typeof SECRET_NAMES)[number]): string {
  if (name === 'OPERATOR_TOKENS') return `admin:${randomBytes(18).toString('base64url')}`;
  return randomBytes(name === 'SESSION_SECRET' || name === 'CAMPUS_QR_SECRET' ? 32 : 24).toString('base64url');
}

function readSecrets(): Record<string, string> | undefined {
  if (!existsSync(DEV_SECRETS_FILE)) return undefined;
  return JSON.parse(readFileSync(DEV_SECRETS_FILE, 'utf8')) as Record<string, string>;
}

/** Fills unset secret variables from var/dev-secrets.json, creating it with random values if needed. */
export function ensureDevSecrets(env: NodeJS.ProcessEnv): void {
  if (SECRET_NAMES.every((n) => (env[n] ?? '') !== '')) return;
  const secrets = readSecrets() ?? {};
  // A checkout made before a secret existed gets the missing ones added; the others stay as they were.
  const missing = SECRET_NAMES.filter((n) => (secrets[n] ?? '') === '');
  if (missing.length > 0) {
    for (const n of missing) secrets[n] = newSecret(n);
    mkdirSync(VAR_DIR, { recursive: true });
    writeFileSync(DEV_SECRETS_FILE, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  }
  for (const n of SECRET_NAMES) if ((env[n] ?? '') === '') env[n] = secrets[n];
}

export function localRedisPort(env: NodeJS.ProcessEnv): number {
  const raw = env['LOCAL_REDIS_PORT'] ?? String(DEFAULT_LOCAL_REDIS_PORT);
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`LOCAL_REDIS_PORT=${raw}: must be a port number 1-65535`);
  return port;
}

/**
 * For the CLI: with no REDIS_URL, talk to the Redis of `npm start` in this checkout, with its secrets.
 * Returns a note for the operator, or undefined when nothing was filled in.
 */
export function applyLocalDefaults(env: NodeJS.ProcessEnv): string | undefined {
  if ((env['REDIS_URL'] ?? '') !== '' || (env['REDIS_CLUSTER_NODES'] ?? '') !== '' || (env['REDIS_SENTINELS'] ?? '') !== '')
    return undefined;
  if (readSecrets() === undefined) return undefined;
  env['REDIS_URL'] = `redis://127.0.0.1:${localRedisPort(env)}`;
  ensureDevSecrets(env);
  return `REDIS_URL not set: using the local Redis of npm start (${env['REDIS_URL']}) and ${DEV_SECRETS_FILE}`;
}
