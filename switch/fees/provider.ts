// The fee-provider adapter: what the switch needs from the campus network billing system and the
// dormitory electricity system. A real adapter (HTTPS to the provider) and the development simulator
// (simulator.ts) both implement FeeProvider.
//
// The contract that makes "never money taken with nothing delivered" possible (domain/fees.ts):
//  - pay is idempotent per orderId: paying the same order again never delivers twice; it answers the
//    first outcome (the same receipt, or the same refusal).
//  - 'refused' is final: the provider will never deliver that order.
//  - cancel voids an order the switch gave up on: after 'void' the provider never delivers it (a later
//    pay of it is refused); when the order was delivered already, cancel answers its receipt instead.
//  - anything else (a thrown error, no answer in time) means "unknown": the switch must not give the
//    money back until cancel answered 'void'.
import type { UtilityKindCode } from '../ledger/money.js';

export type UtilityTarget =
  | { readonly kind: 'network'; readonly account: string }
  | { readonly kind: 'electricity'; readonly building: string; readonly room: string };

export interface FeeOrder {
  /** Unique per fee request and stable across retries: the provider's idempotency key. */
  readonly orderId: string;
  readonly target: UtilityTarget;
  readonly amountFen: number;
  /** The payer, for the provider's own records. */
  readonly cardNo: string;
}

export type PayResult =
  { readonly status: 'delivered'; readonly receipt: string } | { readonly status: 'refused'; readonly reason: string };

export type CancelResult = { readonly status: 'void' } | { readonly status: 'delivered'; readonly receipt: string };

export interface FeeProvider {
  /** Credits the target at the provider. Must stop work and settle promptly when `signal` aborts. */
  pay(order: FeeOrder, signal: AbortSignal): Promise<PayResult>;
  /** Voids an order, or reports that it was delivered. */
  cancel(orderId: string, kind: UtilityKindCode, signal: AbortSignal): Promise<CancelResult>;
}

/** The provider did not answer within the bounded time. */
export class ProviderTimeoutError extends Error {
  override readonly name = 'ProviderTimeoutError';
}

/**
 * Runs one provider call with a bounded time: the signal aborts and the promise rejects with
 * ProviderTimeoutError at `timeoutMs`, whether or not the adapter honours the signal.
 */
export async function withTimeout<T>(what: string, timeoutMs: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new RangeError(`timeoutMs must be a whole number >= 1, got ${timeoutMs}`);
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new ProviderTimeoutError(`${what}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([run(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** The provider's order id of one kiosk fee request: deterministic, so a retry pays the same order. */
export function providerOrderId(terminalId: string, sequence: number): string {
  return `CS-${terminalId}-${sequence}`;
}
