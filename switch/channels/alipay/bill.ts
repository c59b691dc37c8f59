// Reading Alipay's trade statement (bill_type=trade): alipay.data.dataservice.bill.downloadurl.query
// answers a short-lived bill_download_url; it serves a zip holding two CSV files in GBK, the detail
// ("..._业务明细.csv") and the summary ("..._业务明细(汇总).csv"). The detail file is a few '#' comment
// lines, one header line, one line per payment (业务类型 交易) or refund (退款, negative amounts), then
// '#' lines again. Values may carry padding tabs (Alipay adds them so spreadsheets keep long numbers).
//
// The file is told apart by its first line, not its name: entry names are GBK without the zip's UTF-8
// flag in the real archives, which no unzip library decodes the same way.
import { unzipSync } from 'fflate';
import type { StatementRow } from '../channel.js';
import { parseBeijingTime, yuanToFen } from './format.js';

export const MAX_BILL_ZIP_BYTES = 64 * 1024 * 1024;
const MAX_BILL_CSV_BYTES = 256 * 1024 * 1024;
const MAX_BILL_ROWS = 2_000_000;
export const BILL_DETAIL_TITLE = '#支付宝业务明细查询';

const COLUMNS = {
  channelTxnId: '支付宝交易号',
  outTradeNo: '商户订单号',
  kind: '业务类型',
  createdAt: '创建时间',
  finishedAt: '完成时间',
  amount: '订单金额',
  outRefundNo: '退款批次号/请求号',
} as const;

export class BillFormatError extends Error {
  override readonly name = 'BillFormatError';
}

/** The detail CSV (decoded text) out of the downloaded zip. */
export function billDetailFromZip(zip: Uint8Array): string {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(zip, { filter: (file) => file.originalSize <= MAX_BILL_CSV_BYTES });
  } catch {
    throw new BillFormatError('the statement download is not a zip archive');
  }
  for (const bytes of Object.values(files)) {
    const text = new TextDecoder('gbk').decode(bytes);
    if (text.replace(/^\uFEFF/, '').startsWith(BILL_DETAIL_TITLE)) return text;
  }
  throw new BillFormatError(`the statement archive holds no detail file (${BILL_DETAIL_TITLE})`);
}

/** The detail CSV's lines as statement rows (amounts in fen, refunds positive with their out_request_no). */
export function parseBillDetail(text: string): StatementRow[] {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '' && !line.startsWith('#') && !line.startsWith('\uFEFF#'));
  const header = lines.shift();
  if (header === undefined) throw new BillFormatError('the statement has no header line');
  const names = splitCsvLine(header);
  const index = (title: string): number => {
    const at = names.findIndex((name) => name.startsWith(title));
    if (at < 0) throw new BillFormatError(`the statement has no column ${title}`);
    return at;
  };
  const at = {
    channelTxnId: index(COLUMNS.channelTxnId),
    outTradeNo: index(COLUMNS.outTradeNo),
    kind: index(COLUMNS.kind),
    createdAt: index(COLUMNS.createdAt),
    finishedAt: index(COLUMNS.finishedAt),
    amount: index(COLUMNS.amount),
    outRefundNo: index(COLUMNS.outRefundNo),
  };
  if (lines.length > MAX_BILL_ROWS) throw new BillFormatError(`the statement has more than ${MAX_BILL_ROWS} lines`);
  return lines.map((line, i) => readRow(splitCsvLine(line), at, i + 1));
}

function readRow(cells: readonly string[], at: Readonly<Record<keyof typeof COLUMNS, number>>, lineNo: number): StatementRow {
  const cell = (i: number): string => cells[i] ?? '';
  const where = `statement line ${lineNo}`;
  const kindText = cell(at.kind);
  if (kindText !== '交易' && kindText !== '退款') throw new BillFormatError(`${where}: unknown 业务类型 ${JSON.stringify(kindText)}`);
  const amount = yuanToFen(cell(at.amount), true);
  if (amount === undefined || amount === 0) throw new BillFormatError(`${where}: amount ${JSON.stringify(cell(at.amount))} is not yuan`);
  const atMs = parseBeijingTime(cell(at.finishedAt)) ?? parseBeijingTime(cell(at.createdAt));
  if (atMs === undefined) throw new BillFormatError(`${where}: no time`);
  const channelTxnId = cell(at.channelTxnId);
  const outTradeNo = cell(at.outTradeNo);
  if (channelTxnId === '' || outTradeNo === '') throw new BillFormatError(`${where}: no 支付宝交易号 or 商户订单号`);
  const base = { outTradeNo, channelTxnId, amountFen: Math.abs(amount), atMs };
  if (kindText === '交易') return { ...base, kind: 'payment' };
  const outRefundNo = cell(at.outRefundNo);
  return outRefundNo === '' ? { ...base, kind: 'refund' } : { ...base, kind: 'refund', outRefundNo };
}

/** One CSV line: commas, double-quoted fields with "" escapes; every value trimmed of spaces and tabs. */
export function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        current += '"';
        i += 1;
      } else if (ch === '"') quoted = false;
      else current += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      cells.push(current.trim());
      current = '';
    } else current += ch;
  }
  cells.push(current.trim());
  return cells;
}
