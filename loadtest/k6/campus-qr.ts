// Campus QR payments as cardholders make them: each iteration, a bound e-card user's phone fetches a
// fresh code from the gateway (GET /api/v1/ecard/qr, bearer token) and a canteen POS pays with it over
// gRPC (Authorize with credential.campusQr), at a constant arrival rate (the open model). The k6 side
// of the bench's qr scenario, with the issuing path included.
//
//   npm start                                                                (the switch and its gateway)
//   npm run bench -- --export-campus loadtest/k6/campus.json --ecard-users 500   (binds 500 demo cards)
//   k6 run -e TARGET=127.0.0.1:50051 -e GATEWAY=http://127.0.0.1:8080 -e RATE=100 -e DURATION=1m loadtest/k6/campus-qr.ts
//
// Thresholds are the pass/fail gate: every check passed (a code issued, the payment answered as a
// campus QR payment should be: approved, or a busy card's PIN_REQUIRED / out of money / over its daily
// limit under npm start's real limits; never a used, expired or invalid code), the code fetch's p95 / p99
// under QR_P95_MS / QR_P99_MS, the payment's under P95_MS / P99_MS.
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import { Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import { checkCampusFile, type CampusCard, type CampusEcardUser, type CampusFile, type CampusTerminal } from '../shared/campus-data.ts';
import { campusQrCodeOf, ECARD_QR_PATH } from '../shared/ecard.ts';
import { CAMPUS_QR_ONLY_MIX, type TrafficPlanner } from '../shared/traffic.ts';
import { EcardUsers, safeJson } from './lib/gateway.ts';
import { campusView, client, CAMPUS_PATH, connectOnce, plannerFor, runPlanned, sequenceBase, USE_REFLECTION } from './lib/pos.ts';

const readCampus = (): CampusFile => checkCampusFile(JSON.parse(open(CAMPUS_PATH)));
const cards = new SharedArray<CampusCard>('cards', () => [...readCampus().cards]);
const terminals = new SharedArray<CampusTerminal>('terminals', () => [...readCampus().terminals]);
const limits = new SharedArray<CampusFile['noPinPerPaymentFen']>('limits', () => [readCampus().noPinPerPaymentFen]);
const users = new SharedArray<CampusEcardUser>('ecardUsers', () => [...(readCampus().ecardUsers ?? [])]);
if (!USE_REFLECTION) client.load(['../../proto'], 'cardswitch/v1/pos.proto');

/** Payments per second (each one code fetch and one Authorize). */
const RATE = Number(__ENV['RATE'] ?? 100);
const PRE_ALLOCATED_VUS = Number(__ENV['PRE_VUS'] ?? Math.max(10, Math.ceil(RATE * 0.05)));
const MAX_VUS = Number(__ENV['MAX_VUS'] ?? Math.max(50, PRE_ALLOCATED_VUS * 4));
/** From asking the gateway for a code to the POS's answer: what the cardholder waits at the till. */
const qrToAnswer = new Trend('campus_qr_to_answer', true);

export const options: Options = {
  scenarios: {
    campus_qr: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV['DURATION'] ?? '1m',
      preAllocatedVUs: PRE_ALLOCATED_VUS,
      maxVUs: MAX_VUS,
      gracefulStop: '10s',
    },
  },
  thresholds: {
    checks: [`rate>${__ENV['CHECKS_RATE'] ?? '0.999'}`],
    'http_req_duration{name:campus_qr_issue}': [`p(95)<${__ENV['QR_P95_MS'] ?? 25}`, `p(99)<${__ENV['QR_P99_MS'] ?? 50}`],
    'grpc_req_duration{kind:campus_qr}': [`p(95)<${__ENV['P95_MS'] ?? 15}`, `p(99)<${__ENV['P99_MS'] ?? 25}`],
  },
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'p(99.9)', 'max'],
};

export function setup(): { base: number } {
  return { base: sequenceBase() };
}

let planner: TrafficPlanner | undefined;
let ecard: EcardUsers | undefined;
/** The code the gateway issued in this iteration; the planner pays with it once. */
let pending: string | undefined;

export default function campusQr(data: { base: number }): void {
  connectOnce();
  ecard ??= new EcardUsers(users);
  planner ??= plannerFor(campusView({ cards, terminals, limits }), CAMPUS_QR_ONLY_MIX, data.base, MAX_VUS, 4, () => {
    const code = pending;
    pending = undefined;
    return code;
  });
  const { index, user } = ecard.take();
  const started = Date.now();
  const response = ecard.get(index, user, ECARD_QR_PATH, 'campus_qr_issue');
  pending = response?.status === 200 ? campusQrCodeOf(safeJson(response)) : undefined;
  check(response, { 'campus QR code issued': () => pending !== undefined }, { name: 'campus_qr_issue' });
  if (pending === undefined) return;
  runPlanned(planner, planner.campusQrPayment());
  qrToAnswer.add(Date.now() - started);
}
