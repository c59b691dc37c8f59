// Child processes of the bench (the switch, the no-op baseline server) and CPU accounting of the
// processes a run involves, from /proc (Linux), so the report can say who used the cores.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type ChildToParent = { readonly type: 'listening'; readonly port: number };
export type ParentToChild = { readonly type: 'stop' };

export interface ServerChild {
  readonly port: number;
  readonly pid: number;
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

export async function startServerChild(name: 'switch-child' | 'noop-server', env: Record<string, string>): Promise<ServerChild> {
  const compiled = compiledChild(name);
  const file = compiled ?? fileURLToPath(new URL(`./${name}${EXTENSION}`, import.meta.url));
  const child = fork(file, [], {
    env: { ...process.env, ...env },
    // BENCH_SWITCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the switch under load.
    execArgv: [...(compiled === undefined ? tsxArgs() : []), ...(name === 'switch-child' ? (process.env['BENCH_SWITCH_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '') : [])],
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const port = await waitForPort(child, name, () => stderr);
  return { port, pid: child.pid ?? 0, stop: () => stopChild(child) };
}

function waitForPort(child: ChildProcess, name: string, stderr: () => string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not report a port within ${START_TIMEOUT_MS} ms: ${stderr()}`));
    }, START_TIMEOUT_MS);
    child.once('message', (message: ChildToParent) => {
      clearTimeout(timer);
      resolve(message.port);
    });
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
function childPids(pid: number): number[] {
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
    for (const [name, pid] of Object.entries(this.pids)) this.before.set(name, processTreeCpuSeconds(pid, this.watched));
  }

  /** Cores used (1.0 = one core fully busy) per process over the interval. */
  stop(): Record<string, number | null> {
    const seconds = Math.max(0.001, (Date.now() - this.startedMs) / 1000);
    const out: Record<string, number | null> = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      const before = this.before.get(name);
      const after = processTreeCpuSeconds(pid, this.watched);
      out[name] = before === undefined || after === undefined ? null : Math.round(((after - before) / seconds) * 100) / 100;
    }
    return out;
  }
}
