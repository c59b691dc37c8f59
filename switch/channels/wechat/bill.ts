// The v2 trade bill (/pay/downloadbill, bill_type=ALL) as WeChat Pay writes it: a header line, one line per
// payment that succeeded that day and per refund started that day, every detail value prefixed with a
// backquote (so a spreadsheet keeps long numbers as text), then a summary header and one summary line.
// Amounts are yuan with two decimals. A payment reversed after it succeeded appears under its own order
// number as a payment and as a refund. The parser reads the columns by their header names, so a file with
// the older or the newer column set reads the same.
import type { StatementRow } from '../channel.js';
import { formatYuan } from '../../money.js';
import { formatBillTime, parseBillTime, yuanToFen } from './wire.js';

export const BILL_COLUMNS = [
  '交易时间',
  '公众账号ID',
  '商户号',
  '特约商户号',
  '设备号',
  '微信订单号',
  '商户订单号',
  '用户标识',
  '交易类型',
  '交易状态',
  '付款银行',
  '货币种类',
  '应结订单金额',
  '代金券金额',
  '微信退款单号',
  '商户退款单号',
  '退款金额',
  '充值券退款金额',
  '退款类型',
  '退款状态',
  '商品名称',
  '商户数据包',
  '手续费',
  '费率',
  '订单金额',
  '申请退款金额',
  '费率备注',
] as const;

const SUMMARY_COLUMNS = ['总交易单数', '应结订单总金额', '退款总金额', '充值券退款总金额', '手续费总金额', '订单总金额', '申请退款总金额'];

/** What the simulator knows of one line. */
export interface BillLine {
  readonly atMs: number;
  readonly appId: string;
  readonly mchId: string;
  readonly deviceInfo: string;
  readonly transactionId: string;
  readonly outTradeNo: string;
  readonly openid: string;
  readonly tradeType: string;
  readonly kind: 'payment' | 'refund';
  /** The order's amount (payment) or the refund's amount (refund). */
  readonly amountFen: number;
  readonly refundId?: string;
  readonly outRefundNo?: string;
  readonly body: string;
}

/** The fee the simulator charges: 0.6 %, rounded half up to the fen (what many merchants pay). */
function feeFen(amountFen: number): number {
  return Math.floor((amountFen * 6 + 500) / 1000);
}

export function renderBill(lines: readonly BillLine[]): string {
  let paidFen = 0;
  let refundedFen = 0;
  let feesFen = 0;
  const rows = lines.map((line) => {
    const payment = line.kind === 'payment';
    const fee = payment ? feeFen(line.amountFen) : -feeFen(line.amountFen);
    if (payment) paidFen += line.amountFen;
    else refundedFen += line.amountFen;
    feesFen += fee;
    const values: Record<(typeof BILL_COLUMNS)[number], string> = {
      交易时间: formatBillTime(line.atMs),
      公众账号ID: line.appId,
      商户号: line.mchId,
      特约商户号: '0',
      设备号: line.deviceInfo,
      微信订单号: line.transactionId,
      商户订单号: line.outTradeNo,
      用户标识: line.openid,
      交易类型: line.tradeType,
      交易状态: payment ? 'SUCCESS' : 'REFUND',
      付款银行: 'OTHERS',
      货币种类: 'CNY',
      应结订单金额: payment ? formatYuan(line.amountFen) : '0.00',
      代金券金额: '0.00',
      微信退款单号: payment ? '0' : (line.refundId ?? ''),
      商户退款单号: payment ? '0' : (line.outRefundNo ?? ''),
      退款金额: payment ? '0.00' : formatYuan(line.amountFen),
      充值券退款金额: '0.00',
      退款类型: payment ? '' : 'ORIGINAL',
      退款状态: payment ? '' : 'SUCCESS',
      商品名称: line.body.replaceAll(',', '，'),
      商户数据包: '',
      手续费: formatYuan(fee),
      费率: '0.60%',
      订单金额: payment ? formatYuan(line.amountFen) : '0.00',
      申请退款金额: payment ? '0.00' : formatYuan(line.amountFen),
      费率备注: '',
    };
    return BILL_COLUMNS.map((column) => `\`${values[column]}`).join(',');
  });
  const summary = [
    String(lines.length),
    formatYuan(paidFen),
    formatYuan(refundedFen),
    '0.00',
    formatYuan(feesFen),
    formatYuan(paidFen),
    formatYuan(refundedFen),
  ];
  return [BILL_COLUMNS.join(','), ...rows, SUMMARY_COLUMNS.join(','), summary.map((v) => `\`${v}`).join(',')].join('\r\n') + '\r\n';
}

/** A bill this parser cannot read: the statement is not believed (reconciliation must not guess). */
export class BillFormatError extends Error {
  override readonly name = 'BillFormatError';
}

const MAX_BILL_LINES = 1_000_000;

export function parseBill(text: string): StatementRow[] {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  if (lines.length > MAX_BILL_LINES) throw new BillFormatError(`bill has more than ${MAX_BILL_LINES} lines`);
  const headerLine = (lines[0] ?? '').replace(/^\uFEFF/, '');
  const header = headerLine.split(',');
  const column = (name: string): number => {
    const index = header.indexOf(name);
    if (index < 0) throw new BillFormatError(`bill header has no column ${name}`);
    return index;
  };
  const at = column('交易时间');
  const txn = column('微信订单号');
  const out = column('商户订单号');
  const state = column('交易状态');
  const settled = column('应结订单金额');
  const refundNo = column('商户退款单号');
  const refundAmount = column('退款金额');
  const orderAmount = header.indexOf('订单金额');
  const rows: StatementRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('总交易单数')) break; // the summary: header, then one line
    const values = line.split(',').map((v) => (v.startsWith('`') ? v.slice(1) : v));
    if (values.length !== header.length)
      throw new BillFormatError(`bill line ${i + 1}: ${values.length} columns, header has ${header.length}`);
    const atMs = parseBillTime(values[at] ?? '');
    if (atMs === undefined) throw new BillFormatError(`bill line ${i + 1}: 交易时间 is not yyyy-MM-dd HH:mm:ss`);
    const refund = values[state] === 'REFUND';
    const amountText = refund ? values[refundAmount] : orderAmount >= 0 ? values[orderAmount] : values[settled];
    const amountFen = yuanToFen(amountText ?? '');
    if (amountFen === undefined) throw new BillFormatError(`bill line ${i + 1}: amount ${JSON.stringify(amountText)} is not yuan`);
    const base = { outTradeNo: values[out] ?? '', channelTxnId: values[txn] ?? '', amountFen, atMs };
    rows.push(refund ? { ...base, kind: 'refund', outRefundNo: values[refundNo] ?? '' } : { ...base, kind: 'payment' });
  }
  return rows;
}
