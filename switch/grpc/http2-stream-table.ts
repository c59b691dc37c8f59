// node:http2 keeps each session's open streams in a Map; every unary gRPC call is one stream set into
// it and deleted from it, the churn switch/id-table.ts explains, so the switch swaps that Map for an
// IdTable on every session its gate sees. Measured on the switch under tap closed (loadtest/RESULTS.md,
// "Ninth session"): with the Map, from the first mark-compact under load on, 6-7 KB promoted per call
// and a mark-compact every 2-4 s of 50-300 ms (mostly finalising the calls' header strings and
// sweeping); with the table that state came back in fewer runs (see there).
//
// node:http2 uses only get, set, delete, size and forEach of this Map (Node 20's lib/internal/http2/core.js).
// The table is installed only where the session's state is found in exactly that shape; anywhere else
// (another Node version) the session keeps its Map and works as before, and test/http2-stream-table
// fails so that whoever upgrades Node looks again.
import type { Http2Session } from 'node:http2';
import { IdTable } from '../id-table.js';

/** What node:http2 keeps a session's open streams in once installed. */
export { IdTable as StreamTable };

type SessionState = { streams?: unknown };
/** Each session seen, and whether its streams are in an IdTable. */
const installed = new WeakMap<object, boolean>();

/** The session's internal state object (node:http2's kState), or undefined where it is not found. */
function stateOf(session: Http2Session): SessionState | undefined {
  const key = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state');
  if (key === undefined) return undefined;
  const state = (session as unknown as Record<symbol, unknown>)[key];
  return typeof state === 'object' && state !== null ? state : undefined;
}

/**
 * Installs an IdTable as the session's stream map, once per session (later calls cost one WeakMap
 * lookup). True when the session's streams are kept in an IdTable afterwards.
 */
export function useStreamTable(session: Http2Session): boolean {
  const known = installed.get(session);
  if (known !== undefined) return known;
  const state = stateOf(session);
  // node:http2's Map comes from its own primordials: instanceof Map is false here, its tag is not.
  const found = state !== undefined && Object.prototype.toString.call(state.streams) === '[object Map]';
  if (found) {
    const table = new IdTable<unknown>();
    const map = state.streams as Map<number, unknown>;
    map.forEach((stream, id) => table.set(id, stream));
    state.streams = table;
  }
  installed.set(session, found);
  return found;
}

/** The HTTP/2 session under a grpc-js server call, through any interceptors wrapping it; undefined when not found. */
export function sessionOfCall(call: object): Http2Session | undefined {
  let layer: unknown = call;
  for (let depth = 0; depth < 8 && typeof layer === 'object' && layer !== null; depth++) {
    const { stream, nextCall } = layer as { stream?: { session?: Http2Session }; nextCall?: unknown };
    if (stream?.session !== undefined) return stream.session;
    layer = nextCall;
  }
  return undefined;
}
