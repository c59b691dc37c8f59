// A fee provider for development and tests: it keeps its orders in memory and honours the adapter
// contract (provider.ts). It can be told to refuse, to throw, to hang until the caller gives up, or
// to deliver and then lose the answer (the case that makes giving back without `cancel` unsafe).
import type { UtilityKindCode } from '../ledger/money.js';
import type { CancelResult, FeeOrder, FeeProvider, PayResult } from './provider.js';

export type SimulatedPayMode =
  /** Deliver and answer the receipt. */
  | 'deliver'
  /** Refuse the order for good (e.g. an unknown network account). */
  | 'refuse'
  /** Throw before doing anything (connection refused). */
  | 'error'
  /** Never answer and do nothing, until the caller's signal aborts. */
  | 'hang'
  /** Deliver, then never answer: the switch times out although the target was credited. */
  | 'deliver-then-hang';

export type SimulatedCancelMode = 'answer' | 'hang';

interface SimulatedOrder {
  readonly order: FeeOrder;
  state: 'delivered' | 'refused' | 'void';
  readonly receipt: string;
  readonly reason: string;
}

const MAX_ORDERS = 100_000;

export class FeeProviderSimulator implements FeeProvider {
  payMode: SimulatedPayMode = 'deliver';
  cancelMode: SimulatedCancelMode = 'answer';
  refusalReason = '户号不存在';
  /** Every pay and cancel call, in order (bounded like the order book). */
  readonly calls: { op: 'pay' | 'cancel'; orderId: string }[] = [];
  private readonly orders = new Map<string, SimulatedOrder>();
  private nextReceipt = 1;

  pay(order: FeeOrder, signal: AbortSignal): Promise<PayResult> {
    this.record('pay', order.orderId);
    const known = this.orders.get(order.orderId);
    if (known !== undefined) return Promise.resolve(this.answerOf(known));
    switch (this.payMode) {
      case 'deliver':
        return Promise.resolve(this.answerOf(this.store(order, 'delivered')));
      case 'refuse':
        return Promise.resolve(this.answerOf(this.store(order, 'refused')));
      case 'error':
        return Promise.reject(new Error('fee provider simulator: connection refused'));
      case 'hang':
        return untilAborted(signal);
      case 'deliver-then-hang':
        this.store(order, 'delivered');
        return untilAborted(signal);
    }
  }

  cancel(orderId: string, _kind: UtilityKindCode, signal: AbortSignal): Promise<CancelResult> {
    this.record('cancel', orderId);
    if (this.cancelMode === 'hang') return untilAborted(signal);
    const known = this.orders.get(orderId);
    if (known?.state === 'delivered') return Promise.resolve({ status: 'delivered', receipt: known.receipt });
    // A refused or void order stays so. An order never seen is voided too, so that a pay still in
    // flight and arriving late is refused rather than delivered.
    if (known === undefined) {
      const placeholder: FeeOrder = { orderId, target: { kind: 'network', account: '' }, amountFen: 0, cardNo: '' };
      this.orders.set(orderId, { order: placeholder, state: 'void', receipt: '', reason: '' });
    }
    return Promise.resolve({ status: 'void' });
  }

  /** The delivered orders, to check that nothing was delivered twice. */
  delivered(): FeeOrder[] {
    return [...this.orders.values()].filter((o) => o.state === 'delivered').map((o) => o.order);
  }

  callsOf(orderId: string, op: 'pay' | 'cancel'): number {
    return this.calls.filter((c) => c.orderId === orderId && c.op === op).length;
  }

  private store(order: FeeOrder, state: 'delivered' | 'refused'): SimulatedOrder {
    if (this.orders.size >= MAX_ORDERS) throw new Error(`fee provider simulator holds ${MAX_ORDERS} orders; start a new one`);
    const receipt = state === 'delivered' ? `SIM-${order.target.kind.toUpperCase()}-${this.nextReceipt++}` : '';
    const stored: SimulatedOrder = { order, state, receipt, reason: this.refusalReason };
    this.orders.set(order.orderId, stored);
    return stored;
  }

  private answerOf(order: SimulatedOrder): PayResult {
    if (order.state === 'delivered') return { status: 'delivered', receipt: order.receipt };
    return { status: 'refused', reason: order.state === 'void' ? '订单已撤销' : order.reason };
  }

  private record(op: 'pay' | 'cancel', orderId: string): void {
    if (this.calls.length >= MAX_ORDERS) this.calls.shift();
    this.calls.push({ op, orderId });
  }
}

function untilAborted<T>(signal: AbortSignal): Promise<T> {
  return new Promise<T>((_resolve, reject) => {
    const fail = (): void => reject(new Error('fee provider simulator: call aborted by the caller'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}
