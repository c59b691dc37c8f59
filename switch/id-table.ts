// A table of values under integer ids with a Map's get / set / delete / size / forEach, for
// long-lived containers whose entries come and go with every call (open HTTP/2 streams, commands
// waiting for Redis). A Map or Set there drags what it held into V8's old generation: V8 rebuilds a
// Map's or Set's table after as many deletions as it has room for, and the table it leaves keeps its
// entries and a pointer to the next one; once one such table is in the old generation (a mark-compact
// under load promotes the table in use), every later table and everything they held survive each
// scavenge and are promoted, to die there. A plain object keyed by id rebuilds its storage without that
// chain. The same churn measured alone (`npx tsx loadtest/bench/map-churn.ts --entries 300000`: 128 entries
// live, ~8 KB each): a Map had V8 promote 98 % of what it allocated (90 mark-compacts, 20 s), an IdTable
// 0.17 % (1 mark-compact, 3.6 s); the switch under load: loadtest/RESULTS.md, "Ninth session".
export class IdTable<V> {
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

/**
 * A first-in-first-out queue in one array used as a ring, for a long-lived queue that every call passes
 * through (the commands waiting for Redis's replies, in order). An array used as a queue by push, an
 * index and an occasional splice gets a new backing store every few hundred calls; the one it leaves,
 * by then in the old generation, still points at the calls that were waiting in it, and V8's scavenges
 * take its word for it until the next mark-compact. The ring's store is replaced only when more wait
 * at once than it holds (it doubles), and a slot is cleared as its entry leaves.
 */
export class RingQueue<T> {
  private slots: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(initialCapacity = 1024) {
    this.slots = new Array<T | undefined>(Math.max(16, initialCapacity)).fill(undefined);
  }

  get length(): number {
    return this.count;
  }

  push(value: T): void {
    if (this.count === this.slots.length) this.grow();
    this.slots[(this.head + this.count) % this.slots.length] = value;
    this.count++;
  }

  /** The oldest entry, left in place. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.slots[this.head];
  }

  /** Removes and returns the oldest entry. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const value = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.slots.length;
    this.count--;
    return value;
  }

  /** Removes the newest `n` entries; returns them oldest first. */
  popNewest(n: number): T[] {
    const taken: T[] = [];
    const keep = this.count - Math.min(n, this.count);
    for (let i = keep; i < this.count; i++) {
      const at = (this.head + i) % this.slots.length;
      taken.push(this.slots[at] as T);
      this.slots[at] = undefined;
    }
    this.count = keep;
    return taken;
  }

  /** Removes every entry; returns them oldest first. */
  takeAll(): T[] {
    return this.popNewest(this.count);
  }

  /** Each entry, oldest first. */
  forEach(fn: (value: T) => void): void {
    for (let i = 0; i < this.count; i++) fn(this.slots[(this.head + i) % this.slots.length] as T);
  }

  private grow(): void {
    const next = new Array<T | undefined>(this.slots.length * 2).fill(undefined);
    for (let i = 0; i < this.count; i++) next[i] = this.slots[(this.head + i) % this.slots.length];
    this.slots = next;
    this.head = 0;
  }
}
