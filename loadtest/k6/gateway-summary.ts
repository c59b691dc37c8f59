// The e-card page opening: GET /api/v1/ecard (the card summary: balance, status, binding) as bound
// cardholders, at a constant arrival rate (the open model), against the gateway of a running switch.
// The k6 side of the bench's gateway scenario.
//
//   npm start
//   npm run bench -- --export-campus loadtest/k6/campus.json --ecard-users 500
//   k6 run -e GATEWAY=http://127.0.0.1:8080 -e RATE=500 -e DURATION=1m loadtest/k6/gateway-summary.ts
//
// Thresholds are the pass/fail gate: every answer the summary of the user's own card, and the p95 / p99
// of http_req_duration{name:ecard_summary} under P95_MS / P99_MS.
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import type { Options } from 'k6/options';
import { checkCampusFile, type CampusEcardUser, type CampusFile } from '../shared/campus-data.ts';
import { ECARD_SUMMARY_PATH, isSummaryOf } from '../shared/ecard.ts';
import { EcardUsers, safeJson } from './lib/gateway.ts';

const CAMPUS_PATH = __ENV['CAMPUS'] ?? './campus.json';
const readCampus = (): CampusFile => checkCampusFile(JSON.parse(open(CAMPUS_PATH)));
const users = new SharedArray<CampusEcardUser>('ecardUsers', () => [...(readCampus().ecardUsers ?? [])]);

const RATE = Number(__ENV['RATE'] ?? 500);
const PRE_ALLOCATED_VUS = Number(__ENV['PRE_VUS'] ?? Math.max(10, Math.ceil(RATE * 0.02)));
const MAX_VUS = Number(__ENV['MAX_VUS'] ?? Math.max(50, PRE_ALLOCATED_VUS * 4));

export const options: Options = {
  scenarios: {
    summary: {
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
    'http_req_duration{name:ecard_summary}': [`p(95)<${__ENV['P95_MS'] ?? 25}`, `p(99)<${__ENV['P99_MS'] ?? 50}`],
  },
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'p(99.9)', 'max'],
};

let ecard: EcardUsers | undefined;

export default function gatewaySummary(): void {
  ecard ??= new EcardUsers(users);
  const { index, user } = ecard.take();
  const response = ecard.get(index, user, ECARD_SUMMARY_PATH, 'ecard_summary');
  check(
    response,
    {
      'summary answered 200': (r) => r?.status === 200,
      'the summary of the card bound to the user': (r) => r !== undefined && isSummaryOf(safeJson(r), user.cardNo),
    },
    { name: 'ecard_summary' },
  );
}
