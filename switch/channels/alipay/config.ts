// Configuration of the Alipay channel from ALIPAY_* environment variables, validated at start-up like
// switch/config.ts: every problem at once, each naming the variable (never echoing a key's value).
//
//   ALIPAY_APP_ID                   the app's id (开放平台 > 应用 > APPID); empty: the channel is off
//   ALIPAY_APP_PRIVATE_KEY_FILE     PEM file of the app's private key (RSA 2048, PKCS#8 or PKCS#1), or
//   ALIPAY_APP_PRIVATE_KEY          the key itself (PEM, or the bare base64 the key tool prints)
//   ALIPAY_PUBLIC_KEY_FILE          PEM file of the Alipay public key (开发设置 > 接口加签方式 > 支付宝公钥), or
//   ALIPAY_PUBLIC_KEY               the key itself (PEM or bare base64)
//   ALIPAY_GATEWAY_URL              default https://openapi.alipay.com/gateway.do (sandbox:
//                                   https://openapi-sandbox.dl.alipaydev.com/gateway.do; the simulator's own)
//   ALIPAY_NOTIFY_URL               where Alipay posts payment notifications (our gateway's route)
//   ALIPAY_SELLER_ID                the merchant's PID (2088 + 12 digits); notifications for another
//                                   seller are refused. Empty: not checked
//   ALIPAY_TIMEOUT_MS               each call to the gateway gets at most this long (default 10000)
//
// Public-key mode only: certificate mode (app_cert_sn / alipay_root_cert_sn) is not supported.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../config.js';

export const ALIPAY_PRODUCTION_GATEWAY = 'https://openapi.alipay.com/gateway.do';
export const ALIPAY_SANDBOX_GATEWAY = 'https://openapi-sandbox.dl.alipaydev.com/gateway.do';

export interface AlipayConfig {
  readonly gatewayUrl: string;
  readonly appId: string;
  /** PKCS#8 PEM. A secret: never logged. */
  readonly appPrivateKeyPem: string;
  /** SPKI PEM: checks every answer and notification. */
  readonly alipayPublicKeyPem: string;
  /** Empty: no notify_url is sent (recharge orders are then settled by query only). */
  readonly notifyUrl: string;
  /** Empty: a notification's seller_id is not checked. */
  readonly sellerId: string;
  readonly timeoutMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The channel's configuration, or undefined when ALIPAY_APP_ID is empty (the channel is off). */
export function loadAlipayConfig(env: Env = process.env): AlipayConfig | undefined {
  const appId = (env.ALIPAY_APP_ID ?? '').trim();
  if (appId === '') return undefined;
  const problems: string[] = [];
  if (!/^\d{16}$/.test(appId)) problems.push(`ALIPAY_APP_ID=${JSON.stringify(appId)}: must be the app's 16-digit APPID`);
  const privateKey = readKey(env, 'ALIPAY_APP_PRIVATE_KEY', 'private', problems);
  const publicKey = readKey(env, 'ALIPAY_PUBLIC_KEY', 'public', problems);
  const gatewayUrl = env.ALIPAY_GATEWAY_URL?.trim() || ALIPAY_PRODUCTION_GATEWAY;
  if (!isHttpUrl(gatewayUrl)) problems.push(`ALIPAY_GATEWAY_URL=${JSON.stringify(gatewayUrl)}: must be an http:// or https:// URL`);
  const notifyUrl = env.ALIPAY_NOTIFY_URL?.trim() ?? '';
  if (notifyUrl !== '' && !isHttpUrl(notifyUrl)) {
    problems.push(`ALIPAY_NOTIFY_URL=${JSON.stringify(notifyUrl)}: must be an http:// or https:// URL Alipay can reach`);
  }
  const sellerId = env.ALIPAY_SELLER_ID?.trim() ?? '';
  if (sellerId !== '' && !/^2088\d{12}$/.test(sellerId)) {
    problems.push(`ALIPAY_SELLER_ID=${JSON.stringify(sellerId)}: must be the merchant PID, 2088 followed by 12 digits`);
  }
  const timeoutMs = readInteger(env, 'ALIPAY_TIMEOUT_MS', 10_000, 100, 60_000, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    gatewayUrl,
    appId,
    appPrivateKeyPem: privateKey?.export({ type: 'pkcs8', format: 'pem' }).toString() ?? '',
    alipayPublicKeyPem: publicKey?.export({ type: 'spki', format: 'pem' }).toString() ?? '',
    notifyUrl,
    sellerId,
    timeoutMs,
  };
}

function isHttpUrl(value: string): boolean {
  return /^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(value);
}

function readInteger(env: Env, name: string, fallback: number, min: number, max: number, problems: string[]): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    problems.push(`${name}=${JSON.stringify(raw)}: must be a whole number between ${min} and ${max}`);
    return fallback;
  }
  return value;
}

/** NAME_FILE (a PEM file) or NAME (PEM or bare base64 DER). Problems name the variable, never the key. */
function readKey(env: Env, name: string, kind: 'private' | 'public', problems: string[]): KeyObject | undefined {
  const file = env[`${name}_FILE`]?.trim() ?? '';
  let text = env[name]?.trim() ?? '';
  let source = name;
  if (file !== '') {
    source = `${name}_FILE=${JSON.stringify(file)}`;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      problems.push(`${source}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      return undefined;
    }
  }
  if (text === '') {
    problems.push(`${name} or ${name}_FILE: must be set when ALIPAY_APP_ID is (the ${kind} key, RSA 2048)`);
    return undefined;
  }
  try {
    const key = parseRsaKey(text, kind);
    if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA');
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new Error('shorter than 2048 bits');
    return key;
  } catch {
    problems.push(`${source}: is not an RSA ${kind} key of at least 2048 bits (PEM, or the base64 the Alipay key tool prints)`);
    return undefined;
  }
}

/** A PEM, or bare base64 DER as the Alipay key tool and platform show keys (PKCS#8 / SPKI, else PKCS#1). */
export function parseRsaKey(text: string, kind: 'private' | 'public'): KeyObject {
  if (text.includes('-----BEGIN')) return kind === 'private' ? createPrivateKey(text) : createPublicKey(text);
  const der = Buffer.from(text.replace(/\s+/g, ''), 'base64');
  const fromDer = (type: 'pkcs8' | 'spki' | 'pkcs1'): KeyObject =>
    kind === 'private'
      ? createPrivateKey({ key: der, format: 'der', type: type === 'spki' ? 'pkcs8' : type })
      : createPublicKey({ key: der, format: 'der', type: type === 'pkcs8' ? 'spki' : type });
  try {
    return fromDer(kind === 'private' ? 'pkcs8' : 'spki');
  } catch {
    return fromDer('pkcs1');
  }
}
