/** Milliseconds as seconds with one decimal ("1.3"), in integer arithmetic like everything near money. */
export function formatSeconds(elapsedMs: number): string {
  const tenths = Math.round(elapsedMs / 100);
  return `${Math.trunc(tenths / 10)}.${tenths % 10}`;
}

/** The campus is in China Standard Time (UTC+8, no daylight saving). */
const CAMPUS_OFFSET_MS = 8 * 3_600_000;

/**
 * A moment as operators on campus read it: campus time with its offset, "2026-12-02 10:15:00 +08:00"
 * (never UTC's "...Z", eight hours off their clocks).
 */
export function formatCampusTime(ms: number): string {
  return `${new Date(ms + CAMPUS_OFFSET_MS).toISOString().slice(0, 19).replace('T', ' ')} +08:00`;
}
