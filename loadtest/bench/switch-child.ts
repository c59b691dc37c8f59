// The switch under test in its own process (the bench's default), so the load generator's threads and
// the harness never share the switch's event loop or heap. Configured by environment variables exactly
// as `npm start` is (switch/config.ts); reports its gRPC and gateway ports to the parent over IPC, and
// its memory when asked (after a full GC: the bench starts it with --expose-gc). With
// SWITCH_PROCESSES=N > 1 it runs N switch processes on one port through node:cluster, as
// switch/main.ts does in production.
import cluster from 'node:cluster';
import { constants as perfConstants, monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { appendFileSync } from 'node:fs';
import { startSwitch } from '../../switch/app.js';
import { loadConfig } from '../../switch/config.js';
import { createLogger } from '../../switch/log.js';
import { channelsFromSpec, type BenchChannelsSpec } from './channels.js';
import type { ChildToParent, GcPauses, GcReport, MemoryReport, ParentToChild } from './processes.js';

/** process.memoryUsage() after a full GC when gc() is exposed, so garbage does not count as growth. */
function memoryReport(): MemoryReport {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const m = process.memoryUsage();
  return {
    rssBytes: m.rss,
    heapTotalBytes: m.heapTotal,
    heapUsedBytes: m.heapUsed,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
    gcRan: gc !== undefined,
  };
}

/** Counts this process's garbage collections and their pauses until `take` hands them over and starts again. */
class GcTally {
  private scavenges = { count: 0, totalMs: 0, maxMs: 0 };
  private markCompacts = { count: 0, totalMs: 0, maxMs: 0 };
  private readonly observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) this.add(entry);
  });

  constructor() {
    this.observer.observe({ entryTypes: ['gc'] });
  }

  private add(entry: PerformanceEntry): void {
    const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
    const tally =
      kind === perfConstants.NODE_PERFORMANCE_GC_MINOR
        ? this.scavenges
        : kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR
          ? this.markCompacts
          : undefined;
    if (tally === undefined) return; // incremental marking steps and weak callbacks: not pauses of their own here
    tally.count++;
    tally.totalMs += entry.duration;
    tally.maxMs = Math.max(tally.maxMs, entry.duration);
  }

  take(): GcReport {
    // Entries reach the observer's callback a turn late: the ones already made count in this window.
    for (const entry of this.observer.takeRecords()) this.add(entry);
    const round = (p: GcPauses): GcPauses => ({
      count: p.count,
      totalMs: Math.round(p.totalMs * 10) / 10,
      maxMs: Math.round(p.maxMs * 10) / 10,
    });
    const report = { scavenges: round(this.scavenges), markCompacts: round(this.markCompacts) };
    this.scavenges = { count: 0, totalMs: 0, maxMs: 0 };
    this.markCompacts = { count: 0, totalMs: 0, maxMs: 0 };
    return report;
  }
}

const processes = Number(process.env['SWITCH_PROCESSES'] ?? '1');

function runPrimaryOfCluster(): void {
  let ready = 0;
  let port = 0;
  // With GATEWAY_PORT=0 each worker's gateway has a port of its own: the last one reported is used.
  let gatewayPort: number | undefined;
  for (let i = 0; i < processes; i++) {
    const worker = cluster.fork();
    worker.on('message', (m: { port?: number; gatewayPort?: number }) => {
      if (m.port === undefined) return;
      port = m.port;
      gatewayPort = m.gatewayPort;
      if (++ready === processes) process.send?.({ type: 'listening', port, gatewayPort } satisfies ChildToParent);
    });
  }
  const stop = (): void => {
    const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
    let left = workers.length;
    for (const w of workers) {
      w.once('exit', () => {
        if (--left === 0) process.exit(0);
      });
      w.send({ type: 'stop' });
    }
  };
  process.on('message', (message: ParentToChild) => {
    if (message.type === 'stop') stop();
  });
  process.on('disconnect', stop);
}

async function runSwitch(): Promise<void> {
  const config = loadConfig(process.env);
  const log = createLogger(config.logLevel, 'bench-switch');
  // BENCH_CHANNELS: the bench's channel simulators (channels.ts), as npm start wires its own; unset: none.
  const channelsJson = process.env['BENCH_CHANNELS'];
  const channels = channelsJson === undefined ? undefined : channelsFromSpec(JSON.parse(channelsJson) as BenchChannelsSpec, log);
  const app = await startSwitch(config, log, Date.now, channels === undefined ? {} : { channels });
  // The bench asks for these around each scenario (loadtest/README.md, `switchGc`).
  const gcTally = cluster.isWorker ? undefined : new GcTally();
  // Event-loop delay of the switch under load, reported to stderr when it stops (BENCH_SWITCH_ELD=1).
  const loopDelay = process.env['BENCH_SWITCH_ELD'] === '1' ? monitorEventLoopDelay({ resolution: 5 }) : undefined;
  loopDelay?.enable();
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    if (loopDelay !== undefined) {
      const ms = (ns: number): string => (ns / 1e6).toFixed(1);
      appendFileSync(
        process.env['BENCH_SWITCH_ELD_FILE'] ?? '/dev/stderr',
        `switch event-loop delay ms: p50 ${ms(loopDelay.percentile(50))} p99 ${ms(loopDelay.percentile(99))} max ${ms(loopDelay.max)}\n`,
      );
    }
    app.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'switch stop failed');
        process.exit(1);
      },
    );
  };
  process.on('message', (message: ParentToChild) => {
    if (message.type === 'stop') stop();
    else if (message.type === 'memory' && !cluster.isWorker) process.send?.({ type: 'memory', ...memoryReport() } satisfies ChildToParent);
    else if (message.type === 'gc' && gcTally !== undefined) process.send?.({ type: 'gc', ...gcTally.take() } satisfies ChildToParent);
  });
  // The harness (or the cluster primary) died or was killed: do not outlive it.
  process.on('disconnect', stop);
  if (cluster.isWorker) process.send?.({ port: app.grpcPort, gatewayPort: app.gateway?.port });
  else process.send?.({ type: 'listening', port: app.grpcPort, gatewayPort: app.gateway?.port } satisfies ChildToParent);
}

if (cluster.isPrimary && processes > 1) runPrimaryOfCluster();
else await runSwitch();
