// Child processes of the bench (the switch, the no-op baseline server) and CPU accounting of the
// processes a run involves, from /proc (Linux), so the report can say who used the cores.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SWITCH_NODE_FLAGS } from '../../switch/app.js';

/** What the switch child's process.memoryUsage() says (after a full GC: it runs with --expose-gc). */
export interface MemoryReport {
  readonly rssBytes: number;
  /** V8's committed heap (free room included: its young generation grows and shrinks with the load). */
  readonly heapTotalBytes: number;
  readonly heapUsedBytes: number;
  readonly externalBytes: number;
  readonly arrayBuffersBytes: number;
  readonly gcRan: boolean;
}

/** One kind of the switch's garbage collections since the last report: how many, and their pauses. */
export interface GcPauses {
  readonly count: number;
  readonly totalMs: number;
  readonly maxMs: number;
}

/**
 * The switch child's garbage collections since it was last asked (node:perf_hooks 'gc' entries: each
 * entry's duration is the main thread's pause): scavenges (the young generation) and mark-compacts (the
 * whole heap; the pause that ends one, its marking ran beside the program).
 */
export interface GcReport {
  readonly scavenges: GcPauses;
  readonly markCompacts: GcPauses;
}

export type ChildToParent =
  | { readonly type: 'listening'; readonly port: number; readonly gatewayPort?: number }
  | ({ readonly type: 'memory' } & MemoryReport)
  | ({ readonly type: 'gc' } & GcReport);
export type ParentToChild = { readonly type: 'stop' } | { readonly type: 'memory' } | { readonly type: 'gc' };

export interface ServerChild {
  readonly port: number;
  /** The switch's HTTP/WebSocket gateway; undefined for the no-op server. */
  readonly gatewayPort: number | undefined;
  readonly pid: number;
  /** The child's own memory figures, or undefined when it does not answer within a few seconds. */
  memory(): Promise<MemoryReport | undefined>;
  /** The child's garbage collections since the last call (the first call: since it started); undefined when it does not answer. */
  gc(): Promise<GcReport | undefined>;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const EXTENSION = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

function tsxArgs(): string[] {
  return EXTENSION === '.ts' ? ['--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href] : [];
}

/** Forks `loadtest/bench/<name>` with the given environment and waits until it reports its port. */
/**
 * The compiled switch (`npm run build`), as production runs it: no TypeScript loader in the process.
 * Chosen with BENCH_SWITCH_COMPILED=1.
 */
function compiledChild(name: string): string | undefined {
  if (process.env['BENCH_SWITCH_COMPILED'] !== '1') return undefined;
  const file = fileURLToPath(new URL(`../../${EXTENSION === '.ts' ? 'dist/' : ''}loadtest/bench/${name}.js`, import.meta.url));
  if (!existsSync(file)) throw new Error(`BENCH_SWITCH_COMPILED=1 needs the build: run \`npm run build\` first (${file} is missing)`);
  return file;
}

/** `nodeArgs`: more Node flags for this child (after BENCH_SWITCH_NODE_ARGS). */
export async function startServerChild(
  name: 'switch-child' | 'noop-server',
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
): Promise<ServerChild> {
  const compiled = compiledChild(name);
  const file = compiled ?? fileURLToPath(new URL(`./${name}${EXTENSION}`, import.meta.url));
  const child = fork(file, [], {
    env: { ...process.env, ...env },
    // BENCH_SWITCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the switch under load.
    // SWITCH_NODE_FLAGS: as production starts it (switch/app.ts says why).
    // --expose-gc: the websockets scenario asks the switch for its memory after a full GC (exposing gc()
    // changes nothing else).
    execArgv: [
      ...(compiled === undefined ? tsxArgs() : []),
      ...(name === 'switch-child'
        ? ['--expose-gc', ...SWITCH_NODE_FLAGS, ...(process.env['BENCH_SWITCH_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '')]
        : []),
      ...nodeArgs,
    ],
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const listening = await waitForPort(child, name, () => stderr);
  return {
    port: listening.port,
    gatewayPort: listening.gatewayPort,
    pid: child.pid ?? 0,
    memory: () => askMemory(child),
    gc: () => askGc(child),
    stop: () => stopChild(child),
  };
}

const MEMORY_ANSWER_TIMEOUT_MS = 5000;

function askMemory(child: ChildProcess): Promise<MemoryReport | undefined> {
  return ask(child, 'memory', (m) => {
    const { rssBytes, heapTotalBytes, heapUsedBytes, externalBytes, arrayBuffersBytes, gcRan } = m;
    return { rssBytes, heapTotalBytes, heapUsedBytes, externalBytes, arrayBuffersBytes, gcRan };
  });
}

function askGc(child: ChildProcess): Promise<GcReport | undefined> {
  return ask(child, 'gc', ({ scavenges, markCompacts }) => ({ scavenges, markCompacts }));
}

/** Sends the child a question and resolves with its answer (`read` keeps the figures), undefined after a few seconds without one. */
function ask<K extends 'memory' | 'gc', R>(
  child: ChildProcess,
  type: K,
  read: (message: Extract<ChildToParent, { type: K }>) => R,
): Promise<R | undefined> {
  if (!child.connected) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const onMessage = (message: ChildToParent): void => {
      if (message.type !== type) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(read(message as Extract<ChildToParent, { type: K }>));
    };
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      resolve(undefined);
    }, MEMORY_ANSWER_TIMEOUT_MS);
    child.on('message', onMessage);
    child.send({ type } satisfies ParentToChild);
  });
}

function waitForPort(child: ChildProcess, name: string, stderr: () => string): Promise<{ port: number; gatewayPort: number | undefined }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not report a port within ${START_TIMEOUT_MS} ms: ${stderr()}`));
    }, START_TIMEOUT_MS);
    const onMessage = (message: ChildToParent): void => {
      if (message.type !== 'listening') return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve({ port: message.port, gatewayPort: message.gatewayPort });
    };
    child.on('message', onMessage);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it listened: ${stderr()}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop: ParentToChild = { type: 'stop' };
  if (child.connected) child.send(stop);
  else child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Clock ticks per second of /proc/<pid>/stat times; 100 on every Linux this runs on. */
const CLOCK_TICKS_PER_SEC = 100;

/** User + system CPU seconds a process has used so far; undefined when /proc is not there. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / CLOCK_TICKS_PER_SEC : undefined;
  } catch {
    return undefined;
  }
}

/** Live child processes of `pid` (all its threads' children), from /proc/<pid>/task/<tid>/children. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (list !== '') for (const child of list.split(' ')) out.push(Number(child));
    }
  } catch {
    // The process has gone, or this kernel has no children files: its own time is all there is.
  }
  return out;
}

/**
 * CPU seconds of a process and every live process below it, leaving out the subtrees of `others`
 * (processes measured on their own): the switch child forks cluster workers under
 * SWITCH_PROCESSES=N, and their time is the switch's time too; the bench process is the parent of
 * the switch and of Redis, whose time is theirs.
 */
export function processTreeCpuSeconds(pid: number, others: ReadonlySet<number> = new Set()): number | undefined {
  const own = processCpuSeconds(pid);
  if (own === undefined) return undefined;
  let total = own;
  for (const child of childPids(pid)) if (!others.has(child)) total += processTreeCpuSeconds(child, others) ?? 0;
  return total;
}

/**
 * Seconds a process's live threads have spent ready to run but waiting for a core (the second field of
 * /proc/<pid>/task/<tid>/schedstat, in ns), or undefined where the kernel does not keep it. Threads that
 * have exited take their time with them.
 */
export function processRunQueueSeconds(pid: number): number | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let ns = 0;
  let read = false;
  for (const tid of tids) {
    try {
      const waited = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
      if (Number.isFinite(waited)) {
        ns += waited;
        read = true;
      }
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return read ? ns / 1e9 : undefined;
}

/** Resident memory of a process and every process below it (VmRSS from /proc), or undefined. */
export function processTreeRssBytes(pid: number): number | undefined {
  let own: number | undefined;
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    own = match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
  if (own === undefined) return undefined;
  let total = own;
  for (const child of childPids(pid)) total += processTreeRssBytes(child) ?? 0;
  return total;
}

/**
 * Resident memory of one process by kind (/proc/<pid>/status): anonymous (heap, malloc, sockets' state)
 * and file-backed (the node binary's and libraries' pages, which the kernel may drop while they are cold
 * and read back when they are used: RSS moves with that, not with what the process holds).
 */
export function processRssByKind(pid: number): { anonBytes: number; fileBytes: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number | undefined => {
      const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status);
      return match === null ? undefined : Number(match[1]) * 1024;
    };
    const anonBytes = kb('RssAnon');
    const fileBytes = kb('RssFile');
    return anonBytes === undefined || fileBytes === undefined ? undefined : { anonBytes, fileBytes };
  } catch {
    return undefined;
  }
}

/** Quiet: every watched process used less than this share of a core over one sample. */
const QUIET_CORES = 0.15;
const QUIET_SAMPLE_MS = 250;

/**
 * Waits until the switch and Redis have finished what an earlier scenario left them (an overloaded
 * open-model run leaves thousands of calls the generator gave up on, which the switch still works
 * through): until one sample shows every process nearly idle, or `maxWaitMs` has passed. Returns how
 * long it waited and whether the processes went quiet.
 */
export async function quiesce(pids: Readonly<Record<string, number>>, maxWaitMs: number): Promise<{ waitedMs: number; quiet: boolean }> {
  const started = Date.now();
  for (;;) {
    const meter = new CpuMeter(pids);
    meter.start();
    await new Promise((resolve) => setTimeout(resolve, QUIET_SAMPLE_MS));
    const used = Object.values(meter.stop());
    if (used.every((cores) => cores === null || cores < QUIET_CORES)) return { waitedMs: Date.now() - started, quiet: true };
    if (Date.now() - started >= maxWaitMs) return { waitedMs: Date.now() - started, quiet: false };
  }
}

/**
 * CPU microseconds per unit of work (an answer, an approval) for each process, from the cores it used
 * over `seconds`; null where a process was not measured or nothing was done.
 */
export function cpuUsPer(cores: Readonly<Record<string, number | null>>, seconds: number, units: number): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [name, c] of Object.entries(cores)) out[name] = c === null || units <= 0 ? null : Math.round((c * seconds * 1e6) / units);
  return out;
}

/** Measures how many cores each named process (with its children) used between start() and stop(). */
export class CpuMeter {
  private readonly before = new Map<string, number | undefined>();
  private startedMs = 0;
  private readonly watched: ReadonlySet<number>;

  constructor(private readonly pids: Readonly<Record<string, number>>) {
    this.watched = new Set(Object.values(pids));
  }

  start(): void {
    this.startedMs = Date.now();
    for (const [name, pid] of Object.entries(this.pids)) {
      this.before.set(name, processTreeCpuSeconds(pid, this.watched));
      this.waitBefore.set(name, processRunQueueSeconds(pid));
    }
  }

  /** Seconds between start() and the last stop(). */
  elapsedSeconds = 0;

  /**
   * Per process, its threads' time ready to run but waiting for a core over the interval, as threads
   * waiting on average (0.5: half a thread's worth of waiting all the time); set by stop().
   */
  waiting: Record<string, number | null> = {};
  private readonly waitBefore = new Map<string, number | undefined>();

  /** Cores used (1.0 = one core fully busy) per process over the interval. */
  stop(): Record<string, number | null> {
    const seconds = Math.max(0.001, (Date.now() - this.startedMs) / 1000);
    this.elapsedSeconds = seconds;
    const out: Record<string, number | null> = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      const before = this.before.get(name);
      const after = processTreeCpuSeconds(pid, this.watched);
      out[name] = before === undefined || after === undefined ? null : Math.round(((after - before) / seconds) * 100) / 100;
      const waitBefore = this.waitBefore.get(name);
      const waitAfter = processRunQueueSeconds(pid);
      this.waiting[name] =
        waitBefore === undefined || waitAfter === undefined
          ? null
          : Math.round((Math.max(0, waitAfter - waitBefore) / seconds) * 1000) / 1000;
    }
    return out;
  }
}

/** A helper process of the bench (the HTTP load generator, the WebSocket holder): one request, one answer. */
export interface TaskChild<Request, Answer> {
  readonly pid: number;
  /** Sends `message` and waits for the child's next answer (a 'fatal' answer or the child's exit rejects). */
  request(message: Request, timeoutMs: number): Promise<Answer>;
  stop(): Promise<void>;
}

type TaskAnswer = { readonly type: string; readonly message?: string };

/** Forks `loadtest/bench/<name>` (which sends {type: 'ready'} first) and waits until it is ready. */
export async function startTaskChild<Request extends object, Answer extends TaskAnswer>(
  name: 'http-load' | 'ws-hold',
): Promise<TaskChild<Request, Answer>> {
  const file = fileURLToPath(new URL(`./${name}${EXTENSION}`, import.meta.url));
  const child = fork(file, [], { execArgv: tsxArgs(), stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const next = (timeoutMs: number): Promise<Answer> =>
    new Promise<Answer>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      const onMessage = (message: Answer): void => {
        done();
        if (message.type === 'fatal') reject(new Error(`${name}: ${message.message ?? 'failed'}`));
        else resolve(message);
      };
      const onExit = (code: number | null): void => {
        done();
        reject(new Error(`${name} exited (${code}) before it answered: ${stderr}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${name} did not answer within ${timeoutMs} ms: ${stderr}`));
      }, timeoutMs);
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  try {
    await next(START_TIMEOUT_MS);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    pid: child.pid ?? 0,
    request: (message, timeoutMs) => {
      const answer = next(timeoutMs);
      child.send(message);
      return answer;
    },
    stop: () => stopChild(child),
  };
}

/** The whole disks' counters (/sys/block/<disk>/stat, kernel 5.5+ for the flush fields), summed. */
interface DiskCounters {
  readonly writes: number;
  readonly writeMs: number;
  readonly flushes: number;
  readonly flushMs: number;
}

function diskCounters(): DiskCounters | undefined {
  let disks: string[];
  try {
    disks = readdirSync('/sys/block').filter((d) => !/^(loop|ram|zram)/.test(d));
  } catch {
    return undefined; // not Linux
  }
  let writes = 0;
  let writeMs = 0;
  let flushes = 0;
  let flushMs = 0;
  for (const disk of disks) {
    try {
      const f = readFileSync(`/sys/block/${disk}/stat`, 'utf8').trim().split(/\s+/).map(Number);
      writes += f[4] ?? 0;
      writeMs += f[7] ?? 0;
      flushes += f[15] ?? 0;
      flushMs += f[16] ?? 0;
    } catch {
      // a disk that went away meanwhile
    }
  }
  return { writes, writeMs, flushes, flushMs };
}

/** What the disks did over a scenario: with AOF `appendfsync always` each Redis event-loop turn that wrote ends in one fsync. */
export interface DiskReport {
  readonly flushesPerSec: number;
  /** The disks' own time per flush (the kernel's count, queueing included), in ms; null without flushes. */
  readonly msPerFlush: number | null;
  readonly writesPerSec: number;
  readonly msPerWrite: number | null;
}

/**
 * The whole machine's CPU over an interval in cores (/proc/stat's first line), so a scenario shows what its
 * processes' own CPU leaves out: the kernel's softirq work (loopback TCP between the generator, the switch
 * and Redis), other processes, and time the hypervisor gave to other guests (`steal`: the vCPU wanted to
 * run and was not run). They add up to the machine's cores.
 */
export interface MachineCpuReport {
  /** Not idle and not waiting on the disk: user + nice + system + irq + softirq. */
  readonly busy: number;
  readonly user: number;
  readonly system: number;
  readonly softirq: number;
  readonly iowait: number;
  readonly steal: number;
  readonly idle: number;
}

interface MachineTicks {
  readonly user: number;
  readonly system: number;
  readonly irq: number;
  readonly softirq: number;
  readonly iowait: number;
  readonly steal: number;
  readonly idle: number;
}

function machineTicks(): MachineTicks | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    if (f.length < 8 || f.some((n) => !Number.isFinite(n))) return undefined;
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    return { user: user + nice, system, irq, softirq, iowait, steal, idle };
  } catch {
    return undefined;
  }
}

/** The machine's CPU between start() and stop(), in cores (USER_HZ ticks, 100 a second). */
export class MachineCpuMeter {
  private before: MachineTicks | undefined;
  private startedMs = 0;

  start(): void {
    this.before = machineTicks();
    this.startedMs = Date.now();
  }

  /** null where /proc/stat cannot be read. */
  stop(): MachineCpuReport | null {
    const after = machineTicks();
    const b = this.before;
    if (b === undefined || after === undefined) return null;
    const seconds = Math.max(0.001, (Date.now() - this.startedMs) / 1000);
    const cores = (ticks: number): number => Math.round((ticks / 100 / seconds) * 100) / 100;
    const d = (k: keyof MachineTicks): number => Math.max(0, after[k] - b[k]);
    return {
      busy: cores(d('user') + d('system') + d('irq') + d('softirq')),
      user: cores(d('user')),
      system: cores(d('system')),
      softirq: cores(d('softirq') + d('irq')),
      iowait: cores(d('iowait')),
      steal: cores(d('steal')),
      idle: cores(d('idle')),
    };
  }
}

/** The machine's disks over an interval (all of them: the bench's Redis shares them with whatever else runs). */
export class DiskMeter {
  private before: DiskCounters | undefined;
  private startedMs = 0;

  start(): void {
    this.before = diskCounters();
    this.startedMs = Date.now();
  }

  /** null where /sys/block cannot be read. */
  stop(): DiskReport | null {
    const after = diskCounters();
    const b = this.before;
    if (b === undefined || after === undefined) return null;
    const seconds = Math.max(0.001, (Date.now() - this.startedMs) / 1000);
    const flushes = after.flushes - b.flushes;
    const writes = after.writes - b.writes;
    const per = (ms: number, n: number): number | null => (n > 0 ? Math.round((ms / n) * 1000) / 1000 : null);
    return {
      flushesPerSec: Math.round(flushes / seconds),
      msPerFlush: per(after.flushMs - b.flushMs, flushes),
      writesPerSec: Math.round(writes / seconds),
      msPerWrite: per(after.writeMs - b.writeMs, writes),
    };
  }
}
