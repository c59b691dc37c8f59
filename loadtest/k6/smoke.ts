// Smoke test: one VU sends each kind of request a few times, in order, and every check must pass. Run it
// before a load test to prove the campus file matches the switch (terminals, secrets, cards, PINs).
//
//   k6 run -e TARGET=127.0.0.1:50051 loadtest/k6/smoke.ts
import { SharedArray } from 'k6/data';
import type { Options } from 'k6/options';
import { checkCampusFile, type CampusCard, type CampusFile, type CampusTerminal } from '../shared/campus-data.ts';
import { LUNCH_RUSH_MIX, type PlannedCall, type TrafficPlanner } from '../shared/traffic.ts';
import { campusView, client, CAMPUS_PATH, connectOnce, plannerFor, runPlanned, sequenceBase, USE_REFLECTION } from './lib/pos.ts';

const readCampus = (): CampusFile => checkCampusFile(JSON.parse(open(CAMPUS_PATH)));
const cards = new SharedArray<CampusCard>('cards', () => [...readCampus().cards]);
const terminals = new SharedArray<CampusTerminal>('terminals', () => [...readCampus().terminals]);
const limits = new SharedArray<CampusFile['noPinPerPaymentFen']>('limits', () => [readCampus().noPinPerPaymentFen]);
if (!USE_REFLECTION) client.load(['../../proto'], 'cardswitch/v1/pos.proto');

export const options: Options = {
  scenarios: {
    smoke: { executor: 'per-vu-iterations', vus: 1, iterations: Number(__ENV['ITERATIONS'] ?? 5), maxDuration: '1m' },
  },
  thresholds: {
    checks: ['rate==1.0'],
    // Lenient: a smoke test proves the path works; lunch-rush.ts holds the latency targets.
    grpc_req_duration: ['p(95)<500'],
  },
};

export function setup(): { base: number } {
  return { base: sequenceBase() };
}

let planner: TrafficPlanner | undefined;

export default function smoke(data: { base: number }): void {
  connectOnce();
  const p = (planner ??= plannerFor(campusView({ cards, terminals, limits }), LUNCH_RUSH_MIX, data.base, 1));
  // Every kind once per iteration: the retry and the reversal refer to this iteration's tap.
  const calls: (PlannedCall | undefined)[] = [p.tap(), undefined, undefined, p.inquiry(), p.pinPayment(), p.settle(), p.water()];
  for (let i = 0; i < calls.length; i++) {
    const planned = i === 1 ? p.retry() : i === 2 ? p.reversal() : calls[i];
    if (planned !== undefined) runPlanned(p, planned);
  }
}
