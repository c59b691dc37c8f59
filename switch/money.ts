// Display helpers for fen amounts. Integer arithmetic only: no floating point near money.

/** 1234 -> "12.34", -5 -> "-0.05". */
export function formatYuan(amountFen: number): string {
  if (!Number.isSafeInteger(amountFen)) throw new RangeError(`not a whole number of fen: ${amountFen}`);
  const sign = amountFen < 0 ? '-' : '';
  const abs = Math.abs(amountFen);
  const yuan = Math.trunc(abs / 100);
  const fen = abs % 100;
  return `${sign}${yuan}.${String(fen).padStart(2, '0')}`;
}
