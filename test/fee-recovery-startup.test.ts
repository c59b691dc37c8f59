// A fee payment left pending by a crash (the money taken, the provider never called) is finished by the
// recovery sweep right after the switch starts, not one interval later (issue 9, item 7).
import { afterAll, expect, it } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import { MoneyKeys } from '../switch/ledger/money.js';
import { KIOSK_TERMINAL, startClockedSwitch, TestClock } from './helpers/clients.js';
import { openCard, testConfig } from './helpers/switch.js';

// An hour: the periodic sweep cannot be what finishes the request within this test.
const INTERVAL_MS = 3_600_000;
const START_MS = Date.UTC(2026, 10, 26, 2, 0, 0);
const CARD = '88001';

let restarted: SwitchApp | undefined;
afterAll(async () => {
  await restarted?.stop();
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return condition();
}

it('finishes a fee payment left pending before the restart at start-up', async () => {
  const clock = new TestClock(START_MS);
  const prefix = testConfig('feestart').keyPrefix;
  const env = { KEY_PREFIX: prefix, FEE_RECOVERY_INTERVAL_MS: String(INTERVAL_MS) };
  const first = await startClockedSwitch('feestart', clock, env);
  await openCard(first, CARD, 'FE088001', 20_000);
  // The switch took the money and "crashed" before calling the provider.
  const debit = await first.context.money.feeDebit({
    cardNo: CARD,
    terminalId: KIOSK_TERMINAL.id,
    sequence: 1,
    amountFen: 2_500,
    kind: 'network',
    targetJson: JSON.stringify({ kind: 'network', account: 'zhang.san@campus' }),
  });
  expect(debit.code).toBe('pending');
  await first.stop();
  const pendingKey = new MoneyKeys(first.keys).feePendingOfCard(CARD);

  // It comes back more than an interval later (the request is old enough for any sweep to take it).
  clock.advance(INTERVAL_MS + 1_000);
  restarted = await startClockedSwitch('feestart', clock, env);
  const app = restarted;
  expect(await waitFor(async () => (await app.redis.zcard(pendingKey)) === 0, 10_000)).toBe(true);
  // The built-in provider simulator delivers: the fee stays paid, once.
  expect(Number(await app.redis.hget(app.keys.account(CARD), 'bal'))).toBe(17_500);
}, 30_000);
