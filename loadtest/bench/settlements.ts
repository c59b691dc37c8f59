// What the load generator does with a request it gave up on (issue 15): what a POS does. A request
// abandoned without an answer that decides it (timed out, its stream reset or its connection lost after
// it was written, or answered with a status that leaves the outcome open, such as UNAVAILABLE) may
// still be carried out by the switch. A payment (Authorize: card tap, campus QR, PIN, payment code) is
// reversed with the same terminal and sequence number; a small-wallet move (WaterDebit, Settle), which
// the switch never reverses, and a reversal of the mix are sent again unchanged (each is idempotent on
// its key) until the switch answers. Each is retried, with a growing pause, until it is answered or
// its attempts run out; the keys of what was reversed go to the ledger check, which then explains an
// approved-then-reversed payment by its pay and reversal entries, and a reversal that came first by the
// absence of any pay entry.
import { answerLabel, reverseCall, type PlannedCall } from '../shared/traffic.js';
import { encodeCallFrame, readLeadingFields, unframe } from '../shared/wire.js';
import type { CallDone } from './h2-raw.js';

/** Attempts per abandoned request before the generator reports it unsettled. */
export const SETTLE_MAX_ATTEMPTS = 8;
/**
 * The first attempt's timeout is at least this, and each further attempt waits twice as long as the one
 * before, up to SETTLE_MAX_ATTEMPT_TIMEOUT_MS: a reversal queues behind the load that timed its payment
 * out, and an attempt given up on is still being worked on by the switch (nothing is reset), so
 * retrying at the payment's own timeout would only pile more work on an overloaded switch.
 */
export const SETTLE_FIRST_TIMEOUT_MS = 2000;
const SETTLE_MAX_ATTEMPT_TIMEOUT_MS = 20_000;
const SETTLE_FIRST_PAUSE_MS = 50;
const SETTLE_MAX_PAUSE_MS = 2000;
/**
 * Settlement calls one generator thread has in flight at most; the rest wait their turn (a POS sends
 * one reversal at a time; here a bounded number at once keeps an overloaded run from doubling its own
 * load with reversals). The waiting list holds at most one entry per request the thread sent.
 */
export const SETTLE_MAX_IN_FLIGHT = 128;

/** gRPC statuses after which the request may or may not have been carried out. */
const UNDECIDED_STATUSES = new Set([
  'grpc:CANCELLED',
  'grpc:UNKNOWN',
  'grpc:DEADLINE_EXCEEDED',
  'grpc:RESOURCE_EXHAUSTED',
  'grpc:ABORTED',
  'grpc:INTERNAL',
  'grpc:UNAVAILABLE',
  'grpc:DATA_LOSS',
]);

/** True when an answer (a label of labelOf) leaves open whether the switch carried the request out. */
export function isUndecided(label: string): boolean {
  return label === 'timeout' || label === 'transport_error' || label === 'bad_response' || UNDECIDED_STATUSES.has(label);
}

/** The answer's label ('approved', 'reversed', 'grpc:UNAVAILABLE', 'timeout' ...) and its message bytes. */
export function labelOf(
  planned: PlannedCall,
  grpcStatus: number,
  body: Buffer | undefined,
  transportError: string | undefined,
): { label: string; message: Uint8Array | undefined } {
  if (grpcStatus < 0) return { label: transportError === 'cancelled' ? 'timeout' : 'transport_error', message: undefined };
  if (grpcStatus !== 0) return { label: answerLabel(planned.call.rpc, grpcStatus, 0, 0), message: undefined };
  const message = body === undefined ? undefined : unframe(body);
  const fields = message === undefined ? undefined : readLeadingFields(message);
  return { label: fields === undefined ? 'bad_response' : answerLabel(planned.call.rpc, 0, fields.field1, fields.field2), message };
}

/**
 * How an abandoned request is settled: a payment by its reversal, a small-wallet move or a reversal by
 * itself again; nothing for a read (Inquire) or a retry (its payment was answered before, and that
 * answer is the one the ledger check holds it to).
 */
export function settlementOf(abandoned: PlannedCall): PlannedCall | undefined {
  if (abandoned.kind === 'retry' || abandoned.call.rpc === 'Inquire') return undefined;
  if (abandoned.call.rpc !== 'Authorize') return abandoned;
  return { ...abandoned, kind: 'reversal', call: reverseCall(abandoned.call.message), retryOf: undefined };
}

export interface SettlementCounts {
  /** Requests given up on that change money (each settled by one of the below). */
  readonly abandoned: number;
  /** Reverse calls sent for abandoned payments, attempts included. */
  readonly reversalsSent: number;
  /** Abandoned small-wallet moves and reversals sent again, attempts included. */
  readonly resent: number;
  /** Reversals answered REVERSED (the payment had been approved: its money went back). */
  readonly reversed: number;
  /** Reversals answered TOMBSTONED (the payment had not arrived; it is declined if it does). */
  readonly tombstoned: number;
  /** Reversals answered NOTHING_TO_REVERSE (the payment had been declined). */
  readonly nothingToReverse: number;
  /** Re-sent requests that got their answer. */
  readonly resentAnswered: number;
  /** Given up after SETTLE_MAX_ATTEMPTS, or answered with a refusal: the ledger check cannot explain these. */
  readonly unsettled: number;
}

/** (terminal index, sequence) pairs, grown as needed. */
export interface KeySink {
  push(terminalIndex: number, sequence: number): void;
}

export interface SettlementSinks {
  /** Abandoned payments the switch reversed (their pay or cpay entry is followed by a reversal entry). */
  readonly reversed: KeySink;
  /** Abandoned payments tombstoned (no pay or cpay entry may exist for them). */
  readonly tombstoned: KeySink;
  /** Abandoned campus QR payments reversed (each used its code: its single-use mark stays). */
  readonly campusQrReversed: KeySink;
  /** Abandoned water debits answered approved when sent again. */
  readonly waterApprovals: KeySink;
}

interface Settlement {
  readonly abandoned: PlannedCall;
  readonly call: PlannedCall;
  readonly frame: Uint8Array;
  attempts: number;
  sentMs: number;
  timeoutMs: number;
  inFlight: boolean;
  cancel: () => void;
}

type Send = (planned: PlannedCall, frame: Uint8Array, done: CallDone) => () => void;

/** The abandoned requests of one generator thread, until each is settled. */
export class Settlements {
  private readonly open = new Set<Settlement>();
  /** Waiting for a free place among the SETTLE_MAX_IN_FLIGHT (first come, first sent). */
  private readonly waiting: Settlement[] = [];
  private waitingHead = 0;
  private inFlight = 0;
  /** pump() is running: an attempt that fails at once calls it again from inside (see pump). */
  private pumping = false;
  private readonly firstTimeoutMs: number;
  private counts = {
    abandoned: 0,
    reversalsSent: 0,
    resent: 0,
    reversed: 0,
    tombstoned: 0,
    nothingToReverse: 0,
    resentAnswered: 0,
    unsettled: 0,
  };

  constructor(
    private readonly send: Send,
    requestTimeoutMs: number,
    private readonly sinks: SettlementSinks,
    private readonly nowMs: () => number,
    private readonly sample: (message: string) => void,
    /** Runs after each settlement ends (the generator's idle check). */
    private readonly onSettled: () => void,
  ) {
    this.firstTimeoutMs = Math.max(requestTimeoutMs, SETTLE_FIRST_TIMEOUT_MS);
  }

  /** Requests still being settled (in flight or waiting for their next attempt). */
  get size(): number {
    return this.open.size;
  }

  result(): SettlementCounts {
    return { ...this.counts };
  }

  start(abandoned: PlannedCall): void {
    const call = settlementOf(abandoned);
    if (call === undefined) return;
    this.counts.abandoned++;
    const settlement: Settlement = {
      abandoned,
      call,
      frame: encodeCallFrame(call.call),
      attempts: 0,
      sentMs: 0,
      timeoutMs: this.firstTimeoutMs,
      inFlight: false,
      cancel: () => undefined,
    };
    this.open.add(settlement);
    this.enqueue(settlement);
  }

  /** Cancels attempts older than their timeout; they are tried again. */
  sweep(): void {
    const now = this.nowMs();
    for (const s of this.open) if (s.inFlight && now - s.sentMs > s.timeoutMs) s.cancel();
  }

  private enqueue(s: Settlement): void {
    this.waiting.push(s);
    this.pump();
  }

  /** Sends waiting settlements while places are free. Not re-entered: the running loop picks up what a nested call would. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.inFlight < SETTLE_MAX_IN_FLIGHT && this.waitingHead < this.waiting.length) {
        const next = this.waiting[this.waitingHead++];
        if (next !== undefined) this.attempt(next);
      }
    } finally {
      this.pumping = false;
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting.length = 0;
      this.waitingHead = 0;
    }
  }

  private attempt(s: Settlement): void {
    s.attempts++;
    if (s.attempts > 1) s.timeoutMs = Math.min(SETTLE_MAX_ATTEMPT_TIMEOUT_MS, s.timeoutMs * 2);
    this.inFlight++;
    if (s.call.call.rpc === 'Reverse' && s.abandoned.call.rpc === 'Authorize') this.counts.reversalsSent++;
    else this.counts.resent++;
    s.sentMs = this.nowMs();
    s.inFlight = true;
    let ended = false;
    s.cancel = this.send(s.call, s.frame, (grpcStatus, _grpcMessage, body, transportError) => {
      if (ended) return;
      ended = true;
      s.inFlight = false;
      this.inFlight--;
      this.answered(s, labelOf(s.call, grpcStatus, body, transportError).label);
      this.pump();
    });
  }

  private answered(s: Settlement, label: string): void {
    if (isUndecided(label)) {
      if (s.attempts < SETTLE_MAX_ATTEMPTS) {
        const pauseMs = Math.min(SETTLE_MAX_PAUSE_MS, SETTLE_FIRST_PAUSE_MS * 2 ** (s.attempts - 1));
        setTimeout(() => this.enqueue(s), pauseMs);
        return;
      }
      this.unsettled(s, `no answer after ${s.attempts} attempts (last: ${label})`);
      return;
    }
    this.open.delete(s);
    if (s.abandoned.call.rpc === 'Authorize') this.reversalAnswered(s, label);
    else {
      this.counts.resentAnswered++;
      if (label === 'approved' && s.call.call.rpc === 'WaterDebit') this.sinks.waterApprovals.push(s.call.terminalIndex, s.call.sequence);
    }
    this.onSettled();
  }

  private reversalAnswered(s: Settlement, label: string): void {
    const { terminalIndex, sequence } = s.abandoned;
    if (label === 'reversed') {
      this.counts.reversed++;
      this.sinks.reversed.push(terminalIndex, sequence);
      if (s.abandoned.kind === 'campus_qr') this.sinks.campusQrReversed.push(terminalIndex, sequence);
    } else if (label === 'tombstoned') {
      this.counts.tombstoned++;
      this.sinks.tombstoned.push(terminalIndex, sequence);
    } else if (label === 'nothing_to_reverse') this.counts.nothingToReverse++;
    else {
      // A refusal (the reversal did not match its payment): the payment's fate is not known here.
      this.counts.unsettled++;
      this.sample(`Reverse of ${s.abandoned.kind} ${s.abandoned.terminal.id}|${sequence}: ${label}`);
    }
  }

  private unsettled(s: Settlement, why: string): void {
    this.open.delete(s);
    this.counts.unsettled++;
    this.sample(`${s.call.call.rpc} settling ${s.abandoned.kind} ${s.abandoned.terminal.id}|${s.abandoned.sequence}: ${why}`);
    this.onSettled();
  }
}
