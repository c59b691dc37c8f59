// `npm run bench -- --redis cluster`: the tap and tap-stream scenarios (closed model) three times in one
// invocation, each on a fresh ledger: one Redis (the usual run), a local Redis Cluster of 3 masters with a
// replica each, and that cluster in the durable mode (LEDGER_DURABILITY=replica: a payment is answered
// only after WAIT 1 confirmed a replica has it). Each run does its own ledger check (every approval
// exactly once) and audit; the report puts the three side by side with the ratios cluster / single and
// durable / cluster. Persistence is the same everywhere: AOF, appendfsync as BENCH_REDIS_FSYNC (always).
import { join } from 'node:path';
import { startLocalCluster } from '../../switch/redis/cluster-local.js';
import { startLocalRedis } from '../../switch/redis/local-redis.js';
import type { BenchOptions } from './options.js';
import type { BenchResult } from './report.js';

export type BenchLedgerForm = 'single' | 'cluster' | 'cluster-durable';
export const CLUSTER_FORMS: readonly BenchLedgerForm[] = ['single', 'cluster', 'cluster-durable'];

/** The Redis a bench run uses: how the switch finds it (env), its process ids, how to stop it. */
export interface BenchLedger {
  readonly form: BenchLedgerForm;
  /** One Redis: its URL (also for the Redis baselines); a cluster: '' (env names the nodes). */
  readonly url: string;
  /** What the switch's environment gets on top of the bench's (REDIS_URL or REDIS_CLUSTER_NODES, durability). */
  readonly env: Readonly<Record<string, string>>;
  readonly process: { readonly pid?: number | undefined };
  stop(): Promise<void>;
}

export async function startBenchLedger(form: BenchLedgerForm, dataDir: string, fsync: 'always' | 'everysec' | 'no'): Promise<BenchLedger> {
  if (form === 'single') {
    // As production runs it (deploy/redis/redis-ledger.conf): no automatic AOF rewrite, one a night instead.
    // BENCH_REDIS_AOF_REWRITE=auto measures Redis's default (a rewrite whenever the file doubled).
    const autoAofRewrite = process.env['BENCH_REDIS_AOF_REWRITE'] === 'auto';
    const local = await startLocalRedis({ dataDir, port: 0, appendOnly: true, appendFsync: fsync, startTimeoutMs: 10_000, autoAofRewrite });
    return { form, url: local.url, env: { REDIS_URL: local.url }, process: local.process, stop: () => local.stop() };
  }
  process.stdout.write(`starting a local Redis Cluster (3 masters, 3 replicas, AOF appendfsync ${fsync}) ...\n`);
  const cluster = await startLocalCluster({
    dataDir: join(dataDir, 'cluster'),
    masters: 3,
    replicasPerMaster: 1,
    appendOnly: true,
    appendFsync: fsync,
    // A busy bench machine must not make a replica take over mid-run.
    nodeTimeoutMs: 15_000,
    startTimeoutMs: 60_000,
  });
  return {
    form,
    url: '',
    env: {
      REDIS_URL: '',
      REDIS_CLUSTER_NODES: cluster.nodesSetting,
      ...(form === 'cluster-durable' ? { LEDGER_DURABILITY: 'replica', LEDGER_WAIT_TIMEOUT_MS: '1000' } : {}),
    },
    process: cluster.nodes[0]?.process ?? {},
    stop: () => cluster.stop(),
  };
}

/**
 * The three runs compare the ledger forms, like for like: none runs the baselines (no-op server, script
 * alone, h2load), which the usual single-Redis run measures, nor archives its journal.
 */
export function optionsForForm(options: BenchOptions, _form: BenchLedgerForm): BenchOptions {
  return { ...options, baselines: false, h2load: false };
}

interface FormRow {
  readonly form: BenchLedgerForm;
  readonly scenario: string;
  readonly approvalsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

export interface ClusterComparison {
  readonly schema: 'cardswitch-bench-cluster/1';
  readonly command: string;
  readonly rows: readonly FormRow[];
  /** approvals/s of the form over the single-Redis run, per scenario. */
  readonly clusterVsSingle: Record<string, number | null>;
  /** approvals/s and p99 of the durable mode over the plain cluster, per scenario. */
  readonly durableVsCluster: Record<string, { throughput: number | null; p99: number | null }>;
  readonly ledgerChecks: Record<BenchLedgerForm, { passed: boolean; auditOk: boolean; approvals: number }>;
  readonly passed: boolean;
  readonly runs: Record<BenchLedgerForm, BenchResult>;
}

const ratio = (a: number | undefined, b: number | undefined): number | null =>
  a === undefined || b === undefined || b <= 0 ? null : Math.round((a / b) * 1000) / 1000;

export function compareForms(command: string, runs: Record<BenchLedgerForm, BenchResult>): ClusterComparison {
  const rows: FormRow[] = [];
  for (const form of CLUSTER_FORMS) {
    for (const s of runs[form].scenarios) {
      rows.push({
        form,
        scenario: `${s.name} ${s.mode}`,
        approvalsPerSec: s.approvalsPerSec,
        p50Ms: s.latencyMs.p50,
        p99Ms: s.latencyMs.p99,
        errors: s.errors,
      });
    }
  }
  const find = (form: BenchLedgerForm, scenario: string) => rows.find((r) => r.form === form && r.scenario === scenario);
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  const clusterVsSingle: Record<string, number | null> = {};
  const durableVsCluster: Record<string, { throughput: number | null; p99: number | null }> = {};
  for (const scenario of scenarios) {
    clusterVsSingle[scenario] = ratio(find('cluster', scenario)?.approvalsPerSec, find('single', scenario)?.approvalsPerSec);
    durableVsCluster[scenario] = {
      throughput: ratio(find('cluster-durable', scenario)?.approvalsPerSec, find('cluster', scenario)?.approvalsPerSec),
      p99: ratio(find('cluster-durable', scenario)?.p99Ms, find('cluster', scenario)?.p99Ms),
    };
  }
  const ledgerChecks = Object.fromEntries(
    CLUSTER_FORMS.map((form) => {
      const check = runs[form].ledgerCheck;
      return [
        form,
        { passed: check?.passed === true, auditOk: check?.audit.ok === true, approvals: check?.payments.approvedByClients ?? 0 },
      ];
    }),
  ) as ClusterComparison['ledgerChecks'];
  return {
    schema: 'cardswitch-bench-cluster/1',
    command,
    rows,
    clusterVsSingle,
    durableVsCluster,
    ledgerChecks,
    passed: CLUSTER_FORMS.every((form) => runs[form].passed),
    runs,
  };
}

export function clusterReport(c: ClusterComparison, out: string): string {
  const lines = ['', `Redis forms side by side (${c.command}):`, ''];
  lines.push('form             scenario           approvals/s   p50 ms   p99 ms   errors');
  for (const r of c.rows) {
    lines.push(
      `${r.form.padEnd(16)} ${r.scenario.padEnd(18)} ${String(r.approvalsPerSec).padStart(11)} ${r.p50Ms.toFixed(2).padStart(8)} ${r.p99Ms
        .toFixed(2)
        .padStart(8)} ${String(r.errors).padStart(8)}`,
    );
  }
  lines.push('');
  for (const [scenario, value] of Object.entries(c.clusterVsSingle)) lines.push(`cluster / single, ${scenario}: ${value ?? '-'}`);
  for (const [scenario, value] of Object.entries(c.durableVsCluster))
    lines.push(`durable / cluster, ${scenario}: throughput ${value.throughput ?? '-'}, p99 ${value.p99 ?? '-'}`);
  for (const form of CLUSTER_FORMS) {
    const check = c.ledgerChecks[form];
    lines.push(
      `ledger check ${form}: ${check.passed ? 'passed' : 'FAILED'} (${check.approvals} approvals exactly once, audit ${check.auditOk ? 'ok' : 'FAILED'})`,
    );
  }
  lines.push(`${c.passed ? 'PASSED' : 'FAILED'}; full results in ${out}`, '');
  return lines.join('\n');
}
