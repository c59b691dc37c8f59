// Configuration is validated at start-up: every bad value is reported at once, naming the variable.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, describeLedgerRedis, loadConfig, withoutUrlCredentials } from '../switch/config.js';

const GOOD = {
  TERMINAL_SECRET_PEPPER: 'pepper-0123456789abc',
  PASSWORD_PEPPER: 'pepper-0123456789xyz',
  SESSION_SECRET: 'session-secret-0123456789abcdef-xyz',
  CAMPUS_QR_SECRET: 'campus-qr-secret-0123456789abcdef-xyz',
};

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig({ ...GOOD, ...env });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  it('accepts the defaults once the peppers are set, with the documented values', () => {
    const config = loadConfig(GOOD);
    expect(config).toMatchObject({
      grpcPort: 50051,
      ledgerShards: 256,
      maxPaymentFen: 100_000,
      wechatMaxRechargeFen: 99_900,
      requestTtlSec: 7 * 86_400,
    });
    expect(config.limits.student).toEqual({ noPinPerPaymentFen: 5000, noPinPerDayFen: 20_000, dailySpendLimitFen: 100_000 });
    expect(config.operatorTokens.size).toBe(0);
  });

  it('reports every bad value at once, each naming its variable and what it accepts', () => {
    const problems = problemsOf({
      GRPC_PORT: '70000',
      LEDGER_SHARDS: 'many',
      MAX_PAYMENT_FEN: '12.50',
      REDIS_URL: 'localhost:6379',
      LOG_LEVEL: 'loud',
      PASSWORD_PEPPER: 'short',
      OPERATOR_TOKENS: 'alice',
    });
    expect(problems).toHaveLength(7);
    for (const name of ['GRPC_PORT', 'LEDGER_SHARDS', 'MAX_PAYMENT_FEN', 'REDIS_URL', 'LOG_LEVEL', 'PASSWORD_PEPPER', 'OPERATOR_TOKENS']) {
      expect(problems.some((p) => p.startsWith(name))).toBe(true);
    }
    expect(problems.find((p) => p.startsWith('MAX_PAYMENT_FEN'))).toMatch(/whole number/);
  });

  it('requires both peppers', () => {
    expect(problemsOf({ TERMINAL_SECRET_PEPPER: '', PASSWORD_PEPPER: '' })).toHaveLength(2);
  });

  it('requires the session and campus QR secrets, at least 32 characters each', () => {
    const problems = problemsOf({ SESSION_SECRET: '', CAMPUS_QR_SECRET: 'short' });
    expect(problems).toHaveLength(2);
    expect(problems.find((p) => p.startsWith('CAMPUS_QR_SECRET'))).toMatch(/at least 32/);
  });

  it('refuses the placeholder secrets of the env example and never repeats a secret in a problem', () => {
    const example = readFileSync(new URL('../deploy/cardswitch.env.example', import.meta.url), 'utf8');
    const fromExample = Object.fromEntries(
      [...example.matchAll(/^(TERMINAL_SECRET_PEPPER|PASSWORD_PEPPER|SESSION_SECRET|CAMPUS_QR_SECRET|OPERATOR_TOKENS)=(.*)$/gm)].map(
        (m) => [m[1] as string, m[2] as string],
      ),
    );
    expect(Object.keys(fromExample)).toHaveLength(5);
    const problems = problemsOf(fromExample);
    expect(problems).toHaveLength(5);
    for (const name of Object.keys(fromExample)) {
      expect(problems.find((p) => p.startsWith(name))).toMatch(/placeholder.*openssl rand -base64 32/);
    }
    const short = problemsOf({ PASSWORD_PEPPER: 'tooShortSecret' });
    expect(short).toEqual([expect.stringMatching(/^PASSWORD_PEPPER: 14 characters; must be at least 16 .*openssl rand/)]);
    expect(short[0]).not.toContain('tooShortSecret');
  });

  it('knows every variable deploy/cardswitch.env.example names, set or commented out', () => {
    const example = readFileSync(new URL('../deploy/cardswitch.env.example', import.meta.url), 'utf8');
    const named = [...new Set([...example.matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1] as string))];
    expect(named.length).toBeGreaterThan(40);
    const source = readdirSync(new URL('../switch/', import.meta.url), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => readFileSync(new URL(`../switch/${f}`, import.meta.url), 'utf8'))
      .join('\n');
    // Read as env['NAME'], env.NAME, or NAME_FILE beside NAME (a key given as a file: readKey's `${name}_FILE`).
    const read = (name: string): boolean => [`'${name}'`, `"${name}"`, `env.${name}`].some((form) => source.includes(form));
    expect(named.filter((name) => !read(name) && !(name.endsWith('_FILE') && read(name.slice(0, -'_FILE'.length))))).toEqual([]);
  });

  it('checks the gateway and identity settings', () => {
    const problems = problemsOf({ GATEWAY_PORT: '70000', CAMPUS_QR_VALID_SEC: '120', WECOM_CORP_ID: 'ww123', WECHAT_API_BASE: 'ftp://x' });
    for (const name of ['GATEWAY_PORT', 'CAMPUS_QR_VALID_SEC', 'WECOM_CORP_SECRET', 'WECHAT_API_BASE']) {
      expect(problems.some((p) => p.startsWith(name))).toBe(true);
    }
  });

  it('parses operator tokens into names', () => {
    const config = loadConfig({ ...GOOD, OPERATOR_TOKENS: 'alice:alice-token-0123456789,bob:bob-token-0123456789xx' });
    expect([...config.operatorTokens.keys()]).toEqual(['alice', 'bob']);
  });

  it('refuses two operators sharing a token, naming both and never printing the token', () => {
    // Both would authenticate, and every action of either would be recorded as the second one.
    const problems = problemsOf({ OPERATOR_TOKENS: 'alice:shared-token-0123456789,bob:shared-token-0123456789' });
    expect(problems).toEqual(['OPERATOR_TOKENS: operators alice and bob have the same token; give each operator a token of their own']);
  });

  it('refuses an operator named twice, naming them and never printing a token', () => {
    // Only the last token would work: the first would stop working without a word.
    const problems = problemsOf({
      OPERATOR_TOKENS: 'alice:first-token-0123456789,bob:bob-token-0123456789xx,alice:second-token-0123456789',
    });
    expect(problems).toEqual(['OPERATOR_TOKENS: operator alice is named twice; give each operator one entry']);
  });
  it('a bad REDIS_URL, DATABASE_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS or GATEWAY_METRICS_TOKEN is refused without repeating a password or the token', () => {
    const secret = 'Pl4nted-Secr3t';
    const cases: Record<string, string>[] = [
      // A database name where the number goes: the message shows the URL, but not its password.
      { REDIS_URL: `redis://:${secret}@ledger.campus:6379/cardswitch` },
      { REDIS_URL: `rediss://default:${secret}@ledger.campus:6380/x` },
      // A password with an unencoded / or @ (URL accepts both): no piece of it either.
      { REDIS_URL: `redis://:ab/${secret}@ledger.campus:6379/0` },
      { REDIS_URL: `redis://:ab@${secret}@ledger.campus:6379/x` },
      { DATABASE_URL: `jdbc:postgresql://archiver:${secret}@pg.campus/journal` },
      { DATABASE_URL: `pg://archiver:${secret}@pg.campus/journal` },
      // A URL where host:port goes (the password belongs in REDIS_PASSWORD): named, its password not shown.
      { REDIS_CLUSTER_NODES: `redis://:${secret}@10.0.0.1:6379,10.0.0.2:6379` },
      { REDIS_SENTINELS: `10.0.0.1:26379,default:${secret}@10.0.0.2:26379` },
      { GATEWAY_METRICS_TOKEN: `${secret} with spaces` },
      { GATEWAY_METRICS_TOKEN: secret.slice(0, 12) },
    ];
    for (const env of cases) {
      const problems = problemsOf(env);
      const name = Object.keys(env)[0] ?? '';
      expect(problems, JSON.stringify(env)).toHaveLength(1);
      expect(problems[0]?.startsWith(name)).toBe(true);
      expect(problems[0], JSON.stringify(env)).not.toContain(secret.slice(0, 12));
      expect(problems[0], JSON.stringify(env)).not.toContain(secret.slice(-8));
    }
    // Still says where it went wrong: the host and the path stay.
    expect(problemsOf({ REDIS_URL: `redis://:${secret}@ledger.campus:6379/cardswitch` })[0]).toContain('ledger.campus:6379/cardswitch');
  });
  it('a REDIS_URL whose password holds # ? or a bare % is refused at once, saying to percent-encode it, without showing it', () => {
    // Before, these passed the configuration and the switch then failed to start with "Invalid URL" or
    // "URI malformed", naming neither the variable nor the cause.
    for (const url of [
      'redis://:ab#Pl4nted-Secr3t@ledger.campus:6379',
      'redis://:ab?Pl4nted-Secr3t@ledger.campus:6379/0',
      'redis://:100%Pl4nted-Secr3t@ledger.campus:6379',
    ]) {
      const problems = problemsOf({ REDIS_URL: url });
      expect(problems, url).toHaveLength(1);
      expect(problems[0]).toMatch(/^REDIS_URL/);
      expect(problems[0]).toMatch(/percent-encode/);
      expect(problems[0]).not.toContain('Pl4nted');
      expect(problems[0]).not.toContain('Secr3t');
    }
    // Percent-encoded, the same passwords are fine.
    expect(problemsOf({ REDIS_URL: 'redis://:ab%23Pl4nted@ledger.campus:6379' })).toEqual([]);
    expect(problemsOf({ REDIS_URL: 'redis://:100%25Pl4nted@ledger.campus:6379/0' })).toEqual([]);
  });
  it('a password in the query (postgres://host/db?password=..., ?sslpassword=...) is not shown either, in a problem or where the archive and the ledger are named', () => {
    // libpq and node-postgres take ?password= (and ioredis every query option): withoutUrlCredentials masked
    // only user:password@, so the start banner and 'cannot open the journal archive at ...' printed it.
    const secret = 'Pl4nted-Secr3t';
    for (const url of [
      `postgres://archiver@pg.campus/journal?password=${secret}`,
      `postgresql://pg.campus/journal?sslmode=require&sslpassword=${secret}&user=archiver`,
      `postgres://pg.campus/journal?PASSWORD=${secret}#x`,
    ]) {
      const shown = withoutUrlCredentials(url);
      expect(shown, url).not.toContain(secret.slice(0, 6));
      expect(shown, url).toContain('pg.campus/journal?');
    }
    expect(withoutUrlCredentials(`postgresql://pg.campus/journal?sslmode=require&sslpassword=${secret}&user=archiver`)).toBe(
      'postgresql://pg.campus/journal?sslmode=require&sslpassword=***&user=archiver',
    );
    const redis = `redis://ledger.campus:6379/0?password=${secret}`;
    const problems = problemsOf({ REDIS_URL: redis });
    expect(problems).toHaveLength(1);
    expect(problems[0]).not.toContain(secret.slice(0, 6));
    expect(
      describeLedgerRedis({
        redisUrl: `redis://ledger.campus:6379?password=${secret}`,
        redisClusterNodes: [],
        redisSentinels: [],
        redisSentinelMaster: 'm',
      }),
    ).toBe('redis://ledger.campus:6379?password=***');
  });
  it('a REDIS_URL whose port or host is wrong says so, not to percent-encode a password it does not have', () => {
    for (const url of ['redis://:pw@ledger.campus:99999', 'redis://ledger.campus:port', 'redis://:pw@ledger.campus:6379x/0']) {
      const problems = problemsOf({ REDIS_URL: url });
      expect(problems, url).toHaveLength(1);
      expect(problems[0], url).not.toMatch(/percent-encode/);
      expect(problems[0], url).toMatch(/host|port/);
    }
  });
});
