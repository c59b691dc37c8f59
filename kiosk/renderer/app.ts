// The kiosk's touch UI: plain TypeScript and DOM, bundled by esbuild (kiosk/scripts/build.ts). One
// thing per screen, zh-CN first with an English switch. Everything it knows of the holder lives in
// `holder` and is dropped on timeout, on exit and when another card is tapped; main forgets too.
import type {
  CardView,
  Failure,
  KioskBridge,
  KioskEvent,
  KioskSettings,
  Lang,
  RechargeOrderView,
  RechargeStateView,
  Result,
  StatementView,
} from '../shared/api.js';
import { errorKey, t, yuan, type MessageKey } from './i18n.js';
import { qrSvg } from './qr.js';

declare global {
  interface Window {
    readonly kiosk: KioskBridge;
  }
}

const api = window.kiosk;
const CAMPUS_OFFSET_MS = 8 * 3_600_000;
const DAY_MS = 86_400_000;
const BUILDINGS = ['学1', '学2', '学3', '学4', '学5', '学6', '学7', '学8', '学9', '研1', '研2', '教工'];

type FieldKind = 'pin' | 'digits' | 'upper' | 'lower' | 'yuan';
interface Field {
  readonly key: string;
  readonly label: MessageKey;
  readonly kind: FieldKind;
  readonly min: number;
  readonly max: number;
  /** A message when the value is not acceptable. */
  readonly check?: (value: string, values: Readonly<Record<string, string>>) => string | undefined;
}
interface Flow {
  readonly id: string;
  readonly title: MessageKey;
  readonly fields: readonly Field[];
  index: number;
  values: Record<string, string>;
  error?: string;
  readonly summary?: () => string[];
  /** Runs with every value entered; returns a field error to show, or nothing when it moved on. */
  readonly submit: (values: Readonly<Record<string, string>>) => Promise<{ field: string; message: string } | undefined>;
  readonly back: () => void;
}

type Screen =
  | { readonly name: 'idle' }
  | { readonly name: 'reading' }
  | { readonly name: 'home' }
  | { readonly name: 'syncDone' }
  | { readonly name: 'rechargeAmount' }
  | { readonly name: 'rechargeChannel'; readonly amountFen: number }
  | { readonly name: 'rechargeWait'; readonly order: RechargeOrderView; readonly until: number }
  | { readonly name: 'rechargeChecking' }
  | { readonly name: 'rechargeStopped'; readonly order: RechargeOrderView }
  | { readonly name: 'rechargeDone'; readonly amountFen: number; readonly balanceFen: number }
  | { readonly name: 'rechargeExpired' }
  | { readonly name: 'rechargeCancelled'; readonly order: RechargeOrderView }
  | { readonly name: 'lossConfirm'; readonly byNumber?: { personNumber: string; password: string } }
  | { readonly name: 'lossDone'; readonly already: boolean; readonly withCard: boolean }
  | { readonly name: 'lossNoCard' }
  | { readonly name: 'cancelLossDone'; readonly wasLost: boolean; readonly withCard: boolean }
  | { readonly name: 'passwordDone' }
  | { readonly name: 'entry'; readonly flow: Flow }
  | { readonly name: 'statement' }
  | { readonly name: 'buildings' }
  | {
      readonly name: 'feeDone';
      readonly what: MessageKey;
      readonly amountFen: number;
      readonly receipt: string;
      readonly balanceFen: number;
    }
  | { readonly name: 'error'; readonly failure: Failure; readonly back: 'home' | 'idle'; readonly retry?: () => void };

interface StatementState {
  fromDay: string;
  toDay: string;
  page: number;
  view?: StatementView;
}

interface Holder {
  card: CardView;
  statement?: StatementState;
  /** Orders whose QR was taken down while still payable: asked about now and then until they expire. */
  lateOrders: RechargeOrderView[];
  /** Late payments credited meanwhile (fen), for the home screen's notice. */
  lateCreditedFen: number;
}

const state: {
  lang: Lang;
  settings: KioskSettings | undefined;
  screen: Screen;
  holder: Holder | undefined;
  /** Bumped whenever the holder changes: an answer for an earlier holder is dropped. */
  gen: number;
  busy: boolean;
  deadline: number;
  /** A fee answered after its holder left: shown to whoever is here until put away or the next card is tapped. */
  earlierFee: Extract<KioskEvent, { type: 'earlier_fee' }> | undefined;
} = {
  lang: 'zh',
  settings: undefined,
  screen: { name: 'idle' },
  holder: undefined,
  gen: 0,
  busy: false,
  deadline: 0,
  earlierFee: undefined,
};

const root = document.getElementById('app') as HTMLElement;

// ---- helpers ------------------------------------------------------------------------------------

type Child = Node | string | undefined | false | null;
interface Props {
  readonly class?: string;
  readonly text?: string;
  readonly attrs?: Readonly<Record<string, string>>;
  readonly onClick?: () => void;
  readonly disabled?: boolean;
}

function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class !== undefined) el.className = props.class;
  if (props.text !== undefined) el.textContent = props.text;
  for (const [k, v] of Object.entries(props.attrs ?? {})) el.setAttribute(k, v);
  if (props.onClick !== undefined) {
    const handler = props.onClick;
    el.addEventListener('click', () => {
      if (state.busy) return;
      handler();
    });
  }
  if (props.disabled === true || (state.busy && tag === 'button')) el.setAttribute('disabled', '');
  for (const c of children) if (c !== undefined && c !== false && c !== null) el.append(c);
  return el;
}

const tr = (key: MessageKey, params: Readonly<Record<string, string | number>> = {}): string => t(state.lang, key, params);

function button(
  label: string,
  onClick: () => void,
  kind: 'primary' | 'secondary' | 'big' | 'key' | 'danger' = 'secondary',
  disabled = false,
): HTMLButtonElement {
  return h('button', { class: `btn btn-${kind}`, text: label, onClick, disabled, attrs: { type: 'button' } });
}

function campusDay(ms: number): string {
  return new Date(ms + CAMPUS_OFFSET_MS).toISOString().slice(0, 10);
}
function campusTime(ms: number): string {
  return new Date(ms + CAMPUS_OFFSET_MS).toISOString().slice(5, 16).replace('T', ' ');
}
/** HH:MM:SS, campus time: a kiosk order lives minutes, so its end is said to the second. */
function campusClock(ms: number): string {
  return new Date(ms + CAMPUS_OFFSET_MS).toISOString().slice(11, 19);
}
function shiftDay(day: string, days: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
}

function failureText(f: Failure): string {
  if (f.error === 'wrong_password') return tr('err_wrong_password', { n: f.attemptsLeft ?? 0 });
  if (f.error === 'over_limit' && f.leftTodayFen !== undefined) return tr('err_over_limit_today', { left: yuan(f.leftTodayFen) });
  return tr(errorKey(f.error));
}

// ---- session ------------------------------------------------------------------------------------

function resetHolder(): void {
  state.holder = undefined;
  state.gen++;
  state.busy = false;
}

function go(screen: Screen): void {
  state.screen = screen;
  render();
}

function goHome(): void {
  if (state.holder === undefined) return goIdle();
  go({ name: 'home' });
}

function goIdle(): void {
  resetHolder();
  go({ name: 'idle' });
}

/** The holder pressed Exit, or the countdown ran out: forget everything here and in main. */
function endSession(): void {
  goIdle();
  void api.endSession();
}

/**
 * Exit. With a recharge QR up, the holder is still here: the QR comes down through the same close as
 * Cancel, and what the close makes true is said before the session ends (paid: the credit; still payable:
 * until when, and not to pay again). Closed, nothing charged: the session ends at once. (Main closes the
 * order on its own too when the session ends some other way.)
 */
function exitPressed(): void {
  const wait = state.screen;
  if (wait.name === 'rechargeWait') return void takeDownQr(wait, state.gen, 'exit');
  endSession();
}

function holderActive(): boolean {
  const s = state.screen.name;
  return !['idle', 'reading', 'rechargeWait', 'rechargeChecking'].includes(s);
}

function touchActivity(): void {
  state.deadline = Date.now() + (state.settings?.idleTimeoutSec ?? 60) * 1000;
}

/**
 * Main keeps its own inactivity limit (the renderer's + 15 s) as a backstop for a renderer that hung or
 * closed; it restarts only when main hears from the renderer. A holder who keeps touching the screen
 * without calling anything (typing on a keypad, reading the statement) must not be signed out by it, so
 * a touch tells main, at most once per STILL_HERE_EVERY_MS (well under the 15 s margin).
 */
const STILL_HERE_EVERY_MS = 5_000;
let stillHereSentMs = 0;

function onHolderActivity(): void {
  touchActivity();
  if (state.holder === undefined || Date.now() - stillHereSentMs < STILL_HERE_EVERY_MS) return;
  stillHereSentMs = Date.now();
  // The answer does not matter: if main forgot the holder, its session_ended event takes us to idle.
  void api.stillHere().catch(() => undefined);
}

/** Runs one call for the current holder, once (buttons are disabled while it runs). */
async function act<T>(call: () => Promise<Result<T>>, then: (value: T) => void, onFail?: (f: Failure) => boolean): Promise<void> {
  if (state.busy) return;
  state.busy = true;
  const gen = state.gen;
  render();
  let res: Result<T>;
  try {
    res = await call();
  } catch {
    res = { ok: false, error: 'unreachable' };
  }
  if (gen !== state.gen) return; // another card was tapped, or the session ended meanwhile
  state.busy = false;
  touchActivity();
  if (res.ok) return then(res.value);
  if (res.error === 'no_card') return goIdle();
  if (onFail?.(res) === true) return render();
  go({ name: 'error', failure: res, back: state.holder === undefined ? 'idle' : 'home', retry: () => void act(call, then, onFail) });
}

function onEvent(event: KioskEvent): void {
  if (event.type === 'card') {
    // A new card: whatever the previous holder had open is dropped before the new one is shown.
    resetHolder();
    state.earlierFee = undefined;
    state.holder = { card: event.card, lateOrders: [], lateCreditedFen: 0 };
    touchActivity();
    go({ name: 'home' });
  } else if (event.type === 'card_error') {
    resetHolder();
    touchActivity();
    go({ name: 'error', failure: { ok: false, error: event.error }, back: 'idle' });
  } else if (event.type === 'earlier_fee') {
    state.earlierFee = event;
    render();
  } else if (state.holder !== undefined) {
    goIdle();
  }
}

// ---- screens ------------------------------------------------------------------------------------

function header(): HTMLElement {
  const active = holderActive();
  const left = Math.max(0, Math.ceil((state.deadline - Date.now()) / 1000));
  return h(
    'header',
    { class: 'bar' },
    h(
      'div',
      { class: 'bar-title' },
      h('span', { class: 'brand', text: tr('appTitle') }),
      h('span', { class: 'where', text: state.settings?.location ?? '' }),
    ),
    active
      ? h('div', { class: 'countdown', text: tr('countdown', { s: left }), attrs: { role: 'timer', 'aria-live': 'off', id: 'countdown' } })
      : undefined,
    h(
      'div',
      { class: 'bar-actions' },
      button(tr('langSwitch'), () => {
        state.lang = state.lang === 'zh' ? 'en' : 'zh';
        render();
      }),
      state.holder !== undefined ? button(tr('exit'), exitPressed, 'danger') : undefined,
    ),
  );
}

function page(title: string, ...body: Child[]): HTMLElement {
  return h('section', { class: 'screen' }, h('h1', { text: title }), ...body);
}

function idleScreen(): HTMLElement {
  return h(
    'section',
    { class: 'screen idle' },
    h('div', { class: 'tap-target', attrs: { 'aria-hidden': 'true' } }, h('div', { class: 'card-icon' })),
    h('h1', { class: 'idle-title', text: tr('idleTitle') }),
    h('p', { class: 'lead', text: tr('idleHint') }),
    h('p', { class: 'services' }, h('strong', { text: tr('idleCan') }), h('br'), tr('idleServices')),
    button(tr('idleLoss'), () => go({ name: 'lossNoCard' }), 'big'),
    state.settings?.dev === true
      ? button(tr('idleDemoTap'), () => {
          go({ name: 'reading' });
          void api.tapDemoCard().then((r) => {
            if (!r.ok) go({ name: 'error', failure: r, back: 'idle' });
          });
        })
      : undefined,
  );
}

function cardFacts(card: CardView): HTMLElement {
  const row = (label: MessageKey, value: string, cls = ''): HTMLElement[] => [
    h('dt', { text: tr(label) }),
    h('dd', { text: value, class: cls }),
  ];
  return h(
    'dl',
    { class: 'facts' },
    ...row('name', `${card.maskedName}（${tr(`holder_${card.holder}`)}）`),
    ...row('cardNumber', card.cardNumber),
    ...row('balance', tr('yuan', { v: yuan(card.balanceFen) }), 'money'),
    ...row('smallWallet', tr('yuan', { v: yuan(card.smallWalletFen) })),
    ...row('status', tr(`status_${card.status}`), `status-${card.status}`),
    ...row('syncState', card.synced ? tr('synced') : tr('notSynced')),
  );
}

function homeScreen(holder: Holder): HTMLElement {
  const card = holder.card;
  const lost = card.status === 'lost';
  const usable = card.status === 'active';
  return page(
    tr('homeTitle'),
    lost ? h('div', { class: 'banner warn', attrs: { role: 'status' }, text: tr('lostBanner') }) : undefined,
    card.status === 'frozen' ? h('div', { class: 'banner warn', attrs: { role: 'status' }, text: tr('frozenBanner') }) : undefined,
    holder.lateCreditedFen > 0
      ? h('div', {
          class: 'banner info',
          attrs: { role: 'status' },
          text: tr('lateCreditBanner', { amount: yuan(holder.lateCreditedFen) }),
        })
      : undefined,
    card.initialPassword && !lost
      ? h(
          'div',
          { class: 'banner info', attrs: { role: 'status' } },
          h('span', { text: tr('initialPasswordNag') }),
          button(tr('changeNow'), startPasswordFlow, 'primary'),
        )
      : undefined,
    cardFacts(card),
    h(
      'nav',
      { class: 'tiles', attrs: { 'aria-label': tr('homeTitle') } },
      button(tr('actSync'), doSync, 'big'),
      button(tr('actRecharge'), () => go({ name: 'rechargeAmount' }), 'big', card.status === 'cancelled'),
      button(tr('actStatement'), startStatementFlow, 'big'),
      button(tr('actNetwork'), startNetworkFlow, 'big', !usable),
      button(tr('actElectricity'), () => go({ name: 'buildings' }), 'big', !usable),
      button(tr('actPassword'), startPasswordFlow, 'big'),
      lost
        ? button(tr('actCancelLoss'), () => startCancelLossFlow(false), 'big')
        : button(tr('actLoss'), () => go({ name: 'lossConfirm' }), 'big', !usable),
    ),
  );
}

function doSync(): void {
  void act(
    () => api.sync(),
    (card) => {
      if (state.holder !== undefined) state.holder.card = card;
      go({ name: 'syncDone' });
    },
  );
}

function resultPage(title: string, body: string, ...extra: Child[]): HTMLElement {
  return h(
    'section',
    { class: 'screen result' },
    h('div', { class: 'result-mark', attrs: { 'aria-hidden': 'true' }, text: '✓' }),
    h('h1', { text: title }),
    h('p', { class: 'lead', text: body }),
    ...extra,
  );
}

// ---- recharge ---------------------------------------------------------------------------------

function rechargeAmountScreen(): HTMLElement {
  const s = state.settings as KioskSettings;
  const max = Math.min(s.rechargeMaxFen.wechat, s.rechargeMaxFen.alipay);
  return page(
    tr('rechargeTitle'),
    h('h2', { text: tr('rechargeChoose') }),
    h(
      'div',
      { class: 'grid3' },
      ...s.rechargePresetsFen
        .filter((f) => f <= max)
        .map((fen) => button(tr('yuan', { v: yuan(fen) }), () => go({ name: 'rechargeChannel', amountFen: fen }), 'big')),
      button(tr('rechargeOther'), () => startCustomAmountFlow(max), 'big'),
    ),
    h('p', { class: 'note', text: tr('rechargeMaxNote', { max: yuan(max) }) }),
    h('div', { class: 'actions' }, button(tr('back'), goHome)),
  );
}

function startCustomAmountFlow(maxFen: number): void {
  startFlow({
    id: 'rechargeCustom',
    title: 'rechargeTitle',
    fields: [{ key: 'amount', label: 'amountYuanLabel', kind: 'yuan', min: 1, max: 6, check: amountCheck(100, maxFen) }],
    submit: (v) => {
      go({ name: 'rechargeChannel', amountFen: Number(v['amount']) * 100 });
      return Promise.resolve(undefined);
    },
    back: () => go({ name: 'rechargeAmount' }),
  });
}

function amountCheck(minFen: number, maxFen: number): (v: string) => string | undefined {
  return (v) => {
    const fen = Number(v) * 100;
    if (fen > maxFen) return tr('amountTooLarge', { max: yuan(maxFen) });
    if (fen < minFen) return tr('amountTooSmall', { min: yuan(minFen) });
    return undefined;
  };
}

function rechargeChannelScreen(amountFen: number): HTMLElement {
  const start = (channel: 'wechat' | 'alipay'): void => {
    void act(
      () => api.startRecharge({ channel, amountFen }),
      (order) => {
        const qrMs = (state.settings?.qrTimeoutSec ?? 180) * 1000;
        const wait: WaitScreen = { name: 'rechargeWait', order, until: Math.min(order.expiresAtMs, Date.now() + qrMs) };
        go(wait);
        void pollOrder(wait, state.gen);
      },
    );
  };
  return page(
    tr('rechargeTitle'),
    h(
      'p',
      { class: 'amount-line' },
      `${tr('rechargeAmount')}：`,
      h('strong', { class: 'money', text: tr('yuan', { v: yuan(amountFen) }) }),
    ),
    h('h2', { text: tr('rechargeChannel') }),
    h(
      'div',
      { class: 'grid2' },
      button(tr('wechat'), () => start('wechat'), 'big'),
      button(tr('alipay'), () => start('alipay'), 'big'),
    ),
    h(
      'div',
      { class: 'actions' },
      button(tr('back'), () => go({ name: 'rechargeAmount' })),
    ),
  );
}

let pollTimer: number | undefined;
/** Late orders asked about at once, and how often (each ask is one RechargeOrderState at the switch). */
const MAX_LATE_ORDERS = 4;
const LATE_CHECK_EVERY_MS = 3_000;
/** How long after its expiry a late order is still asked about (the switch closes it on its next sweep). */
const LATE_CHECK_GRACE_MS = 60_000;
let lateTimer: number | undefined;

type WaitScreen = Extract<Screen, { name: 'rechargeWait' }>;

/** Follows the order through the switch while its QR is up (this very screen), until paid or closed. */
async function pollOrder(wait: WaitScreen, gen: number): Promise<void> {
  if (pollTimer !== undefined) window.clearTimeout(pollTimer);
  pollTimer = undefined;
  if (gen !== state.gen || state.screen !== wait) return;
  if (Date.now() >= wait.until) return takeDownQr(wait, gen, 'timeout');
  const res = await askOrder(wait.order);
  if (gen !== state.gen || state.screen !== wait) return; // cancelled, timed out or another holder meanwhile
  if (res.ok && res.value.status === 'paid') return rechargePaid(res.value);
  if (res.ok && res.value.status !== 'pending') {
    touchActivity();
    return go({ name: 'rechargeExpired' });
  }
  if (!res.ok && res.error === 'no_card') return goIdle();
  // Pending, or the switch did not answer this time: ask again (the QR stays up until its time is up).
  pollTimer = window.setTimeout(() => void pollOrder(wait, gen), 1000);
}

async function askOrder(order: RechargeOrderView): Promise<Result<RechargeStateView>> {
  try {
    return await api.rechargeState({ orderId: order.orderId });
  } catch {
    return { ok: false, error: 'unreachable' };
  }
}

function rechargePaid(paid: RechargeStateView): void {
  if (state.holder !== undefined) state.holder.card = { ...state.holder.card, balanceFen: paid.balanceAfterFen };
  touchActivity();
  go({ name: 'rechargeDone', amountFen: paid.amountFen, balanceFen: paid.balanceAfterFen });
}

/**
 * The QR comes down (its time is up, Cancel, or Exit): main asks the switch to close the order at its
 * channel (KioskService/CancelRechargeOrder), and the kiosk says only what the answer makes true: paid shows
 * the credit; closed or expired means nothing was charged and the QR can no longer be paid (after Exit the
 * session simply ends); still pending (the channel did not close it: Alipay has no trade for a QR nobody
 * scanned, or no answer) says until when a payment is still credited, and the kiosk keeps asking meanwhile.
 */
async function takeDownQr(wait: WaitScreen, gen: number, why: 'cancel' | 'timeout' | 'exit'): Promise<void> {
  if (pollTimer !== undefined) window.clearTimeout(pollTimer);
  pollTimer = undefined;
  go({ name: 'rechargeChecking' });
  let res: Result<RechargeStateView>;
  try {
    res = await api.cancelRecharge({ orderId: wait.order.orderId });
  } catch {
    res = { ok: false, error: 'unreachable' };
  }
  if (gen !== state.gen) return;
  if (res.ok && res.value.status === 'paid') return rechargePaid(res.value);
  if (!res.ok && res.error === 'no_card') return goIdle();
  touchActivity();
  if (res.ok && res.value.status !== 'pending') {
    if (why === 'exit') return endSession();
    return go(why === 'cancel' ? { name: 'rechargeCancelled', order: wait.order } : { name: 'rechargeExpired' });
  }
  const holder = state.holder;
  if (holder !== undefined && !holder.lateOrders.some((o) => o.orderId === wait.order.orderId)) {
    holder.lateOrders = [...holder.lateOrders, wait.order].slice(-MAX_LATE_ORDERS);
  }
  go({ name: 'rechargeStopped', order: wait.order });
  scheduleLateCheck(gen);
}

function scheduleLateCheck(gen: number): void {
  if (lateTimer !== undefined) window.clearTimeout(lateTimer);
  lateTimer = window.setTimeout(() => void checkLateOrders(gen), LATE_CHECK_EVERY_MS);
}

/** Asks about the orders whose QR came down while payable; a late payment updates the balance shown. */
async function checkLateOrders(gen: number): Promise<void> {
  lateTimer = undefined;
  for (const order of state.holder?.lateOrders ?? []) {
    if (gen !== state.gen) return;
    const res = await askOrder(order);
    const holder = state.holder;
    if (gen !== state.gen || holder === undefined) return;
    if (!res.ok && res.error === 'no_card') return; // main forgot the holder: its event takes us to idle
    // Still pending: asked again, until a while after it expires (the switch's own loop settles it then).
    const open = !res.ok || res.value.status === 'pending';
    if (open && Date.now() < order.expiresAtMs + LATE_CHECK_GRACE_MS) continue;
    holder.lateOrders = holder.lateOrders.filter((o) => o.orderId !== order.orderId);
    const shown = state.screen.name === 'rechargeStopped' && state.screen.order.orderId === order.orderId;
    if (res.ok && res.value.status === 'paid') {
      if (shown) return rechargePaid(res.value);
      holder.card = { ...holder.card, balanceFen: res.value.balanceAfterFen };
      holder.lateCreditedFen += res.value.amountFen;
      if (state.screen.name === 'home' && !state.busy) render();
    } else if (shown && res.ok) {
      go({ name: 'rechargeExpired' });
    }
  }
  if (gen === state.gen && (state.holder?.lateOrders.length ?? 0) > 0) scheduleLateCheck(gen);
}

function rechargeWaitScreen(order: RechargeOrderView, until: number): HTMLElement {
  const channel = tr(order.channel);
  const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
  return page(
    tr('rechargeTitle'),
    h(
      'p',
      { class: 'amount-line' },
      `${tr('rechargeAmount')}：`,
      h('strong', { class: 'money', text: tr('yuan', { v: yuan(order.amountFen) }) }),
    ),
    h('p', { class: 'lead', text: tr('rechargeScan', { channel }) }),
    h('div', { class: 'qr' }, qrSvg(order.qrContent, tr('rechargeScan', { channel }))),
    h('p', { class: 'waiting', attrs: { role: 'status' }, text: tr('rechargeWaiting') }),
    h('p', { class: 'note', attrs: { id: 'qr-left' }, text: tr('rechargeQrLeft', { s: left }) }),
    h('p', { class: 'note' }, `${tr('rechargeOrder')}：`, h('span', { class: 'order-id', text: order.orderId })),
    h(
      'div',
      { class: 'actions' },
      button(tr('cancel'), () => {
        const wait = state.screen;
        if (wait.name === 'rechargeWait' && wait.order.orderId === order.orderId) void takeDownQr(wait, state.gen, 'cancel');
      }),
    ),
  );
}

// ---- loss, password ---------------------------------------------------------------------------

function lossConfirmScreen(byNumber: { personNumber: string; password: string } | undefined): HTMLElement {
  const card = state.holder?.card;
  const report = (): void => {
    void act(
      () => api.reportLoss(byNumber === undefined ? {} : byNumber),
      (r) => {
        if (state.holder !== undefined) state.holder.card = { ...state.holder.card, status: 'lost' };
        go({ name: 'lossDone', already: r.alreadyLost, withCard: byNumber === undefined });
      },
    );
  };
  return page(
    tr('lossTitle'),
    h('h2', { text: tr('lossConfirmTitle') }),
    h('p', { class: 'lead', text: tr('lossConfirmBody', { card: card?.cardNumber ?? byNumber?.personNumber ?? '' }) }),
    h(
      'div',
      { class: 'actions' },
      button(tr('cancel'), byNumber === undefined ? goHome : goIdle),
      button(tr('lossConfirmBtn'), report, 'danger'),
    ),
  );
}

function lossNoCardScreen(): HTMLElement {
  return page(
    tr('lossNoCardTitle'),
    h('p', { class: 'lead', text: tr('lossNoCardChoose') }),
    h(
      'div',
      { class: 'grid2' },
      button(tr('actLoss'), startLossByNumberFlow, 'big'),
      button(tr('actCancelLoss'), () => startCancelLossFlow(true), 'big'),
    ),
    h('div', { class: 'actions' }, button(tr('back'), goIdle)),
  );
}

const PIN_FIELD = (key: string, label: MessageKey): Field => ({ key, label, kind: 'pin', min: 6, max: 6 });
const PERSON_FIELD: Field = { key: 'personNumber', label: 'personNumber', kind: 'upper', min: 4, max: 20 };

function pinError(f: Failure, field: string): { field: string; message: string } | undefined {
  if (f.error === 'wrong_password' || f.error === 'password_format') return { field, message: failureText(f) };
  if (f.error === 'person_unknown') return { field: 'personNumber', message: failureText(f) };
  return undefined;
}

/** Runs a call from a flow: a field's error goes back to its field, anything else to the error screen. */
function flowCall<T>(
  call: () => Promise<Result<T>>,
  then: (value: T) => void,
  pinField: string,
): Promise<{ field: string; message: string } | undefined> {
  return new Promise((resolve) => {
    void act(
      call,
      (v) => {
        resolve(undefined);
        then(v);
      },
      (f) => {
        const e =
          pinError(f, pinField) ??
          (f.error === 'password_same' || f.error === 'password_initial' ? { field: 'newPassword', message: failureText(f) } : undefined);
        resolve(e);
        return e !== undefined;
      },
    ).then(() => resolve(undefined));
  });
}

function startLossByNumberFlow(): void {
  startFlow({
    id: 'lossByNumber',
    title: 'lossNoCardTitle',
    fields: [PERSON_FIELD, PIN_FIELD('password', 'password')],
    submit: (v) => {
      go({ name: 'lossConfirm', byNumber: { personNumber: v['personNumber'] ?? '', password: v['password'] ?? '' } });
      return Promise.resolve(undefined);
    },
    back: () => go({ name: 'lossNoCard' }),
  });
}

function startCancelLossFlow(byNumber: boolean): void {
  startFlow({
    id: byNumber ? 'cancelLossByNumber' : 'cancelLoss',
    title: 'cancelLossTitle',
    fields: byNumber ? [PERSON_FIELD, PIN_FIELD('password', 'password')] : [PIN_FIELD('password', 'password')],
    submit: (v) =>
      flowCall(
        () =>
          api.cancelLoss(
            byNumber ? { personNumber: v['personNumber'] ?? '', password: v['password'] ?? '' } : { password: v['password'] ?? '' },
          ),
        (r) => {
          if (state.holder !== undefined) state.holder.card = { ...state.holder.card, status: 'active' };
          go({ name: 'cancelLossDone', wasLost: r.wasLost, withCard: !byNumber });
        },
        'password',
      ),
    back: byNumber ? () => go({ name: 'lossNoCard' }) : goHome,
  });
}

function startPasswordFlow(): void {
  startFlow({
    id: 'password',
    title: 'passwordTitle',
    fields: [
      PIN_FIELD('oldPassword', 'oldPassword'),
      PIN_FIELD('newPassword', 'newPassword'),
      { ...PIN_FIELD('again', 'newPasswordAgain'), check: (v, all) => (v === all['newPassword'] ? undefined : tr('passwordMismatch')) },
    ],
    submit: (v) =>
      flowCall(
        () => api.changePassword({ oldPassword: v['oldPassword'] ?? '', newPassword: v['newPassword'] ?? '' }),
        () => {
          if (state.holder !== undefined) state.holder.card = { ...state.holder.card, initialPassword: false };
          go({ name: 'passwordDone' });
        },
        'oldPassword',
      ),
    back: goHome,
  });
}

// ---- statement ----------------------------------------------------------------------------------

function startStatementFlow(): void {
  const today = campusDay(Date.now());
  startFlow({
    id: 'statementPin',
    title: 'statementTitle',
    fields: [PIN_FIELD('password', 'password')],
    submit: (v) => {
      const st: StatementState = { fromDay: shiftDay(today, -29), toDay: today, page: 0 };
      return flowCall(
        () => api.statement({ password: v['password'] ?? '', fromDay: st.fromDay, toDay: st.toDay, page: 0 }),
        (view) => {
          if (state.holder === undefined) return;
          state.holder.statement = { ...st, view };
          go({ name: 'statement' });
        },
        'password',
      );
    },
    back: goHome,
  });
}

function loadStatement(fromDay: string, toDay: string, pageNo: number): void {
  void act(
    () => api.statement({ fromDay, toDay, page: pageNo }),
    (view) => {
      if (state.holder === undefined) return;
      state.holder.statement = { fromDay, toDay, page: pageNo, view };
      go({ name: 'statement' });
    },
  );
}

function statementScreen(st: StatementState): HTMLElement {
  const today = campusDay(Date.now());
  const view = st.view;
  const preset = (key: MessageKey, days: number): HTMLButtonElement =>
    button(tr(key), () => loadStatement(shiftDay(today, -(days - 1)), today, 0));
  const rows = (view?.lines ?? []).map((l) =>
    h(
      'tr',
      {},
      h('td', { text: campusTime(l.atMs) }),
      h(
        'td',
        {},
        h('div', { text: state.lang === 'zh' && l.description !== '' ? l.description : tr(`kind_${l.kind}`) }),
        h('div', { class: 'sub', text: l.place }),
      ),
      h('td', { class: `num ${l.amountFen < 0 ? 'out' : 'in'}`, text: `${l.amountFen > 0 ? '+' : ''}${yuan(l.amountFen)}` }),
      h('td', { class: 'num', text: yuan(l.balanceAfterFen) }),
    ),
  );
  return page(
    tr('statementTitle'),
    h(
      'p',
      { class: 'amount-line' },
      `${tr('balance')}：`,
      h('strong', { class: 'money', text: tr('yuan', { v: yuan(view?.balanceFen ?? 0) }) }),
    ),
    h(
      'div',
      { class: 'range', attrs: { role: 'group', 'aria-label': tr('statementRange') } },
      preset('last7', 7),
      preset('last30', 30),
      preset('last90', 90),
    ),
    h(
      'div',
      { class: 'range' },
      h('span', { class: 'range-label', text: tr('from') }),
      button('◀', () => loadStatement(shiftDay(st.fromDay, -1), st.toDay, 0), 'key'),
      h('strong', { class: 'day', text: st.fromDay, attrs: { 'aria-label': `${tr('from')} ${st.fromDay}` } }),
      button('▶', () => loadStatement(shiftDay(st.fromDay, 1), st.toDay, 0), 'key', st.fromDay >= st.toDay),
    ),
    h(
      'div',
      { class: 'range' },
      h('span', { class: 'range-label', text: tr('to') }),
      button('◀', () => loadStatement(st.fromDay, shiftDay(st.toDay, -1), 0), 'key', st.toDay <= st.fromDay),
      h('strong', { class: 'day', text: st.toDay, attrs: { 'aria-label': `${tr('to')} ${st.toDay}` } }),
      button('▶', () => loadStatement(st.fromDay, shiftDay(st.toDay, 1), 0), 'key', st.toDay >= today),
    ),
    rows.length === 0
      ? h('p', { class: 'lead', text: tr('statementEmpty') })
      : h(
          'table',
          { class: 'statement' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { text: tr('colTime') }),
              h('th', { text: tr('colWhat') }),
              h('th', { text: tr('colAmount') }),
              h('th', { text: tr('colBalance') }),
            ),
          ),
          h('tbody', {}, ...rows),
        ),
    h(
      'div',
      { class: 'actions' },
      button(tr('prevPage'), () => loadStatement(st.fromDay, st.toDay, st.page - 1), 'secondary', st.page === 0),
      h('span', { class: 'page-no', text: tr('page', { n: st.page + 1 }) }),
      button(tr('nextPage'), () => loadStatement(st.fromDay, st.toDay, st.page + 1), 'secondary', view?.hasMore !== true),
    ),
    h('div', { class: 'actions' }, button(tr('backHome'), goHome)),
  );
}

// ---- fees -----------------------------------------------------------------------------------------

function feeAmountField(): Field {
  const s = state.settings as KioskSettings;
  return { key: 'amount', label: 'feeAmount', kind: 'yuan', min: 1, max: 3, check: amountCheck(s.feeMinFen, s.feeMaxFen) };
}

function startNetworkFlow(): void {
  startFlow({
    id: 'network',
    title: 'networkTitle',
    fields: [
      { key: 'account', label: 'networkAccount', kind: 'lower', min: 4, max: 32 },
      feeAmountField(),
      PIN_FIELD('password', 'password'),
    ],
    summary: () => [],
    submit: (v) => {
      const amountFen = Number(v['amount']) * 100;
      return flowCall(
        () => api.payNetworkFee({ account: v['account'] ?? '', amountFen, password: v['password'] ?? '' }),
        (r) => feeDone('networkTitle', amountFen, r.providerReceipt, r.balanceAfterFen),
        'password',
      );
    },
    back: goHome,
  });
}

function buildingsScreen(): HTMLElement {
  return page(
    tr('electricityTitle'),
    h('h2', { text: tr('chooseBuilding') }),
    h('div', { class: 'grid3' }, ...BUILDINGS.map((b) => button(b, () => startElectricityFlow(b), 'big'))),
    h('div', { class: 'actions' }, button(tr('back'), goHome)),
  );
}

function startElectricityFlow(building: string): void {
  startFlow({
    id: 'electricity',
    title: 'electricityTitle',
    fields: [{ key: 'room', label: 'room', kind: 'digits', min: 1, max: 6 }, feeAmountField(), PIN_FIELD('password', 'password')],
    summary: () => [`${tr('building')}：${building}`],
    submit: (v) => {
      const amountFen = Number(v['amount']) * 100;
      return flowCall(
        () => api.payElectricityFee({ building, room: v['room'] ?? '', amountFen, password: v['password'] ?? '' }),
        (r) => feeDone('electricityTitle', amountFen, r.providerReceipt, r.balanceAfterFen),
        'password',
      );
    },
    back: () => go({ name: 'buildings' }),
  });
}

function feeDone(what: MessageKey, amountFen: number, receipt: string, balanceFen: number): void {
  if (state.holder !== undefined) state.holder.card = { ...state.holder.card, balanceFen };
  go({ name: 'feeDone', what, amountFen, receipt, balanceFen });
}

// ---- entry flows (one field per screen, with an on-screen keypad) -------------------------------

function startFlow(flow: Omit<Flow, 'index' | 'values'>): void {
  go({ name: 'entry', flow: { ...flow, index: 0, values: {} } });
}

const LETTERS_UPPER = 'QWERTYUIOPASDFGHJKLZXCVBNM'.split('');
const LETTERS_LOWER = 'qwertyuiopasdfghjklzxcvbnm'.split('');

function keypad(field: Field, value: string, set: (v: string) => void): HTMLElement {
  const add = (k: string) => (): void => {
    if (value.length < field.max) set(value + k);
  };
  const digits = ['1', '2', '3', '4', '5', '6', '7', '8', '9'].map((d) => button(d, add(d), 'key'));
  const pad = h(
    'div',
    { class: 'keypad' },
    ...digits,
    button(tr('clear'), () => set(''), 'key'),
    button('0', add('0'), 'key'),
    button(tr('del'), () => set(value.slice(0, -1)), 'key'),
  );
  if (field.kind === 'upper' || field.kind === 'lower') {
    const letters = field.kind === 'upper' ? LETTERS_UPPER : [...LETTERS_LOWER, '.', '_', '@', '-'];
    return h('div', { class: 'keyboard' }, pad, h('div', { class: 'letters' }, ...letters.map((l) => button(l, add(l), 'key'))));
  }
  return pad;
}

function entryScreen(flow: Flow): HTMLElement {
  const field = flow.fields[flow.index] as Field;
  const value = flow.values[field.key] ?? '';
  const shown = field.kind === 'pin' ? '●'.repeat(value.length) : value;
  const set = (v: string): void => {
    flow.values[field.key] = field.kind === 'yuan' ? v.replace(/^0+/, '') : v;
    delete flow.error;
    render();
  };
  const next = (): void => {
    const v = flow.values[field.key] ?? '';
    let error: string | undefined;
    if (v.length === 0) error = tr('fieldRequired', { label: tr(field.label) });
    else if (v.length < field.min) error = tr('fieldInvalid', { label: tr(field.label) });
    else error = field.check?.(v, flow.values);
    if (error !== undefined) {
      flow.error = error;
      if (field.kind === 'pin') flow.values[field.key] = '';
      return render();
    }
    if (flow.index < flow.fields.length - 1) {
      flow.index++;
      return render();
    }
    void flow.submit({ ...flow.values }).then((fieldError) => {
      if (fieldError === undefined || state.screen.name !== 'entry' || state.screen.flow !== flow) return;
      const i = flow.fields.findIndex((f) => f.key === fieldError.field);
      flow.index = i < 0 ? flow.index : i;
      // Passwords are typed again (from the field in error on), never kept on screen after a refusal.
      for (const f of flow.fields.slice(flow.index)) if (f.kind === 'pin') flow.values[f.key] = '';
      flow.error = fieldError.message;
      render();
    });
  };
  const back = (): void => {
    delete flow.error;
    if (flow.index > 0) {
      flow.index--;
      return render();
    }
    flow.back();
  };
  const last = flow.index === flow.fields.length - 1;
  const fieldId = `field-${field.key}`;
  const display = h('output', {
    class: `field-value${flow.error !== undefined ? ' has-error' : ''}`,
    text: field.kind === 'yuan' && shown !== '' ? tr('yuan', { v: shown }) : shown,
    attrs: {
      id: fieldId,
      'aria-label': field.kind === 'pin' ? `${tr(field.label)}：${tr('entered', { n: value.length })}` : tr(field.label),
    },
  });
  return page(
    tr(flow.title),
    flow.error !== undefined
      ? h(
          'div',
          { class: 'error-summary', attrs: { role: 'alert' } },
          h('h2', { text: tr('errorSummary') }),
          h('a', { text: flow.error, attrs: { href: `#${fieldId}` } }),
        )
      : undefined,
    ...(flow.summary?.() ?? []).map((line) => h('p', { class: 'amount-line', text: line })),
    ...flow.fields
      .slice(0, flow.index)
      .filter((f) => f.kind !== 'pin')
      .map((f) =>
        h('p', {
          class: 'note',
          text: `${tr(f.label)}：${f.kind === 'yuan' ? tr('yuan', { v: yuan(Number(flow.values[f.key] ?? '0') * 100) }) : (flow.values[f.key] ?? '')}`,
        }),
      ),
    h('label', { class: 'field-label', text: tr(field.label), attrs: { for: fieldId } }),
    flow.error !== undefined ? h('p', { class: 'field-error', text: flow.error }) : undefined,
    display,
    field.kind === 'pin' ? h('p', { class: 'note', text: tr('entered', { n: value.length }) }) : undefined,
    keypad(field, value, set),
    h('div', { class: 'actions' }, button(tr('back'), back), button(last ? tr('confirm') : tr('next'), next, 'primary')),
  );
}

// ---- error ----------------------------------------------------------------------------------------

function errorScreen(s: Extract<Screen, { name: 'error' }>): HTMLElement {
  const retryable =
    ['unreachable', 'history_unavailable', 'channel_unavailable', 'fee_pending', 'password_busy', 'failed'].includes(s.failure.error) &&
    s.retry !== undefined;
  const back = s.back === 'home' && state.holder !== undefined ? goHome : goIdle;
  return h(
    'section',
    { class: 'screen result error' },
    h('div', { class: 'result-mark bad', attrs: { 'aria-hidden': 'true' }, text: '!' }),
    // A fee or a password change not yet confirmed may have been made: "that did not work" would not be true.
    h('h1', { text: tr(['fee_pending', 'password_unconfirmed'].includes(s.failure.error) ? 'pendingTitle' : 'errorTitle') }),
    h('p', { class: 'lead', attrs: { role: 'alert' }, text: failureText(s.failure) }),
    h(
      'div',
      { class: 'actions' },
      retryable && s.retry !== undefined ? button(tr('retry'), s.retry, 'primary') : undefined,
      button(s.back === 'home' && state.holder !== undefined ? tr('backHome') : tr('backIdle'), back),
    ),
  );
}

// ---- render ---------------------------------------------------------------------------------------

function screenBody(): HTMLElement {
  const s = state.screen;
  const holder = state.holder;
  const needsHolder = !['idle', 'reading', 'lossNoCard', 'error', 'entry', 'lossConfirm', 'lossDone', 'cancelLossDone'].includes(s.name);
  if (needsHolder && holder === undefined) return idleScreen();
  switch (s.name) {
    case 'idle':
      return idleScreen();
    case 'reading':
      return page(tr('reading'));
    case 'home':
      return homeScreen(holder as Holder);
    case 'syncDone':
      return h(
        'div',
        {},
        resultPage(tr('syncDone'), tr('syncDoneBody')),
        cardFacts((holder as Holder).card),
        h('div', { class: 'actions' }, button(tr('backHome'), goHome, 'primary')),
      );
    case 'rechargeAmount':
      return rechargeAmountScreen();
    case 'rechargeChannel':
      return rechargeChannelScreen(s.amountFen);
    case 'rechargeWait':
      return rechargeWaitScreen(s.order, s.until);
    case 'rechargeDone':
      return resultPage(
        tr('rechargeDoneTitle'),
        tr('rechargeDoneBody', { amount: yuan(s.amountFen) }),
        h(
          'p',
          { class: 'amount-line' },
          `${tr('newBalance')}：`,
          h('strong', { class: 'money', attrs: { 'data-testid': 'new-balance' }, text: tr('yuan', { v: yuan(s.balanceFen) }) }),
        ),
        h('div', { class: 'actions' }, button(tr('backHome'), goHome, 'primary')),
      );
    case 'rechargeChecking':
      return page(tr('rechargeTitle'), h('p', { class: 'waiting', attrs: { role: 'status' }, text: tr('rechargeChecking') }));
    case 'rechargeStopped':
      return h(
        'section',
        { class: 'screen result' },
        h('h1', { text: tr('rechargeStoppedTitle') }),
        h('p', { class: 'lead', text: tr('rechargeStoppedBody', { until: campusClock(s.order.expiresAtMs) }) }),
        h('p', { class: 'note', text: `${tr('rechargeAmount')}：${tr('yuan', { v: yuan(s.order.amountFen) })}` }),
        h('p', { class: 'note' }, `${tr('rechargeOrder')}：`, h('span', { class: 'order-id', text: s.order.orderId })),
        h('div', { class: 'actions' }, button(tr('backHome'), goHome, 'primary')),
      );
    case 'rechargeCancelled':
      return h(
        'section',
        { class: 'screen result' },
        h('h1', { text: tr('rechargeCancelledTitle') }),
        h('p', { class: 'lead', text: tr('rechargeCancelledBody') }),
        h('p', { class: 'note', text: `${tr('rechargeAmount')}：${tr('yuan', { v: yuan(s.order.amountFen) })}` }),
        h('p', { class: 'note' }, `${tr('rechargeOrder')}：`, h('span', { class: 'order-id', text: s.order.orderId })),
        h('div', { class: 'actions' }, button(tr('backHome'), goHome, 'primary')),
      );
    case 'rechargeExpired':
      return h(
        'section',
        { class: 'screen result' },
        h('h1', { text: tr('rechargeExpiredTitle') }),
        h('p', { class: 'lead', text: tr('rechargeExpiredBody') }),
        h('div', { class: 'actions' }, button(tr('backHome'), goHome, 'primary')),
      );
    case 'lossConfirm':
      return lossConfirmScreen(s.byNumber);
    case 'lossDone':
      return resultPage(
        s.already ? tr('lossAlready') : tr('lossDone'),
        tr('lossDoneBody'),
        h('div', { class: 'actions' }, button(s.withCard ? tr('backHome') : tr('done'), s.withCard ? goHome : goIdle, 'primary')),
      );
    case 'lossNoCard':
      return lossNoCardScreen();
    case 'cancelLossDone':
      return resultPage(
        s.wasLost ? tr('cancelLossDone') : tr('cancelLossNotLost'),
        tr('cancelLossDoneBody'),
        h('div', { class: 'actions' }, button(s.withCard ? tr('backHome') : tr('done'), s.withCard ? goHome : goIdle, 'primary')),
      );
    case 'passwordDone':
      return resultPage(
        tr('passwordDone'),
        tr('passwordDoneBody'),
        h('div', { class: 'actions' }, button(tr('backHome'), goHome, 'primary')),
      );
    case 'entry':
      return entryScreen(s.flow);
    case 'statement':
      return holder?.statement === undefined ? homeScreen(holder as Holder) : statementScreen(holder.statement);
    case 'buildings':
      return buildingsScreen();
    case 'feeDone':
      return resultPage(
        tr('feeDone'),
        tr('feeDoneBody', { what: tr(s.what), amount: yuan(s.amountFen), receipt: s.receipt }),
        h(
          'p',
          { class: 'amount-line' },
          `${tr('newBalance')}：`,
          h('strong', { class: 'money', text: tr('yuan', { v: yuan(s.balanceFen) }) }),
        ),
        h('div', { class: 'actions' }, button(tr('backHome'), goHome, 'primary')),
      );
    case 'error':
      return errorScreen(s);
  }
}

/** The result of a fee its holder left before it was answered (card tail, kind and amount only). */
function earlierFeeNotice(): HTMLElement | undefined {
  const e = state.earlierFee;
  if (e === undefined) return undefined;
  return h(
    'div',
    {
      class: `banner ${e.outcome === 'paid' || e.outcome === 'not_paid' ? 'info' : 'warn'}`,
      attrs: { role: 'status', 'data-testid': 'earlier-fee' },
    },
    h('span', {
      text: tr(`earlierFee_${e.outcome}`, {
        tail: e.cardTail,
        what: tr(e.kind === 'network' ? 'actNetwork' : 'actElectricity'),
        amount: yuan(e.amountFen),
      }),
    }),
    button(
      tr('gotIt'),
      () => {
        state.earlierFee = undefined;
        render();
      },
      'primary',
    ),
  );
}

function render(): void {
  document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
  document.title = tr('appTitle');
  root.setAttribute('data-screen', state.screen.name);
  root.replaceChildren(
    header(),
    h('main', { class: 'content' }, earlierFeeNotice(), screenBody()),
    state.busy ? h('div', { class: 'busy', attrs: { role: 'status' }, text: tr('working') }) : '',
  );
}

/** Once a second: the countdown, the QR's time left; at zero the holder is signed out. */
function tick(): void {
  const s = state.screen;
  if (s.name === 'rechargeWait') {
    const el = document.getElementById('qr-left');
    if (el !== null) el.textContent = tr('rechargeQrLeft', { s: Math.max(0, Math.ceil((s.until - Date.now()) / 1000)) });
    return;
  }
  if (!holderActive() || state.busy) return;
  const left = Math.ceil((state.deadline - Date.now()) / 1000);
  if (left <= 0) return endSession();
  const el = document.getElementById('countdown');
  if (el !== null) el.textContent = tr('countdown', { s: left });
}

async function start(): Promise<void> {
  api.onEvent(onEvent);
  const settings = await api.settings();
  if (settings.ok) state.settings = settings.value;
  for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, onHolderActivity, { capture: true, passive: true });
  touchActivity();
  render();
  window.setInterval(tick, 1000);
}

void start();
