// The production install (`npm ci --omit=dev`) has only `dependencies`: every package the switch, the
// generated proto code or the CLI loads at run time must be listed there, not in devDependencies.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const RUNTIME_DIRS = ['switch', 'proto/gen', 'bin'];
// Value imports only: `import type` and `export type` vanish at run time.
const IMPORT = /^\s*(?:import|export)\s+(?!type\b)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|js|mjs|cjs)$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** "@scope/name/sub" -> "@scope/name"; "name/sub" -> "name"; undefined for relative and node: imports. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('node:') || specifier.startsWith('/')) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

describe('production dependencies', () => {
  it('lists every package loaded at run time under dependencies', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const dependencies = new Set(Object.keys(manifest.dependencies ?? {}));
    const used = new Map<string, string>();
    for (const file of RUNTIME_DIRS.flatMap((dir) => sourceFiles(join(ROOT, dir)))) {
      for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        const name = packageOf(match[1] ?? match[2] ?? '');
        if (name !== undefined && !used.has(name)) used.set(name, file.slice(ROOT.length));
      }
    }
    expect(used.has('@grpc/grpc-js')).toBe(true); // the scan finds imports at all
    const missing = [...used].filter(([name]) => !dependencies.has(name)).map(([name, file]) => `${name} (imported by ${file})`);
    expect(missing).toEqual([]);
  });
});
