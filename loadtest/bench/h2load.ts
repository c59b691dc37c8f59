// Cross-check with an independent load generator: h2load (nghttp2) sends the same pre-encoded
// Inquire frame over one connection with 50 concurrent streams. h2load does not read gRPC trailers, so
// it counts HTTP/2 answers, not gRPC outcomes; the bench's own generator, run with the same shape,
// is compared with it.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CampusFile } from '../shared/campus-data.js';
import { cardTap, inquireCall } from '../shared/traffic.js';
import { encodeCallFrame } from '../shared/wire.js';

export interface H2loadResult {
  readonly available: boolean;
  readonly note: string;
  readonly command?: string;
  readonly requests?: number;
  readonly succeeded?: number;
  readonly failed?: number;
  readonly reqPerSec?: number;
  readonly latencyMs?: { readonly min: number; readonly mean: number; readonly max: number; readonly sd: number };
}

const TIMEOUT_MS = 120_000;

export function h2loadAvailable(): boolean {
  const probe = spawnSync('h2load', ['--version'], { encoding: 'utf8' });
  return probe.error === undefined && probe.status === 0;
}

function toMs(value: string | undefined, unit: string | undefined): number {
  const n = Number(value);
  if (unit === 'us') return n / 1000;
  if (unit === 's') return n * 1000;
  return n;
}

function parse(output: string): Omit<H2loadResult, 'available' | 'note' | 'command'> {
  const rate = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(output);
  const reqs = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(output);
  const time = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(output);
  return {
    reqPerSec: rate === null ? undefined : Number(rate[1]),
    requests: reqs === null ? undefined : Number(reqs[1]),
    succeeded: reqs === null ? undefined : Number(reqs[2]),
    failed: reqs === null ? undefined : Number(reqs[3]),
    latencyMs:
      time === null
        ? undefined
        : { min: toMs(time[1], time[2]), max: toMs(time[3], time[4]), mean: toMs(time[5], time[6]), sd: toMs(time[7], time[8]) },
  };
}

/** Runs h2load against the switch's Inquire with one card and one canteen terminal of the campus. */
export async function runH2loadInquire(host: string, port: number, campus: CampusFile, requests: number): Promise<H2loadResult> {
  if (!h2loadAvailable()) {
    return { available: false, note: 'h2load not found: skipped the cross-check (Debian/Ubuntu: apt-get install -y nghttp2-client)' };
  }
  const terminal = campus.terminals.find((t) => t.kind === 'canteen');
  const card = campus.cards[campus.cards.length - 1];
  if (terminal === undefined || card === undefined) return { available: true, note: 'the campus has no canteen terminal or card: skipped' };
  const dir = mkdtempSync(join(tmpdir(), 'cardswitch-h2load-'));
  try {
    const file = join(dir, 'inquire.grpc');
    writeFileSync(file, encodeCallFrame(inquireCall(terminal.id, cardTap(card.serial))));
    const args = [
      '-n',
      String(requests),
      '-c',
      '1',
      '-m',
      '50',
      '-H',
      'content-type: application/grpc',
      '-H',
      'te: trailers',
      '-H',
      `terminal-id: ${terminal.id}`,
      '-H',
      `terminal-secret: ${terminal.secret}`,
      '-d',
      file,
      `http://${host}:${port}/cardswitch.v1.PosService/Inquire`,
    ];
    const output = await new Promise<string>((resolve, reject) =>
      execFile('h2load', args, { timeout: TIMEOUT_MS, maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout),
      ),
    );
    const shown = args.map((a) => (a.startsWith('terminal-secret') ? "'terminal-secret: ...'" : /\s/.test(a) ? `'${a}'` : a));
    return {
      available: true,
      note: 'h2load counts HTTP/2 answers; it cannot see grpc-status',
      command: `h2load ${shown.join(' ')}`,
      ...parse(output),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
