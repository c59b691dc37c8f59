// The campus QR code's text format, shared by the switch, the tests and the phone page (issue 14): plain
// TypeScript with no Node or browser imports. Sealing and opening (the cryptography) is switch-only, in
// switch/qr/codec.ts; this module reads only what is meant to be read by anyone: the version and the
// time the code was issued (so the page can count down), and it tells a campus code from the Alipay and
// WeChat payment codes a POS may scan. The format is documented in docs/campus-qr.md.
//
//   text  = "CQ" + base32(payload)            RFC 4648 alphabet A-Z 2-7, no padding: 79 characters,
//                                              all in the QR alphanumeric set (a dense, fast-scanning QR)
//   payload (48 bytes):
//     [0]       version (1)
//     [1..5]    issued at, whole seconds since the Unix epoch, unsigned 40-bit big-endian
//     [6..17]   nonce: 12 random bytes, the AES-GCM IV and the code's single-use id
//     [18..31]  sealed: the card number (20 BCD digits, padded with 0xF) and the card's QR epoch (uint32 BE)
//     [32..47]  the AES-256-GCM tag over the sealed part, with bytes [0..5] as additional data

export const CAMPUS_QR_PREFIX = 'CQ';
export const CAMPUS_QR_VERSION = 1;
export const CAMPUS_QR_PAYLOAD_BYTES = 48;
export const CAMPUS_QR_TEXT_LENGTH = CAMPUS_QR_PREFIX.length + Math.ceil((CAMPUS_QR_PAYLOAD_BYTES * 8) / 5);
/** Anything else is not a campus QR code (a scanner's stray characters, another scheme's code). */
export const CAMPUS_QR_PATTERN = new RegExp(`^${CAMPUS_QR_PREFIX}[A-Z2-7]{${CAMPUS_QR_TEXT_LENGTH - CAMPUS_QR_PREFIX.length}}$`);
/** The page shows a new code this often (the guide: 自动刷新间隔30S); a code is accepted for at most 60 s. */
export const CAMPUS_QR_REFRESH_MS = 30_000;
export const CAMPUS_QR_MAX_VALID_SEC = 60;

export const HEADER_BYTES = 6;
export const NONCE_BYTES = 12;
export const SEALED_BYTES = 14;
export const TAG_BYTES = 16;

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** Character code -> 5-bit value, -1 outside the alphabet (a table: this runs for every code a POS scans). */
const DECODE = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** Undefined when `text` holds a character outside the alphabet or leftover bits that are not zero. */
export function base32Decode(text: string, offset = 0): Uint8Array | undefined {
  const out = new Uint8Array(Math.floor(((text.length - offset) * 5) / 8));
  let buffer = 0;
  let bits = 0;
  let at = 0;
  for (let i = offset; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? (DECODE[code] ?? -1) : -1;
    if (value < 0) return undefined;
    buffer = (buffer << 5) | value;
    bits += 5;
    if (bits >= 8) {
      out[at++] = (buffer >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
    buffer &= (1 << bits) - 1;
  }
  // Canonical encodings only: a second spelling of the same bytes would be a second "code".
  if (buffer !== 0) return undefined;
  return out;
}

export interface CampusQrParts {
  readonly version: number;
  readonly issuedAtSec: number;
  /** Version and issue time: authenticated, not secret. */
  readonly header: Uint8Array;
  readonly nonce: Uint8Array;
  readonly sealed: Uint8Array;
  readonly tag: Uint8Array;
}

/** The parts of a well-formed campus QR code, or undefined; says nothing about whether it is genuine. */
export function parseCampusQr(text: string): CampusQrParts | undefined {
  if (!CAMPUS_QR_PATTERN.test(text)) return undefined;
  const payload = base32Decode(text, CAMPUS_QR_PREFIX.length);
  if (payload === undefined || payload.length !== CAMPUS_QR_PAYLOAD_BYTES) return undefined;
  const version = payload[0] ?? 0;
  if (version !== CAMPUS_QR_VERSION) return undefined;
  let issuedAtSec = 0;
  for (let i = 1; i < HEADER_BYTES; i++) issuedAtSec = issuedAtSec * 256 + (payload[i] ?? 0);
  const sealedAt = HEADER_BYTES + NONCE_BYTES;
  return {
    version,
    issuedAtSec,
    header: payload.subarray(0, HEADER_BYTES),
    nonce: payload.subarray(HEADER_BYTES, sealedAt),
    sealed: payload.subarray(sealedAt, sealedAt + SEALED_BYTES),
    tag: payload.subarray(sealedAt + SEALED_BYTES),
  };
}

/** The header of a code issued at `issuedAtSec` (the switch seals the rest). */
export function campusQrHeader(issuedAtSec: number): Uint8Array {
  if (!Number.isSafeInteger(issuedAtSec) || issuedAtSec < 0 || issuedAtSec >= 2 ** 40)
    throw new RangeError(`issue time ${issuedAtSec} is not a 40-bit second count`);
  const header = new Uint8Array(HEADER_BYTES);
  header[0] = CAMPUS_QR_VERSION;
  let rest = issuedAtSec;
  for (let i = HEADER_BYTES - 1; i >= 1; i--) {
    header[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  return header;
}

export function joinCampusQr(header: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, tag: Uint8Array): string {
  const payload = new Uint8Array(CAMPUS_QR_PAYLOAD_BYTES);
  payload.set(header, 0);
  payload.set(nonce, HEADER_BYTES);
  payload.set(sealed, HEADER_BYTES + NONCE_BYTES);
  payload.set(tag, HEADER_BYTES + NONCE_BYTES + SEALED_BYTES);
  return CAMPUS_QR_PREFIX + base32Encode(payload);
}

/** When a code stops being accepted (ms since the epoch), from its own header; undefined when malformed. */
export function campusQrExpiresAtMs(text: string, validSec: number = CAMPUS_QR_MAX_VALID_SEC): number | undefined {
  const parts = parseCampusQr(text);
  return parts === undefined ? undefined : (parts.issuedAtSec + validSec) * 1000;
}

export type PaymentCodeKind = 'campus_qr' | 'alipay' | 'wechat' | 'unknown';

/**
 * What a POS has scanned. Alipay payment codes are 16-24 digits starting 25-30; WeChat's are 18 digits
 * starting 10-15; a campus code starts with letters, so no code can be taken for another scheme's.
 */
export function classifyPaymentCode(text: string): PaymentCodeKind {
  if (CAMPUS_QR_PATTERN.test(text)) return 'campus_qr';
  if (/^(1[0-5])\d{16}$/.test(text)) return 'wechat';
  if (/^(2[5-9]|30)\d{14,22}$/.test(text)) return 'alipay';
  return 'unknown';
}
