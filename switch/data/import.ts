// Operator imports of cardholders and terminals from CSV. The rule is all or nothing: every row is
// validated and checked against what Redis already holds before anything is written, and one bad row
// means nothing is imported, so an operator fixes the file and runs it again instead of repairing a
// half-imported batch. (The check and the writes are not one transaction across shards: a card created
// by someone else between the two is reported per row, and the rows written before it stay.)
import type { Ledger } from '../ledger/ledger.js';
import { claimDirectoryEntries, releaseDirectoryEntries, takenEntries } from '../ledger/import.js';
import { PIN_LENGTH } from '../domain/password.js';
import {
  displayTextProblem,
  shown,
  terminalProblems,
  type NewTerminal,
  type TerminalKind,
  type TerminalRegistry,
} from '../domain/terminals.js';
import { CsvError, DEFAULT_CSV_LIMITS, NoDataRowsError, parseCsv, type CsvRow } from './csv.js';

export const CARDHOLDER_HEADER = [
  'card_number',
  'card_serial',
  'name',
  'person_number',
  'holder_type',
  'document_type',
  'document_number',
  'phone',
  'opening_balance_fen',
] as const;
export const TERMINAL_HEADER = ['terminal_id', 'kind', 'merchant_id', 'location', 'secret'] as const;

/**
 * The largest CSV an AdminService import takes: 8 MiB as UTF-8 (what travels), whatever its characters (a
 * file of Chinese names reaches it with under 3 Mi characters). The switch's gRPC receive limit is a little
 * more (grpc/server.ts); a file over either limit gets IMPORT_TOO_LARGE_MESSAGE (grpc/receive-limit.ts).
 */
export const MAX_IMPORT_CSV_BYTES = 8 * 1024 * 1024;
/** The one refusal (RESOURCE_EXHAUSTED) of an import over MAX_IMPORT_CSV_BYTES, in zh-CN and English. */
export const IMPORT_TOO_LARGE_MESSAGE =
  'CSV 文件超过 8 MiB（UTF-8 编码），请拆分成较小的文件后分别导入；the CSV file is over 8 MiB (UTF-8): split it into smaller files and import each';

export const MAX_CARDHOLDER_ROWS = 200_000;
export const MAX_TERMINAL_ROWS = 10_000;
export const MAX_OPENING_BALANCE_FEN = 100_000_000;
export const MAX_NAME_LENGTH = 32;
/** Rows written per round: the progress callback is called after each. */
const IMPORT_CHUNK_ROWS = 2000;
/** Redis commands (or script calls) one import keeps in flight. */
const REDIS_CONCURRENCY = 256;

export const HOLDER_TYPES = ['student', 'staff'] as const;
export type HolderType = (typeof HOLDER_TYPES)[number];
export const DOCUMENT_TYPES = ['resident_id', 'passport'] as const;
export type DocumentType = (typeof DOCUMENT_TYPES)[number];

export interface Cardholder {
  readonly cardNo: string;
  /** Upper-case hex. */
  readonly cardSerial: string;
  readonly name: string;
  /** Student or staff number. */
  readonly personNumber: string;
  readonly holderType: HolderType;
  readonly documentType: DocumentType;
  /** Upper case (a resident ID may end in X). */
  readonly documentNumber: string;
  readonly phone: string;
  readonly openingBalanceFen: number;
}

export interface CardholderRow extends Cardholder {
  readonly line: number;
}

export interface TerminalRow extends NewTerminal {
  readonly line: number;
}

/** One problem with an operator's file: its line, the column it is about, and what to fix in English and zh-CN. */
export interface RowError {
  readonly line: number;
  /** A column of the header (card_number ...), or `header`, `row` (the row's shape) or `csv` (the file's syntax). */
  readonly field: string;
  readonly message: string;
  readonly zh: string;
}

/** A problem of one field: the column, English, zh-CN. */
interface FieldProblem {
  readonly field: string;
  readonly message: string;
  readonly zh: string;
}

export interface ParseResult<T> {
  readonly rows: T[];
  readonly errors: RowError[];
}

export interface ImportReport {
  readonly importedCount: number;
  readonly openingTotalFen: number;
  /** Empty when everything was imported. */
  readonly errors: RowError[];
  readonly elapsedMs: number;
}

/** Redis failed part-way through the writes: some rows are in, some are not. */
export class ImportInterruptedError extends Error {
  override readonly name = 'ImportInterruptedError';
  /** The same in zh-CN. */
  readonly zh: string;
  constructor(
    readonly writtenCount: number,
    cause: unknown,
    what: 'cardholders' | 'terminals' = 'cardholders',
  ) {
    super(
      `the import stopped after writing about ${writtenCount} ${what}: ${cause instanceof Error ? cause.message : String(cause)}. ` +
        'Running the same file again reports the written rows as conflicts; remove those lines and import the rest.',
      { cause },
    );
    this.zh = `导入在写入约${writtenCount}个${what === 'cardholders' ? '持卡人' : '终端'}后中断。再次导入同一文件会把已写入的行列为冲突：删除这些行后导入其余行。`;
  }
}

export interface CardholderImportDeps {
  /** The ledger: its scripts open the accounts, and its keys and connection serve the directory writes (ledger/import.ts). */
  readonly ledger: Ledger;
}

// ---- CSV to rows ----------------------------------------------------------------------------

function readTable(text: string, header: readonly string[], maxRows: number): ParseResult<CsvRow> {
  let table: CsvRow[];
  try {
    table = parseCsv(text, { ...DEFAULT_CSV_LIMITS, maxRows: maxRows + 1 });
  } catch (err) {
    if (err instanceof CsvError) return { rows: [], errors: [{ line: err.line, field: 'csv', message: err.message, zh: err.zh }] };
    throw err;
  }
  const first = table[0];
  if (first === undefined)
    return {
      rows: [],
      errors: [{ line: 1, field: 'header', message: 'the file is empty; it needs a header row', zh: '文件是空的，需要标题行' }],
    };
  const got = first.fields.map((f) => f.trim());
  if (got.length !== header.length || got.some((f, i) => f !== header[i])) {
    return {
      rows: [],
      errors: [
        {
          line: first.line,
          field: 'header',
          message: `the header must be exactly: ${header.join(',')}`,
          zh: `标题行须为（列名用英文、顺序不变）：${header.join(',')}`,
        },
      ],
    };
  }
  const errors: RowError[] = [];
  const rows = table.slice(1).filter((row) => {
    // A row of empty fields (",,,,,,,,": Excel saves formatted blank rows so) holds no data: skipped like a blank line.
    if (row.fields.every((f) => f.trim() === '')) return false;
    if (row.fields.length === header.length) return true;
    errors.push({
      line: row.line,
      field: 'row',
      message: `expected ${header.length} fields, found ${row.fields.length}`,
      zh: `应有${header.length}列，实际${row.fields.length}列`,
    });
    return false;
  });
  return { rows, errors };
}

const RESIDENT_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const RESIDENT_ID_CHECK_CHARS = '10X98765432';

/** GB 11643 check character (ISO 7064 MOD 11-2) of the first 17 digits; the demo generator makes valid numbers with it. */
export function residentIdCheckChar(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * (RESIDENT_ID_WEIGHTS[i] ?? 0);
  return RESIDENT_ID_CHECK_CHARS[sum % 11] ?? '';
}

const PASSPORT_NUMBER = new RegExp(`^[A-Z0-9]{${PIN_LENGTH},20}$`);

function documentProblem(type: DocumentType, number: string): FieldProblem | undefined {
  const field = 'document_number';
  if (type === 'passport') {
    // The card's initial password is the last PIN_LENGTH characters of the number: a shorter one would
    // leave the holder without a password that can ever match (kiosk, phone binding, cancelling a loss).
    return PASSPORT_NUMBER.test(number)
      ? undefined
      : {
          field,
          message: `document_number of a passport must be ${PIN_LENGTH}-20 letters or digits (the initial password is its last ${PIN_LENGTH}); check the number against the passport`,
          zh: `护照号须为${PIN_LENGTH}-20位字母或数字（初始密码为其后${PIN_LENGTH}位），请核对护照`,
        };
  }
  // Format only: the GB 11643 check digit is not enforced. Hand-made data often fails it (the brief's own
  // example 11010519900307123X does), and under all-or-nothing one such row would block the whole file.
  return /^\d{17}[\dX]$/.test(number)
    ? undefined
    : {
        field,
        message: 'document_number of a resident ID must be 17 digits followed by a digit or X',
        zh: '居民身份证号须为17位数字加1位数字或X',
      };
}

function nameProblem(name: string): FieldProblem | undefined {
  const length = [...name].length;
  if (length < 1 || length > MAX_NAME_LENGTH)
    return { field: 'name', message: `name must be 1-${MAX_NAME_LENGTH} characters`, zh: `姓名须为1-${MAX_NAME_LENGTH}个字符` };
  const text = displayTextProblem(name);
  if (text === 'control')
    return {
      field: 'name',
      message: 'name must not contain control or invisible format characters (a tab, a line break, a direction mark, a zero-width space)',
      zh: '姓名不能含控制字符或不可见的格式字符（制表符、换行、方向标记、零宽空格）',
    };
  if (text === 'undecodable')
    return {
      field: 'name',
      message: 'name holds characters that could not be decoded (U+FFFD): save the file as UTF-8 ("CSV UTF-8") and import it again',
      zh: '姓名含无法识别的字符（U+FFFD）：请将文件另存为 UTF-8 编码（"CSV UTF-8"）后重新导入',
    };
  return undefined;
}

function isOneOf<T extends string>(value: string, allowed: readonly T[]): value is T {
  return (allowed as readonly string[]).includes(value);
}

/** Problems in column order. Personal data (name, document number, phone) is never echoed; identifiers are. */
function cardholderProblems(row: Cardholder, openingText: string): FieldProblem[] {
  const problems: (FieldProblem | undefined)[] = [
    /^\d{4,20}$/.test(row.cardNo)
      ? undefined
      : {
          field: 'card_number',
          message: `card_number "${shown(row.cardNo)}" must be 4-20 digits`,
          zh: `卡号"${shown(row.cardNo)}"须为4-20位数字`,
        },
    /^[0-9A-F]{8,20}$/.test(row.cardSerial)
      ? undefined
      : {
          field: 'card_serial',
          message: `card_serial "${shown(row.cardSerial)}" must be 8-20 hex digits`,
          zh: `卡片序列号"${shown(row.cardSerial)}"须为8-20位十六进制数字`,
        },
    nameProblem(row.name),
    /^[A-Za-z0-9]{4,20}$/.test(row.personNumber)
      ? undefined
      : {
          field: 'person_number',
          message: `person_number "${shown(row.personNumber)}" must be 4-20 letters or digits`,
          zh: `学工号"${shown(row.personNumber)}"须为4-20位字母或数字`,
        },
    isOneOf(row.holderType, HOLDER_TYPES)
      ? undefined
      : {
          field: 'holder_type',
          message: `holder_type "${shown(row.holderType)}" must be one of ${HOLDER_TYPES.join(', ')}`,
          zh: `持卡人类型"${shown(row.holderType)}"须为 student（学生）或 staff（教职工）`,
        },
    isOneOf(row.documentType, DOCUMENT_TYPES)
      ? undefined
      : {
          field: 'document_type',
          message: `document_type "${shown(row.documentType)}" must be one of ${DOCUMENT_TYPES.join(', ')}`,
          zh: `证件类型"${shown(row.documentType)}"须为 resident_id（居民身份证）或 passport（护照）`,
        },
    isOneOf(row.documentType, DOCUMENT_TYPES) ? documentProblem(row.documentType, row.documentNumber) : undefined,
    /^(1\d{10}|\+\d{6,15})$/.test(row.phone)
      ? undefined
      : {
          field: 'phone',
          message: 'phone must be 11 digits starting with 1, or + and the country code and number',
          zh: '手机号须为以1开头的11位数字，或以+开头的国家代码加号码',
        },
    row.openingBalanceFen >= 0 && row.openingBalanceFen <= MAX_OPENING_BALANCE_FEN
      ? undefined
      : {
          field: 'opening_balance_fen',
          message: `opening_balance_fen "${shown(openingText)}" must be a whole number of fen from 0 to ${MAX_OPENING_BALANCE_FEN}`,
          zh: `开户余额"${shown(openingText)}"须为0到${MAX_OPENING_BALANCE_FEN}之间的整数（单位：分）`,
        },
  ];
  return problems.filter((p): p is FieldProblem => p !== undefined);
}

function toCardholder(fields: readonly string[]): { row: Cardholder; problems: FieldProblem[] } {
  const [cardNo, serial, name, personNumber, holder, docType, docNumber, phone, opening] = fields.map((f) => f.trim());
  const row: Cardholder = {
    cardNo: cardNo ?? '',
    cardSerial: (serial ?? '').toUpperCase(),
    name: name ?? '',
    // Upper case, as the serial and the document number: s2023001 and S2023001 are one student, and the
    // directory finds the card however the holder types it (domain/cards.ts).
    personNumber: (personNumber ?? '').toUpperCase(),
    // Checked by cardholderProblems; a row with problems is never returned.
    holderType: (holder ?? '') as HolderType,
    documentType: (docType ?? '') as DocumentType,
    documentNumber: (docNumber ?? '').toUpperCase(),
    phone: phone ?? '',
    openingBalanceFen: /^\d{1,9}$/.test(opening ?? '') ? Number(opening) : -1,
  };
  return { row, problems: cardholderProblems(row, opening ?? '') };
}

/** One error per repeated value, naming the line where it first appeared. */
export function findDuplicates<T extends { readonly line: number }>(
  rows: readonly T[],
  columns: readonly { readonly column: string; readonly zh: string; readonly value: (row: T) => string }[],
): RowError[] {
  const errors: RowError[] = [];
  for (const { column, zh, value } of columns) {
    const firstLine = new Map<string, number>();
    for (const row of rows) {
      const v = value(row);
      const seen = firstLine.get(v);
      if (seen === undefined) firstLine.set(v, row.line);
      else
        errors.push({
          line: row.line,
          field: column,
          message: `${column} ${v} appears on lines ${seen} and ${row.line}`,
          zh: `${zh}${v}在第${seen}行和第${row.line}行重复出现`,
        });
    }
  }
  return errors;
}

const CARDHOLDER_UNIQUE_COLUMNS = [
  { column: 'card_number', zh: '卡号', value: (r: Cardholder) => r.cardNo },
  { column: 'card_serial', zh: '卡片序列号', value: (r: Cardholder) => r.cardSerial },
  { column: 'person_number', zh: '学工号', value: (r: Cardholder) => r.personNumber },
];

function byLine(a: RowError, b: RowError): number {
  return a.line - b.line;
}

export function parseCardholdersCsv(text: string): ParseResult<CardholderRow> {
  const table = readTable(text, CARDHOLDER_HEADER, MAX_CARDHOLDER_ROWS);
  if (table.rows.length === 0 && table.errors.length === 0) throw new NoDataRowsError('cardholder');
  const errors = [...table.errors];
  const rows: CardholderRow[] = [];
  for (const { line, fields } of table.rows) {
    const { row, problems } = toCardholder(fields);
    if (problems.length === 0) rows.push({ ...row, line });
    else errors.push(...problems.map((p) => ({ line, ...p })));
  }
  errors.push(...findDuplicates(rows, CARDHOLDER_UNIQUE_COLUMNS));
  return { rows, errors: errors.sort(byLine) };
}

const TERMINAL_UNIQUE_COLUMNS = [{ column: 'terminal_id', zh: '终端编号', value: (r: TerminalRow) => r.id }];

export function parseTerminalsCsv(text: string): ParseResult<TerminalRow> {
  const table = readTable(text, TERMINAL_HEADER, MAX_TERMINAL_ROWS);
  if (table.rows.length === 0 && table.errors.length === 0) throw new NoDataRowsError('terminal');
  const errors = [...table.errors];
  const rows: TerminalRow[] = [];
  for (const { line, fields } of table.rows) {
    const [id, kind, merchantId, location] = fields.map((f) => f.trim());
    // The secret is taken as written: trimming would silently change it.
    const terminal: NewTerminal = {
      id: id ?? '',
      kind: (kind ?? '') as TerminalKind,
      merchantId: merchantId ?? '',
      location: location ?? '',
      secret: fields[4] ?? '',
    };
    const problems = terminalProblems(terminal);
    if (problems.length === 0) rows.push({ ...terminal, line });
    else errors.push(...problems.map((p) => ({ line, ...p })));
  }
  errors.push(...findDuplicates(rows, TERMINAL_UNIQUE_COLUMNS));
  return { rows, errors: errors.sort(byLine) };
}

// ---- rows to Redis --------------------------------------------------------------------------

/** Runs fn over items with at most `concurrency` calls in flight; results keep the items' order. */
export async function mapBounded<T, R>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return results;
}

function chunked<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

function sumFen(rows: readonly Cardholder[]): number {
  return rows.reduce((total, row) => total + row.openingBalanceFen, 0);
}

async function cardholderConflicts(deps: CardholderImportDeps, row: CardholderRow): Promise<RowError[]> {
  const taken = await takenEntries(deps.ledger, row);
  const errors: RowError[] = [];
  const line = row.line;
  if (taken.account)
    errors.push({ line, field: 'card_number', message: `card_number ${row.cardNo} already exists`, zh: `卡号${row.cardNo}已存在` });
  if (taken.serial)
    errors.push({
      line,
      field: 'card_serial',
      message: `card_serial ${row.cardSerial} already belongs to a card`,
      zh: `卡片序列号${row.cardSerial}已属于另一张卡`,
    });
  if (taken.personNumber)
    errors.push({
      line,
      field: 'person_number',
      message: `person_number ${row.personNumber} already has a card`,
      zh: `学工号${row.personNumber}已有卡`,
    });
  return errors;
}

function checkCardholderRows(rows: readonly CardholderRow[]): RowError[] {
  if (rows.length > MAX_CARDHOLDER_ROWS) {
    return [
      {
        line: 1,
        field: 'csv',
        message: `at most ${MAX_CARDHOLDER_ROWS} cardholders per import, got ${rows.length}`,
        zh: `每次最多导入${MAX_CARDHOLDER_ROWS}个持卡人，本次${rows.length}个`,
      },
    ];
  }
  // Rows may come from elsewhere than parseCardholdersCsv, so uniqueness inside the batch is checked again.
  return findDuplicates(rows, CARDHOLDER_UNIQUE_COLUMNS);
}

/**
 * A cardholder's static account fields, as the import writes them (without the password fields). `ser`
 * and `ht` first: a payment reads them, and open-account.lua puts the payment's own fields before these.
 */
export function cardholderAccountFields(c: Cardholder): Record<string, string> {
  return {
    ser: c.cardSerial,
    ht: c.holderType === 'student' ? 'S' : 'T',
    name: c.name,
    sno: c.personNumber,
    doct: c.documentType === 'resident_id' ? 'R' : 'P',
    docn: c.documentNumber,
    phone: c.phone,
  };
}

/**
 * Writes one row: its serial and person-number directory entries first, then its account. A row that
 * loses either entry to another card (an import or a replacement running at the same time) gives back
 * what it claimed and opens no account, so a refused row leaves nothing behind and can be run again once
 * fixed; an account is opened only with both entries naming it.
 */
async function writeCardholder(deps: CardholderImportDeps, row: CardholderRow): Promise<RowError[]> {
  const claims = await claimDirectoryEntries(deps.ledger, row);
  const lost: RowError[] = [];
  if (claims.serial === 'taken')
    lost.push({
      line: row.line,
      field: 'card_serial',
      message: `card_serial ${row.cardSerial} was taken by another card during the import; nothing of this row was written`,
      zh: `卡片序列号${row.cardSerial}在导入过程中已被另一张卡占用，该行未写入任何内容`,
    });
  if (claims.personNumber === 'taken')
    lost.push({
      line: row.line,
      field: 'person_number',
      message: `person_number ${row.personNumber} was taken by another card during the import; nothing of this row was written`,
      zh: `学工号${row.personNumber}在导入过程中已被另一张卡占用，该行未写入任何内容`,
    });
  if (lost.length > 0) {
    await releaseDirectoryEntries(deps.ledger, row, claims);
    return lost;
  }
  const opened = await deps.ledger.openAccount({
    cardNo: row.cardNo,
    openingFen: row.openingBalanceFen,
    fields: {
      ...cardholderAccountFields(row),
      // No hash: the initial password follows from docn, stored in this same account, so a hash of it
      // would protect nothing. The switch checks it against docn and stores a full-cost hash on the
      // first correct entry (domain/card-password.ts). The empty field still marks the card as known.
      pwd: '',
      pwdinit: '1',
    },
  });
  if (opened) return [];
  // Another import opened this card number meanwhile: the entries this row made now name a card whose
  // account is someone else's, so they go; entries it found already naming the card are left as they were.
  await releaseDirectoryEntries(deps.ledger, row, claims);
  return [
    {
      line: row.line,
      field: 'card_number',
      message: `card_number ${row.cardNo} was created by someone else during the import`,
      zh: `卡号${row.cardNo}在导入过程中已被他人开户`,
    },
  ];
}

/** How far an import has got: called after each chunk of rows is written (every IMPORT_CHUNK_ROWS rows). */
export type ImportProgress = (writtenCount: number, totalCount: number) => void;

async function writeCardholders(
  deps: CardholderImportDeps,
  rows: readonly CardholderRow[],
  progress: { written: number; readonly onChunk?: ImportProgress | undefined },
): Promise<RowError[]> {
  const errors: RowError[] = [];
  for (const chunk of chunked(rows, IMPORT_CHUNK_ROWS)) {
    const results = await mapBounded(chunk, REDIS_CONCURRENCY, async (row) => {
      const rowErrors = await writeCardholder(deps, row);
      progress.written++;
      return rowErrors;
    });
    errors.push(...results.flat());
    progress.onChunk?.(progress.written, rows.length);
  }
  return errors;
}

/**
 * Imports all rows or none. Nothing is hashed: each card's password is the initial one of its document
 * number, with no hash stored until its first correct entry (see writeCardholder).
 */
export async function importCardholders(
  deps: CardholderImportDeps,
  rows: readonly CardholderRow[],
  options: { readonly onProgress?: ImportProgress } = {},
): Promise<ImportReport> {
  const startedMs = performance.now();
  const elapsed = (): number => Math.round(performance.now() - startedMs);
  const problems = checkCardholderRows(rows);
  if (problems.length === 0) {
    const conflicts = await mapBounded(rows, REDIS_CONCURRENCY / 4, (row) => cardholderConflicts(deps, row));
    problems.push(...conflicts.flat());
  }
  if (problems.length > 0) return { importedCount: 0, openingTotalFen: 0, errors: problems.sort(byLine), elapsedMs: elapsed() };
  const progress = { written: 0, onChunk: options.onProgress };
  let lateErrors: RowError[];
  try {
    lateErrors = await writeCardholders(deps, rows, progress);
  } catch (err) {
    throw new ImportInterruptedError(progress.written, err);
  }
  const failedLines = new Set(lateErrors.map((e) => e.line));
  const imported = rows.filter((row) => !failedLines.has(row.line));
  return { importedCount: imported.length, openingTotalFen: sumFen(imported), errors: lateErrors.sort(byLine), elapsedMs: elapsed() };
}

/**
 * Imports all terminals or none; a terminal id that is already registered is a conflict. (As with
 * cardholders, a terminal registered by someone else between the check and the writes is reported on
 * its line and left as it was; the other rows are written.)
 */
export async function importTerminals(registry: TerminalRegistry, rows: readonly TerminalRow[]): Promise<ImportReport> {
  const startedMs = performance.now();
  const elapsed = (): number => Math.round(performance.now() - startedMs);
  const problems: RowError[] = [];
  if (rows.length > MAX_TERMINAL_ROWS)
    problems.push({
      line: 1,
      field: 'csv',
      message: `at most ${MAX_TERMINAL_ROWS} terminals per import, got ${rows.length}`,
      zh: `每次最多导入${MAX_TERMINAL_ROWS}个终端，本次${rows.length}个`,
    });
  problems.push(...findDuplicates(rows, TERMINAL_UNIQUE_COLUMNS));
  for (const row of rows) {
    for (const p of terminalProblems(row)) problems.push({ line: row.line, ...p });
  }
  if (problems.length === 0) {
    const existing = await mapBounded(rows, REDIS_CONCURRENCY / 4, async (row) =>
      (await registry.get(row.id)) === undefined ? undefined : row,
    );
    for (const row of existing) {
      if (row !== undefined)
        problems.push({
          line: row.line,
          field: 'terminal_id',
          message: `terminal_id ${row.id} is already registered`,
          zh: `终端编号${row.id}已登记`,
        });
    }
  }
  if (problems.length > 0) return { importedCount: 0, openingTotalFen: 0, errors: problems.sort(byLine), elapsedMs: elapsed() };
  // Registered only if still free: another operator's import or registration of the same id since the
  // check above (or one the registry's cache did not show yet) is reported on its line, not overwritten.
  let written = 0;
  let created: boolean[];
  try {
    created = await mapBounded(rows, REDIS_CONCURRENCY / 4, async (row) => {
      const done = await registry.create(row);
      written++;
      return done;
    });
  } catch (err) {
    throw new ImportInterruptedError(written, err, 'terminals');
  }
  const lateErrors: RowError[] = rows
    .filter((_, i) => created[i] !== true)
    .map((row) => ({
      line: row.line,
      field: 'terminal_id',
      message: `terminal_id ${row.id} was registered by someone else during the import; this row was not written`,
      zh: `终端编号${row.id}在导入过程中已被他人登记，该行未写入`,
    }));
  return { importedCount: rows.length - lateErrors.length, openingTotalFen: 0, errors: lateErrors, elapsedMs: elapsed() };
}
