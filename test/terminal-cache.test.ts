// The terminal cache (domain/terminals.ts) remembers looked-up terminal ids, and the absence of an
// unknown one, so authenticating costs no Redis round trip. Its ids come from callers before they are
// authenticated: an AuthorizeStream message names any terminal it likes. Before, every id ever named
// stayed in the cache for good: a client without credentials naming made-up ids grew the switch's
// memory without end (30,000 messages, 30,000 entries).
import { status as Status } from '@grpc/grpc-js';
import { expect, it, onTestFinished } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { StreamedAuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { MAX_CACHED_TERMINALS } from '../switch/domain/terminals.js';
import { openCard, POS_TERMINAL, posClient, startTestSwitch } from './helpers/switch.js';

it(`an AuthorizeStream naming 30,000 made-up terminals: each UNAUTHENTICATED, and the cache holds at most ${MAX_CACHED_TERMINALS} ids`, async () => {
  // The production cache (the tests' default turns it off).
  const app = await startTestSwitch('terminal-cache', { TERMINAL_CACHE_MS: '1000' });
  onTestFinished(() => app.stop());
  await app.terminals.register(POS_TERMINAL);
  await openCard(app, '8600001', 'FF000001', 50_000);
  const client = posClient(app);
  onTestFinished(() => client.close());
  const stream = client.authorizeStream();
  const answers: StreamedAuthorizeResponse[] = [];
  const count = 30_000;
  const done = new Promise<void>((resolve) =>
    stream.on('data', (answer: StreamedAuthorizeResponse) => {
      answers.push(answer);
      if (answers.length === count + 1) resolve();
    }),
  );
  stream.on('error', () => undefined);
  const card = { card: { cardSerial: 'FF000001' } };
  for (let i = 1; i <= count; i++) {
    const terminalId = `MADE-UP-${i}`;
    stream.write({
      tag: i,
      terminalSecret: 'guessed-secret-0123456789',
      request: { terminalId, sequenceNumber: 1, amountFen: 100, credential: card, pin: '' },
    });
  }
  // The registered terminal still pays on the same stream.
  stream.write({
    tag: count + 1,
    terminalSecret: POS_TERMINAL.secret,
    request: { terminalId: POS_TERMINAL.id, sequenceNumber: 1, amountFen: 100, credential: card, pin: '' },
  });
  await done;
  stream.end();
  expect(answers.filter((a) => a.error?.code === Status.UNAUTHENTICATED)).toHaveLength(count);
  expect(answers.find((a) => a.tag === count + 1)?.response?.outcome).toBe(Outcome.OUTCOME_APPROVED);
  expect(app.terminals.cachedTerminals).toBeLessThanOrEqual(MAX_CACHED_TERMINALS);
  expect(Number(await app.redis.hget(app.keys.account('8600001'), 'bal'))).toBe(50_000 - 100);
});
