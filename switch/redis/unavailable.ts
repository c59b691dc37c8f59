// Whether a failure is the ledger connection itself (Redis down, timed out, loading, read-only ...) rather
// than a refusal. Transport-neutral: gRPC answers UNAVAILABLE, the HTTP gateway 503; both fail closed.
import { DomainError } from '../errors.js';
import { LedgerDownError } from './breaker.js';
import { PipelineUnavailableError } from './pipeline-client.js';
import { ReplicaWaitError } from './replica-wait.js';

/** True for failures of the ledger connection itself: the switch then fails closed with UNAVAILABLE. */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // ReplicaWaitError: the durable mode found no replica with the write (redis/replica-wait.ts).
  if (err instanceof PipelineUnavailableError || err instanceof LedgerDownError || err instanceof ReplicaWaitError) return true;
  const m = err.message;
  return (
    m.includes("Stream isn't writeable") ||
    m.includes('Connection is closed') ||
    m.includes('Command timed out') ||
    m.includes('ECONNREFUSED') ||
    m.includes('ECONNRESET') ||
    m.includes('MaxRetriesPerRequestError') ||
    err.name === 'MaxRetriesPerRequestError' ||
    m.startsWith('LOADING') ||
    m.startsWith('BUSY') ||
    m.startsWith('MASTERDOWN') ||
    m.startsWith('READONLY') ||
    m.startsWith('CLUSTERDOWN') ||
    m.startsWith('TRYAGAIN') ||
    // ioredis Cluster: no slot table yet or any more, a node lost mid-failover, a slot still moving after
    // every retry (MOVED / ASK are followed by the client; what is left is an outage, never INTERNAL).
    m.startsWith('MOVED') ||
    m.startsWith('ASK ') ||
    m.includes("Cluster isn't ready") ||
    m.includes('Too many Cluster redirections') ||
    m.includes('Failed to refresh slots cache') ||
    m.includes('None of startup nodes is available') ||
    m.includes('Cluster is disconnected') ||
    m.includes('Cluster all failed') ||
    m.includes('No master is available') ||
    m.startsWith('NOREPLICAS') ||
    m.includes('All sentinels are unreachable')
  );
}

/** Which Redis client failed, for cardswitch_redis_errors_total; undefined when `err` is not a Redis outage. */
export function unavailableRedisClient(err: unknown): 'pipeline' | 'ioredis' | undefined {
  if (err instanceof PipelineUnavailableError) return 'pipeline';
  if (err instanceof LedgerDownError) return err.client;
  // A refusal of the domain (an identity provider that did not answer ...) is not the ledger's fault.
  if (err instanceof DomainError) return undefined;
  return isRedisUnavailable(err) ? 'ioredis' : undefined;
}
