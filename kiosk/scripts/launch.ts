// `npm run kiosk`: builds the kiosk and starts it in Electron against the local switch of `npm start`,
// as the demo campus's kiosk XY-CARDCENTER-D1-01 (its credential goes to var/kiosk/credential.json,
// readable by this user only), in development mode: a window instead of kiosk mode, devtools, and a
// "tap a demo card" button that reads the first demo card. Where Electron's binary is missing it says
// so and how to install it. KIOSK_CREDENTIAL_FILE / KIOSK_SWITCH_ADDRESS / KIOSK_DEV override.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { join } from 'node:path';
import { DEFAULT_DEMO_SEED, demoDoc } from '../../switch/data/demo.js';
import { buildKiosk, DIST_DIR, KIOSK_DIR } from './build.js';

const VAR_KIOSK = join(KIOSK_DIR, '..', 'var', 'kiosk');

function electronBinary(): string | undefined {
  try {
    const path = createRequire(import.meta.url)('electron') as unknown;
    return typeof path === 'string' ? path : undefined;
  } catch {
    return undefined;
  }
}

function reachable(address: string): Promise<boolean> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

async function main(): Promise<number> {
  const env = { ...process.env };
  const binary = electronBinary();
  if (binary === undefined) {
    process.stderr.write(
      [
        "npm run kiosk: Electron's binary is not installed here.",
        'The electron package is a devDependency, and npm installed it without its ~100 MB binary (ELECTRON_SKIP_BINARY_DOWNLOAD=1, or the download failed).',
        'Install the binary, then run npm run kiosk again:',
        '  node node_modules/electron/install.js',
        '(A server that runs only the switch never needs it: npm ci --omit=dev does not install electron at all.)',
        'Without Electron, the kiosk tests still run the same renderer and handlers in Chromium: npx vitest run test/kiosk-screens.test.ts',
        '',
      ].join('\n'),
    );
    return 3;
  }
  await buildKiosk();
  const demo = demoDoc(DEFAULT_DEMO_SEED);
  if ((env['KIOSK_CREDENTIAL_FILE'] ?? '') === '') {
    mkdirSync(VAR_KIOSK, { recursive: true });
    const file = join(VAR_KIOSK, 'credential.json');
    const credential = { terminalId: demo.kiosk.terminalId, secret: demo.kiosk.secret, location: demo.kiosk.location };
    writeFileSync(file, `${JSON.stringify(credential, null, 2)}\n`, { mode: 0o600 });
    chmodSync(file, 0o600); // an older file keeps its mode on write
    env['KIOSK_CREDENTIAL_FILE'] = file;
    process.stdout.write(
      `kiosk: the demo campus's kiosk ${demo.kiosk.terminalId} (${demo.kiosk.location}); its credential is in ${file}\n`,
    );
  }
  env['KIOSK_SWITCH_ADDRESS'] ??= `127.0.0.1:${env['GRPC_PORT'] ?? '50051'}`;
  env['KIOSK_DEV'] ??= '1';
  // npm start's switch serves plaintext on this machine; a lobby kiosk talks TLS (KIOSK_SWITCH_CA_FILE).
  if ((env['KIOSK_SWITCH_CA_FILE'] ?? '') === '') env['KIOSK_SWITCH_PLAINTEXT'] ??= 'allow';
  if (env['KIOSK_DEV'] === '1') env['KIOSK_DEMO_SERIAL'] ??= demo.cards[0]?.cardSerial ?? '';
  if (!(await reachable(env['KIOSK_SWITCH_ADDRESS']))) {
    process.stdout.write(
      `kiosk: no switch answers at ${env['KIOSK_SWITCH_ADDRESS']} yet: start it with npm start in another terminal (the kiosk connects by itself once it is up)\n`,
    );
  }
  // Chromium refuses to run as root with its OS sandbox; a development container often is root.
  const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  if (args.length > 0) process.stdout.write('kiosk: running as root, so Chromium runs without its OS sandbox (development only)\n');
  // The app directory (its package.json names main.cjs): the same layout electron-builder packs.
  const child = spawn(binary, [...args, DIST_DIR], { env, stdio: 'inherit' });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 0)));
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`npm run kiosk failed: ${String(err)}\n`);
    process.exit(1);
  },
);
