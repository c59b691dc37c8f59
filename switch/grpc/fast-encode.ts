// Hand-written protobuf encoders for the switch's two hottest answers, AuthorizeResponse and
// StreamedAuthorizeResponse: the exact bytes ts-proto writes (test/fast-encode.test.ts compares them
// field by field and over random messages), sized first and written into one Buffer. ts-proto's
// serializer builds the message in a growing BinaryWriter and then copies it into a Buffer
// (`Buffer.from(...finish())`); in a profile of streamed taps that serializer was a visible share of the
// switch's CPU (loadtest/RESULTS.md, "Figures once kept in comments", row C4). Anything outside the fast
// path's assumptions (a negative or non-integer number, a streamed error) goes to ts-proto's encoder,
// so the wire format never depends on this file being complete.
import type { ServiceDefinition } from '@grpc/grpc-js';
import { DeclineReason, Outcome } from '../../proto/gen/cardswitch/v1/common.js';
import { AuthorizeResponse, StreamedAuthorizeResponse } from '../../proto/gen/cardswitch/v1/pos.js';

const MAX_VARINT = Number.MAX_SAFE_INTEGER;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

/** One varint field: its tag byte (field numbers below 16) and its value. */
function writeField(out: Buffer, at: number, tag: number, n: number): number {
  out[at] = tag;
  return writeVarint(out, at + 1, n);
}

/** A non-negative whole number a varint can carry exactly. */
function plain(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n <= MAX_VARINT;
}

function fitsFastPath(m: AuthorizeResponse): boolean {
  return (
    plain(m.outcome) &&
    plain(m.declineReason) &&
    plain(m.balanceAfterFen) &&
    plain(m.amountFen) &&
    plain(m.pinAttemptsLeft) &&
    plain(m.decidedAtMs)
  );
}

/** Encoded size of `m` (fast path only), with the byte lengths of its strings. */
function measure(m: AuthorizeResponse): { size: number; display: number; txn: number; card: number } {
  const display = m.displayText === '' ? 0 : Buffer.byteLength(m.displayText);
  const txn = m.transactionId === '' ? 0 : Buffer.byteLength(m.transactionId);
  const card = m.cardNumber === '' ? 0 : Buffer.byteLength(m.cardNumber);
  let size = 0;
  if (m.outcome !== Outcome.OUTCOME_UNSPECIFIED) size += 1 + varintSize(m.outcome);
  if (m.declineReason !== DeclineReason.DECLINE_REASON_UNSPECIFIED) size += 1 + varintSize(m.declineReason);
  if (m.displayText !== '') size += 1 + varintSize(display) + display;
  if (m.balanceAfterFen !== 0) size += 1 + varintSize(m.balanceAfterFen);
  if (m.transactionId !== '') size += 1 + varintSize(txn) + txn;
  if (m.amountFen !== 0) size += 1 + varintSize(m.amountFen);
  if (m.cardNumber !== '') size += 1 + varintSize(card) + card;
  if (m.pinAttemptsLeft !== 0) size += 1 + varintSize(m.pinAttemptsLeft);
  if (m.decidedAtMs !== 0) size += 1 + varintSize(m.decidedAtMs);
  return { size, display, txn, card };
}

function writeString(out: Buffer, at: number, tag: number, text: string, bytes: number): number {
  out[at++] = tag;
  at = writeVarint(out, at, bytes);
  out.write(text, at, bytes, 'utf8');
  return at + bytes;
}

function writeAuthorizeResponse(out: Buffer, at: number, m: AuthorizeResponse, sizes: ReturnType<typeof measure>): number {
  if (m.outcome !== Outcome.OUTCOME_UNSPECIFIED) at = writeField(out, at, 0x08, m.outcome);
  if (m.declineReason !== DeclineReason.DECLINE_REASON_UNSPECIFIED) at = writeField(out, at, 0x10, m.declineReason);
  if (m.displayText !== '') at = writeString(out, at, 0x1a, m.displayText, sizes.display);
  if (m.balanceAfterFen !== 0) at = writeField(out, at, 0x20, m.balanceAfterFen);
  if (m.transactionId !== '') at = writeString(out, at, 0x2a, m.transactionId, sizes.txn);
  if (m.amountFen !== 0) at = writeField(out, at, 0x30, m.amountFen);
  if (m.cardNumber !== '') at = writeString(out, at, 0x3a, m.cardNumber, sizes.card);
  if (m.pinAttemptsLeft !== 0) at = writeField(out, at, 0x40, m.pinAttemptsLeft);
  if (m.decidedAtMs !== 0) at = writeField(out, at, 0x48, m.decidedAtMs);
  return at;
}

export function encodeAuthorizeResponse(m: AuthorizeResponse): Buffer {
  if (!fitsFastPath(m)) return Buffer.from(AuthorizeResponse.encode(m).finish());
  const sizes = measure(m);
  const out = Buffer.allocUnsafe(sizes.size);
  const end = writeAuthorizeResponse(out, 0, m, sizes);
  if (end !== sizes.size) throw new Error(`AuthorizeResponse encoder wrote ${end} of ${sizes.size} bytes`);
  return out;
}

export function encodeStreamedAuthorizeResponse(m: StreamedAuthorizeResponse): Buffer {
  const response = m.response;
  if (response === undefined || m.error !== undefined || !plain(m.tag) || !fitsFastPath(response)) {
    return Buffer.from(StreamedAuthorizeResponse.encode(m).finish());
  }
  const sizes = measure(response);
  const size = (m.tag !== 0 ? 1 + varintSize(m.tag) : 0) + 1 + varintSize(sizes.size) + sizes.size;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  if (m.tag !== 0) at = writeField(out, at, 0x08, m.tag);
  out[at++] = 0x12;
  at = writeVarint(out, at, sizes.size);
  at = writeAuthorizeResponse(out, at, response, sizes);
  if (at !== size) throw new Error(`StreamedAuthorizeResponse encoder wrote ${at} of ${size} bytes`);
  return out;
}

/** PosService's definition with the fast encoders for Authorize and AuthorizeStream answers. */
export function withFastEncoders<S extends ServiceDefinition>(service: S): S {
  const out: Record<string, unknown> = { ...service };
  const authorize = service['authorize'];
  const stream = service['authorizeStream'];
  if (authorize !== undefined) out['authorize'] = { ...authorize, responseSerialize: encodeAuthorizeResponse };
  if (stream !== undefined) out['authorizeStream'] = { ...stream, responseSerialize: encodeStreamedAuthorizeResponse };
  return out as S;
}
