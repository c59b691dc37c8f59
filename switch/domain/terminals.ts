// Terminals (POS, settlement POS, water controllers, kiosks): registration, secret check, and an
// in-memory cache so that authenticating a call costs no Redis round trip on the hot path.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { StoredTerminal, TerminalRecords } from '../ledger/terminals.js';

export const TERMINAL_KINDS = ['canteen', 'shop', 'settlement', 'water', 'kiosk'] as const;
export type TerminalKind = (typeof TERMINAL_KINDS)[number];

export const TERMINAL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
export const MERCHANT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
export const MIN_SECRET_LENGTH = 16;
export const MAX_SECRET_LENGTH = 128;
export const MAX_LOCATION_LENGTH = 64;
/** The most terminal ids the cache holds; a campus has a few thousand terminals. */
export const MAX_CACHED_TERMINALS = 10_000;

export interface Terminal {
  readonly id: string;
  readonly kind: TerminalKind;
  readonly merchantId: string;
  readonly location: string;
  readonly enabled: boolean;
  /** HMAC-SHA256(pepper, secret), hex. The secret itself is never stored. */
  readonly secretHash: string;
}

export interface NewTerminal {
  readonly id: string;
  readonly kind: TerminalKind;
  readonly merchantId: string;
  readonly location: string;
  readonly secret: string;
}

/** Secrets are random and long, so a keyed fast hash is enough (unlike 6-digit card passwords). */
export function hashTerminalSecret(secret: string, pepper: string): string {
  return createHmac('sha256', pepper).update(secret).digest('hex');
}

/** Returns a message per problem; empty when the terminal is valid. */
/** One problem with a terminal's field: the field, English and zh-CN (an operator's import names all three). */
export interface TerminalProblem {
  readonly field: 'terminal_id' | 'kind' | 'merchant_id' | 'location' | 'secret';
  readonly message: string;
  readonly zh: string;
}

/**
 * Text shown to people (the location on statements, reports and terminal lists) takes no control
 * characters (a NUL, a tab, a line break: a spreadsheet or a log line would break on them), no invisible
 * format characters (a right-to-left override turns what a screen shows around, a zero-width space makes
 * two equal-looking texts differ) and no U+FFFD,
 * which only a file decoded with the wrong encoding (a GBK file read as UTF-8) produces.
 */
export function displayTextProblem(text: string): 'control' | 'undecodable' | undefined {
  if (/[\p{Cc}\p{Cf}]/u.test(text)) return 'control';
  return text.includes('\uFFFD') ? 'undecodable' : undefined;
}

/**
 * A value from an operator's file as a refusal quotes it: control and format characters written as
 * \uXXXX (an escape sequence in a cell would otherwise act on the terminal or page that shows the
 * refusal), and at most 40 characters.
 */
export function shown(value: string): string {
  const chars = [...value];
  const cut = chars.length > 40 ? `${chars.slice(0, 40).join('')}…` : value;
  return cut.replace(/[\p{Cc}\p{Cf}]/gu, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

export function terminalProblems(t: NewTerminal): TerminalProblem[] {
  const problems: TerminalProblem[] = [];
  if (!TERMINAL_ID_PATTERN.test(t.id))
    problems.push({
      field: 'terminal_id',
      message: `terminal id "${shown(t.id)}" must be 1-32 of A-Z a-z 0-9 _ - (starting with a letter or digit)`,
      zh: `终端编号"${shown(t.id)}"须为1-32位字母、数字、_或-（以字母或数字开头）`,
    });
  if (!(TERMINAL_KINDS as readonly string[]).includes(t.kind))
    problems.push({
      field: 'kind',
      message: `terminal kind "${shown(t.kind)}" must be one of ${TERMINAL_KINDS.join(', ')}`,
      zh: `终端类型"${shown(t.kind)}"须为以下之一：${TERMINAL_KINDS.join('、')}`,
    });
  if (!MERCHANT_ID_PATTERN.test(t.merchantId))
    problems.push({
      field: 'merchant_id',
      message: `merchant id "${shown(t.merchantId)}" must be 1-32 of A-Z a-z 0-9 _ -`,
      zh: `商户号"${shown(t.merchantId)}"须为1-32位字母、数字、_或-`,
    });
  const locationText = displayTextProblem(t.location);
  if (t.location.trim() === '' || [...t.location].length > MAX_LOCATION_LENGTH)
    problems.push({
      field: 'location',
      message: `location must be 1-${MAX_LOCATION_LENGTH} characters`,
      zh: `安装位置须为1-${MAX_LOCATION_LENGTH}个字符`,
    });
  else if (locationText === 'control')
    problems.push({
      field: 'location',
      message: 'location must not contain control or invisible format characters (a tab, a line break, a NUL, a direction mark)',
      zh: '安装位置不能含控制字符或不可见的格式字符（制表符、换行、NUL、方向标记）',
    });
  else if (locationText === 'undecodable')
    problems.push({
      field: 'location',
      message: 'location holds characters that could not be decoded (U+FFFD): save the file as UTF-8 ("CSV UTF-8") and import it again',
      zh: '安装位置含无法识别的字符（U+FFFD）：请将文件另存为 UTF-8 编码（"CSV UTF-8"）后重新导入',
    });
  if (t.secret.length < MIN_SECRET_LENGTH || t.secret.length > MAX_SECRET_LENGTH) {
    problems.push({
      field: 'secret',
      message: `secret must be ${MIN_SECRET_LENGTH}-${MAX_SECRET_LENGTH} characters`,
      zh: `终端密钥须为${MIN_SECRET_LENGTH}-${MAX_SECRET_LENGTH}个字符`,
    });
  } else if (displayTextProblem(t.secret) !== undefined) {
    // Stored as written (only its hash is kept), so a tab pasted in or the U+FFFD of a wrongly decoded
    // file would become a secret the POS, configured with the real one, never matches.
    problems.push({
      field: 'secret',
      message: 'secret must not contain control or invisible format characters, or U+FFFD (a character the file could not decode)',
      zh: '终端密钥不能含控制字符、不可见的格式字符或 U+FFFD（文件中无法识别的字符）',
    });
  }
  return problems;
}

export function validateNewTerminal(t: NewTerminal): string[] {
  return terminalProblems(t).map((p) => p.message);
}

const MAX_REMEMBERED_SECRETS = 10_000;

export class TerminalRegistry {
  private readonly cache = new Map<string, { terminal: Terminal | undefined; loadedAtMs: number }>();
  private readonly verifiedSecrets = new Map<string, Buffer>();

  constructor(
    /** The stored records (ledger/terminals.ts); this class keeps the rules and the cache. */
    private readonly records: TerminalRecords,
    private readonly pepper: string,
    /** How long a looked-up terminal (or its absence) is trusted; 0 disables the cache. */
    private readonly cacheMs: number,
  ) {}

  async register(t: NewTerminal): Promise<void> {
    const problems = validateNewTerminal(t);
    if (problems.length > 0) throw new RangeError(problems.join('; '));
    await this.records.write(t.id, {
      kind: t.kind,
      merchantId: t.merchantId,
      location: t.location,
      secretHash: hashTerminalSecret(t.secret, this.pepper),
    });
    this.cache.delete(t.id);
  }

  /**
   * Registers a new terminal: false, and nothing changed, when the id is already registered (checked in
   * the same step as the write, never from the cache), so an operator's registration or import never
   * overwrites a terminal, its secret or its enabled flag.
   */
  async create(t: NewTerminal): Promise<boolean> {
    const problems = validateNewTerminal(t);
    if (problems.length > 0) throw new RangeError(problems.join('; '));
    const created = await this.records.create(t.id, {
      kind: t.kind,
      merchantId: t.merchantId,
      location: t.location,
      secretHash: hashTerminalSecret(t.secret, this.pepper),
    });
    this.cache.delete(t.id);
    return created;
  }

  async setEnabled(terminalId: string, enabled: boolean): Promise<boolean> {
    const exists = await this.records.setEnabled(terminalId, enabled);
    this.cache.delete(terminalId);
    return exists;
  }

  /** How many terminal ids (registered or not) the cache holds now. */
  get cachedTerminals(): number {
    return this.cache.size;
  }

  async get(terminalId: string): Promise<Terminal | undefined> {
    const cached = this.cache.get(terminalId);
    if (cached !== undefined && Date.now() - cached.loadedAtMs < this.cacheMs) return cached.terminal;
    const terminal = checkedTerminal(terminalId, await this.records.read(terminalId));
    if (this.cacheMs > 0) {
      // Bounded: the ids come from callers not yet authenticated (an AuthorizeStream message names any
      // terminal), and every id named stayed for good (test/terminal-cache.test.ts). The oldest goes first.
      if (this.cache.size >= MAX_CACHED_TERMINALS && !this.cache.has(terminalId)) {
        const oldest = this.cache.keys().next();
        if (oldest.done !== true) this.cache.delete(oldest.value);
      }
      this.cache.set(terminalId, { terminal, loadedAtMs: Date.now() });
    }
    return terminal;
  }

  /**
   * Constant-time comparison of the presented secret with the stored hash. The last secret that
   * matched a given stored hash is remembered, so a terminal's every call costs one constant-time
   * compare instead of an HMAC (the stored hash is part of the key: a new secret invalidates it).
   */
  secretMatches(terminal: Terminal, presentedSecret: string): boolean {
    const known = this.verifiedSecrets.get(terminal.secretHash);
    if (known !== undefined) {
      const presented = Buffer.from(presentedSecret);
      if (presented.length === known.length && timingSafeEqual(presented, known)) return true;
    }
    const presentedHash = Buffer.from(hashTerminalSecret(presentedSecret, this.pepper), 'hex');
    const stored = Buffer.from(terminal.secretHash, 'hex');
    const matches = presentedHash.length === stored.length && timingSafeEqual(presentedHash, stored);
    if (matches) {
      if (this.verifiedSecrets.size >= MAX_REMEMBERED_SECRETS) this.verifiedSecrets.clear();
      this.verifiedSecrets.set(terminal.secretHash, Buffer.from(presentedSecret));
    }
    return matches;
  }
}

/** A stored record of a kind this switch does not know is no terminal (it cannot authenticate). */
function checkedTerminal(id: string, stored: StoredTerminal | undefined): Terminal | undefined {
  if (stored === undefined || !(TERMINAL_KINDS as readonly string[]).includes(stored.kind)) return undefined;
  return { id, ...stored, kind: stored.kind as TerminalKind };
}
