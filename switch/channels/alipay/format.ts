// Helpers the Alipay adapter and its simulator share: yuan strings <-> integer fen (exact, no floating
// point), Beijing time as Alipay writes it ("yyyy-MM-dd HH:mm:ss", UTC+8, no daylight saving), and the
// payment-code format. Request and answer signing is NOT shared: the adapter signs and verifies through
// alipay-sdk, the simulator with node:crypto on its own, so each checks the other.
import { formatYuan } from '../../money.js';

/** Alipay's largest amount (total_amount, refund_amount): 100000000.00 yuan. */
export const ALIPAY_MAX_AMOUNT_FEN = 100_000_000_00;

const YUAN = /^(-?)(0|[1-9]\d{0,9})(?:\.(\d{1,2}))?$/;

/** "12.34" -> 1234, "5" -> 500, "0.5" -> 50; undefined for anything else (negative only when `signed`). */
export function yuanToFen(text: string, signed = false): number | undefined {
  const match = YUAN.exec(text.trim());
  if (match === null) return undefined;
  const [, sign, whole, fraction = ''] = match;
  if (sign === '-' && !signed) return undefined;
  const fen = Number(whole) * 100 + Number(fraction.padEnd(2, '0'));
  if (!Number.isSafeInteger(fen) || fen > ALIPAY_MAX_AMOUNT_FEN) return undefined;
  return sign === '-' ? -fen : fen;
}

/** 1234 -> "12.34" (Alipay's Price: yuan with two decimals). */
export function fenToYuan(amountFen: number): string {
  return formatYuan(amountFen);
}

const BEIJING_OFFSET_MS = 8 * 3600_000;

/** Epoch milliseconds -> "2026-11-30 16:05:09" in Beijing time. */
export function beijingTime(ms: number): string {
  return new Date(ms + BEIJING_OFFSET_MS).toISOString().slice(0, 19).replace('T', ' ');
}

/** "2026-11-30" (the Beijing date of `ms`). */
export function beijingDate(ms: number): string {
  return beijingTime(ms).slice(0, 10);
}

const BEIJING_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

/** "2026-11-30 16:05:09" (Beijing) -> epoch milliseconds; undefined when malformed. */
export function parseBeijingTime(text: string): number | undefined {
  const m = BEIJING_TIME.exec(text.trim());
  if (m === null) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s) - BEIJING_OFFSET_MS;
  // Date.UTC rolls 2026-02-30 over to March: a date that does not exist is refused.
  return beijingTime(ms) === text.trim() ? ms : undefined;
}

/** True for a date "YYYY-MM-DD" that exists. */
export function isDate(text: string): boolean {
  return parseBeijingTime(`${text} 00:00:00`) !== undefined;
}

/** Alipay payment codes: 16-24 digits, the first two 25-30. */
export const ALIPAY_CODE_PATTERN = /^(?:2[5-9]|30)\d{14,22}$/;

/** What a log line may show of a payment code: its first 4 and last 2 digits. */
export function maskCode(code: string): string {
  return code.length <= 6 ? '***' : `${code.slice(0, 4)}***${code.slice(-2)}`;
}
