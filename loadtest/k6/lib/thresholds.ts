// The pass/fail gate of the k6 scenarios: latency percentiles of grpc_req_duration (per request kind,
// as the targets are about the money path) and the share of passed checks.

/** P99_MS (default 25): the p99 every kind but PIN entry must meet; PIN_P99_MS (default 300) for PIN entry. */
export function latencyThresholds(): Record<string, string[]> {
  const p99 = Number(__ENV['P99_MS'] ?? 25);
  const p95 = Number(__ENV['P95_MS'] ?? 15);
  // A PIN entry runs a full-cost scrypt (about 59 ms of one core) in the switch's worker pool.
  const pinP99 = Number(__ENV['PIN_P99_MS'] ?? 300);
  const kinds = ['tap', 'inquiry', 'retry', 'reversal', 'pin', 'water', 'settle'];
  const thresholds: Record<string, string[]> = {
    checks: [`rate>${__ENV['CHECKS_RATE'] ?? '0.999'}`],
    'grpc_req_duration{kind:tap}': [`p(95)<${p95}`, `p(99)<${p99}`],
    'grpc_req_duration{kind:pin_entry}': [`p(99)<${pinP99}`],
  };
  for (const kind of kinds) if (kind !== 'tap') thresholds[`grpc_req_duration{kind:${kind}}`] = [`p(99)<${p99}`];
  return thresholds;
}
