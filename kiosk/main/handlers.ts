// The kiosk's main-process handlers: ONE module, one function per user action. Electron's ipcMain
// registers `invoke` (kiosk/main/electron-main.ts); the tests put the very same module behind the
// bridge of a page in Chromium (test/helpers/kiosk-bridge.ts). Every call is checked here again:
// the sender (the kiosk's own page, top frame, its window) and each argument, whatever the renderer
// checked before. The card on the reader lives in this module's session, never in the renderer:
// a renderer can only act for the card that was tapped last, and only until the session ends.
import { randomUUID } from 'node:crypto';
import {
  CardStatus,
  HolderType,
  Outcome,
  DeclineReason,
  RechargeChannel,
  StatementKind,
  UtilityKind,
} from '../../proto/gen/cardswitch/v1/common.js';
import {
  RechargeOrderStatus,
  type CancelRechargeOrderResponse,
  type Cardholder,
  type IdentifyCardResponse,
  type PayUtilityFeeResponse,
} from '../../proto/gen/cardswitch/v1/kiosk.js';
import type {
  ActionArgs,
  RechargeOrderView,
  ActionName,
  ActionResults,
  CardState,
  CardView,
  ErrorCode,
  Failure,
  FeeReceipt,
  HolderKind,
  KioskEvent,
  KioskSettings,
  RechargeChannelName,
  Result,
  StatementKindName,
} from '../shared/api.js';
import { ACTIONS } from '../shared/api.js';
import { mapSwitchError, type KioskSwitch } from './switch-client.js';

/** Who called: in Electron, from the IpcMainInvokeEvent (sender.id, senderFrame.url, senderFrame === mainFrame). */
export interface SenderInfo {
  readonly webContentsId: number;
  readonly frameUrl: string;
  readonly isMainFrame: boolean;
}

export interface HandlerDeps {
  readonly switch: KioskSwitch;
  readonly settings: KioskSettings;
  /** The renderer's page (file:///.../kiosk/dist/renderer/index.html): the only page that may call. */
  readonly trustedUrl: string;
  /** The id of the kiosk window's webContents; undefined until the window exists (then nothing may call). */
  readonly trustedWebContentsId: () => number | undefined;
  /** Pushes an event to the renderer. */
  readonly emit: (event: KioskEvent) => void;
  /** Development only: the serial the "tap a demo card" button reads. */
  readonly demoCardSerial?: string | undefined;
  /** One line per action: its name and result code, never an argument (no password, no card serial). */
  readonly log?: (line: { readonly action: string; readonly result: string }) => void;
  readonly now?: () => number;
  /**
   * Main forgets the holder after this long without a call (default: the renderer's timeout + 15 s). The
   * renderer calls `stillHere` while the holder touches the screen, so this is only a backstop for a
   * renderer that hung or closed.
   */
  readonly mainIdleMs?: number;
  /** Statement lines per page (default 8: what the screen shows without scrolling). */
  readonly statementPageSize?: number;
}

export const CARD_SERIAL = /^[0-9A-Fa-f]{8,20}$/;
const PIN = /^\d{6}$/;
const PERSON_NUMBER = /^[A-Za-z0-9]{4,20}$/;
const NETWORK_ACCOUNT = /^[A-Za-z0-9_.@-]{4,32}$/;
const BUILDING = /^[\p{Script=Han}A-Za-z0-9-]{1,12}$/u;
const ROOM = /^[A-Za-z0-9-]{1,8}$/;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const ORDER_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Earlier orders of a session whose state may still be asked (a QR taken down can still be paid). */
const MAX_EARLIER_ORDERS = 4;
/** The campus is in China Standard Time (UTC+8, no daylight saving). */
const CAMPUS_OFFSET_MS = 8 * 3_600_000;

interface PendingRecharge {
  readonly channel: RechargeChannelName;
  readonly amountFen: number;
  readonly requestId: string;
  orderId?: string;
  finished: boolean;
  inFlight?: Promise<Result<ActionResults['startRecharge']>>;
}

interface PendingFee {
  readonly fingerprint: string;
  readonly sequence: number;
  inFlight?: Promise<Result<FeeReceipt>>;
}

interface Session {
  readonly gen: number;
  readonly serial: string;
  card: CardView;
  statementPassword?: string;
  statementQuery?: string;
  statementTokens: string[];
  recharge?: PendingRecharge;
  /**
   * Orders of this session whose QR is no longer shown (timed out, cancelled, replaced): one the channel
   * did not close (it did not answer) or that was replaced stays payable until it expires, so the renderer
   * may still ask their state and show a late credit. At most MAX_EARLIER_ORDERS, the oldest dropped first.
   */
  earlierOrders: string[];
  fee?: PendingFee;
}

export interface KioskHandlers {
  /** What ipcMain.handle calls for every action: checks the sender and the action name, then dispatches. */
  invoke(sender: SenderInfo, action: string, arg: unknown): Promise<Result<unknown>>;
  /** The card reader read a serial (keyboard wedge, PC/SC, or the demo tap). */
  cardRead(serial: string): Promise<void>;
  /**
   * Forgets the holder (inactivity in main, the window closing, another card tapped, Exit). A recharge
   * QR still up is closed at its channel first (KioskService/CancelRechargeOrder, as 取消 does): the
   * switch credits it if it was paid meanwhile; whatever the answer, nothing of it reaches the next holder.
   */
  forget(reason: 'timeout' | 'ended'): void;
  /**
   * Resolves once every close main started (forget, a replaced order, 取消) has its answer or gave up, and
   * every Recharge under way has its answer (and the close of an order nobody will see, if it made one).
   */
  closing(): Promise<void>;
  /** For tests and diagnostics: the card number of the holder main acts for, if any. */
  holderCardNumber(): string | undefined;
  dispose(): void;
}

const fail = (error: ErrorCode, extra: Omit<Failure, 'ok' | 'error'> = {}): Failure => ({ ok: false, error, ...extra });
const ok = <T>(value: T): Result<T> => ({ ok: true, value });

/** grpc-js refused the call before sending it: no connection to the switch could be made. */
function neverSent(err: unknown): boolean {
  const details = (err as { details?: unknown } | null)?.details;
  return typeof details === 'string' && details.includes('No connection established');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function isAmount(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}
/** Exactly these keys (optional ones may be missing): nothing else travels through the bridge. */
function hasOnlyKeys(v: Record<string, unknown>, allowed: readonly string[]): boolean {
  return Object.keys(v).every((k) => allowed.includes(k));
}

/** 'YYYY-MM-DD' in campus time: the first millisecond of that day. */
export function campusDayStartMs(day: string): number | undefined {
  const m = DAY.exec(day);
  if (m === null) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const utc = Date.UTC(y, mo - 1, d);
  const check = new Date(utc);
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return undefined;
  return utc - CAMPUS_OFFSET_MS;
}

const STATUS: Readonly<Record<number, CardState>> = {
  [CardStatus.CARD_STATUS_ACTIVE]: 'active',
  [CardStatus.CARD_STATUS_LOST]: 'lost',
  [CardStatus.CARD_STATUS_FROZEN]: 'frozen',
  [CardStatus.CARD_STATUS_CANCELLED]: 'cancelled',
};
const HOLDER: Readonly<Record<number, HolderKind>> = {
  [HolderType.HOLDER_TYPE_STUDENT]: 'student',
  [HolderType.HOLDER_TYPE_STAFF]: 'staff',
};
const KINDS: Readonly<Record<number, StatementKindName>> = {
  [StatementKind.STATEMENT_KIND_PAYMENT]: 'payment',
  [StatementKind.STATEMENT_KIND_RECHARGE]: 'recharge',
  [StatementKind.STATEMENT_KIND_REFUND]: 'refund',
  [StatementKind.STATEMENT_KIND_REVERSAL]: 'reversal',
  [StatementKind.STATEMENT_KIND_WATER]: 'water',
  [StatementKind.STATEMENT_KIND_FEE]: 'fee',
  [StatementKind.STATEMENT_KIND_ADJUSTMENT]: 'adjustment',
  [StatementKind.STATEMENT_KIND_CHANNEL_PAYMENT]: 'channel_payment',
};
const ORDER_STATUS: Readonly<Record<number, 'pending' | 'paid' | 'expired' | 'closed'>> = {
  [RechargeOrderStatus.RECHARGE_ORDER_STATUS_PENDING]: 'pending',
  [RechargeOrderStatus.RECHARGE_ORDER_STATUS_PAID]: 'paid',
  [RechargeOrderStatus.RECHARGE_ORDER_STATUS_EXPIRED]: 'expired',
  [RechargeOrderStatus.RECHARGE_ORDER_STATUS_CLOSED]: 'closed',
};

function cardView(res: IdentifyCardResponse): CardView {
  const c = res.card;
  return {
    cardNumber: c?.cardNumber ?? '',
    maskedName: c?.maskedName ?? '',
    holder: HOLDER[c?.holderType ?? 0] ?? 'unknown',
    status: STATUS[c?.status ?? 0] ?? 'unknown',
    balanceFen: c?.balanceFen ?? 0,
    smallWalletFen: c?.smallWalletFen ?? 0,
    synced: c?.synced ?? false,
    initialPassword: c?.initialPassword ?? false,
  };
}

/** A fee answer that is not approved, as the holder's error. */
function feeFailure(res: PayUtilityFeeResponse): Failure {
  if (res.outcome === Outcome.OUTCOME_PENDING) return fail('fee_pending');
  switch (res.declineReason) {
    case DeclineReason.DECLINE_REASON_WRONG_PIN:
      return fail('wrong_password', { attemptsLeft: res.passwordAttemptsLeft });
    case DeclineReason.DECLINE_REASON_PIN_LOCKED:
      return fail('password_locked');
    case DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS:
      return fail('insufficient_funds');
    case DeclineReason.DECLINE_REASON_CARD_LOST:
      return fail('card_lost');
    case DeclineReason.DECLINE_REASON_CARD_FROZEN:
      return fail('card_frozen');
    case DeclineReason.DECLINE_REASON_CARD_CANCELLED:
      return fail('card_cancelled');
    case DeclineReason.DECLINE_REASON_CHANNEL_DECLINED:
      return fail('fee_failed');
    default:
      return fail('failed');
  }
}

export function createKioskHandlers(deps: HandlerDeps): KioskHandlers {
  const now = deps.now ?? Date.now;
  const mainIdleMs = deps.mainIdleMs ?? deps.settings.idleTimeoutSec * 1000 + 15_000;
  const pageSize = deps.statementPageSize ?? 8;
  let session: Session | undefined;
  let gen = 0;
  let lastSequence = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  /** The card being identified (a tap whose card event is still to come), if any. */
  let reading: Promise<unknown> | undefined;
  /** Closes under way, by order id: a second close of the same order (取消, then Exit) joins the first. */
  const closes = new Map<string, Promise<CancelRechargeOrderResponse>>();
  /** Recharge calls under way: an order they make after its QR can no longer be shown is closed (closing() waits). */
  const recharging = new Set<Promise<unknown>>();

  const log = (action: string, result: string): void => deps.log?.({ action, result });

  /**
   * The ONE way an order whose QR leaves the screen is closed, whoever takes it down (取消, the QR's time,
   * Exit, another card, main's inactivity limit, the window going away): KioskService/CancelRechargeOrder.
   * It does not depend on the session or the renderer, so it finishes after the holder is gone.
   */
  function closeOrder(orderId: string): Promise<CancelRechargeOrderResponse> {
    const running = closes.get(orderId);
    if (running !== undefined) return running;
    const call = deps.switch.cancelRechargeOrder({ orderId });
    closes.set(orderId, call);
    const forgetCall = (): void => {
      if (closes.get(orderId) === call) closes.delete(orderId);
    };
    call.then(forgetCall, forgetCall);
    return call;
  }

  /**
   * The holder left the QR another way than 取消 or its time (no one waits for the answer): closes the order
   * in the background. Paid meanwhile: the switch credits it. Not closed (the channel did not answer): it
   * stays payable until its expiry (the kiosk's QR time) and the switch's settlement loop settles it.
   */
  function closeLeftOrder(s: Session, why: string): void {
    const p = s.recharge;
    if (p?.orderId === undefined || p.finished) return;
    p.finished = true;
    closeInBackground(p.orderId, why);
  }

  function closeInBackground(orderId: string, why: string): void {
    closeOrder(orderId).then(
      (res) => log(`closeOnLeave:${why}`, ORDER_STATUS[res.status] ?? 'pending'),
      (err: unknown) => log(`closeOnLeave:${why}`, mapSwitchError(err).error),
    );
  }

  function touch(): void {
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    idleTimer = undefined;
    if (session === undefined) return;
    idleTimer = setTimeout(() => forget('timeout'), mainIdleMs);
    idleTimer.unref();
  }

  function forget(reason: 'timeout' | 'ended'): void {
    const had = session !== undefined;
    if (session !== undefined) closeLeftOrder(session, reason);
    session = undefined;
    gen++;
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    idleTimer = undefined;
    if (had) deps.emit({ type: 'session_ended', reason });
  }

  /** The kiosk's next fee sequence number: unique per kiosk across restarts (microseconds since 1970). */
  function nextSequence(): number {
    lastSequence = Math.max(lastSequence + 1, now() * 1000);
    return lastSequence;
  }

  /** Runs `work` for the current holder; a result that arrives after the holder changed is dropped. */
  async function forHolder<T>(work: (s: Session) => Promise<Result<T>>): Promise<Result<T>> {
    const s = session;
    if (s === undefined) return fail('no_card');
    let result: Result<T>;
    try {
      result = await work(s);
    } catch (err) {
      const mapped = mapSwitchError(err);
      result = fail(mapped.error, {
        ...(mapped.attemptsLeft === undefined ? {} : { attemptsLeft: mapped.attemptsLeft }),
        ...(mapped.leftTodayFen === undefined ? {} : { leftTodayFen: mapped.leftTodayFen }),
      });
    }
    if (session?.gen !== s.gen) return fail('no_card');
    return result;
  }

  async function noHolder<T>(work: () => Promise<Result<T>>): Promise<Result<T>> {
    try {
      return await work();
    } catch (err) {
      const mapped = mapSwitchError(err);
      return fail(mapped.error, mapped.attemptsLeft === undefined ? {} : { attemptsLeft: mapped.attemptsLeft });
    }
  }

  const tapOf = (s: Session): Cardholder => ({ card: { cardSerial: s.serial } });

  /** The session's current order is no longer the one on screen; its state may still be asked. */
  function retireRecharge(s: Session): void {
    const orderId = s.recharge?.orderId;
    delete s.recharge;
    if (orderId === undefined || s.earlierOrders.includes(orderId)) return;
    s.earlierOrders.push(orderId);
    if (s.earlierOrders.length > MAX_EARLIER_ORDERS) s.earlierOrders.shift();
  }

  async function cardRead(serial: string): Promise<void> {
    if (!CARD_SERIAL.test(serial)) {
      log('cardRead', 'bad_serial');
      return;
    }
    // A new tap replaces whoever stood here before, at once: nothing of theirs stays reachable.
    forget('ended');
    const myGen = gen;
    let res: IdentifyCardResponse;
    const identify = deps.switch.identifyCard({ card: { cardSerial: serial.toUpperCase() } });
    reading = identify;
    const doneReading = (): void => {
      if (reading === identify) reading = undefined;
    };
    identify.then(doneReading, doneReading);
    try {
      res = await identify;
    } catch (err) {
      if (gen !== myGen) return;
      const { error } = mapSwitchError(err);
      log('cardRead', error);
      deps.emit({ type: 'card_error', error });
      return;
    }
    if (gen !== myGen) return;
    gen++;
    session = { gen, serial: serial.toUpperCase(), card: cardView(res), statementTokens: [], earlierOrders: [] };
    touch();
    log('cardRead', 'ok');
    deps.emit({ type: 'card', card: session.card });
  }

  // ---- the actions, one function each; `arg` is unknown until checked here -------------------

  const actions: { readonly [A in ActionName]: (arg: unknown) => Promise<Result<ActionResults[A]>> } = {
    settings: (arg) => Promise.resolve(arg === undefined ? ok(deps.settings) : fail('bad_request')),

    tapDemoCard: async (arg) => {
      if (arg !== undefined) return fail('bad_request');
      if (!deps.settings.dev || deps.demoCardSerial === undefined) return fail('not_dev');
      await cardRead(deps.demoCardSerial);
      return ok(null);
    },

    sync: async (arg) => {
      if (arg !== undefined) return fail('bad_request');
      return forHolder(async (s) => {
        const card = cardView(await deps.switch.identifyCard({ card: { cardSerial: s.serial } }));
        s.card = card;
        return ok(card);
      });
    },

    startRecharge: async (arg) => {
      if (!isRecord(arg) || !hasOnlyKeys(arg, ['channel', 'amountFen'])) return fail('bad_request');
      const channel = arg['channel'];
      if (channel !== 'wechat' && channel !== 'alipay') return fail('bad_request');
      const amountFen = arg['amountFen'];
      if (!isAmount(amountFen, 1, 100_000_000)) return fail('bad_request');
      if (amountFen > deps.settings.rechargeMaxFen[channel]) return fail('over_limit');
      const s = session;
      if (s === undefined) return fail('no_card');
      // A double tap joins the call in flight; a retry after a timeout reuses the request id (the
      // switch answers the same order); a new amount or channel is a new order.
      const p = s.recharge;
      if (p !== undefined && !p.finished && p.channel === channel && p.amountFen === amountFen) {
        if (p.inFlight !== undefined) return p.inFlight;
      } else {
        // A QR still up for another amount or channel is taken down by this one: closed like any other.
        closeLeftOrder(s, 'replaced');
        retireRecharge(s);
        s.recharge = { channel, amountFen, requestId: `k${randomUUID().replaceAll('-', '')}`, finished: false };
      }
      const pending = s.recharge as PendingRecharge;
      const call = forHolder<ActionResults['startRecharge']>(async () => {
        const res = await deps.switch.recharge({
          cardholder: tapOf(s),
          channel: channel === 'wechat' ? RechargeChannel.RECHARGE_CHANNEL_WECHAT : RechargeChannel.RECHARGE_CHANNEL_ALIPAY,
          requestId: pending.requestId,
          amountFen,
          // The order lives as long as the QR is shown, so a code nobody scanned dies with the kiosk's timer.
          qrTimeoutSec: deps.settings.qrTimeoutSec,
        });
        pending.orderId = res.orderId;
        // Made after its QR could no longer be shown: another card was tapped, the session ended, or another
        // amount or channel was asked meanwhile. Nobody will see this QR, so it is closed like one taken down
        // (it would otherwise hold the card's day maximum and one of its few unpaid orders until it expires).
        if (session !== s || s.recharge !== pending) {
          pending.finished = true;
          closeInBackground(res.orderId, 'superseded');
          return fail('order_finished');
        }
        const view: RechargeOrderView = {
          orderId: res.orderId,
          channel,
          amountFen: res.amountFen,
          qrContent: res.qrContent,
          expiresAtMs: res.expiresAtMs,
        };
        return ok(view);
      });
      pending.inFlight = call;
      recharging.add(call);
      try {
        return await call;
      } finally {
        delete pending.inFlight;
        recharging.delete(call);
      }
    },

    rechargeState: async (arg) => {
      if (!isRecord(arg) || !hasOnlyKeys(arg, ['orderId'])) return fail('bad_request');
      const orderId = arg['orderId'];
      if (typeof orderId !== 'string' || !ORDER_ID.test(orderId)) return fail('bad_request');
      // Only an order this holder made here, in this session (the one on screen or an earlier one).
      const s0 = session;
      if (s0 === undefined || (s0.recharge?.orderId !== orderId && !s0.earlierOrders.includes(orderId))) return fail('no_card');
      return forHolder(async (s) => {
        const res = await deps.switch.rechargeOrderState({ orderId });
        const status = ORDER_STATUS[res.status] ?? 'pending';
        if (status !== 'pending' && s.recharge?.orderId === orderId) s.recharge.finished = true;
        if (status === 'paid') s.card = { ...s.card, balanceFen: res.balanceAfterFen };
        return ok({ orderId, status, amountFen: res.amountFen, balanceAfterFen: res.balanceAfterFen });
      });
    },

    cancelRecharge: async (arg) => {
      if (!isRecord(arg) || !hasOnlyKeys(arg, ['orderId'])) return fail('bad_request');
      const orderId = arg['orderId'];
      if (typeof orderId !== 'string' || !ORDER_ID.test(orderId)) return fail('bad_request');
      // Only an order this holder made here, in this session (the one on screen or an earlier one).
      const s0 = session;
      if (s0 === undefined || (s0.recharge?.orderId !== orderId && !s0.earlierOrders.includes(orderId))) return fail('no_card');
      // The next recharge is a new order, whatever the channel says of this one. The switch closes this
      // one at its channel (KioskService/CancelRechargeOrder); if the channel could not close it, it stays
      // payable until it expires, a payment is credited, and the renderer may still ask its state.
      if (s0.recharge?.orderId === orderId) retireRecharge(s0);
      return forHolder(async (s) => {
        const res = await closeOrder(orderId);
        const status = ORDER_STATUS[res.status] ?? 'pending';
        if (status === 'paid') s.card = { ...s.card, balanceFen: res.balanceAfterFen };
        return ok({ orderId, status, amountFen: res.amountFen, balanceAfterFen: res.balanceAfterFen });
      });
    },

    // The holder is touching the screen: nothing but restarting main's own inactivity limit (in invoke).
    stillHere: (arg) => {
      if (arg !== undefined) return Promise.resolve(fail('bad_request'));
      return Promise.resolve(session === undefined ? fail('no_card') : ok(null));
    },

    reportLoss: async (arg) => {
      if (!isRecord(arg) || !hasOnlyKeys(arg, ['personNumber', 'password'])) return fail('bad_request');
      const { personNumber, password } = arg;
      if (personNumber !== undefined) {
        if (typeof personNumber !== 'string' || !PERSON_NUMBER.test(personNumber)) return fail('bad_request');
        if (typeof password !== 'string' || !PIN.test(password)) return fail('bad_request');
        return noHolder(async () => {
          const res = await deps.switch.reportLoss({ cardholder: { personNumber }, password });
          return ok({ alreadyLost: res.displayText !== '挂失成功' });
        });
      }
      if (password !== undefined) return fail('bad_request');
      return forHolder(async (s) => {
        const res = await deps.switch.reportLoss({ cardholder: tapOf(s), password: '' });
        s.card = { ...s.card, status: 'lost' };
        return ok({ alreadyLost: res.displayText !== '挂失成功' });
      });
    },

    cancelLoss: async (arg) => {
      if (!isRecord(arg) || !hasOnlyKeys(arg, ['personNumber', 'password'])) return fail('bad_request');
      const { personNumber, password } = arg;
      if (typeof password !== 'string' || !PIN.test(password)) return fail('bad_request');
      if (personNumber !== undefined) {
        if (typeof personNumber !== 'string' || !PERSON_NUMBER.test(personNumber)) return fail('bad_request');
        return noHolder(async () => {
          const res = await deps.switch.cancelLoss({ cardholder: { personNumber }, password });
          return ok({ wasLost: res.displayText === '解挂成功' });
        });
      }
      return forHolder(async (s) => {
        const res = await deps.switch.cancelLoss({ cardholder: tapOf(s), password });
        s.card = { ...s.card, status: 'active' };
        return ok({ wasLost: res.displayText === '解挂成功' });
      });
    },

    changePassword: async (arg) => {
      if (!isRecord(arg) || !hasOnlyKeys(arg, ['oldPassword', 'newPassword'])) return fail('bad_request');
      const { oldPassword, newPassword } = arg;
      if (typeof oldPassword !== 'string' || !PIN.test(oldPassword)) return fail('bad_request');
      if (typeof newPassword !== 'string' || !PIN.test(newPassword)) return fail('bad_request');
      if (newPassword === oldPassword) return fail('password_same');
      return forHolder(async (s) => {
        try {
          await deps.switch.changePassword({ cardholder: tapOf(s), oldPassword, newPassword });
        } catch (err) {
          // No answer, but the switch may have made the change: "cannot connect, try again" would send the holder
          // to retry old -> new, refused as a wrong password (one of the day's attempts) when it was made.
          if (mapSwitchError(err).error === 'unreachable' && !neverSent(err)) {
            delete s.statementPassword;
            return fail('password_unconfirmed');
          }
          throw err;
        }
        s.card = { ...s.card, initialPassword: false };
        delete s.statementPassword;
        return ok(null);
      });
    },

    statement: async (arg) => {
      if (!isRecord(arg) || !hasOnlyKeys(arg, ['password', 'fromDay', 'toDay', 'page'])) return fail('bad_request');
      const { password, fromDay, toDay, page } = arg;
      if (password !== undefined && (typeof password !== 'string' || !PIN.test(password))) return fail('bad_request');
      if (typeof fromDay !== 'string' || typeof toDay !== 'string') return fail('bad_request');
      const fromMs = campusDayStartMs(fromDay);
      const toStart = campusDayStartMs(toDay);
      if (fromMs === undefined || toStart === undefined || toStart < fromMs || toStart - fromMs > 366 * 86_400_000)
        return fail('bad_request');
      if (!isAmount(page, 0, 1000)) return fail('bad_request');
      const s = session;
      if (s === undefined) return fail('no_card');
      const pin = password ?? s.statementPassword;
      if (pin === undefined) return fail('bad_request');
      const query = `${fromDay}|${toDay}`;
      if (s.statementQuery !== query) {
        s.statementQuery = query;
        s.statementTokens = [''];
      }
      const token = s.statementTokens[page];
      if (token === undefined) return fail('bad_request');
      return forHolder(async () => {
        const res = await deps.switch.statement({
          cardholder: tapOf(s),
          password: pin,
          query: { fromMs, toMs: toStart + 86_400_000, kinds: [], pageSize, pageToken: token },
        });
        s.statementPassword = pin;
        const next = res.page?.nextPageToken ?? '';
        if (next !== '') s.statementTokens[page + 1] = next;
        return ok({
          balanceFen: res.balanceFen,
          hasMore: next !== '',
          lines: (res.page?.lines ?? []).map((l) => ({
            transactionId: l.transactionId,
            kind: KINDS[l.kind] ?? 'other',
            amountFen: l.amountFen,
            balanceAfterFen: l.balanceAfterFen,
            atMs: l.atMs,
            place: l.location !== '' ? l.location : l.merchant,
            description: l.description,
          })),
        });
      });
    },

    payNetworkFee: async (arg) => {
      if (!isRecord(arg) || !hasOnlyKeys(arg, ['account', 'amountFen', 'password'])) return fail('bad_request');
      const { account, amountFen, password } = arg;
      if (typeof account !== 'string' || !NETWORK_ACCOUNT.test(account)) return fail('bad_request');
      if (!isAmount(amountFen, deps.settings.feeMinFen, deps.settings.feeMaxFen)) return fail('bad_request');
      if (typeof password !== 'string' || !PIN.test(password)) return fail('bad_request');
      return payFee(`N|${account}|${amountFen}`, { kind: 'network', amountFen }, (sequence, s) => ({
        cardholder: tapOf(s),
        password,
        sequenceNumber: sequence,
        kind: UtilityKind.UTILITY_KIND_NETWORK,
        networkAccount: account,
        building: '',
        room: '',
        amountFen,
      }));
    },

    payElectricityFee: async (arg) => {
      if (!isRecord(arg) || !hasOnlyKeys(arg, ['building', 'room', 'amountFen', 'password'])) return fail('bad_request');
      const { building, room, amountFen, password } = arg;
      if (typeof building !== 'string' || !BUILDING.test(building)) return fail('bad_request');
      if (typeof room !== 'string' || !ROOM.test(room)) return fail('bad_request');
      if (!isAmount(amountFen, deps.settings.feeMinFen, deps.settings.feeMaxFen)) return fail('bad_request');
      if (typeof password !== 'string' || !PIN.test(password)) return fail('bad_request');
      return payFee(`E|${building}|${room}|${amountFen}`, { kind: 'electricity', amountFen }, (sequence, s) => ({
        cardholder: tapOf(s),
        password,
        sequenceNumber: sequence,
        kind: UtilityKind.UTILITY_KIND_ELECTRICITY,
        networkAccount: '',
        building,
        room,
        amountFen,
      }));
    },

    endSession: (arg) => {
      if (arg !== undefined) return Promise.resolve(fail('bad_request'));
      forget('ended');
      return Promise.resolve(ok(null));
    },
  };

  /**
   * One fee payment: the same payment again (double tap, retry after a timeout, a wrong password
   * typed again) keeps its sequence number, the idempotency key; a decided one frees it.
   */
  async function payFee(
    fingerprint: string,
    what: { readonly kind: 'network' | 'electricity'; readonly amountFen: number },
    request: (sequence: number, s: Session) => Parameters<KioskSwitch['payUtilityFee']>[0],
  ): Promise<Result<FeeReceipt>> {
    const s = session;
    if (s === undefined) return fail('no_card');
    if (s.fee?.fingerprint === fingerprint) {
      if (s.fee.inFlight !== undefined) return s.fee.inFlight;
    } else {
      s.fee = { fingerprint, sequence: nextSequence() };
    }
    const pending = s.fee;
    const call = forHolder(async () => {
      let result: Result<FeeReceipt> | undefined;
      try {
        result = await decideFee(s, pending, request);
        return result;
      } finally {
        // The holder left while the switch decided it (another card, Exit, the inactivity limit): their
        // answer cannot reach their screen any more, so whoever stands here now is told, card tail only.
        if (session !== s) tellEarlierFee(s, what, result);
      }
    });
    pending.inFlight = call;
    try {
      return await call;
    } finally {
      delete pending.inFlight;
    }
  }

  async function decideFee(
    s: Session,
    pending: PendingFee,
    request: (sequence: number, s: Session) => Parameters<KioskSwitch['payUtilityFee']>[0],
  ): Promise<Result<FeeReceipt>> {
    let res: PayUtilityFeeResponse;
    try {
      res = await deps.switch.payUtilityFee(request(pending.sequence, s));
    } catch (err) {
      // No answer (the deadline, the connection lost, the switch's own UNAVAILABLE): the switch may have
      // charged it. "Cannot connect, try later" would send the holder away believing nothing happened (or
      // to pay again after a new tap, under a new number); the retry under this number tells the outcome.
      if (mapSwitchError(err).error === 'unreachable' && !neverSent(err)) return fail('fee_pending');
      throw err;
    }
    if (res.outcome === Outcome.OUTCOME_APPROVED) {
      delete s.fee;
      s.card = { ...s.card, balanceFen: res.balanceAfterFen };
      return ok({ balanceAfterFen: res.balanceAfterFen, transactionId: res.transactionId, providerReceipt: res.providerReceipt });
    }
    const failure = feeFailure(res);
    // Decided: a new payment gets a new number. Wrong password and pending keep it (the switch says so).
    if (!['wrong_password', 'fee_pending', 'password_locked'].includes(failure.error)) delete s.fee;
    if (res.outcome === Outcome.OUTCOME_DECLINED && res.declineReason === DeclineReason.DECLINE_REASON_CHANNEL_DECLINED)
      s.card = { ...s.card, balanceFen: res.balanceAfterFen };
    return failure;
  }

  /** `result` undefined: the call failed without an outcome (told as unconfirmed: the statement says). */
  function tellEarlierFee(
    s: Session,
    what: { readonly kind: 'network' | 'electricity'; readonly amountFen: number },
    result: Result<FeeReceipt> | undefined,
  ): void {
    const outcome =
      result === undefined || (!result.ok && result.error === 'fee_pending') ? 'unconfirmed' : result.ok ? 'paid' : 'not_paid';
    log('earlierFee', outcome);
    const tell = (): void =>
      deps.emit({ type: 'earlier_fee', outcome, kind: what.kind, amountFen: what.amountFen, cardTail: s.card.cardNumber.slice(-4) });
    // A tap being read: after its card event, which would otherwise clear the notice as the next holder's.
    if (reading === undefined) tell();
    else reading.then(tell, tell);
  }

  function trusted(sender: SenderInfo): boolean {
    const id = deps.trustedWebContentsId();
    if (id === undefined || sender.webContentsId !== id || !sender.isMainFrame) return false;
    const url = sender.frameUrl.split('#')[0]?.split('?')[0];
    return url === deps.trustedUrl;
  }

  async function invoke(sender: SenderInfo, action: string, arg: unknown): Promise<Result<unknown>> {
    if (!trusted(sender)) {
      log(action.slice(0, 40), 'forbidden');
      return fail('forbidden');
    }
    if (!(ACTIONS as readonly string[]).includes(action)) {
      log('unknown', 'bad_request');
      return fail('bad_request');
    }
    const name = action as ActionName;
    const result: Result<unknown> = await actions[name](arg);
    touch();
    log(name, result.ok ? 'ok' : result.error);
    return result;
  }

  return {
    invoke,
    cardRead,
    forget,
    closing: async () => {
      while (closes.size > 0 || recharging.size > 0) await Promise.allSettled([...closes.values(), ...recharging]);
    },
    holderCardNumber: () => session?.card.cardNumber,
    dispose: () => {
      if (idleTimer !== undefined) clearTimeout(idleTimer);
      session = undefined;
    },
  };
}

export type { ActionArgs };
