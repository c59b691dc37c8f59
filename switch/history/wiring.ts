// What app.ts builds for the history when DATABASE_URL is set: the archive store (the ledger's
// JournalArchive: statements, reports, reconciliation and the audit read it) and, unless
// HISTORY_ARCHIVE=off, the archiver running inside the switch.
import type { Redis } from 'ioredis';
import { withoutUrlCredentials, type Config } from '../config.js';
import type { Keys } from '../ledger/keys.js';
import { ledgerIdentity } from '../ledger/meta.js';
import type { Logger } from '../log.js';
import { ArchiveStore } from './archive-store.js';
import { Archiver } from './archiver.js';

export interface RunningHistory {
  readonly store: ArchiveStore;
  readonly archiver: Archiver | undefined;
  /** Stops the archiver (after its transaction under way), then closes the pool. */
  stop(): Promise<void>;
}

/** Connections: the archiver's shard workers and the readers (statements, reports, audit). */
const HISTORY_POOL_SIZE = 8;
const HISTORY_STATEMENT_TIMEOUT_MS = 30_000;

export async function openHistory(
  config: Config,
  deps: { readonly redis: Redis; readonly keys: Keys; readonly log: Logger; readonly now: () => number },
): Promise<RunningHistory | undefined> {
  const settings = config.history;
  if (settings.databaseUrl === '') {
    // Loud: without an archive nothing is ever trimmed, and Redis's memory grows with every payment.
    deps.log.warn(
      'DATABASE_URL is not set: the journal is not archived, and journal entries and statement lines stay in Redis for good (its memory grows with every payment); set DATABASE_URL (docs/history.md)',
    );
    return undefined;
  }
  const store = new ArchiveStore({
    url: settings.databaseUrl,
    poolSize: HISTORY_POOL_SIZE,
    statementTimeoutMs: HISTORY_STATEMENT_TIMEOUT_MS,
  });
  try {
    await store.open(deps.keys.prefix, deps.keys.shardCount, await ledgerIdentity(deps.redis, deps.keys));
  } catch (err) {
    await store.close().catch(() => undefined);
    throw new Error(`cannot open the journal archive at ${withoutUrlCredentials(settings.databaseUrl)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const archiver = settings.archive
    ? new Archiver({
        redis: deps.redis,
        keys: deps.keys,
        store,
        log: deps.log,
        batchSize: settings.batchSize,
        intervalMs: settings.intervalMs,
        liveWindowMs: settings.liveWindowMs,
        trim: settings.trim,
        now: deps.now,
        // The durable mode: archived only what a replica holds, as a payment is answered only then.
        ...(config.ledgerDurability === 'replica' ? { replicaWaitTimeoutMs: config.ledgerWaitTimeoutMs } : {}),
      })
    : undefined;
  archiver?.start();
  deps.log.info({ archiver: archiver !== undefined, liveWindowDays: settings.liveWindowMs / 86_400_000 }, 'journal archive open');
  return {
    store,
    archiver,
    stop: async () => {
      await archiver?.stop();
      await store.close();
    },
  };
}
