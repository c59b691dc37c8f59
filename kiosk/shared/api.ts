// The kiosk's bridge: what the renderer may ask the main process, one function per user action, and
// what main pushes to the renderer. Types only: main, preload, renderer and the tests share them.
// The card serial and the terminal credential never cross the bridge: main keeps the card on the
// reader in its own session and acts for it; the renderer sees the card's summary only.

export type Lang = 'zh' | 'en';

export type HolderKind = 'student' | 'staff' | 'unknown';
export type CardState = 'active' | 'lost' | 'frozen' | 'cancelled' | 'unknown';

/** What the card home shows (the switch's CardSummary, masked name as the switch masks it). */
export interface CardView {
  readonly cardNumber: string;
  readonly maskedName: string;
  readonly holder: HolderKind;
  readonly status: CardState;
  readonly balanceFen: number;
  readonly smallWalletFen: number;
  readonly synced: boolean;
  readonly initialPassword: boolean;
}

/** Every failure the renderer has a screen or a message for. */
export type ErrorCode =
  | 'unreachable' // the switch does not answer (down, restarting, network)
  | 'history_unavailable' // the switch answers, but the archive of older statement lines does not (PostgreSQL down)
  | 'card_unknown' // not a card of this campus
  | 'card_replaced'
  | 'card_cancelled'
  | 'card_lost'
  | 'card_frozen'
  | 'person_unknown' // no card for that student/staff number
  | 'wrong_password' // attemptsLeft set
  | 'password_locked' // until tomorrow
  | 'password_format' // not 6 digits
  | 'password_same' // new = old
  | 'password_initial' // new = the initial password
  | 'password_changed' // another change of the password was stored first; this one was not made
  | 'password_busy' // too many checks of this card (or on this kiosk) at once: try again in a moment
  | 'password_unconfirmed' // the answer to a password change was lost: it may have been made (try the new one first)
  | 'terminal_password_limit' // this kiosk had too many wrong passwords this hour: another kiosk, the card office, or next hour
  | 'over_limit' // amount over the channel's single maximum or the day's maximum (detail: what is left)
  | 'too_many_orders'
  | 'order_finished'
  | 'channel_unavailable' // WeChat Pay / Alipay did not answer
  | 'insufficient_funds'
  | 'fee_failed' // the provider refused; the money was given back
  | 'fee_pending' // the provider has not answered yet: retry (the same sequence number) to learn the outcome
  | 'no_card' // no card on the reader in this session (timed out, or another card was tapped)
  | 'bad_request' // arguments refused by main (never reaches the switch)
  | 'forbidden' // unexpected sender
  | 'not_dev' // the demo tap outside development
  | 'failed'; // anything else: try again or ask the card office

export interface Failure {
  readonly ok: false;
  readonly error: ErrorCode;
  readonly attemptsLeft?: number;
  /** Yuan still rechargeable today, when error is over_limit because of the day's maximum. */
  readonly leftTodayFen?: number;
}
export type Result<T> = { readonly ok: true; readonly value: T } | Failure;

export type RechargeChannelName = 'wechat' | 'alipay';

export interface RechargeOrderView {
  readonly orderId: string;
  readonly channel: RechargeChannelName;
  readonly amountFen: number;
  readonly qrContent: string;
  readonly expiresAtMs: number;
}

export interface RechargeStateView {
  readonly orderId: string;
  readonly status: 'pending' | 'paid' | 'expired' | 'closed';
  readonly amountFen: number;
  /** When paid. */
  readonly balanceAfterFen: number;
}

export type StatementKindName =
  'payment' | 'recharge' | 'refund' | 'reversal' | 'water' | 'fee' | 'adjustment' | 'channel_payment' | 'other';

export interface StatementLineView {
  readonly transactionId: string;
  readonly kind: StatementKindName;
  readonly amountFen: number;
  readonly balanceAfterFen: number;
  readonly atMs: number;
  readonly place: string;
  readonly description: string;
}

export interface StatementView {
  readonly lines: readonly StatementLineView[];
  readonly balanceFen: number;
  /** There is an older page. */
  readonly hasMore: boolean;
}

export interface FeeReceipt {
  readonly balanceAfterFen: number;
  readonly transactionId: string;
  readonly providerReceipt: string;
}

/** Settings main hands the renderer at start (no secrets). */
export interface KioskSettings {
  readonly dev: boolean;
  readonly location: string;
  readonly idleTimeoutSec: number;
  readonly rechargePresetsFen: readonly number[];
  readonly rechargeMaxFen: Readonly<Record<RechargeChannelName, number>>;
  readonly feeMinFen: number;
  readonly feeMaxFen: number;
  readonly feePresetsFen: readonly number[];
  readonly qrTimeoutSec: number;
}

/** The arguments of each action; `undefined` where the action takes none. */
export interface ActionArgs {
  settings: undefined;
  tapDemoCard: undefined;
  sync: undefined;
  startRecharge: { channel: RechargeChannelName; amountFen: number };
  rechargeState: { orderId: string };
  /** The QR comes down (Cancel, or its time is up): main asks the switch to close the order at its channel. */
  cancelRecharge: { orderId: string };
  /** The holder touched the screen: main restarts its own inactivity limit. Carries nothing. */
  stillHere: undefined;
  reportLoss: { personNumber?: string; password?: string };
  cancelLoss: { personNumber?: string; password: string };
  changePassword: { oldPassword: string; newPassword: string };
  statement: { password?: string; fromDay: string; toDay: string; page: number };
  payNetworkFee: { account: string; amountFen: number; password: string };
  payElectricityFee: { building: string; room: string; amountFen: number; password: string };
  endSession: undefined;
}

export interface ActionResults {
  settings: KioskSettings;
  tapDemoCard: null;
  sync: CardView;
  startRecharge: RechargeOrderView;
  rechargeState: RechargeStateView;
  /** closed / expired: it cannot be paid any more (nothing charged); paid: credited; pending: still payable. */
  cancelRecharge: RechargeStateView;
  stillHere: null;
  reportLoss: { readonly alreadyLost: boolean };
  cancelLoss: { readonly wasLost: boolean };
  changePassword: null;
  statement: StatementView;
  payNetworkFee: FeeReceipt;
  payElectricityFee: FeeReceipt;
  endSession: null;
}

export type ActionName = keyof ActionArgs;

export const ACTIONS: readonly ActionName[] = [
  'settings',
  'tapDemoCard',
  'sync',
  'startRecharge',
  'rechargeState',
  'cancelRecharge',
  'stillHere',
  'reportLoss',
  'cancelLoss',
  'changePassword',
  'statement',
  'payNetworkFee',
  'payElectricityFee',
  'endSession',
];

/** Pushed by main: a card was read (or could not be), or main forgot the holder. */
export type KioskEvent =
  | { readonly type: 'card'; readonly card: CardView }
  | { readonly type: 'card_error'; readonly error: ErrorCode }
  | { readonly type: 'session_ended'; readonly reason: 'timeout' | 'ended' }
  /**
   * A fee answered after its holder left (another card tapped, Exit, the inactivity limit): told to whoever
   * stands at the kiosk now, with the card's last four digits only (no name, no balance). `paid`: charged;
   * `not_paid`: refused, nothing charged; `unconfirmed`: no answer, the holder checks the card's statement.
   */
  | {
      readonly type: 'earlier_fee';
      readonly outcome: 'paid' | 'not_paid' | 'unconfirmed';
      readonly kind: 'network' | 'electricity';
      readonly amountFen: number;
      readonly cardTail: string;
    };

/** window.kiosk, as the preload exposes it. */
export type KioskBridge = {
  readonly [A in ActionName]: ActionArgs[A] extends undefined
    ? () => Promise<Result<ActionResults[A]>>
    : (arg: ActionArgs[A]) => Promise<Result<ActionResults[A]>>;
} & {
  readonly onEvent: (listener: (event: KioskEvent) => void) => void;
};

export const IPC_PREFIX = 'kiosk:';
export const IPC_EVENT = 'kiosk:event';
