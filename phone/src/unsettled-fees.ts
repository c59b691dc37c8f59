// The fees this tab sent whose outcome it has not seen final (paid, returned, declined), each with its
// requestId. Paying the same fee again (same card, kind, target and amount) sends the same id, so a payment
// whose answer was lost, or that was still pending, is answered by the server's replay instead of paid a
// second time (docs/gateway-api.md, "Fees and requestId idempotency"). The password is not part of what is
// paid: the server's fingerprint leaves it out and checks it before the replay, so a mistyped one neither
// spends the id nor conflicts with it.
//
// Kept in sessionStorage, like the tokens: WeCom's web view reloads a page it put in the background, and the
// holder who comes back after 网络连接失败 must not pay again; the memory dies with the tab. Without storage
// (private mode) it lives in this page's memory only.
import { randomRequestNumber } from './dom.js';

interface Unsettled {
  readonly key: string;
  readonly requestId: number;
  readonly sinceMs: number;
}

const STORE_KEY = 'cardswitch.phone.unsettledFees';
/** More unsettled fees than a holder can have in flight; the oldest is forgotten beyond this. */
const MAX_UNSETTLED = 8;
/** Well under the server's REQUEST_TTL_DAYS (7 by default): an id is never retried after the server forgot it. */
const MAX_AGE_MS = 24 * 3_600_000;

let inMemory: Unsettled[] = [];

function isUnsettled(value: unknown): value is Unsettled {
  const v = value as Partial<Unsettled> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.key === 'string' &&
    Number.isSafeInteger(v.requestId) &&
    (v.requestId ?? 0) >= 1 &&
    typeof v.sinceMs === 'number'
  );
}

function load(nowMs: number): Unsettled[] {
  let list = inMemory;
  try {
    const stored = sessionStorage.getItem(STORE_KEY);
    if (stored !== null) {
      const parsed: unknown = JSON.parse(stored);
      if (Array.isArray(parsed)) list = parsed.filter(isUnsettled);
    }
  } catch {
    // No storage, or something unreadable in it: the memory of this page only.
  }
  return list.filter((u) => nowMs - u.sinceMs >= 0 && nowMs - u.sinceMs < MAX_AGE_MS);
}

function save(list: Unsettled[]): void {
  inMemory = list;
  try {
    if (list.length === 0) sessionStorage.removeItem(STORE_KEY);
    else sessionStorage.setItem(STORE_KEY, JSON.stringify(list));
  } catch {
    // Private mode without storage: kept in memory only.
  }
}

/** What is paid, as the server fingerprints it (card, kind, target, amount), without the password. */
export function feeKey(cardNumber: string, kind: string, target: readonly string[], amountFen: number): string {
  return JSON.stringify([cardNumber, kind, ...target, amountFen]);
}

/** The requestId for this fee: the one of its unsettled earlier try, or a new one, remembered until settled. */
export function requestIdFor(key: string, nowMs = Date.now()): number {
  const list = load(nowMs);
  const earlier = list.find((u) => u.key === key);
  if (earlier !== undefined) return earlier.requestId;
  const requestId = randomRequestNumber();
  save([...list, { key, requestId, sinceMs: nowMs }].slice(-MAX_UNSETTLED));
  return requestId;
}

/** The fee's outcome is final (or its id cannot be used): the next payment of it is a new one. */
export function settle(key: string, nowMs = Date.now()): void {
  save(load(nowMs).filter((u) => u.key !== key));
}
