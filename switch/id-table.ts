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
