// One private PostgreSQL cluster per test file (initdb in a temp dir, a free port, its socket in that
// dir), like the per-run redis-server; stop() and start() again on the same directory and port let a
// test take PostgreSQL away and bring it back.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
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
  /** A fresh database on this cluster (one per test: the archive holds one ledger); its URL. */
  database(name: string): Promise<string>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
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
