// Issue 15 item 3: which Redis client should carry the switch's hot path? The switch's own lean client
// (switch/redis/pipeline-client.ts), ioredis (auto-pipelining, as app.ts sets it up) and node-redis v5
// (the `redis` package: raw sendCommand over RESP2 and RESP3, and its typed evalSha/set) each drive
// the Redis work of one card payment as the switch sends it on a Redis Cluster (and sent it everywhere
// when this comparison was made): the sequence claim (SET NX GET EX on the terminal's slot), then FCALL
// authorize.lua with Ledger.authorizeArguments' KEYS and ARGV. On one Redis the switch now sends the
// claim inside the script (one command per payment): each client's cost per command is what compares.
// What is compared is the CPU the client process spends per payment (process.cpuUsage(), user + sys:
// the client's encoding, socket writes and reads, reply parsing, promises; building the arguments is
// the same code for all; the `none` row prices it: a client that answers at once without Redis),
// measured in a fresh child process per run so no client's JIT state or garbage lands in another's,
// and alternated (each round runs every client, the order rotated).
//
//   npx tsx loadtest/bench/redis-clients.ts [--rounds 3] [--payments 30000] [--in-flight 128] [--fsync always]
//
// A private redis-server (AOF, --fsync as given) serves every run; each run pays with its own cards.
// This measures the client alone, not a switch built on it (the switch keeps the lean client: see
// loadtest/RESULTS.md for the decision and the numbers).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { mapBounded } from '../../switch/data/import.js';
import { Keys } from '../../switch/ledger/keys.js';
import { Ledger, type HolderLimits } from '../../switch/ledger/ledger.js';
import { Scripts } from '../../switch/ledger/scripts.js';
import { PipelineClient } from '../../switch/redis/pipeline-client.js';
import { startLocalRedis } from '../../switch/redis/local-redis.js';
import { benchAccountFields } from './campus.js';

export const CLIENTS = ['none', 'lean', 'ioredis', 'node-redis', 'node-redis-resp3', 'node-redis-typed'] as const;
export type ClientName = (typeof CLIENTS)[number];

const PREFIX = 'RC';
const SHARDS = 256;
const REQUEST_TTL_SEC = 3600;
const CARDS_PER_RUN = 512;
const WARMUP_PAYMENTS = 3000;
const LIMITS: { student: HolderLimits; staff: HolderLimits } = {
  student: { noPinPerPaymentFen: 1_000_000, noPinPerDayFen: 1_000_000_000_000, dailySpendLimitFen: 0 },
  staff: { noPinPerPaymentFen: 1_000_000, noPinPerDayFen: 1_000_000_000_000, dailySpendLimitFen: 0 },
};

/** Sends one command, resolves with its reply. */
type Send = (args: readonly (string | number)[]) => Promise<unknown>;

interface Driver {
  readonly claim: (key: string, owner: string) => Promise<unknown>;
  readonly authorize: (functionName: string, keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>;
  readonly close: () => Promise<void> | void;
}

function rawDriver(send: Send, close: () => Promise<void> | void): Driver {
  return {
    claim: (key, owner) => send(['SET', key, owner, 'EX', REQUEST_TTL_SEC, 'NX', 'GET']),
    authorize: (functionName, keys, args) => send(['FCALL', functionName, keys.length, ...keys, ...args]),
    close,
  };
}

async function driverFor(name: ClientName, url: string): Promise<Driver> {
  const parsed = new URL(url);
  if (name === 'none') {
    // No client at all: what building the arguments and the lanes' promises cost, to subtract from the others.
    return { claim: () => Promise.resolve(null), authorize: () => Promise.resolve('1|0|0-0|0'), close: () => undefined };
  }
  if (name === 'lean') {
    const log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
    const client = new PipelineClient({
      host: parsed.hostname,
      port: Number(parsed.port),
      commandTimeoutMs: 10_000,
      connectTimeoutMs: 5000,
      maxPending: 100_000,
      log: log as unknown as ConstructorParameters<typeof PipelineClient>[0]['log'],
    });
    await client.connect();
    return rawDriver(
      (args) => client.command(args),
      () => client.close(),
    );
  }
  if (name === 'ioredis') {
    // As app.ts makes the switch's ioredis client.
    const client = new Redis(url, { enableAutoPipelining: true, maxRetriesPerRequest: 0, lazyConnect: true });
    await client.connect();
    return {
      claim: (key, owner) => client.set(key, owner, 'EX', REQUEST_TTL_SEC, 'NX', 'GET'),
      authorize: (functionName, keys, args) => client.fcall(functionName, keys.length, ...keys, ...args),
      close: () => client.disconnect(),
    };
  }
  const client = createClient({ url, RESP: name === 'node-redis-resp3' ? 3 : 2 });
  client.on('error', () => undefined);
  await client.connect();
  if (name === 'node-redis-typed') {
    return {
      claim: (key, owner) => client.set(key, owner, { expiration: { type: 'EX', value: REQUEST_TTL_SEC }, condition: 'NX', GET: true }),
      authorize: (functionName, keys, args) => client.fCall(functionName, { keys: [...keys], arguments: args.map(String) }),
      close: async () => void (await client.quit()),
    };
  }
  return rawDriver(
    (args) => client.sendCommand(args.map(String)),
    async () => void (await client.quit()),
  );
}

interface RunResult {
  readonly client: ClientName;
  readonly payments: number;
  readonly approvals: number;
  readonly errors: number;
  readonly errorSample: string;
  readonly elapsedMs: number;
  readonly paymentsPerSec: number;
  /** The client process's CPU per payment (user + sys), µs. */
  readonly cpuUsPerPayment: number;
}

/** One run in this process: open its cards, warm up, then `payments` payments with `inFlight` lanes. */
async function childRun(name: ClientName, url: string, run: number, payments: number, inFlight: number): Promise<RunResult> {
  const admin = new Redis(url, { maxRetriesPerRequest: 0, lazyConnect: true });
  await admin.connect();
  const keys = new Keys(PREFIX, SHARDS);
  const scripts = await Scripts.load(admin);
  const ledger = new Ledger(keys, scripts, REQUEST_TTL_SEC);
  const cards = Array.from({ length: CARDS_PER_RUN }, (_, i) => ({
    cardNo: String(70_000_000 + run * CARDS_PER_RUN + i),
    serial: (0x7000_0000 + run * CARDS_PER_RUN + i).toString(16).toUpperCase(),
  }));
  await mapBounded(cards, 64, (c) =>
    ledger.openAccount({ cardNo: c.cardNo, openingFen: 1_000_000_000, fields: benchAccountFields(c.serial) }),
  );
  const { functionName } = await ledger.prepareAuthorize(LIMITS);
  const driver = await driverFor(name, url);
  const terminal = `RC-${run}`;
  let sequence = 0;
  let approvals = 0;
  let errors = 0;
  let errorSample = '';
  const pay = async (): Promise<void> => {
    const seq = ++sequence;
    const card = cards[seq % cards.length] ?? cards[0];
    if (card === undefined) return;
    try {
      await driver.claim(keys.sequenceClaim(terminal, seq), card.cardNo);
      const { keys: k, args } = ledger.authorizeArguments(
        {
          cardNo: card.cardNo,
          presentedSerial: card.serial,
          amountFen: 1250,
          credentialKind: 'card',
          terminalId: terminal,
          sequence: seq,
          merchantId: 'BENCH',
          pinVerified: false,
          limits: LIMITS,
        },
        Date.now(),
      );
      const reply = String(await driver.authorize(functionName, k, args));
      if (reply.startsWith('1|')) approvals++;
    } catch (err) {
      errors++;
      errorSample ||= (err as Error).message;
    }
  };
  const drive = async (count: number): Promise<void> => {
    let left = count;
    const lane = async (): Promise<void> => {
      while (left > 0) {
        left--;
        await pay();
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
  };
  await drive(WARMUP_PAYMENTS);
  approvals = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await drive(payments);
  const elapsedMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  await driver.close();
  admin.disconnect();
  return {
    client: name,
    payments,
    approvals,
    errors,
    errorSample,
    elapsedMs: Math.round(elapsedMs),
    paymentsPerSec: Math.round((payments / elapsedMs) * 1000),
    cpuUsPerPayment: Math.round(((used.user + used.system) / payments) * 10) / 10,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      url: { type: 'string' },
      run: { type: 'string' },
      rounds: { type: 'string' },
      payments: { type: 'string' },
      'in-flight': { type: 'string' },
      fsync: { type: 'string' },
      clients: { type: 'string' },
    },
  });
  const payments = Number(values.payments ?? 30_000);
  const inFlight = Number(values['in-flight'] ?? 128);
  if (values.child !== undefined) {
    const result = await childRun(values.child as ClientName, values.url ?? '', Number(values.run), payments, inFlight);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const rounds = Number(values.rounds ?? 3);
  const clients = (values.clients?.split(',') ?? [...CLIENTS]) as ClientName[];
  const fsync = (values.fsync ?? 'always') as 'always' | 'everysec' | 'no';
  const dataDir = mkdtempSync(join(tmpdir(), 'redis-clients-'));
  const local = await startLocalRedis({ dataDir, port: 0, appendOnly: true, appendFsync: fsync, startTimeoutMs: 10_000 });
  const results: RunResult[] = [];
  try {
    let run = 0;
    for (let round = 0; round < rounds; round++) {
      // Rotated, so no client always runs first or right after another.
      const order = clients.map((_, i) => clients[(i + round) % clients.length] as ClientName);
      for (const name of order) {
        const out = execFileSync(
          process.execPath,
          [
            '--import',
            'tsx',
            new URL(import.meta.url).pathname,
            '--child',
            name,
            '--url',
            local.url,
            '--run',
            String(run++),
            '--payments',
            String(payments),
            '--in-flight',
            String(inFlight),
          ],
          { encoding: 'utf8', maxBuffer: 1 << 20 },
        );
        const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as RunResult;
        results.push(result);
        process.stdout.write(
          `round ${round + 1} ${name.padEnd(18)} ${String(result.cpuUsPerPayment).padStart(7)} µs CPU per payment  ${String(result.paymentsPerSec).padStart(6)}/s  approvals ${result.approvals}/${result.payments}  errors ${result.errors}${result.errorSample ? ` (${result.errorSample})` : ''}\n`,
        );
      }
    }
  } finally {
    await local.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  const lean = median(results.filter((r) => r.client === 'lean').map((r) => r.cpuUsPerPayment));
  const none = clients.includes('none') ? median(results.filter((r) => r.client === 'none').map((r) => r.cpuUsPerPayment)) : 0;
  process.stdout.write(`\nmedian CPU µs per payment (claim + authorize), ${rounds} rounds, ${inFlight} in flight, fsync ${fsync}:\n`);
  for (const name of clients) {
    const m = median(results.filter((r) => r.client === name).map((r) => r.cpuUsPerPayment));
    const rate = median(results.filter((r) => r.client === name).map((r) => r.paymentsPerSec));
    const own = m - none;
    process.stdout.write(
      `  ${name.padEnd(18)} ${String(m).padStart(7)} µs  (${(m / lean).toFixed(3)} x lean; the client's own ${own.toFixed(1)} µs = ${(own / (lean - none)).toFixed(3)} x lean's)  ${rate}/s\n`,
    );
  }
  process.stdout.write(`${JSON.stringify({ rounds, payments, inFlight, fsync, results })}\n`);
}

await main();
