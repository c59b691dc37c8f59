// Keeps the layer rules of docs/layers.md: reads every import of switch/**/*.ts and fails on one that a
// rule forbids, naming the file, the import and the rule. A static check, but a real one: it reads the
// tree as it is, so a handler that starts calling the ledger (or a ledger file that imports the domain)
// fails CI.
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
  /** Names imported as values (not `type`). */
  readonly valueNames: readonly string[];
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
  const outside = clause.replace(/\{[\s\S]*\}/, '').replace(/,/g, ' ').trim();
  if (outside !== '' && outside !== '*') names.push(outside.replace(/^\*\s+as\s+/, ''));
  for (const part of (braces?.[1] ?? '').split(',')) {
    const name = part.trim();
    if (name === '' || name.startsWith('type ')) continue;
    names.push(name.split(/\s+as\s+/)[0]?.trim() ?? name);
  }
  return names;
}

function importsOf(file: string): ImportLine[] {
  const text = readFileSync(file, 'utf8');
  const rel = relative(ROOT, file);
  const lines: ImportLine[] = [];
  const add = (specifier: string, valueNames: string[], line: string): void => {
    const target = specifier.startsWith('.') ? relative(ROOT, resolve(dirname(file), specifier)).replace(/\.js$/, '.ts') : '';
    lines.push({ file: rel, target, specifier, valueNames, text: line.replace(/\s+/g, ' ').slice(0, 160) });
  };
  for (const m of text.matchAll(IMPORT)) add(m[4] ?? '', valueNamesOf(m[2] !== undefined, m[3] ?? ''), m[0]);
  for (const m of text.matchAll(SIDE_EFFECT_IMPORT)) add(m[1] ?? '', [], m[0]);
  return lines;
}

const ALL = sourceFiles(join(ROOT, 'switch')).flatMap(importsOf);

/** Which layer a project file belongs to (docs/layers.md). */
function layerOf(path: string): string {
  if (path.startsWith('proto/gen/')) return 'proto';
  if (!path.startsWith('switch/')) return 'other';
  const rest = path.slice('switch/'.length);
  if (['app.ts', 'start.ts', 'main.ts', 'dev-env.ts', 'gateway/serve.ts', 'gateway/main.ts'].includes(rest) || rest.startsWith('cli/')) return 'wiring';
  if (rest === 'context.ts') return 'context';
  const folder = rest.includes('/') ? rest.slice(0, rest.indexOf('/')) : '';
  if (folder === 'grpc' || folder === 'gateway') return 'handler';
  if (folder === 'domain' || folder === 'fees' || folder === 'data') return 'domain';
  if (folder === 'ledger') return 'ledger';
  if (folder === 'redis' || folder === 'workers') return 'infrastructure';
  if (folder === 'identity') return 'identity';
  if (rest === 'qr/format.ts') return 'shared-format';
  if (folder === 'qr') return 'qr';
  return 'common';
}

/** Layers each layer may import values from; `context` is types only everywhere. */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  wiring: ['wiring', 'context', 'handler', 'domain', 'ledger', 'infrastructure', 'identity', 'qr', 'shared-format', 'common', 'proto'],
  handler: ['handler', 'domain', 'identity', 'common', 'proto', 'shared-format', 'infrastructure'],
  domain: ['domain', 'ledger', 'identity', 'qr', 'shared-format', 'common', 'infrastructure'],
  ledger: ['ledger', 'infrastructure', 'common'],
  infrastructure: ['infrastructure', 'common', 'domain'],
  identity: ['identity', 'common'],
  qr: ['qr', 'shared-format'],
  'shared-format': [],
  common: ['common'],
  context: [],
};

/** Handlers may name the ledger's error classes and constants; never call into it. */
function handlerMayTake(name: string): boolean {
  return /Error$/.test(name) || /^[A-Z][A-Z0-9_]+$/.test(name);
}

function violations(): string[] {
  const found: string[] = [];
  for (const line of ALL) {
    if (line.target === '') {
      // Packages: the shared format module is read by the phone page too, so it imports nothing at all.
      if (layerOf(line.file) === 'shared-format') found.push(`${line.file}: the shared QR format imports nothing (${line.text})`);
      if (['domain', 'ledger', 'identity'].includes(layerOf(line.file)) && /^(@grpc|uWebSockets)/.test(line.specifier)) {
        found.push(`${line.file}: ${layerOf(line.file)} knows no transport (${line.text})`);
      }
      continue;
    }
    const from = layerOf(line.file);
    const to = layerOf(line.target);
    if (line.valueNames.length === 0) continue;
    if (from === 'handler' && to === 'ledger') {
      const bad = line.valueNames.filter((n) => !handlerMayTake(n));
      if (bad.length > 0) found.push(`${line.file}: a handler calls the ledger (${bad.join(', ')}): go through the domain (${line.text})`);
      continue;
    }
    if (from === 'handler' && line.target.startsWith('switch/gateway/') !== line.file.startsWith('switch/gateway/') && to === 'handler') {
      found.push(`${line.file}: gRPC and gateway handlers stay apart (${line.text})`);
      continue;
    }
    if (from === 'domain' && to === 'proto') continue; // the known exception in docs/layers.md: types only
    if (!(MAY_IMPORT[from] ?? []).includes(to)) found.push(`${line.file} (${from}) may not import ${line.target} (${to}): ${line.text}`);
  }
  return found;
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
});
