// Operators import cardholders and terminals over AdminService: all rows or none, every bad row named.
// The CLI's imports (`main`) are operator actions too, logged alike.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { compressionAlgorithms, credentials, status as Status, type ServiceError } from '@grpc/grpc-js';
import iconv from 'iconv-lite';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import { AdminServiceClient } from '../proto/gen/cardswitch/v1/admin.js';
import { main } from '../switch/cli/main.js';
import { IMPORT_TOO_LARGE_MESSAGE } from '../switch/data/import.js';
import { generateDemoCampus } from '../switch/data/demo.js';
import { TerminalRegistry } from '../switch/domain/terminals.js';
import { TerminalRecords } from '../switch/ledger/terminals.js';
import { Keys } from '../switch/ledger/keys.js';
import { adminClient, OPERATOR_ENV, operatorMetadata } from './helpers/clients.js';
import { connect, freshPrefix, testRedisUrl } from './helpers/redis.js';
import { redisServer } from './helpers/redis-server.js';
import { call, ledgerRedisOverridden, startTestSwitch, TEST_PEPPER, TEST_QR_SECRET, TEST_SESSION_SECRET } from './helpers/switch.js';

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
  expect(entryOf(log[0]?.[1] ?? [])).toEqual({
    op: 'import-terminals',
    by: 'alice',
    imported: String(campus.terminals.length),
    problems: '0',
  });
});

/** An operator-log entry's fields, without its time stamp. */
function entryOf(fields: readonly string[]): Record<string, string> {
  const entry: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] !== 'ts') entry[fields[i] ?? ''] = fields[i + 1] ?? '';
  return entry;
}

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

/** Points the CLI (which reads process.env) at a fresh key space of the test Redis; returns its keys. */
function cliKeySpace(): Keys {
  const prefix = freshPrefix('cliimport');
  const env = {
    REDIS_URL: testRedisUrl(),
    KEY_PREFIX: prefix,
    LEDGER_SHARDS: '16',
    TERMINAL_SECRET_PEPPER: TEST_PEPPER,
    PASSWORD_PEPPER: TEST_PEPPER,
    SESSION_SECRET: TEST_SESSION_SECRET,
    CAMPUS_QR_SECRET: TEST_QR_SECRET,
  };
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  return new Keys(prefix, 16);
}

it("logs the CLI's imports to the operator log as AdminService does, naming who ran them", async () => {
  const keys = cliKeySpace();
  const small = generateDemoCampus({ cardholders: 20, seed: 'cli-import' });
  const dir = mkdtempSync(join(tmpdir(), 'cli-import-'));
  const terminalsFile = join(dir, 'terminals.csv');
  const cardholdersFile = join(dir, 'cardholders.csv');
  writeFileSync(terminalsFile, small.terminalsCsv);
  writeFileSync(cardholdersFile, small.cardholdersCsv);
  vi.spyOn(console, 'log').mockImplementation(() => undefined);
  vi.spyOn(console, 'error').mockImplementation(() => undefined);

  expect(await main(['import-terminals', terminalsFile, '--operator', 'carol'])).toBe(0);
  expect(await main(['import-cardholders', cardholdersFile])).toBe(0);
  // Every terminal is already registered: nothing imported, and the attempt is logged with its problems.
  expect(await main(['import-terminals', terminalsFile, '--operator', 'carol'])).toBe(1);
  // A name the log could not hold is refused before anything is read or written.
  expect(await main(['import-terminals', terminalsFile, '--operator', 'carol smith'])).toBe(2);

  // The CLI ran on the test Redis (REDIS_URL above), whatever ledger this file's switch uses (test/cluster-flow).
  const direct = connect();
  const log = await direct.xrange(keys.operatorLog(), '-', '+');
  const enabled = await direct.hget(keys.terminal(small.terminals[0]?.id ?? ''), 'enabled');
  await direct.quit();
  const terminalCount = String(small.terminals.length);
  expect(log.map(([, f]) => entryOf(f))).toEqual([
    { op: 'import-terminals', by: 'cli:carol', imported: terminalCount, problems: '0' },
    { op: 'import-cardholders', by: `cli:${userInfo().username}`, imported: '20', problems: '0' },
    { op: 'import-terminals', by: 'cli:carol', imported: '0', problems: terminalCount },
  ]);
  expect(enabled).toBe('1');
  rmSync(dir, { recursive: true, force: true });
});

it('imports without the secrets it does not use, and says so plainly when --out cannot be written', async () => {
  const keys = cliKeySpace();
  // An import uses no session or QR secret and no password pepper; a cardholder import no terminal pepper.
  for (const name of ['SESSION_SECRET', 'CAMPUS_QR_SECRET', 'PASSWORD_PEPPER']) vi.stubEnv(name, undefined);
  const small = generateDemoCampus({ cardholders: 5, seed: 'cli-secrets' });
  const dir = mkdtempSync(join(tmpdir(), 'cli-secrets-'));
  try {
    const terminalsFile = join(dir, 'terminals.csv');
    const cardholdersFile = join(dir, 'cardholders.csv');
    writeFileSync(terminalsFile, small.terminalsCsv);
    writeFileSync(cardholdersFile, small.cardholdersCsv);
    vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    expect(await main(['import-terminals', terminalsFile, '--operator', 'carol'])).toBe(0);
    vi.stubEnv('TERMINAL_SECRET_PEPPER', undefined);
    expect(await main(['import-cardholders', cardholdersFile, '--operator', 'carol'])).toBe(0);
    // Registering terminals without the switch's terminal pepper would store secrets no switch accepts.
    expect(await main(['import-terminals', terminalsFile, '--operator', 'carol'])).toBe(2);
    expect(String(errors.mock.calls.at(-1)?.[0])).toMatch(/TERMINAL_SECRET_PEPPER: not set/);
    const direct = connect();
    expect(await direct.get(keys.serial(small.cardholders[0]?.cardSerial ?? ''))).toBe(small.cardholders[0]?.cardNo);
    await direct.quit();

    // --out naming a path under a file: a message and exit 2, not a stack trace.
    expect(await main(['demo-campus', '--out', join(cardholdersFile, 'campus'), '--cardholders', '5'])).toBe(2);
    expect(String(errors.mock.calls.at(-1)?.[0])).toMatch(/^error: cannot write the demo campus into --out .*ENOTDIR/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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

it('names the line and the field of each problem, in English and zh-CN, over gRPC and in the CLI', async () => {
  const header = 'terminal_id,kind,merchant_id,location,secret';
  const bad = `${header}\nPOS-Z1,canteen,M1,"一食堂\u0000",0123456789abcdef0123\n`;
  const answer = await call<object, { imported: number; problems: object[] }>(admin, 'importTerminals', { csv: bad }, operatorMetadata());
  expect(answer.imported).toBe(0);
  expect(answer.problems).toEqual([
    {
      line: 2,
      field: 'location',
      message: 'location must not contain control or invisible format characters (a tab, a line break, a NUL, a direction mark)',
      messageZh: '安装位置不能含控制字符或不可见的格式字符（制表符、换行、NUL、方向标记）',
    },
  ]);
  expect(await app.redis.exists(app.keys.terminal('POS-Z1'))).toBe(0);

  const dir = mkdtempSync(join(tmpdir(), 'import-zh-'));
  try {
    const file = join(dir, 'terminals.csv');
    writeFileSync(file, bad);
    vi.stubEnv('REDIS_URL', testRedisUrl());
    vi.stubEnv('KEY_PREFIX', freshPrefix('clizh'));
    vi.stubEnv('TERMINAL_SECRET_PEPPER', TEST_PEPPER);
    const printed: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((line: string) => void printed.push(line));
    expect(await main(['import-terminals', file])).toBe(1);
    expect(printed[0]).toBe(
      `${file}:2: location: location must not contain control or invisible format characters (a tab, a line break, a NUL, a direction mark) / 安装位置不能含控制字符或不可见的格式字符（制表符、换行、NUL、方向标记）`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('RegisterTerminal does not overwrite a terminal registered since this switch cached its absence', async () => {
  // TERMINAL_CACHE_MS: the switch remembers that POS-C1 was not registered (its POS called too early).
  const cached = await startTestSwitch('regcache', { ...OPERATOR_ENV, TERMINAL_CACHE_MS: '60000' });
  const cachedAdmin = adminClient(cached);
  try {
    expect(await cached.terminals.get('POS-C1')).toBeUndefined();
    // Meanwhile the CLI registers it, and an operator disables it.
    const cli = new TerminalRegistry(new TerminalRecords(cached.ledger), TEST_PEPPER, 0);
    await cli.register({ id: 'POS-C1', kind: 'canteen', merchantId: 'M1', location: '一食堂', secret: 'secret-of-the-cli-00' });
    await cli.setEnabled('POS-C1', false);
    const request = { terminalId: 'POS-C1', kind: 'canteen', merchantId: 'M1', location: '一食堂', secret: 'secret-of-the-rpc-00' };
    const err = await call(cachedAdmin, 'registerTerminal', request, operatorMetadata()).catch((e: unknown) => e as ServiceError);
    expect((err as ServiceError).code).toBe(Status.FAILED_PRECONDITION);
    const stored = await cli.get('POS-C1');
    expect(stored?.enabled).toBe(false);
    expect(stored !== undefined && cli.secretMatches(stored, 'secret-of-the-cli-00')).toBe(true);
  } finally {
    cachedAdmin.close();
    await cached.stop();
  }
});

it('the CLI refuses a GBK file in English and zh-CN, and takes a UTF-8 file with a BOM and mixed line ends', async () => {
  const keys = cliKeySpace();
  const header = 'card_number,card_serial,name,person_number,holder_type,document_type,document_number,phone,opening_balance_fen';
  const rows = [
    '99100001,EF000001,张三,GBK00001,student,resident_id,11010519900307123X,13800138000,100',
    '99100002,EF000002,"欧阳 ""娜娜"", 二",GBK00002,staff,passport,E1234A678,+447700900123,0',
  ];
  const dir = mkdtempSync(join(tmpdir(), 'cli-encoding-'));
  try {
    const gbk = join(dir, 'gbk.csv');
    writeFileSync(gbk, iconv.encode(`${header}\r\n${rows.join('\r\n')}\r\n`, 'gbk'));
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    vi.spyOn(console, 'log').mockImplementation(() => undefined);
    expect(await main(['import-cardholders', gbk])).toBe(2);
    const said = String(errors.mock.calls.at(-1)?.[0]);
    expect(said).toMatch(/is not UTF-8 text/);
    expect(said).toMatch(/不是 UTF-8 编码/);
    const direct = connect();
    expect(await direct.exists(keys.account('99100001'))).toBe(0);

    const utf8 = join(dir, 'utf8.csv');
    writeFileSync(utf8, `\uFEFF${header}\r\n${rows[0]}\n${rows[1]}\r\n`);
    expect(await main(['import-cardholders', utf8])).toBe(0);
    expect(await direct.hget(keys.account('99100002'), 'name')).toBe('欧阳 "娜娜", 二');
    await direct.quit();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('an import Redis stops taking part-way answers UNAVAILABLE saying how far it got, in English and zh-CN', async (ctx) => {
  // Its own redis-server made full: under cluster-flow (which runs this file on a Redis Cluster) the switch
  // would use the cluster instead, and filling a master of the shared cluster breaks every test after it.
  if (ledgerRedisOverridden()) ctx.skip();
  const server = await redisServer([]);
  const full = await startTestSwitch('importoom', { ...OPERATOR_ENV, REDIS_URL: `redis://127.0.0.1:${server.port}` });
  const fullAdmin = adminClient(full);
  try {
    const rows = campus.cardholdersCsv.trimEnd().split('\n').slice(0, 4).join('\n');
    // Full: every read answers (the check passes), every write is refused with OOM.
    await full.redis.config('SET', 'maxmemory-policy', 'noeviction');
    await full.redis.config('SET', 'maxmemory', '1');
    const err = await call(fullAdmin, 'importCardholders', { csv: rows }, operatorMetadata()).catch((e: unknown) => e as ServiceError);
    await full.redis.config('SET', 'maxmemory', '0');
    expect((err as ServiceError).code).toBe(Status.UNAVAILABLE);
    expect((err as ServiceError).details).toMatch(/the import stopped after writing about \d+ cardholders/);
    expect((err as ServiceError).details).toMatch(/导入在写入约\d+个持卡人后中断/);

    await full.redis.config('SET', 'maxmemory', '1');
    const terminals = campus.terminalsCsv.trimEnd().split('\n').slice(0, 4).join('\n');
    const refused = await call(fullAdmin, 'importTerminals', { csv: terminals }, operatorMetadata()).catch(
      (e: unknown) => e as ServiceError,
    );
    await full.redis.config('SET', 'maxmemory', '0');
    expect((refused as ServiceError).code).toBe(Status.UNAVAILABLE);
    expect((refused as ServiceError).details).toMatch(/the import stopped after writing about \d+ terminals/);
    expect((refused as ServiceError).details).toMatch(/导入在写入约\d+个终端后中断/);
  } finally {
    fullAdmin.close();
    await full.stop();
    server.stop();
  }
});

describe('a file over the import limit (8 MiB of UTF-8), however it is counted', () => {
  const MIB = 1024 * 1024;
  const header = 'card_number,card_serial,holder_type,name,student_or_staff_no,opening_balance_fen\n';
  for (const [label, csv] of [
    ['8 MiB + 1 byte of ASCII (read, refused by the handler)', 'x'.repeat(8 * MIB + 1)],
    // 3.2 Mi characters: well under 8 Mi characters, 9.6 MiB as UTF-8: over grpc-js's receive limit.
    ['3.2 Mi Chinese characters (over the transport limit)', header + '张'.repeat(3.2 * MIB)],
    ['2.8 Mi Chinese characters (8.4 MiB encoded, under the transport limit)', header + '张'.repeat(2.8 * MIB)],
    ['20 MiB of ASCII', 'x'.repeat(20 * MIB)],
  ] as const) {
    it(`${label}: one RESOURCE_EXHAUSTED saying the limit and to split the file, zh-CN and English`, async () => {
      const err = await call(admin, 'importCardholders', { csv }, operatorMetadata()).catch((e: unknown) => e as ServiceError);
      expect((err as ServiceError).code, (err as ServiceError).details).toBe(Status.RESOURCE_EXHAUSTED);
      expect((err as ServiceError).details).toBe(
        'CSV 文件超过 8 MiB（UTF-8 编码），请拆分成较小的文件后分别导入；the CSV file is over 8 MiB (UTF-8): split it into smaller files and import each',
      );
    });
  }

  it('20 MiB of ASCII sent gzip-compressed (a small message that decompresses over the limit): the same refusal', async () => {
    const gzipAdmin = new AdminServiceClient(`127.0.0.1:${app.grpcPort}`, credentials.createInsecure(), {
      'grpc.default_compression_algorithm': compressionAlgorithms.gzip,
    });
    try {
      const err = await call(gzipAdmin, 'importCardholders', { csv: 'x'.repeat(20 * MIB) }, operatorMetadata()).catch(
        (e: unknown) => e as ServiceError,
      );
      expect((err as ServiceError).code, (err as ServiceError).details).toBe(Status.RESOURCE_EXHAUSTED);
      expect((err as ServiceError).details).toBe(IMPORT_TOO_LARGE_MESSAGE);
    } finally {
      gzipAdmin.close();
    }
  });

  it('a file of exactly 8 MiB is read (its rows are checked, not its size)', async () => {
    const csv = header + 'x'.repeat(8 * MIB - header.length);
    const answer = await call<object, ImportAnswer>(admin, 'importCardholders', { csv }, operatorMetadata());
    expect(answer.imported).toBe(0);
    expect(answer.problems.length).toBeGreaterThan(0);
  });
});
