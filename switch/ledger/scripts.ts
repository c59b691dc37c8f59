// Loads the Lua scripts once at start-up (expanding `-- @include name` from lua/includes), and calls
// them by EVALSHA, reloading on NOSCRIPT (after a Redis restart or failover the script cache is empty).
// A script with settings (SCRIPT_SETTINGS: authorize.lua, the payment) is a Redis Function instead: a
// library per set of settings, FUNCTION LOADed, called by FCALL, loaded again when a Redis lacks it.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Redis, Cluster } from 'ioredis';
import type { PipelineClient } from '../redis/pipeline-client.js';
import { isCluster, masterNodes } from '../redis/cluster.js';
import type { ReplicaWait } from '../redis/replica-wait.js';

export type RedisClient = Redis | Cluster;
export type ScriptReply = string | number | null | ScriptReply[];

const LUA_DIR = fileURLToPath(new URL('./lua/', import.meta.url));
const INCLUDE_LINE = /^-- @include ([a-z0-9-]+)\s*$/gm;
const SETTINGS_LINE = /^-- @settings\s*$/gm;
const BODY_LINE = /^-- @body\s*$/gm;
/** Every library this switch loads is named `campus_<script>_<hash>` (see withSettings). */
const LIBRARY_PREFIX = 'campus_';
const MAX_INCLUDE_DEPTH = 4;

/**
 * Every script in lua/, by name: the one list the switch loads and the only names `run` and `shaOf`
 * take, so a misspelt name fails `tsc`. test/ledger-scripts.test.ts checks it equals the *.lua files.
 */
export const SCRIPT_NAMES = [
  'adjust',
  'authorize',
  'channel-binding',
  'channel-paid',
  'channel-pay',
  'channel-refund',
  'claim-id',
  'ecard-binding',
  'ecard-watch',
  'fee-complete',
  'fee-debit',
  'fee-giveback',
  'fee-requery',
  'fold-limits',
  'follow-up-lease',
  'inquire',
  'open-account',
  'password',
  'recharge',
  'recharge-order',
  'refund',
  'replace-card',
  'reverse',
  'serial-claim',
  'serial-fence',
  'set-limits',
  'set-status',
  'settle',
  'terminal-create',
  'terminal-password',
  'water-debit',
] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

/** What one ARGV must be. The script checks the same (lua/includes/argv.lua), in the same words. */
export type ArgvRule =
  | { readonly name: string; readonly kind: 'id' | 'text' | 'flag' | 'nonZeroInteger' }
  | { readonly name: string; readonly kind: 'integer'; readonly min: number }
  | { readonly name: string; readonly kind: 'oneOf'; readonly values: readonly string[] };

/** A script's ARGV: fixed arguments, then (optionally) a tail sent whole or not at all, or field, value pairs. */
interface FixedArgv {
  readonly args: readonly ArgvRule[];
  readonly tail?: readonly ArgvRule[];
  readonly pairs?: true;
}
/** A script whose ARGV[1] is an op: `common` first (the op among them), then the op's own arguments. */
interface ArgvByOp {
  readonly common: readonly ArgvRule[];
  /** What the count check says when not even `common` is there. */
  readonly expected: string;
  readonly byOp: Readonly<Record<string, readonly ArgvRule[]>>;
}

const id = (name: string): ArgvRule => ({ name, kind: 'id' });
const text = (name: string): ArgvRule => ({ name, kind: 'text' });
const flag = (name: string): ArgvRule => ({ name, kind: 'flag' });
const integer = (name: string, min: number): ArgvRule => ({ name, kind: 'integer', min });
const oneOf = (name: string, ...values: string[]): ArgvRule => ({ name, kind: 'oneOf', values });
const EVENT_ARGS = [id('eventsChannel'), integer('eventTtlSec', 1)];
const LIMIT_ARGS = (holder: string) => [
  integer(`${holder}NoPinPerPaymentFen`, 0),
  integer(`${holder}NoPinPerDayFen`, 0),
  integer(`${holder}DailySpendLimitFen`, 0),
];

/** Every script's ARGV, as its header documents it (exhaustive: a new script needs its rules here). */
export const ARGV_RULES = {
  adjust: {
    args: [
      id('cardNo'),
      { name: 'signedAmountFen', kind: 'nonZeroInteger' },
      id('fingerprint'),
      id('adjustmentId'),
      id('operator'),
      id('reason'),
      integer('nowMs', 0),
      integer('recordTtlSec', 1),
    ],
  },
  authorize: {
    args: [
      id('cardNo'),
      text('presentedSerial'),
      integer('amountFen', 1),
      id('fingerprint'),
      id('terminalId'),
      integer('sequence', 1),
      id('merchantParty'),
      integer('nowMs', 0),
      id('dayKey'),
      flag('pinVerified'),
      id('credentialKind'),
    ],
    tail: [integer('qrEpoch', 0), flag('qrExpired'), integer('qrUsedTtlSec', 1), id('qrCodeId')],
  },
  'channel-binding': {
    common: [oneOf('op', 'claim', 'release', 'bind', 'unbind')],
    expected: '2 to 4 (by op)',
    byOp: {
      claim: [id('cardNo'), text('staleCardNo')],
      release: [id('cardNo')],
      bind: [oneOf('field', 'cpalipay', 'cpwechat'), id('payerId'), text('ecardUserId')],
      unbind: [oneOf('field', 'cpalipay', 'cpwechat'), id('payerId')],
    },
  },
  'channel-paid': {
    args: [
      oneOf('op', 'pay', 'unpay', 'decline'),
      id('cardNo'),
      oneOf('channel', 'alipay', 'wechat'),
      id('outTradeNo'),
      id('channelTxnId'),
      integer('amountFen', 1),
      id('merchantParty'),
      id('terminalId'),
      integer('sequence', 1),
      integer('nowMs', 0),
      integer('ttlSec', 1),
      text('why'),
      text('payerId'),
      ...EVENT_ARGS,
    ],
  },
  'channel-pay': {
    common: [oneOf('op', 'begin', 'finish', 'tombstone', 'undone', 'rearm', 'card')],
    expected: '1 to 9 (by op)',
    byOp: {
      begin: [
        id('fingerprint'),
        oneOf('channel', 'alipay', 'wechat'),
        id('outTradeNo'),
        integer('amountFen', 1),
        id('merchantParty'),
        integer('nowMs', 0),
        integer('deadlineMs', 0),
        integer('ttlSec', 1),
      ],
      finish: [
        oneOf('state', 'S', 'D', 'R'),
        integer('nowMs', 0),
        flag('undo'),
        text('cardNo'),
        text('channelTxnId'),
        text('payerId'),
        text('why'),
        text('journalId'),
      ],
      tombstone: [id('outTradeNo'), integer('amountFen', 1), integer('nowMs', 0), integer('ttlSec', 1)],
      undone: [],
      rearm: [],
      card: [id('cardNo')],
    },
  },
  'channel-refund': {
    args: [
      oneOf('op', 'begin', 'done', 'failed'),
      id('cardNo'),
      integer('amountFen', 1),
      id('fingerprint'),
      id('terminalId'),
      integer('sequence', 1),
      id('merchantParty'),
      id('outTradeNo'),
      id('outRefundNo'),
      oneOf('channel', 'alipay', 'wechat'),
      text('channelRefundId'),
      integer('nowMs', 0),
      integer('requestTtlSec', 1),
      id('originalRef'),
      ...EVENT_ARGS,
    ],
  },
  'claim-id': {
    common: [oneOf('op', 'claim', 'release')],
    expected: '3 for claim, 2 for release',
    byOp: { claim: [id('cardNo'), integer('ttlSec', 1)], release: [id('cardNo')] },
  },
  'ecard-binding': { args: [oneOf('op', 'bind', 'unbind'), id('userId'), integer('nowMs', 0), id('eventsChannel'), id('cardNo')] },
  'ecard-watch': { args: [integer('untilMs', 0)] },
  'fold-limits': { args: [] },
  'fee-complete': { args: [id('fingerprint'), id('receipt'), id('pendingMember'), id('cardNo'), ...EVENT_ARGS] },
  'fee-debit': {
    args: [
      id('cardNo'),
      integer('amountFen', 1),
      id('fingerprint'),
      id('terminalId'),
      integer('sequence', 1),
      oneOf('utilityParty', 'u:network', 'u:electricity'),
      id('targetJson'),
      integer('nowMs', 0),
      integer('requestTtlSec', 1),
    ],
  },
  'fee-giveback': {
    args: [id('cardNo'), id('fingerprint'), id('terminalId'), integer('sequence', 1), text('reason'), integer('nowMs', 0), ...EVENT_ARGS],
  },
  'fee-requery': {
    args: [id('fingerprint'), id('pendingMember'), integer('nowMs', 0), integer('nextScoreMs', 0), integer('maxUnknown', 1)],
  },
  'follow-up-lease': { args: [oneOf('op', 'take', 'release'), id('holder'), integer('leaseMs', 1)] },
  inquire: { args: [text('presentedSerial')] },
  'open-account': { args: [id('cardNo'), integer('openingFen', 0), integer('nowMs', 0)], pairs: true },
  password: {
    common: [oneOf('op', 'state', 'take', 'fail', 'release', 'ok', 'set'), id('dayKey'), integer('maxAttempts', 1)],
    expected: '3 to 6 (by op)',
    byOp: {
      state: [],
      fail: [integer('nowMs', 0)],
      release: [],
      take: [integer('nowMs', 0)],
      ok: [text('expectedHash'), text('newHash')],
      set: [text('expectedHash'), id('newHash'), flag('clearInitial')],
    },
  },
  recharge: {
    args: [
      id('cardNo'),
      oneOf('channel', 'WECHAT', 'ALIPAY', 'COUNTER'),
      id('orderId'),
      integer('amountFen', 1),
      id('fingerprint'),
      id('source'),
      integer('nowMs', 0),
      id('dayKey'),
      integer('dailyLimitFen', 0),
      integer('recordTtlSec', 1),
      text('reason'),
      flag('keepRefusal'),
      ...EVENT_ARGS,
    ],
  },
  'recharge-order': {
    common: [oneOf('op', 'create', 'finish', 'requery')],
    expected: '13 for create, 5 for finish, 6 for requery',
    byOp: {
      create: [
        id('cardNo'),
        oneOf('channel', 'WECHAT', 'ALIPAY'),
        id('orderId'),
        integer('amountFen', 1),
        id('fingerprint'),
        integer('nowMs', 0),
        integer('expiresAtMs', 0),
        id('dayKey'),
        integer('dailyLimitFen', 0),
        integer('recordTtlSec', 1),
        integer('maxOpen', 1),
        id('source'),
      ],
      finish: [oneOf('channel', 'WECHAT', 'ALIPAY'), id('orderId'), oneOf('state', 'S', 'X', 'C'), integer('nowMs', 0)],
      requery: [
        oneOf('channel', 'WECHAT', 'ALIPAY'),
        id('orderId'),
        integer('nowMs', 0),
        integer('nextScoreMs', 0),
        integer('maxUnknown', 1),
      ],
    },
  },
  refund: {
    args: [
      id('cardNo'),
      integer('amountFen', 1),
      id('fingerprint'),
      id('terminalId'),
      integer('sequence', 1),
      id('merchantParty'),
      integer('nowMs', 0),
      integer('requestTtlSec', 1),
      id('originalRef'),
      ...EVENT_ARGS,
    ],
  },
  'replace-card': { args: [id('requestId'), id('newSerial')] },
  'serial-claim': {
    common: [oneOf('op', 'claim', 'settle', 'release', 'takeover')],
    expected: '3 to 6 (by op)',
    byOp: {
      claim: [id('cardNo'), id('token'), integer('nowMs', 0), integer('staleMs', 1)],
      settle: [id('cardNo'), id('token')],
      release: [id('cardNo'), id('token'), flag('cardHasSerial')],
      takeover: [id('cardNo'), id('token'), integer('nowMs', 0), integer('staleMs', 1), id('staleCardNo')],
    },
  },
  'serial-fence': { args: [oneOf('op', 'fence', 'unfence'), id('serial'), id('token')] },
  reverse: {
    args: [
      id('cardNo'),
      integer('amountFen', 1),
      id('fingerprint'),
      id('terminalId'),
      integer('sequence', 1),
      integer('nowMs', 0),
      integer('requestTtlSec', 1),
      id('dayKey'),
      integer('dayStartMs', 0),
      ...EVENT_ARGS,
    ],
  },
  'set-limits': { args: [integer('noPinPerPaymentFen', -1), integer('noPinPerDayFen', -1), integer('dailySpendLimitFen', -1)] },
  'set-status': { args: [oneOf('status', 'A', 'L', 'F', 'C'), text('allowedFrom'), id('cardNo'), integer('nowMs', 0), ...EVENT_ARGS] },
  settle: {
    args: [
      id('cardNo'),
      id('presentedSerial'),
      id('fingerprint'),
      id('terminalId'),
      integer('sequence', 1),
      integer('nowMs', 0),
      integer('requestTtlSec', 1),
      integer('walletCapFen', 1),
    ],
  },
  'terminal-create': { args: [id('kind'), id('merchantId'), id('location'), id('secretHash')] },
  'terminal-password': {
    args: [
      oneOf('op', 'take', 'fail', 'release'),
      integer('nowMs', 0),
      integer('hourKey', 0),
      integer('maxFailures', 1),
      integer('ttlMs', 1),
    ],
  },
  'water-debit': {
    args: [
      id('cardNo'),
      text('presentedSerial'),
      integer('amountFen', 1),
      id('fingerprint'),
      id('terminalId'),
      integer('sequence', 1),
      id('merchantParty'),
      integer('nowMs', 0),
      integer('requestTtlSec', 1),
      integer('walletCapFen', 1),
    ],
  },
} as const satisfies Record<ScriptName, FixedArgv | ArgvByOp>;

/**
 * Scripts whose text carries settings of the deployment, written where their `-- @settings` line stands
 * (Scripts.withSettings): values the same for every call, which as ARGV would cost Redis about 1k
 * instructions each to receive and the script more to check, on every payment (issue 15). An integer
 * setting becomes two Lua locals, `<name>` (a number) and `<name>Text` (its digits); any other, one
 * string local. Checked by the same rules as ARGV when the script is made.
 *
 * Each is run as a Redis Function (FUNCTION LOAD, FCALL): the text above its `-- @body` line (the
 * constants, the settings, the included helpers) is the library's top level, run once when Redis loads
 * it; the text below is the function, run per call with KEYS and ARGV as its parameters. An EVALSHA
 * would make the helpers' closures and the settings' locals again on every payment: as a function
 * authorize.lua costs Redis about 6 % fewer instructions per payment (loadtest/RESULTS.md, fourteenth
 * session). Redis keeps a library (in its AOF and its replicas), unlike the script cache.
 */
export const SCRIPT_SETTINGS = {
  authorize: [integer('requestTtlSec', 1), ...LIMIT_ARGS('student'), ...LIMIT_ARGS('staff'), ...EVENT_ARGS],
} as const satisfies Partial<Record<ScriptName, readonly ArgvRule[]>>;
export type SettingsScriptName = keyof typeof SCRIPT_SETTINGS;
/** Scripts loaded as they are (no settings): the names run() and shaOf() take. */
export type PlainScriptName = Exclude<ScriptName, SettingsScriptName>;
export type ScriptSettings = Readonly<Record<string, string | number>>;

/** A script was called with an argument it refuses (a bug of the caller: its input should have been checked). */
export class ScriptArgumentError extends RangeError {
  override readonly name = 'ScriptArgumentError';
}

const INTEGER_TEXT = /^-?\d+$/;

/** Integers the wrappers pass as numbers are checked without a string round trip (this runs per payment). */
function integerOk(value: string | number, min: number): boolean {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= min;
  const n = Number(value);
  return INTEGER_TEXT.test(value) && n >= min && n <= Number.MAX_SAFE_INTEGER;
}

function ruleProblem(rule: ArgvRule, raw: string | number): string | undefined {
  if (rule.kind === 'integer') {
    if (integerOk(raw, rule.min)) return undefined;
    return rule.min === 1 ? 'must be a positive integer' : `must be an integer >= ${rule.min}`;
  }
  const value = String(raw);
  switch (rule.kind) {
    case 'text':
      return undefined;
    case 'id':
      return value !== '' ? undefined : 'must not be empty';
    case 'flag':
      return value === '0' || value === '1' ? undefined : "must be '0' or '1'";
    case 'oneOf':
      return rule.values.includes(value) ? undefined : `must be one of ${rule.values.join(', ')}`;
    case 'nonZeroInteger': {
      const n = Number(value);
      return INTEGER_TEXT.test(value) && n !== 0 && Math.abs(n) <= Number.MAX_SAFE_INTEGER ? undefined : 'must be a non-zero integer';
    }
  }
}

function checkRules(name: ScriptName, rules: readonly ArgvRule[], args: readonly (string | number)[], from: number): void {
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i] as ArgvRule;
    const raw = args[from + i] as string | number;
    const problem = ruleProblem(rule, raw);
    if (problem !== undefined) {
      throw new ScriptArgumentError(`${name}: ARGV[${from + i + 1}] ${rule.name} ${problem}, got "${String(raw).slice(0, 40)}"`);
    }
  }
}

function countError(name: ScriptName, count: number, expected: string): ScriptArgumentError {
  return new ScriptArgumentError(`${name}: ARGV has ${count} arguments, expected ${expected}`);
}

/** Throws ScriptArgumentError, with the words the script itself would answer, when `args` break its ARGV rules. */
export function checkArgv(name: ScriptName, args: readonly (string | number)[]): void {
  const spec: FixedArgv | ArgvByOp = ARGV_RULES[name];
  if ('byOp' in spec) {
    if (args.length < spec.common.length) throw countError(name, args.length, spec.expected);
    checkRules(name, spec.common, args, 0);
    const op = String(args[0]);
    const own = spec.byOp[op] ?? [];
    const count = spec.common.length + own.length;
    if (args.length !== count) throw countError(name, args.length, `${count} for ${op}`);
    checkRules(name, own, args, spec.common.length);
    return;
  }
  const fixed = spec.args.length;
  const tail = spec.tail ?? [];
  if (spec.pairs === true) {
    if (args.length < fixed || (args.length - fixed) % 2 !== 0) throw countError(name, args.length, `${fixed} then field, value pairs`);
  } else if (args.length !== fixed && (tail.length === 0 || args.length !== fixed + tail.length)) {
    throw countError(name, args.length, tail.length === 0 ? `${fixed}` : `${fixed} or ${fixed + tail.length}`);
  }
  checkRules(name, spec.args, args, 0);
  if (args.length > fixed && spec.pairs !== true) checkRules(name, tail, args, fixed);
}

function expandIncludes(source: string, fileName: string, depth: number): string {
  if (depth > MAX_INCLUDE_DEPTH) throw new Error(`${fileName}: includes nested deeper than ${MAX_INCLUDE_DEPTH}`);
  return source.replace(INCLUDE_LINE, (_line, name: string) => {
    const includePath = join(LUA_DIR, 'includes', `${name}.lua`);
    let included: string;
    try {
      included = readFileSync(includePath, 'utf8');
    } catch {
      throw new Error(`${fileName}: include "${name}" not found at ${includePath}`);
    }
    return expandIncludes(included, `${name}.lua`, depth + 1);
  });
}

export function readScript(name: ScriptName): string {
  const fileName = `${name}.lua`;
  return expandIncludes(readFileSync(join(LUA_DIR, fileName), 'utf8'), fileName, 0);
}

/** A text as a Lua string literal: anything but plain characters as a three-digit decimal byte escape. */
function luaString(value: string): string {
  let out = "'";
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9 :._@{}/-]/.test(c) ? c : `\\${String(byte).padStart(3, '0')}`;
  }
  return `${out}'`;
}

/** The Lua locals that stand for a script's `-- @settings` line; throws ScriptArgumentError for a bad or missing one. */
export function settingsBlock(name: SettingsScriptName, settings: ScriptSettings): string {
  const rules: readonly ArgvRule[] = SCRIPT_SETTINGS[name];
  const known = new Set(rules.map((rule) => rule.name));
  for (const key of Object.keys(settings)) {
    if (!known.has(key)) throw new ScriptArgumentError(`${name}: there is no setting ${key}`);
  }
  const lines = [`-- settings (ledger/scripts.ts SCRIPT_SETTINGS)`];
  for (const rule of rules) {
    const value = settings[rule.name];
    if (value === undefined) throw new ScriptArgumentError(`${name}: setting ${rule.name} is missing`);
    const problem = ruleProblem(rule, value);
    if (problem !== undefined)
      throw new ScriptArgumentError(`${name}: setting ${rule.name} ${problem}, got "${String(value).slice(0, 40)}"`);
    if (rule.kind === 'integer' || rule.kind === 'nonZeroInteger') {
      const digits = String(Number(value));
      lines.push(`local ${rule.name} = ${digits}`, `local ${rule.name}Text = '${digits}'`);
    } else {
      lines.push(`local ${rule.name} = ${luaString(String(value))}`);
    }
  }
  return lines.join('\n');
}

/** Scripts that write nothing: the durable mode does not wait for a replica after them. */
const READ_ONLY_SCRIPTS: ReadonlySet<ScriptName> = new Set<ScriptName>(['inquire']);
/** Plain commands (Scripts.command) that write nothing. */
const READ_COMMANDS: ReadonlySet<string> = new Set([
  'GET',
  'HGET',
  'HGETALL',
  'HMGET',
  'EXISTS',
  'TTL',
  'PTTL',
  'MGET',
  'ZRANGE',
  'ZSCORE',
  'SMEMBERS',
]);

interface LoadedScript {
  readonly source: string;
  readonly sha: string;
}

/** A script made with its settings (Scripts.withSettings): a Redis Function, run with Scripts.runPrepared. */
export interface PreparedScript {
  readonly name: SettingsScriptName;
  /** What FUNCTION LOAD is given: `#!lua name=<library>`, the top level, then the function's registration. */
  readonly source: string;
  /** `campus_<script>_<hash>`: the hash is of the text, so a library of this name always holds this text. */
  readonly library: string;
  /** What FCALL names (one namespace for all the libraries of a Redis): `<script>_<the same hash>`. */
  readonly functionName: string;
}

/** The command that runs a prepared script (for callers outside Scripts: the bench's redis-benchmark run). */
export function preparedCommand(script: PreparedScript, keys: readonly string[], args: readonly (string | number)[]): (string | number)[] {
  return ['FCALL', script.functionName, keys.length, ...keys, ...args];
}

/** How many times a payment is sent again after "Function not found" (each time loading its library first). */
const FUNCTION_RELOADS = 3;

/** How many differently-set scripts Scripts keeps made (a deployment uses one; tests a few). */
const MAX_PREPARED = 32;

export class Scripts {
  private readonly scripts = new Map<ScriptName, LoadedScript>();
  /** The expanded text of each settings script, cut at its `-- @body` line, its `-- @settings` line still in it. */
  private readonly templates = new Map<SettingsScriptName, { readonly top: string; readonly body: string }>();
  private readonly prepared = new Map<string, PreparedScript>();
  /** The FUNCTION LOADs under way, by library: concurrent calls that found it missing wait for one load. */
  private readonly loading = new Map<string, Promise<void>>();

  private constructor(
    private readonly redis: RedisClient,
    /** The lean hot-path connection, when the ledger is a plain redis:// endpoint (see redis/pipeline-client.ts). */
    private readonly fast: PipelineClient | undefined,
    /** The durable mode (LEDGER_DURABILITY=replica): each write is answered only once a replica has it. */
    private readonly durable: ReplicaWait | undefined,
  ) {}

  /** The connection the scripts run on (for the few plain reads next to them). */
  get client(): RedisClient {
    return this.redis;
  }

  /**
   * One Redis (plain, or a Sentinel-watched master), not a Cluster: a script may then touch keys of
   * different hash slots, so a payment's sequence claim can ride in its script (authorize.lua).
   */
  get singleNode(): boolean {
    return !isCluster(this.redis);
  }

  /** The SHA1 a script is loaded under (for EVALSHA from outside the switch: the bench's redis-benchmark run). */
  shaOf(name: PlainScriptName): string {
    return this.loaded(name).sha;
  }

  private loaded(name: PlainScriptName): LoadedScript {
    const script = this.scripts.get(name);
    if (script !== undefined) return script;
    if (name in SCRIPT_SETTINGS)
      throw new Error(`Lua script ${name}.lua carries settings: make it with withSettings and run it with runPrepared`);
    throw new Error(`Lua script ${name}.lua was not loaded (is it in ${LUA_DIR}?)`);
  }

  /**
   * The script `name` with its settings written in (SCRIPT_SETTINGS), as a Redis Function library; the
   * same settings give the same object back. Loaded into Redis by loadPrepared, or by the first run's
   * fallback when a Redis answers that it has no such function.
   */
  withSettings(name: SettingsScriptName, settings: ScriptSettings): PreparedScript {
    const block = settingsBlock(name, settings);
    const memo = `${name}\n${block}`;
    const made = this.prepared.get(memo);
    if (made !== undefined) return made;
    const template = this.templates.get(name);
    if (template === undefined) throw new Error(`Lua script ${name}.lua was not loaded (is it in ${LUA_DIR}?)`);
    const top = template.top.replace(SETTINGS_LINE, () => block);
    const hash = createHash('sha1').update(top).update('\0').update(template.body).digest('hex').slice(0, 16);
    const functionName = `${name.replaceAll('-', '_')}_${hash}`;
    const library = `${LIBRARY_PREFIX}${functionName}`;
    // The body keeps its line numbers' order; Lua's errors name the library's lines (`user_function:N`).
    const source =
      `#!lua name=${library}\n${top}\n` + `redis.register_function('${functionName}', function(KEYS, ARGV)\n${template.body}\nend)\n`;
    const script: PreparedScript = { name, source, library, functionName };
    if (this.prepared.size >= MAX_PREPARED) this.prepared.delete(this.prepared.keys().next().value as string);
    this.prepared.set(memo, script);
    return script;
  }

  /** FUNCTION LOADs a prepared script into every master, so a broken one fails here and FCALL finds it. */
  async loadPrepared(script: PreparedScript): Promise<void> {
    for (const node of masterNodes(this.redis)) await this.loadLibrary(node, script);
  }

  /**
   * Deletes, from every master, the libraries of `script`'s name made with other settings (the switch's
   * earlier configurations: Redis keeps a library until it is deleted). A switch still running with
   * other settings loads its own again when it next finds it missing. Returns the libraries deleted.
   */
  async pruneLibraries(script: PreparedScript): Promise<string[]> {
    const own = `${LIBRARY_PREFIX}${script.name.replaceAll('-', '_')}_`;
    const deleted: string[] = [];
    for (const node of masterNodes(this.redis)) {
      const listed = (await node.call('FUNCTION', 'LIST', 'LIBRARYNAME', `${own}*`)) as unknown[];
      for (const entry of listed) {
        const fields = entry as unknown[];
        const at = fields.indexOf('library_name');
        const library = at >= 0 ? String(fields[at + 1]) : '';
        if (!library.startsWith(own) || library === script.library) continue;
        try {
          await node.call('FUNCTION', 'DELETE', library);
          deleted.push(library);
        } catch (err) {
          // Another switch deleted it first.
          if (!(err instanceof Error) || !/library not found/i.test(err.message)) throw err;
        }
      }
    }
    return deleted;
  }

  /** Reads, expands and SCRIPT LOADs every script; a missing or broken script fails here, not at the first swipe. */
  static async load(redis: RedisClient, fast?: PipelineClient, durable?: ReplicaWait): Promise<Scripts> {
    const onDisk = new Set(readdirSync(LUA_DIR));
    for (const name of SCRIPT_NAMES) {
      if (!onDisk.has(`${name}.lua`)) throw new Error(`Lua script ${name}.lua is missing from ${LUA_DIR}`);
    }
    const scripts = new Scripts(redis, fast, durable);
    // Every master of a cluster (a Cluster's SCRIPT LOAD reaches one node); a master added or promoted
    // later gets a script by the NOSCRIPT fallback in run().
    const nodes = masterNodes(redis);
    for (const name of SCRIPT_NAMES) {
      const source = readScript(name);
      if (name in SCRIPT_SETTINGS) {
        const lines = source.match(SETTINGS_LINE)?.length ?? 0;
        if (lines !== 1) throw new Error(`Lua script ${name}.lua must hold one "-- @settings" line, has ${lines}`);
        const bodyLines = source.match(BODY_LINE)?.length ?? 0;
        const [top, body] = source.split(BODY_LINE);
        if (bodyLines !== 1 || top === undefined || body === undefined)
          throw new Error(`Lua script ${name}.lua must hold one "-- @body" line (the function's first), has ${bodyLines}`);
        // (search, not test: these patterns are global, and test() would start where the last match ended.)
        if (top.search(SETTINGS_LINE) < 0) throw new Error(`Lua script ${name}.lua: its "-- @settings" line must stand above "-- @body"`);
        scripts.templates.set(name as SettingsScriptName, { top, body });
        continue;
      }
      const sha = createHash('sha1').update(source).digest('hex');
      scripts.scripts.set(name, { source, sha });
      for (const node of nodes) await scripts.loadInto(node, name, source, sha);
    }
    return scripts;
  }

  /** FUNCTION LOAD into one node; a library of that name there already holds this text (named by its hash). */
  private async loadLibrary(node: RedisClient, script: PreparedScript): Promise<void> {
    try {
      await (node as Redis).call('FUNCTION', 'LOAD', script.source);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (/already exists/i.test(message)) return;
      if (/unknown command/i.test(message))
        throw new Error(`Lua script ${script.name}.lua runs as a Redis Function: the ledger's Redis must be 7.0 or later (${message})`);
      throw new Error(`Lua script ${script.name}.lua does not load as a Redis Function: ${message}`);
    }
  }

  /** Loads a library into every master, once for all the calls that found it missing at the same time. */
  private reload(script: PreparedScript): Promise<void> {
    let pending = this.loading.get(script.library);
    if (pending === undefined) {
      pending = this.loadPrepared(script).finally(() => this.loading.delete(script.library));
      this.loading.set(script.library, pending);
    }
    return pending;
  }

  private async loadInto(redis: RedisClient, name: ScriptName, source: string, sha: string): Promise<void> {
    let loadedSha: unknown;
    try {
      loadedSha = await (redis as Redis).script('LOAD', source);
    } catch (err) {
      throw new Error(`Lua script ${name}.lua does not compile: ${(err as Error).message}`);
    }
    if (loadedSha !== sha) throw new Error(`Redis returned sha ${String(loadedSha)} for ${name}.lua, expected ${sha}`);
  }

  /** A plain command on the same channel as the scripts (the hot-path sequence claim). */
  async command(args: readonly (string | number)[]): Promise<ScriptReply> {
    const [name, ...rest] = args;
    const reply =
      this.fast !== undefined ? await this.fast.command(args) : ((await (this.redis as Redis).call(String(name), ...rest)) as ScriptReply);
    // The sequence claim (SET NX) is part of what a payment's answer rests on: durable like the payment.
    if (this.durable !== undefined && !READ_COMMANDS.has(String(name).toUpperCase())) await this.durable.afterWrite(String(rest[0]));
    return reply;
  }

  /** Runs a script; its ARGV is checked first (checkArgv), so a bad argument never reaches Redis. */
  async run(name: PlainScriptName, keys: readonly string[], args: readonly (string | number)[]): Promise<ScriptReply> {
    const script = this.loaded(name);
    checkArgv(name, args);
    const reply = await this.evalsha(script, keys, args);
    if (this.durable !== undefined && !READ_ONLY_SCRIPTS.has(name) && keys.length > 0) await this.durable.afterWrite(keys[0] as string);
    return reply;
  }

  /**
   * Runs a script made with its settings (withSettings) by FCALL; its ARGV is checked first, as run()
   * does. A Redis without its library (restarted without persistence, a new master, a library deleted by
   * pruneLibraries) answers "Function not found" having run nothing: the library is loaded and the call
   * sent again.
   */
  async runPrepared(script: PreparedScript, keys: readonly string[], args: readonly (string | number)[]): Promise<ScriptReply> {
    checkArgv(script.name, args);
    const reply = await this.fcall(script, preparedCommand(script, keys, args));
    if (this.durable !== undefined && keys.length > 0) await this.durable.afterWrite(keys[0] as string);
    return reply;
  }

  private async fcall(script: PreparedScript, command: readonly (string | number)[]): Promise<ScriptReply> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (this.fast !== undefined) return await this.fast.command(command);
        return (await (this.redis as Redis).call('FCALL', ...command.slice(1))) as ScriptReply;
      } catch (err) {
        if (!(err instanceof Error) || !err.message.includes('Function not found') || attempt >= FUNCTION_RELOADS) throw err;
        await this.reload(script);
      }
    }
  }

  private async evalsha(script: LoadedScript, keys: readonly string[], args: readonly (string | number)[]): Promise<ScriptReply> {
    try {
      if (this.fast !== undefined) return await this.fast.command(['EVALSHA', script.sha, keys.length, ...keys, ...args]);
      return (await this.redis.evalsha(script.sha, keys.length, ...keys, ...args)) as ScriptReply;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      // EVAL both runs and caches the script, so the next EVALSHA finds it again.
      return (await this.redis.eval(script.source, keys.length, ...keys, ...args)) as ScriptReply;
    }
  }
}
