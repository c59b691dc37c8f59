// HPACK (RFC 7541) for the bench's raw HTTP/2 client: a full decoder (static and dynamic tables,
// Huffman-coded strings), because the server's encoder is free to use all of it, and a stateless
// encoder for requests (literals without indexing, so the client keeps no encoder table).

/** RFC 7541 Appendix A. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/**
 * RFC 7541 Appendix B as code lengths of symbols 0..256 (256 is EOS). The code is canonical: codes are
 * handed out in order of (length, symbol), so the lengths alone rebuild the table (checked in the tests:
 * the lengths satisfy Kraft's equality, ' ' is 010100 and EOS is thirty 1 bits).
 */
export const HUFFMAN_CODE_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10,
  12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7,
  7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22,
  23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22,
  23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20,
  24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS = 256;
const MAX_CODE_LENGTH = 30;

/** Canonical decoding tables: per length, the first code, how many codes, and where its symbols start. */
interface Canonical {
  readonly firstCode: number[];
  readonly count: number[];
  readonly offset: number[];
  readonly symbols: number[];
}

function buildCanonical(lengths: readonly number[]): Canonical {
  const symbols = lengths.map((_, s) => s).sort((a, b) => (lengths[a] ?? 0) - (lengths[b] ?? 0) || a - b);
  const firstCode = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  const count = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  const offset = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  for (const l of lengths) count[l]! += 1;
  let code = 0;
  let index = 0;
  for (let l = 1; l <= MAX_CODE_LENGTH; l++) {
    firstCode[l] = code;
    offset[l] = index;
    code = (code + count[l]!) * 2;
    index += count[l]!;
  }
  return { firstCode, count, offset, symbols };
}

const CANONICAL = buildCanonical(HUFFMAN_CODE_LENGTHS);

/** The canonical code of a symbol (for the tests: ' ' must be 0x14, EOS 0x3fffffff). */
export function huffmanCode(symbol: number): { code: number; length: number } {
  const length = HUFFMAN_CODE_LENGTHS[symbol] ?? 0;
  const rank = CANONICAL.symbols.indexOf(symbol) - (CANONICAL.offset[length] ?? 0);
  return { code: (CANONICAL.firstCode[length] ?? 0) + rank, length };
}

export class HpackError extends Error {
  override readonly name = 'HpackError';
}

/** Decodes a Huffman-coded string (bytes as latin1 characters; header values here are ASCII). */
export function huffmanDecode(bytes: Uint8Array, start: number, end: number): string {
  let out = '';
  let code = 0;
  let length = 0;
  for (let i = start; i < end; i++) {
    const byte = bytes[i] ?? 0;
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      length++;
      const first = CANONICAL.firstCode[length] ?? 0;
      const n = CANONICAL.count[length] ?? 0;
      if (code - first < n && code >= first) {
        const symbol = CANONICAL.symbols[(CANONICAL.offset[length] ?? 0) + code - first] ?? EOS;
        if (symbol === EOS) throw new HpackError('EOS inside a Huffman string');
        out += String.fromCharCode(symbol);
        code = 0;
        length = 0;
      } else if (length > MAX_CODE_LENGTH) throw new HpackError('bad Huffman code');
    }
  }
  // Padding: fewer than 8 bits, all ones (a prefix of EOS).
  if (length > 7 || code !== 2 ** length - 1) throw new HpackError('bad Huffman padding');
  return out;
}

const DEFAULT_TABLE_SIZE = 4096;
const ENTRY_OVERHEAD = 32;

/** One connection's HPACK decoder: the dynamic table lives as long as the connection. */
export class HpackDecoder {
  private readonly dynamic: [string, string][] = [];
  private size = 0;
  private maxSize = DEFAULT_TABLE_SIZE;

  constructor(private readonly limit = DEFAULT_TABLE_SIZE) {}

  private entry(index: number): readonly [string, string] {
    if (index >= 1 && index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] as readonly [string, string];
    const dynamic = this.dynamic[index - STATIC_TABLE.length - 1];
    if (dynamic === undefined) throw new HpackError(`header index ${index} is not in the table`);
    return dynamic;
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    this.dynamic.unshift([name, value]);
    this.size += size;
    this.evict();
  }

  private evict(): void {
    while (this.size > this.maxSize) {
      const last = this.dynamic.pop();
      if (last === undefined) {
        this.size = 0;
        return;
      }
      this.size -= last[0].length + last[1].length + ENTRY_OVERHEAD;
    }
  }

  /** Calls `onHeader` for every field of one complete header block. */
  decode(block: Uint8Array, onHeader: (name: string, value: string) => void): void {
    const reader = new BlockReader(block);
    while (!reader.done()) {
      const first = reader.peek();
      if (first & 0x80) {
        const [name, value] = this.entry(reader.integer(7));
        onHeader(name, value);
      } else if (first & 0x40) {
        const index = reader.integer(6);
        const name = index === 0 ? reader.string() : this.entry(index)[0];
        const value = reader.string();
        this.add(name, value);
        onHeader(name, value);
      } else if (first & 0x20) {
        const size = reader.integer(5);
        if (size > this.limit) throw new HpackError(`table size update to ${size} is over ${this.limit}`);
        this.maxSize = size;
        this.evict();
      } else {
        const index = reader.integer(4); // without indexing (0000) or never indexed (0001)
        const name = index === 0 ? reader.string() : this.entry(index)[0];
        onHeader(name, reader.string());
      }
    }
  }
}

class BlockReader {
  private pos = 0;
  constructor(private readonly bytes: Uint8Array) {}

  done(): boolean {
    return this.pos >= this.bytes.length;
  }

  peek(): number {
    return this.bytes[this.pos] ?? 0;
  }

  integer(prefixBits: number): number {
    const max = 2 ** prefixBits - 1;
    let value = (this.bytes[this.pos++] ?? 0) & max;
    if (value < max) return value;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.bytes.length) throw new HpackError('truncated integer');
      const b = this.bytes[this.pos++] ?? 0;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
      if (scale > 2 ** 28) throw new HpackError('integer too large');
    }
  }

  string(): string {
    const huffman = (this.peek() & 0x80) !== 0;
    const length = this.integer(7);
    const end = this.pos + length;
    if (end > this.bytes.length) throw new HpackError('truncated string');
    const text = huffman ? huffmanDecode(this.bytes, this.pos, end) : latin1(this.bytes, this.pos, end);
    this.pos = end;
    return text;
  }
}

function latin1(bytes: Uint8Array, start: number, end: number): string {
  let out = '';
  for (let i = start; i < end; i++) out += String.fromCharCode(bytes[i] ?? 0);
  return out;
}

function encodeInteger(out: number[], value: number, prefixBits: number, firstByteBits: number): void {
  const max = 2 ** prefixBits - 1;
  if (value < max) {
    out.push(firstByteBits | value);
    return;
  }
  out.push(firstByteBits | max);
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
}

function encodeString(out: number[], text: string): void {
  encodeInteger(out, text.length, 7, 0);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7e || c < 0x20) throw new HpackError(`header text must be printable ASCII: ${JSON.stringify(text)}`);
    out.push(c);
  }
}

/**
 * A request header block: pseudo-headers first, every field a literal without indexing (with a static
 * name index where there is one), so the block is the same bytes on every connection and can be cached.
 */
export function encodeRequestHeaders(fields: readonly (readonly [string, string])[]): Uint8Array {
  const out: number[] = [];
  for (const [name, value] of fields) {
    const full = STATIC_TABLE.findIndex(([n, v]) => n === name && v === value);
    if (full >= 0) {
      encodeInteger(out, full + 1, 7, 0x80);
      continue;
    }
    const nameIndex = STATIC_TABLE.findIndex(([n]) => n === name);
    if (nameIndex >= 0) encodeInteger(out, nameIndex + 1, 4, 0x00);
    else {
      out.push(0x00);
      encodeString(out, name);
    }
    encodeString(out, value);
  }
  return Uint8Array.from(out);
}
