import { afterAll, describe, expect, it } from 'vitest';
import { Keys } from '../switch/ledger/keys.js';
import { Ledger } from '../switch/ledger/ledger.js';
import { Scripts } from '../switch/ledger/scripts.js';
import { connect, freshPrefix } from './helpers/redis.js';

const NO_LIMITS = { noPinPerPaymentFen: 1e8, noPinPerDayFen: 1e8, dailySpendLimitFen: 0 };

describe('ledger smoke', () => {
  const redis = connect();
  afterAll(() => redis.quit());
  it('opens, pays, reverses', async () => {
    const ledger = new Ledger(new Keys(freshPrefix('smoke'), 16), await Scripts.load(redis), 3600);
    expect(await ledger.openAccount({ cardNo: 'C1', openingFen: 1000, fields: { ser: 'AA01', name: '张三' } })).toBe(true);
    const a = await ledger.authorize({
      cardNo: 'C1',
      presentedSerial: 'AA01',
      amountFen: 300,
      credentialKind: 'card',
      terminalId: 'T1',
      sequence: 1,
      merchantId: 'M1',
      pinVerified: false,
      limits: { student: NO_LIMITS, staff: NO_LIMITS },
    });
    expect(a.code).toBe('approved');
    expect(a.balanceAfterFen).toBe(700);
    const r = await ledger.reverse({ cardNo: 'C1', amountFen: 300, terminalId: 'T1', sequence: 1 });
    expect(r).toMatchObject({ code: 'reversed', balanceAfterFen: 1000 });
  });
});
