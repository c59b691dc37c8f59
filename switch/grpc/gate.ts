// The call an authenticating server interceptor returns: it holds the caller's metadata back from the
// handler until a check passes, answers a refusal itself (so the handler never runs and nothing
// changes), and otherwise passes every event and every answer straight through.
//
// grpc-js's own ServerInterceptingCall does the same through a listener, a responder, their builders
// and a second layer of pending-event bookkeeping; per call that costs far more than the check: with
// this gate a no-op PosService answers about as many calls as with the check inside the handler, and
// clearly more than with ServerInterceptingCall (figures: loadtest/RESULTS.md, "Figures once kept in comments", row C1).
import { Metadata, type ServerInterceptingCall, type ServerInterceptingCallInterface } from '@grpc/grpc-js';
import { atDeadline, DEADLINE_OVER_REFUSAL, DEADLINE_REFUSAL, deadlineOver } from './deadline.js';
import { sessionOfCall, useStreamTable } from './http2-stream-table.js';

type Listener = Parameters<ServerInterceptingCallInterface['start']>[0];
/** A status to end a call with (grpc-js's PartialStatusObject, which its index does not export). */
export type PartialStatusObject = Parameters<ServerInterceptingCallInterface['sendStatus']>[0];

/** What a check says of a call's metadata: undefined lets it through; a status refuses it. */
export type GateCheck = (metadata: Metadata) => Promise<PartialStatusObject | undefined> | PartialStatusObject | undefined;

class GatedCall implements ServerInterceptingCallInterface {
  constructor(
    private readonly next: ServerInterceptingCallInterface,
    private readonly check: GateCheck,
    private readonly failed: (err: unknown) => PartialStatusObject,
  ) {}

  start(listener: Listener): void {
    const next = this.next;
    const check = this.check;
    const failed = this.failed;
    // Until the check has passed, inbound events wait here (grpc-js's handlers only read after the
    // metadata, but a half-close or a cancellation may come at any time).
    let open = false;
    let cancelled = false;
    let pending: unknown[] | undefined;
    let halfClosed = false;
    const admit = (metadata: Metadata): void => {
      if (cancelled) return;
      open = true;
      listener.onReceiveMetadata(metadata);
      if (pending !== undefined) for (const message of pending.splice(0)) listener.onReceiveMessage(message);
      if (halfClosed) listener.onReceiveHalfClose();
    };
    const refuse = (status: PartialStatusObject): void => {
      if (!cancelled) next.sendStatus(status);
    };
    next.start({
      onReceiveMetadata(metadata: Metadata): void {
        // Its deadline over on arrival: refused before the check reads anything (deadline.ts).
        if (deadlineOver(next.getDeadline())) {
          refuse({ ...DEADLINE_OVER_REFUSAL, metadata: new Metadata() });
          return;
        }
        let verdict: ReturnType<GateCheck>;
        try {
          verdict = check(metadata);
        } catch (err) {
          refuse(failed(err));
          return;
        }
        if (verdict instanceof Promise) {
          // A check waiting for Redis answers before the caller's deadline, as handlers do (deadline.ts).
          let decided = false;
          const cancelDeadline = atDeadline(next.getDeadline(), () => {
            decided = true;
            refuse({ ...DEADLINE_REFUSAL, metadata: new Metadata() });
          });
          const decide = (then: () => void): void => {
            cancelDeadline();
            if (decided) return;
            decided = true;
            then();
          };
          verdict.then(
            (status) => decide(() => (status === undefined ? admit(metadata) : refuse(status))),
            (err: unknown) => decide(() => refuse(failed(err))),
          );
        } else if (verdict === undefined) admit(metadata);
        else refuse(verdict);
      },
      onReceiveMessage(message: unknown): void {
        if (open) listener.onReceiveMessage(message);
        else (pending ??= []).push(message);
      },
      onReceiveHalfClose(): void {
        if (open) listener.onReceiveHalfClose();
        else halfClosed = true;
      },
      onCancel(): void {
        cancelled = true;
        listener.onCancel();
      },
    });
  }

  sendMetadata(metadata: Metadata): void {
    this.next.sendMetadata(metadata);
  }

  sendMessage(message: unknown, callback: () => void): void {
    this.next.sendMessage(message, callback);
  }

  sendStatus(status: PartialStatusObject): void {
    this.next.sendStatus(status);
  }

  startRead(): void {
    this.next.startRead();
  }

  getPeer(): string {
    return this.next.getPeer();
  }

  getDeadline(): ReturnType<ServerInterceptingCallInterface['getDeadline']> {
    return this.next.getDeadline();
  }

  getHost(): string {
    return this.next.getHost();
  }

  getAuthContext(): ReturnType<ServerInterceptingCallInterface['getAuthContext']> {
    return this.next.getAuthContext();
  }

  getConnectionInfo(): ReturnType<ServerInterceptingCallInterface['getConnectionInfo']> {
    return this.next.getConnectionInfo();
  }

  getMetricsRecorder(): ReturnType<ServerInterceptingCallInterface['getMetricsRecorder']> {
    return this.next.getMetricsRecorder();
  }
}

/**
 * The call a server interceptor returns to run `check` on the caller's metadata first. A check that
 * throws or rejects is answered with `failed(err)`. grpc-js types an interceptor's result as its
 * ServerInterceptingCall class, but the server uses only ServerInterceptingCallInterface.
 */
export function gateCall(
  call: ServerInterceptingCallInterface,
  check: GateCheck,
  failed: (err: unknown) => PartialStatusObject,
): ServerInterceptingCall {
  // Every gated call passes here first: its HTTP/2 session's stream map is swapped once (see http2-stream-table.ts).
  const session = sessionOfCall(call);
  if (session !== undefined) useStreamTable(session);
  return new GatedCall(call, check, failed) as unknown as ServerInterceptingCall;
}

/**
 * A call an interceptor has nothing to check, handed on as it is rather than wrapped: every wrapper
 * layer costs every call (two interceptors returning their call vs wrapping it, on a no-op unary
 * service: loadtest/RESULTS.md, "Figures once kept in comments", row C2).
 */
export function passedOn(call: ServerInterceptingCallInterface): ServerInterceptingCall {
  return call as ServerInterceptingCall;
}
