// Keeps the layer rules of docs/layers.md: reads every import of switch/**/*.ts and fails on one that a
// rule forbids, naming the file, the import and the rule. A static check, but a real one: it reads the
// tree as it is, so a handler that starts calling the ledger (or a ledger file that imports the domain)
// fails CI. Also: no import cycle among switch/'s files (value imports), no handler that reaches Redis
// (ioredis, the pipeline client, or the client through the context), no domain file that imports the
// generated proto or ioredis (even for a type).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface ImportLine {
  readonly file: string;
  /** Project-relative path of the imported file ('' for a package). */
  readonly target: string;
  readonly specifier: string;
  /** Names imported as values (not `type`); `*` for `export * from` and `import * as`. */
  readonly valueNames: readonly string[];
  /** `import 'x'`: runs the module, names nothing. */
  readonly sideEffect: boolean;
  readonly text: string;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (name.endsWith('.ts')) out.push(full);
  }
  return out;
}

const IMPORT = /^(import|export)\s+(type\s+)?([\s\S]*?)\s+from\s+'([^']+)';/gm;
const SIDE_EFFECT_IMPORT = /^import\s+'([^']+)';/gm;

function valueNamesOf(typeOnly: boolean, clause: string): string[] {
  if (typeOnly) return [];
  const braces = /\{([\s\S]*)\}/.exec(clause);
  const names: string[] = [];
  const outside = clause
    .replace(/\{[\s\S]*\}/, '')
    .replace(/,/g, ' ')
    .trim();
  if (outside === '*') names.push('*');
  else if (outside !== '') names.push(outside.replace(/^\*\s+as\s+/, ''));
  for (const part of (braces?.[1] ?? '').split(',')) {
    const name = part.trim();
    if (name === '' || name.startsWith('type ')) continue;
    names.push(name.split(/\s+as\s+/)[0]?.trim() ?? name);
  }
  return names;
}

function importsOf(file: string): ImportLine[] {
  return importsOfText(relative(ROOT, file), readFileSync(file, 'utf8'));
}

/** The imports of one file's text; `rel` is its project-relative path (imports resolve from there). */
function importsOfText(rel: string, text: string): ImportLine[] {
  const lines: ImportLine[] = [];
  const add = (specifier: string, valueNames: string[], sideEffect: boolean, line: string): void => {
    const target = specifier.startsWith('.') ? relative(ROOT, resolve(ROOT, dirname(rel), specifier)).replace(/\.js$/, '.ts') : '';
    lines.push({ file: rel, target, specifier, valueNames, sideEffect, text: line.replace(/\s+/g, ' ').slice(0, 160) });
  };
  for (const m of text.matchAll(IMPORT)) add(m[4] ?? '', valueNamesOf(m[2] !== undefined, m[3] ?? ''), false, m[0]);
  for (const m of text.matchAll(SIDE_EFFECT_IMPORT)) add(m[1] ?? '', [], true, m[0]);
  return lines;
}

const FILES = sourceFiles(join(ROOT, 'switch'));
const ALL = FILES.flatMap(importsOf);
/** Each file's text by its project-relative path. */
const SOURCES: ReadonlyMap<string, string> = new Map(FILES.map((f) => [relative(ROOT, f), readFileSync(f, 'utf8')]));

/** Which layer a project file belongs to (docs/layers.md). */
function layerOf(path: string): string {
  if (path.startsWith('proto/gen/')) return 'proto';
  if (!path.startsWith('switch/')) return 'other';
  const rest = path.slice('switch/'.length);
  if (['app.ts', 'start.ts', 'main.ts', 'dev-env.ts', 'gateway/serve.ts', 'gateway/main.ts'].includes(rest) || rest.startsWith('cli/'))
    return 'wiring';
  if (rest === 'context.ts') return 'context';
  const folder = rest.includes('/') ? rest.slice(0, rest.indexOf('/')) : '';
  if (folder === 'grpc' || folder === 'gateway') return 'handler';
  if (folder === 'domain' || folder === 'fees' || folder === 'data') return 'domain';
  if (folder === 'ledger') return 'ledger';
  if (folder === 'history') return 'history';
  if (folder === 'redis' || folder === 'workers') return 'infrastructure';
  if (folder === 'identity') return 'identity';
  if (folder === 'channels') return 'channels';
  if (rest === 'qr/format.ts') return 'shared-format';
  if (folder === 'qr') return 'qr';
  return 'common';
}

/** Layers each layer may import values from; `context` is types only everywhere. */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  wiring: [
    'wiring',
    'context',
    'handler',
    'domain',
    'ledger',
    'history',
    'infrastructure',
    'identity',
    'channels',
    'qr',
    'shared-format',
    'common',
    'proto',
  ],
  handler: ['handler', 'domain', 'identity', 'common', 'proto', 'shared-format', 'infrastructure'],
  domain: ['domain', 'ledger', 'identity', 'channels', 'qr', 'shared-format', 'common', 'infrastructure'],
  ledger: ['ledger', 'infrastructure', 'common'],
  history: ['history', 'ledger', 'infrastructure', 'common'],
  infrastructure: ['infrastructure', 'common', 'domain'],
  identity: ['identity', 'common'],
  channels: ['channels', 'common'],
  qr: ['qr', 'shared-format'],
  'shared-format': [],
  common: ['common'],
  context: [],
};

/** Handlers may name the ledger's error classes and constants; never call into it. */
function handlerMayTake(name: string): boolean {
  return /Error$/.test(name) || /^[A-Z][A-Z0-9_]+$/.test(name);
}

/** Redis client packages: the ledger's and the wiring's, never a handler's or the domain's. */
const REDIS_PACKAGE = /^(ioredis|redis|@redis\/)/;
/** What a handler may take from switch/redis/: the outage classifier (a Redis-unavailable error is UNAVAILABLE / 503). */
const HANDLER_MAY_CLASSIFY = 'switch/redis/unavailable.ts';

function violations(lines: readonly ImportLine[] = ALL): string[] {
  const found: string[] = [];
  for (const line of lines) {
    const from = layerOf(line.file);
    if (line.target === '') {
      // Packages: the shared format module is read by the phone page too, so it imports nothing at all.
      if (from === 'shared-format') found.push(`${line.file}: the shared QR format imports nothing (${line.text})`);
      if (['domain', 'ledger', 'identity', 'channels'].includes(from) && /^(@grpc|uWebSockets)/.test(line.specifier)) {
        found.push(`${line.file}: ${from} knows no transport (${line.text})`);
      }
      // Even a type: the handlers and the domain know no Redis client (issue 10).
      if ((from === 'handler' || from === 'domain') && REDIS_PACKAGE.test(line.specifier)) {
        found.push(
          `${line.file}: ${from === 'handler' ? 'a handler' : 'the domain'} imports the Redis client package: go through ${from === 'handler' ? 'the domain' : 'ledger/'} (${line.text})`,
        );
      }
      continue;
    }
    const to = layerOf(line.target);
    // Even a type: the domain takes plain TypeScript values, never a generated gRPC message.
    if (from === 'domain' && to === 'proto') {
      found.push(`${line.file}: the domain imports the generated proto (${line.target}): give it its own type (${line.text})`);
      continue;
    }
    if (line.valueNames.length === 0 && !line.sideEffect) continue;
    if (from === 'handler' && to === 'ledger') {
      const bad = line.valueNames.filter((n) => !handlerMayTake(n));
      if (bad.length > 0) found.push(`${line.file}: a handler calls the ledger (${bad.join(', ')}): go through the domain (${line.text})`);
      continue;
    }
    if (from === 'handler' && to === 'infrastructure') {
      const bad = line.target === HANDLER_MAY_CLASSIFY ? [] : line.valueNames.filter((n) => !/Error$/.test(n));
      if (bad.length > 0 || line.sideEffect) {
        found.push(
          `${line.file}: a handler reaches Redis or a worker (${line.target}: ${bad.join(', ')}): go through the domain (${line.text})`,
        );
      }
      continue;
    }
    if (from === 'handler' && line.target.startsWith('switch/gateway/') !== line.file.startsWith('switch/gateway/') && to === 'handler') {
      found.push(`${line.file}: gRPC and gateway handlers stay apart (${line.text})`);
      continue;
    }
    if (!(MAY_IMPORT[from] ?? []).includes(to)) found.push(`${line.file} (${from}) may not import ${line.target} (${to}): ${line.text}`);
  }
  return found;
}

/** The source without comments, so that a comment naming `ctx.redis` is not a use. */
function codeOf(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/** Reaching the client through the context or the script runner: `ctx.redis`, `.redis.`, `scripts.client` / `.command` / `.run`. */
const REDIS_USE = /\.redis\b|\bredis\.|\bscripts\.(client|command|run)\b/;

/** Handler files (grpc/, gateway/ but not the wiring in gateway/serve.ts, gateway/main.ts) that use the Redis client. */
function handlersUsingRedis(files: ReadonlyMap<string, string> = SOURCES): string[] {
  const found: string[] = [];
  for (const [file, text] of files) {
    if (layerOf(file) !== 'handler') continue;
    codeOf(text)
      .split('\n')
      .forEach((line, i) => {
        if (REDIS_USE.test(line))
          found.push(`${file}:${i + 1}: a handler uses the Redis client: go through the domain (${line.trim().slice(0, 120)})`);
      });
  }
  return found;
}

/**
 * Import cycles among switch/'s files, each as its files in import order (first file repeated at the
 * end). Value imports only (and `import 'x'`): a type-only import runs nothing, so it cannot make a
 * module see another half-initialised. Tarjan's strongly connected components, then one cycle per component.
 */
function importCycles(lines: readonly ImportLine[] = ALL): string[][] {
  const edges = new Map<string, Set<string>>();
  for (const line of lines) {
    if (!line.target.startsWith('switch/') || (line.valueNames.length === 0 && !line.sideEffect)) continue;
    if (!edges.has(line.file)) edges.set(line.file, new Set());
    edges.get(line.file)?.add(line.target);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node) ?? 0);
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node) ?? 0, low.get(next) ?? 0));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node) ?? 0, index.get(next) ?? 0));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string | undefined;
    do {
      member = stack.pop();
      if (member === undefined) break;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || edges.get(node)?.has(node) === true) components.push(component);
  };
  for (const node of [...edges.keys()].sort()) if (!index.has(node)) visit(node);
  return components.map((component) => cycleThrough(component, edges));
}

/** One cycle inside a strongly connected component: a shortest way back to its first (sorted) file. */
function cycleThrough(component: readonly string[], edges: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  const members = new Set(component);
  const start = [...component].sort()[0] ?? '';
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift() ?? '';
    for (const next of edges.get(node) ?? []) {
      if (!members.has(next)) continue;
      if (next === start) {
        const path = [node];
        while (path[0] !== start) path.unshift(cameFrom.get(path[0] ?? '') ?? start);
        return [...path, start];
      }
      if (!cameFrom.has(next)) {
        cameFrom.set(next, node);
        queue.push(next);
      }
    }
  }
  return [...component, component[0] ?? ''];
}

describe('layers (docs/layers.md)', () => {
  it('reads the imports of the tree', () => {
    expect(ALL.length).toBeGreaterThan(300);
    expect(ALL.some((l) => l.file === 'switch/gateway/holder-api.ts' && l.target === 'switch/domain/ecard.ts')).toBe(true);
  });

  it('every import keeps the rules', () => {
    expect(violations()).toEqual([]);
  });

  it('would catch a handler calling the ledger and the ledger importing the domain', () => {
    const handler = importsOf(join(ROOT, 'switch/gateway/holder-api.ts'));
    expect(handler.length).toBeGreaterThan(0);
    expect(layerOf('switch/gateway/holder-api.ts')).toBe('handler');
    expect(handlerMayTake('cardEventsSince')).toBe(false);
    expect(handlerMayTake('IdempotencyConflictError')).toBe(true);
    expect(MAY_IMPORT['ledger']).not.toContain('domain');
    expect(MAY_IMPORT['domain']).not.toContain('handler');
  });

  it('has no import cycle in switch/ (value imports)', () => {
    expect(importCycles().map((cycle) => cycle.join(' -> '))).toEqual([]);
  });

  it('no handler (grpc/, gateway/) uses the Redis client, also not through the context', () => {
    expect(handlersUsingRedis()).toEqual([]);
  });

  it('would catch a cycle, and name its files in import order', () => {
    const lines = [
      ...importsOfText('switch/grpc/a.ts', "import { b } from './b.js';\nimport type { D } from './d.js';"),
      ...importsOfText('switch/grpc/b.ts', "import { c } from './c.js';"),
      ...importsOfText('switch/grpc/c.ts', "export * from './a.js';"),
      // Type-only back edge: no cycle at run time.
      ...importsOfText('switch/grpc/d.ts', "import type { A } from './a.js';"),
    ];
    expect(importCycles(lines)).toEqual([['switch/grpc/a.ts', 'switch/grpc/b.ts', 'switch/grpc/c.ts', 'switch/grpc/a.ts']]);
    expect(importCycles(lines.filter((l) => l.file !== 'switch/grpc/c.ts'))).toEqual([]);
  });

  it('would catch a handler importing ioredis or the pipeline client, and the domain importing proto/gen or ioredis', () => {
    const bad = [
      ...importsOfText('switch/grpc/x.ts', "import type { Redis } from 'ioredis';"),
      ...importsOfText('switch/gateway/x.ts', "import { PipelineClient } from '../redis/pipeline-client.js';"),
      ...importsOfText('switch/domain/x.ts', "import type { Cardholder } from '../../proto/gen/cardswitch/v1/kiosk.js';"),
      ...importsOfText('switch/fees/x.ts', "import { Redis } from 'ioredis';"),
      ...importsOfText('switch/data/x.ts', "import type { Redis } from 'ioredis';"),
    ];
    expect(violations(bad).map((v) => v.slice(0, v.indexOf(':')))).toEqual(bad.map((l) => l.file));
    // The outage classifier and the breaker's error class are classification, not a use of Redis.
    const allowed = importsOfText(
      'switch/grpc/x.ts',
      "import { isRedisUnavailable } from '../redis/unavailable.js';\nimport { LedgerDownError } from '../redis/breaker.js';",
    );
    expect(violations(allowed)).toEqual([]);
  });

  it('would catch a handler reaching Redis through the context', () => {
    const files = new Map([
      ['switch/grpc/x.ts', 'const a = 1;\nconst v = await ctx.redis.get(key);'],
      ['switch/gateway/y.ts', 'await deps.ctx.scripts.client.hget(k, f);'],
      ['switch/grpc/z.ts', '// the ledger (ctx.redis) is read by the domain, never here\nconst z = 2;'],
      ['switch/gateway/serve.ts', 'await redis.ping();'],
    ]);
    expect(handlersUsingRedis(files).map((v) => v.slice(0, v.indexOf(': ')))).toEqual(['switch/grpc/x.ts:2', 'switch/gateway/y.ts:1']);
  });
});
