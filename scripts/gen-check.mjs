// Fails when proto/gen is not what `npm run gen` produces from proto/ (CI runs this).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

function listFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...listFiles(full));
    else out.push(full);
  }
  return out;
}

const scratch = mkdtempSync(join(tmpdir(), 'cardswitch-gen-'));
try {
  execFileSync('npx', ['buf', 'generate', 'proto', '--output', scratch], { stdio: 'inherit' });
  const fresh = join(scratch, 'proto', 'gen');
  const committed = 'proto/gen';
  const freshFiles = listFiles(fresh)
    .map((f) => relative(fresh, f))
    .sort();
  const committedFiles = listFiles(committed)
    .map((f) => relative(committed, f))
    .sort();
  const stale = [];
  for (const f of new Set([...freshFiles, ...committedFiles])) {
    const a = freshFiles.includes(f) ? readFileSync(join(fresh, f), 'utf8') : null;
    const b = committedFiles.includes(f) ? readFileSync(join(committed, f), 'utf8') : null;
    if (a !== b) stale.push(f);
  }
  if (stale.length > 0) {
    console.error(`generated code is stale; run \`npm run gen\` and commit. Differs: ${stale.join(', ')}`);
    process.exit(1);
  }
  console.log(`proto/gen is current (${freshFiles.length} files)`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
