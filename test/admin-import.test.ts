// Operators import cardholders and terminals over AdminService: all rows or none, every bad row named.
import { status as Status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import { generateDemoCampus } from '../switch/data/demo.js';
import { adminClient, OPERATOR_ENV, operatorMetadata } from './helpers/clients.js';
import { call, startTestSwitch } from './helpers/switch.js';

let app: SwitchApp;
let admin: ReturnType<typeof adminClient>;
const campus = generateDemoCampus({ cardholders: 800, seed: 'admin-import' });

beforeAll(async () => {
  app = await startTestSwitch('adminimport', OPERATOR_ENV);
  admin = adminClient(app);
});
afterAll(async () => {
  admin.close();
  await app.stop();
});

type ImportAnswer = { imported: number; problems: { line: number; message: string }[] };

it('imports a file of 800 cardholders (over 64 KiB) and its terminals', async () => {
  expect(campus.cardholdersCsv.length).toBeGreaterThan(64 * 1024);
  const terminals = await call<object, ImportAnswer>(admin, 'importTerminals', { csv: campus.terminalsCsv }, operatorMetadata());
  expect(terminals.problems).toEqual([]);
  const cards = await call<object, ImportAnswer>(admin, 'importCardholders', { csv: campus.cardholdersCsv }, operatorMetadata());
  expect(cards).toEqual({ imported: 800, problems: [] });
  const first = campus.cardholders[0];
  expect(await app.redis.get(app.keys.serial(first?.cardSerial ?? ''))).toBe(first?.cardNo);
  const log = await app.redis.xrange(app.keys.operatorLog(), '-', '+');
  expect(log.map(([, f]) => f[1])).toEqual(['import-terminals', 'import-cardholders']);
});

it('imports nothing from a file with a bad row, and names the line', async () => {
  // Five rows of new cards (numbers, serials and person numbers not imported yet), the third one bad.
  const lines = campus.cardholdersCsv
    .trimEnd()
    .split('\n')
    .slice(0, 6)
    .map((line, i) => {
      if (i === 0) return line;
      const fields = line.split(',');
      return [`9900000${i}`, `EE00000${i}`, fields[2], `NEW0000${i}`, ...fields.slice(4)].join(',');
    });
  lines[3] = (lines[3] ?? '').replace(/,\d+$/, ',-100');
  const other = { cardholders: [1, 2, 3, 4, 5].map((i) => ({ cardNo: `9900000${i}` })) };
  const existedBefore = await Promise.all(other.cardholders.map((c) => app.redis.exists(app.keys.account(c.cardNo))));
  const answer = await call<object, ImportAnswer>(admin, 'importCardholders', { csv: lines.join('\n') }, operatorMetadata());
  expect(answer.imported).toBe(0);
  expect(answer.problems.map((p) => p.line)).toEqual([4]);
  expect(answer.problems[0]?.message).toMatch(/opening_balance_fen/);
  const existedAfter = await Promise.all(other.cardholders.map((c) => app.redis.exists(app.keys.account(c.cardNo))));
  expect(existedAfter).toEqual(existedBefore);
  expect(existedAfter).toEqual([0, 0, 0, 0, 0]);
});

it('refuses a file over 8 MiB with INVALID_ARGUMENT', async () => {
  const err = await call(admin, 'importCardholders', { csv: 'x'.repeat(8 * 1024 * 1024 + 1) }, operatorMetadata()).catch(
    (e: unknown) => e as ServiceError,
  );
  expect((err as ServiceError).code).toBe(Status.INVALID_ARGUMENT);
});
