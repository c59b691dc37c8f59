// PosService/AuthorizeStream: many terminals' payments on one stream, each checked and paid exactly as
// Authorize pays it, refusals answered per message while the stream goes on, a bound on what waits,
// and a shutdown that answers everything it read and loses no money.
import { status as Status, type ClientDuplexStream, type StatusObject } from '@grpc/grpc-js';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Outcome, DeclineReason } from '../proto/gen/cardswitch/v1/common.js';
import {
  AuthorizeResponse,
  StreamedAuthorizeRequest,
  StreamedAuthorizeResponse,
  type AuthorizeRequest,
} from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { createLogger } from '../switch/log.js';
import { MAX_LOGGED_REFUSALS, MAX_STREAM_IN_FLIGHT } from '../switch/grpc/authorize-stream.js';
import { CancelledError } from '../switch/grpc/errors.js';
import { authorizePayment } from '../switch/grpc/authorize.js';
import { PosDomain } from '../switch/domain/pos.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { KIOSK_TERMINAL } from './helpers/clients.js';
import { connect } from './helpers/redis.js';
import {
  call,
  dumpKeySpace,
  openCard,
  POS_TERMINAL,
  posClient,
  readJournal,
  startTestSwitch,
  terminalMetadata,
  testConfig,
} from './helpers/switch.js';

const SECOND_TERMINAL = {
  id: 'POS-T2',
  kind: 'canteen' as const,
  merchantId: 'CANTEEN2',
  location: '第二食堂',
  secret: 'pos2-secret-0123456789',
};
const CARDS = [
  { cardNo: '20230001', serial: 'AB12CD34' },
  { cardNo: '20230002', serial: 'AB12CD35' },
  { cardNo: '20230003', serial: 'AB12CD36' },
];

async function start(label: string): Promise<SwitchApp> {
  const app = await startTestSwitch(label);
  onTestFinished(() => app.stop());
  await app.terminals.register(POS_TERMINAL);
  await app.terminals.register(SECOND_TERMINAL);
  for (const card of CARDS) await openCard(app, card.cardNo, card.serial, 50_000);
  return app;
}

function payment(terminal: { id: string }, sequenceNumber: number, amountFen: number, serial: string): AuthorizeRequest {
  return { terminalId: terminal.id, sequenceNumber, amountFen, credential: { card: { cardSerial: serial } }, pin: '' };
}

function message(tag: number, terminal: { id: string; secret: string }, request: AuthorizeRequest): StreamedAuthorizeRequest {
  return { tag, terminalSecret: terminal.secret, request };
}

/** An open AuthorizeStream that collects answers by tag and can wait for a number of them. */
class OpenStream {
  readonly answers: StreamedAuthorizeResponse[] = [];
  readonly status: Promise<StatusObject>;
  private waiters: { count: number; resolve: () => void }[] = [];

  constructor(readonly stream: ClientDuplexStream<StreamedAuthorizeRequest, StreamedAuthorizeResponse>) {
    stream.on('data', (answer: StreamedAuthorizeResponse) => {
      this.answers.push(answer);
      this.waiters = this.waiters.filter((w) => (this.answers.length >= w.count ? (w.resolve(), false) : true));
    });
    this.status = new Promise((resolve) => stream.on('status', resolve));
    stream.on('error', () => undefined);
  }

  static open(app: SwitchApp): OpenStream {
    const client = posClient(app);
    onTestFinished(() => client.close());
    return new OpenStream(client.authorizeStream());
  }

  send(...messages: StreamedAuthorizeRequest[]): void {
    for (const m of messages) this.stream.write(m);
  }

  /** Resolves once `count` answers in all have come. */
  until(count: number): Promise<void> {
    if (this.answers.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  byTag(tag: number): StreamedAuthorizeResponse {
    const found = this.answers.filter((a) => a.tag === tag);
    expect(found, `answers for tag ${tag}`).toHaveLength(1);
    return found[0] as StreamedAuthorizeResponse;
  }
}

async function balance(app: SwitchApp, cardNo: string): Promise<number> {
  return Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));
}

describe('authorizePayment (Authorize and AuthorizeStream alike)', () => {
  it('makes no payment for a caller that has already gone (cancelled or past its deadline)', async () => {
    const app = await start('gone-caller');
    const terminal = await app.terminals.get(POS_TERMINAL.id);
    if (terminal === undefined) throw new Error('terminal not registered');
    const before = await dumpKeySpace(app.redis, app.keys.prefix);
    const pos = new PosDomain(app.context);
    const request = payment(POS_TERMINAL, 1, 1_000, CARDS[0]?.serial ?? '');
    await expect(authorizePayment(pos, app.context.config, terminal, request, () => true)).rejects.toThrow(CancelledError);
    expect(await dumpKeySpace(app.redis, app.keys.prefix)).toEqual(before);
    // The same request from a caller still waiting is paid.
    const paid = await authorizePayment(pos, app.context.config, terminal, request, () => false);
    expect(paid.outcome).toBe(Outcome.OUTCOME_APPROVED);
  });
});

describe('AuthorizeStream', () => {
  it('pays for several terminals and cards on one stream, each answer under its tag, as Authorize would', async () => {
    const app = await start('stream-pay');
    const s = OpenStream.open(app);
    const [a, b, c] = CARDS as [(typeof CARDS)[0], (typeof CARDS)[0], (typeof CARDS)[0]];
    s.send(
      message(11, POS_TERMINAL, payment(POS_TERMINAL, 1, 1_250, a.serial)),
      message(12, SECOND_TERMINAL, payment(SECOND_TERMINAL, 1, 800, b.serial)),
      message(13, POS_TERMINAL, payment(POS_TERMINAL, 2, 60_000, c.serial)),
    );
    await s.until(3);
    const first = s.byTag(11).response;
    expect(first?.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(first).toMatchObject({
      balanceAfterFen: 48_750,
      amountFen: 1_250,
      cardNumber: a.cardNo,
      displayText: '支付成功 12.50元 余额487.50元',
    });
    expect(s.byTag(12).response).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED, balanceAfterFen: 49_200, cardNumber: b.cardNo });
    expect(s.byTag(13).response).toMatchObject({
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS,
    });
    expect(await balance(app, a.cardNo)).toBe(48_750);
    expect(await balance(app, b.cardNo)).toBe(49_200);
    expect(await balance(app, c.cardNo)).toBe(50_000);

    // The same payment again, on the stream and as a unary call: the first answer, byte for byte; no money moves.
    s.send(message(21, POS_TERMINAL, payment(POS_TERMINAL, 1, 1_250, a.serial)));
    await s.until(4);
    const bytes = (r: AuthorizeResponse | undefined): string =>
      Buffer.from(AuthorizeResponse.encode(r as AuthorizeResponse).finish()).toString('hex');
    expect(bytes(s.byTag(21).response)).toBe(bytes(first));
    const unary = await call<AuthorizeRequest, AuthorizeResponse>(
      posClient(app),
      'authorize',
      payment(POS_TERMINAL, 1, 1_250, a.serial),
      terminalMetadata(POS_TERMINAL),
    );
    expect(bytes(unary)).toBe(bytes(first));
    expect(await balance(app, a.cardNo)).toBe(48_750);

    s.stream.end();
    expect((await s.status).code).toBe(Status.OK);
    const journal = await readJournal(app.redis, app.keys.journal(app.keys.shardOf(a.cardNo)));
    expect(journal.filter((e) => e.fields['k'] === 'pay' && e.fields['c'] === a.cardNo)).toHaveLength(1);
  });

  it('answers a refused payment with its gRPC status, changes nothing, and goes on with the stream', async () => {
    const app = await start('stream-refusals');
    await app.terminals.register({ ...SECOND_TERMINAL, id: 'POS-OFF', secret: 'off-secret-0123456789' });
    expect(await app.terminals.setEnabled('POS-OFF', false)).toBe(true);
    await app.terminals.register(KIOSK_TERMINAL);
    const s = OpenStream.open(app);
    const serial = CARDS[0]?.serial ?? '';
    s.send(message(1, POS_TERMINAL, payment(POS_TERMINAL, 1, 1_000, serial)));
    await s.until(1);
    const before = await dumpKeySpace(app.redis, app.keys.prefix);
    const refusals: [number, StreamedAuthorizeRequest, Status, RegExp][] = [
      [
        2,
        message(2, { ...POS_TERMINAL, secret: `${POS_TERMINAL.secret}x` }, payment(POS_TERMINAL, 2, 1_000, serial)),
        Status.UNAUTHENTICATED,
        /wrong secret/,
      ],
      [3, { tag: 3, terminalSecret: '', request: payment(POS_TERMINAL, 3, 1_000, serial) }, Status.UNAUTHENTICATED, /terminal_secret/],
      [
        4,
        message(4, { id: 'POS-NOPE', secret: 'x' }, payment({ id: 'POS-NOPE' }, 4, 1_000, serial)),
        Status.UNAUTHENTICATED,
        /not registered/,
      ],
      [
        5,
        message(5, { id: 'POS-OFF', secret: 'off-secret-0123456789' }, payment({ id: 'POS-OFF' }, 5, 1_000, serial)),
        Status.PERMISSION_DENIED,
        /disabled/,
      ],
      [6, message(6, KIOSK_TERMINAL, payment(KIOSK_TERMINAL, 6, 1_000, serial)), Status.PERMISSION_DENIED, /kiosk/],
      [7, message(7, POS_TERMINAL, payment(POS_TERMINAL, 7, 0, serial)), Status.INVALID_ARGUMENT, /amount_fen/],
      [8, message(8, POS_TERMINAL, payment(POS_TERMINAL, 8, -5, serial)), Status.INVALID_ARGUMENT, /amount_fen/],
      [9, { tag: 9, terminalSecret: POS_TERMINAL.secret, request: undefined }, Status.INVALID_ARGUMENT, /request is missing/],
      [10, message(10, POS_TERMINAL, payment(POS_TERMINAL, 1, 2_000, serial)), Status.ALREADY_EXISTS, /sequence/],
      [11, message(11, POS_TERMINAL, payment(POS_TERMINAL, 0, 1_000, serial)), Status.INVALID_ARGUMENT, /sequence_number/],
    ];
    s.send(...refusals.map(([, m]) => m));
    await s.until(1 + refusals.length);
    for (const [tag, , code, mentions] of refusals) {
      const answer = s.byTag(tag);
      expect(answer.response, `tag ${tag}`).toBeUndefined();
      expect(answer.error?.code, `tag ${tag}: ${answer.error?.message}`).toBe(code);
      expect(answer.error?.message).toMatch(mentions);
    }
    expect(await dumpKeySpace(app.redis, app.keys.prefix)).toEqual(before);
    // The stream still works.
    s.send(message(12, POS_TERMINAL, payment(POS_TERMINAL, 12, 1_000, serial)));
    await s.until(2 + refusals.length);
    expect(s.byTag(12).response?.outcome).toBe(Outcome.OUTCOME_APPROVED);
    s.stream.end();
    expect((await s.status).code).toBe(Status.OK);
  });

  it('a message without a request is INVALID_ARGUMENT; one that does not decode is answered under tag 0', async () => {
    const app = await start('stream-malformed');
    const client = posClient(app);
    onTestFinished(() => client.close());
    const raw = client.makeBidiStreamRequest(
      '/cardswitch.v1.PosService/AuthorizeStream',
      (bytes: Uint8Array) => Buffer.from(bytes),
      (bytes: Buffer) => StreamedAuthorizeResponse.decode(bytes),
    );
    const s = new OpenStream(raw as unknown as ClientDuplexStream<StreamedAuthorizeRequest, StreamedAuthorizeResponse>);
    const encode = (m: StreamedAuthorizeRequest): Uint8Array => StreamedAuthorizeRequest.encode(m).finish();
    raw.write(encode({ tag: 1, terminalSecret: POS_TERMINAL.secret, request: undefined }));
    await s.until(1);
    expect(s.byTag(1).error).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      message: expect.stringMatching(/request is missing/) as unknown,
    });
    raw.write(Buffer.from([0x0a, 0xff, 0xff]));
    await s.until(2);
    expect(s.byTag(0).error).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      message: expect.stringMatching(/could not be decoded/) as unknown,
    });
    // A tag above 2^53 does not decode either.
    raw.write(Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]));
    await s.until(3);
    expect(s.answers[2]?.error?.code).toBe(Status.INVALID_ARGUMENT);
    raw.write(encode(message(3, POS_TERMINAL, payment(POS_TERMINAL, 3, 500, CARDS[0]?.serial ?? ''))));
    await s.until(4);
    expect(s.byTag(3).response?.outcome).toBe(Outcome.OUTCOME_APPROVED);
    raw.end();
    expect((await s.status).code).toBe(Status.OK);
  });

  it(`concurrent payments of one card approve exactly what the balance covers, beyond ${MAX_STREAM_IN_FLIGHT} in flight`, async () => {
    const app = await start('stream-concurrent');
    const s = OpenStream.open(app);
    const count = MAX_STREAM_IN_FLIGHT * 2 + 100;
    // Card 0 holds 500.00: 1,124 taps of 1.00 spread over two terminals and three cards.
    const messages = Array.from({ length: count }, (_, i) => {
      const terminal = i % 2 === 0 ? POS_TERMINAL : SECOND_TERMINAL;
      const card = CARDS[i % 3] ?? CARDS[0];
      return message(1000 + i, terminal, payment(terminal, 1 + Math.floor(i / 2), 100, card?.serial ?? ''));
    });
    s.send(...messages);
    await s.until(count);
    expect(new Set(s.answers.map((a) => a.tag)).size).toBe(count);
    for (const [index, card] of CARDS.entries()) {
      const mine = messages.filter((_, i) => i % 3 === index).map((m) => s.byTag(m.tag));
      const approved = mine.filter((a) => a.response?.outcome === Outcome.OUTCOME_APPROVED).length;
      const declined = mine.filter((a) => a.response?.declineReason === DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS).length;
      expect(approved + declined, `card ${card.cardNo}`).toBe(mine.length);
      expect(approved).toBe(Math.min(mine.length, 500));
      expect(await balance(app, card.cardNo)).toBe(50_000 - approved * 100);
    }
    s.stream.end();
    expect((await s.status).code).toBe(Status.OK);
    expect((await auditLedger(app.redis, app.keys)).ok).toBe(true);
  });

  it(`5,000 refused messages on one stream (made-up terminals) write at most ${MAX_LOGGED_REFUSALS} log lines of them, and one count at the end`, async () => {
    // Before: one info line per refused message, whoever sent it: a client without credentials turned
    // each 60-byte message into a ~250-byte log line, as fast as it could send.
    const lines: string[] = [];
    const config = testConfig('stream-refusal-log');
    const app = await startSwitch(config, createLogger('info', 'cardswitch', { write: (line: string) => void lines.push(line) }));
    onTestFinished(() => app.stop());
    await app.terminals.register(POS_TERMINAL);
    await openCard(app, CARDS[0]?.cardNo ?? '', CARDS[0]?.serial ?? '', 50_000);
    const s = OpenStream.open(app);
    const count = 5_000;
    for (let i = 1; i <= count; i++) {
      const forged = { id: `MADE-UP-${i}`, secret: 'guessed-secret-0123456789' };
      s.send(message(i, forged, payment(forged, 1, 100, CARDS[0]?.serial ?? '')));
    }
    await s.until(count);
    expect(s.answers.filter((a) => a.error?.code === Status.UNAUTHENTICATED)).toHaveLength(count);
    s.stream.end();
    expect((await s.status).code).toBe(Status.OK);
    const logged = lines.map((line) => JSON.parse(line) as { msg: string; refused?: number });
    expect(logged.filter((l) => l.msg === 'terminal refused').length).toBeLessThanOrEqual(MAX_LOGGED_REFUSALS);
    expect(logged.filter((l) => l.msg === 'terminal refused').length).toBeGreaterThan(0);
    const summary = logged.filter((l) => l.msg === 'AuthorizeStream ended: refused terminals not logged one by one');
    expect(summary.map((l) => l.refused)).toEqual([count - MAX_LOGGED_REFUSALS]);
  });

  it('on shutdown answers every payment it read, ends the stream with OK, and every approval is in the ledger', async () => {
    const app = await start('stream-shutdown');
    const s = OpenStream.open(app);
    const serial = CARDS[0]?.serial ?? '';
    s.send(message(1, POS_TERMINAL, payment(POS_TERMINAL, 1, 100, serial)));
    await s.until(1);
    const sent = 300;
    s.send(...Array.from({ length: sent }, (_, i) => message(100 + i, POS_TERMINAL, payment(POS_TERMINAL, 100 + i, 100, serial))));
    // Stop while the stream is busy: what was read is answered (paid, or refused as stopping).
    const stopped = app.stop();
    const status = await s.status;
    await stopped;
    expect(status.code).toBe(Status.OK);
    const answered = s.answers.filter((a) => a.tag >= 100);
    expect(new Set(answered.map((a) => a.tag)).size).toBe(answered.length);
    const approved = answered.filter((a) => a.response?.outcome === Outcome.OUTCOME_APPROVED);
    for (const a of answered) {
      if (a.response === undefined)
        expect(a.error).toMatchObject({ code: Status.UNAVAILABLE, message: expect.stringMatching(/stopping/) as unknown });
    }
    // Payments the switch never answered were never made: money moved for exactly the approvals.
    const redis = connect();
    onTestFinished(() => redis.disconnect());
    const cardNo = CARDS[0]?.cardNo ?? '';
    expect(Number(await redis.hget(app.keys.account(cardNo), 'bal'))).toBe(50_000 - 100 - approved.length * 100);
    const journal = await readJournal(redis, app.keys.journal(app.keys.shardOf(cardNo)));
    expect(journal.filter((e) => e.fields['k'] === 'pay')).toHaveLength(1 + approved.length);
  });
});
