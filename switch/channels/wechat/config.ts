// WeChat Pay's configuration from WECHATPAY_* environment variables, validated at start-up like
// switch/config.ts: every problem at once, each naming the variable and what it accepts. A secret's value
// is never repeated in a message (only its length, or the file's path). README "Payment channels: WeChat
// Pay" says where each value comes from in the merchant platform (pay.weixin.qq.com).
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../config.js';
import type { V2SignType } from './wire.js';

export interface WechatPayConfig {
  /** https://api.mch.weixin.qq.com (or the simulator's http://127.0.0.1:port). */
  readonly apiBase: string;
  /** The appid the merchant account is bound to (公众号 / 小程序 / 企业微信 app): openids are per appid. */
  readonly appId: string;
  /** 商户号. */
  readonly mchId: string;
  /** The v2 API key (API密钥, 32 characters). */
  readonly apiKey: string;
  /** v2 sign_type we send and expect back: HMAC-SHA256 (default), or MD5 for an account that only has MD5. */
  readonly signType: V2SignType;
  /** The APIv3 key (APIv3密钥, 32 bytes): decrypts notification resources. */
  readonly apiV3Key: string;
  /** The merchant API certificate's private key (apiclient_key.pem): signs v3 requests and JSAPI paySign. */
  readonly merchantPrivateKey: KeyObject;
  /** The merchant API certificate's serial number (serial_no of the v3 Authorization header). */
  readonly merchantSerial: string;
  /** The merchant API certificate (apiclient_cert.pem): the client certificate of v2 /secapi/ (reverse, refund). */
  readonly merchantCertPem: string | undefined;
  /** The merchant API certificate's private key as PEM, for the same TLS client certificate. */
  readonly merchantKeyPem: string | undefined;
  /** WeChat Pay's public key (微信支付公钥) or platform certificate's key: verifies v3 answers and notifications. */
  readonly platformPublicKey: KeyObject;
  /** Its id: PUB_KEY_ID_... (public key) or the platform certificate's serial number (Wechatpay-Serial). */
  readonly platformSerial: string;
  /** Where WeChat Pay posts v3 payment notifications: the gateway's public https URL. */
  readonly notifyUrl: string;
  /** spbill_create_ip of code payments: the IP address of the machine that calls the API. */
  readonly clientIp: string;
  /** Each API call gets at most this long. */
  readonly timeoutMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;

const MAX_PEM_FILE_BYTES = 1024 * 1024;

class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  raw(name: string): string {
    return (this.env[name] ?? '').trim();
  }

  /** A value that may be shown in a message (ids, URLs). */
  plain(name: string, fallback: string, pattern: RegExp, accepts: string): string {
    const value = this.raw(name) === '' ? fallback : this.raw(name);
    if (!pattern.test(value)) this.problems.push(`${name}=${JSON.stringify(value.slice(0, 200))}: ${accepts}`);
    return value;
  }

  /** A secret: its value never appears in a message. */
  secret(name: string, pattern: RegExp, accepts: string): string {
    const value = this.raw(name);
    if (value === '') this.problems.push(`${name}: required (${accepts})`);
    else if (!pattern.test(value)) this.problems.push(`${name}: the value (${value.length} characters) ${accepts}`);
    return value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.raw(name);
    if (raw === '') return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: must be a whole number between ${min} and ${max}`);
      return fallback;
    }
    return value;
  }

  pemFile(name: string, what: string): string | undefined {
    const path = this.raw(name);
    if (path === '') {
      this.problems.push(`${name}: required (the path of ${what})`);
      return undefined;
    }
    try {
      const bytes = readFileSync(path);
      if (bytes.length > MAX_PEM_FILE_BYTES) throw new Error(`${bytes.length} bytes is not a PEM file`);
      const text = bytes.toString('utf8');
      if (!text.includes('-----BEGIN ')) throw new Error('no "-----BEGIN ..." line');
      return text;
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.problems.push(`${name}=${JSON.stringify(path)}: cannot be read as ${what} (${reason})`);
      return undefined;
    }
  }
}

/** undefined when WECHATPAY_MCH_ID is unset (the channel is off); ConfigError when anything is wrong. */
export function loadWechatPayConfig(env: Env = process.env): WechatPayConfig | undefined {
  const r = new Reader(env);
  if (r.raw('WECHATPAY_MCH_ID') === '') {
    const stray = Object.keys(env).filter((name) => name.startsWith('WECHATPAY_') && (env[name] ?? '') !== '');
    if (stray.length > 0) throw new ConfigError([`WECHATPAY_MCH_ID: required when ${stray.sort().join(', ')} is set`]);
    return undefined;
  }
  const apiBase = r.plain(
    'WECHATPAY_API_BASE',
    'https://api.mch.weixin.qq.com',
    /^https?:\/\/[^\s/]+$/,
    'must be http(s)://host[:port], no path',
  );
  const mchId = r.plain('WECHATPAY_MCH_ID', '', /^\d{8,12}$/, 'must be the 商户号 (8-12 digits)');
  const appId = r.plain(
    'WECHATPAY_APP_ID',
    '',
    /^wx[0-9a-f]{16}$|^ww[0-9a-f]{16}$/,
    'must be the appid bound to the merchant (wx + 16 hex digits)',
  );
  const apiKey = r.secret('WECHATPAY_API_KEY', /^[A-Za-z0-9]{32}$/, 'must be the 32-character API密钥 (v2)');
  const signType = r.plain('WECHATPAY_SIGN_TYPE', 'HMAC-SHA256', /^(HMAC-SHA256|MD5)$/, 'must be HMAC-SHA256 or MD5') as V2SignType;
  const apiV3Key = r.secret('WECHATPAY_API_V3_KEY', /^[\x21-\x7e]{32}$/, 'must be the 32-character APIv3密钥');
  const notifyUrl = r.plain('WECHATPAY_NOTIFY_URL', '', /^https?:\/\/[^\s?#]+$/, 'must be the https URL WeChat Pay posts notifications to');
  const clientIp = r.plain('WECHATPAY_CLIENT_IP', '127.0.0.1', /^[0-9a-fA-F.:]{2,45}$/, 'must be an IP address (spbill_create_ip)');
  const timeoutMs = r.integer('WECHATPAY_TIMEOUT_MS', 5000, 100, 60_000);
  const merchant = readMerchant(r, apiBase.startsWith('https:'));
  const platform = readPlatform(r);
  if (r.problems.length > 0 || merchant === undefined || platform === undefined) throw new ConfigError(r.problems);
  return { apiBase, appId, mchId, apiKey, signType, apiV3Key, notifyUrl, clientIp, timeoutMs, ...merchant, ...platform };
}

type MerchantPart = Pick<WechatPayConfig, 'merchantPrivateKey' | 'merchantSerial' | 'merchantCertPem' | 'merchantKeyPem'>;

function readMerchant(r: Reader, https: boolean): MerchantPart | undefined {
  const keyPem = r.pemFile('WECHATPAY_MCH_PRIVATE_KEY_FILE', 'apiclient_key.pem (the merchant API certificate private key)');
  const certPath = r.raw('WECHATPAY_MCH_CERT_FILE');
  let certPem: string | undefined;
  if (certPath !== '' || https) certPem = r.pemFile('WECHATPAY_MCH_CERT_FILE', 'apiclient_cert.pem (the merchant API certificate)');
  if (keyPem === undefined) return undefined;
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    r.problems.push(`WECHATPAY_MCH_PRIVATE_KEY_FILE: not an unencrypted private key (${(err as Error).message})`);
    return undefined;
  }
  let serial = r.raw('WECHATPAY_MCH_CERT_SERIAL');
  if (certPem !== undefined) {
    try {
      const cert = new X509Certificate(certPem);
      if (!cert.checkPrivateKey(key))
        r.problems.push('WECHATPAY_MCH_PRIVATE_KEY_FILE: is not the private key of the certificate in WECHATPAY_MCH_CERT_FILE');
      if (serial === '') serial = cert.serialNumber;
      else if (serial.toUpperCase() !== cert.serialNumber.toUpperCase())
        r.problems.push(`WECHATPAY_MCH_CERT_SERIAL=${serial}: the certificate in WECHATPAY_MCH_CERT_FILE has serial ${cert.serialNumber}`);
    } catch (err) {
      r.problems.push(`WECHATPAY_MCH_CERT_FILE: not a certificate (${(err as Error).message})`);
    }
  }
  if (!/^[0-9A-Fa-f]{8,64}$/.test(serial))
    r.problems.push(
      'WECHATPAY_MCH_CERT_SERIAL: required (the merchant API certificate serial number, hex) unless WECHATPAY_MCH_CERT_FILE is set',
    );
  return { merchantPrivateKey: key, merchantSerial: serial.toUpperCase(), merchantCertPem: certPem, merchantKeyPem: keyPem };
}

type PlatformPart = Pick<WechatPayConfig, 'platformPublicKey' | 'platformSerial'>;

/**
 * WECHATPAY_PLATFORM_CERT_FILE holds either WeChat Pay's public key (pub_key.pem, with
 * WECHATPAY_PLATFORM_PUBLIC_KEY_ID = PUB_KEY_ID_...) or a platform certificate (its serial is read from it).
 */
function readPlatform(r: Reader): PlatformPart | undefined {
  const pem = r.pemFile('WECHATPAY_PLATFORM_CERT_FILE', "WeChat Pay's public key or platform certificate");
  if (pem === undefined) return undefined;
  const keyId = r.raw('WECHATPAY_PLATFORM_PUBLIC_KEY_ID');
  try {
    if (pem.includes('-----BEGIN CERTIFICATE-----')) {
      const cert = new X509Certificate(pem);
      return { platformPublicKey: cert.publicKey, platformSerial: keyId === '' ? cert.serialNumber.toUpperCase() : keyId };
    }
    const key = createPublicKey(pem);
    if (!/^PUB_KEY_ID_[0-9A-Za-z]{1,64}$/.test(keyId)) {
      r.problems.push('WECHATPAY_PLATFORM_PUBLIC_KEY_ID: required with a public key file (PUB_KEY_ID_ followed by its id)');
      return undefined;
    }
    return { platformPublicKey: key, platformSerial: keyId };
  } catch (err) {
    r.problems.push(`WECHATPAY_PLATFORM_CERT_FILE: neither a public key nor a certificate (${(err as Error).message})`);
    return undefined;
  }
}
