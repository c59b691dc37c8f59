// The terminal records (Keys.terminal: hash {kind, merchant, location, enabled, secretHash}) and the
// index of terminal ids. domain/terminals.ts keeps the rules (validation, secret hashing) and the
// cache in front of these reads; this module owns the keys and the stored form.
import type { LedgerAccess } from './access.js';
import type { Keys } from './keys.js';
import type { RedisClient, Scripts } from './scripts.js';
import { decodeAnswer, numericReply, TERMINAL_CREATE_ANSWERS } from './answers.js';

/** A terminal as stored; `kind` is checked by the domain (a record of an unknown kind is no terminal). */
export interface StoredTerminal {
  readonly kind: string;
  readonly merchantId: string;
  readonly location: string;
  readonly enabled: boolean;
  /** HMAC-SHA256(pepper, secret), hex. */
  readonly secretHash: string;
}

export class TerminalRecords {
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  private readonly scripts: Scripts;

  constructor(ledger: LedgerAccess) {
    this.redis = ledger.scripts.client;
    this.keys = ledger.keys;
    this.scripts = ledger.scripts;
  }

  /**
   * Registers a new terminal, enabled, and indexes its id; false (nothing written) when the id is
   * already registered. The check and the write are one script (terminal-create.lua), so of two
   * operators registering one id at once exactly one does, and a terminal registered since a caller
   * looked is never overwritten (its secret, its enabled flag).
   */
  async create(id: string, terminal: Omit<StoredTerminal, 'enabled'>): Promise<boolean> {
    const reply = await this.scripts.run(
      'terminal-create',
      [this.keys.terminal(id)],
      [terminal.kind, terminal.merchantId, terminal.location, terminal.secretHash],
    );
    const created = decodeAnswer('terminal-create', TERMINAL_CREATE_ANSWERS, numericReply('terminal-create', reply)) === 'created';
    // Indexed also when it existed: an index entry a failed earlier call did not add is added now.
    await this.redis.sadd(this.keys.terminalIndex(), id);
    return created;
  }

  /**
   * Writes (or overwrites) the terminal, enabled, then indexes its id. Two commands, not a MULTI: the record
   * and the index are in different cluster slots. The record comes first: a terminal is usable once written,
   * and an index entry never names a terminal that was never written (a retry of a failed call adds it).
   */
  async write(id: string, terminal: Omit<StoredTerminal, 'enabled'>): Promise<void> {
    await this.redis.hset(this.keys.terminal(id), {
      kind: terminal.kind,
      merchant: terminal.merchantId,
      location: terminal.location,
      enabled: '1',
      secretHash: terminal.secretHash,
    });
    await this.redis.sadd(this.keys.terminalIndex(), id);
  }

  /** Enables or disables a registered terminal; false (nothing written) when it is not registered. */
  async setEnabled(id: string, enabled: boolean): Promise<boolean> {
    const key = this.keys.terminal(id);
    const exists = (await this.redis.exists(key)) === 1;
    if (exists) await this.redis.hset(key, 'enabled', enabled ? '1' : '0');
    return exists;
  }

  /** The stored terminal in one HGETALL, or undefined when there is no record. */
  async read(id: string): Promise<StoredTerminal | undefined> {
    const fields = await this.redis.hgetall(this.keys.terminal(id));
    const kind = fields['kind'];
    if (kind === undefined) return undefined;
    return {
      kind,
      merchantId: fields['merchant'] ?? '',
      location: fields['location'] ?? '',
      enabled: fields['enabled'] === '1',
      secretHash: fields['secretHash'] ?? '',
    };
  }
}
