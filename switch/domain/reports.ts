// What the cardholder and the operator read: a card's statement (newest first, paged, with the merchant,
// place and a zh-CN description of every line) and a merchant's settlement for one campus day, built
// from the shard journals. Nothing here changes money.
import type { SwitchContext } from '../context.js';
import { CancelledError, InvalidArgumentError, NotFoundError, ResourceExhaustedError, UnavailableError } from '../errors.js';
import { AuditCancelledError, type AuditOptions, type AuditReport } from '../ledger/audit.js';
import { cardExists } from '../ledger/cards.js';
import { forEachShard, JournalFormatError, JournalReadCancelledError, parseJournalEntry } from '../ledger/journal.js';
import { auditWholeLedger, cardJournalEntry, cardStatementPage, shardJournalPages } from '../ledger/report-reads.js';
import { PageTokenCodec, PageTokenError, parseStatementLine, StatementFormatError, type StatementLineRecord } from '../ledger/statement.js';
import { MERCHANT_ID_PATTERN, TERMINAL_ID_PATTERN, type Terminal } from './terminals.js';

// ---- statement ---------------------------------------------------------------------------------

export const STATEMENT_CATEGORIES = ['payment', 'recharge', 'refund', 'reversal', 'water', 'fee', 'adjustment', 'channel_payment'] as const;
export type StatementCategory = (typeof STATEMENT_CATEGORIES)[number];

/** Every journal kind of ledger/README.md; a kind added later without an entry here reads as an adjustment. */
const KIND_CATEGORY: Readonly<Record<string, StatementCategory>> = {
  pay: 'payment',
  rch: 'recharge',
  ref: 'refund',
  rev: 'reversal',
  wopen: 'water',
  wset: 'water',
  wpay: 'water',
  fee: 'fee',
  feeback: 'fee',
  open: 'adjustment',
  adj: 'adjustment',
  cpay: 'channel_payment',
  cprev: 'channel_payment',
  cref: 'channel_payment',
};

const KIND_DESCRIPTION: Readonly<Record<string, string>> = {
  pay: '消费',
  rch: '充值',
  ref: '退款',
  rev: '冲正',
  wopen: '小钱包',
  wset: '小钱包',
  wpay: '小钱包',
  fee: '缴费',
  feeback: '缴费退回',
  open: '开户',
  adj: '调账',
  cpay: '第三方支付',
  cprev: '第三方支付撤销',
  cref: '第三方支付退款',
};

/** Kinds whose `tm` names an operator or nothing, never a terminal: no merchant or place to show. */
const KINDS_WITHOUT_TERMINAL: ReadonlySet<string> = new Set(['open', 'adj']);

const RECHARGE_CHANNEL_DESCRIPTION: Readonly<Record<string, string>> = { wechat: '微信充值', alipay: '支付宝充值', counter: '柜台充值' };
const UTILITY_DESCRIPTION: Readonly<Record<string, string>> = { network: '网费', electricity: '电费' };
const CHANNEL_PAYMENT_DESCRIPTION: Readonly<Record<string, string>> = { wechat: '微信支付', alipay: '支付宝支付' };
/** The outside party of a channel payment's journal entry: where the money came from (cpay) or went back to (cprev). */
const CHANNEL_PARTY_PREFIX = 'x:ch:';

/** Unknown kinds are logged once each per process; the set is bounded so a flood cannot grow it. */
const MAX_LOGGED_UNKNOWN_KINDS = 100;
const loggedUnknownKinds = new Set<string>();

export function categoryOfKind(kind: string): StatementCategory | undefined {
  return KIND_CATEGORY[kind];
}

export interface StatementQueryInput {
  /** Inclusive, ms; 0 = unbounded. */
  readonly fromMs: number;
  /** Exclusive, ms; 0 = unbounded. */
  readonly toMs: number;
  /** Empty: every category. */
  readonly categories: ReadonlySet<StatementCategory>;
  readonly pageSize: number;
  /** '' for the first page. */
  readonly pageToken: string;
}

export interface StatementEntry extends StatementLineRecord {
  readonly category: StatementCategory;
  readonly merchantId: string;
  readonly location: string;
  readonly description: string;
}

export interface StatementResult {
  readonly lines: readonly StatementEntry[];
  /** '' on the last page. */
  readonly nextPageToken: string;
}

/** Statement reading bound to one switch: the page-token key is derived from the terminal pepper. */
export class StatementReader {
  private readonly tokens: PageTokenCodec;

  constructor(private readonly ctx: SwitchContext) {
    this.tokens = new PageTokenCodec(ctx.config.terminalPepper);
  }

  async read(cardNo: string, query: StatementQueryInput): Promise<StatementResult> {
    const queryId = [cardNo, query.fromMs, query.toMs, [...query.categories].sort().join(',')].join('|');
    const cursor = query.pageToken === '' ? undefined : this.decodeToken(query.pageToken, queryId);
    const acceptKind = (kind: string): boolean => query.categories.size === 0 || query.categories.has(this.category(kind));
    const page = await cardStatementPage(this.ctx, cardNo, { ...query, cursor, acceptKind });
    const records: StatementLineRecord[] = [];
    for (const { member, atMs } of page.lines) {
      const record = this.parse(cardNo, member, atMs);
      if (record !== undefined) records.push(record);
    }
    const lines = await this.describe(cardNo, records);
    return { lines, nextPageToken: page.next === undefined ? '' : this.tokens.encode(page.next, queryId) };
  }

  private decodeToken(token: string, queryId: string) {
    try {
      return this.tokens.decode(token, queryId);
    } catch (err) {
      if (err instanceof PageTokenError)
        // The holder did nothing wrong (the filter changed under an old token, or it was damaged): say
        // what to do, not "check what you entered".
        throw new InvalidArgumentError(`${err.message}; ask for the first page again with an empty page_token`, {
          reason: 'PAGE_TOKEN_INVALID',
          zh: '翻页信息已失效，请从第一页重新查看',
        });
      throw err;
    }
  }

  private category(kind: string): StatementCategory {
    const category = KIND_CATEGORY[kind];
    if (category !== undefined) return category;
    if (!loggedUnknownKinds.has(kind) && loggedUnknownKinds.size < MAX_LOGGED_UNKNOWN_KINDS) {
      loggedUnknownKinds.add(kind);
      this.ctx.log.warn({ kind }, 'statement line of an unknown kind; shown as an adjustment');
    }
    return 'adjustment';
  }

  /** A damaged line is logged and left out rather than making the whole statement unreadable. */
  private parse(cardNo: string, member: string, atMs: number): StatementLineRecord | undefined {
    try {
      return parseStatementLine(member, atMs);
    } catch (err) {
      if (!(err instanceof StatementFormatError)) throw err;
      this.ctx.log.error({ cardNo, err: err.message }, 'statement line left out');
      return undefined;
    }
  }

  /** Merchant and place from the terminal (one lookup per terminal per request), and the description. */
  private async describe(cardNo: string, records: readonly StatementLineRecord[]): Promise<StatementEntry[]> {
    const terminals = new Map<string, Promise<Terminal | undefined>>();
    const terminalOf = (id: string): Promise<Terminal | undefined> => {
      if (!TERMINAL_ID_PATTERN.test(id)) return Promise.resolve(undefined);
      let pending = terminals.get(id);
      if (pending === undefined) {
        pending = this.ctx.terminals.get(id);
        terminals.set(id, pending);
      }
      return pending;
    };
    return Promise.all(
      records.map(async (r) => {
        const [terminal, description] = await Promise.all([
          KINDS_WITHOUT_TERMINAL.has(r.kind) ? undefined : terminalOf(r.terminalId),
          this.description(cardNo, r),
        ]);
        return {
          ...r,
          category: this.category(r.kind),
          merchantId: terminal?.merchantId ?? '',
          location: terminal?.location ?? '',
          description,
        };
      }),
    );
  }

  /** Recharges name their channel and fees their provider: both are parties of the journal entry. */
  private async description(cardNo: string, r: StatementLineRecord): Promise<string> {
    const base = KIND_DESCRIPTION[r.kind] ?? '调账';
    if (r.kind !== 'rch' && r.kind !== 'fee' && r.kind !== 'feeback' && r.kind !== 'cpay' && r.kind !== 'cprev' && r.kind !== 'cref')
      return base;
    let entry;
    try {
      // From Redis, or from the archive once the entry left the live window.
      entry = await cardJournalEntry(this.ctx, cardNo, r.transactionId);
    } catch (err) {
      // The entry is only in the archive and PostgreSQL is not answering: the line (amount, balance, time) is
      // still whole in Redis; it reads without the detail only its entry names (test/history-skew.test.ts).
      if (err instanceof UnavailableError) return base;
      if (!(err instanceof JournalFormatError)) throw err;
      this.ctx.log.error({ cardNo, err: err.message }, 'journal entry of a statement line does not parse');
      return base;
    }
    if (entry === undefined) return base;
    if (r.kind === 'rch') return RECHARGE_CHANNEL_DESCRIPTION[entry.fromParty.replace(/^x:ch:/, '').toLowerCase()] ?? base;
    if (r.kind === 'cpay' || r.kind === 'cprev' || r.kind === 'cref') {
      const party = r.kind === 'cpay' ? entry.fromParty : entry.toParty;
      const channel = CHANNEL_PAYMENT_DESCRIPTION[party.slice(CHANNEL_PARTY_PREFIX.length).toLowerCase()];
      if (channel === undefined) return base;
      return r.kind === 'cpay' ? channel : r.kind === 'cref' ? `${channel}退款` : `${channel}撤销`;
    }
    const provider = UTILITY_DESCRIPTION[(r.kind === 'fee' ? entry.toParty : entry.fromParty).replace(/^u:/, '')];
    if (provider === undefined) return base;
    return r.kind === 'fee' ? provider : `${provider}退回`;
  }
}

/** The card office's read of any card's statement (no password: the operator is authenticated). */
export async function cardStatement(
  ctx: SwitchContext,
  reader: StatementReader,
  cardNo: string,
  query: StatementQueryInput,
): Promise<StatementResult> {
  if (!(await cardExists(ctx, cardNo))) throw new NotFoundError(`card ${cardNo} does not exist`);
  return reader.read(cardNo, query);
}

// ---- settlement --------------------------------------------------------------------------------

/** China Standard Time has no daylight saving. */
const CAMPUS_UTC_OFFSET_MS = 8 * 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * Stream ids carry Redis's clock, `ts` the switch's decision time (the time on the receipt and the
 * statement). The report scans stream ids this much wider than the day and keeps entries by `ts`, so a
 * payment decided at 23:59:59.9 belongs to that day even if Redis's clock is a little ahead.
 */
export const SETTLEMENT_CLOCK_SKEW_MS = 10 * 60 * 1000;
const SETTLEMENT_SHARD_CONCURRENCY = 8;

export interface TerminalTakings {
  readonly terminalId: string;
  payments: number;
  paidFen: number;
  /** Refunds and reversals. */
  refunds: number;
  refundedFen: number;
  netFen: number;
}

/** One channel's code payments at the merchant (kept apart: the channel, not the card office, pays the merchant). */
export interface ChannelTakings {
  readonly channel: string;
  payments: number;
  paidFen: number;
  /** Payments reversed afterwards. */
  refunds: number;
  refundedFen: number;
  netFen: number;
}

export interface SettlementReport {
  readonly merchantId: string;
  /** YYYY-MM-DD, campus time. */
  readonly day: string;
  /** Campus-card money only, sorted by terminal id. */
  readonly terminals: readonly TerminalTakings[];
  readonly total: TerminalTakings;
  /** Alipay / WeChat code payments, sorted by channel; absent channels had none. */
  readonly channels: readonly ChannelTakings[];
}

/** [startMs, endMs) of a campus day "YYYY-MM-DD" (00:00 to 24:00 UTC+8). */
export function campusDayRange(day: string): { startMs: number; endMs: number } {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (match === null) throw new InvalidArgumentError(`day must be a campus date as YYYY-MM-DD, got "${day.slice(0, 20)}"`);
  const [year, month, date] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const utcMidnight = Date.UTC(year, month - 1, date);
  const check = new Date(utcMidnight);
  if (year < 2000 || year > 2999 || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== date) {
    throw new InvalidArgumentError(`day "${day}" is not a calendar date (YYYY-MM-DD, year 2000-2999)`);
  }
  const startMs = utcMidnight - CAMPUS_UTC_OFFSET_MS;
  return { startMs, endMs: startMs + DAY_MS };
}

function emptyTakings(terminalId: string): TerminalTakings {
  return { terminalId, payments: 0, paidFen: 0, refunds: 0, refundedFen: 0, netFen: 0 };
}

/** The `f` and `t` values of a raw row, without building the whole entry for rows of other merchants. */
function touchesParty(flat: readonly string[], party: string): boolean {
  for (let i = 0; i + 1 < flat.length; i += 2) {
    if ((flat[i] === 'f' || flat[i] === 't') && flat[i + 1] === party) return true;
  }
  return false;
}

export interface SettlementOptions {
  readonly journalPageSize?: number;
  readonly cancelled?: () => boolean;
}

/**
 * A merchant's takings for one campus day, per terminal and in total: money to `m:<merchant>` is paid
 * (POS payments, water spending), money from it is given back (refunds, reversals). Every shard's
 * journal is read in bounded pages over the day's stream-id range. A merchant with no entries gets an
 * empty report: the journal cannot tell an idle merchant from an unknown one. Stopped between pages
 * when `options.cancelled` says so (CancelledError).
 */
export async function settlementReport(
  ctx: SwitchContext,
  merchantId: string,
  day: string,
  options: SettlementOptions = {},
): Promise<SettlementReport> {
  if (!MERCHANT_ID_PATTERN.test(merchantId))
    throw new InvalidArgumentError(`merchant_id must be 1-32 of A-Z a-z 0-9 _ -, got "${merchantId.slice(0, 40)}"`);
  const { startMs, endMs } = campusDayRange(day);
  let byTerminal: Map<string, TerminalTakings>;
  const byChannel = new Map<string, ChannelTakings>();
  try {
    byTerminal = await takingsByTerminal(ctx, `m:${merchantId}`, startMs, endMs, options, byChannel);
  } catch (err) {
    if (err instanceof JournalReadCancelledError)
      throw new CancelledError('the call was cancelled or its deadline passed before the report was complete');
    throw err;
  }
  const terminals = [...byTerminal.values()].sort((a, b) => (a.terminalId < b.terminalId ? -1 : a.terminalId > b.terminalId ? 1 : 0));
  const total = emptyTakings('');
  for (const t of terminals) {
    total.payments += t.payments;
    total.paidFen += t.paidFen;
    total.refunds += t.refunds;
    total.refundedFen += t.refundedFen;
  }
  total.netFen = total.paidFen - total.refundedFen;
  const channels = [...byChannel.values()].sort((a, b) => (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0));
  return { merchantId, day, terminals, total, channels };
}

async function takingsByTerminal(
  ctx: SwitchContext,
  party: string,
  startMs: number,
  endMs: number,
  options: SettlementOptions,
  byChannel: Map<string, ChannelTakings>,
): Promise<Map<string, TerminalTakings>> {
  const byTerminal = new Map<string, TerminalTakings>();
  const range = {
    start: String(Math.max(0, startMs - SETTLEMENT_CLOCK_SKEW_MS)),
    end: String(endMs + SETTLEMENT_CLOCK_SKEW_MS),
    pageSize: options.journalPageSize,
    cancelled: options.cancelled,
  };
  await forEachShard(ctx.keys.shardCount, SETTLEMENT_SHARD_CONCURRENCY, async (shard) => {
    for await (const page of shardJournalPages(ctx, shard, range)) {
      for (const row of page) {
        if (!touchesParty(row[1], party)) continue;
        const entry = parseJournalEntry(row);
        if (entry.atMs < startMs || entry.atMs >= endMs) continue;
        if (entry.kind === 'cpay' || entry.kind === 'cprev' || entry.kind === 'cref') {
          addChannelTakings(byChannel, entry.kind === 'cpay' ? entry.fromParty : entry.toParty, entry.kind === 'cpay', entry.amountFen);
          continue;
        }
        let takings = byTerminal.get(entry.terminalId);
        if (takings === undefined) {
          takings = emptyTakings(entry.terminalId);
          byTerminal.set(entry.terminalId, takings);
        }
        if (entry.toParty === party) {
          takings.payments += 1;
          takings.paidFen += entry.amountFen;
        } else {
          takings.refunds += 1;
          takings.refundedFen += entry.amountFen;
        }
        takings.netFen = takings.paidFen - takings.refundedFen;
      }
    }
  });
  return byTerminal;
}

function addChannelTakings(byChannel: Map<string, ChannelTakings>, party: string, paid: boolean, amountFen: number): void {
  const channel = (party.startsWith(CHANNEL_PARTY_PREFIX) ? party.slice(CHANNEL_PARTY_PREFIX.length) : party).toLowerCase();
  let takings = byChannel.get(channel);
  if (takings === undefined) {
    takings = { channel, payments: 0, paidFen: 0, refunds: 0, refundedFen: 0, netFen: 0 };
    byChannel.set(channel, takings);
  }
  if (paid) {
    takings.payments += 1;
    takings.paidFen += amountFen;
  } else {
    takings.refunds += 1;
    takings.refundedFen += amountFen;
  }
  takings.netFen = takings.paidFen - takings.refundedFen;
}

export { DEFAULT_STATEMENT_PAGE_SIZE, MAX_STATEMENT_PAGE_SIZE } from '../ledger/statement.js';

/** The audit reads every journal; two at once in one process would only slow both (and the switch). */
let auditRunning = false;

/**
 * The conservation audit of the whole ledger (ledger/audit.ts), for the operator's Audit call: one at a
 * time per process, logged with its figures, stopped between pages when `options.cancelled` says so.
 */
export async function auditSwitchLedger(ctx: SwitchContext, options: AuditOptions): Promise<AuditReport> {
  if (auditRunning) throw new ResourceExhaustedError('an audit is already running on this switch; wait for it to finish and ask again');
  auditRunning = true;
  try {
    const report = await auditWholeLedger(ctx, options);
    const figures = {
      accounts: report.accounts,
      entries: report.journalEntries,
      heldFen: report.heldFen,
      problems: report.problemCount,
      elapsedMs: report.elapsedMs,
    };
    if (report.ok) ctx.log.info(figures, 'audit: ledger sound');
    else ctx.log.error(figures, 'audit: ledger NOT sound');
    return report;
  } catch (err) {
    if (err instanceof AuditCancelledError || err instanceof JournalReadCancelledError) {
      throw new CancelledError('the call was cancelled or its deadline passed before the audit was complete');
    }
    throw err;
  } finally {
    auditRunning = false;
  }
}
