// What switch/id-table.ts is for, measured on its own: a long-lived container whose entries come and go
// (128 live, each dragging ~8 KB of young objects, as an open HTTP/2 stream drags its call), kept in a
// Map and in an IdTable, each in a child Node with --trace-gc-nvp for the same number of entries.
// Prints what V8 promoted into the old generation and how many mark-compacts it needed.
//
//   npx tsx loadtest/bench/map-churn.ts [--entries 2000000]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { IdTable } from '../../switch/id-table.js';

const LIVE = 128;

function churn(kind: 'map' | 'table', entries: number): void {
  const container = kind === 'map' ? new Map<number, unknown>() : new IdTable<unknown>();
  const live: number[] = [];
  for (let id = 1; id <= entries; id++) {
    const payload = Array.from({ length: 200 }, (_, i) => ({ i, s: `x${i}` }));
    container.set(id, { id, payload });
    live.push(id);
    if (live.length > LIVE) container.delete(live.shift()!);
  }
}

interface Totals {
  readonly allocatedMb: number;
  readonly promotedMb: number;
  readonly scavenges: number;
  readonly markCompacts: number;
  readonly seconds: number;
}

function measure(kind: 'map' | 'table', entries: number): Totals {
  const started = process.hrtime.bigint();
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, '--trace-gc-nvp', fileURLToPath(import.meta.url), '--child', kind, '--entries', String(entries)],
    { encoding: 'utf8', maxBuffer: 1 << 28 },
  );
  if (child.status !== 0) throw new Error(`the ${kind} child failed: ${child.stderr}`);
  let allocated = 0;
  let promoted = 0;
  let scavenges = 0;
  let markCompacts = 0;
  for (const line of child.stdout.split('\n')) {
    if (line.includes(' gc=s ')) {
      scavenges++;
      allocated += Number(/ allocated=(\d+)/.exec(line)?.[1] ?? 0);
      promoted += Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0);
    } else if (line.includes(' gc=mc ')) markCompacts++;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { allocatedMb: allocated / 1e6, promotedMb: promoted / 1e6, scavenges, markCompacts, seconds };
}

const { values } = parseArgs({ options: { child: { type: 'string' }, entries: { type: 'string' } } });
const entries = Number(values.entries ?? 2_000_000);
if (values.child === 'map' || values.child === 'table') churn(values.child, entries);
else {
  console.log(`${entries} entries through a container holding ${LIVE} at a time, ~8 KB of young objects each`);
  for (const kind of ['map', 'table'] as const) {
    const t = measure(kind, entries);
    console.log(
      `${kind.padEnd(5)}: allocated ${t.allocatedMb.toFixed(0)} MB in scavenged space, promoted ${t.promotedMb.toFixed(1)} MB ` +
        `(${((100 * t.promotedMb) / Math.max(1, t.allocatedMb)).toFixed(2)} %), ${t.scavenges} scavenges, ${t.markCompacts} mark-compacts, ${t.seconds.toFixed(1)} s`,
    );
  }
}
