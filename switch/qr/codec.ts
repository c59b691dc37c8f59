// Sealing and opening campus QR codes (format: switch/qr/format.ts, docs/campus-qr.md). AES-256-GCM
// under a key derived from CAMPUS_QR_SECRET: a code cannot be made or altered without the switch's key
// (the tag fails), and a POS that scans one learns only when it was issued, not whose it is (the card
// number and the card's QR epoch are sealed).
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { campusQrHeader, joinCampusQr, NONCE_BYTES, parseCampusQr, SEALED_BYTES, TAG_BYTES } from './format.js';

const CARD_DIGITS = 20;
const CARD_BYTES = CARD_DIGITS / 2;

export interface CampusQrContents {
  readonly cardNo: string;
  /** The card's QR epoch when the code was issued; any later loss, freeze, replacement or unbinding moves it on. */
  readonly epoch: number;
  /** The nonce, base64url: the code's single-use id. */
  readonly codeId: string;
  readonly issuedAtMs: number;
}

function packCard(cardNo: string, epoch: number): Buffer {
  if (!/^\d{1,20}$/.test(cardNo)) throw new RangeError(`card number "${cardNo.slice(0, 24)}" is not 1-20 digits`);
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffffffff) throw new RangeError(`QR epoch ${epoch} is not a uint32`);
  const out = Buffer.alloc(SEALED_BYTES, 0xff);
  for (let i = 0; i < cardNo.length; i++) {
    const digit = cardNo.charCodeAt(i) - 48;
    const at = i >> 1;
    out[at] = i % 2 === 0 ? (digit << 4) | 0x0f : ((out[at] ?? 0) & 0xf0) | digit;
  }
  out.writeUInt32BE(epoch, CARD_BYTES);
  return out;
}

/** Two digits per BCD byte, as text: the card number is built from pieces, not digit by digit. */
const DIGIT_PAIRS: readonly string[] = Array.from({ length: 256 }, (_, byte) => `${byte >> 4}${byte & 0x0f}`);

function unpackCard(plain: Buffer): { cardNo: string; epoch: number } | undefined {
  let cardNo = '';
  for (let at = 0; at < CARD_BYTES; at++) {
    const byte = plain[at] ?? 0xff;
    const high = byte >> 4;
    const low = byte & 0x0f;
    if (high === 0x0f) break;
    if (high > 9) return undefined;
    if (low === 0x0f) {
      cardNo += String.fromCharCode(0x30 + high);
      break;
    }
    if (low > 9) return undefined;
    cardNo += DIGIT_PAIRS[byte] ?? '';
  }
  if (cardNo === '') return undefined;
  return { cardNo, epoch: plain.readUInt32BE(CARD_BYTES) };
}

export class CampusQrCodec {
  /** A KeyObject, made once: a Buffer key is checked and wrapped again by every createDecipheriv. */
  private readonly key: KeyObject;

  constructor(secret: string) {
    if (secret.length < 32) throw new RangeError('the campus QR secret must be at least 32 characters');
    // A derived key: the configured secret is never used for two purposes.
    this.key = createSecretKey(Buffer.from(hkdfSync('sha256', secret, 'cardswitch', 'campus-qr aes-256-gcm v1', 32)));
  }

  issue(cardNo: string, epoch: number, nowMs: number): string {
    const header = campusQrHeader(Math.floor(nowMs / 1000));
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(header);
    const sealed = Buffer.concat([cipher.update(packCard(cardNo, epoch)), cipher.final()]);
    return joinCampusQr(header, nonce, sealed, cipher.getAuthTag());
  }

  /** The contents of a genuine code, or undefined for anything malformed, altered or forged. Expiry is the caller's. */
  open(text: string): CampusQrContents | undefined {
    const parts = parseCampusQr(text);
    if (parts === undefined) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', this.key, parts.nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(parts.header);
    decipher.setAuthTag(parts.tag);
    // GCM is a stream mode: update() answers every byte; final() only checks the tag.
    const plain = decipher.update(parts.sealed);
    try {
      decipher.final();
    } catch {
      return undefined;
    }
    const card = unpackCard(plain);
    if (card === undefined) return undefined;
    // The nonce is a view of the decoded payload: read in place, not copied.
    const nonce = Buffer.from(parts.nonce.buffer, parts.nonce.byteOffset, parts.nonce.byteLength);
    return { cardNo: card.cardNo, epoch: card.epoch, codeId: nonce.toString('base64url'), issuedAtMs: parts.issuedAtSec * 1000 };
  }
}

/** Whether a code issued at `issuedAtMs` is still accepted at `nowMs` (issue time from a clock at most `skewMs` ahead). */
export function campusQrFresh(issuedAtMs: number, nowMs: number, validSec: number, skewMs: number): boolean {
  return issuedAtMs <= nowMs + skewMs && nowMs - issuedAtMs <= validSec * 1000;
}
