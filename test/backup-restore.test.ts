// Backup and restore of the ledger (deploy/README.md, docs/history.md): a point-in-time RDB snapshot taken
// with BGSAVE while payments run, and a cold copy of the AOF directory after a clean stop, each restored
// into a fresh redis-server in another directory. The restored ledger must hold exactly what was approved
// up to its point (every balance = opening - approved payments on that card) and the audit must prove it
// sound. Runs its own redis-servers, as it stops them.
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { auditLedger } from '../switch/ledger/audit.js';
import type { Keys } from '../switch/ledger/keys.js';
import { createLogger } from '../switch/log.js';
import { startLocalRedis, type LocalRedis } from '../switch/redis/local-redis.js';
import { call, openCard, POS_TERMINAL, posClient, terminalMetadata, testConfig } from './helpers/switch.js';

const CARDS = 12;
const OPENING_FEN = 100_000;
const AMOUNT_FEN = 137;

const cardNo = (i: number): string => String(7_300_000 + i);
const serialOf = (i: number): string => `5B${String(i).padStart(6, '0')}`;

let root = '';
let source: LocalRedis | undefined;
let app: SwitchApp | undefined;
const restored: LocalRedis[] = [];
let sequence = 0;
/** Approved payments per card, as the POS saw them. */
const approved = new Map<number, number>();

async function payRound(target: SwitchApp): Promise<void> {
  const pos = posClient(target);
  try {
    const answers = await Promise.all(
      Array.from({ length: CARDS }, async (_, card) => {
        const response = await call<object, AuthorizeResponse>(
          pos,
          'authorize',
          {
            terminalId: POS_TERMINAL.id,
            sequenceNumber: (sequence += 1),
            amountFen: AMOUNT_FEN,
            credential: { card: { cardSerial: serialOf(card) } },
            pin: '',
          },
          terminalMetadata(POS_TERMINAL),
        );
        return { card, response };
      }),
    );
    for (const { card, response } of answers) {
      expect(response.outcome).toBe(Outcome.OUTCOME_APPROVED);
      approved.set(card, (approved.get(card) ?? 0) + 1);
    }
  } finally {
    pos.close();
  }
}

function expectedBalances(): Map<string, number> {
  return new Map(Array.from({ length: CARDS }, (_, i) => [cardNo(i), OPENING_FEN - (approved.get(i) ?? 0) * AMOUNT_FEN]));
}

async function balancesIn(redis: Redis, keys: Keys): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (let i = 0; i < CARDS; i++) out.set(cardNo(i), Number(await redis.hget(keys.account(cardNo(i)), 'bal')));
  return out;
}

/** Starts a redis-server on a copy of a data directory and returns a client to it. */
async function restoreInto(dir: string, appendOnly: boolean): Promise<Redis> {
  const server = await startLocalRedis({ dataDir: dir, port: 0, appendOnly, appendFsync: 'always', startTimeoutMs: 10_000 });
  restored.push(server);
  return new Redis(server.url, { maxRetriesPerRequest: 1 });
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'cardswitch-backup-'));
  source = await startLocalRedis({ dataDir: join(root, 'live'), port: 0, appendOnly: true, appendFsync: 'always', startTimeoutMs: 10_000 });
  const config = { ...testConfig('backup'), redisUrl: source.url };
  app = await startSwitch(config, createLogger(config.logLevel));
  await app.terminals.register(POS_TERMINAL);
  for (let i = 0; i < CARDS; i++) await openCard(app, cardNo(i), serialOf(i), OPENING_FEN);
});

afterAll(async () => {
  await app?.stop();
  await source?.stop();
  for (const server of restored) await server.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('backup and restore of the ledger', () => {
  it('an RDB snapshot (BGSAVE) restores the ledger as it was at the snapshot, and the audit proves it', async () => {
    const target = app as SwitchApp;
    for (let round = 0; round < 5; round++) await payRound(target);
    const atSnapshot = expectedBalances();
    // The backup: BGSAVE, wait until it finished, copy dump.rdb away (as deploy/README.md says).
    // Counted by rdb_saves, not LASTSAVE: LASTSAVE has whole seconds, and a snapshot finished in the second
    // the server started (no save before it) never moved it, which left this loop waiting until the timeout.
    const savesOf = (info: string): number => Number(/rdb_saves:(\d+)/.exec(info)?.[1] ?? NaN);
    const before = savesOf(await target.redis.info('persistence'));
    expect(Number.isInteger(before)).toBe(true);
    await target.redis.bgsave();
    for (;;) {
      const info = await target.redis.info('persistence');
      if (/rdb_bgsave_in_progress:0/.test(info) && savesOf(info) > before) break;
      if (/rdb_bgsave_in_progress:0/.test(info) && /rdb_last_bgsave_status:err/.test(info)) throw new Error('BGSAVE failed');
      await new Promise((resolve) => setImmediate(resolve));
    }
    const backupDir = join(root, 'rdb-restore');
    cpSync(join(root, 'live', 'dump.rdb'), join(backupDir, 'dump.rdb'), { recursive: true });
    // Payments after the snapshot are not in it.
    for (let round = 0; round < 3; round++) await payRound(target);

    const redis = await restoreInto(backupDir, false);
    try {
      expect(await balancesIn(redis, target.keys)).toEqual(atSnapshot);
      const report = await auditLedger(redis, target.keys);
      expect(report.problems).toEqual([]);
      expect(report).toMatchObject({ ok: true, accounts: CARDS });
      expect(report.heldFen).toBe([...atSnapshot.values()].reduce((a, b) => a + b, 0));
    } finally {
      redis.disconnect();
    }
  });

  it('a copy of the AOF directory (appendonly/, as npm start and deploy name it) taken after a clean stop restores every approved payment, and the audit proves it', async () => {
    const target = app as SwitchApp;
    await payRound(target);
    const final = expectedBalances();
    await target.stop();
    app = undefined;
    await (source as LocalRedis).stop();
    source = undefined;
    const backupDir = join(root, 'aof-restore');
    expect(existsSync(join(root, 'live', 'appendonly'))).toBe(true);
    cpSync(join(root, 'live', 'appendonly'), join(backupDir, 'appendonly'), { recursive: true });

    const redis = await restoreInto(backupDir, true);
    try {
      expect(await balancesIn(redis, target.keys)).toEqual(final);
      const report = await auditLedger(redis, target.keys);
      expect(report.problems).toEqual([]);
      expect(report).toMatchObject({ ok: true, accounts: CARDS });
      expect(report.heldFen).toBe([...final.values()].reduce((a, b) => a + b, 0));
    } finally {
      redis.disconnect();
    }
  });
});
