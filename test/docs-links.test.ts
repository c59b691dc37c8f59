// Keeps the newcomer's path inside the repository: every relative link of the project's markdown
// (README.md, docs/, the READMEs of the folders) must name a file or folder of this checkout, never
// one beside it (`../shared/...`), and a `#fragment` must name a heading of its file. Links to public
// web sites (http/https) are left alone. Also checks that docs/ARCHITECTURE.md names every Lua script.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Folders that hold no project documentation (dependencies, build output, local data, generated code). */
const SKIPPED_DIRS = new Set(['node_modules', '.git', 'var', 'dist', 'gen', 'coverage']);
/** Most markdown files walked; the repository has a dozen, so a runaway walk fails loudly instead. */
const MAX_MARKDOWN_FILES = 500;

function markdownFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIPPED_DIRS.has(name)) continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) markdownFiles(full, out);
    else if (name.endsWith('.md')) out.push(full);
    if (out.length > MAX_MARKDOWN_FILES) throw new Error(`more than ${MAX_MARKDOWN_FILES} markdown files under ${ROOT}`);
  }
  return out;
}

/** The text without fenced code blocks and code spans, whose brackets are examples, not links. */
function proseOf(markdown: string): string {
  return markdown.replace(/^(```|~~~)[\s\S]*?^\1/gm, '').replace(/`[^`\n]*`/g, '');
}

export function linksOf(markdown: string): string[] {
  const prose = proseOf(markdown);
  const inline = [...prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1] ?? '');
  const reference = [...prose.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm)].map((m) => m[1] ?? '');
  return [...inline, ...reference];
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchorsOf(markdown: string): Set<string> {
  const headings = [...proseOf(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)].map((m) => m[1] ?? '');
  return new Set(
    headings.map((h) =>
      h
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\- ]/gu, '')
        .replace(/ /g, '-'),
    ),
  );
}

/** What is wrong with one link of `file` (a path under `root`), or undefined when it resolves. */
export function linkProblem(root: string, file: string, link: string): string | undefined {
  if (/^(https?:|mailto:)/i.test(link)) return undefined;
  if (/^[a-z][a-z0-9+.-]*:/i.test(link)) return `${link}: only relative links and public http(s) links belong in the docs`;
  const [pathPart = '', fragment] = decodeURI(link).split('#');
  const target = pathPart === '' ? file : resolve(dirname(file), pathPart);
  if (pathPart.startsWith('/')) return `${link}: an absolute path; link relative to the file instead`;
  const inRepo = relative(root, target);
  if (inRepo === '..' || inRepo.startsWith(`..${sep}`)) return `${link}: points outside the repository`;
  if (!existsSync(target)) return `${link}: no such file in the repository`;
  if (fragment !== undefined && fragment !== '' && target.endsWith('.md') && !anchorsOf(readFileSync(target, 'utf8')).has(fragment)) {
    return `${link}: no heading #${fragment} in ${relative(root, target)}`;
  }
  return undefined;
}

function problemsOf(root: string, files: readonly string[]): string[] {
  return files.flatMap((file) =>
    linksOf(readFileSync(file, 'utf8'))
      .map((link) => linkProblem(root, file, link))
      .filter((p): p is string => p !== undefined)
      .map((p) => `${relative(root, file)}: ${p}`),
  );
}

describe('the link checker itself', () => {
  const readme = join(ROOT, 'README.md');

  it('finds inline and reference links outside code, and flags a link out of the repository or to nothing', () => {
    const text =
      'Design: [`../shared/DESIGN.md`](../shared/DESIGN.md) · [gone](docs/nope.md) `[x](not-a-link.md)`\n[ref]: docs/layers.md\n';
    expect(linksOf(text)).toEqual(['../shared/DESIGN.md', 'docs/nope.md', 'docs/layers.md']);
    expect(linkProblem(ROOT, readme, '../shared/DESIGN.md')).toMatch(/outside the repository/);
    expect(linkProblem(ROOT, readme, 'docs/nope.md')).toMatch(/no such file/);
    expect(linkProblem(ROOT, readme, 'file:///work/shared/DESIGN.md')).toMatch(/only relative links/);
    expect(linkProblem(ROOT, readme, '/etc/passwd')).toMatch(/absolute path/);
    expect(linkProblem(ROOT, readme, 'docs/gateway-api.md#no-such-heading')).toMatch(/no heading/);
    expect(linkProblem(ROOT, readme, 'docs/layers.md')).toBeUndefined();
    expect(linkProblem(ROOT, readme, 'https://example.org/x')).toBeUndefined();
  });
});

describe('documentation links', () => {
  const files = markdownFiles(ROOT);

  it('walks the README, docs/ and the folder READMEs', () => {
    const names = files.map((f) => relative(ROOT, f).split(sep).join('/'));
    expect(names).toEqual(expect.arrayContaining(['README.md', 'docs/ARCHITECTURE.md', 'docs/layers.md', 'switch/ledger/README.md']));
  });

  it('every relative link resolves to a file of the repository', () => {
    expect(problemsOf(ROOT, files)).toEqual([]);
  });

  it('the README links the architecture document', () => {
    expect(linksOf(readFileSync(join(ROOT, 'README.md'), 'utf8'))).toContain('docs/ARCHITECTURE.md');
  });

  it('docs/ARCHITECTURE.md names every Lua script of the ledger', () => {
    const architecture = readFileSync(join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
    const scripts = readdirSync(join(ROOT, 'switch', 'ledger', 'lua')).filter((name) => name.endsWith('.lua'));
    expect(scripts.length).toBeGreaterThan(0);
    expect(scripts.filter((name) => !architecture.includes(`\`${name}\``))).toEqual([]);
  });
});
