// One private PostgreSQL cluster per test file (initdb in a temp dir, a free port, its socket in that
// dir), like the per-run redis-server; stop() and start() again on the same directory and port let a
// test take PostgreSQL away and bring it back.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startLocalPostgres, type LocalPostgres } from '../../switch/history/local-postgres.js';

export interface TestPostgres {
  readonly url: string;
  /** Stops the server (fast shutdown); its data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same directory and port. */
  restart(): Promise<void>;
  /** Stops every process of the server (SIGSTOP to its process group): it hangs with its connections open. */
  pause(): void;
  /** Lets a paused server go on (SIGCONT). */
  resume(): void;
  /** A fresh database on this cluster (one per test: the archive holds one ledger); its URL. */
  database(name: string): Promise<string>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

/** The processes whose parent is `parent` (a postmaster's backends each lead their own process group). */
function childrenOf(parent: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid ...": the command may hold spaces and parentheses, so read after the last ")".
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** `signal` to a postmaster and each of its processes; one that ended meanwhile (a backend) is passed over. */
function signalAll(postmaster: number, signal: NodeJS.Signals): void {
  for (const pid of [postmaster, ...childrenOf(postmaster)]) {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const root = mkdtempSync(join(tmpdir(), 'cardswitch-test-pg-'));
  // Searchable by the postgres user when the tests run as root (the server then runs as postgres).
  chmodSync(root, 0o711);
  const dataDir = join(root, 'data');
  let server: LocalPostgres | undefined = await startLocalPostgres({ dataDir, port: 0, startTimeoutMs: 60_000, database: 'cardswitch' });
  const port = server.port;
  const url = server.url;
  return {
    url,
    stop: async () => {
      await server?.stop();
      server = undefined;
    },
    restart: async () => {
      if (server !== undefined) throw new Error('the test PostgreSQL is running');
      server = await startLocalPostgres({ dataDir, port, startTimeoutMs: 60_000, database: 'cardswitch' });
    },
    pause: () => {
      if (server?.process.pid === undefined) throw new Error('the test PostgreSQL is not running');
      signalAll(server.process.pid, 'SIGSTOP');
    },
    resume: () => {
      if (server?.process.pid !== undefined) signalAll(server.process.pid, 'SIGCONT');
    },
    database: async (name: string) => {
      if (!/^[a-z][a-z0-9_]{0,40}$/.test(name)) throw new Error(`database name ${name}`);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return url.replace(/\/cardswitch$/, `/${name}`);
    },
    destroy: async () => {
      await server?.stop();
      server = undefined;
      rmSync(root, { recursive: true, force: true });
    },
  };
}
