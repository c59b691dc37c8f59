// One terminal guessing card passwords across many cards (issue 9, item 1): the terminal's wrong
// passwords of the hour are limited (TERMINAL_PASSWORD_FAILURES_PER_HOUR), taken before the check like
// the card's, against a real switch and Redis.
import { status as Status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeclineReason } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import type { NewTerminal } from '../switch/domain/terminals.js';
import { settleTerminalPasswordCheck, takeTerminalPasswordCheck } from '../switch/ledger/terminal-password.js';
import { KIOSK_TERMINAL, kioskClient, passwordHash, startClockedSwitch, TestClock } from './helpers/clients.js';
import { call, grpcError, openCard, POS_TERMINAL, posClient, terminalMetadata } from './helpers/switch.js';

const PIN = '135790';
const WRONG = '000000';
const LIMIT = 20;
const CARDS = 1000;
// 2026-11-26 10:05 in campus time (UTC+8): well inside a clock hour.
const START_MS = Date.UTC(2026, 10, 26, 2, 5, 0);
const KIOSK_2: NewTerminal = { ...KIOSK_TERMINAL, id: 'KIOSK-D5-01', location: '学五公寓一层大厅', secret: 'kiosk-secret-2-0123456789' };

let app: SwitchApp;
let clock: TestClock;
let kiosk: ReturnType<typeof kioskClient>;
let pos: ReturnType<typeof posClient>;

const cardNo = (i: number): string => String(500000 + i);
const serial = (i: number): string => `DD${String(500000 + i)}`;

beforeAll(async () => {
  clock = new TestClock(START_MS);
  app = await startClockedSwitch('termpwd', clock, { TERMINAL_PASSWORD_FAILURES_PER_HOUR: String(LIMIT), PASSWORD_QUEUE_MAX: '2000' });
  for (const t of [KIOSK_TERMINAL, KIOSK_2, POS_TERMINAL]) await app.terminals.register(t);
  const hash = await passwordHash(app, PIN);
  for (let from = 0; from < CARDS + 100; from += 100) {
    await Promise.all(
      Array.from({ length: 100 }, (_, k) => openCard(app, cardNo(from + k), serial(from + k), 10_000, { pwd: hash, sno: `P${from + k}` })),
    );
  }
  kiosk = kioskClient(app);
  pos = posClient(app);
}, 60_000);
afterAll(async () => {
  kiosk.close();
  pos.close();
  await app.stop();
});

function statement(i: number, password: string, terminal: NewTerminal): Promise<unknown> {
  return call(kiosk, 'statement', { cardholder: { card: { cardSerial: serial(i) } }, password }, terminalMetadata(terminal));
}

async function outcome(pending: Promise<unknown>): Promise<Status | 'ok'> {
  try {
    await pending;
    return 'ok';
  } catch (err) {
    return (err as ServiceError).code;
  }
}

async function limitEntries(): Promise<Record<string, string>[]> {
  const raw = await app.redis.xrange(app.keys.operatorLog(), '-', '+');
  return raw
    .map(
      ([, flat]) =>
        Object.fromEntries(Array.from({ length: flat.length / 2 }, (_, k) => [flat[2 * k], flat[2 * k + 1]])) as Record<string, string>,
    )
    .filter((e) => e['op'] === 'terminal-password-limit');
}

async function cardsWithFailures(from: number, to: number): Promise<number> {
  const pipeline = app.redis.pipeline();
  for (let i = from; i < to; i++) pipeline.hmget(app.keys.account(cardNo(i)), 'pfail', 'pinf');
  const replies = (await pipeline.exec()) ?? [];
  let touched = 0;
  for (const [err, value] of replies) {
    if (err !== null) throw err;
    const [pfail, pinf] = value as (string | null)[];
    if (pfail !== null && pfail !== '0') touched++;
    // No check of any card is left in flight once every call has answered.
    expect(pinf === null || pinf === '0').toBe(true);
  }
  return touched;
}

describe('one kiosk guessing across 1,000 cards', () => {
  it('gets at most its allowance of checks, the rest RESOURCE_EXHAUSTED, one operator-log entry', async () => {
    const checksBefore = app.context.passwords.stats().completed;
    const results = await Promise.all(Array.from({ length: CARDS }, (_, i) => outcome(statement(i, WRONG, KIOSK_TERMINAL))));
    const evaluated = app.context.passwords.stats().completed - checksBefore;
    expect(evaluated).toBeLessThanOrEqual(LIMIT);
    expect(results.filter((r) => r === Status.PERMISSION_DENIED)).toHaveLength(LIMIT);
    expect(results.filter((r) => r === Status.RESOURCE_EXHAUSTED)).toHaveLength(CARDS - LIMIT);
    // Only the cards whose password was checked count a failure; the refused ones are untouched.
    expect(await cardsWithFailures(0, CARDS)).toBe(LIMIT);
    const entries = await limitEntries();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ terminal: KIOSK_TERMINAL.id, limit: String(LIMIT) });
  }, 60_000);

  it('refuses even the right password now, in words for the kiosk screen, without another log entry', async () => {
    const checksBefore = app.context.passwords.stats().completed;
    const err = await grpcError(statement(CARDS + 1, PIN, KIOSK_TERMINAL));
    expect(err.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain(`limit of ${LIMIT} wrong card passwords this hour`);
    expect(err.details).toContain('本终端本小时密码错误次数过多');
    expect(app.context.passwords.stats().completed).toBe(checksBefore);
    expect(await cardsWithFailures(CARDS, CARDS + 2)).toBe(0);
    expect(await limitEntries()).toHaveLength(1);
  });

  it('leaves a second kiosk unaffected', async () => {
    await statement(CARDS + 2, PIN, KIOSK_2);
    const wrong = await grpcError(statement(CARDS + 3, WRONG, KIOSK_2));
    expect(wrong.code).toBe(Status.PERMISSION_DENIED);
    expect(wrong.metadata.get('password-attempts-left')).toEqual(['4']);
  });

  it('does not count right passwords against the terminal', async () => {
    // Three times the allowance of right passwords from the second kiosk, one after another.
    for (let i = 0; i < 3 * LIMIT; i++) await statement(CARDS + 10 + (i % 50), PIN, KIOSK_2);
    expect(await app.redis.hget(app.keys.terminalPasswordGuard(KIOSK_2.id), 'fail')).toBe('1');
  });

  it('lets the first kiosk check passwords again in the next clock hour', async () => {
    clock.advance(3_600_000);
    await statement(CARDS + 4, PIN, KIOSK_TERMINAL);
    const wrong = await grpcError(statement(CARDS + 5, WRONG, KIOSK_TERMINAL));
    expect(wrong.code).toBe(Status.PERMISSION_DENIED);
  });
});

describe('a POS guessing PINs across cards', () => {
  it('is limited the same way: wrong PINs up to the allowance, then RESOURCE_EXHAUSTED', async () => {
    const cards = 40;
    const base = CARDS + 60; // cards no test above has used
    // Tagged: a DeclineReason and a gRPC status may share a number (WRONG_PIN and RESOURCE_EXHAUSTED are both 8).
    const results = await Promise.all(
      Array.from({ length: cards }, async (_, k): Promise<string> => {
        const request = {
          terminalId: POS_TERMINAL.id,
          sequenceNumber: k + 1,
          amountFen: 100,
          credential: { card: { cardSerial: serial(base + k) } },
          pin: WRONG,
        };
        try {
          return `decline ${(await call<object, AuthorizeResponse>(pos, 'authorize', request, terminalMetadata(POS_TERMINAL))).declineReason}`;
        } catch (err) {
          return `status ${(err as ServiceError).code}`;
        }
      }),
    );
    expect(results.filter((r) => r === `decline ${DeclineReason.DECLINE_REASON_WRONG_PIN}`)).toHaveLength(LIMIT);
    expect(results.filter((r) => r === `status ${Status.RESOURCE_EXHAUSTED}`)).toHaveLength(cards - LIMIT);
    const entries = await limitEntries();
    expect(entries.filter((e) => e['terminal'] === POS_TERMINAL.id)).toHaveLength(1);
  });
});

describe('two switches whose clocks differ at the turn of the hour', () => {
  it("a switch whose clock is behind does not lift the new hour's limit another switch counted", async () => {
    const terminalId = 'KIOSK-SKEW-01';
    // Switch A: 11:00:00.100 campus time; switch B's clock runs 150 ms behind A's.
    const aMs = Date.UTC(2026, 10, 27, 3, 0, 0, 100);
    const a = { ...app.context, now: () => aMs };
    const b = { ...app.context, now: () => aMs - 150 };
    for (let i = 0; i < LIMIT; i++) {
      expect(await takeTerminalPasswordCheck(a, terminalId)).toEqual({ code: 'go' });
      await settleTerminalPasswordCheck(a, terminalId, 'fail');
    }
    expect(await takeTerminalPasswordCheck(a, terminalId)).toEqual({ code: 'limit' });
    // B, at 10:59:59.950 by its clock, finds the new hour's failures: no check, nothing changed.
    const guard = await app.redis.hgetall(app.keys.terminalPasswordGuard(terminalId));
    expect(await takeTerminalPasswordCheck(b, terminalId)).toEqual({ code: 'limit' });
    expect(await app.redis.hgetall(app.keys.terminalPasswordGuard(terminalId))).toEqual(guard);
    expect(await takeTerminalPasswordCheck(a, terminalId)).toEqual({ code: 'limit' });
  });
});
