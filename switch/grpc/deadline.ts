// The caller's deadline, respected where a call is answered. A call still waiting (for Redis, most
// likely) shortly before its deadline is answered UNAVAILABLE then, so the answer reaches the caller
// before its own timer fires. A caller whose timer fires cancels the stream (RST_STREAM), and past
// 1,000 of those on one connection nghttp2's rapid-reset guard (burst 1,000, then 33 a second) ends
// the whole connection with GOAWAY(INTERNAL_ERROR): every call on it fails with INTERNAL. Measured:
// 400 calls/s with a 1.5 s deadline against handlers that answer after 1.6 s lose the connection after
// ~1,000 deadlines (test/ledger-stall.test.ts, the Redis stall that showed it).
import { status as Status } from '@grpc/grpc-js';

/** The answer sent when the deadline is about to pass: the outcome is unknown, a retry learns it. */
export const DEADLINE_REFUSAL = {
  code: Status.UNAVAILABLE,
  details:
    'no answer from the ledger within your deadline, so the outcome is unknown; retry with the same sequence number to learn it (a retry never charges twice)',
} as const;

/** The answer to a call whose deadline was over when it arrived: nothing was started for it. */
export const DEADLINE_OVER_REFUSAL = {
  code: Status.DEADLINE_EXCEEDED,
  details: 'your deadline was already over when the call arrived, so nothing was done; send it again with a deadline in the future',
} as const;

/**
 * True when the deadline has passed: the caller has been told DEADLINE_EXCEEDED (grpc-js's own timer)
 * or is about to be, so a call in this state must start nothing (test/grpc-deadline.test.ts: started,
 * the payment was made after the caller was told it failed). grpc-js also turns a grpc-timeout above
 * 2^31 ms into a deadline in the past (it truncates the milliseconds to 32 bits).
 */
export function deadlineOver(deadline: Date | number, nowMs: number = Date.now()): boolean {
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(deadlineMs) && deadlineMs <= nowMs;
}

/**
 * Time kept back before the deadline: a fifth of the time the caller gave, within these bounds. It
 * covers the answer's way back and a busy event loop (the moment the breaker opens, every waiting
 * call is answered at once); with a tenth, a stall test under CPU contention saw deadlines pass.
 */
const MIN_RESERVE_MS = 50;
const MAX_RESERVE_MS = 500;

/** When an unfinished call must be answered (ms since the epoch); Infinity when the caller set no deadline. */
export function answerByMs(deadline: Date | number, nowMs: number = Date.now()): number {
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  if (!Number.isFinite(deadlineMs)) return Infinity;
  const reserveMs = Math.min(MAX_RESERVE_MS, Math.max(MIN_RESERVE_MS, (deadlineMs - nowMs) / 5));
  return deadlineMs - reserveMs;
}

/** Runs `onDeadline` at `answerByMs` of the deadline unless cancelled first; returns the cancel. */
export function atDeadline(deadline: Date | number, onDeadline: () => void): () => void {
  const answerBy = answerByMs(deadline);
  if (answerBy === Infinity) return () => undefined;
  const timer = setTimeout(onDeadline, Math.max(0, answerBy - Date.now()));
  return () => clearTimeout(timer);
}
