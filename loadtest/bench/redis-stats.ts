// What Redis itself did during a scenario, from INFO commandstats before and after: calls of the ledger
// scripts and the time Redis spent executing them, and the live-event commands (XADD, PUBLISH) the
// scripts of bound cards add. Redis 7 counts the commands a script runs under their own names as well as
// inside the script's time, so the script figure is the whole cost and the others say what ran in it.
// (The Redis process's CPU, I/O and AOF fsync included, is the scenario's cpuCores.redis.)
import type { Redis } from 'ioredis';

export interface CommandCounts {
  readonly calls: number;
  readonly usec: number;
}

export type CommandStats = ReadonlyMap<string, CommandCounts>;

export interface RedisScenarioStats {
  /** EVAL / EVALSHA calls (the payment script, and any other ledger script the scenario ran). */
  readonly scriptCalls: number;
  /** Microseconds Redis spent inside those calls (the commands they ran included), per call. */
  readonly scriptUsPerCall: number | null;
  /** The same time per approval of the scenario (null without approvals). */
  readonly scriptUsPerApproval: number | null;
  /** PUBLISH calls: one per payment of a bound card (its live event's doorbell), none for the others. */
  readonly publishes: number;
  /** XADD calls: the journal entry of each approval, and the live event of each payment of a bound card. */
  readonly xadds: number;
}

/** INFO commandstats as command -> {calls, usec}. */
export async function commandStats(redis: Redis): Promise<CommandStats> {
  const text = await redis.info('commandstats');
  const stats = new Map<string, CommandCounts>();
  for (const line of text.split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (match !== null) stats.set(match[1] ?? '', { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

function delta(before: CommandStats, after: CommandStats, name: string): CommandCounts {
  const a = after.get(name) ?? { calls: 0, usec: 0 };
  const b = before.get(name) ?? { calls: 0, usec: 0 };
  return { calls: a.calls - b.calls, usec: a.usec - b.usec };
}

export function scenarioStats(before: CommandStats, after: CommandStats, approvals: number): RedisScenarioStats {
  const evalsha = delta(before, after, 'evalsha');
  const evalPlain = delta(before, after, 'eval');
  const scriptCalls = evalsha.calls + evalPlain.calls;
  const scriptUsec = evalsha.usec + evalPlain.usec;
  return {
    scriptCalls,
    scriptUsPerCall: scriptCalls === 0 ? null : Math.round((scriptUsec / scriptCalls) * 10) / 10,
    scriptUsPerApproval: approvals === 0 ? null : Math.round((scriptUsec / approvals) * 10) / 10,
    publishes: delta(before, after, 'publish').calls,
    xadds: delta(before, after, 'xadd').calls,
  };
}
