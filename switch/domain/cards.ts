// Resolves a presented credential to a card account. The serial -> card number directory is cached
// in memory: the mapping of a serial never changes, and authorize.lua re-checks that the serial is
// the account's current one, so a stale entry (after a card replacement) cannot pay.
import type { CardDirectoryRecords } from '../ledger/card-directory.js';

export const CARD_SERIAL_PATTERN = /^[0-9A-Fa-f]{8,20}$/;

export class CardDirectory {
  private readonly bySerial = new Map<string, string>();

  constructor(
    /** The directory in Redis (ledger/card-directory.ts): a serial missing from the cache is read with the payment's own pipeline. */
    private readonly records: Pick<CardDirectoryRecords, 'cardOfSerial' | 'cardOfPersonNumber'>,
    /** Upper bound on cached serials; the cache is cleared when full (a campus has tens of thousands). */
    private readonly maxCachedSerials: number,
  ) {}

  /** Card number for a serial, or undefined when no card has that serial. */
  async cardForSerial(serial: string): Promise<string | undefined> {
    const cached = this.bySerial.get(serial);
    if (cached !== undefined) return cached;
    const cardNo = await this.records.cardOfSerial(serial);
    if (cardNo === undefined) return undefined;
    if (this.bySerial.size >= this.maxCachedSerials) this.bySerial.clear();
    this.bySerial.set(serial, cardNo);
    return cardNo;
  }

  /**
   * Card number for a student/staff number as the holder types it. The import stores numbers in upper
   * case; one imported before that is found as it was written, so that is asked first, then the upper
   * case, then the lower case (a number imported as s2023001 before is found typed S2023001 too).
   */
  async cardForPersonNumber(personNumber: string): Promise<string | undefined> {
    const exact = await this.records.cardOfPersonNumber(personNumber);
    if (exact !== undefined) return exact;
    const upper = personNumber.toUpperCase();
    const inUpper = upper === personNumber ? undefined : await this.records.cardOfPersonNumber(upper);
    if (inUpper !== undefined) return inUpper;
    const lower = personNumber.toLowerCase();
    return lower === personNumber ? undefined : this.records.cardOfPersonNumber(lower);
  }
}

/** As a POS shows a name: the family name and one '*' per other character ("张*", "欧阳**"). */
const TWO_CHARACTER_FAMILY_NAMES = new Set([
  '欧阳',
  '司马',
  '诸葛',
  '上官',
  '东方',
  '皇甫',
  '令狐',
  '慕容',
  '司徒',
  '尉迟',
  '夏侯',
  '长孙',
  '宇文',
  '公孙',
  '端木',
  '独孤',
]);

export function maskName(name: string): string {
  const chars = [...name.trim()];
  if (chars.length === 0) return '';
  if (!/\p{Script=Han}/u.test(chars[0] ?? '')) return `${chars[0]}***`;
  const familyLength = chars.length > 2 && TWO_CHARACTER_FAMILY_NAMES.has(chars.slice(0, 2).join('')) ? 2 : 1;
  return chars.slice(0, familyLength).join('') + '*'.repeat(Math.max(1, chars.length - familyLength));
}
