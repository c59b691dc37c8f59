// The churn-safe containers of switch/id-table.ts: IdTable keeps a Map's behaviour for what its users
// call, RingQueue is a first-in-first-out queue through wrap-around and growth.
import { describe, expect, it } from 'vitest';
import { IdTable, RingQueue } from '../switch/id-table.js';

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

describe('RingQueue', () => {
  it('gives entries back oldest first through wrap-around and growth', () => {
    const queue = new RingQueue<number>(16);
    const out: number[] = [];
    let next = 0;
    // Fill and drain unevenly so the ring wraps many times, then outgrow its 16 slots twice.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 7; i++) queue.push(next++);
      for (let i = 0; i < 5; i++) out.push(queue.shift()!);
    }
    expect(queue.length).toBe(100);
    for (let i = 0; i < 40; i++) queue.push(next++);
    expect(queue.peek()).toBe(out.length);
    while (queue.length > 0) out.push(queue.shift()!);
    expect(out).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(queue.shift()).toBeUndefined();
    expect(queue.peek()).toBeUndefined();
  });

  it('takes the newest entries off its end, and all of them, oldest first', () => {
    const queue = new RingQueue<string>(16);
    for (let i = 0; i < 12; i++) queue.push(`x${i}`);
    for (let i = 0; i < 10; i++) queue.shift();
    for (let i = 12; i < 30; i++) queue.push(`x${i}`); // wrapped and grown
    expect(queue.popNewest(3)).toEqual(['x27', 'x28', 'x29']);
    const seen: string[] = [];
    queue.forEach((v) => seen.push(v));
    expect(seen).toEqual(Array.from({ length: 17 }, (_, i) => `x${i + 10}`));
    expect(queue.popNewest(100)).toEqual(seen);
    expect(queue.length).toBe(0);
    queue.push('again');
    expect(queue.takeAll()).toEqual(['again']);
    expect(queue.length).toBe(0);
  });
});
