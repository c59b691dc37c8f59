// The kiosk reaches the switch over TLS. A production switch serves gRPC over TLS only (it refuses to start
// in plaintext unless GRPC_PLAINTEXT=allow: test/tls.test.ts), but the kiosk's client was always plaintext:
// a lobby kiosk could not reach a production switch at all (every tap "系统暂时无法连接"), or the switch had
// to be opened to plaintext, and then the kiosk's terminal secret, card serials and card passwords crossed
// the lobby's network in clear. A throwaway CA and certificates are made with openssl; the kiosk's own
// configuration (kiosk/main/settings.ts), client and handlers tap a card against a real TLS switch.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createKioskHandlers } from '../kiosk/main/handlers.js';
import { KioskConfigError, loadKioskConfig } from '../kiosk/main/settings.js';
import { createSwitchClient } from '../kiosk/main/switch-client.js';
import type { KioskEvent } from '../kiosk/shared/api.js';
import type { SwitchApp } from '../switch/app.js';
import { KIOSK_TERMINAL } from './helpers/clients.js';
import { openCard, startTestSwitch } from './helpers/switch.js';

const dir = mkdtempSync(join(tmpdir(), 'kiosk-tls-'));
const file = (name: string): string => join(dir, name);
const CARD_NO = '58000001';
const SERIAL = '7150AB01';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(name: string): void {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=kiosk test ${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
  );
}

function makeCert(name: string, ca: string, extensions: string): void {
  writeFileSync(file(`${name}.ext`), `${extensions}\n`);
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
  );
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  );
  chmodSync(file(`${name}.key`), 0o600);
}

beforeAll(() => {
  makeCa('ca');
  makeCert('server', 'ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth');
  makeCert('kiosk', 'ca', 'extendedKeyUsage=clientAuth');
  writeFileSync(
    file('credential.json'),
    JSON.stringify({ terminalId: KIOSK_TERMINAL.id, secret: KIOSK_TERMINAL.secret, location: KIOSK_TERMINAL.location }),
  );
  chmodSync(file('credential.json'), 0o600);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TLS_ENV = { GRPC_TLS_CERT_FILE: file('server.crt'), GRPC_TLS_KEY_FILE: file('server.key') };

async function tlsSwitch(label: string, env: Record<string, string>): Promise<SwitchApp> {
  const app = await startTestSwitch(label, env);
  onTestFinished(() => app.stop());
  await app.terminals.register(KIOSK_TERMINAL);
  await openCard(app, CARD_NO, SERIAL, 4_200);
  return app;
}

/** A tap at a kiosk configured by `env` (as its service unit would), against `app`: what main heard. */
async function tapAt(app: SwitchApp, env: Record<string, string>): Promise<{ holder: string | undefined; events: KioskEvent[] }> {
  const config = loadKioskConfig({ KIOSK_CREDENTIAL_FILE: file('credential.json'), ...env });
  const client = createSwitchClient({
    address: `127.0.0.1:${app.grpcPort}`,
    credential: config.credential,
    tls: config.tls,
    deadlineMs: 3_000,
  });
  const events: KioskEvent[] = [];
  const handlers = createKioskHandlers({
    switch: client,
    settings: config.settings,
    trustedUrl: 'file:///kiosk/index.html',
    trustedWebContentsId: () => 1,
    emit: (e) => events.push(e),
  });
  try {
    await handlers.cardRead(SERIAL);
    return { holder: handlers.holderCardNumber(), events };
  } finally {
    handlers.dispose();
    client.close();
  }
}

describe('the kiosk and a TLS switch', () => {
  it('a kiosk trusting the switch’s CA reads a card over TLS', async () => {
    const app = await tlsSwitch('ktls', TLS_ENV);
    const { holder, events } = await tapAt(app, { KIOSK_SWITCH_CA_FILE: file('ca.crt') });
    expect(events).toMatchObject([{ type: 'card', card: { cardNumber: CARD_NO, balanceFen: 4_200 } }]);
    expect(holder).toBe(CARD_NO);
  });

  it('mTLS: with its client certificate the kiosk reads the card; without one it cannot connect', async () => {
    const app = await tlsSwitch('ktlsm', { ...TLS_ENV, GRPC_TLS_CLIENT_CA_FILE: file('ca.crt') });
    const withCert = await tapAt(app, {
      KIOSK_SWITCH_CA_FILE: file('ca.crt'),
      KIOSK_TLS_CERT_FILE: file('kiosk.crt'),
      KIOSK_TLS_KEY_FILE: file('kiosk.key'),
    });
    expect(withCert.holder).toBe(CARD_NO);
    const without = await tapAt(app, { KIOSK_SWITCH_CA_FILE: file('ca.crt') });
    expect(without).toEqual({ holder: undefined, events: [{ type: 'card_error', error: 'unreachable' }] });
  });

  it('plaintext only when told KIOSK_SWITCH_PLAINTEXT=allow, and then a TLS switch is not reached', async () => {
    const app = await tlsSwitch('ktlsp', TLS_ENV);
    expect(loadKioskConfig({ KIOSK_CREDENTIAL_FILE: file('credential.json') }).tls).toEqual({});
    expect(loadKioskConfig({ KIOSK_CREDENTIAL_FILE: file('credential.json'), KIOSK_SWITCH_PLAINTEXT: 'allow' }).tls).toBeUndefined();
    expect(await tapAt(app, { KIOSK_SWITCH_PLAINTEXT: 'allow' })).toEqual({
      holder: undefined,
      events: [{ type: 'card_error', error: 'unreachable' }],
    });
  });

  it('bad TLS settings stop the start, naming the variable', () => {
    const base = { KIOSK_CREDENTIAL_FILE: file('credential.json') };
    const refused = (env: Record<string, string>): string => {
      try {
        loadKioskConfig({ ...base, ...env });
      } catch (err) {
        if (err instanceof KioskConfigError) return err.message;
        throw err;
      }
      return 'accepted';
    };
    expect(refused({ KIOSK_SWITCH_PLAINTEXT: 'yes' })).toMatch(/KIOSK_SWITCH_PLAINTEXT must be "allow"/);
    expect(refused({ KIOSK_SWITCH_CA_FILE: file('missing.crt') })).toMatch(/^KIOSK_SWITCH_CA_FILE: cannot read/);
    expect(refused({ KIOSK_SWITCH_CA_FILE: file('kiosk.ext') })).toMatch(/^KIOSK_SWITCH_CA_FILE: .* is not a PEM file/);
    expect(refused({ KIOSK_TLS_CERT_FILE: file('kiosk.crt') })).toMatch(/KIOSK_TLS_CERT_FILE and KIOSK_TLS_KEY_FILE go together/);
    expect(refused({ KIOSK_SWITCH_PLAINTEXT: 'allow', KIOSK_SWITCH_CA_FILE: file('ca.crt') })).toMatch(/cannot go with/);
    chmodSync(file('kiosk.key'), 0o644);
    try {
      expect(refused({ KIOSK_TLS_CERT_FILE: file('kiosk.crt'), KIOSK_TLS_KEY_FILE: file('kiosk.key') })).toMatch(
        /^KIOSK_TLS_KEY_FILE: .* is readable by other users: chmod 600 it$/,
      );
    } finally {
      chmodSync(file('kiosk.key'), 0o600);
    }
  });
});
