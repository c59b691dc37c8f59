// Compact journal entries (issue 15): an entry without extra fields is one stream field `e` holding its
// ten values joined by '|'; every reader expands it to the ten fields it stands for, so parsing, the
// audit, statements and the archive read compact and ten-field entries alike. A value holding '|'
// keeps the ten-field form. Against the real test Redis and the real scripts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keys } from '../switch/ledger/keys.js';
import { Ledger } from '../switch/ledger/ledger.js';
import { Scripts } from '../switch/ledger/scripts.js';
import { expandJournalRow, JournalFormatError, journalPages, parseJournalEntry, type RawStreamEntry } from '../switch/ledger/journal.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { connect, freshPrefix } from './helpers/redis.js';

const LIMITS = { noPinPerPaymentFen: 10_000, noPinPerDayFen: 100_000, dailySpendLimitFen: 0 };

describe('compact journal entries', () => {
  const redis = connect();
  let scripts: Scripts;
  beforeAll(async () => {
    scripts = await Scripts.load(redis);
  });
  afterAll(() => redis.quit());

  async function pay(ledger: Ledger, terminalId: string, sequence: number): Promise<string> {
    const result = await ledger.authorize({
      cardNo: '30000001',
      presentedSerial: 'SER1',
      amountFen: 1_250,
      credentialKind: 'card',
      terminalId,
      sequence,
      merchantId: 'M1',
      pinVerified: false,
      limits: { student: LIMITS, staff: LIMITS },
    });
    expect(result.code).toBe('approved');
    return result.transactionId;
  }

  it('a payment is one field in Redis and reads as the ten documented fields; the audit proves it', async () => {
    const keys = new Keys(freshPrefix('jcompact'), 4);
    const ledger = new Ledger(keys, scripts, 3600);
    await ledger.openAccount({ cardNo: '30000001', openingFen: 10_000, fields: { ser: 'SER1', ht: 'S', name: '测试' } });
    const txnId = await pay(ledger, 'POS-1', 7);

    const [raw] = (await redis.xrange(keys.journalOfCard('30000001'), txnId, txnId)) as RawStreamEntry[];
    expect(raw?.[1]).toHaveLength(2);
    expect(raw?.[1][0]).toBe('e');
    const entry = parseJournalEntry(raw!);
    expect(entry).toMatchObject({
      id: txnId,
      kind: 'pay',
      cardNo: '30000001',
      amountFen: 1_250,
      fromParty: 'a:30000001',
      toParty: 'm:M1',
      balanceAfterFen: 8_750,
      version: 2,
      terminalId: 'POS-1',
      sequence: '7',
      walletAfterFen: undefined,
    });
    const pages: RawStreamEntry[] = [];
    for await (const page of journalPages(redis, keys.journalOfCard('30000001'))) pages.push(...page);
    expect(pages.find(([id]) => id === txnId)?.[1]).toEqual(['k', 'pay', 'c', '30000001', 'a', '1250', 'f', 'a:30000001', 't', 'm:M1',
      'b', '8750', 'v', '2', 'tm', 'POS-1', 'sq', '7', 'ts', String(entry.atMs)]); // prettier-ignore
    const audit = await auditLedger(redis, keys);
    expect(audit.problems).toEqual([]);
    expect(audit.ok).toBe(true);
  });

  it("a value holding '|' keeps the ten-field form (the script never joins what it could not split)", async () => {
    const keys = new Keys(freshPrefix('jpipe'), 4);
    const ledger = new Ledger(keys, scripts, 3600);
    await ledger.openAccount({ cardNo: '30000001', openingFen: 10_000, fields: { ser: 'SER1', ht: 'S', name: '测试' } });
    const txnId = await pay(ledger, 'POS|2', 8);

    const [raw] = (await redis.xrange(keys.journalOfCard('30000001'), txnId, txnId)) as RawStreamEntry[];
    expect(raw?.[1]).toHaveLength(20);
    expect(parseJournalEntry(raw!)).toMatchObject({ terminalId: 'POS|2', sequence: '8', amountFen: 1_250 });
  });

  it('a compact value with too few or too many parts is a JournalFormatError, not a guess', () => {
    expect(() => expandJournalRow(['1-1', ['e', 'pay|30000001|1250']])).toThrow(JournalFormatError);
    expect(() => parseJournalEntry(['1-1', ['e', 'pay|c|1|a:c|m:M|0|1|T|1|5|extra']])).toThrow(/11 parts, not 10/);
    // A ten-field row and a row of any other shape pass through unchanged.
    const tenFields: RawStreamEntry = [
      '1-1',
      ['k', 'pay', 'c', 'C', 'a', '1', 'f', 'a:C', 't', 'm:M', 'b', '0', 'v', '1', 'tm', 'T', 'sq', '1', 'ts', '5'],
    ];
    expect(expandJournalRow(tenFields)).toBe(tenFields);
  });
});
