import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import { call, openCard, POS_TERMINAL, posClient, startTestSwitch, terminalMetadata } from './helpers/switch.js';

let app: SwitchApp;
beforeAll(async () => {
  app = await startTestSwitch('possmoke');
  await app.terminals.register(POS_TERMINAL);
  await openCard(app, '20230001', 'AB12CD34', 50_000);
});
afterAll(() => app.stop());

it('taps a card', async () => {
  const client = posClient(app);
  const res = await call<object, Record<string, unknown>>(
    client,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: 1, amountFen: 1000, credential: { card: { cardSerial: 'ab12cd34' } }, pin: '' },
    terminalMetadata(POS_TERMINAL),
  );
  expect(res).toMatchObject({ outcome: 1, balanceAfterFen: 49_000 });
  client.close();
});
