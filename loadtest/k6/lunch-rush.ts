// The canteen lunch hour against a running switch: arrivals ramp up steeply from 11:30, peak around
// 12:00 and run out by 13:00 (shared/profile.ts), compressed by TIME_FACTOR, with the lunch-rush mix of
// shared/traffic.ts: card taps, inquiries, POS retries, reversals, PIN payments, water-wallet debits and
// settlement swipes over many terminals and cards, a few of them hot.
//
//   npm run bench -- --export-campus loadtest/k6/campus.json     (once; the demo campus of npm start)
//   k6 run -e TARGET=127.0.0.1:50051 -e PEAK_RATE=1000 -e TIME_FACTOR=30 loadtest/k6/lunch-rush.ts
//
// Thresholds are the pass/fail gate: k6 exits non-zero when one fails.
import { SharedArray } from 'k6/data';
import type { Options } from 'k6/options';
import { checkCampusFile, type CampusCard, type CampusFile, type CampusTerminal } from '../shared/campus-data.ts';
import { k6Stages, lunchRushProfile, peakRateOf } from '../shared/profile.ts';
import { LUNCH_RUSH_MIX, type TrafficPlanner } from '../shared/traffic.ts';
import { campusView, client, CAMPUS_PATH, connectOnce, plannerFor, runPlanned, sequenceBase, USE_REFLECTION } from './lib/pos.ts';
import { latencyThresholds } from './lib/thresholds.ts';

const readCampus = (): CampusFile => checkCampusFile(JSON.parse(open(CAMPUS_PATH)));
const cards = new SharedArray<CampusCard>('cards', () => [...readCampus().cards]);
const terminals = new SharedArray<CampusTerminal>('terminals', () => [...readCampus().terminals]);
const limits = new SharedArray<CampusFile['noPinPerPaymentFen']>('limits', () => [readCampus().noPinPerPaymentFen]);
if (!USE_REFLECTION) client.load(['../../proto'], 'cardswitch/v1/pos.proto');

/** Requests per second at 12:00. */
const PEAK_RATE = Number(__ENV['PEAK_RATE'] ?? 1000);
/** 1 = the real 90 minutes; 30 = 3 minutes; 90 = 1 minute. */
const TIME_FACTOR = Number(__ENV['TIME_FACTOR'] ?? 30);
const profile = lunchRushProfile(PEAK_RATE, TIME_FACTOR);
/** Enough VUs for the peak at 50 ms per iteration; more are started (up to MAX_VUS) if the switch slows. */
const PRE_ALLOCATED_VUS = Number(__ENV['PRE_VUS'] ?? Math.max(10, Math.ceil(peakRateOf(profile) * 0.05)));
const MAX_VUS = Number(__ENV['MAX_VUS'] ?? Math.max(50, PRE_ALLOCATED_VUS * 4));

export const options: Options = {
  scenarios: {
    lunch_rush: {
      executor: 'ramping-arrival-rate',
      startRate: Math.round(profile.startRate),
      timeUnit: '1s',
      stages: k6Stages(profile),
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

export default function lunchRush(data: { base: number }): void {
  connectOnce();
  planner ??= plannerFor(campusView({ cards, terminals, limits }), LUNCH_RUSH_MIX, data.base, MAX_VUS);
  runPlanned(planner, planner.next());
}
