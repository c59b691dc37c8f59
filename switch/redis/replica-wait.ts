// The durable mode (LEDGER_DURABILITY=replica): a write is acknowledged only once a replica of its master
// has it. After a script's reply, `afterWrite(key)` waits for the next `WAIT 1 <timeout>` sent on the same
// connection as the write: Redis answers WAIT with how many replicas have everything this connection wrote
// before it, so one WAIT covers every write whose reply had arrived when it was sent. One WAIT goes to
// each master per event-loop turn (setImmediate), for all payments answered in that turn.
//
// Which connection: one Redis (the pipeline client or ioredis, whichever ran the scripts), or in a cluster
// the master serving the key's slot now, which is the node that just answered (a MOVED updates the slot
// table before the retry). A WAIT that answers 0 (no replica caught up within the timeout) or fails
// (the master died) rejects with ReplicaWaitError: the caller answers UNAVAILABLE and the POS retries the
// same request, which the idempotent scripts answer from the stored record, on whichever master then holds it.
import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { isCluster } from './cluster.js';
import type { PipelineClient } from './pipeline-client.js';

/** No replica confirmed a write in time (or its master was lost): the write's outcome must not be acknowledged. */
export class ReplicaWaitError extends Error {
  override readonly name = 'ReplicaWaitError';
}

interface WaitTarget {
  readonly id: string;
  send(): Promise<unknown>;
}

export interface ReplicaWaitStats {
  /** WAIT commands sent. */
  waits: number;
  /** Writes covered by them. */
  writes: number;
  /** WAITs that found no replica in time, or failed. */
  failures: number;
}

export class ReplicaWait {
  private readonly batches = new Map<string, Promise<void>>();
  readonly stats: ReplicaWaitStats = { waits: 0, writes: 0, failures: 0 };

  constructor(
    private readonly redis: Redis | Cluster,
    /** The connection the scripts run on for one Redis (the pipeline client), if any. */
    private readonly fast: PipelineClient | undefined,
    private readonly timeoutMs: number,
    private readonly replicas = 1,
  ) {}

  /** Resolves once a replica of the master that holds `key` has every write answered on its connection so far. */
  afterWrite(key: string): Promise<void> {
    const target = this.target(key);
    this.stats.writes++;
    let batch = this.batches.get(target.id);
    if (batch === undefined) {
      batch = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        // Writes answered from here on need the next WAIT: this one may already be on its way.
        this.batches.delete(target.id);
        return this.wait(target);
      });
      this.batches.set(target.id, batch);
    }
    return batch;
  }

  private async wait(target: WaitTarget): Promise<void> {
    this.stats.waits++;
    let acknowledged: number;
    try {
      acknowledged = Number(await target.send());
    } catch (err) {
      this.stats.failures++;
      throw new ReplicaWaitError(
        `Connection is closed: WAIT on ${target.id} failed (${(err as Error).message}); the write is not known to be on a replica`,
      );
    }
    if (!(acknowledged >= this.replicas)) {
      this.stats.failures++;
      throw new ReplicaWaitError(
        `NOREPLICAS: no replica of ${target.id} confirmed the write within ${this.timeoutMs} ms (WAIT answered ${acknowledged}); retry the same request`,
      );
    }
  }

  private target(key: string): WaitTarget {
    const args = [this.replicas, this.timeoutMs] as const;
    if (this.fast !== undefined) {
      const fast = this.fast;
      return { id: 'pipeline', send: () => fast.command(['WAIT', ...args]) };
    }
    const redis = this.redis;
    if (!isCluster(redis)) return { id: 'redis', send: () => redis.call('WAIT', ...args) };
    const nodeKey = redis.slots[calculateSlot(key)]?.[0];
    if (nodeKey === undefined) return { id: 'unknown', send: () => Promise.reject(new Error(`no master serves the slot of ${key}`)) };
    return {
      id: nodeKey,
      send: () => {
        const node = redis.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === nodeKey);
        if (node === undefined) return Promise.reject(new Error(`master ${nodeKey} is no longer in the cluster`));
        return node.call('WAIT', ...args);
      },
    };
  }
}
