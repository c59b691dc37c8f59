// Starts a private PostgreSQL cluster (used by `npm start` when DATABASE_URL is not set, and by the tests):
// initdb once into `dataDir`, then `postgres` on a free port of 127.0.0.1 with its unix socket in the same
// directory. As root the server runs as the `postgres` user (PostgreSQL refuses to run as root): the
// directory is handed to that user and the processes are spawned with its uid/gid.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createServer } from 'node:net';
import { freePort } from '../redis/local-redis.js';

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export interface LocalPostgresOptions {
  /** The cluster's directory (PGDATA); created and initialised when empty. */
  readonly dataDir: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly startTimeoutMs: number;
  /** Database created (if missing) and named in the URL. */
  readonly database: string;
  /** Where the Debian version directories are (default /usr/lib/postgresql; tests point it elsewhere). */
  readonly binRoot?: string;
}

export interface LocalPostgres {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly process: ChildProcess;
  /** Fast shutdown (SIGINT: open transactions are rolled back, committed ones are on disk). */
  stop(): Promise<void>;
}

export class PostgresMissingError extends Error {
  override readonly name = 'PostgresMissingError';
  constructor() {
    super(
      'initdb / postgres were not found (looked in /usr/lib/postgresql/*/bin and on PATH). Install PostgreSQL ' +
        '(Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql`) or point DATABASE_URL at a running PostgreSQL.',
    );
  }
}

const DEBIAN_PG_ROOT = '/usr/lib/postgresql';

/** The directory holding initdb and postgres: the newest Debian version directory, else PATH. */
export function postgresBinDir(root = DEBIAN_PG_ROOT): string | undefined {
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return join(root, versions[0], 'bin');
  }
  const probe = spawnSync('initdb', ['--version'], { encoding: 'utf8' });
  return probe.error === undefined && probe.status === 0 ? '' : undefined;
}

/** uid/gid to run the server as: the `postgres` user when we are root, nobody else otherwise. */
function serverIdentity(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) {
    throw new Error('running as root, but there is no `postgres` user to run PostgreSQL as (the Debian package `postgresql` creates it)');
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function binary(binDir: string, name: string): string {
  return binDir === '' ? name : join(binDir, name);
}

function initCluster(binDir: string, dataDir: string, identity: { uid: number; gid: number } | undefined): void {
  if (existsSync(join(dataDir, 'PG_VERSION'))) return;
  const result = spawnSync(
    binary(binDir, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-instructions'],
    { encoding: 'utf8', ...(identity ?? {}) },
  );
  if (result.status !== 0) throw new Error(`initdb failed in ${dataDir}: ${result.stderr || result.stdout || String(result.error)}`);
}

export async function startLocalPostgres(options: LocalPostgresOptions): Promise<LocalPostgres> {
  const binDir = postgresBinDir(options.binRoot);
  if (binDir === undefined) throw new PostgresMissingError();
  const identity = serverIdentity();
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  if (identity !== undefined) {
    chownSync(options.dataDir, identity.uid, identity.gid);
    const reach = spawnSync('test', ['-x', options.dataDir], identity);
    if (reach.status !== 0) {
      throw new Error(
        `the postgres user cannot reach ${options.dataDir}: every directory above it must be searchable by others (chmod o+x)`,
      );
    }
  }
  initCluster(binDir, options.dataDir, identity);
  const port = options.port === 0 ? await freePort() : options.port;
  if (options.port !== 0 && !(await portIsFree(port))) {
    throw new Error(
      `port ${port} is already in use (a postgres left from an earlier run? it stops with \`pg_ctl -D ${options.dataDir} stop\`); ` +
        'choose another port with LOCAL_POSTGRES_PORT, or set DATABASE_URL to use a running PostgreSQL',
    );
  }
  const args = [
    '-D',
    options.dataDir,
    '-p',
    String(port),
    '-k',
    options.dataDir,
    '-c',
    'listen_addresses=127.0.0.1',
    // Stated, not inherited: an archived batch is on disk before its position moves on in Redis.
    '-c',
    'synchronous_commit=on',
    '-c',
    'fsync=on',
    '-c',
    'max_connections=50',
    '-c',
    'logging_collector=off',
  ];
  // Its own process group, like the private redis-server: Ctrl-C reaches the switch, which stops this.
  const child = spawn(binary(binDir, 'postgres'), args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true, ...(identity ?? {}) });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8000);
  });
  const baseUrl = `postgres://postgres@127.0.0.1:${port}`;
  await waitUntilReady(`${baseUrl}/postgres`, child, options.startTimeoutMs, () => stderr);
  await ensureDatabase(`${baseUrl}/postgres`, options.database);
  return { url: `${baseUrl}/${options.database}`, port, dataDir: options.dataDir, process: child, stop: () => stopChild(child) };
}

async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(database)) throw new Error(`database name "${database}" must be lower-case letters, digits, _`);
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${database}`);
  } finally {
    await client.end();
  }
}

async function waitUntilReady(url: string, child: ChildProcess, timeoutMs: number, stderr: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`postgres exited with code ${code} during start: ${stderr()}`))),
  );
  exited.catch(() => undefined);
  while (Date.now() < deadline) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    client.on('error', () => undefined);
    try {
      await Promise.race([client.connect().then(() => client.query('SELECT 1')), exited]);
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (child.exitCode !== null) throw err;
      await Promise.race([new Promise((r) => setTimeout(r, 50)), exited]);
    }
  }
  child.kill('SIGKILL');
  throw new Error(`postgres did not answer on ${url} within ${timeoutMs} ms: ${stderr()}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
