// Redis's work per payment in instructions, not seconds (issue 15): a private redis-server (AOF,
// appendfsync always, as the bench's) runs under valgrind's callgrind, and redis-benchmark drives the
// same subjects as the bench's floor run: the minimal idempotent debit (the floor), the sequence claim
// (SET NX GET EX) and authorize.lua with the switch's own KEYS and ARGV (the claim inside it, as the
// switch sends a card tap on one Redis). For each, callgrind counts the instructions Redis executed
// between zeroing its counters and dumping them, divided by the calls: a figure that does not move
// with the machine's speed or with other processes on its cores (CPU seconds per call moved by 2x
// between minutes on this 2-core machine while other work ran). The kernel's share (socket writes,
// the AOF's write and fsync) is not counted: it is about the same per call for every subject.
//
//   npx tsx loadtest/bench/redis-instructions.ts [--calls 2000] [--rounds 2] [--clients 16] [--json FILE]
//
// Needs valgrind (Debian: apt-get install -y valgrind) and redis-benchmark (redis-tools); says so and
// exits 2 without them. Takes about a minute (Redis runs some 50 times slower under callgrind).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { Keys } from '../../switch/ledger/keys.js';
import { Ledger, type AuthorizeInput } from '../../switch/ledger/ledger.js';
import { preparedCommand, Scripts } from '../../switch/ledger/scripts.js';
import { freePort } from '../../switch/redis/local-redis.js';
import { loadFloorFunction } from './redis-benchmark.js';
import { benchAccountFields } from './campus.js';

const PREFIX = 'ri';
const CARD_NO = '91000001';
const SERIAL = 'B0000001';
const AMOUNT_FEN = 1250;
const TTL_SEC = 3600;
/** Twelve digits, as long as redis-benchmark's `__rand_int__`, which replaces it (a new key per call). */
const PLACEHOLDER = 999_999_999_999;
const NO_LIMIT = { noPinPerPaymentFen: 1_000_000, noPinPerDayFen: 999_999_999_999_999, dailySpendLimitFen: 0 };

export interface InstructionSubject {
  readonly name: 'floor' | 'claim' | 'authorize' | 'authorizeWithoutClaim';
  readonly note: string;
  /** Thousands of instructions Redis executed per call, one figure per round (median in `kInstructionsPerCall`). */
  readonly rounds: number[];
  readonly kInstructionsPerCall: number;
}

export interface InstructionsResult {
  readonly calls: number;
  readonly clients: number;
  readonly subjects: InstructionSubject[];
  /** authorize.lua with the claim inside (one Redis: what a card tap costs Redis) over the floor. */
  readonly perPaymentVsFloor: number;
  /** On a Redis Cluster the claim is its own command: the script without it plus the claim, over the floor. */
  readonly clusterPerPaymentVsFloor: number;
}

function need(command: string, args: string[], install: string): void {
  const probe = spawnSync(command, args, { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    process.stderr.write(`${command} not found: ${install}\n`);
    process.exit(2);
  }
}

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(command, args, { timeout: 600_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${command}: ${err.message} ${stderr}`)) : resolve(stdout),
    ),
  );
}

/** The total instruction count ("summary:" / "totals:") of the newest callgrind dump in `dir`. */
function newestDumpTotal(dir: string): number {
  const dumps = readdirSync(dir)
    .filter((f) => f.startsWith('callgrind.out'))
    .map((f) => ({ f, at: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.at - a.at);
  const newest = dumps[0];
  if (newest === undefined) throw new Error(`no callgrind dump in ${dir}`);
  const match = /^(?:summary|totals):\s*(\d+)/m.exec(readFileSync(join(dir, newest.f), 'utf8'));
  if (match === null) throw new Error(`callgrind dump ${newest.f} has no totals line`);
  return Number(match[1]);
}

async function waitForPing(port: number, server: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`redis-server under valgrind exited with ${server.exitCode}`);
    const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined); // not listening yet: connect() rejects, which is the answer
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') return;
    } catch {
      // not up yet
    } finally {
      probe.disconnect();
    }
    if (Date.now() > deadline) throw new Error('redis-server under valgrind did not answer PING within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const round1 = (n: number): number => Math.round(n * 10) / 10;

export async function measureRedisInstructions(options: {
  readonly calls: number;
  readonly rounds: number;
  readonly clients: number;
  readonly port?: number;
  readonly log?: (line: string) => void;
}): Promise<InstructionsResult> {
  const log = options.log ?? (() => undefined);
  // A port below the ephemeral range, free when chosen (freePort); if another process takes it before
  // redis-server binds it, redis-server exits at once and the next attempt takes another port.
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const dir = mkdtempSync(join(tmpdir(), 'redis-instructions-'));
    const server = startCallgrindRedis(port, dir);
    try {
      await waitForPing(port, server);
    } catch (err) {
      server.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      if (attempt >= 3 || options.port !== undefined) throw err;
      log(`redis-server under valgrind did not start on port ${port} (${(err as Error).message}); trying another port`);
      continue;
    }
    return measureOn(port, dir, server, options, log);
  }
}

function startCallgrindRedis(port: number, dir: string): ChildProcess {
  return spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--collect-atstart=yes',
      `--callgrind-out-file=${join(dir, 'callgrind.out.%p')}`,
      'redis-server',
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      '--auto-aof-rewrite-percentage',
      '0',
    ],
    { stdio: 'ignore' },
  );
}

async function measureOn(
  port: number,
  dir: string,
  server: ChildProcess,
  options: { readonly calls: number; readonly rounds: number; readonly clients: number },
  log: (line: string) => void,
): Promise<InstructionsResult> {
  const pid = String(server.pid);
  try {
    const redis = new Redis({ port, maxRetriesPerRequest: 0 });
    try {
      const keys = new Keys(PREFIX, 256);
      const scripts = await Scripts.load(redis);
      const ledger = new Ledger(keys, scripts, TTL_SEC);
      await ledger.openAccount({ cardNo: CARD_NO, openingFen: 1_000_000_000_000, fields: benchAccountFields(SERIAL) });
      const floorAccount = `${PREFIX}-floor:acct`;
      await redis.hset(floorAccount, 'bal', 1_000_000_000_000);
      const floorCommand = await loadFloorFunction(redis, floorAccount, `${PREFIX}-floor:req:__rand_int__`, AMOUNT_FEN, TTL_SEC);
      const randomized = (value: string | number): string => String(value).replace(String(PLACEHOLDER), '__rand_int__');
      const input = (claimSequence: boolean, run: number): AuthorizeInput => ({
        cardNo: CARD_NO,
        presentedSerial: SERIAL,
        amountFen: AMOUNT_FEN,
        credentialKind: 'card',
        terminalId: `BENCH-RI-${run}`,
        sequence: PLACEHOLDER,
        merchantId: 'BENCH',
        pinVerified: false,
        limits: { student: NO_LIMIT, staff: NO_LIMIT },
        claimSequence,
      });
      const authorize = await ledger.prepareAuthorize({ student: NO_LIMIT, staff: NO_LIMIT });
      const authorizeCommand = (claimSequence: boolean, run: number): string[] => {
        const { keys: k, args } = ledger.authorizeArguments(input(claimSequence, run), Date.now());
        return preparedCommand(authorize, k.map(randomized), args.map(randomized)).map(String);
      };
      // Every run's keys are its own (the run's number in the terminal or the request key): two
      // redis-benchmark runs now and then drew the same __rand_int__ numbers (runRedisWorkBaselines saw
      // it), which would make the later one's payments replays of the earlier one's (far fewer instructions).
      const subjects: { name: InstructionSubject['name']; note: string; command: (run: number) => string[] }[] = [
        {
          name: 'floor',
          note: 'the minimal idempotent debit script as a function (GET the request key, HGET, HINCRBY, SET EX)',
          command: (run) => floorCommand.map((a) => a.replace(`${PREFIX}-floor:req:`, `${PREFIX}-floor:req${run}:`)),
        },
        {
          name: 'claim',
          note: 'the sequence claim as its own command (SET NX GET EX), as on a Redis Cluster',
          command: (run) => [
            'SET',
            randomized(keys.sequenceClaim(`BENCH-RI-${run}`, PLACEHOLDER)),
            CARD_NO,
            'EX',
            String(TTL_SEC),
            'NX',
            'GET',
          ],
        },
        {
          name: 'authorize',
          note: 'authorize.lua as the switch sends a card tap on one Redis (the claim inside)',
          command: (run) => authorizeCommand(true, run),
        },
        {
          name: 'authorizeWithoutClaim',
          note: 'authorize.lua as the switch sends a card tap on a Redis Cluster (the claim sent before it)',
          command: (run) => authorizeCommand(false, run),
        },
      ];
      const perRound = new Map<string, number[]>();
      let runs = 0;
      // One unmeasured pass first: the key space and the AOF buffer grow to their working size.
      for (let round = -1; round < options.rounds; round++) {
        for (const subject of round % 2 === 0 ? subjects : [...subjects].reverse()) {
          await run('callgrind_control', ['-z', pid]);
          await run('redis-benchmark', [
            '-p',
            String(port),
            '-c',
            String(options.clients),
            '-n',
            String(options.calls),
            '-r',
            '2000000000',
            ...subject.command(runs++),
          ]);
          await run('callgrind_control', ['-d', pid]);
          const kPerCall = newestDumpTotal(dir) / options.calls / 1000;
          if (round < 0) continue;
          perRound.set(subject.name, [...(perRound.get(subject.name) ?? []), round1(kPerCall)]);
          log(`round ${round + 1}: ${subject.name} ${round1(kPerCall)}k instructions per call`);
        }
      }
      const result = subjects.map((s) => {
        const rounds = perRound.get(s.name) ?? [];
        return { name: s.name, note: s.note, rounds, kInstructionsPerCall: round1(median(rounds)) };
      });
      const k = (name: InstructionSubject['name']): number => result.find((s) => s.name === name)?.kInstructionsPerCall ?? NaN;
      return {
        calls: options.calls,
        clients: options.clients,
        subjects: result,
        perPaymentVsFloor: Math.round((k('authorize') / k('floor')) * 100) / 100,
        clusterPerPaymentVsFloor: Math.round(((k('authorizeWithoutClaim') + k('claim')) / k('floor')) * 100) / 100,
      };
    } finally {
      redis.disconnect();
    }
  } finally {
    server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      calls: { type: 'string', default: '2000' },
      rounds: { type: 'string', default: '2' },
      clients: { type: 'string', default: '16' },
      json: { type: 'string' },
    },
  });
  need('valgrind', ['--version'], 'apt-get install -y valgrind');
  need('redis-benchmark', ['--version'], 'apt-get install -y redis-tools');
  const calls = Number(values.calls);
  const rounds = Number(values.rounds);
  const clients = Number(values.clients);
  if (![calls, rounds, clients].every((n) => Number.isInteger(n) && n > 0))
    throw new Error('--calls, --rounds and --clients take whole numbers > 0');
  const result = await measureRedisInstructions({ calls, rounds, clients, log: (line) => process.stdout.write(`${line}\n`) });
  process.stdout.write('\nRedis instructions per call (thousands; callgrind, redis-benchmark, AOF appendfsync always):\n');
  for (const s of result.subjects)
    process.stdout.write(`  ${s.name.padEnd(22)} ${String(s.kInstructionsPerCall).padStart(7)}k  ${s.note}\n`);
  process.stdout.write(
    `  one payment on one Redis: ${result.perPaymentVsFloor}x the floor; on a Cluster (claim + script): ${result.clusterPerPaymentVsFloor}x\n`,
  );
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
