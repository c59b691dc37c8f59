// A small RFC 4180 CSV reader for operator imports: quoted fields, "" inside quotes, CRLF or LF line
// ends, a leading byte-order mark (Excel writes one). Every row carries the 1-based line on which it
// starts, so an error can point the operator at the line to fix. Everything is bounded: input size,
// rows, fields per row and field length; a structural error stops the parse with its line number.
import { InvalidArgumentError } from '../errors.js';

export interface CsvRow {
  /** 1-based line on which the row starts (a quoted field may span lines). */
  readonly line: number;
  readonly fields: readonly string[];
}

export interface CsvLimits {
  readonly maxChars: number;
  /** Rows including the header. */
  readonly maxRows: number;
  readonly maxFieldsPerRow: number;
  readonly maxFieldLength: number;
}

export const DEFAULT_CSV_LIMITS: CsvLimits = {
  maxChars: 64 * 1024 * 1024,
  maxRows: 200_001,
  maxFieldsPerRow: 32,
  maxFieldLength: 256,
};

export class CsvError extends Error {
  override readonly name = 'CsvError';
  constructor(
    readonly line: number,
    message: string,
    /** The same in zh-CN, for the operator's import report. */
    readonly zh: string,
  ) {
    super(message);
  }
}

/**
 * A file with a header and no data rows: refused as a whole (INVALID_ARGUMENT), nothing imported and
 * nothing in the operator log, rather than answered "imported 0".
 */
export class NoDataRowsError extends InvalidArgumentError {
  constructor(what: 'cardholder' | 'terminal') {
    super(`the file has no ${what} rows: after the header line it needs at least one ${what}`, {
      reason: 'NO_ROWS',
      field: 'csv',
      zh: `文件在标题行之后没有${what === 'cardholder' ? '持卡人' : '终端'}数据，至少需要一行`,
    });
  }
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const CR = 0x0d;
const LF = 0x0a;
const BOM = 0xfeff;

interface Cursor {
  pos: number;
  line: number;
}

export function parseCsv(text: string, limits: CsvLimits = DEFAULT_CSV_LIMITS): CsvRow[] {
  if (text.length > limits.maxChars) {
    throw new CsvError(
      1,
      `the file has ${text.length} characters; at most ${limits.maxChars} are accepted`,
      `文件有${text.length}个字符，最多接受${limits.maxChars}个`,
    );
  }
  const cursor: Cursor = { pos: text.charCodeAt(0) === BOM ? 1 : 0, line: 1 };
  const rows: CsvRow[] = [];
  while (cursor.pos < text.length) {
    const line = cursor.line;
    const fields = readRow(text, cursor, limits);
    // A blank line (including the usual trailing newline) is not a row.
    if (fields.length === 1 && fields[0] === '') continue;
    if (rows.length >= limits.maxRows) {
      throw new CsvError(
        line,
        `the file has more than ${limits.maxRows} rows; split it into smaller files`,
        `文件超过${limits.maxRows}行，请拆分成较小的文件`,
      );
    }
    rows.push({ line, fields });
  }
  return rows;
}

function readRow(text: string, cursor: Cursor, limits: CsvLimits): string[] {
  const fields: string[] = [];
  for (;;) {
    const value = text.charCodeAt(cursor.pos) === QUOTE ? readQuoted(text, cursor) : readPlain(text, cursor);
    if (value.length > limits.maxFieldLength) {
      throw new CsvError(
        cursor.line,
        `field ${fields.length + 1} is longer than ${limits.maxFieldLength} characters`,
        `第${fields.length + 1}列超过${limits.maxFieldLength}个字符`,
      );
    }
    fields.push(value);
    if (fields.length > limits.maxFieldsPerRow) {
      throw new CsvError(cursor.line, `the row has more than ${limits.maxFieldsPerRow} fields`, `该行超过${limits.maxFieldsPerRow}列`);
    }
    const c = text.charCodeAt(cursor.pos);
    if (c === COMMA) {
      cursor.pos++;
      continue;
    }
    // readPlain and readQuoted stop only at a comma, a line end or the end of the text.
    skipLineEnd(text, cursor);
    return fields;
  }
}

function skipLineEnd(text: string, cursor: Cursor): void {
  const c = text.charCodeAt(cursor.pos);
  if (c === CR) cursor.pos += text.charCodeAt(cursor.pos + 1) === LF ? 2 : 1;
  else if (c === LF) cursor.pos++;
  else return; // end of text
  cursor.line++;
}

function readPlain(text: string, cursor: Cursor): string {
  const start = cursor.pos;
  let pos = start;
  for (; pos < text.length; pos++) {
    const c = text.charCodeAt(pos);
    if (c === COMMA || c === CR || c === LF) break;
    if (c === QUOTE) {
      throw new CsvError(
        cursor.line,
        'a quote (") inside an unquoted field; wrap the field in quotes and double the quote ("")',
        '未加引号的字段中含有引号（"）：请用引号括起该字段，并把其中的引号写成两个（""）',
      );
    }
  }
  cursor.pos = pos;
  return text.slice(start, pos);
}

function readQuoted(text: string, cursor: Cursor): string {
  const startLine = cursor.line;
  let value = '';
  let pos = cursor.pos + 1;
  for (;;) {
    const close = text.indexOf('"', pos);
    if (close < 0) throw new CsvError(startLine, 'a quoted field is never closed (missing ")', '带引号的字段没有结束（缺少 "）');
    const chunk = text.slice(pos, close);
    cursor.line += countLineEnds(chunk);
    value += chunk;
    if (text.charCodeAt(close + 1) === QUOTE) {
      value += '"';
      pos = close + 2;
      continue;
    }
    cursor.pos = close + 1;
    break;
  }
  const after = text.charCodeAt(cursor.pos);
  if (cursor.pos < text.length && after !== COMMA && after !== CR && after !== LF) {
    throw new CsvError(
      cursor.line,
      'unexpected text after a closing quote; a quoted field must end at a comma or the line end',
      '结束引号后还有内容：带引号的字段须在逗号或行尾结束',
    );
  }
  return value;
}

function countLineEnds(chunk: string): number {
  let count = 0;
  for (let i = 0; i < chunk.length; i++) {
    const c = chunk.charCodeAt(i);
    if (c === LF || (c === CR && chunk.charCodeAt(i + 1) !== LF)) count++;
  }
  return count;
}

/** Quotes a field only when it must be (comma, quote, line break, or leading/trailing space). */
export function csvField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function csvLine(fields: readonly string[]): string {
  return fields.map(csvField).join(',');
}
