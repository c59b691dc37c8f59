// Redis Sentinels on loopback for the tests of the Sentinel-watched ledger (test/cluster-sentinel,
// test/sentinel-client): each one its own redis-server --sentinel on a free port, writing its config and log
// into the test's temp dir, and a one-shot client that asks any of them (or a data server) one command.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, startLocalRedis, type LocalRedis } from '../../switch/redis/local-redis.js';
import { waitUntil } from './cluster-load.js';

export interface Sentinel {
  readonly index: number;
  readonly port: number;
  readonly process: ChildProcess;
  /** This Sentinel's log file (its failover decisions, for a failure message). */
  readonly logFile: string;
}

/** One command to the server on `port`, on a fresh connection; undefined when it fails or cannot connect. */
export async function ask(port: number, ...command: (string | number)[]): Promise<unknown> {
  const c = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => null, lazyConnect: true });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await c.call(String(command[0]), ...command.slice(1));
  } catch {
    return undefined;
  } finally {
    c.disconnect();
  }
}

/** The master's port as the Sentinel on `sentinelPort` names it; undefined when it does not answer. */
export async function masterPortBy(sentinelPort: number, masterName: string): Promise<number | undefined> {
  const answer = (await ask(sentinelPort, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as string[] | undefined | null;
  return answer === undefined || answer === null ? undefined : Number(answer[1]);
}

/**
 * A Sentinel watching `masterName` at `masterPort` with a quorum of `quorum`, answering PING before this
 * resolves. Started detached (its own process group), so a test can SIGSTOP and SIGKILL it alone.
 */
export async function startSentinel(dir: string, index: number, masterName: string, masterPort: number, quorum: number): Promise<Sentinel> {
  const port = await freePort();
  const conf = join(dir, `sentinel-${index}.conf`);
  const logFile = join(dir, `sentinel-${index}.log`);
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `logfile ${logFile}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} ${quorum}`,
      // Not 1000: a Sentinel pings every min(down-after, 1000) ms, so at 1000 a link it re-made at the switch of
      // masters could miss its first answer by a hair and call the new master down; with the other Sentinels'
      // "down" answers of the first failover still counted, that started a second failover within 1 s, which
      // promoted the just-restarted old master (role master, never a replica: the Sentinels accept it) and
      // flushed the new master's data into a full resync from it (2 of 6 runs alone on a quiet machine).
      `sentinel down-after-milliseconds ${masterName} 3000`,
      `sentinel failover-timeout ${masterName} 5000`,
      `sentinel parallel-syncs ${masterName} 1`,
      '',
    ].join('\n'),
  );
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore', detached: true });
  await waitUntil(`sentinel ${index}`, 20_000, async () => (await ask(port, 'PING')) === 'PONG');
  return { index, port, process: child, logFile };
}

export interface SentinelSet {
  readonly master: LocalRedis;
  readonly replica: LocalRedis;
  readonly sentinels: Sentinel[];
}

/**
 * A master (data in `dir`/a), its replica (`dir`/b, in sync before this resolves) and three Sentinels
 * with a quorum of 2 watching it as `masterName`, each of which has found the replica (what they promote).
 * `appendOnly`: both servers keep an AOF (fsync every second), as a ledger's would.
 */
export async function startSentinelSet(dir: string, masterName: string, appendOnly: boolean): Promise<SentinelSet> {
  const server = (sub: string): Promise<LocalRedis> =>
    startLocalRedis({ dataDir: join(dir, sub), port: 0, appendOnly, appendFsync: 'everysec', startTimeoutMs: 20_000 });
  const master = await server('a');
  const replica = await server('b');
  await ask(replica.port, 'REPLICAOF', '127.0.0.1', master.port);
  await waitUntil('the replica to sync', 20_000, async () =>
    String(await ask(replica.port, 'INFO', 'replication')).includes('master_link_status:up'),
  );
  const sentinels: Sentinel[] = [];
  for (let i = 0; i < 3; i++) sentinels.push(await startSentinel(dir, i, masterName, master.port, 2));
  await waitUntil('the Sentinels to see the replica', 20_000, async () => {
    const seen = await Promise.all(sentinels.map((s) => ask(s.port, 'SENTINEL', 'REPLICAS', masterName)));
    return seen.every((r) => Array.isArray(r) && r.length === 1);
  });
  return { master, replica, sentinels };
}
