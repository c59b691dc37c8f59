// Card readers. The kiosks' readers are keyboard wedges: on a tap they type the card serial (8-20 hex
// digits) like a very fast keyboard, then Enter. KeyboardWedgeReader tells that burst apart from a
// person typing: the keys must come fast (a person's keystrokes are 100+ ms apart, a reader's a few ms;
// one slow gap is tolerated), modifier keys and key-ups are ignored, and anything else spoils the
// burst up to its Enter (or a pause), so the tail of a garbled or over-long read is not a card. In
// Electron the keys come from the window's `before-input-event` in main, so the serial never reaches
// the renderer. A PC/SC reader would implement CardReader too (see kiosk/README.md).

export interface CardReader {
  /** Starts reading; `onCard` gets each serial read (upper-case hex). */
  start(onCard: (serial: string) => void): void;
  stop(): void;
}

export interface WedgeOptions {
  /** Longest gap between two keys of one read (default 150 ms: a slow reader, a busy machine). */
  readonly maxGapMs?: number;
  /** Longest mean gap over the whole serial (default 50 ms: nobody types 8+ keys this fast). */
  readonly maxMeanGapMs?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
}

const MODIFIERS = new Set(['Shift', 'Control', 'Alt', 'AltGraph', 'Meta', 'CapsLock', 'NumLock', 'Fn', 'Unidentified', 'Dead']);
const HEX = /^[0-9A-Fa-f]$/;

export class KeyboardWedgeReader implements CardReader {
  private readonly maxGapMs: number;
  private readonly maxMeanGapMs: number;
  private readonly minLength: number;
  private readonly maxLength: number;
  private buffer = '';
  private firstAt = 0;
  private lastAt = 0;
  /**
   * A burst spoiled by a stray key or by running over maxLength: the rest of it, up to its Enter or a pause
   * longer than maxGapMs, is not a card either (its tail alone would otherwise read as a shorter serial).
   */
  private spoiledAt: number | undefined;
  private listener: ((serial: string) => void) | undefined;

  constructor(options: WedgeOptions = {}) {
    this.maxGapMs = options.maxGapMs ?? 150;
    this.maxMeanGapMs = options.maxMeanGapMs ?? 50;
    this.minLength = options.minLength ?? 8;
    this.maxLength = options.maxLength ?? 20;
  }

  start(onCard: (serial: string) => void): void {
    this.listener = onCard;
  }

  stop(): void {
    this.listener = undefined;
    this.reset();
  }

  /**
   * One key down, at `atMs`. Returns true when the key belongs to a read in progress or completed one
   * (main swallows it then, so a reader's keys do not reach the page).
   */
  feed(key: string, atMs: number): boolean {
    if (MODIFIERS.has(key)) return this.buffer !== '';
    if (this.spoiledAt !== undefined) {
      if (atMs - this.spoiledAt <= this.maxGapMs) {
        // The reader's keys all the same: swallowed, its Enter too (it must not press a button on the page).
        this.spoiledAt = key === 'Enter' ? undefined : atMs;
        return true;
      }
      this.spoiledAt = undefined;
    }
    if (key === 'Enter') {
      const serial = this.buffer;
      const plausible =
        serial.length >= this.minLength &&
        serial.length <= this.maxLength &&
        atMs - this.lastAt <= this.maxGapMs &&
        (atMs - this.firstAt) / serial.length <= this.maxMeanGapMs;
      this.reset();
      if (plausible) this.listener?.(serial.toUpperCase());
      return plausible;
    }
    if (!HEX.test(key)) {
      // A stray key (an arrow, a letter beyond F): whatever was typed so far is not a card, nor the rest of
      // a burst it interrupted.
      this.spoil(atMs);
      return false;
    }
    if (this.buffer !== '' && atMs - this.lastAt > this.maxGapMs) this.reset();
    if (this.buffer === '') this.firstAt = atMs;
    this.buffer += key;
    this.lastAt = atMs;
    if (this.buffer.length > this.maxLength) {
      this.spoil(atMs);
      return false;
    }
    return this.buffer.length > 1;
  }

  private spoil(atMs: number): void {
    const inBurst = this.buffer !== '';
    this.reset();
    if (inBurst) this.spoiledAt = atMs;
  }

  private reset(): void {
    this.spoiledAt = undefined;
    this.buffer = '';
    this.firstAt = 0;
    this.lastAt = 0;
  }
}
