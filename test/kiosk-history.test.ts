// The kiosk's statement when the history archive (PostgreSQL) is down: the real renderer in Debian's
// Chromium, the same main-process handlers, a real switch with DATABASE_URL and a private PostgreSQL.
// The card's lines have all left Redis for the archive (archived and trimmed, the archiver's clock two
// days ahead); with PostgreSQL stopped the statement says so in plain words ("较早的账单记录暂时无法查询"),
// not "the card system cannot be reached", and its retry reads the lines once PostgreSQL is back.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeRequest, AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { ArchiveStore } from '../switch/history/archive-store.js';
import { Archiver } from '../switch/history/archiver.js';
import { createLogger } from '../switch/log.js';
import { passwordHash } from './helpers/clients.js';
import { startKioskRig, type KioskRig } from './helpers/kiosk-rig.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';
import { call, openCard, POS_TERMINAL, posClient, terminalMetadata } from './helpers/switch.js';

const PIN = '246813';
const DAY_MS = 86_400_000;
const CARD_NO = '31900001';
const SERIAL = 'C4900001';

let postgres: TestPostgres;
let rig: KioskRig;
let page: Page;

const screen = (name: string) => page.locator(`#app[data-screen="${name}"]`);
const press = (name: string) => page.getByRole('button', { name, exact: true }).click();

beforeAll(async () => {
  postgres = await startTestPostgres();
  const databaseUrl = await postgres.database('kiosk_history');
  rig = await startKioskRig({ label: 'khistory', switchEnv: { DATABASE_URL: databaseUrl, HISTORY_ARCHIVE: 'off' } });
  await rig.app.terminals.register(POS_TERMINAL);
  await openCard(rig.app, CARD_NO, SERIAL, 50_000, { name: '陈晓', pwd: await passwordHash(rig.app, PIN) });
  const pos = posClient(rig.app);
  try {
    for (let i = 1; i <= 5; i++) {
      const paid = await call<AuthorizeRequest, AuthorizeResponse>(
        pos,
        'authorize',
        { terminalId: POS_TERMINAL.id, sequenceNumber: i, amountFen: 300 + i, credential: { card: { cardSerial: SERIAL } }, pin: '' },
        terminalMetadata(POS_TERMINAL),
      );
      expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
    }
  } finally {
    pos.close();
  }
  // Every entry archived and, older than the archiver's one-day window, trimmed from Redis.
  const store = new ArchiveStore({ url: databaseUrl, poolSize: 2, statementTimeoutMs: 30_000 });
  try {
    await store.open(rig.app.keys.prefix, rig.app.keys.shardCount);
    const archiver = new Archiver({
      redis: rig.app.redis,
      keys: rig.app.keys,
      store,
      log: createLogger('silent'),
      batchSize: 100,
      intervalMs: 10,
      liveWindowMs: DAY_MS,
      trim: true,
      now: () => Date.now() + 2 * DAY_MS,
    });
    await archiver.syncPositions();
    const pass = await archiver.runPass();
    expect(pass.archived).toBeGreaterThanOrEqual(6);
  } finally {
    await store.close();
  }
  expect(await rig.app.redis.zcard(rig.app.keys.statement(CARD_NO))).toBe(0);
  page = await rig.open();
}, 120_000);

afterAll(async () => {
  try {
    await rig?.stop();
  } finally {
    await postgres?.destroy();
  }
});

it('the statement with the archive down: its own words and a retry, which reads the lines once PostgreSQL is back', async () => {
  await rig.handlers.cardRead(SERIAL);
  await screen('home').waitFor();
  await press('账单');
  await screen('entry').waitFor();
  await postgres.stop();
  try {
    for (const digit of PIN) await page.getByRole('button', { name: digit, exact: true }).first().click();
    await press('确认');
    await screen('error').waitFor();
    const alert = await page.getByRole('alert').innerText();
    expect(alert).toContain('较早的账单记录暂时无法查询');
    expect(alert).not.toContain('系统暂时无法连接');
    await rig.screenshot('32-error-history-unavailable');
  } finally {
    await postgres.restart();
  }
  await press('重试');
  await screen('statement').waitFor();
  const rows = page.locator('table.statement tbody tr');
  expect(await rows.count()).toBe(6); // five payments and the opening balance
  expect(await rows.first().innerText()).toContain('-3.05');
});
