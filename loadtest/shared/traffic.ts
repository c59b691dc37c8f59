// What the load tests send: PosService request messages (plain objects with the proto's JSON field
// names, which k6's gRPC client accepts and the wire encoder in wire.ts writes), the lunch-rush mix, and
// a planner that turns the mix into concrete calls: which terminal, which card, which amount, which
// idempotency key, and which earlier payment to retry or reverse.
//
// Pure TypeScript: no k6 and no Node imports. Imports between shared files are type-only, so k6 (which
// needs explicit `.ts` paths) and tsc with NodeNext (which needs `.js` paths) both read them.
import type { CampusCard, CampusFile, CampusTerminal } from './campus-data.js';

/**
 * What a planner reads of a campus: array-likes, so k6 can hand over SharedArrays (each VU then parses
 * only the cards it draws instead of holding its own copy of the whole campus).
 */
export interface CampusView {
  readonly noPinPerPaymentFen: CampusFile['noPinPerPaymentFen'];
  readonly cards: ArrayLike<CampusCard>;
  readonly terminals: ArrayLike<CampusTerminal>;
}

// ---- messages (cardswitch.v1, proto3 JSON names) ---------------------------------------------

export type CredentialMessage =
  | { readonly card: { readonly cardSerial: string } }
  | { readonly campusQr: { readonly payload: string } }
  | { readonly thirdParty: { readonly code: string } };

export interface AuthorizeMessage {
  readonly terminalId: string;
  readonly sequenceNumber: number;
  readonly amountFen: number;
  readonly credential: CredentialMessage;
  readonly pin: string;
}

export interface ReverseMessage {
  readonly terminalId: string;
  readonly originalSequenceNumber: number;
  readonly amountFen: number;
  readonly credential: CredentialMessage;
}

export interface InquireMessage {
  readonly terminalId: string;
  readonly credential: CredentialMessage;
}

export interface WaterDebitMessage {
  readonly terminalId: string;
  readonly sequenceNumber: number;
  readonly amountFen: number;
  readonly credential: CredentialMessage;
}

export interface SettleMessage {
  readonly terminalId: string;
  readonly sequenceNumber: number;
  readonly credential: CredentialMessage;
}

export type PosCall =
  | { readonly rpc: 'Authorize'; readonly message: AuthorizeMessage }
  | { readonly rpc: 'Reverse'; readonly message: ReverseMessage }
  | { readonly rpc: 'Inquire'; readonly message: InquireMessage }
  | { readonly rpc: 'WaterDebit'; readonly message: WaterDebitMessage }
  | { readonly rpc: 'Settle'; readonly message: SettleMessage };

export type PosRpc = PosCall['rpc'];
export const POS_SERVICE = 'cardswitch.v1.PosService';
export const POS_RPCS: readonly PosRpc[] = ['Authorize', 'Reverse', 'Inquire', 'WaterDebit', 'Settle'];

export function rpcPath(rpc: PosRpc): string {
  return `/${POS_SERVICE}/${rpc}`;
}

export function cardTap(serial: string): CredentialMessage {
  return { card: { cardSerial: serial } };
}

/** A campus QR code a POS scanned (the e-card page shows one, GET /api/v1/ecard/qr issues it). */
export function campusQr(payload: string): CredentialMessage {
  return { campusQr: { payload } };
}

/** An Alipay / WeChat payment code (the payer's phone shows it; 18 digits, single use, 60 s). */
export function thirdPartyCode(code: string): CredentialMessage {
  return { thirdParty: { code } };
}

export function authorizeCall(terminalId: string, sequence: number, amountFen: number, credential: CredentialMessage, pin = ''): PosCall {
  return { rpc: 'Authorize', message: { terminalId, sequenceNumber: sequence, amountFen, credential, pin } };
}

export function reverseCall(original: AuthorizeMessage): PosCall {
  return {
    rpc: 'Reverse',
    message: {
      terminalId: original.terminalId,
      originalSequenceNumber: original.sequenceNumber,
      amountFen: original.amountFen,
      credential: original.credential,
    },
  };
}

export function inquireCall(terminalId: string, credential: CredentialMessage): PosCall {
  return { rpc: 'Inquire', message: { terminalId, credential } };
}

export function waterDebitCall(terminalId: string, sequence: number, amountFen: number, credential: CredentialMessage): PosCall {
  return { rpc: 'WaterDebit', message: { terminalId, sequenceNumber: sequence, amountFen, credential } };
}

export function settleCall(terminalId: string, sequence: number, credential: CredentialMessage): PosCall {
  return { rpc: 'Settle', message: { terminalId, sequenceNumber: sequence, credential } };
}

// ---- answers -----------------------------------------------------------------------------------

/** gRPC status codes by name (the numbers are fixed by the gRPC spec). */
export const GRPC_STATUS_NAMES: readonly string[] = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];
export const GRPC_OK = 0;
export const GRPC_UNIMPLEMENTED = 12;

/** cardswitch.v1.Outcome, by number. */
export const OUTCOME_NAMES: readonly string[] = [
  'OUTCOME_UNSPECIFIED',
  'OUTCOME_APPROVED',
  'OUTCOME_DECLINED',
  'OUTCOME_PIN_REQUIRED',
  'OUTCOME_PENDING',
];
export const OUTCOME_APPROVED = 1;
export const OUTCOME_DECLINED = 2;
export const OUTCOME_PIN_REQUIRED = 3;
/** cardswitch.v1.DeclineReason, by number. */
export const DECLINE_REASON_NAMES: readonly string[] = [
  'DECLINE_REASON_UNSPECIFIED',
  'DECLINE_REASON_INSUFFICIENT_FUNDS',
  'DECLINE_REASON_CARD_LOST',
  'DECLINE_REASON_CARD_FROZEN',
  'DECLINE_REASON_UNKNOWN_CARD',
  'DECLINE_REASON_CARD_REPLACED',
  'DECLINE_REASON_ALREADY_REVERSED',
  'DECLINE_REASON_DAILY_LIMIT_EXCEEDED',
  'DECLINE_REASON_WRONG_PIN',
  'DECLINE_REASON_PIN_LOCKED',
  'DECLINE_REASON_CARD_NOT_SYNCED',
  'DECLINE_REASON_QR_INVALID',
  'DECLINE_REASON_QR_EXPIRED',
  'DECLINE_REASON_QR_USED',
  'DECLINE_REASON_CHANNEL_DECLINED',
  'DECLINE_REASON_SMALL_WALLET_EMPTY',
  'DECLINE_REASON_CARD_CANCELLED',
];
/** cardswitch.v1.ReverseResult, by number. */
export const REVERSE_RESULT_NAMES: readonly string[] = [
  'REVERSE_RESULT_UNSPECIFIED',
  'REVERSE_RESULT_REVERSED',
  'REVERSE_RESULT_NOTHING_TO_REVERSE',
  'REVERSE_RESULT_TOMBSTONED',
];

/** An enum field as a number, whether it came as a number (wire) or as its name (k6's protojson). */
export function enumNumber(value: unknown, names: readonly string[]): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') {
    const index = names.indexOf(value);
    return index >= 0 ? index : -1;
  }
  return 0;
}

function shortName(names: readonly string[], prefix: string, value: number): string {
  const name = names[value];
  return name === undefined ? `unknown_${value}` : name.slice(prefix.length).toLowerCase();
}

/**
 * One label per answer: 'approved', 'declined:insufficient_funds', 'pin_required', 'reversed', 'found',
 * 'grpc:UNAVAILABLE' ... `field1` and `field2` are the response's fields 1 and 2 (Authorize, WaterDebit,
 * Settle: outcome and decline_reason; Reverse: result; Inquire: found as 0/1).
 */
export function answerLabel(rpc: PosRpc, grpcStatus: number, field1: number, field2: number): string {
  if (grpcStatus !== GRPC_OK) return `grpc:${GRPC_STATUS_NAMES[grpcStatus] ?? String(grpcStatus)}`;
  if (rpc === 'Inquire') return field1 === 1 ? 'found' : 'not_found';
  if (rpc === 'Reverse') return shortName(REVERSE_RESULT_NAMES, 'REVERSE_RESULT_', field1);
  if (field1 === OUTCOME_DECLINED) return `declined:${shortName(DECLINE_REASON_NAMES, 'DECLINE_REASON_', field2)}`;
  return shortName(OUTCOME_NAMES, 'OUTCOME_', field1);
}

export type RequestKind = 'tap' | 'inquiry' | 'retry' | 'reversal' | 'pin' | 'pin_entry' | 'water' | 'settle' | 'campus_qr' | 'third_party';

/**
 * Answers that a correct switch gives to this kind of request in a load test; anything else fails the
 * k6 check and counts as unexpected in the bench. Business declines that a busy real campus produces
 * (a hot card running out of money or over its daily limits) are expected; an unknown card is not (the
 * campus file does not match the switch), nor is any gRPC error.
 */
export function isExpectedAnswer(kind: RequestKind, label: string): boolean {
  switch (kind) {
    case 'tap':
    case 'retry':
      return (
        label === 'approved' ||
        label === 'pin_required' ||
        label === 'declined:insufficient_funds' ||
        label === 'declined:daily_limit_exceeded'
      );
    case 'pin':
      return (
        label === 'pin_required' ||
        label === 'approved' ||
        label === 'declined:insufficient_funds' ||
        label === 'declined:daily_limit_exceeded'
      );
    case 'pin_entry':
      return label === 'approved' || label === 'declined:insufficient_funds' || label === 'declined:daily_limit_exceeded';
    case 'inquiry':
      return label === 'found';
    case 'reversal':
      return label === 'reversed';
    case 'water':
      return label === 'approved' || label === 'declined:small_wallet_empty';
    case 'settle':
      return label === 'approved' || label === 'declined:insufficient_funds';
    case 'campus_qr':
      // Like a tap: a busy card may run out of money or over its password-free day. A used, expired or
      // invalid code is never expected: each payment has a fresh code of a bound, active card.
      return (
        label === 'approved' ||
        label === 'pin_required' ||
        label === 'declined:insufficient_funds' ||
        label === 'declined:daily_limit_exceeded'
      );
    case 'third_party':
      return label === 'approved' || label === 'pending';
  }
}

// ---- the mix -------------------------------------------------------------------------------------

/** Relative weights of the request kinds a planner draws. */
export interface TrafficMix {
  readonly tap: number;
  readonly inquiry: number;
  readonly retry: number;
  readonly reversal: number;
  readonly pin: number;
  readonly water: number;
  readonly settle: number;
  // Campus QR payments: each needs a fresh code (PlannerOptions.nextCampusQr), so the lunch-rush mix
  // keeps them at 0 and the bench's `qr` scenario and k6/campus-qr.ts send them. Alipay / WeChat payment
  // codes (thirdParty) also need a fresh code each (PlannerOptions.nextThirdPartyCode): the bench mints
  // them ahead from its channel simulators; k6 has no simulator and leaves them out (k6/lib/pos.ts).
  readonly campusQr: number;
  readonly thirdParty: number;
}

export const MIX_KEYS: readonly (keyof TrafficMix)[] = [
  'tap',
  'inquiry',
  'retry',
  'reversal',
  'pin',
  'water',
  'settle',
  'campusQr',
  'thirdParty',
];

/** The canteen lunch hour: mostly card taps, some balance checks, POS retries and reversals after timeouts. */
// PIN payments are rare in a canteen: a meal is far below the 50.00 password-free limit, so only big
// shop purchases and the day's fourth or fifth meal ask for the password. Each costs a full scrypt
// (tens of ms of a core), so their share decides how many cores the rush needs; 1% is the canteen case.
// Alipay / WeChat payment codes: 5 %, taken from the taps. A campus canteen is paid mostly by card (the
// card is the subsidised, password-free way); visitors, staff without a card at hand and the odd student
// pay with a phone. 5 % is enough to keep a steady stream of payments waiting on the channel during the
// rush (150/s at the 3,000/s peak) without making the mix a third-party benchmark.
export const LUNCH_RUSH_MIX: TrafficMix = {
  tap: 69,
  inquiry: 10,
  retry: 5,
  reversal: 3,
  pin: 1,
  water: 5,
  settle: 2,
  campusQr: 0,
  thirdParty: 5,
};
export const TAP_ONLY_MIX: TrafficMix = {
  tap: 1,
  inquiry: 0,
  retry: 0,
  reversal: 0,
  pin: 0,
  water: 0,
  settle: 0,
  campusQr: 0,
  thirdParty: 0,
};
export const INQUIRY_ONLY_MIX: TrafficMix = {
  tap: 0,
  inquiry: 1,
  retry: 0,
  reversal: 0,
  pin: 0,
  water: 0,
  settle: 0,
  campusQr: 0,
  thirdParty: 0,
};
export const CAMPUS_QR_ONLY_MIX: TrafficMix = {
  tap: 0,
  inquiry: 0,
  retry: 0,
  reversal: 0,
  pin: 0,
  water: 0,
  settle: 0,
  campusQr: 1,
  thirdParty: 0,
};
export const THIRD_PARTY_ONLY_MIX: TrafficMix = {
  tap: 0,
  inquiry: 0,
  retry: 0,
  reversal: 0,
  pin: 0,
  water: 0,
  settle: 0,
  campusQr: 0,
  thirdParty: 1,
};

/** "tap=70,inquiry=10,water=0": overrides of `base`; unknown names and bad numbers throw. */
export function parseMix(text: string, base: TrafficMix): TrafficMix {
  const mix: Record<string, number> = { ...base };
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const match = /^\s*([A-Za-z]+)\s*=\s*(\d+(?:\.\d+)?)\s*$/.exec(part);
    const key = match?.[1] ?? '';
    if (match === null || !(MIX_KEYS as readonly string[]).includes(key)) {
      throw new Error(`mix entry "${part}" must be name=weight with a name from ${MIX_KEYS.join(', ')}`);
    }
    mix[key] = Number(match[2]);
  }
  const result = mix as unknown as TrafficMix;
  if (MIX_KEYS.every((k) => result[k] === 0)) throw new Error('the mix has no request kind with a weight above 0');
  return result;
}

export function mixWithout(mix: TrafficMix, keys: readonly (keyof TrafficMix)[]): TrafficMix {
  const copy: Record<string, number> = { ...mix };
  for (const key of keys) copy[key] = 0;
  return copy as unknown as TrafficMix;
}

// ---- deterministic randomness ----------------------------------------------------------------------

/** mulberry32: small, fast, reproducible from a seed; not for anything secret. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Whole number in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }
}

// ---- the planner -----------------------------------------------------------------------------------

export interface PlannedCall {
  readonly kind: RequestKind;
  readonly call: PosCall;
  /** Index into campus.terminals: compact bookkeeping of approvals (terminal, sequence). */
  readonly terminalIndex: number;
  readonly terminal: CampusTerminal;
  /** The idempotency key's sequence number; 0 for Inquire. */
  readonly sequence: number;
  /** The card's PIN when the card has one: a PIN_REQUIRED answer is followed by the same call with it. */
  readonly pin: string;
  /** On a retry: what the caller stored with the original (its answer), to compare the two. */
  readonly retryOf: unknown;
}

export interface PlannerOptions {
  readonly mix: TrafficMix;
  readonly seed: number;
  /** Unique per call across every planner of the run (each sequence is one idempotency key per terminal). */
  readonly nextSequence: () => number;
  /** This planner's share of the water-wallet cards (k6: one per VU; bench: one per worker). */
  readonly partition?: { readonly index: number; readonly count: number };
  /** True when the water cards' small wallets were opened before the run (the bench does); default false. */
  readonly walletsOpen?: boolean;
  /** Cards that take `hotShare` of the taps and inquiries (a few students who eat everywhere). Default 8. */
  readonly hotCards?: number;
  readonly hotShare?: number;
  /**
   * The next campus QR code to pay with, or undefined when there is none left (a code pays once and
   * lives 60 s, so the caller supplies them: k6 fetches one from the gateway, the bench mints them ahead).
   */
  readonly nextCampusQr?: () => string | undefined;
  /**
   * The next Alipay / WeChat payment code to pay with, or undefined when there is none left (a code
   * pays once and lives 60 s: the bench mints them ahead from its channel simulators).
   */
  readonly nextThirdPartyCode?: () => string | undefined;
}

interface Completed {
  readonly planned: PlannedCall;
  readonly memo: unknown;
}

const RING_SIZE = 64;
const CANTEEN_SHARE_OF_TAPS = 0.85;
/** One card in WATER_CARD_STRIDE lives in a dormitory with water control. */
const WATER_CARD_STRIDE = 8;

/** The first card index that carries load: the three well-known demo cards stay with people. */
export function firstLoadCard(cardCount: number): number {
  return cardCount > 16 ? 3 : 0;
}

export const DEFAULT_HOT_CARDS = 8;
export const DEFAULT_HOT_SHARE = 0.1;

/** How many of a campus's cards are hot (at most a quarter of the cards that carry load). */
export function hotCardCount(cardCount: number, wanted: number = DEFAULT_HOT_CARDS): number {
  return Math.min(wanted, Math.floor((cardCount - firstLoadCard(cardCount)) / 4));
}

/**
 * The card of a tap (or of a QR code the bench mints): `hotShare` of them on the first `hotCards` load
 * cards, the rest spread evenly. Two draws of `rng` at most, in this order, so a planner and the bench
 * that mints QR codes ahead pick cards the same way.
 */
export function loadCardIndex(rng: Rng, cardCount: number, hotCards: number, hotShare: number): number {
  const first = firstLoadCard(cardCount);
  if (hotCards > 0 && rng.next() < hotShare) return first + rng.int(0, hotCards - 1);
  return rng.int(first, cardCount - 1);
}

/** Indices of the cards that shower and buy hot water (their small wallets see the water debits). */
export function waterCardIndices(cardCount: number): number[] {
  const first = firstLoadCard(cardCount);
  const out: number[] = [];
  for (let i = first; i < cardCount; i++) if ((i - first) % WATER_CARD_STRIDE === 1) out.push(i);
  return out;
}

/**
 * Turns a mix into calls. One planner per k6 VU or bench worker: it remembers its own recent payments
 * (to retry or reverse them) and the small wallets of its own share of the water cards.
 */
export class TrafficPlanner {
  private readonly rng: Rng;
  private readonly kinds: (keyof TrafficMix)[] = [];
  private readonly cumulative: number[] = [];
  private readonly byKind = new Map<string, number[]>();
  /** Card indices: the first card that may carry load (the three well-known demo cards stay with people). */
  private readonly firstCard: number;
  private readonly hotCards: number;
  private readonly pinCards: number[] = [];
  private readonly waterCards: number[];
  private readonly walletsToSettle: number[];
  private readonly recentPayments: Completed[] = [];
  private readonly approvedPayments: PlannedCall[] = [];

  constructor(
    private readonly campus: CampusView,
    private readonly options: PlannerOptions,
  ) {
    this.rng = new Rng(options.seed);
    let total = 0;
    for (const key of MIX_KEYS) {
      const weight = options.mix[key];
      if (!(weight >= 0)) throw new Error(`mix weight of ${key} must be >= 0`);
      if (weight === 0) continue;
      total += weight;
      this.kinds.push(key);
      this.cumulative.push(total);
    }
    if (total === 0) throw new Error('the mix has no request kind with a weight above 0');
    for (let i = 0; i < campus.terminals.length; i++) {
      const kind = campus.terminals[i]?.kind ?? '';
      const list = this.byKind.get(kind) ?? [];
      list.push(i);
      this.byKind.set(kind, list);
    }
    const cardCount = campus.cards.length;
    this.firstCard = firstLoadCard(cardCount);
    this.hotCards = hotCardCount(cardCount, options.hotCards ?? DEFAULT_HOT_CARDS);
    if (options.mix.pin > 0) for (let i = this.firstCard; i < cardCount; i++) if (campus.cards[i]?.pin !== '') this.pinCards.push(i);
    const allWater = waterCardIndices(cardCount);
    const part = options.partition;
    const mine = part === undefined ? allWater : allWater.filter((_, i) => i % part.count === part.index);
    this.waterCards = mine.length > 0 ? mine : allWater;
    this.walletsToSettle = options.walletsOpen === true ? [] : [...this.waterCards];
    this.checkTerminals();
  }

  private card(index: number): CampusCard {
    const card = this.campus.cards[index];
    if (card === undefined) throw new Error(`no card at index ${index}`);
    return card;
  }

  private checkTerminals(): void {
    const need = (weight: number, kinds: readonly string[], what: string): void => {
      if (weight > 0 && !kinds.some((k) => (this.byKind.get(k)?.length ?? 0) > 0)) {
        throw new Error(`the mix sends ${what} but the campus has no ${kinds.join(' or ')} terminal`);
      }
    };
    const m = this.options.mix;
    need(m.tap + m.inquiry + m.retry + m.reversal + m.pin + m.campusQr + m.thirdParty, ['canteen', 'shop'], 'payments');
    if (m.thirdParty > 0 && this.options.nextThirdPartyCode === undefined)
      throw new Error('the mix sends third-party payment codes but the planner has no source of codes (nextThirdPartyCode)');
    if (m.campusQr > 0 && this.options.nextCampusQr === undefined)
      throw new Error('the mix sends campus QR payments but the planner has no source of codes (nextCampusQr)');
    need(m.water, ['water'], 'water debits');
    need(m.settle, ['settlement'], 'settlement swipes');
    if (m.pin > 0 && this.pinCards.length === 0) throw new Error('the mix sends PIN payments but no card in the campus file has a PIN');
    if (this.campus.cards.length === 0) throw new Error('the campus has no cards');
  }

  private drawKind(): keyof TrafficMix {
    const total = this.cumulative[this.cumulative.length - 1] ?? 0;
    const r = this.rng.next() * total;
    for (let i = 0; i < this.cumulative.length; i++) if (r < (this.cumulative[i] ?? 0)) return this.kinds[i] ?? 'tap';
    return this.kinds[this.kinds.length - 1] ?? 'tap';
  }

  private terminalOf(kind: string): { index: number; terminal: CampusTerminal } {
    const list = this.byKind.get(kind) ?? this.byKind.get('canteen') ?? [];
    const index = this.rng.pick(list);
    const terminal = this.campus.terminals[index];
    if (terminal === undefined) throw new Error(`no terminal at index ${index}`);
    return { index, terminal };
  }

  private posTerminal(canteenShare: number): { index: number; terminal: CampusTerminal } {
    const wantCanteen = this.rng.next() < canteenShare || (this.byKind.get('shop')?.length ?? 0) === 0;
    return this.terminalOf(wantCanteen && (this.byKind.get('canteen')?.length ?? 0) > 0 ? 'canteen' : 'shop');
  }

  private tapCard(): CampusCard {
    return this.card(loadCardIndex(this.rng, this.campus.cards.length, this.hotCards, this.options.hotShare ?? DEFAULT_HOT_SHARE));
  }

  /** A canteen meal: 3.00 to 25.00 yuan in 0.50 steps; shops sell smaller and larger things. */
  private mealAmountFen(terminal: CampusTerminal): number {
    return terminal.kind === 'canteen' ? this.rng.int(6, 50) * 50 : this.rng.int(1, 49) * 100;
  }

  private plan(
    kind: RequestKind,
    call: PosCall,
    at: { index: number; terminal: CampusTerminal },
    sequence: number,
    pin: string,
    retryOf?: unknown,
  ): PlannedCall {
    return { kind, call, terminalIndex: at.index, terminal: at.terminal, sequence, pin, retryOf };
  }

  /** The next call of the mix. */
  next(): PlannedCall {
    switch (this.drawKind()) {
      case 'tap':
        return this.tap();
      case 'inquiry':
        return this.inquiry();
      case 'retry':
        return this.retry() ?? this.tap();
      case 'reversal':
        return this.reversal() ?? this.tap();
      case 'pin':
        return this.pinPayment();
      case 'water':
        return this.water();
      case 'settle':
        return this.settle();
      case 'campusQr':
        return this.campusQrPayment();
      case 'thirdParty':
        return this.thirdPartyPayment();
    }
  }

  tap(): PlannedCall {
    const at = this.posTerminal(CANTEEN_SHARE_OF_TAPS);
    const card = this.tapCard();
    const amountFen = this.mealAmountFen(at.terminal);
    const sequence = this.options.nextSequence();
    return this.plan('tap', authorizeCall(at.terminal.id, sequence, amountFen, cardTap(card.serial)), at, sequence, card.pin);
  }

  inquiry(): PlannedCall {
    const at = this.posTerminal(1);
    return this.plan('inquiry', inquireCall(at.terminal.id, cardTap(this.tapCard().serial)), at, 0, '');
  }

  /** The same call again, same sequence number: a POS that timed out and asks again. */
  retry(): PlannedCall | undefined {
    if (this.recentPayments.length === 0) return undefined;
    const original = this.rng.pick(this.recentPayments);
    const p = original.planned;
    return this.plan('retry', p.call, { index: p.terminalIndex, terminal: p.terminal }, p.sequence, '', original.memo);
  }

  /** Undo one of this planner's approved payments, from the terminal that took it. */
  reversal(): PlannedCall | undefined {
    const index = this.approvedPayments.length === 0 ? -1 : this.rng.int(0, this.approvedPayments.length - 1);
    const original = this.approvedPayments[index];
    if (original === undefined || original.call.rpc !== 'Authorize') return undefined;
    this.approvedPayments.splice(index, 1);
    const at = { index: original.terminalIndex, terminal: original.terminal };
    return this.plan('reversal', reverseCall(original.call.message), at, original.sequence, '');
  }

  /** Over the password-free limit: the first answer is PIN_REQUIRED, then the cardholder types the PIN. */
  pinPayment(): PlannedCall {
    const at = this.posTerminal(0.3);
    const card = this.card(this.rng.pick(this.pinCards));
    const limit = this.campus.noPinPerPaymentFen[card.holder];
    const amountFen = limit + this.rng.int(1, 100) * 100;
    const sequence = this.options.nextSequence();
    return this.plan('pin', authorizeCall(at.terminal.id, sequence, amountFen, cardTap(card.serial)), at, sequence, card.pin);
  }

  /** A shower or a hot-water tap: 0.10 to 3.00 yuan from the small wallet. */
  water(): PlannedCall {
    const at = this.terminalOf('water');
    const card = this.card(this.rng.pick(this.waterCards));
    const sequence = this.options.nextSequence();
    return this.plan('water', waterDebitCall(at.terminal.id, sequence, this.rng.int(1, 30) * 10, cardTap(card.serial)), at, sequence, '');
  }

  /** A settlement swipe, preferring a card whose small wallet ran dry (or was never opened). */
  settle(): PlannedCall {
    const at = this.terminalOf('settlement');
    const card = this.card(this.walletsToSettle.pop() ?? this.rng.pick(this.waterCards));
    const sequence = this.options.nextSequence();
    return this.plan('settle', settleCall(at.terminal.id, sequence, cardTap(card.serial)), at, sequence, '');
  }

  /**
   * A campus QR payment: the cardholder shows the e-card's code and the POS scans it; a meal like a tap's.
   * The code names the card (sealed inside), so no card is drawn here. Throws when no code is left.
   */
  campusQrPayment(): PlannedCall {
    const payload = this.options.nextCampusQr?.();
    if (payload === undefined) throw new Error('no campus QR code left to pay with: each payment needs a fresh code');
    const at = this.posTerminal(CANTEEN_SHARE_OF_TAPS);
    const amountFen = this.mealAmountFen(at.terminal);
    const sequence = this.options.nextSequence();
    return this.plan('campus_qr', authorizeCall(at.terminal.id, sequence, amountFen, campusQr(payload)), at, sequence, '');
  }

  /**
   * An Alipay / WeChat payment code scanned at the POS: a meal like a tap's, paid from the payer's
   * channel account (the code names the channel and the payer). Throws when no code is left.
   */
  thirdPartyPayment(): PlannedCall {
    const code = this.options.nextThirdPartyCode?.();
    if (code === undefined) throw new Error('no third-party payment code left to pay with: each payment needs a fresh code');
    const at = this.posTerminal(CANTEEN_SHARE_OF_TAPS);
    const amountFen = this.mealAmountFen(at.terminal);
    const sequence = this.options.nextSequence();
    return this.plan('third_party', authorizeCall(at.terminal.id, sequence, amountFen, thirdPartyCode(code)), at, sequence, '');
  }

  /** After a PIN_REQUIRED answer: the same call (same sequence number) with the card's PIN, or undefined. */
  pinEntry(planned: PlannedCall): PlannedCall | undefined {
    if (planned.call.rpc !== 'Authorize' || planned.pin === '' || planned.call.message.pin !== '') return undefined;
    const call: PosCall = { rpc: 'Authorize', message: { ...planned.call.message, pin: planned.pin } };
    return { ...planned, kind: 'pin_entry', call };
  }

  /**
   * Tell the planner how a call ended (the answer's label, and anything the caller wants back when the
   * call is retried, such as the answer's bytes).
   */
  completed(planned: PlannedCall, label: string, memo?: unknown): void {
    if (planned.kind === 'tap' || planned.kind === 'pin_entry') {
      // Only recorded answers can be replayed: PIN_REQUIRED is not recorded, nor is a failed call.
      if (label === 'approved' || label.startsWith('declined:')) pushRing(this.recentPayments, { planned, memo });
      if (label === 'approved') pushRing(this.approvedPayments, planned);
    } else if (planned.kind === 'water' && label === 'declined:small_wallet_empty') {
      const card = this.cardIndexOf(planned);
      if (card !== undefined && !this.walletsToSettle.includes(card) && this.walletsToSettle.length < RING_SIZE)
        this.walletsToSettle.push(card);
    }
  }

  private cardIndexOf(planned: PlannedCall): number | undefined {
    const credential = planned.call.message.credential;
    if (!('card' in credential)) return undefined;
    return this.waterCards.find((i) => this.campus.cards[i]?.serial === credential.card.cardSerial);
  }
}

function pushRing<T>(ring: T[], item: T): void {
  if (ring.length >= RING_SIZE) ring.splice(0, 1);
  ring.push(item);
}
