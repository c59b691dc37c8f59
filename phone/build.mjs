// Builds the e-card page (phone/src) into static files the gateway serves under /phone/
// (switch/gateway/phone-page.ts): index.html and content-hashed assets/app-<hash>.js and .css.
//   node phone/build.mjs                     -> phone/dist (npm start, npm run build:phone, the tests)
//   node phone/build.mjs --out dist/phone/dist   (npm run build: next to the compiled switch)
// esbuild is a devDependency: the build runs on a developer's or the build machine, never in the switch.
// Files are written through a temporary name and renamed, and files of an older build are removed, so two
// builds at once (two test files) leave one complete, identical set.
import { build } from 'esbuild';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

/**
 * Old phones' browsers: WeChat / WeCom's X5 and XWEB (Chromium 80+) and iOS Safari 15+ (esbuild cannot lower
 * destructuring for the older Safaris, which it flags as buggy).
 */
export const PHONE_TARGETS = ['es2019', 'chrome80', 'safari15'];

function writeIfChanged(path, content) {
  let old;
  try {
    old = readFileSync(path);
  } catch {
    old = undefined;
  }
  if (old !== undefined && Buffer.compare(old, Buffer.from(content)) === 0) return;
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, content);
  renameSync(temporary, path);
}

/** Builds into `outDir`; answers the files written (relative names) and their sizes in bytes. */
export async function buildPhone({ outDir = join(HERE, 'dist'), minify = true } = {}) {
  const out = resolve(outDir);
  const result = await build({
    entryPoints: { app: join(HERE, 'src/main.ts') },
    bundle: true,
    minify,
    format: 'iife',
    target: PHONE_TARGETS,
    charset: 'utf8',
    legalComments: 'none',
    entryNames: '[name]-[hash]',
    outdir: join(out, 'assets'),
    write: false,
    logLevel: 'warning',
  });
  mkdirSync(join(out, 'assets'), { recursive: true });
  const names = { js: '', css: '' };
  const sizes = {};
  for (const file of result.outputFiles) {
    const name = basename(file.path);
    if (name.endsWith('.js')) names.js = name;
    else if (name.endsWith('.css')) names.css = name;
    else continue;
    writeIfChanged(join(out, 'assets', name), file.contents);
    sizes[`assets/${name}`] = file.contents.byteLength;
  }
  if (names.js === '' || names.css === '') throw new Error('the phone build made no app .js or .css');
  for (const name of readdirSync(join(out, 'assets'))) {
    if (name !== names.js && name !== names.css && !name.endsWith('.tmp')) rmSync(join(out, 'assets', name), { force: true });
  }
  const html = readFileSync(join(HERE, 'index.html'), 'utf8')
    .replace('%APP_JS%', `assets/${names.js}`)
    .replace('%APP_CSS%', `assets/${names.css}`);
  writeIfChanged(join(out, 'index.html'), html);
  sizes['index.html'] = Buffer.byteLength(html);
  return { outDir: out, sizes };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  const { outDir, sizes } = await buildPhone(at > 0 ? { outDir: process.argv[at + 1] } : {});
  const total = Object.values(sizes).reduce((a, b) => a + b, 0);
  console.log(
    `phone page built into ${outDir}: ${Object.entries(sizes)
      .map(([n, s]) => `${n} ${s} B`)
      .join(', ')} (${total} B)`,
  );
}
