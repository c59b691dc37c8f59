// Builds the kiosk into kiosk/dist/: main.cjs (Electron main, with grpc-js and the generated client
// bundled in), preload.cjs (sandboxed preloads must be one CommonJS file), renderer/ (index.html,
// style.css, app.js) and a package.json for Electron and electron-builder. Used by `npm run kiosk`,
// `npm run kiosk:build` and the kiosk tests.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const KIOSK_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DIST_DIR = join(KIOSK_DIR, 'dist');
export const RENDERER_INDEX = join(DIST_DIR, 'renderer', 'index.html');

export async function buildKiosk(options: { readonly minify?: boolean } = {}): Promise<void> {
  const common = {
    bundle: true,
    sourcemap: true,
    minify: options.minify ?? false,
    logLevel: 'warning' as const,
    legalComments: 'none' as const,
  };
  mkdirSync(join(DIST_DIR, 'renderer'), { recursive: true });
  await Promise.all([
    build({
      ...common,
      entryPoints: [join(KIOSK_DIR, 'main', 'electron-main.ts')],
      outfile: join(DIST_DIR, 'main.cjs'),
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      external: ['electron'],
    }),
    build({
      ...common,
      entryPoints: [join(KIOSK_DIR, 'preload', 'preload.ts')],
      outfile: join(DIST_DIR, 'preload.cjs'),
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      external: ['electron'],
    }),
    build({
      ...common,
      entryPoints: [join(KIOSK_DIR, 'renderer', 'app.ts')],
      outfile: join(DIST_DIR, 'renderer', 'app.js'),
      platform: 'browser',
      format: 'iife',
      target: 'chrome120',
    }),
  ]);
  copyFileSync(join(KIOSK_DIR, 'renderer', 'index.html'), RENDERER_INDEX);
  copyFileSync(join(KIOSK_DIR, 'renderer', 'style.css'), join(DIST_DIR, 'renderer', 'style.css'));
  // The app Electron runs and electron-builder packs: everything is bundled, so it has no dependencies.
  const manifest = {
    name: 'cardswitch-kiosk',
    productName: 'CampusCardKiosk',
    version: '0.1.0',
    description: '校园卡自助服务 kiosk',
    main: 'main.cjs',
    author: 'cardswitch',
    license: 'UNLICENSED',
  };
  writeFileSync(join(DIST_DIR, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildKiosk({ minify: process.argv.includes('--minify') }).then(
    () => process.stdout.write(`kiosk built into ${DIST_DIR}\n`),
    (err: unknown) => {
      process.stderr.write(`kiosk build failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
