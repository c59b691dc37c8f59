// The kiosk's configuration, from the environment (npm run kiosk sets it for development; a kiosk in
// a lobby gets it from its systemd unit or the packaged app's launcher). The terminal credential is
// read from a file only this user can read, never from the command line.
import { readFileSync, statSync } from 'node:fs';
import type { KioskSettings } from '../shared/api.js';
import type { SwitchTls, TerminalCredential } from './switch-client.js';

export interface KioskConfig {
  readonly address: string;
  readonly credential: TerminalCredential;
  /** TLS to the switch; undefined only with KIOSK_SWITCH_PLAINTEXT=allow. */
  readonly tls: SwitchTls | undefined;
  readonly settings: KioskSettings;
  /** Development only: the serial of the demo card the idle screen's "tap a demo card" reads. */
  readonly demoCardSerial: string | undefined;
}

export class KioskConfigError extends Error {}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new KioskConfigError(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  return n;
}

/** The settings the renderer gets; the defaults are the switch's (WeChat and Alipay 999.00 yuan a recharge). */
export function kioskSettings(env: NodeJS.ProcessEnv, location: string): KioskSettings {
  return {
    dev: env['KIOSK_DEV'] === '1',
    location,
    idleTimeoutSec: int(env, 'KIOSK_IDLE_TIMEOUT_SEC', 60, 3, 600),
    rechargePresetsFen: [2000, 5000, 10_000, 20_000, 50_000],
    rechargeMaxFen: {
      wechat: int(env, 'WECHAT_MAX_RECHARGE_FEN', 99_900, 1, 100_000_000),
      alipay: int(env, 'ALIPAY_MAX_RECHARGE_FEN', 99_900, 1, 100_000_000),
    },
    feeMinFen: 100,
    feeMaxFen: 50_000,
    feePresetsFen: [1000, 2000, 5000, 10_000],
    qrTimeoutSec: int(env, 'KIOSK_QR_TIMEOUT_SEC', 180, 10, 900),
  };
}

/** A PEM file named by `name`; `secret`: it must be readable by this user only (a private key). */
function pemFile(env: NodeJS.ProcessEnv, name: string, secret: boolean): Buffer | undefined {
  const file = env[name] ?? '';
  if (file === '') return undefined;
  let pem: Buffer;
  try {
    if (secret && (statSync(file).mode & 0o077) !== 0)
      throw new KioskConfigError(`${name}: ${file} is readable by other users: chmod 600 it`);
    pem = readFileSync(file);
  } catch (err) {
    if (err instanceof KioskConfigError) throw err;
    throw new KioskConfigError(`${name}: cannot read ${file}: ${(err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN ')) throw new KioskConfigError(`${name}: ${file} is not a PEM file`);
  return pem;
}

/**
 * TLS to the switch, as a production switch serves it (it refuses plaintext unless told GRPC_PLAINTEXT=allow):
 * the terminal secret, card passwords and card serials cross the lobby's network. Plaintext only with
 * KIOSK_SWITCH_PLAINTEXT=allow (development against npm start, or a TLS proxy on this machine).
 */
export function switchTls(env: NodeJS.ProcessEnv): SwitchTls | undefined {
  const plaintext = env['KIOSK_SWITCH_PLAINTEXT'] ?? '';
  if (plaintext !== '' && plaintext !== 'allow')
    throw new KioskConfigError(`KIOSK_SWITCH_PLAINTEXT must be "allow" or unset, got "${plaintext.slice(0, 40)}"`);
  const ca = pemFile(env, 'KIOSK_SWITCH_CA_FILE', false);
  const cert = pemFile(env, 'KIOSK_TLS_CERT_FILE', false);
  const key = pemFile(env, 'KIOSK_TLS_KEY_FILE', true);
  if ((cert === undefined) !== (key === undefined))
    throw new KioskConfigError("KIOSK_TLS_CERT_FILE and KIOSK_TLS_KEY_FILE go together (the kiosk's client certificate and its key)");
  if (plaintext === 'allow') {
    if (ca !== undefined || cert !== undefined)
      throw new KioskConfigError('KIOSK_SWITCH_PLAINTEXT=allow cannot go with KIOSK_SWITCH_CA_FILE or KIOSK_TLS_CERT_FILE');
    return undefined;
  }
  return { ...(ca === undefined ? {} : { ca }), ...(cert === undefined || key === undefined ? {} : { cert, key }) };
}

export function loadKioskConfig(env: NodeJS.ProcessEnv): KioskConfig {
  const file = env['KIOSK_CREDENTIAL_FILE'] ?? '';
  if (file === '') {
    throw new KioskConfigError(
      'KIOSK_CREDENTIAL_FILE is not set: it names a JSON file {"terminalId", "secret", "location"} readable by this user only (npm run kiosk writes one for the demo kiosk)',
    );
  }
  let text: string;
  try {
    if ((statSync(file).mode & 0o077) !== 0) throw new KioskConfigError(`${file} is readable by other users: chmod 600 it`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof KioskConfigError) throw err;
    throw new KioskConfigError(`cannot read the kiosk credential ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not the parser's message: V8 quotes the text around the mistake, which is the secret more often than not.
    throw new KioskConfigError(`${file} is not valid JSON; it must hold {"terminalId": "...", "secret": "..."}`);
  }
  const c = parsed as Partial<Record<'terminalId' | 'secret' | 'location', unknown>>;
  if (typeof c.terminalId !== 'string' || typeof c.secret !== 'string' || c.terminalId === '' || c.secret === '') {
    throw new KioskConfigError(`${file} must hold {"terminalId": "...", "secret": "..."}`);
  }
  const tls = switchTls(env);
  const demo = env['KIOSK_DEMO_SERIAL'];
  const settings = kioskSettings(env, typeof c.location === 'string' ? c.location : '');
  return {
    address: env['KIOSK_SWITCH_ADDRESS'] ?? '127.0.0.1:50051',
    credential: { terminalId: c.terminalId, secret: c.secret },
    tls,
    settings,
    demoCardSerial: settings.dev && demo !== undefined && demo !== '' ? demo : undefined,
  };
}
