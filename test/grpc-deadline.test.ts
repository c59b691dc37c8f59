// Calls that arrive with their deadline already over (grpc-timeout 0, in any unit; grpc-js also turns a
// timeout above 2^31 ms, such as 2147484S, into a deadline in the past): the caller is told
// DEADLINE_EXCEEDED whatever the switch does, so such a call must change nothing. It is refused before
// any work starts, and the same sequence number sent again with a usable deadline pays once. Before,
// the payment was started all the same and most of the time made after the caller had been told
// DEADLINE_EXCEEDED: the retry then found it already decided (its decided_at_ms older than the retry).
import { connect, type IncomingHttpHeaders } from 'node:http2';
import { status as Status } from '@grpc/grpc-js';
import { expect, it, onTestFinished } from 'vitest';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import { AuthorizeRequest, StreamedAuthorizeRequest, type AuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { DEADLINE_OVER_REFUSAL } from '../switch/grpc/deadline.js';
import { call, openCard, POS_TERMINAL, posClient, readJournal, startTestSwitch, terminalMetadata } from './helpers/switch.js';

const CARD = { cardNo: '8400001', serial: 'DD000001' };

function payment(sequenceNumber: number): AuthorizeRequest {
  return { terminalId: POS_TERMINAL.id, sequenceNumber, amountFen: 100, credential: { card: { cardSerial: CARD.serial } }, pin: '' };
}

it('an Authorize whose deadline is over when it arrives is refused before any work: nothing charged, and its retry pays once', async () => {
  const app = await startTestSwitch('grpc-deadline');
  onTestFinished(() => app.stop());
  await app.terminals.register(POS_TERMINAL);
  await openCard(app, CARD.cardNo, CARD.serial, 50_000);
  const session = connect(`http://127.0.0.1:${app.grpcPort}`);
  onTestFinished(() => void session.close());
  session.on('error', () => undefined);

  /** One Authorize on a bare HTTP/2 stream with the grpc-timeout header as given; its grpc-status and message. */
  const authorizeWithin = (timeout: string, sequenceNumber: number): Promise<{ status: string; message: string }> =>
    new Promise((resolve) => {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/cardswitch.v1.PosService/Authorize',
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': timeout,
        'terminal-id': POS_TERMINAL.id,
        'terminal-secret': POS_TERMINAL.secret,
      });
      let answer = { status: '', message: '' };
      const read = (h: IncomingHttpHeaders): void => {
        if (h['grpc-status'] !== undefined)
          answer = { status: String(h['grpc-status']), message: decodeURIComponent(String(h['grpc-message'] ?? '')) };
      };
      stream.on('response', read);
      stream.on('trailers', read);
      stream.on('data', () => undefined);
      stream.on('error', () => undefined);
      stream.on('close', () => resolve(answer));
      const message = AuthorizeRequest.encode(payment(sequenceNumber)).finish();
      const framed = Buffer.alloc(5 + message.length);
      framed.writeUInt32BE(message.length, 1);
      framed.set(message, 5);
      stream.end(framed);
    });

  const timeouts = ['0m', '0n', '0S', '2147484S'];
  const sent = Array.from({ length: 40 }, (_, i) => ({ timeout: timeouts[i % timeouts.length] ?? '0m', sequenceNumber: 1 + i }));
  const client = posClient(app);
  onTestFinished(() => client.close());
  // A first payment, so the terminal and the card are known and the switch is warm.
  await call<AuthorizeRequest, AuthorizeResponse>(client, 'authorize', payment(1000), terminalMetadata(POS_TERMINAL));
  const answers: { status: string; message: string }[] = [];
  for (const s of sent) answers.push(await authorizeWithin(s.timeout, s.sequenceNumber));
  for (const [i, answer] of answers.entries()) {
    expect(answer, `${sent[i]?.timeout}`).toEqual({ status: String(Status.DEADLINE_EXCEEDED), message: DEADLINE_OVER_REFUSAL.details });
  }

  // Each sent again with a usable deadline: paid now, once, not found already decided by the refused call.
  for (const s of sent) {
    const retriedAtMs = Date.now();
    const retry = await call<AuthorizeRequest, AuthorizeResponse>(
      client,
      'authorize',
      payment(s.sequenceNumber),
      terminalMetadata(POS_TERMINAL),
    );
    expect(retry.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(
      retry.decidedAtMs,
      `sequence ${s.sequenceNumber} (${s.timeout}) was paid by the call refused at its deadline`,
    ).toBeGreaterThanOrEqual(retriedAtMs);
  }
  expect(Number(await app.redis.hget(app.keys.account(CARD.cardNo), 'bal'))).toBe(50_000 - (1 + sent.length) * 100);
  const journal = await readJournal(app.redis, app.keys.journal(app.keys.shardOf(CARD.cardNo)));
  expect(journal.filter((e) => e.fields['k'] === 'pay')).toHaveLength(1 + sent.length);
});

it('an AuthorizeStream whose deadline is over when it arrives pays none of its messages', async () => {
  const app = await startTestSwitch('grpc-deadline-stream');
  onTestFinished(() => app.stop());
  await app.terminals.register(POS_TERMINAL);
  await openCard(app, CARD.cardNo, CARD.serial, 50_000);
  const client = posClient(app);
  onTestFinished(() => client.close());
  await call<AuthorizeRequest, AuthorizeResponse>(client, 'authorize', payment(1000), terminalMetadata(POS_TERMINAL));
  const session = connect(`http://127.0.0.1:${app.grpcPort}`);
  onTestFinished(() => void session.close());
  session.on('error', () => undefined);

  const count = 20;
  for (const timeout of ['0m', '2147484S']) {
    const first = timeout === '0m' ? 1 : 1 + count;
    const answer = await new Promise<{ status: string; answers: number }>((resolve) => {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/cardswitch.v1.PosService/AuthorizeStream',
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': timeout,
      });
      let status = '';
      let answers = 0;
      const read = (h: IncomingHttpHeaders): void => {
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      };
      stream.on('response', read);
      stream.on('trailers', read);
      stream.on('data', () => answers++);
      stream.on('error', () => undefined);
      stream.on('close', () => resolve({ status, answers }));
      const frames = Array.from({ length: count }, (_, i) => {
        const message = StreamedAuthorizeRequest.encode({
          tag: i + 1,
          terminalSecret: POS_TERMINAL.secret,
          request: payment(first + i),
        }).finish();
        const framed = Buffer.alloc(5 + message.length);
        framed.writeUInt32BE(message.length, 1);
        framed.set(message, 5);
        return framed;
      });
      stream.end(Buffer.concat(frames));
    });
    expect(answer, timeout).toEqual({ status: String(Status.DEADLINE_EXCEEDED), answers: 0 });
  }
  for (let sequenceNumber = 1; sequenceNumber <= 2 * count; sequenceNumber++) {
    const retriedAtMs = Date.now();
    const retry = await call<AuthorizeRequest, AuthorizeResponse>(
      client,
      'authorize',
      payment(sequenceNumber),
      terminalMetadata(POS_TERMINAL),
    );
    expect(retry.outcome).toBe(Outcome.OUTCOME_APPROVED);
    expect(retry.decidedAtMs, `sequence ${sequenceNumber} was paid on the stream refused at its deadline`).toBeGreaterThanOrEqual(
      retriedAtMs,
    );
  }
  expect(Number(await app.redis.hget(app.keys.account(CARD.cardNo), 'bal'))).toBe(50_000 - (1 + 2 * count) * 100);
});
