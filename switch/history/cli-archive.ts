// The journal archive for the operator CLI (audit, reconcile): DATABASE_URL as the switch reads it.
import type { Config } from '../config.js';
import { ArchiveStore } from './archive-store.js';

/** Opened when DATABASE_URL is set (the migrations are applied, the ledger checked); the caller closes it. */
export async function openArchiveForCli(config: Config): Promise<ArchiveStore | undefined> {
  if (config.history.databaseUrl === '') return undefined;
  const store = new ArchiveStore({ url: config.history.databaseUrl, poolSize: 2, statementTimeoutMs: 300_000 });
  try {
    await store.open(config.keyPrefix, config.ledgerShards);
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}
