// WeChat Pay on the wire, shared by the adapter (adapter.ts) and the simulator (simulator.ts): both sides of
// each signature, so a change of the algorithm cannot make them agree by accident with only one of them.
//
// API v2 (code payments, query, reverse, refund, authcodetoopenid, downloadbill): XML bodies
//   <xml><key><![CDATA[value]]></key>...</xml>, signed with the merchant's API key: the non-empty fields but
//   `sign`, sorted by name (ASCII), joined as k=v&k=v, then "&key=<API key>"; HMAC-SHA256 keyed with the API
//   key (sign_type=HMAC-SHA256, what we send) or MD5 (the old default, when sign_type is absent), upper-case hex.
//   Answers are signed the same way with the request's sign_type; an answer with return_code=FAIL carries
//   no signature (it is a refusal of the request itself, e.g. 签名错误).
// API v3 (recharge orders, their notifications): JSON bodies; requests carry
//   Authorization: WECHATPAY2-SHA256-RSA2048 mchid="",nonce_str="",signature="",timestamp="",serial_no=""
//   where signature = base64 RSA-SHA256 (PKCS#1 v1.5, merchant private key) of
//   "METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n"; answers and notifications carry Wechatpay-Timestamp,
//   -Nonce, -Signature, -Serial over "TIMESTAMP\nNONCE\nBODY\n", signed with the platform private key.
//   Notification resources are AES-256-GCM encrypted with the APIv3 key (base64 of ciphertext + 16-byte tag).
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createSign,
  createVerify,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { XMLParser } from 'fast-xml-parser';

export type V2SignType = 'HMAC-SHA256' | 'MD5';

/** A v2 XML body is a flat set of fields; more than this many, or a body larger than MAX_BODY_BYTES, is not one. */
const MAX_V2_FIELDS = 128;
/** Every answer and notification is small; a larger body is refused before it is parsed. A bill may be larger. */
export const MAX_BODY_BYTES = 64 * 1024;
export const MAX_BILL_BYTES = 16 * 1024 * 1024;

export function nonceStr(): string {
  return randomBytes(16).toString('hex');
}

/** The v2 signature of `fields` (every field but `sign`, empty values left out). */
export function signV2(fields: Readonly<Record<string, string>>, apiKey: string, signType: V2SignType): string {
  const text =
    Object.keys(fields)
      .filter((name) => name !== 'sign' && fields[name] !== undefined && fields[name] !== '')
      .sort()
      .map((name) => `${name}=${fields[name]}`)
      .join('&') + `&key=${apiKey}`;
  const digest = signType === 'MD5' ? createHash('md5').update(text, 'utf8') : createHmac('sha256', apiKey).update(text, 'utf8');
  return digest.digest('hex').toUpperCase();
}

export function verifyV2(fields: Readonly<Record<string, string>>, apiKey: string, signType: V2SignType): boolean {
  const given = fields['sign'];
  if (given === undefined || given === '') return false;
  return equalText(given.toUpperCase(), signV2(fields, apiKey, signType));
}

function equalText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cdata(value: string): string {
  // "]]>" cannot appear inside one CDATA section: split it across two.
  return `<![CDATA[${value.replaceAll(']]>', ']]]]><![CDATA[>')}]]>`;
}

export function toXml(fields: Readonly<Record<string, string>>): string {
  const parts = Object.entries(fields)
    .filter(([, value]) => value !== '')
    .map(([name, value]) => {
      if (!/^[a-z_][a-z0-9_]*$/i.test(name)) throw new RangeError(`not an XML field name: ${name}`);
      return `<${name}>${cdata(value)}</${name}>`;
    });
  return `<xml>${parts.join('')}</xml>`;
}

const xmlParser = new XMLParser({
  parseTagValue: false,
  ignoreAttributes: true,
  processEntities: true,
  htmlEntities: false,
  ignoreDeclaration: true,
  trimValues: false,
});

/**
 * The fields of a flat v2 XML body, or undefined when it is not one (the caller treats that as unreadable).
 * Whitespace between the fields is not a field (WeChat Pay's answers may put each field on its own line).
 */
export function fromXml(body: string): Record<string, string> | undefined {
  if (body.length > MAX_BODY_BYTES) return undefined;
  const flat = flatFields(body);
  return flat === SLOW_PATH ? fromXmlWithParser(body) : flat;
}

/**
 * fromXml through fast-xml-parser: declarations, comments, entities, attributes, self-closed and CR LF.
 * Exported for the test that holds the fast path to the same answers.
 */
export function fromXmlWithParser(body: string): Record<string, string> | undefined {
  if (body.length > MAX_BODY_BYTES || !/^\s*(<\?xml[^>]*>\s*)?<xml>/.test(body)) return undefined;
  let parsed: unknown;
  try {
    parsed = xmlParser.parse(body, true);
  } catch {
    return undefined;
  }
  const root = (parsed as { xml?: unknown }).xml;
  if (root === '' || root === undefined) return root === '' ? {} : undefined;
  if (typeof root !== 'object' || root === null || Array.isArray(root)) return undefined;
  const entries = Object.entries(root as Record<string, unknown>);
  if (entries.length > MAX_V2_FIELDS + 1) return undefined;
  const fields: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (typeof value !== 'string') return undefined; // nested or repeated: not a v2 body
    // The parser's name for text between the fields: whitespace is layout; anything else is not a v2 body.
    if (name === '#text') {
      if (value.trim() !== '') return undefined;
      continue;
    }
    fields[name] = value;
  }
  return Object.keys(fields).length > MAX_V2_FIELDS ? undefined : fields;
}

const SLOW_PATH = Symbol('slow path');
const FIELD_OPEN = /<([A-Za-z_][A-Za-z0-9_]{0,63})>/y;
const CDATA_OPEN = '<![CDATA[';
const CDATA_CLOSE = ']]>';

/**
 * The common shape, read by hand: `<xml>`, then fields `<name>` holding CDATA sections and plain text
 * (no `&`, no `<`), `</xml>`. fast-xml-parser cost the switch about 115 µs per answer (loadtest/RESULTS.md,
 * "Seventh session"); this about a tenth of it. Anything else goes to the parser (SLOW_PATH), so the two
 * agree on every body (test/channel-wire.test.ts).
 */
function flatFields(body: string): Record<string, string> | undefined | typeof SLOW_PATH {
  let i = skipSpace(body, 0);
  if (!body.startsWith('<xml>', i) || body.includes('\r')) return SLOW_PATH;
  i += 5;
  const fields: Record<string, string> = {};
  let count = 0;
  for (;;) {
    i = skipSpace(body, i);
    if (body.startsWith('</xml>', i)) return skipSpace(body, i + 6) === body.length ? fields : SLOW_PATH;
    FIELD_OPEN.lastIndex = i;
    const open = FIELD_OPEN.exec(body);
    const name = open?.[1];
    if (open === null || name === undefined || name === '__proto__') return SLOW_PATH;
    if (Object.hasOwn(fields, name) || ++count > MAX_V2_FIELDS) return undefined; // repeated or too many: not a v2 body
    const close = `</${name}>`;
    i += open[0].length;
    let value = '';
    for (;;) {
      if (body.startsWith(close, i)) break;
      if (body.startsWith(CDATA_OPEN, i)) {
        const end = body.indexOf(CDATA_CLOSE, i + CDATA_OPEN.length);
        if (end < 0) return SLOW_PATH;
        value += body.slice(i + CDATA_OPEN.length, end);
        i = end + CDATA_CLOSE.length;
        continue;
      }
      const next = body.indexOf('<', i);
      if (next < 0 || next === i) return SLOW_PATH; // unterminated, or a nested element / comment
      const text = body.slice(i, next);
      if (text.includes('&')) return SLOW_PATH; // entities: the parser's
      value += text;
      i = next;
    }
    fields[name] = value;
    i += close.length;
  }
}

function skipSpace(text: string, from: number): number {
  let i = from;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x09 && c !== 0x0d) break;
    i++;
  }
  return i;
}

/** "METHOD\nPATH\nTIMESTAMP\nNONCE\nBODY\n": what the merchant signs in a v3 request. */
export function v3RequestMessage(method: string, pathWithQuery: string, timestamp: string, nonce: string, body: string): string {
  return `${method}\n${pathWithQuery}\n${timestamp}\n${nonce}\n${body}\n`;
}

/** "TIMESTAMP\nNONCE\nBODY\n": what the platform signs in a v3 answer or notification. */
export function v3AnswerMessage(timestamp: string, nonce: string, body: string): string {
  return `${timestamp}\n${nonce}\n${body}\n`;
}

export function rsaSign(message: string, privateKey: KeyObject): string {
  return createSign('RSA-SHA256').update(message, 'utf8').sign(privateKey, 'base64');
}

export function rsaVerify(message: string, signatureBase64: string, publicKey: KeyObject): boolean {
  try {
    return createVerify('RSA-SHA256').update(message, 'utf8').verify(publicKey, signatureBase64, 'base64');
  } catch {
    return false;
  }
}

export interface V3Authorization {
  readonly mchid: string;
  readonly nonce_str: string;
  readonly signature: string;
  readonly timestamp: string;
  readonly serial_no: string;
}

export const V3_SCHEMA = 'WECHATPAY2-SHA256-RSA2048';

export function v3AuthorizationHeader(auth: V3Authorization): string {
  return `${V3_SCHEMA} mchid="${auth.mchid}",nonce_str="${auth.nonce_str}",signature="${auth.signature}",timestamp="${auth.timestamp}",serial_no="${auth.serial_no}"`;
}

export function parseV3Authorization(header: string | undefined): V3Authorization | undefined {
  if (header === undefined || !header.startsWith(`${V3_SCHEMA} `)) return undefined;
  const values = new Map<string, string>();
  for (const match of header.slice(V3_SCHEMA.length + 1).matchAll(/([a-z_]+)="([^"]*)"/g)) values.set(match[1] ?? '', match[2] ?? '');
  const get = (name: string): string => values.get(name) ?? '';
  const auth = {
    mchid: get('mchid'),
    nonce_str: get('nonce_str'),
    signature: get('signature'),
    timestamp: get('timestamp'),
    serial_no: get('serial_no'),
  };
  return Object.values(auth).every((v) => v !== '') ? auth : undefined;
}

export interface EncryptedResource {
  readonly algorithm: 'AEAD_AES_256_GCM';
  readonly ciphertext: string;
  readonly associated_data: string;
  readonly nonce: string;
  readonly original_type: string;
}

export function encryptResource(plaintext: string, apiV3Key: string, associatedData: string, originalType: string): EncryptedResource {
  const nonce = randomBytes(6).toString('hex'); // 12 characters, used as the 12-byte IV as WeChat does
  const cipher = createCipheriv('aes-256-gcm', Buffer.from(apiV3Key, 'utf8'), Buffer.from(nonce, 'utf8'));
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return {
    algorithm: 'AEAD_AES_256_GCM',
    ciphertext: sealed.toString('base64'),
    associated_data: associatedData,
    nonce,
    original_type: originalType,
  };
}

/** The plaintext, or undefined when the tag does not verify (wrong key, tampered ciphertext). */
export function decryptResource(
  resource: { ciphertext: string; associated_data?: string; nonce: string },
  apiV3Key: string,
): string | undefined {
  try {
    const sealed = Buffer.from(resource.ciphertext, 'base64');
    if (sealed.length < 17) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', Buffer.from(apiV3Key, 'utf8'), Buffer.from(resource.nonce, 'utf8'));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    decipher.setAAD(Buffer.from(resource.associated_data ?? '', 'utf8'));
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

const SHANGHAI_OFFSET_MS = 8 * 3_600_000;

/** v2 time_end "yyyyMMddHHmmss" (Beijing time) -> ms, undefined when malformed. */
export function parseTimeEnd(value: string | undefined): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(value ?? '');
  if (m === null) return undefined;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) - SHANGHAI_OFFSET_MS;
}

/** ms -> "yyyyMMddHHmmss" in Beijing time. */
export function formatTimeEnd(ms: number): string {
  return new Date(ms + SHANGHAI_OFFSET_MS).toISOString().replace(/[-T:]/g, '').slice(0, 14);
}

/** ms -> "2026-11-30 12:34:56" in Beijing time (the bill's 交易时间). */
export function formatBillTime(ms: number): string {
  return new Date(ms + SHANGHAI_OFFSET_MS).toISOString().replace('T', ' ').slice(0, 19);
}

export function parseBillTime(value: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(value);
  if (m === null) return undefined;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) - SHANGHAI_OFFSET_MS;
}

/** ms -> RFC 3339 with +08:00 (v3 time_expire, success_time). */
export function formatRfc3339(ms: number): string {
  return new Date(ms + SHANGHAI_OFFSET_MS).toISOString().slice(0, 19) + '+08:00';
}

/** The Beijing date "YYYY-MM-DD" of an instant. */
export function shanghaiDate(ms: number): string {
  return new Date(ms + SHANGHAI_OFFSET_MS).toISOString().slice(0, 10);
}

/**
 * "12.34" / "12.3" / "12" / "0.00" (the bill's yuan) -> 1234 fen, exactly: digits only, never through a float.
 * undefined for anything else (a sign, more than 2 decimals, a number past 10^11 yuan).
 */
export function yuanToFen(value: string): number | undefined {
  const m = /^(\d{1,11})(?:\.(\d{1,2}))?$/.exec(value);
  if (m === null) return undefined;
  return Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'));
}

/** A v2 total_fee / refund_fee: a whole number of fen, no sign, no leading zeros beyond "0". */
export function parseFen(value: string | undefined): number | undefined {
  if (value === undefined || !/^(0|[1-9]\d{0,12})$/.test(value)) return undefined;
  return Number(value);
}
