// The numeric answers of the Lua scripts, one `as const` table per script (code -> meaning), and the
// one decoder that maps a code to its meaning or stops loudly. The Lua side declares the same codes
// as named locals at the top of each script (`local ANSWER_APPROVED = 1`, `local REFUSED_KEY_REUSED =
// -1`): the local's name is the meaning in upper case. test/ledger-scripts.test.ts reads every script
// and checks its declared codes equal these tables, both ways (every code Lua can answer is mapped
// here, every code here is one Lua declares). The meaning types are derived from the tables, so a
// wrapper's `Record<Meaning, ...>` or `switch` over them is exhaustive by tsc.
//
// ANSWER_* are the codes a script answers as a result (usually the first field of its '|'-joined
// answer); REFUSED_* are the bare negative numbers it answers when it changed nothing because the
// request contradicts an earlier one.
import type { ScriptName, ScriptReply } from './scripts.js';

/** A script answered something outside its documented set: stop loudly rather than guess. */
export class LedgerInvariantError extends Error {
  override readonly name = 'LedgerInvariantError';
}

export type AnswerTable = Readonly<Record<number, string>>;
/** The meanings of a table: `AnswerOf<typeof AUTHORIZE_ANSWERS>` is 'approved' | 'insufficient_funds' | ... */
export type AnswerOf<T extends AnswerTable> = T[keyof T];

const INTEGER_TEXT = /^-?\d{1,16}$/;

/** The meaning of `code` in `table`; LedgerInvariantError when the table does not know it. */
export function decodeAnswer<T extends AnswerTable>(script: ScriptName, table: T, code: string | number | null | undefined): AnswerOf<T> {
  const value = typeof code === 'number' ? code : INTEGER_TEXT.test(code ?? '') ? Number(code) : Number.NaN;
  if (!Object.hasOwn(table, value)) throw new LedgerInvariantError(`${script}.lua answered unknown code ${JSON.stringify(code)}`);
  return table[value] as AnswerOf<T>;
}

/** A reply (or an array element) that must be a bare number, a code; anything else is a broken script. */
export function numericReply(script: ScriptName, reply: ScriptReply | undefined): number {
  if (typeof reply !== 'number') throw new LedgerInvariantError(`${script}.lua answered ${JSON.stringify(reply)}, expected a code`);
  return reply;
}

/** Every script that checks a request record answers this when the key was used for another request. */
const KEY_REUSED = { [-1]: 'key_reused' } as const;

export const AUTHORIZE_ANSWERS = {
  1: 'approved',
  2: 'insufficient_funds',
  3: 'card_lost',
  4: 'card_frozen',
  5: 'unknown_card',
  6: 'card_replaced',
  7: 'already_reversed',
  8: 'daily_limit_exceeded',
  9: 'card_cancelled',
  10: 'pin_required',
  11: 'qr_invalid',
  12: 'qr_expired',
  13: 'qr_used',
} as const;
export const AUTHORIZE_REFUSALS = { ...KEY_REUSED, [-2]: 'sequence_taken' } as const;

export const REVERSE_ANSWERS = { 1: 'reversed', 2: 'nothing_to_reverse', 3: 'tombstoned' } as const;
export const REVERSE_REFUSALS = { [-1]: 'key_reused', [-2]: 'amount_differs', [-3]: 'other_card', [-4]: 'small_wallet_move' } as const;

export const INQUIRE_ANSWERS = { 1: 'found', 5: 'unknown_card', 6: 'card_replaced' } as const;
export const OPEN_ACCOUNT_ANSWERS = { 1: 'opened', 0: 'already_exists' } as const;
/** terminal-create.lua answers one code. */
export const TERMINAL_CREATE_ANSWERS = { 1: 'created', 0: 'already_registered' } as const;
/** set-status.lua answers {previousStatus, changed, statusNow, remembered} or this 0. */
export const SET_STATUS_ANSWERS = { 0: 'unknown_card' } as const;
/** replace-card.lua answers {code, oldSerial}. */
export const REPLACE_CARD_ANSWERS = { 0: 'unknown_card', 1: 'replaced', 2: 'replayed', 3: 'serial_current' } as const;
export const REPLACE_CARD_REFUSALS = { ...KEY_REUSED, [-2]: 'serial_taken' } as const;
export const SET_LIMITS_ANSWERS = { 1: 'set', 0: 'unknown_card' } as const;
export const ECARD_WATCH_ANSWERS = { 1: 'watched', 0: 'unknown_card' } as const;
export const FOLD_LIMITS_ANSWERS = { 1: 'folded', 0: 'nothing_to_fold' } as const;

export const CLAIM_ANSWERS = { 2: 'claimed_now', 1: 'already_this_cards', 0: 'held_by_another' } as const;
export const RELEASE_ANSWERS = { 1: 'released', 0: 'not_this_cards' } as const;
/** serial-claim.lua: claim and takeover answer CLAIM_ANSWERS; settle and release these. */
export const SERIAL_SETTLE_ANSWERS = { 1: 'settled' } as const;
export const SERIAL_RELEASE_ANSWERS = { 1: 'released', 0: 'kept' } as const;
/** serial-fence.lua: fence answers SERIAL_FENCE_ANSWERS, unfence SERIAL_UNFENCE_ANSWERS. */
export const SERIAL_FENCE_ANSWERS = { 1: 'fenced', 0: 'had_serial' } as const;
export const SERIAL_UNFENCE_ANSWERS = { 1: 'unfenced', 0: 'fence_kept' } as const;

export const ECARD_BINDING_ANSWERS = {
  1: 'done',
  3: 'card_lost',
  4: 'card_frozen',
  5: 'unknown_card',
  9: 'card_cancelled',
  14: 'not_synced',
  15: 'bound_to_other',
  16: 'not_bound_to_user',
} as const;

/** channel-binding.lua's card side (bind, unbind); its payer side answers CLAIM_ANSWERS / RELEASE_ANSWERS. */
export const CHANNEL_BINDING_ANSWERS = {
  1: 'done',
  5: 'unknown_card',
  9: 'card_cancelled',
  15: 'bound_to_other',
  16: 'not_bound_to_payer',
  17: 'ecard_not_bound',
} as const;

export const CHANNEL_PAY_ANSWERS = { 1: 'begun', 2: 'exists', 3: 'finished', 4: 'already_final', 5: 'no_record' } as const;
export const CHANNEL_PAY_REFUSALS = KEY_REUSED;
export const CHANNEL_PAID_ANSWERS = {
  1: 'journalled',
  2: 'already_journalled',
  3: 'not_paid',
  5: 'unknown_card',
  6: 'card_lost',
  7: 'card_frozen',
  8: 'card_cancelled',
  9: 'refunds_pending',
  10: 'fully_refunded',
  11: 'decline_noted',
  12: 'payer_not_bound',
} as const;
/** channel-refund.lua: begin, done, failed (one table: the codes do not overlap). */
export const CHANNEL_REFUND_ANSWERS = {
  1: 'refunded',
  2: 'over_refundable',
  3: 'payment_not_found',
  4: 'other_card',
  5: 'other_merchant',
  7: 'payment_reversed',
  8: 'unknown_card',
  10: 'begun',
  11: 'pending',
  12: 'released',
} as const;
export const CHANNEL_REFUND_REFUSALS = KEY_REUSED;
/** follow-up-lease.lua: take, then release. */
export const LEASE_TAKE_ANSWERS = { 1: 'taken', 0: 'held_by_another' } as const;
export const LEASE_RELEASE_ANSWERS = { 1: 'released', 0: 'not_this_holders' } as const;

export const RECHARGE_ANSWERS = { 1: 'credited', 5: 'unknown_card', 9: 'card_cancelled', 11: 'daily_limit_exceeded' } as const;
export const RECHARGE_REFUSALS = KEY_REUSED;
/** recharge-order.lua: create, then finish. */
export const RECHARGE_ORDER_CREATE_ANSWERS = {
  1: 'created',
  2: 'exists',
  5: 'unknown_card',
  9: 'card_cancelled',
  11: 'daily_limit_exceeded',
  17: 'too_many_open',
} as const;
export const RECHARGE_ORDER_FINISH_ANSWERS = { 1: 'closed', 3: 'paid', 4: 'still_pending', 6: 'unknown_order' } as const;
export const RECHARGE_ORDER_REQUERY_ANSWERS = { 7: 'requeued', 8: 'needs_attention', 3: 'paid', 1: 'closed', 6: 'unknown_order' } as const;
export const RECHARGE_ORDER_REFUSALS = KEY_REUSED;

export const REFUND_ANSWERS = {
  1: 'refunded',
  2: 'over_refundable',
  3: 'payment_not_found',
  4: 'other_card',
  5: 'other_merchant',
  6: 'payment_declined',
  7: 'payment_reversed',
  8: 'unknown_card',
  9: 'card_cancelled',
} as const;
export const REFUND_REFUSALS = KEY_REUSED;

export const ADJUST_ANSWERS = { 1: 'adjusted', 2: 'below_zero', 5: 'unknown_card' } as const;
export const ADJUST_REFUSALS = KEY_REUSED;

/** fee-debit.lua's answers; fee-complete.lua and fee-giveback.lua answer in the same format (and replay them). */
export const FEE_ANSWERS = {
  1: 'delivered',
  2: 'insufficient_funds',
  3: 'card_lost',
  4: 'card_frozen',
  5: 'unknown_card',
  9: 'card_cancelled',
  10: 'pending',
  11: 'given_back',
} as const;
export const FEE_DEBIT_REFUSALS = KEY_REUSED;
export const FEE_COMPLETE_REFUSALS = { [-1]: 'other_request', [-2]: 'no_record', [-3]: 'not_pending' } as const;
export const FEE_GIVEBACK_REFUSALS = { [-1]: 'other_request', [-2]: 'no_record' } as const;
/** fee-requery.lua: the recovery sweep's look at a pending fee found no final word. */
export const FEE_REQUERY_ANSWERS = { 1: 'requeued', 2: 'needs_attention', 3: 'in_attention', 4: 'settled', 5: 'broken' } as const;

export const WATER_DEBIT_ANSWERS = {
  1: 'approved',
  2: 'small_wallet_short',
  3: 'card_lost',
  4: 'card_frozen',
  5: 'unknown_card',
  6: 'card_replaced',
  9: 'card_cancelled',
  11: 'small_wallet_not_opened',
} as const;
export const WATER_DEBIT_REFUSALS = KEY_REUSED;

export const SETTLE_ANSWERS = {
  1: 'approved',
  2: 'insufficient_funds',
  3: 'card_lost',
  4: 'card_frozen',
  5: 'unknown_card',
  6: 'card_replaced',
  9: 'card_cancelled',
} as const;
export const SETTLE_REFUSALS = KEY_REUSED;

export const PASSWORD_ANSWERS = { 1: 'done', 2: 'locked', 3: 'stale', 4: 'busy', 5: 'unknown_card' } as const;

/** take: 1 go, 2 limit, 3 busy; fail and release: 1 settled, 4 (fail) this failure reached the limit. */
export const TERMINAL_PASSWORD_ANSWERS = { 1: 'done', 2: 'limit', 3: 'busy', 4: 'reached_limit' } as const;

export interface ScriptAnswers {
  /** The ANSWER_* codes the script declares. */
  readonly answers: readonly AnswerTable[];
  /** The REFUSED_* codes the script declares. */
  readonly refusals: AnswerTable;
  /** A script that also replays another script's recorded answers declares only its own codes, a subset of these. */
  readonly replays?: ScriptName;
}

/** Every script's answer tables (the test checks each against its Lua source). */
export const SCRIPT_ANSWERS = {
  adjust: { answers: [ADJUST_ANSWERS], refusals: ADJUST_REFUSALS },
  authorize: { answers: [AUTHORIZE_ANSWERS], refusals: AUTHORIZE_REFUSALS },
  'channel-binding': { answers: [CLAIM_ANSWERS, RELEASE_ANSWERS, CHANNEL_BINDING_ANSWERS], refusals: {} },
  'channel-paid': { answers: [CHANNEL_PAID_ANSWERS], refusals: {} },
  'channel-pay': { answers: [CHANNEL_PAY_ANSWERS], refusals: CHANNEL_PAY_REFUSALS },
  'channel-refund': { answers: [CHANNEL_REFUND_ANSWERS], refusals: CHANNEL_REFUND_REFUSALS },
  'claim-id': { answers: [CLAIM_ANSWERS, RELEASE_ANSWERS], refusals: {} },
  'ecard-binding': { answers: [ECARD_BINDING_ANSWERS], refusals: {} },
  'ecard-watch': { answers: [ECARD_WATCH_ANSWERS], refusals: {} },
  'fee-complete': { answers: [FEE_ANSWERS], refusals: FEE_COMPLETE_REFUSALS, replays: 'fee-debit' },
  'fee-debit': { answers: [FEE_ANSWERS], refusals: FEE_DEBIT_REFUSALS },
  'fee-giveback': { answers: [FEE_ANSWERS], refusals: FEE_GIVEBACK_REFUSALS, replays: 'fee-debit' },
  'fee-requery': { answers: [FEE_REQUERY_ANSWERS], refusals: {} },
  'fold-limits': { answers: [FOLD_LIMITS_ANSWERS], refusals: {} },
  'follow-up-lease': { answers: [LEASE_TAKE_ANSWERS, LEASE_RELEASE_ANSWERS], refusals: {} },
  inquire: { answers: [INQUIRE_ANSWERS], refusals: {} },
  'open-account': { answers: [OPEN_ACCOUNT_ANSWERS], refusals: {} },
  password: { answers: [PASSWORD_ANSWERS], refusals: {} },
  recharge: { answers: [RECHARGE_ANSWERS], refusals: RECHARGE_REFUSALS },
  'recharge-order': {
    answers: [RECHARGE_ORDER_CREATE_ANSWERS, RECHARGE_ORDER_FINISH_ANSWERS, RECHARGE_ORDER_REQUERY_ANSWERS],
    refusals: RECHARGE_ORDER_REFUSALS,
  },
  refund: { answers: [REFUND_ANSWERS], refusals: REFUND_REFUSALS },
  'replace-card': { answers: [REPLACE_CARD_ANSWERS], refusals: REPLACE_CARD_REFUSALS },
  reverse: { answers: [REVERSE_ANSWERS], refusals: REVERSE_REFUSALS },
  'serial-claim': { answers: [CLAIM_ANSWERS, SERIAL_SETTLE_ANSWERS, SERIAL_RELEASE_ANSWERS], refusals: {} },
  'serial-fence': { answers: [SERIAL_FENCE_ANSWERS, SERIAL_UNFENCE_ANSWERS], refusals: {} },
  'set-limits': { answers: [SET_LIMITS_ANSWERS], refusals: {} },
  'set-status': { answers: [SET_STATUS_ANSWERS], refusals: {} },
  settle: { answers: [SETTLE_ANSWERS], refusals: SETTLE_REFUSALS },
  'terminal-create': { answers: [TERMINAL_CREATE_ANSWERS], refusals: {} },
  'terminal-password': { answers: [TERMINAL_PASSWORD_ANSWERS], refusals: {} },
  'water-debit': { answers: [WATER_DEBIT_ANSWERS], refusals: WATER_DEBIT_REFUSALS },
} as const satisfies Record<ScriptName, ScriptAnswers>;
