// The websockets scenario: N idle live-event sockets (/api/v1/events) held open at once by a child
// process (ws-hold.ts), each with a session of its own over the bound cards. It checks that all N are
// open at the same time, on both sides (the clients' count and the server's cardswitch_websockets_open
// gauge on /metrics), and measures what they cost the gateway's process: its memory before, while they
// are held, and after they closed, each after a full GC (process.memoryUsage() reported by the switch
// child) once its RSS has settled, so garbage and pages still being handed back are not counted.
//
// The bench runs it on a switch process of its own, started for it (same Redis, same secrets) with V8's
// young generation held at 1 MB (--max-semi-space-size=1): in the switch that carried the earlier
// scenarios, and in a fresh one too, V8 grows its young generation to tens of MB under the upgrades'
// allocation and gives it back seconds later, which moved RSS by +-15 MB (+-1.5 KB a socket) in runs
// with 10,000 sockets, whatever the sockets held. A warm-up round opens and closes a few hundred sockets
// first, so the upgrade path is compiled and its buffers allocated before `before`.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CpuMeter,
  processRssByKind,
  processTreeRssBytes,
  quiesce,
  startTaskChild,
  type MemoryReport,
  type TaskChild,
} from './processes.js';
import type { ParentToWsChild, WsChildToParent, WsClosed, WsOpened, WsOpenSettings } from './ws-hold.js';

const QUIESCE_MAX_MS = 30_000;
const HANDSHAKE_TIMEOUT_MS = 15_000;
const CLOSE_TIMEOUT_MS = 15_000;
const METRICS_TIMEOUT_MS = 5000;
/** Memory is read once a second until RSS moves less than this between reads (or SETTLE_MAX_MS passed). */
const SETTLED_RSS_BYTES = 512 * 1024;
const SETTLE_INTERVAL_MS = 1000;

export interface MemorySample extends MemoryReport {
  /** 'switch' (its process.memoryUsage(), after a GC), or 'proc' (VmRSS of the process tree: no heap figure). */
  readonly source: 'switch' | 'proc';
  /** RSS by kind from /proc/<pid>/status (RssAnon, RssFile); null when /proc cannot say. */
  readonly rssAnonBytes: number | null;
  readonly rssFileBytes: number | null;
  /** Reads it took for RSS to settle (see settledMemory). */
  readonly reads: number;
}

export interface WebSocketsResult {
  readonly requested: number;
  /** Bound cards the sockets are spread over; each socket has a session of its own. */
  readonly cards: number;
  readonly opened: number;
  /** Sockets whose first message was the server's {"type":"hello"} (by the time they were closed). */
  readonly helloReceived: number;
  readonly failed: number;
  readonly failureSamples: string[];
  readonly openingMs: number;
  readonly openRatePerSec: number;
  /** The settings: new sockets per second at most, handshakes in flight at most. */
  readonly openRateLimitPerSec: number;
  readonly openConcurrency: number;
  /** The server's cardswitch_websockets_open right after the last one opened, and at the end of the hold. */
  readonly serverOpenAfterOpening: number | null;
  readonly serverOpenAfterHold: number | null;
  readonly serverOpenAfterClose: number | null;
  /** How long they were held: the hold time and the memory reads. */
  readonly heldMs: number;
  readonly closedWhileHeld: number;
  /** Every socket open at the same time, on the clients' side and by the server's own count. */
  readonly allOpenAtOnce: boolean;
  readonly memory: { readonly before: MemorySample | null; readonly held: MemorySample | null; readonly afterClose: MemorySample | null };
  /** RSS growth of the gateway's process per open socket: (held - before) / opened. */
  readonly wsBytesPerSocket: number | null;
  /** Anonymous RSS growth per socket (RssAnon: without the file-backed pages the kernel drops and reads back). */
  readonly wsAnonBytesPerSocket: number | null;
  /** The same outside V8's heap (RSS - heapTotal: uWS's sockets and buffers, everything malloc'd). */
  readonly wsNativeBytesPerSocket: number | null;
  /** V8 heap in use after a full GC (the JS objects kept per socket). */
  readonly wsHeapBytesPerSocket: number | null;
  /**
   * Native + heap in use: what the sockets hold, without the free room V8 keeps committed (its young
   * generation grows under load and shrinks seconds later by tens of MB, which moves RSS either way).
   */
  readonly wsRetainedBytesPerSocket: number | null;
  /** Cores used while the sockets were being opened (each upgrade checks a session token). */
  readonly openingCpuCores: Record<string, number | null>;
}

export interface WebSocketsContext {
  readonly host: string;
  readonly gatewayPort: number;
  readonly switchPid: number;
  readonly pids: Readonly<Record<string, number>>;
  /** One per socket. */
  readonly tokens: readonly string[];
  readonly cards: number;
  readonly openRatePerSec: number;
  readonly concurrency: number;
  readonly holdMs: number;
  /** The switch's own memory report; undefined when it cannot give one (then /proc is read). */
  readonly memory: () => Promise<MemoryReport | undefined>;
  /** How long to wait for RSS to settle before each memory figure (0: read once, as --quick does). */
  readonly settleMaxMs: number;
  /** Sockets of the warm-up round (the first tokens), opened and closed before the measured round. */
  readonly warmupSockets: number;
}

async function memorySample(ctx: WebSocketsContext): Promise<Omit<MemorySample, 'reads'> | null> {
  const own = await ctx.memory();
  const kinds = processRssByKind(ctx.switchPid);
  const byKind = { rssAnonBytes: kinds?.anonBytes ?? null, rssFileBytes: kinds?.fileBytes ?? null };
  if (own !== undefined) return { ...own, ...byKind, source: 'switch' };
  const rss = processTreeRssBytes(ctx.switchPid);
  return rss === undefined
    ? null
    : {
        rssBytes: rss,
        heapTotalBytes: 0,
        heapUsedBytes: 0,
        externalBytes: 0,
        arrayBuffersBytes: 0,
        gcRan: false,
        ...byKind,
        source: 'proc',
      };
}

/**
 * The switch's memory once its RSS has stopped moving: after a load, V8 and the allocator hand pages
 * back over several seconds (in one run RSS fell 30 MB while 10,000 sockets were being opened), which
 * would hide what the sockets add. Read once a second until two reads are within 512 KiB.
 */
async function settledMemory(ctx: WebSocketsContext): Promise<MemorySample | null> {
  const started = Date.now();
  let previous = await memorySample(ctx);
  let reads = 1;
  while (previous !== null && Date.now() - started < ctx.settleMaxMs) {
    await sleep(SETTLE_INTERVAL_MS);
    const current = await memorySample(ctx);
    reads++;
    if (current === null) break;
    const moved = Math.abs(current.rssBytes - previous.rssBytes);
    previous = current;
    if (moved < SETTLED_RSS_BYTES) break;
  }
  return previous === null ? null : { ...previous, reads };
}

/** cardswitch_websockets_open from the gateway's /metrics, or null when it cannot be read. */
async function serverOpenSockets(ctx: WebSocketsContext): Promise<number | null> {
  try {
    const response = await fetch(`http://${ctx.host}:${ctx.gatewayPort}/metrics`, { signal: AbortSignal.timeout(METRICS_TIMEOUT_MS) });
    const match = /^cardswitch_websockets_open(?:\{[^}]*\})? (\d+)/m.exec(await response.text());
    return match === null ? null : Number(match[1]);
  } catch {
    return null;
  }
}

type MemoryMeasure = (m: MemorySample) => number;
const RSS: MemoryMeasure = (m) => m.rssBytes;
const ANON: MemoryMeasure = (m) => m.rssAnonBytes ?? Number.NaN;
const NATIVE: MemoryMeasure = (m) => m.rssBytes - m.heapTotalBytes;
const HEAP_USED: MemoryMeasure = (m) => m.heapUsedBytes;
const RETAINED: MemoryMeasure = (m) => m.rssBytes - m.heapTotalBytes + m.heapUsedBytes;

function perSocket(held: MemorySample | null, before: MemorySample | null, measure: MemoryMeasure, opened: number): number | null {
  if (held === null || before === null || opened === 0) return null;
  if (measure !== RSS && measure !== ANON && held.source !== 'switch') return null;
  const grown = (measure(held) - measure(before)) / opened;
  return Number.isFinite(grown) ? Math.round(grown) : null;
}

type WsChild = TaskChild<ParentToWsChild, WsChildToParent>;

function openSettings(ctx: WebSocketsContext, tokens: readonly string[]): WsOpenSettings {
  return {
    url: `ws://${ctx.host}:${ctx.gatewayPort}/api/v1/events`,
    tokens,
    concurrency: ctx.concurrency,
    ratePerSec: ctx.openRatePerSec,
    handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  };
}

function openBudgetMs(ctx: WebSocketsContext, sockets: number): number {
  return (sockets / ctx.openRatePerSec) * 1000 * 4 + HANDSHAKE_TIMEOUT_MS + 30_000;
}

async function warmUp(ctx: WebSocketsContext, child: WsChild): Promise<void> {
  const tokens = ctx.tokens.slice(0, ctx.warmupSockets);
  if (tokens.length === 0) return;
  await child.request({ type: 'open', settings: openSettings(ctx, tokens) }, openBudgetMs(ctx, tokens.length));
  await child.request({ type: 'close', timeoutMs: CLOSE_TIMEOUT_MS }, CLOSE_TIMEOUT_MS + 10_000);
}

export async function runWebSockets(ctx: WebSocketsContext): Promise<WebSocketsResult> {
  const child = await startTaskChild<ParentToWsChild, WsChildToParent>('ws-hold');
  try {
    await warmUp(ctx, child);
    await quiesce(ctx.pids, QUIESCE_MAX_MS);
    const before = await settledMemory(ctx);
    const meter = new CpuMeter({ ...ctx.pids, ws: child.pid });
    meter.start();
    const openedAnswer = await child.request(
      { type: 'open', settings: openSettings(ctx, ctx.tokens) },
      openBudgetMs(ctx, ctx.tokens.length),
    );
    const openingCpuCores = meter.stop();
    if (openedAnswer.type !== 'opened') throw new Error(`ws-hold answered ${openedAnswer.type}`);
    const opened: WsOpened = openedAnswer.opened;
    const serverOpenAfterOpening = await serverOpenSockets(ctx);
    const holdStarted = Date.now();
    await sleep(ctx.holdMs);
    const held = await settledMemory(ctx);
    const serverOpenAfterHold = await serverOpenSockets(ctx);
    const heldMs = Date.now() - holdStarted;
    const closedAnswer = await child.request({ type: 'close', timeoutMs: CLOSE_TIMEOUT_MS }, CLOSE_TIMEOUT_MS + 10_000);
    if (closedAnswer.type !== 'closed') throw new Error(`ws-hold answered ${closedAnswer.type}`);
    const closed: WsClosed = closedAnswer.closed;
    await quiesce(ctx.pids, QUIESCE_MAX_MS);
    const serverOpenAfterClose = await serverOpenSockets(ctx);
    const afterClose = await settledMemory(ctx);
    const n = ctx.tokens.length;
    return {
      requested: n,
      cards: ctx.cards,
      opened: opened.opened,
      helloReceived: closed.helloReceived,
      failed: opened.failed,
      failureSamples: opened.failureSamples,
      openingMs: opened.elapsedMs,
      openRatePerSec: Math.round((opened.opened / Math.max(0.001, opened.elapsedMs / 1000)) * 10) / 10,
      openRateLimitPerSec: ctx.openRatePerSec,
      openConcurrency: ctx.concurrency,
      serverOpenAfterOpening,
      serverOpenAfterHold,
      serverOpenAfterClose,
      heldMs,
      closedWhileHeld: closed.closedWhileHeld,
      allOpenAtOnce: opened.opened === n && closed.closedWhileHeld === 0 && serverOpenAfterHold !== null && serverOpenAfterHold >= n,
      memory: { before, held, afterClose },
      wsBytesPerSocket: perSocket(held, before, RSS, opened.opened),
      wsAnonBytesPerSocket: perSocket(held, before, ANON, opened.opened),
      wsNativeBytesPerSocket: perSocket(held, before, NATIVE, opened.opened),
      wsHeapBytesPerSocket: perSocket(held, before, HEAP_USED, opened.opened),
      wsRetainedBytesPerSocket: perSocket(held, before, RETAINED, opened.opened),
      openingCpuCores,
    };
  } finally {
    await child.stop();
  }
}
