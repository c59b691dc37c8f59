// A small protobuf writer for the PosService requests and a reader for the two leading fields of the
// answers, plus gRPC's 5-byte message framing. The bench's load generator uses it instead of the
// generated ts-proto code so it stays cheap and self-contained; test/loadtest.test.ts proves it writes
// exactly the bytes ts-proto writes and decodes back to the same messages.
//
// Pure TypeScript: no k6 and no Node imports (no TextEncoder either: k6 lacks it).
import type { CredentialMessage, PosCall } from './traffic.js';

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;
/** No request is anywhere near this; the switch itself refuses more than 64 KiB. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
export const GRPC_FRAME_HEADER_BYTES = 5;

/** Bytes of an unsigned varint. */
function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) size++;
  return size;
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) return false;
  return true;
}

/** UTF-8 bytes of a string (terminal ids, serials and PINs are ASCII, but any text works). */
export function utf8(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (code < 0x80) out.push(code);
    else if (code < 0x800) out.push(0xc0 | (code >> 6), 0x80 | (code & 0x3f));
    else if (code < 0x10000) out.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
    else out.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 0x3f), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
  }
  return Uint8Array.from(out);
}

/**
 * A protobuf field list: the message is measured first, then written into one buffer of exactly its
 * size (optionally after a gRPC frame header), so encoding a request allocates one array.
 */
type Field =
  | { readonly kind: 'varint'; readonly field: number; readonly value: number }
  | { readonly kind: 'string'; readonly field: number; readonly value: string; readonly bytes: Uint8Array | undefined }
  | { readonly kind: 'message'; readonly field: number; readonly fields: readonly Field[]; readonly size: number };

function varintField(field: number, value: number): Field[] {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`field ${field}: varint needs a safe integer >= 0, got ${value}`);
  return value === 0 ? [] : [{ kind: 'varint', field, value }]; // proto3: defaults are not written
}

function stringField(field: number, value: string): Field[] {
  if (value === '') return [];
  return [{ kind: 'string', field, value, bytes: isAscii(value) ? undefined : utf8(value) }];
}

/** A sub-message is written whenever it is present, even when empty (as ts-proto does). */
function messageField(field: number, fields: readonly Field[]): Field[] {
  return [{ kind: 'message', field, fields, size: sizeOf(fields) }];
}

function sizeOf(fields: readonly Field[]): number {
  let size = 0;
  for (const f of fields) {
    size += varintSize(f.field * 8);
    if (f.kind === 'varint') size += varintSize(f.value);
    else {
      const n = f.kind === 'string' ? (f.bytes?.length ?? f.value.length) : f.size;
      size += varintSize(n) + n;
    }
  }
  return size;
}

function writeVarint(out: Uint8Array, at: number, value: number): number {
  let pos = at;
  let v = value;
  while (v >= 0x80) {
    out[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[pos++] = v;
  return pos;
}

function writeFields(out: Uint8Array, at: number, fields: readonly Field[]): number {
  let pos = at;
  for (const f of fields) {
    if (f.kind === 'varint') {
      pos = writeVarint(out, pos, f.field * 8 + WIRE_VARINT);
      pos = writeVarint(out, pos, f.value);
    } else if (f.kind === 'string') {
      pos = writeVarint(out, pos, f.field * 8 + WIRE_LENGTH_DELIMITED);
      if (f.bytes !== undefined) {
        pos = writeVarint(out, pos, f.bytes.length);
        out.set(f.bytes, pos);
        pos += f.bytes.length;
      } else {
        pos = writeVarint(out, pos, f.value.length);
        for (let i = 0; i < f.value.length; i++) out[pos++] = f.value.charCodeAt(i);
      }
    } else {
      pos = writeVarint(out, pos, f.field * 8 + WIRE_LENGTH_DELIMITED);
      pos = writeVarint(out, pos, f.size);
      pos = writeFields(out, pos, f.fields);
    }
  }
  return pos;
}

function credentialFields(field: number, credential: CredentialMessage): Field[] {
  // cardswitch.v1.Credential: oneof kind { CardTap card = 1; CampusQr campus_qr = 2; ThirdPartyCode third_party = 3; }
  let inner: Field[];
  if ('card' in credential) inner = messageField(1, stringField(1, credential.card.cardSerial));
  else if ('campusQr' in credential) inner = messageField(2, stringField(1, credential.campusQr.payload));
  else inner = messageField(3, stringField(1, credential.thirdParty.code));
  return messageField(field, inner);
}

/** The fields of one PosService request, numbered as pos.proto numbers them. */
function callFields(call: PosCall): Field[] {
  switch (call.rpc) {
    case 'Authorize': {
      const m = call.message;
      return [
        ...stringField(1, m.terminalId),
        ...varintField(2, m.sequenceNumber),
        ...varintField(3, m.amountFen),
        ...credentialFields(4, m.credential),
        ...stringField(5, m.pin),
      ];
    }
    case 'Reverse': {
      const m = call.message;
      return [
        ...stringField(1, m.terminalId),
        ...varintField(2, m.originalSequenceNumber),
        ...varintField(3, m.amountFen),
        ...credentialFields(4, m.credential),
      ];
    }
    case 'Inquire':
      return [...stringField(1, call.message.terminalId), ...credentialFields(2, call.message.credential)];
    case 'WaterDebit': {
      const m = call.message;
      return [
        ...stringField(1, m.terminalId),
        ...varintField(2, m.sequenceNumber),
        ...varintField(3, m.amountFen),
        ...credentialFields(4, m.credential),
      ];
    }
    case 'Settle':
      return [
        ...stringField(1, call.message.terminalId),
        ...varintField(2, call.message.sequenceNumber),
        ...credentialFields(3, call.message.credential),
      ];
  }
}

function encode(call: PosCall, headerBytes: number): Uint8Array {
  const fields = callFields(call);
  const size = sizeOf(fields);
  if (size > MAX_MESSAGE_BYTES) throw new RangeError(`message of ${size} bytes is over ${MAX_MESSAGE_BYTES}`);
  const out = new Uint8Array(headerBytes + size);
  if (headerBytes > 0) writeFrameHeader(out, size);
  writeFields(out, headerBytes, fields);
  return out;
}

/** The protobuf bytes of one PosService request. */
export function encodeCall(call: PosCall): Uint8Array {
  return encode(call, 0);
}

function writeFrameHeader(out: Uint8Array, n: number): void {
  out[0] = 0;
  out[1] = (n >>> 24) & 0xff;
  out[2] = (n >>> 16) & 0xff;
  out[3] = (n >>> 8) & 0xff;
  out[4] = n & 0xff;
}

/** gRPC length-prefixed message: 1 byte "not compressed", 4 bytes big-endian length, the message. */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(GRPC_FRAME_HEADER_BYTES + message.length);
  writeFrameHeader(frame, message.length);
  frame.set(message, GRPC_FRAME_HEADER_BYTES);
  return frame;
}

/** One request as a gRPC frame, encoded straight into the frame's buffer. */
export function encodeCallFrame(call: PosCall): Uint8Array {
  return encode(call, GRPC_FRAME_HEADER_BYTES);
}

/** The message inside one gRPC frame, or undefined when the bytes are not exactly one uncompressed frame. */
export function unframe(frame: Uint8Array): Uint8Array | undefined {
  if (frame.length < GRPC_FRAME_HEADER_BYTES || frame[0] !== 0) return undefined;
  const n = (frame[1] ?? 0) * 0x1000000 + ((frame[2] ?? 0) << 16) + ((frame[3] ?? 0) << 8) + (frame[4] ?? 0);
  if (frame.length !== GRPC_FRAME_HEADER_BYTES + n) return undefined;
  return frame.subarray(GRPC_FRAME_HEADER_BYTES);
}

export interface LeadingFields {
  /** Field 1 as a varint (Outcome, ReverseResult, or found as 0/1); 0 when absent (the proto3 default). */
  field1: number;
  /** Field 2 as a varint (DeclineReason); 0 when absent. */
  field2: number;
}

/**
 * Reads varint fields 1 and 2 of a message and skips the rest; returns undefined when the bytes are not
 * well-formed protobuf. Every PosService answer keeps its outcome in field 1 and its reason in field 2.
 */
export function readLeadingFields(message: Uint8Array): LeadingFields | undefined {
  const out: LeadingFields = { field1: 0, field2: 0 };
  const ok = walkFields(message, (field, varint, bytes) => {
    if (bytes !== undefined) return;
    if (field === 1) out.field1 = varint;
    else if (field === 2) out.field2 = varint;
  });
  return ok ? out : undefined;
}

/**
 * Calls `onField` for every varint field (with its value) and length-delimited field (with its bytes)
 * of a message, skips fixed-width ones, and returns false when the bytes are not well-formed protobuf.
 */
function walkFields(message: Uint8Array, onField: (field: number, varint: number, bytes: Uint8Array | undefined) => void): boolean {
  let pos = 0;
  const readVarint = (): number | undefined => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= message.length) return undefined;
      const b = message[pos++] ?? 0;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
    }
    return undefined;
  };
  while (pos < message.length) {
    const key = readVarint();
    if (key === undefined) return false;
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (wireType === WIRE_VARINT) {
      const value = readVarint();
      if (value === undefined) return false;
      onField(field, value, undefined);
    } else if (wireType === WIRE_LENGTH_DELIMITED) {
      const n = readVarint();
      if (n === undefined || pos + n > message.length) return false;
      onField(field, 0, message.subarray(pos, pos + n));
      pos += n;
    } else if (wireType === WIRE_FIXED64) pos += 8;
    else if (wireType === WIRE_FIXED32) pos += 4;
    else return false;
  }
  return pos === message.length;
}

// PosService/AuthorizeStream: StreamedAuthorizeRequest { uint64 tag = 1; string terminal_secret = 2;
// AuthorizeRequest request = 3 } and StreamedAuthorizeResponse { uint64 tag = 1; oneof result {
// AuthorizeResponse response = 2; StreamError error = 3 } } with StreamError { uint32 code = 1; string message = 2 }.

/** One StreamedAuthorizeRequest as a gRPC frame, around an already encoded AuthorizeRequest. */
export function encodeStreamedAuthorizeFrame(tag: number, terminalSecret: Uint8Array, request: Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(tag) || tag < 0) throw new RangeError(`tag must be a safe integer >= 0, got ${tag}`);
  const size =
    (tag === 0 ? 0 : 1 + varintSize(tag)) +
    (terminalSecret.length === 0 ? 0 : 1 + varintSize(terminalSecret.length) + terminalSecret.length) +
    1 +
    varintSize(request.length) +
    request.length;
  const out = new Uint8Array(GRPC_FRAME_HEADER_BYTES + size);
  writeFrameHeader(out, size);
  let at = GRPC_FRAME_HEADER_BYTES;
  if (tag !== 0) {
    out[at++] = (1 << 3) | WIRE_VARINT;
    at = writeVarint(out, at, tag);
  }
  if (terminalSecret.length !== 0) {
    out[at++] = (2 << 3) | WIRE_LENGTH_DELIMITED;
    at = writeVarint(out, at, terminalSecret.length);
    out.set(terminalSecret, at);
    at += terminalSecret.length;
  }
  out[at++] = (3 << 3) | WIRE_LENGTH_DELIMITED;
  at = writeVarint(out, at, request.length);
  out.set(request, at);
  return out;
}

export interface StreamedAnswer {
  readonly tag: number;
  /** The AuthorizeResponse's bytes, when the payment was answered. */
  readonly response: Uint8Array | undefined;
  /** The gRPC status a unary call would have ended with, when it was refused. */
  readonly error: { readonly code: number; readonly message: Uint8Array } | undefined;
}

/** Reads one StreamedAuthorizeResponse; undefined when it is malformed or carries neither result. */
export function readStreamedAnswer(message: Uint8Array): StreamedAnswer | undefined {
  let tag = 0;
  let response: Uint8Array | undefined;
  let errorBytes: Uint8Array | undefined;
  const ok = walkFields(message, (field, varint, bytes) => {
    if (field === 1 && bytes === undefined) tag = varint;
    else if (field === 2 && bytes !== undefined) response = bytes;
    else if (field === 3 && bytes !== undefined) errorBytes = bytes;
  });
  if (!ok) return undefined;
  let error: StreamedAnswer['error'];
  if (errorBytes !== undefined) {
    let code = 0;
    let text: Uint8Array = new Uint8Array(0);
    const inner = walkFields(errorBytes, (field, varint, bytes) => {
      if (field === 1 && bytes === undefined) code = varint;
      else if (field === 2 && bytes !== undefined) text = bytes;
    });
    if (!inner) return undefined;
    error = { code, message: text };
  }
  if (response === undefined && error === undefined) return undefined;
  return { tag, response, error };
}
