// switch/id-table.ts's IdTable keeps a Map's behaviour for what its users call (node:http2's stream
// map, the breaker's waiting commands, the gateway's running handlers).
import { describe, expect, it } from 'vitest';
import { IdTable } from '../switch/id-table.js';

describe('IdTable', () => {
  it('keeps size, get, set, delete and has like a Map, and forEach survives deletions made by its callback', () => {
    const table = new IdTable<string>();
    for (const id of [1, 3, 5, 7, 2_147_483_647]) table.set(id, `s${id}`);
    table.set(3, 'again');
    expect(table.size).toBe(5);
    expect(table.get(3)).toBe('again');
    expect(table.has(4)).toBe(false);
    expect(table.delete(4)).toBe(false);
    const seen: number[] = [];
    table.forEach((_value, id, t) => {
      seen.push(id);
      t.delete(id);
      t.delete(7); // a callback ending another stream: it is not visited afterwards
    });
    expect(seen).toEqual([1, 3, 5, 2_147_483_647]);
    expect(table.size).toBe(0);
    expect([...table]).toEqual([]);
  });
});
