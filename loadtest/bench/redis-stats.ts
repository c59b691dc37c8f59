// What Redis itself did during a scenario, from INFO before and after: calls of the ledger scripts and
// the time Redis spent executing them, the live-event commands (XADD, PUBLISH) the scripts of bound
// cards add, and the footprint per approval (issue 15): Redis's own CPU (`used_cpu_sys` +
// `used_cpu_user`, AOF writes and fsyncs included), the bytes appended to the AOF (`aof_current_size`)
// and the memory added (`used_memory`: journal entries, statement lines, request records, sequence
// claims). Redis 7 counts the commands a script runs under their own names as well as inside the
// script's time, so the script figure is the whole cost and the others say what ran in it.
import type { Redis } from 'ioredis';

export interface CommandCounts {
  readonly calls: number;
  readonly usec: number;
}

/** One reading of INFO: commandstats, and the persistence, memory and CPU figures. */
export interface CommandStats {
  readonly commands: ReadonlyMap<string, CommandCounts>;
  /** aof_current_size (bytes; it drops when a rewrite finishes) and aof_rewrites (count since start). */
  readonly aofBytes: number;
  readonly aofRewrites: number;
  readonly aofRewriteInProgress: boolean;
  readonly usedMemoryBytes: number;
  /** used_cpu_sys + used_cpu_user, seconds. */
  readonly cpuSeconds: number;
}

export interface RedisScenarioStats {
  /** EVAL / EVALSHA / FCALL calls (the payment script, and any other ledger script the scenario ran). */
  readonly scriptCalls: number;
  /** Microseconds Redis spent inside those calls (the commands they ran included), per call. */
  readonly scriptUsPerCall: number | null;
  /** The same time per approval of the scenario (null without approvals). */
  readonly scriptUsPerApproval: number | null;
  /** PUBLISH calls: one per payment of a bound card (its live event's doorbell), none for the others. */
  readonly publishes: number;
  /** XADD calls: the journal entry of each approval, and the live event of each payment of a bound card. */
  readonly xadds: number;
  /** SET calls (sequence claims, campus QR single-use marks) per approval. */
  readonly setsPerApproval: number | null;
  /** Redis's own CPU per approval (INFO used_cpu_*), µs: all the scenario's commands, AOF write and fsync included. */
  readonly cpuUsPerApproval: number | null;
  /** Bytes appended to the AOF per approval (null when a rewrite ran meanwhile: the size then restarts). */
  readonly aofBytesPerApproval: number | null;
  /** used_memory added per approval, bytes (what the ledger keeps: journal, statement, request record, claim). */
  readonly memoryBytesPerApproval: number | null;
  /**
   * AOF rewrites that started or ran during the scenario (Redis forks a child that rewrites the whole
   * file on the same cores; the AOF bytes per approval are then null, and latency may show it).
   */
  readonly aofRewrites: number;
}

function infoNumber(text: string, field: string): number {
  const match = new RegExp(`^${field}:([0-9.]+)`, 'm').exec(text);
  return match === null ? 0 : Number(match[1]);
}

/** INFO commandstats, persistence, memory and cpu in one call. */
export async function commandStats(redis: Redis): Promise<CommandStats> {
  const text = String(await redis.call('INFO', 'commandstats', 'persistence', 'memory', 'cpu'));
  const commands = new Map<string, CommandCounts>();
  for (const line of text.split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (match !== null) commands.set(match[1] ?? '', { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return {
    commands,
    aofBytes: infoNumber(text, 'aof_current_size'),
    aofRewrites: infoNumber(text, 'aof_rewrites'),
    aofRewriteInProgress: infoNumber(text, 'aof_rewrite_in_progress') === 1,
    usedMemoryBytes: infoNumber(text, 'used_memory'),
    cpuSeconds: infoNumber(text, 'used_cpu_sys') + infoNumber(text, 'used_cpu_user'),
  };
}

function delta(before: CommandStats, after: CommandStats, name: string): CommandCounts {
  const a = after.commands.get(name) ?? { calls: 0, usec: 0 };
  const b = before.commands.get(name) ?? { calls: 0, usec: 0 };
  return { calls: a.calls - b.calls, usec: a.usec - b.usec };
}

function per(value: number, approvals: number, digits = 10): number | null {
  return approvals === 0 ? null : Math.round((value / approvals) * digits) / digits;
}

/** The footprint of some work between two readings, per unit (approval or call). */
export function footprint(
  before: CommandStats,
  after: CommandStats,
  units: number,
): { cpuUsPer: number | null; aofBytesPer: number | null; memoryBytesPer: number | null } {
  const rewrote = after.aofRewrites !== before.aofRewrites || after.aofRewriteInProgress || before.aofRewriteInProgress;
  return {
    cpuUsPer: per((after.cpuSeconds - before.cpuSeconds) * 1e6, units),
    aofBytesPer: rewrote || after.aofBytes < before.aofBytes ? null : per(after.aofBytes - before.aofBytes, units),
    memoryBytesPer: per(after.usedMemoryBytes - before.usedMemoryBytes, units),
  };
}

export function scenarioStats(before: CommandStats, after: CommandStats, approvals: number): RedisScenarioStats {
  // authorize.lua runs as a Redis Function (FCALL); the other scripts, and the floor, by EVALSHA.
  const evalsha = delta(before, after, 'evalsha');
  const evalPlain = delta(before, after, 'eval');
  const fcall = delta(before, after, 'fcall');
  const scriptCalls = evalsha.calls + evalPlain.calls + fcall.calls;
  const scriptUsec = evalsha.usec + evalPlain.usec + fcall.usec;
  const f = footprint(before, after, approvals);
  return {
    scriptCalls,
    scriptUsPerCall: scriptCalls === 0 ? null : Math.round((scriptUsec / scriptCalls) * 10) / 10,
    scriptUsPerApproval: per(scriptUsec, approvals),
    publishes: delta(before, after, 'publish').calls,
    xadds: delta(before, after, 'xadd').calls,
    setsPerApproval: per(delta(before, after, 'set').calls, approvals, 1000),
    cpuUsPerApproval: f.cpuUsPer,
    aofBytesPerApproval: f.aofBytesPer,
    memoryBytesPerApproval: f.memoryBytesPer,
    aofRewrites: after.aofRewrites - before.aofRewrites + (after.aofRewriteInProgress ? 1 : 0),
  };
}

/**
 * Waits until Redis runs no AOF rewrite and has none scheduled (a rewrite's child process takes a core
 * of this 2-core machine for seconds: a measurement started meanwhile measures half a machine). Returns
 * how long it waited, or throws after `maxMs`.
 */
export async function waitForAofRewrite(redis: Redis, maxMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const text = String(await redis.call('INFO', 'persistence'));
    if (infoNumber(text, 'aof_rewrite_in_progress') === 0 && infoNumber(text, 'aof_rewrite_scheduled') === 0) return Date.now() - started;
    if (Date.now() - started > maxMs) throw new Error(`Redis was still rewriting its AOF after ${maxMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
