// Loads the Lua scripts once at start-up (expanding `-- @include name` from lua/includes), and calls
// them by EVALSHA, reloading on NOSCRIPT (after a Redis restart or failover the script cache is empty).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Redis, Cluster } from 'ioredis';
import type { PipelineClient } from '../redis/pipeline-client.js';

export type RedisClient = Redis | Cluster;
export type ScriptReply = string | number | null | ScriptReply[];

const LUA_DIR = fileURLToPath(new URL('./lua/', import.meta.url));
const INCLUDE_LINE = /^-- @include ([a-z0-9-]+)\s*$/gm;
const MAX_INCLUDE_DEPTH = 4;

/**
 * Every script in lua/, by name: the one list the switch loads and the only names `run` and `shaOf`
 * take, so a misspelt name fails `tsc`. test/ledger-scripts.test.ts checks it equals the *.lua files.
 */
export const SCRIPT_NAMES = [
  'adjust', 'authorize', 'claim-id', 'ecard-binding', 'ecard-watch', 'fee-complete', 'fee-debit', 'fee-giveback', 'inquire',
  'open-account', 'password', 'recharge', 'refund', 'replace-card', 'reverse', 'set-limits', 'set-status', 'settle',
  'terminal-password', 'water-debit',
] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

function expandIncludes(source: string, fileName: string, depth: number): string {
  if (depth > MAX_INCLUDE_DEPTH) throw new Error(`${fileName}: includes nested deeper than ${MAX_INCLUDE_DEPTH}`);
  return source.replace(INCLUDE_LINE, (_line, name: string) => {
    const includePath = join(LUA_DIR, 'includes', `${name}.lua`);
    let included: string;
    try {
      included = readFileSync(includePath, 'utf8');
    } catch {
      throw new Error(`${fileName}: include "${name}" not found at ${includePath}`);
    }
    return expandIncludes(included, `${name}.lua`, depth + 1);
  });
}

export function readScript(name: ScriptName): string {
  const fileName = `${name}.lua`;
  return expandIncludes(readFileSync(join(LUA_DIR, fileName), 'utf8'), fileName, 0);
}

interface LoadedScript {
  readonly source: string;
  readonly sha: string;
}

export class Scripts {
  private readonly scripts = new Map<ScriptName, LoadedScript>();

  private constructor(
    private readonly redis: RedisClient,
    /** The lean hot-path connection, when the ledger is a plain redis:// endpoint (see redis/pipeline-client.ts). */
    private readonly fast: PipelineClient | undefined,
  ) {}

  /** The connection the scripts run on (for the few plain reads next to them). */
  get client(): RedisClient {
    return this.redis;
  }

  /** The SHA1 a script is loaded under (for EVALSHA from outside the switch: the bench's redis-benchmark run). */
  shaOf(name: ScriptName): string {
    const script = this.scripts.get(name);
    if (script === undefined) throw new Error(`Lua script ${name}.lua was not loaded (is it in ${LUA_DIR}?)`);
    return script.sha;
  }

  /** Reads, expands and SCRIPT LOADs every script; a missing or broken script fails here, not at the first swipe. */
  static async load(redis: RedisClient, fast?: PipelineClient): Promise<Scripts> {
    const onDisk = new Set(readdirSync(LUA_DIR));
    for (const name of SCRIPT_NAMES) {
      if (!onDisk.has(`${name}.lua`)) throw new Error(`Lua script ${name}.lua is missing from ${LUA_DIR}`);
    }
    const scripts = new Scripts(redis, fast);
    for (const name of SCRIPT_NAMES) {
      const source = readScript(name);
      const sha = createHash('sha1').update(source).digest('hex');
      scripts.scripts.set(name, { source, sha });
      await scripts.loadInto(redis, name, source, sha);
    }
    return scripts;
  }

  private async loadInto(redis: RedisClient, name: ScriptName, source: string, sha: string): Promise<void> {
    let loadedSha: unknown;
    try {
      loadedSha = await (redis as Redis).script('LOAD', source);
    } catch (err) {
      throw new Error(`Lua script ${name}.lua does not compile: ${(err as Error).message}`);
    }
    if (loadedSha !== sha) throw new Error(`Redis returned sha ${String(loadedSha)} for ${name}.lua, expected ${sha}`);
  }

  /** A plain command on the same channel as the scripts (the hot-path sequence claim). */
  async command(args: readonly (string | number)[]): Promise<ScriptReply> {
    if (this.fast !== undefined) return this.fast.command(args);
    const [name, ...rest] = args;
    return (await (this.redis as Redis).call(String(name), ...rest)) as ScriptReply;
  }

  async run(name: ScriptName, keys: readonly string[], args: readonly (string | number)[]): Promise<ScriptReply> {
    const script = this.scripts.get(name);
    if (script === undefined) throw new Error(`Lua script ${name}.lua was not loaded (is it in ${LUA_DIR}?)`);
    try {
      if (this.fast !== undefined) return await this.fast.command(['EVALSHA', script.sha, keys.length, ...keys, ...args]);
      return (await this.redis.evalsha(script.sha, keys.length, ...keys, ...args)) as ScriptReply;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      // EVAL both runs and caches the script, so the next EVALSHA finds it again.
      return (await this.redis.eval(script.source, keys.length, ...keys, ...args)) as ScriptReply;
    }
  }
}
