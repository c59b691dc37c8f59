// What the k6 scenarios share: one gRPC connection per VU, a planned call sent and checked, PIN entry
// after PIN_REQUIRED, and the custom metrics. k6 runs TypeScript directly (k6 >= 0.57); local imports
// name the .ts file, as k6 resolves paths without guessing extensions. Files (the campus, the protos)
// are opened by the scenario scripts themselves, so relative paths start from loadtest/k6/.
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';
import grpc from 'k6/net/grpc';
import type { CampusCard, CampusTerminal } from '../../shared/campus-data.ts';
import {
  answerLabel,
  DECLINE_REASON_NAMES,
  enumNumber,
  isExpectedAnswer,
  OUTCOME_NAMES,
  parseMix,
  POS_SERVICE,
  REVERSE_RESULT_NAMES,
  TrafficPlanner,
  type CampusView,
  type PlannedCall,
  type TrafficMix,
} from '../../shared/traffic.ts';

/** host:port of the switch; `npm start` listens on 50051. */
export const TARGET = __ENV['TARGET'] ?? '127.0.0.1:50051';
/** Written by `npm run bench -- --export-campus loadtest/k6/campus.json`; relative to loadtest/k6/. */
export const CAMPUS_PATH = __ENV['CAMPUS'] ?? './campus.json';
/** REFLECT=1: take the API from the switch's server reflection instead of the repo's proto files. */
export const USE_REFLECTION = __ENV['REFLECT'] === '1';
const REQUEST_TIMEOUT = __ENV['REQUEST_TIMEOUT'] ?? '5s';

/** Created in the init context; the scenario script loads the protos into it (client.load). */
export const client = new grpc.Client();

/** The campus as SharedArrays (one copy for all VUs), from the checked campus file. */
export interface SharedCampus {
  readonly cards: ArrayLike<CampusCard>;
  readonly terminals: ArrayLike<CampusTerminal>;
  readonly limits: ArrayLike<CampusView['noPinPerPaymentFen']>;
}

export function campusView(shared: SharedCampus): CampusView {
  const limits = shared.limits[0];
  if (limits === undefined) throw new Error('the campus file has no password-free limits');
  return { cards: shared.cards, terminals: shared.terminals, noPinPerPaymentFen: limits };
}

export const approvals = new Counter('approvals');
export const unexpectedAnswers = new Counter('unexpected_answers');
export const retriesReplayed = new Rate('retries_replayed');

/** Connect once per VU (k6 keeps the connection across iterations), not once per iteration. */
export function connectOnce(): void {
  if (__ITER === 0) client.connect(TARGET, { plaintext: true, reflect: USE_REFLECTION, timeout: '10s' });
}

/** Sequence numbers one run may use: 2^27, four per iteration at most (one per planned call). */
const SEQUENCES_PER_RUN = 2 ** 27;
const SEQUENCES_PER_ITERATION = 4;

/**
 * The first sequence number of this run: a random block of 2^27 among 2^25 blocks, so two runs against
 * the same switch share idempotency keys with a chance of 1 in 33 million (a wall-clock base would
 * collide for runs started in the same second, and run out within years). SEQUENCE_BASE overrides it.
 */
export function sequenceBase(): number {
  const fromEnv = __ENV['SEQUENCE_BASE'];
  if (fromEnv !== undefined) return Number(fromEnv);
  return Math.floor(Math.random() * 2 ** 25) * SEQUENCES_PER_RUN;
}

/**
 * `perIteration`: new payments one iteration may make (fep-stream sends a whole batch per iteration);
 * `nextCampusQr`: where campus QR payments get their codes (campus-qr.ts: the code the gateway just issued).
 */
export function plannerFor(
  campus: CampusView,
  mix: TrafficMix,
  base: number,
  vus: number,
  perIteration = SEQUENCES_PER_ITERATION,
  nextCampusQr?: () => string | undefined,
): TrafficPlanner {
  let iteration = -1;
  let offset = 0;
  return new TrafficPlanner(campus, {
    // k6 has no channel simulator to mint Alipay / WeChat payment codes from: no third-party payments.
    mix: { ...parseMix(__ENV['MIX'] ?? '', mix), thirdParty: 0 },
    seed: exec.vu.idInTest * 7919 + 1,
    partition: { index: (exec.vu.idInTest - 1) % vus, count: vus },
    nextCampusQr,
    // iterationInTest is unique across all VUs of the scenario; each iteration has its own slots.
    nextSequence: () => {
      const current = exec.scenario.iterationInTest;
      if (current !== iteration) {
        iteration = current;
        offset = 0;
      }
      if (offset >= perIteration) throw new Error(`more than ${perIteration} new payments in one iteration`);
      const relative = current * perIteration + offset++;
      if (relative >= SEQUENCES_PER_RUN) throw new Error('this run used up its sequence numbers; start a new run');
      return base + relative + 1;
    },
  });
}

interface Answer {
  readonly label: string;
  readonly memo: string;
}

function answerOf(planned: PlannedCall, response: grpc.Response): Answer {
  const message = (response.message ?? {}) as Record<string, unknown>;
  const rpc = planned.call.rpc;
  let field1 = 0;
  let field2 = 0;
  if (rpc === 'Inquire') field1 = message['found'] === true ? 1 : 0;
  else if (rpc === 'Reverse') field1 = enumNumber(message['result'], REVERSE_RESULT_NAMES);
  else {
    field1 = enumNumber(message['outcome'], OUTCOME_NAMES);
    field2 = enumNumber(message['declineReason'], DECLINE_REASON_NAMES);
  }
  const label = answerLabel(rpc, response.status, field1, field2);
  // A retry must replay the first answer: the same transaction and the same decision time.
  const memo = `${label}|${scalarText(message['transactionId'])}|${scalarText(message['decidedAtMs'])}`;
  return { label, memo };
}

/** A JSON scalar as text (int64 fields arrive as strings, some as numbers); anything else, or a missing field, is ''. */
function scalarText(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : '';
}

function invoke(planned: PlannedCall): Answer {
  const response = client.invoke(`${POS_SERVICE}/${planned.call.rpc}`, planned.call.message, {
    metadata: { 'terminal-id': planned.terminal.id, 'terminal-secret': planned.terminal.secret },
    tags: { kind: planned.kind, rpc: planned.call.rpc },
    timeout: REQUEST_TIMEOUT,
  });
  const answer = answerOf(planned, response);
  const tags = { kind: planned.kind };
  check(response, { 'gRPC status OK': (r) => r.status === grpc.StatusOK }, tags);
  const expected = isExpectedAnswer(planned.kind, answer.label);
  check(answer, { 'answer expected for the request': () => expected }, tags);
  if (!expected && response.status === grpc.StatusOK) unexpectedAnswers.add(1, { ...tags, answer: answer.label });
  if (planned.kind === 'retry') {
    const replayed = answer.memo === planned.retryOf;
    retriesReplayed.add(replayed);
    check(answer, { 'retry replays the first answer': () => replayed }, tags);
  }
  if (answer.label === 'approved' && planned.call.rpc === 'Authorize' && planned.kind !== 'retry') approvals.add(1);
  return answer;
}

/** One planned call, and the PIN entry when the answer asks for it. */
export function runPlanned(planner: TrafficPlanner, planned: PlannedCall): string {
  const first = invoke(planned);
  planner.completed(planned, first.label, first.memo);
  if (first.label !== 'pin_required') return first.label;
  const entry = planner.pinEntry(planned);
  if (entry === undefined) return first.label;
  const second = invoke(entry);
  planner.completed(entry, second.label, second.memo);
  return second.label;
}

export function closeClient(): void {
  client.close();
}
