// The kiosk's main process reads the switch's gRPC failures into the screens' error codes
// (kiosk/main/switch-client.ts mapSwitchError). Here the failures are the switch's own: made by its own
// mapping (switch/grpc/errors.ts), or answered by a real switch to the kiosk's own client and handlers,
// so a change of wording or reason on either side fails this test.
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createKioskHandlers } from '../kiosk/main/handlers.js';
import { kioskSettings } from '../kiosk/main/settings.js';
import { createSwitchClient, mapSwitchError } from '../kiosk/main/switch-client.js';
import type { ErrorCode } from '../kiosk/shared/api.js';
import type { SwitchApp } from '../switch/app.js';
import type { NewTerminal } from '../switch/domain/terminals.js';
import { mapError } from '../switch/grpc/errors.js';
import { archiveReadError } from '../switch/history/archive-store.js';
import { campusDayKey } from '../switch/ledger/ledger.js';
import { takeTerminalPasswordCheck } from '../switch/ledger/terminal-password.js';
import { adminClient, KIOSK_TERMINAL, operatorMetadata, passwordHash, startClockedSwitch, TestClock } from './helpers/clients.js';
import { call, openCard } from './helpers/switch.js';

/** What the kiosk's gRPC client receives for a failure the switch maps with mapError. */
function received(failure: unknown): ServiceError {
  const mapped = mapError(failure);
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(mapped.trailers ?? {})) metadata.set(key, value);
  return Object.assign(new Error(mapped.details), { code: mapped.code, details: mapped.details, metadata });
}

it('the history archive down: "older lines cannot be read now", not "the card system cannot be reached"', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const err = received(archiveReadError(refused));
  expect(err.code).toBe(status.UNAVAILABLE);
  expect(err.details).not.toContain('5432');
  expect(mapSwitchError(err)).toEqual({ error: 'history_unavailable' });
});

it('the ledger down stays "the card system cannot be reached"', () => {
  const err = received(new Error('Connection is closed.'));
  expect(err.code).toBe(status.UNAVAILABLE);
  expect(mapSwitchError(err)).toEqual({ error: 'unreachable' });
});

describe('refusals of a real switch, as the kiosk reads them', () => {
  const PIN = '135790';
  const TERMINAL_LIMIT = 3;
  let app: SwitchApp;
  let admin: ReturnType<typeof adminClient>;
  let clock: TestClock;
  let pinHash = '';
  let cards = 0;
  let kiosks = 0;

  beforeAll(async () => {
    clock = new TestClock(Date.now());
    app = await startClockedSwitch('kioskerr', clock, {
      PASSWORD_SCRYPT_N: '1024',
      TERMINAL_PASSWORD_FAILURES_PER_HOUR: String(TERMINAL_LIMIT),
    });
    admin = adminClient(app);
    pinHash = await passwordHash(app, PIN);
  });
  afterAll(async () => {
    admin?.close();
    await app?.stop();
  });

  async function newCard(): Promise<{ cardNo: string; serial: string; person: string }> {
    cards++;
    const cardNo = String(57_000_000 + cards);
    const serial = `CE${String(cards).padStart(6, '0')}`;
    const person = `P${cardNo}`;
    await openCard(app, cardNo, serial, 10_000, { pwd: pinHash, sno: person });
    await app.redis.set(app.keys.personNumber(person), cardNo);
    return { cardNo, serial, person };
  }

  /** A kiosk of its own (each has its own wrong passwords of the hour) with the kiosk's real client and handlers. */
  async function newKiosk() {
    kiosks++;
    const terminal: NewTerminal = { ...KIOSK_TERMINAL, id: `KIOSK-ERR-${kiosks}`, secret: `kiosk-err-secret-${kiosks}-0123456789` };
    await app.terminals.register(terminal);
    const client = createSwitchClient({
      address: `127.0.0.1:${app.grpcPort}`,
      credential: { terminalId: terminal.id, secret: terminal.secret },
    });
    const handlers = createKioskHandlers({
      switch: client,
      settings: kioskSettings({ KIOSK_IDLE_TIMEOUT_SEC: '600' }, 'test kiosk'),
      trustedUrl: 'file:///kiosk/index.html',
      trustedWebContentsId: () => 1,
      emit: () => undefined,
    });
    const sender = { webContentsId: 1, frameUrl: 'file:///kiosk/index.html', isMainFrame: true };
    return {
      terminal,
      client,
      handlers,
      invoke: (action: string, arg?: unknown) => handlers.invoke(sender, action, arg),
      close: () => {
        handlers.dispose();
        client.close();
      },
    };
  }

  /** The switch's refusal to the kiosk's client, and what the kiosk makes of it. */
  async function refusal(work: Promise<unknown>): Promise<{ err: ServiceError; error: ErrorCode }> {
    const err = (await work.then(
      () => undefined,
      (e: unknown) => e,
    )) as ServiceError | undefined;
    expect(err, 'the switch refused').toBeDefined();
    return { err: err as ServiceError, error: mapSwitchError(err).error };
  }

  it('a card frozen by the card office: loss report (by tap and by number) and cancel say "frozen, go to the card office"', async () => {
    const card = await newCard();
    await call(admin, 'setCardFrozen', { cardNumber: card.cardNo, frozen: true, reason: '学生处通知' }, operatorMetadata());
    const kiosk = await newKiosk();
    try {
      await kiosk.handlers.cardRead(card.serial);
      expect(await kiosk.invoke('reportLoss', {})).toEqual({ ok: false, error: 'card_frozen' });
      expect(await kiosk.invoke('reportLoss', { personNumber: card.person, password: PIN })).toEqual({ ok: false, error: 'card_frozen' });
      expect(await kiosk.invoke('cancelLoss', { personNumber: card.person, password: PIN })).toEqual({ ok: false, error: 'card_frozen' });
      const { err } = await refusal(kiosk.client.cancelLoss({ cardholder: { card: { cardSerial: card.serial } }, password: PIN }));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toContain('the card is frozen by the card office');
      expect(err.metadata.get('error-reason')).toEqual(['CARD_FROZEN']);
    } finally {
      kiosk.close();
    }
    expect(await app.redis.hget(app.keys.account(card.cardNo), 'st')).toBe('F');
  });

  it('a kiosk over its wrong passwords of the hour: "too many wrong passwords on this kiosk", not "cannot connect"', async () => {
    const kiosk = await newKiosk();
    const guessed = await newCard();
    try {
      for (let i = 0; i < TERMINAL_LIMIT; i++) {
        const wrong = await kiosk.invoke('reportLoss', { personNumber: guessed.person, password: '000000' });
        expect(wrong).toMatchObject({ ok: false, error: 'wrong_password' });
      }
      const card = await newCard();
      // Even the right password is not checked on this kiosk now.
      expect(await kiosk.invoke('reportLoss', { personNumber: card.person, password: PIN })).toEqual({
        ok: false,
        error: 'terminal_password_limit',
      });
      await kiosk.handlers.cardRead(card.serial);
      expect(await kiosk.invoke('payNetworkFee', { account: 'zhang.san', amountFen: 1000, password: PIN })).toEqual({
        ok: false,
        error: 'terminal_password_limit',
      });
      const { err } = await refusal(kiosk.client.cancelLoss({ cardholder: { personNumber: card.person }, password: PIN }));
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(err.details).toContain('reached its limit of 3 wrong card passwords this hour');
      expect(err.metadata.get('password-attempts-left')).toEqual([]);
      expect(err.metadata.get('error-reason')).toEqual(['TERMINAL_PASSWORD_LIMIT']);
      expect(await app.redis.hget(app.keys.account(card.cardNo), 'st')).toBe('A');
    } finally {
      kiosk.close();
    }
  });

  it('as many checks of the card in flight as attempts left: "try again in a moment", not "cannot connect"', async () => {
    const card = await newCard();
    const kiosk = await newKiosk();
    // Five checks of this card taken elsewhere and not yet settled (password.lua 'take', as a check does).
    const day = campusDayKey(clock.now());
    for (let i = 0; i < 5; i++) await app.context.scripts.run('password', [app.keys.account(card.cardNo)], ['take', day, 5, clock.now()]);
    try {
      expect(await kiosk.invoke('reportLoss', { personNumber: card.person, password: PIN })).toEqual({ ok: false, error: 'password_busy' });
      const { err } = await refusal(kiosk.client.cancelLoss({ cardholder: { personNumber: card.person }, password: PIN }));
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(err.details).toContain('try again in a moment');
      expect(err.metadata.get('error-reason')).toEqual(['PASSWORD_BUSY']);
    } finally {
      kiosk.close();
    }
  });

  it('as many checks on this kiosk in flight as its wrong passwords left: "try again in a moment", not "cannot connect"', async () => {
    const card = await newCard();
    const kiosk = await newKiosk();
    // The kiosk's allowance taken by checks still in flight (terminal-password.lua 'take', as a check does).
    for (let i = 0; i < TERMINAL_LIMIT; i++)
      expect(await takeTerminalPasswordCheck(app.context, kiosk.terminal.id)).toEqual({ code: 'go' });
    try {
      expect(await kiosk.invoke('reportLoss', { personNumber: card.person, password: PIN })).toEqual({ ok: false, error: 'password_busy' });
      const { err } = await refusal(kiosk.client.cancelLoss({ cardholder: { personNumber: card.person }, password: PIN }));
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(err.details).toContain('try again in a moment');
      expect(err.metadata.get('error-reason')).toEqual(['TERMINAL_PASSWORD_BUSY']);
    } finally {
      kiosk.close();
    }
  });

  it('a password change beaten by another change: "changed meanwhile", not a recharge order\'s message', async () => {
    const card = await newCard();
    const kiosk = await newKiosk();
    const pool = app.context.passwords;
    const verify = pool.verify.bind(pool);
    let interleaved = false;
    // While the pool verifies this kiosk's old password, another change of the same card completes.
    const spy = vi.spyOn(pool, 'verify').mockImplementation(async (pin, encoded) => {
      const right = await verify(pin, encoded);
      if (!interleaved) {
        interleaved = true;
        const other = await newKiosk();
        try {
          await other.client.changePassword({ cardholder: { card: { cardSerial: card.serial } }, oldPassword: PIN, newPassword: '314159' });
        } finally {
          other.close();
        }
      }
      return right;
    });
    try {
      await kiosk.handlers.cardRead(card.serial);
      expect(await kiosk.invoke('changePassword', { oldPassword: PIN, newPassword: '271828' })).toEqual({
        ok: false,
        error: 'password_changed',
      });
    } finally {
      spy.mockRestore();
      kiosk.close();
    }
    expect(interleaved).toBe(true);
    expect(await verify('314159', (await app.redis.hget(app.keys.account(card.cardNo), 'pwd')) ?? '')).toBe(true);
  });
});
