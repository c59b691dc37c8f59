// A CSV import with a header and no rows is refused (INVALID_ARGUMENT), imports nothing and writes
// nothing to the operator log, instead of answering "imported 0" (issue 9, item 7).
import { status as Status } from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import { CARDHOLDER_HEADER, parseCardholdersCsv, TERMINAL_HEADER } from '../switch/data/import.js';
import { NoDataRowsError } from '../switch/data/csv.js';
import { adminClient, OPERATOR_ENV, operatorMetadata } from './helpers/clients.js';
import { call, grpcError, startTestSwitch } from './helpers/switch.js';

let app: SwitchApp;
let admin: ReturnType<typeof adminClient>;

beforeAll(async () => {
  app = await startTestSwitch('emptyimport', OPERATOR_ENV);
  admin = adminClient(app);
});
afterAll(async () => {
  admin.close();
  await app.stop();
});

it('refuses a cardholders file with only its header, and logs nothing', async () => {
  // A byte-order mark, CRLF line ends and trailing blank lines: still no cardholder.
  const csv = `\uFEFF${CARDHOLDER_HEADER.join(',')}\r\n\r\n\r\n`;
  const err = await grpcError(call(admin, 'importCardholders', { csv }, operatorMetadata()));
  expect(err.code).toBe(Status.INVALID_ARGUMENT);
  expect(err.details).toContain('the file has no cardholder rows');
  expect(await app.redis.xlen(app.keys.operatorLog())).toBe(0);
});

it('refuses a terminals file with only its header, and logs nothing', async () => {
  const err = await grpcError(call(admin, 'importTerminals', { csv: `${TERMINAL_HEADER.join(',')}\n` }, operatorMetadata()));
  expect(err.code).toBe(Status.INVALID_ARGUMENT);
  expect(err.details).toContain('the file has no terminal rows');
  expect(await app.redis.xlen(app.keys.operatorLog())).toBe(0);
});

it('still lists the problems of a file whose only rows are bad (not "no rows")', () => {
  const parsed = parseCardholdersCsv(`${CARDHOLDER_HEADER.join(',')}\n1,2,3\n`);
  expect(parsed.rows).toEqual([]);
  expect(parsed.errors.map((e) => e.line)).toEqual([2]);
  expect(() => parseCardholdersCsv(CARDHOLDER_HEADER.join(','))).toThrow(NoDataRowsError);
});
