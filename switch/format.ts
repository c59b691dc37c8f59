/** Milliseconds as seconds with one decimal ("1.3"), in integer arithmetic like everything near money. */
export function formatSeconds(elapsedMs: number): string {
  const tenths = Math.round(elapsedMs / 100);
  return `${Math.trunc(tenths / 10)}.${tenths % 10}`;
}
