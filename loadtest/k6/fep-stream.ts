// A POS front-end processor: each VU holds the terminals' card taps on PosService/AuthorizeStream,
// BATCH payments per stream (one stream per iteration, answers matched by their tag), the k6 side of
// the bench's tap-stream scenario. Each message carries its own terminal's id and secret.
//
//   npm run bench -- --export-campus loadtest/k6/campus.json     (once; the demo campus of npm start)
//   k6 run -e TARGET=127.0.0.1:50051 -e FEPS=4 -e BATCH=64 -e DURATION=1m loadtest/k6/fep-stream.ts
//
// Thresholds are the pass/fail gate: every answer an expected one, and the p95 / p99 of the time from
// writing a payment to its answer (stream_payment_duration) under P95_MS (15) / P99_MS (25).
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import { Trend } from 'k6/metrics';
import grpc from 'k6/net/grpc';
import type { Options } from 'k6/options';
import { checkCampusFile, type CampusCard, type CampusFile, type CampusTerminal } from '../shared/campus-data.ts';
import {
  answerLabel,
  DECLINE_REASON_NAMES,
  enumNumber,
  isExpectedAnswer,
  LUNCH_RUSH_MIX,
  OUTCOME_NAMES,
  POS_SERVICE,
  type TrafficPlanner,
} from '../shared/traffic.ts';
import {
  approvals,
  campusView,
  client,
  CAMPUS_PATH,
  connectOnce,
  plannerFor,
  sequenceBase,
  unexpectedAnswers,
  USE_REFLECTION,
} from './lib/pos.ts';

const readCampus = (): CampusFile => checkCampusFile(JSON.parse(open(CAMPUS_PATH)));
const cards = new SharedArray<CampusCard>('cards', () => [...readCampus().cards]);
const terminals = new SharedArray<CampusTerminal>('terminals', () => [...readCampus().terminals]);
const limits = new SharedArray<CampusFile['noPinPerPaymentFen']>('limits', () => [readCampus().noPinPerPaymentFen]);
if (!USE_REFLECTION) client.load(['../../proto'], 'cardswitch/v1/pos.proto');

/** Front-end processors (VUs), each with one stream at a time. */
const FEPS = Number(__ENV['FEPS'] ?? 4);
/** Payments written on one stream before it is ended (at most 512 wait at the switch per stream). */
const BATCH = Number(__ENV['BATCH'] ?? 64);
const streamPayment = new Trend('stream_payment_duration', true);

export const options: Options = {
  scenarios: {
    fep: { executor: 'constant-vus', vus: FEPS, duration: __ENV['DURATION'] ?? '1m', gracefulStop: '10s' },
  },
  thresholds: {
    checks: [`rate>${__ENV['CHECKS_RATE'] ?? '0.999'}`],
    stream_payment_duration: [`p(95)<${__ENV['P95_MS'] ?? 15}`, `p(99)<${__ENV['P99_MS'] ?? 25}`],
  },
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'p(99.9)', 'max'],
};

export function setup(): { base: number } {
  return { base: sequenceBase() };
}

interface StreamedAnswer {
  readonly tag?: string | number;
  readonly response?: Record<string, unknown>;
  readonly error?: { readonly code?: number; readonly message?: string };
}

let planner: TrafficPlanner | undefined;

export default function fepStream(data: { base: number }): void {
  connectOnce();
  planner ??= plannerFor(campusView({ cards, terminals, limits }), LUNCH_RUSH_MIX, data.base, FEPS, BATCH);
  const stream = new grpc.Stream(client, `${POS_SERVICE}/AuthorizeStream`);
  const sentAt = new Map<number, number>();
  stream.on('data', (message) => {
    const answer = message as StreamedAnswer;
    // uint64 arrives as a string in k6's JSON mapping.
    const tag = Number(answer.tag ?? 0);
    const started = sentAt.get(tag);
    sentAt.delete(tag);
    if (started !== undefined) streamPayment.add(Date.now() - started);
    const label =
      answer.error !== undefined
        ? answerLabel('Authorize', Number(answer.error.code ?? 2), 0, 0)
        : answerLabel(
            'Authorize',
            0,
            enumNumber(answer.response?.['outcome'], OUTCOME_NAMES),
            enumNumber(answer.response?.['declineReason'], DECLINE_REASON_NAMES),
          );
    const expected = isExpectedAnswer('tap', label);
    check(
      label,
      { 'streamed payment answered as expected': () => expected, 'answer for a tag that was sent': () => started !== undefined },
      { kind: 'tap' },
    );
    if (!expected) unexpectedAnswers.add(1, { kind: 'tap', answer: label });
    if (label === 'approved') approvals.add(1);
  });
  stream.on('error', (err) => check(err, { 'stream ended without error': () => false }));
  stream.on('end', () => check(sentAt, { 'every payment of the stream answered': (left) => left.size === 0 }));
  for (let tag = 1; tag <= BATCH; tag++) {
    const planned = planner.tap();
    sentAt.set(tag, Date.now());
    stream.write({ tag, terminalSecret: planned.terminal.secret, request: planned.call.message });
  }
  stream.end();
}
