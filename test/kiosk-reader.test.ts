// The keyboard-wedge card reader: a reader's burst of hex keys and Enter is a card; a person typing,
// stray keys and over-long input are not. Times are given, not waited for.
import { describe, expect, it } from 'vitest';
import { KeyboardWedgeReader } from '../kiosk/main/card-reader.js';

/** Feeds `keys` starting at `startMs`, `gaps[i]` ms (or `gap`) apart; returns the serials read. */
function type(reader: KeyboardWedgeReader, keys: readonly string[], gap: number | readonly number[], startMs = 1_000): number {
  let at = startMs;
  keys.forEach((key, i) => {
    reader.feed(key, at);
    at += typeof gap === 'number' ? gap : (gap[i] ?? 10);
  });
  return at;
}

function readerWithLog(): { reader: KeyboardWedgeReader; reads: string[] } {
  const reader = new KeyboardWedgeReader();
  const reads: string[] = [];
  reader.start((serial) => reads.push(serial));
  return { reader, reads };
}

const burst = (serial: string): string[] => [...serial, 'Enter'];

describe('KeyboardWedgeReader', () => {
  it('reads a reader burst (a few ms per key, then Enter), upper-cased', () => {
    const { reader, reads } = readerWithLog();
    type(reader, burst('04a1b2c3d4'), 8);
    expect(reads).toEqual(['04A1B2C3D4']);
  });

  it('tolerates a slow reader with one hiccup, and modifier keys inside the burst', () => {
    const { reader, reads } = readerWithLog();
    const keys = ['Shift', ...'0A1B', 'Shift', ...'2C3D4E', 'Enter'];
    const gaps = keys.map((_, i) => (i === 5 ? 110 : 25));
    type(reader, keys, gaps);
    expect(reads).toEqual(['0A1B2C3D4E']);
  });

  it('ignores a stray key before the burst; a stray key inside it spoils that read only', () => {
    const { reader, reads } = readerWithLog();
    let at = type(reader, ['x', 'ArrowDown'], 500);
    at = type(reader, burst('DEADBEEF01'), 10, at + 400);
    at = type(reader, [...'DEAD', 'ArrowUp', ...'BEEF02', 'Enter'], 10, at + 400);
    type(reader, burst('CAFEBABE03'), 10, at + 400);
    expect(reads).toEqual(['DEADBEEF01', 'CAFEBABE03']);
  });

  it('is not fooled by a person typing hex and Enter, even a fast typist', () => {
    const { reader, reads } = readerWithLog();
    let at = type(reader, burst('DEADBEEF'), 180);
    at = type(reader, burst('DEADBEEF'), 90, at + 1000);
    type(reader, burst('1234567890'), 60, at + 1000);
    expect(reads).toEqual([]);
  });

  it('drops a pause mid-way (the tail alone is too short), too short and too long input, and a bare Enter', () => {
    const { reader, reads } = readerWithLog();
    let at = type(reader, [...'ABCDEF'], 10);
    at = type(reader, burst('0123'), 10, at + 1000);
    at = type(reader, burst('ABCDEF1'), 10, at + 1000);
    at = type(reader, burst('0123456789ABCDEF01234'), 5, at + 1000);
    type(reader, ['Enter', 'Enter'], 10, at + 1000);
    expect(reads).toEqual([]);
  });

  it('stops reading when stopped', () => {
    const { reader, reads } = readerWithLog();
    reader.stop();
    type(reader, burst('04A1B2C3D4'), 8);
    expect(reads).toEqual([]);
  });
});

describe('KeyboardWedgeReader: a spoiled burst is not a card, however long its tail', () => {
  it('a stray key inside a burst spoils the rest of it: the tail up to Enter is not read as a (shorter) serial', () => {
    const { reader, reads } = readerWithLog();
    // A 14-digit serial with one garbled key after 4 digits: the last 10 digits alone look like a serial.
    let at = type(reader, [...'04A1', 'Unidentified?', 'ArrowUp', ...'B2C3D4E5F6', 'Enter'], 8);
    // A reader that did not send Enter after one read, then a second read: 16 + 16 digits overflow at 21.
    at = type(reader, [...'0123456789ABCDEF', ...'FEDCBA9876543210', 'Enter'], 8, at + 400);
    // The next clean tap reads as usual.
    type(reader, burst('CAFEBABE04'), 8, at + 400);
    expect(reads).toEqual(['CAFEBABE04']);
  });

  it('the rest of a spoiled burst, its Enter included, is swallowed (it does not reach the page)', () => {
    const { reader } = readerWithLog();
    const swallowed = [...'04A1', 'ArrowUp', ...'B2C3D4E5F6', 'Enter'].map((key, i) => reader.feed(key, 1_000 + i * 8));
    expect(swallowed.slice(5)).toEqual(Array.from({ length: 11 }, () => true));
  });

  it('after a spoiled burst and a pause, a new burst is read', () => {
    const { reader, reads } = readerWithLog();
    const at = type(reader, [...'DEAD', 'x', ...'BEEF0102'], 8);
    type(reader, burst('DEADBEEF0102'), 8, at + 400);
    expect(reads).toEqual(['DEADBEEF0102']);
  });
});
