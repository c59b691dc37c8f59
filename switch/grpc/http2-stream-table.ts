// A replacement for the Map in which node:http2 keeps each session's open streams, so that unary
// calls stop dragging each other into V8's old generation.
//
// Why (loadtest/RESULTS.md, "Ninth session: the switch's old-generation churn"): every unary gRPC call
// is one HTTP/2 stream, set into and deleted from that Map. V8 rebuilds a Map's table after as many
// deletions as it has room for (every ~100 calls here), and the table it leaves keeps its entries and a
// pointer to the next table. Once one of those tables lands in the old generation (a mark-compact under
// load promotes the table in use), it keeps every later table, and every stream and call they held,
// alive through each scavenge: all of them are promoted and die there. Measured on the switch under tap
// closed: from the first mark-compact on, 6-7 KB promoted per call (30-47 MB/s), a mark-compact every
// 2-4 s of 50-300 ms (most of it finalising the calls' header strings and sweeping), scavenges 110-150
// ms of each second; with this table, about 0.45 KB per call and a mark-compact every ~30 s. A plain
// object keyed by stream id rebuilds its storage without such a chain (the same churn in a 20-line
// script: 554 MB promoted of 1.6 GB allocated with a Map, 6.6 MB of 16.7 GB with an object).
//
// node:http2 uses only get, set, delete, size and forEach of this Map (Node 20's lib/internal/http2/core.js).
// The table is installed only where the session's state is found in exactly that shape; anywhere else
// (another Node version) the session keeps its Map and works as before, and test/http2-stream-table
// fails so that whoever upgrades Node looks again.
import type { Http2Session } from 'node:http2';

export class StreamTable<V> {
  private entries: Record<number, V> = Object.create(null) as Record<number, V>;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(id: number): V | undefined {
    return this.entries[id];
  }

  has(id: number): boolean {
    return this.entries[id] !== undefined;
  }

  set(id: number, value: V): this {
    if (this.entries[id] === undefined) this.count++;
    this.entries[id] = value;
    return this;
  }

  delete(id: number): boolean {
    if (this.entries[id] === undefined) return false;
    delete this.entries[id];
    this.count--;
    return true;
  }

  clear(): void {
    this.entries = Object.create(null) as Record<number, V>;
    this.count = 0;
  }

  /** Over the ids present when it starts (a callback may delete, as a stream's destroy does). */
  forEach(fn: (value: V, id: number, table: this) => void): void {
    for (const key of Object.keys(this.entries)) {
      const value = this.entries[Number(key)];
      if (value !== undefined) fn(value, Number(key), this);
    }
  }

  *entriesOf(): IterableIterator<[number, V]> {
    for (const key of Object.keys(this.entries)) {
      const value = this.entries[Number(key)];
      if (value !== undefined) yield [Number(key), value];
    }
  }

  *values(): IterableIterator<V> {
    for (const [, value] of this.entriesOf()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[number, V]> {
    return this.entriesOf();
  }
}

type SessionState = { streams?: unknown };
const seen = new WeakSet<object>();

/** The session's internal state object (node:http2's kState), or undefined where it is not found. */
function stateOf(session: Http2Session): SessionState | undefined {
  const key = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state');
  if (key === undefined) return undefined;
  const state = (session as unknown as Record<symbol, unknown>)[key];
  return typeof state === 'object' && state !== null ? state : undefined;
}

/**
 * Installs a StreamTable as the session's stream map, once per session (later calls cost one WeakSet
 * lookup). True when the session's streams are kept in a StreamTable afterwards.
 */
export function useStreamTable(session: Http2Session): boolean {
  const state = stateOf(session);
  if (seen.has(session)) return state?.streams instanceof StreamTable;
  seen.add(session);
  // node:http2's Map comes from its own primordials: instanceof Map is false here, its tag is not.
  if (state === undefined || Object.prototype.toString.call(state.streams) !== '[object Map]') return false;
  const table = new StreamTable<unknown>();
  const map = state.streams as Map<number, unknown>;
  map.forEach((stream, id) => table.set(id, stream));
  state.streams = table;
  return true;
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
