// Starts a private Redis Cluster on loopback: N redis-server processes with cluster-enabled (masters and
// replicas), joined by `redis-cli --cluster create`, for the bench (`npm run bench -- --redis cluster`) and
// the cluster tests. Not for production: a real cluster is set up once by its operator (deploy/README.md).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, redisServerAvailable, RedisServerMissingError } from './local-redis.js';

export interface LocalClusterOptions {
  readonly dataDir: string;
  readonly masters: number;
  /** Replicas per master (0 or 1 here). */
  readonly replicasPerMaster: number;
  /** cluster-node-timeout: how long a silent master stays a master before its replica takes over. */
  readonly nodeTimeoutMs?: number;
  readonly startTimeoutMs?: number;
  readonly appendOnly?: boolean;
  readonly appendFsync?: 'always' | 'everysec' | 'no';
}

export interface LocalClusterNode {
  readonly port: number;
  readonly busPort: number;
  readonly dataDir: string;
  process: ChildProcess;
}

export interface LocalCluster {
  /** host:port of every node, as REDIS_CLUSTER_NODES takes them. */
  readonly nodesSetting: string;
  readonly nodes: readonly LocalClusterNode[];
  /** Ports of the nodes that are masters now (asks the cluster). */
  masterPorts(): Promise<number[]>;
  /** kill -9 of one node (no shutdown, no save). */
  kill(port: number): void;
  /** Starts a killed node again with its nodes.conf: it rejoins the cluster (a replica of whoever took over). */
  restart(port: number): Promise<void>;
  /** Resolves once every slot is served and every node reports cluster_state:ok (or throws after timeoutMs). */
  waitHealthy(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

async function freePortPair(taken: Set<number>): Promise<number> {
  // The cluster bus port is chosen separately (cluster-port), so only the port itself must be free.
  for (;;) {
    const port = await freePort();
    if (!taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
}

function startNode(port: number, busPort: number, dataDir: string, options: LocalClusterOptions): ChildProcess {
  mkdirSync(dataDir, { recursive: true });
  const args = [
    '--port',
    String(port),
    '--cluster-port',
    String(busPort),
    '--bind',
    '127.0.0.1',
    '--dir',
    dataDir,
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    join(dataDir, 'nodes.conf'),
    '--cluster-node-timeout',
    String(options.nodeTimeoutMs ?? 1000),
    // A replica takes over however long its link was down (the default refuses a replica that lost
    // its master "too long" ago: on a loaded test machine that can be a second).
    '--cluster-replica-validity-factor',
    '0',
    '--cluster-require-full-coverage',
    'yes',
    '--save',
    '',
    '--appendonly',
    options.appendOnly === true ? 'yes' : 'no',
    '--appendfsync',
    options.appendFsync ?? 'everysec',
    '--appenddirname',
    'appendonly',
    '--logfile',
    join(dataDir, 'redis.log'),
    '--daemonize',
    'no',
    '--protected-mode',
    'yes',
  ];
  return spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'ignore'], detached: true });
}

async function ping(port: number): Promise<boolean> {
  const client = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 500,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return true;
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function info(port: number, command: string[]): Promise<string | undefined> {
  const client = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 500,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return String(await client.call(command[0] as string, ...command.slice(1)));
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  if (!redisServerAvailable()) throw new RedisServerMissingError();
  const cliProbe = spawnSync('redis-cli', ['--version'], { encoding: 'utf8' });
  if (cliProbe.error !== undefined || cliProbe.status !== 0)
    throw new Error('redis-cli was not found on PATH (Debian/Ubuntu: apt-get install redis-tools)');
  const count = options.masters * (1 + options.replicasPerMaster);
  const taken = new Set<number>();
  const nodes: LocalClusterNode[] = [];
  const startTimeoutMs = options.startTimeoutMs ?? 20_000;
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePortPair(taken);
      const busPort = await freePortPair(taken);
      const dataDir = join(options.dataDir, `node-${i}`);
      nodes.push({ port, busPort, dataDir, process: startNode(port, busPort, dataDir, options) });
    }
    const deadline = Date.now() + startTimeoutMs;
    for (const node of nodes) {
      while (!(await ping(node.port))) {
        if (node.process.exitCode !== null) throw new Error(`redis-server on port ${node.port} exited (see ${node.dataDir}/redis.log)`);
        if (Date.now() > deadline) throw new Error(`redis-server on port ${node.port} did not answer within ${startTimeoutMs} ms`);
        await pause(25);
      }
    }
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        String(options.replicasPerMaster),
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: startTimeoutMs },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}\n${create.stderr}`);
  } catch (err) {
    await Promise.all(nodes.map((n) => stopChild(n.process)));
    throw err;
  }

  const alive = (): LocalClusterNode[] => nodes.filter((n) => n.process.exitCode === null && n.process.signalCode === null);
  const cluster: LocalCluster = {
    nodesSetting: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    nodes,
    async masterPorts() {
      const ports: number[] = [];
      for (const node of alive()) {
        const role = await info(node.port, ['ROLE']);
        if (role?.startsWith('master') === true) ports.push(node.port);
      }
      return ports;
    },
    kill(port) {
      const node = nodes.find((n) => n.port === port);
      if (node === undefined) throw new Error(`no cluster node on port ${port}`);
      node.process.kill('SIGKILL');
    },
    async restart(port) {
      const node = nodes.find((n) => n.port === port);
      if (node === undefined) throw new Error(`no cluster node on port ${port}`);
      if (node.process.exitCode === null && node.process.signalCode === null) throw new Error(`node ${port} is still running`);
      node.process = startNode(node.port, node.busPort, node.dataDir, options);
      const deadline = Date.now() + startTimeoutMs;
      while (!(await ping(port))) {
        if (node.process.exitCode !== null)
          throw new Error(`redis-server on port ${port} exited on restart (see ${node.dataDir}/redis.log)`);
        if (Date.now() > deadline)
          throw new Error(`redis-server on port ${port} did not answer within ${startTimeoutMs} ms of its restart`);
        await pause(25);
      }
    },
    async waitHealthy(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const states = await Promise.all(alive().map((n) => info(n.port, ['CLUSTER', 'INFO'])));
        const ok = states.every((s) => s !== undefined && s.includes('cluster_state:ok') && s.includes('cluster_slots_ok:16384'));
        // Every live replica has finished its first sync (WAIT in the durable mode counts on it).
        const links = await Promise.all(alive().map((n) => info(n.port, ['INFO', 'replication'])));
        const synced = links.every((s) => s !== undefined && (s.includes('role:master') || s.includes('master_link_status:up')));
        if (ok && synced) return;
        if (Date.now() > deadline)
          throw new Error(`the cluster was not healthy within ${timeoutMs} ms: ${states.join(' | ').slice(0, 400)}`);
        await pause(100);
      }
    },
    async stop() {
      await Promise.all(nodes.map((n) => stopChild(n.process)));
    },
  };
  try {
    await cluster.waitHealthy(startTimeoutMs);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
