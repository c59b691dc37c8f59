// Soak: the lunch-rush mix at a steady rate for a long time (default 300 requests/s for 30 minutes), to
// find what only time shows: memory growth, a slowing Redis (AOF growth, statement indexes), leaks of
// connections or file handles. Same checks and latency thresholds as the lunch rush.
//
//   k6 run -e TARGET=127.0.0.1:50051 -e RATE=300 -e DURATION=30m loadtest/k6/soak.ts
import { SharedArray } from 'k6/data';
import type { Options } from 'k6/options';
import { checkCampusFile, type CampusCard, type CampusFile, type CampusTerminal } from '../shared/campus-data.ts';
import { LUNCH_RUSH_MIX, type TrafficPlanner } from '../shared/traffic.ts';
import { campusView, client, CAMPUS_PATH, connectOnce, plannerFor, runPlanned, sequenceBase, USE_REFLECTION } from './lib/pos.ts';
import { latencyThresholds } from './lib/thresholds.ts';

const readCampus = (): CampusFile => checkCampusFile(JSON.parse(open(CAMPUS_PATH)));
const cards = new SharedArray<CampusCard>('cards', () => [...readCampus().cards]);
const terminals = new SharedArray<CampusTerminal>('terminals', () => [...readCampus().terminals]);
const limits = new SharedArray<CampusFile['noPinPerPaymentFen']>('limits', () => [readCampus().noPinPerPaymentFen]);
if (!USE_REFLECTION) client.load(['../../proto'], 'cardswitch/v1/pos.proto');

const RATE = Number(__ENV['RATE'] ?? 300);
const PRE_ALLOCATED_VUS = Number(__ENV['PRE_VUS'] ?? Math.max(10, Math.ceil(RATE * 0.05)));
const MAX_VUS = Number(__ENV['MAX_VUS'] ?? Math.max(50, PRE_ALLOCATED_VUS * 4));

export const options: Options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV['DURATION'] ?? '30m',
      preAllocatedVUs: PRE_ALLOCATED_VUS,
      maxVUs: MAX_VUS,
      gracefulStop: '10s',
    },
  },
  thresholds: latencyThresholds(),
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'p(99.9)', 'max'],
};

export function setup(): { base: number } {
  return { base: sequenceBase() };
}

let planner: TrafficPlanner | undefined;

export default function soak(data: { base: number }): void {
  connectOnce();
  planner ??= plannerFor(campusView({ cards, terminals, limits }), LUNCH_RUSH_MIX, data.base, MAX_VUS);
  runPlanned(planner, planner.next());
}
