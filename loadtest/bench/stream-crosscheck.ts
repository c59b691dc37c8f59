// Issue 15 item 6: an independent cross-check of the streaming path. The bench's own HTTP/2 client
// (h2-raw.ts) is otherwise the only tool that measures PosService/AuthorizeStream; here the stock
// grpc-js client (the ts-proto PosServiceClient, as a front-end processor written in Node would use it)
// sends card taps on one AuthorizeStream at a low constant rate, and its latency is compared with the
// bench's own generator at the same rate in the same run. At a rate far below capacity both should see
// the switch's own latency, so they should agree within the noise.
//
// Both measure the same way: an open model, from each message's intended time on the schedule to its
// answer (what the own generator's open runs report: a sender that falls behind its schedule is
// counted, not hidden). Written-to-answered is kept beside it here (`writeToAnswerMs`): the two differ
// by how late the timer let each message go.
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { Outcome } from '../../proto/gen/cardswitch/v1/common.js';
import { PosServiceClient, type StreamedAuthorizeRequest, type StreamedAuthorizeResponse } from '../../proto/gen/cardswitch/v1/pos.js';
import type { CampusFile } from '../shared/campus-data.js';
import { Histogram, type LatencySummaryMs } from './histogram.js';

export interface GrpcJsStreamOptions {
  readonly host: string;
  readonly port: number;
  readonly campus: CampusFile;
  readonly rate: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** First sequence number (a block of its own: the ledger check counts these approvals too). */
  readonly sequenceBase: number;
}

export interface GrpcJsStreamResult {
  readonly client: 'grpc-js';
  readonly rate: number;
  readonly sent: number;
  readonly answered: number;
  /** Answers/s in the measurement window (after the warm-up). */
  readonly achievedRate: number;
  readonly approvals: number;
  readonly errors: number;
  readonly errorSamples: string[];
  /** Intended time on the schedule to answered (the own generator's open-model measure), measurement window only. */
  readonly latencyMs: LatencySummaryMs;
  /** Written to answered, the same messages. */
  readonly writeToAnswerMs: LatencySummaryMs;
  /** (terminal index, sequence) of every approval, for the ledger check. */
  readonly approvalKeys: Float64Array;
}

const AMOUNT_FEN = 1250;

export async function runGrpcJsStream(options: GrpcJsStreamOptions): Promise<GrpcJsStreamResult> {
  const terminals = options.campus.terminals.map((t, index) => ({ t, index })).filter(({ t }) => t.kind === 'canteen' || t.kind === 'shop');
  const cards = options.campus.cards.filter((c) => c.pin === '');
  if (terminals.length === 0 || cards.length === 0) throw new Error('grpc-js stream check: the campus has no POS or no cards');
  const client = new PosServiceClient(`${options.host}:${options.port}`, credentials.createInsecure());
  const stream: ClientDuplexStream<StreamedAuthorizeRequest, StreamedAuthorizeResponse> = client.authorizeStream();
  const sentAt = new Map<number, { intendedMs: number; atMs: number; terminalIndex: number; sequence: number }>();
  const histogram = new Histogram();
  const fromWrite = new Histogram();
  const approvals: number[] = [];
  const errorSamples: string[] = [];
  let answered = 0;
  let answeredInWindow = 0;
  let errors = 0;
  const startMs = performance.now();
  const windowStartMs = startMs + options.warmupMs;
  const endMs = startMs + options.durationMs;
  const finished = new Promise<void>((resolve) => {
    stream.on('status', () => resolve());
    stream.on('error', (err: Error) => {
      errors++;
      if (errorSamples.length < 5) errorSamples.push(err.message);
      resolve();
    });
  });
  let drained: () => void = () => undefined;
  const allAnswered = new Promise<void>((resolve) => (drained = resolve));
  let sent = 0;
  let sending = true;
  stream.on('data', (answer: StreamedAuthorizeResponse) => {
    const nowMs = performance.now();
    const sentRecord = sentAt.get(answer.tag);
    sentAt.delete(answer.tag);
    answered++;
    if (sentRecord !== undefined && sentRecord.intendedMs >= windowStartMs) {
      histogram.record((nowMs - sentRecord.intendedMs) * 1000);
      fromWrite.record((nowMs - sentRecord.atMs) * 1000);
      answeredInWindow++;
    }
    if (answer.error !== undefined || answer.response === undefined) {
      errors++;
      if (errorSamples.length < 5) errorSamples.push(`tag ${answer.tag}: ${answer.error?.message ?? 'no response'}`);
    } else if (answer.response.outcome === Outcome.OUTCOME_APPROVED && sentRecord !== undefined) {
      approvals.push(sentRecord.terminalIndex, sentRecord.sequence);
    }
    if (!sending && sentAt.size === 0) drained();
  });
  // One message per tick of the schedule (intended times fixed in advance, caught up after a late timer).
  const intervalMs = 1000 / options.rate;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const nowMs = performance.now();
      while (startMs + sent * intervalMs <= nowMs && nowMs < endMs) {
        const pos = terminals[sent % terminals.length];
        const card = cards[(sent * 7919) % cards.length];
        if (pos === undefined || card === undefined) break;
        const { t, index } = pos;
        const tag = sent + 1;
        const sequence = options.sequenceBase + sent;
        sentAt.set(tag, { intendedMs: startMs + sent * intervalMs, atMs: performance.now(), terminalIndex: index, sequence });
        stream.write({
          tag,
          terminalSecret: t.secret,
          request: {
            terminalId: t.id,
            sequenceNumber: sequence,
            amountFen: AMOUNT_FEN,
            credential: { card: { cardSerial: card.serial } },
            pin: '',
          },
        });
        sent++;
      }
      if (nowMs >= endMs) return resolve();
      setTimeout(tick, Math.max(0, startMs + sent * intervalMs - performance.now()));
    };
    tick();
  });
  sending = false;
  if (sentAt.size === 0) drained();
  await Promise.race([allAnswered, finished, new Promise((r) => setTimeout(r, 10_000))]);
  stream.end();
  await Promise.race([finished, new Promise((r) => setTimeout(r, 2000))]);
  client.close();
  const windowS = (options.durationMs - options.warmupMs) / 1000;
  return {
    client: 'grpc-js',
    rate: options.rate,
    sent,
    answered,
    achievedRate: Math.round((answeredInWindow / windowS) * 10) / 10,
    approvals: approvals.length / 2,
    errors: errors + (sent - answered),
    errorSamples,
    latencyMs: histogram.summaryMs(),
    writeToAnswerMs: fromWrite.summaryMs(),
    approvalKeys: Float64Array.from(approvals),
  };
}
