// The card directory: which card a serial (Keys.serial) or a student/staff number (Keys.personNumber)
// belongs to, as the import and card replacement write it. domain/cards.ts keeps the in-memory serial
// cache in front of these reads.
import type { LedgerAccess } from './access.js';

export class CardDirectoryRecords {
  constructor(private readonly ledger: LedgerAccess) {}

  /**
   * The card of a serial, on the scripts' own channel (Scripts.command: the hot-path pipeline client
   * when there is one), so a payment whose serial is not cached yet pays one GET on its own connection.
   */
  async cardOfSerial(serial: string): Promise<string | undefined> {
    const cardNo = await this.ledger.scripts.command(['GET', this.ledger.keys.serial(serial)]);
    return typeof cardNo === 'string' ? cardNo : undefined;
  }

  async cardOfPersonNumber(personNumber: string): Promise<string | undefined> {
    return (await this.ledger.scripts.client.get(this.ledger.keys.personNumber(personNumber))) ?? undefined;
  }
}
