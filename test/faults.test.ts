// The fault suite (issue 9): the switch under the faults of a bad day, on loopback, bounded for CI.
// A redis-server of its own (AOF, appendfsync always: a kill -9 loses nothing acknowledged) and the
// production entry point (switch/main.ts) in a child process, so both can be killed with SIGKILL.
// POS clients keep paying and ask again under the same (terminal, sequence) key until answered; after
// each fault every approval they saw must be in the journal exactly once, no key charged twice, each
// card's balance its opening minus its approvals, and the audit sound. Each scenario prints its figures.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { AdminServiceClient } from '../proto/gen/cardswitch/v1/admin.js';
import { Outcome } from '../proto/gen/cardswitch/v1/common.js';
import { KioskServiceClient } from '../proto/gen/cardswitch/v1/kiosk.js';
import { AuthorizeRequest, AuthorizeResponse, PosServiceClient } from '../proto/gen/cardswitch/v1/pos.js';
import { campusDayKey } from '../switch/ledger/ledger.js';
import { Keys } from '../switch/ledger/keys.js';
import { freePort, startLocalRedis, type LocalRedis } from '../switch/redis/local-redis.js';
import {
  authorizeOnce,
  checkFaultLedger,
  CLIENT_OPTIONS,
  faultSwitchEnv,
  figuresLine,
  PosLoad,
  RawGrpcSession,
  startSwitchChild,
  within,
  type Approval,
  type FaultLedgerCheck,
  type LoadFigures,
  type PosTerminal,
  type SwitchChild,
} from './helpers/faults.js';
import { prng } from './helpers/prng.js';
import { freshPrefix } from './helpers/redis.js';

const OPERATOR_TOKEN = 'faults-operator-token-0123456789';
const OPENING_FEN = 500_000;
const LOAD_TERMINALS: PosTerminal[] = [1, 2, 3, 4].map((i) => ({ id: `FAULT-POS-${i}`, secret: `fault-pos-secret-${i}-0123456789` }));
/** Sends the malformed and oversized requests, and real payments on the same channel between them. */
const PROBE_TERMINAL: PosTerminal = { id: 'FAULT-PROBE', secret: 'fault-probe-secret-0123456789' };
const KIOSK_TERMINAL: PosTerminal = { id: 'FAULT-KIOSK', secret: 'fault-kiosk-secret-0123456789' };
const TERMINALS = [...LOAD_TERMINALS, PROBE_TERMINAL];
const LOAD_CARDS = Array.from({ length: 40 }, (_, i) => ({
  cardNo: String(70_000 + i),
  serial: `FA${String(70_000 + i).padStart(8, '0')}`,
}));
/** Touched by no payment: the target of the malformed requests, and of the password guesses. */
const QUIET_CARD = { cardNo: '79998', serial: 'FA00079998', document: 'P7999123' };
const GUESSED_CARD = { cardNo: '79999', serial: 'FA00079999', document: 'P7999456' };
/** The initial password: the document number's last six characters, non-digits as 1. */
const GUESSED_PASSWORD = '999456';

/** Calls that may take their whole time while a fault is on; every wait here is a condition with a bound. */
const CONDITION_MS = 20_000;
const SETTLE_MS = 15_000;
const APPROVALS_PER_PHASE = 80;
const STALL_MS = 3_000;
const STALL_CONCURRENCY = 25;
const BURST_SEED = 0x9f4e11;

let dataDir = '';
let redis: LocalRedis;
let grpcPort = 0;
let env: Record<string, string> = {};
let keys: Keys;
let check: Redis;
let sw: SwitchChild;
const switches: SwitchChild[] = [];
const approvals: Approval[] = [];
const sequences = new Map<string, number>();
const openings = new Map<string, number>([...LOAD_CARDS, QUIET_CARD, GUESSED_CARD].map((c) => [c.cardNo, OPENING_FEN]));

const nextSequence = (terminalId: string): number => {
  const next = (sequences.get(terminalId) ?? 0) + 1;
  sequences.set(terminalId, next);
  return next;
};
const address = (): string => `127.0.0.1:${grpcPort}`;
const crashes = (): number => switches.filter((s) => s.crashed()).length + (redisCrashed ? 1 : 0);
let redisCrashed = false;
let redisKilledByTest = false;

async function startRedis(port: number): Promise<void> {
  redis = await startLocalRedis({ dataDir, port, appendOnly: true, appendFsync: 'always', startTimeoutMs: 10_000 });
  redisKilledByTest = false;
  redis.process.once('exit', () => {
    if (!redisKilledByTest) redisCrashed = true;
  });
}

async function startSwitch(): Promise<void> {
  sw = await startSwitchChild(env);
  switches.push(sw);
}

const AUTHORIZE_PATH = '/cardswitch.v1.PosService/Authorize';

function credentialsOf(t: PosTerminal): Record<string, string> {
  return { 'terminal-id': t.id, 'terminal-secret': t.secret };
}

function metadataOf(t: PosTerminal): Metadata {
  const m = new Metadata();
  m.set('terminal-id', t.id);
  m.set('terminal-secret', t.secret);
  return m;
}

async function importCampus(): Promise<void> {
  const admin = new AdminServiceClient(address(), credentials.createInsecure());
  const operator = new Metadata();
  operator.set('operator-token', OPERATOR_TOKEN);
  const terminalRows = [
    ...TERMINALS.map((t) => `${t.id},canteen,FAULTS,故障测试食堂,${t.secret}`),
    `${KIOSK_TERMINAL.id},kiosk,CARDCENTER,故障测试自助机,${KIOSK_TERMINAL.secret}`,
  ];
  const cardRows = [
    ...LOAD_CARDS.map(
      (c, i) => `${c.cardNo},${c.serial},张三,FS${c.cardNo},student,passport,P${String(1_000_000 + i)},13800138000,${OPENING_FEN}`,
    ),
    ...[QUIET_CARD, GUESSED_CARD].map(
      (c) => `${c.cardNo},${c.serial},李四,FS${c.cardNo},student,passport,${c.document},13800138001,${OPENING_FEN}`,
    ),
  ];
  type Answer = { imported: number; problems: unknown[] };
  const importCsv = (method: 'importTerminals' | 'importCardholders', csv: string): Promise<Answer> =>
    new Promise((resolve, reject) =>
      admin[method]({ csv }, operator, (err: ServiceError | null, value?: Answer) =>
        err !== null ? reject(err) : value === undefined ? reject(new Error(`${method} answered nothing`)) : resolve(value),
      ),
    );
  try {
    expect(await importCsv('importTerminals', ['terminal_id,kind,merchant_id,location,secret', ...terminalRows].join('\n'))).toEqual({
      imported: terminalRows.length,
      problems: [],
    });
    const header = 'card_number,card_serial,name,person_number,holder_type,document_type,document_number,phone,opening_balance_fen';
    expect(await importCsv('importCardholders', [header, ...cardRows].join('\n'))).toEqual({ imported: cardRows.length, problems: [] });
  } finally {
    admin.close();
  }
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cardswitch-faults-'));
  await startRedis(0);
  grpcPort = await freePort();
  const prefix = freshPrefix('faults');
  env = faultSwitchEnv(redis.url, grpcPort, prefix, OPERATOR_TOKEN);
  keys = new Keys(prefix, Number(env['LEDGER_SHARDS']));
  check = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  check.on('error', () => undefined); // Redis is killed on purpose; the client reconnects by itself.
  await startSwitch();
  await importCampus();
});

afterAll(async () => {
  await sw?.stop();
  check?.disconnect();
  redisKilledByTest = true;
  await redis?.stop();
  if (dataDir !== '') rmSync(dataDir, { recursive: true, force: true });
});

// A scenario that failed half-way (a kill without its restart) must not take the next ones down with it.
beforeEach(async () => {
  if (redis.process.exitCode !== null || redis.process.signalCode !== null) await startRedis(redis.port);
  if (sw.exited()) await startSwitch();
});

/** A load that is stopped when its test ends, passed or failed (stopping twice is harmless). */
function newLoad(concurrency = 1): PosLoad {
  const load = new PosLoad(address(), LOAD_TERMINALS, LOAD_CARDS, approvals, nextSequence, concurrency).start();
  onTestFinished(async () => {
    await load.stop(SETTLE_MS);
  });
  return load;
}

/** The ledger check after a scenario: prints the figures, then asserts. */
async function verify(scenario: string, figures: LoadFigures, failures: readonly string[], extra = ''): Promise<FaultLedgerCheck> {
  if (check.status !== 'ready')
    await within(CONDITION_MS, 'the checking Redis client reconnects', new Promise((resolve) => check.once('ready', resolve)));
  const result = await checkFaultLedger(check, keys, TERMINALS, openings, approvals);
  console.log(figuresLine(scenario, figures, result, crashes(), extra));
  expect(failures).toEqual([]);
  expect(figures.failed).toBe(0);
  expect(figures.unanswered).toBe(0);
  expect(result.ledger.payments.samples).toEqual([]);
  expect(result.ledger.payments).toMatchObject({ missing: 0, duplicated: 0, unexplained: 0, approvedTwice: 0 });
  expect(result.balanceMismatches).toEqual([]);
  expect(result.ledger.audit.problems).toEqual([]);
  expect(result.ledger.audit.ok).toBe(true);
  expect(crashes()).toBe(0);
  return result;
}

describe.sequential('the fault suite', () => {
  it('kill -9 of Redis mid-load, restarted on the same port and AOF: no acknowledged approval lost, none twice', async () => {
    const load = newLoad();
    await within(CONDITION_MS, 'approvals before the kill', load.approvedAtLeast(APPROVALS_PER_PHASE));
    const port = redis.port;
    redisKilledByTest = true;
    redis.process.kill('SIGKILL');
    await new Promise((resolve) => redis.process.once('exit', resolve));
    // The clients felt it before Redis comes back: at least one payment had to be asked again.
    await within(
      CONDITION_MS,
      'a client sees the ledger gone',
      load.until((f) => f.retried > 0),
    );
    const acknowledgedAtKill = load.figures.acknowledged;
    await startRedis(port);
    await within(CONDITION_MS, 'approvals after Redis is back', load.approvedAtLeast(acknowledgedAtKill + APPROVALS_PER_PHASE));
    const figures = await load.stop(SETTLE_MS);
    await verify('redis kill -9', figures, load.failures);
  });

  it('kill -9 of the switch mid-load, a new one started: no acknowledged approval lost, none twice', async () => {
    const load = newLoad();
    await within(CONDITION_MS, 'approvals before the kill', load.approvedAtLeast(APPROVALS_PER_PHASE));
    await sw.kill9();
    await within(
      CONDITION_MS,
      'a client sees the switch gone',
      load.until((f) => f.retried > 0),
    );
    const acknowledgedAtKill = load.figures.acknowledged;
    await startSwitch();
    await within(CONDITION_MS, 'approvals from the new switch', load.approvedAtLeast(acknowledgedAtKill + APPROVALS_PER_PHASE));
    const figures = await load.stop(SETTLE_MS);
    await verify('switch kill -9', figures, load.failures);
  });

  it('Redis paused for 3 s mid-load: callers get UNAVAILABLE within their deadline, never INTERNAL, and service comes back', async () => {
    // 25 payments in flight per terminal (100 in all): calls pile up while the ledger is stalled.
    const load = newLoad(STALL_CONCURRENCY);
    await within(CONDITION_MS, 'approvals before the pause', load.approvedAtLeast(APPROVALS_PER_PHASE));
    redis.process.kill('SIGSTOP');
    let resumedAtMs = 0;
    try {
      await within(
        CONDITION_MS,
        'a client is refused during the pause',
        load.until((f) => f.retried > 0),
      );
      // The pause itself is the fault under test (a Sentinel failover takes seconds), not a wait for a result.
      await new Promise((resolve) => setTimeout(resolve, STALL_MS));
    } finally {
      redis.process.kill('SIGCONT');
      resumedAtMs = Date.now();
    }
    const acknowledgedAtResume = load.figures.acknowledged;
    await within(CONDITION_MS, 'the first approval after the pause', load.approvedAtLeast(acknowledgedAtResume + 1));
    const backAfterMs = Date.now() - resumedAtMs;
    await within(CONDITION_MS, 'approvals after the pause', load.approvedAtLeast(acknowledgedAtResume + APPROVALS_PER_PHASE));
    const figures = await load.stop(SETTLE_MS);
    await verify('redis paused 3 s', figures, load.failures, `first approval ${backAfterMs} ms after SIGCONT`);
    // Every caller is answered UNAVAILABLE within its deadline: never INTERNAL (not retried by gRPC
    // clients), never left to run into DEADLINE_EXCEEDED.
    expect(figures.retriedByCode['UNAVAILABLE'] ?? 0).toBeGreaterThan(0);
    expect(figures.retriedByCode).toEqual({ UNAVAILABLE: figures.retriedByCode['UNAVAILABLE'] });
  });

  it('a burst of malformed and oversized requests amid real payments: refused, no crash, nothing moved', async () => {
    const quietBefore = await check.hgetall(keys.account(QUIET_CARD.cardNo));
    const load = newLoad();
    await within(CONDITION_MS, 'approvals before the burst', load.approvedAtLeast(APPROVALS_PER_PHASE / 2));
    // One channel (one HTTP/2 connection) for the bad requests and the real payments between them.
    const bare = new Client(address(), credentials.createInsecure(), CLIENT_OPTIONS);
    const probe = new PosServiceClient(address(), credentials.createInsecure(), { channelOverride: bare.getChannel() });
    const raw = new RawGrpcSession(address());
    onTestFinished(() => {
      probe.close();
      bare.close();
      raw.close();
    });
    const payOnProbe = async (): Promise<void> => {
      const card = LOAD_CARDS[approvals.length % LOAD_CARDS.length] ?? LOAD_CARDS[0];
      const request: AuthorizeRequest = {
        terminalId: PROBE_TERMINAL.id,
        sequenceNumber: nextSequence(PROBE_TERMINAL.id),
        amountFen: 321,
        credential: { card: { cardSerial: card?.serial ?? '' } },
        pin: '',
      };
      const answer = await authorizeOnce(probe, PROBE_TERMINAL, request);
      expect(answer.outcome).toBe(Outcome.OUTCOME_APPROVED);
      approvals.push({
        terminalId: PROBE_TERMINAL.id,
        sequence: request.sequenceNumber,
        cardNo: card?.cardNo ?? '',
        amountFen: request.amountFen,
      });
    };
    const payOnRaw = async (): Promise<void> => {
      const card = LOAD_CARDS[(approvals.length + 1) % LOAD_CARDS.length] ?? LOAD_CARDS[0];
      const request: AuthorizeRequest = {
        terminalId: PROBE_TERMINAL.id,
        sequenceNumber: nextSequence(PROBE_TERMINAL.id),
        amountFen: 123,
        credential: { card: { cardSerial: card?.serial ?? '' } },
        pin: '',
      };
      const answer = await raw.unary(AUTHORIZE_PATH, AuthorizeRequest.encode(request).finish(), credentialsOf(PROBE_TERMINAL), 2_500);
      // Unanswered here, the payment is asked again on a fresh connection under the same key (as a POS
      // would), so the ledger check of later scenarios still knows its outcome.
      const outcome =
        answer.status === Status.OK
          ? AuthorizeResponse.decode(answer.body).outcome
          : (await authorizeOnce(probe, PROBE_TERMINAL, request)).outcome;
      if (outcome === Outcome.OUTCOME_APPROVED)
        approvals.push({
          terminalId: PROBE_TERMINAL.id,
          sequence: request.sequenceNumber,
          cardNo: card?.cardNo ?? '',
          amountFen: request.amountFen,
        });
      expect({ status: answer.status, streamError: answer.streamError }).toEqual({ status: Status.OK, streamError: '' });
      expect(outcome).toBe(Outcome.OUTCOME_APPROVED);
    };
    const codes = new Map<string, Map<string, number>>();
    const count = (kind: string, err: unknown): void => {
      const code = (err as Partial<ServiceError>).code;
      const name = code === undefined ? `not a gRPC status: ${String(err)}` : (Status[code] ?? String(code));
      const byCode = codes.get(kind) ?? new Map<string, number>();
      byCode.set(name, (byCode.get(name) ?? 0) + 1);
      codes.set(kind, byCode);
    };
    const rawCall = (bytes: Buffer, metadata: Metadata): Promise<unknown> =>
      new Promise((resolve) => {
        bare.makeUnaryRequest(
          AUTHORIZE_PATH,
          (b: Buffer) => b,
          (b: Buffer) => b,
          bytes,
          metadata,
          { deadline: Date.now() + 5_000 },
          (err) => resolve(err ?? new Error('answered OK')),
        );
      });
    const quiet = { card: { cardSerial: QUIET_CARD.serial } };
    const valid = (fields: Partial<AuthorizeRequest>): Buffer =>
      Buffer.from(
        AuthorizeRequest.encode({
          terminalId: PROBE_TERMINAL.id,
          sequenceNumber: nextSequence(PROBE_TERMINAL.id),
          amountFen: 100,
          credential: quiet,
          pin: '',
          ...fields,
        }).finish(),
      );

    // Seeded, so every run sends the same bytes (a decodable accident would answer the same each time).
    const next = prng(BURST_SEED);
    const noise = (length: number): Buffer => Buffer.from(Array.from({ length }, () => Math.floor(next() * 256)));
    for (let round = 0; round < 5; round++) {
      const burst: Promise<void>[] = [];
      for (let i = 0; i < 40; i++) {
        // Random bytes where an AuthorizeRequest belongs.
        burst.push(rawCall(noise(1 + ((i * 37) % 300)), metadataOf(PROBE_TERMINAL)).then((e) => count('random bytes', e)));
      }
      // Fields of the wrong wire type: terminal_id as a varint, sequence_number as bytes, amount_fen as a
      // fixed64, the credential as a varint; a sequence number beyond 2^53; a truncated message.
      const wrongTypes = [
        Buffer.from([0x08, 0x05, 0x12, 0x03, 0x61, 0x62, 0x63]),
        Buffer.from([0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x20, 0x07]),
        Buffer.concat([valid({}).subarray(0, 13), Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])]),
        valid({}).subarray(0, 9),
      ];
      for (const bytes of wrongTypes) burst.push(rawCall(bytes, metadataOf(PROBE_TERMINAL)).then((e) => count('wrong field types', e)));
      // Well-formed but impossible: nothing to pay, too much, not a serial, no key.
      for (const fields of [
        { amountFen: 0 },
        { amountFen: -100 },
        { amountFen: 100_000_000 },
        { credential: { card: { cardSerial: 'not-a-serial' } } },
        { sequenceNumber: 0 },
      ]) {
        burst.push(rawCall(valid(fields), metadataOf(PROBE_TERMINAL)).then((e) => count('impossible values', e)));
      }
      burst.push(rawCall(valid({}), new Metadata()).then((e) => count('no credentials', e)));
      await Promise.all(burst);
      // A message of 10 MiB, then a real payment on the same connection: it must still serve it. Once from
      // grpc-js (which paces the message by flow control), once written at once on a raw HTTP/2 connection.
      count('10 MiB', await rawCall(randomBytes(10 * 1024 * 1024), metadataOf(PROBE_TERMINAL)));
      await payOnProbe();
      const oversized = await raw.unary(AUTHORIZE_PATH, randomBytes(10 * 1024 * 1024), credentialsOf(PROBE_TERMINAL), 5_000);
      count('10 MiB written at once', oversized.status === undefined ? new Error(oversized.streamError) : { code: oversized.status });
      await payOnRaw();
    }
    const acknowledgedAfterBurst = load.figures.acknowledged;
    await within(CONDITION_MS, 'approvals after the burst', load.approvedAtLeast(acknowledgedAfterBurst + APPROVALS_PER_PHASE / 2));
    const figures = await load.stop(SETTLE_MS);
    const summary = [...codes].map(([kind, byCode]) => `${kind}: ${[...byCode].map(([c, n]) => `${c} ${n}`).join(' ')}`).join('; ');
    await verify('malformed and oversized', figures, load.failures, summary);
    expect(sw.exited()).toBe(false);
    expect(Object.fromEntries(codes)).toEqual({
      'random bytes': new Map([['INVALID_ARGUMENT', 200]]),
      'wrong field types': new Map([['INVALID_ARGUMENT', 20]]),
      'impossible values': new Map([['INVALID_ARGUMENT', 25]]),
      'no credentials': new Map([['UNAUTHENTICATED', 5]]),
      '10 MiB': new Map([['RESOURCE_EXHAUSTED', 5]]),
      '10 MiB written at once': new Map([['RESOURCE_EXHAUSTED', 5]]),
    });
    expect(await check.hgetall(keys.account(QUIET_CARD.cardNo))).toEqual(quietBefore);
  });

  it('1,000 parallel wrong-then-right password guesses on one card: at most 5 evaluated, the right one refused once locked', async () => {
    const accountKey = keys.account(GUESSED_CARD.cardNo);
    const before = await check.hmget(accountKey, 'bal', 'ver');
    const kiosk = new KioskServiceClient(address(), credentials.createInsecure(), CLIENT_OPTIONS);
    onTestFinished(() => kiosk.close());
    const statement = (password: string): Promise<ServiceError | undefined> =>
      new Promise((resolve) => {
        kiosk.statement(
          {
            cardholder: { card: { cardSerial: GUESSED_CARD.serial } },
            password,
            query: { fromMs: 0, toMs: 0, kinds: [], pageSize: 1, pageToken: '' },
          },
          metadataOf(KIOSK_TERMINAL),
          { deadline: Date.now() + CONDITION_MS },
          (err) => resolve(err ?? undefined),
        );
      });
    const guesses = Array.from({ length: 999 }, (_, i) => String((Number(GUESSED_PASSWORD) + 1 + i) % 1_000_000).padStart(6, '0'));
    // The right password is fired last, after every wrong one is on its way.
    const answers = await Promise.all([...guesses, GUESSED_PASSWORD].map((p) => statement(p)));
    const tally = { ok: 0, wrong: 0, locked: 0, busy: 0, other: [] as string[] };
    for (const err of answers) {
      if (err === undefined) tally.ok++;
      else if (err.code === Status.PERMISSION_DENIED) tally.wrong++;
      else if (err.code === Status.RESOURCE_EXHAUSTED && /locked/.test(err.details)) tally.locked++;
      else if (err.code === Status.RESOURCE_EXHAUSTED && /at once|try again in a moment/.test(err.details)) tally.busy++;
      else tally.other.push(`${Status[err.code] ?? err.code}: ${err.details}`);
    }
    const rightInBurst = answers[answers.length - 1];
    const afterwards = await statement(GUESSED_PASSWORD);
    const [day, failures] = await check.hmget(accountKey, 'pday', 'pfail');
    // The fifth wrong guess is answered 'locked' (it used the last attempt), so the server's count of
    // failures, not the client's PERMISSION_DENIED answers, says how many guesses were evaluated.
    const evaluated = tally.ok + Number(failures);
    console.log(
      `fault suite [password guesses]: requests ${answers.length + 1}, evaluated ${evaluated}, wrong ${tally.wrong}, ok ${tally.ok}, ` +
        `busy ${tally.busy}, locked ${tally.locked}, other ${tally.other.length}, failures recorded ${failures}, ` +
        `right one in the burst: ${rightInBurst === undefined ? 'OK' : rightInBurst.details}, afterwards: ${afterwards === undefined ? 'OK' : afterwards.details}, crashes ${crashes()}`,
    );
    expect(tally.other).toEqual([]);
    expect(evaluated).toBeLessThanOrEqual(5);
    expect(tally.wrong).toBeLessThanOrEqual(5);
    expect(tally.ok).toBe(0);
    expect(rightInBurst?.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect({ day, failures }).toEqual({ day: campusDayKey(Date.now()), failures: '5' });
    expect(afterwards?.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(afterwards?.details).toMatch(/locked/);
    expect(await check.hmget(accountKey, 'bal', 'ver')).toEqual(before);
    const result = await checkFaultLedger(check, keys, TERMINALS, openings, approvals);
    expect(result.ledger.audit.ok).toBe(true);
    expect(result.balanceMismatches).toEqual([]);
    expect(crashes()).toBe(0);
  });
});
