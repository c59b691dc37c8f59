// Measures what docs/CAPACITY.md multiplies: Redis memory per cardholder (an account as the import writes
// it, with its serial and person-number directory keys) and per payment (request record, sequence claim,
// journal entry, statement line), and AOF bytes per payment, on a private redis-server (AOF on) with the
// real switch. `npx tsx loadtest/bench/capacity.ts [cardholders] [payments]`; prints one JSON line.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { PosServiceClient } from '../../proto/gen/cardswitch/v1/pos.js';
import { startSwitch } from '../../switch/app.js';
import { loadConfig } from '../../switch/config.js';
import { createLogger } from '../../switch/log.js';
import { startLocalRedis } from '../../switch/redis/local-redis.js';

const cardholders = Number(process.argv[2] ?? 20_000);
const payments = Number(process.argv[3] ?? 10_000);
const IN_FLIGHT = 64;

async function usedMemory(redis: Redis): Promise<number> {
  await redis.call('MEMORY', 'PURGE').catch(() => undefined);
  return Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
}

function aofBytes(dir: string): number {
  const aofDir = join(dir, 'appendonly');
  return readdirSync(aofDir).reduce((n, f) => n + statSync(join(aofDir, f)).size, 0);
}

const dir = mkdtempSync(join(tmpdir(), 'cardswitch-capacity-'));
const local = await startLocalRedis({ dataDir: dir, port: 0, appendOnly: true, appendFsync: 'everysec', startTimeoutMs: 20_000 });
const secret = 'capacity-measure-0123456789abcdef';
const config = loadConfig({
  REDIS_URL: local.url,
  GRPC_HOST: '127.0.0.1',
  GRPC_PORT: '0',
  LEDGER_SHARDS: '256',
  TERMINAL_SECRET_PEPPER: secret,
  PASSWORD_PEPPER: secret,
  SESSION_SECRET: secret,
  CAMPUS_QR_SECRET: secret,
  LOG_LEVEL: 'warn',
  STUDENT_NO_PIN_PER_DAY_FEN: '100000000',
  STUDENT_DAILY_SPEND_LIMIT_FEN: '0',
});
const app = await startSwitch(config, createLogger('warn'), Date.now, { gateway: false });
const redis = new Redis(local.url);
try {
  const terminal = {
    id: 'CAP-POS-1',
    kind: 'canteen' as const,
    merchantId: 'CAP',
    location: 'capacity',
    secret: 'cap-pos-secret-0123456789',
  };
  await app.terminals.register(terminal);
  const memStart = await usedMemory(redis);
  for (let c = 0; c < cardholders; c++) {
    const cardNo = String(90_000_000 + c);
    const serial = `C0${String(c).padStart(8, '0')}`;
    const personNo = `2026${String(c).padStart(6, '0')}`;
    await app.ledger.openAccount({
      cardNo,
      openingFen: 500_000,
      fields: {
        ser: serial,
        name: '张三丰',
        sno: personNo,
        ht: 'S',
        doct: 'R',
        docn: `11010520000101${String(c % 10_000).padStart(4, '0')}`,
        phone: '13800138000',
      },
    });
    await redis.set(app.keys.serial(serial), cardNo);
    await redis.set(app.keys.personNumber(personNo), cardNo);
  }
  const memCards = await usedMemory(redis);
  const aofBefore = aofBytes(dir);
  const pos = new PosServiceClient(`127.0.0.1:${app.grpcPort}`, credentials.createInsecure());
  const md = new Metadata();
  md.set('terminal-id', terminal.id);
  md.set('terminal-secret', terminal.secret);
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < payments) {
        const sequence = ++next;
        const card = sequence % cardholders;
        await new Promise<void>((resolve, reject) =>
          pos.authorize(
            {
              terminalId: terminal.id,
              sequenceNumber: sequence,
              amountFen: 1250,
              credential: { card: { cardSerial: `C0${String(card).padStart(8, '0')}` } },
              pin: '',
            },
            md,
            (err) => (err ? reject(err) : resolve()),
          ),
        );
      }
    }),
  );
  pos.close();
  await new Promise((resolve) => setTimeout(resolve, 1500)); // appendfsync everysec: the last second on disk
  const memPaid = await usedMemory(redis);
  const aofAfter = aofBytes(dir);
  console.log(
    JSON.stringify({
      cardholders,
      payments,
      bytesPerCardholder: Math.round((memCards - memStart) / cardholders),
      bytesPerPayment: Math.round((memPaid - memCards) / payments),
      aofBytesPerPayment: Math.round((aofAfter - aofBefore) / payments),
      usedMemoryBytes: memPaid,
    }),
  );
} finally {
  redis.disconnect();
  await app.stop();
  await local.stop();
  rmSync(dir, { recursive: true, force: true });
}
