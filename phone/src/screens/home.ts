// Home (the guide's figures 1, 2 and 4): the card, the balance hidden until tapped, the small wallet, and
// the campus QR code: a new one every 30 s and on demand, with a countdown; "used" the moment a POS takes
// it (a payment event naming this code's id), the result with merchant, amount and balance, then a new code.
import type { CardEvent, Ecard } from '../api.js';
import { ApiError } from '../api.js';
import { h, yuan } from '../dom.js';
import { colon, serverText, t, type MessageKey } from '../i18n.js';
import { campusQrId, qrSvg } from '../qr.js';
import type { Route, Screen } from '../shell.js';
import { CAMPUS_QR_REFRESH_MS } from '../../../switch/qr/format.js';

interface CampusQr {
  code: string;
  issuedAtMs: number;
  expiresAtMs: number;
  refreshAtMs: number;
}

/** After a code was used, the next one comes this much later (the holder reads the result first). */
const NEXT_AFTER_USE_MS = 2000;

export function statusText(status: Ecard['status']): string {
  const keys: Record<Ecard['status'], MessageKey> = {
    active: 'statusActive',
    lost: 'statusLost',
    frozen: 'statusFrozen',
    cancelled: 'statusCancelled',
  };
  return t(keys[status]);
}

function qrUnavailable(card: Ecard): string | undefined {
  if (card.status === 'lost') return t('qrUnavailableLost');
  if (card.status === 'frozen') return t('qrUnavailableFrozen');
  if (card.status === 'cancelled') return t('qrUnavailableCancelled');
  if (!card.synced) return t('notSyncedHome');
  return undefined;
}

export function eventText(event: CardEvent): string | undefined {
  const vars = { amount: yuan(event.amountFen ?? 0), balance: yuan(event.balanceFen ?? 0) };
  switch (event.type) {
    case 'recharge':
      return t('eventRecharge', vars);
    case 'refund':
      return t('eventRefund', vars);
    case 'reversal':
      return t('eventReversal', vars);
    case 'fee':
      return t('eventFee', vars);
    case 'fee_returned':
      return t('eventFeeReturned', vars);
    case 'card_status':
      return event.status === undefined ? undefined : t('eventStatus', { status: statusText(event.status) });
    default:
      return undefined;
  }
}

function menu(): HTMLElement {
  const items: [Route, MessageKey, string][] = [
    ['recharge', 'menuRecharge', '¥'],
    ['statement', 'menuStatement', '≡'],
    ['loss', 'menuLoss', '!'],
    ['network', 'menuNetwork', '@'],
    ['electricity', 'menuElectricity', '⚡'],
    ['me', 'menuMe', '☺'],
  ];
  return h(
    'nav',
    { class: 'menu', 'aria-label': t('appTitle') },
    h(
      'ul',
      {},
      items.map(([route, key, icon]) =>
        h(
          'li',
          {},
          h('a', { href: `#/${route}`, class: 'menu-item' }, h('span', { class: 'menu-icon', 'aria-hidden': 'true' }, icon), t(key)),
        ),
      ),
    ),
  );
}

export const homeScreen: Screen = (shell) => {
  let card = shell.card as Ecard;
  let shown = false;
  let qr: CampusQr | undefined;
  let qrId = '';
  let used = false;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  let refreshDueMs = 0;
  let loading = false;
  let disposed = false;

  const balanceValue = h('span', { class: 'balance-value' });
  const balanceButton = h('button', { type: 'button', class: 'balance', 'aria-pressed': 'false' });
  const wallet = h('p', { class: 'wallet' });
  const statusLine = h('p', { class: 'card-status' });
  const qrBox = h('div', { class: 'qr-box' });
  const countdown = h('p', { class: 'countdown', 'aria-live': 'off' });
  const refreshButton = h('button', { type: 'button', class: 'secondary' }, t('refreshNow'));
  const result = h('div', { class: 'result', role: 'status', 'aria-live': 'polite' });
  const unavailable = h('p', { class: 'notice warning' });
  const passwordHint = h('p', { class: 'notice' }, t('initialPasswordHint'), ' ', h('a', { href: '#/me' }, t('changeNow')));

  function renderCard(): void {
    balanceButton.replaceChildren(h('span', { class: 'balance-label' }, t('balance'), colon()), balanceValue);
    balanceValue.textContent = shown ? yuan(card.balanceFen) : t('balanceHidden');
    balanceButton.setAttribute('aria-pressed', String(shown));
    balanceButton.setAttribute(
      'aria-label',
      `${t('balance')} ${shown ? yuan(card.balanceFen) : ''} ${shown ? t('hideBalance') : t('showBalance')}`,
    );
    wallet.textContent = `${t('smallWallet')}${colon()}${shown ? yuan(card.smallWalletFen) : t('balanceHidden')}`;
    statusLine.textContent = `${card.maskedName}  ·  ${t('cardNumber')} ${card.cardNumber}  ·  ${statusText(card.status)}`;
    passwordHint.hidden = !card.initialPassword;
    const why = qrUnavailable(card);
    unavailable.hidden = why === undefined;
    unavailable.textContent = why ?? '';
    qrSection.hidden = why !== undefined;
  }

  function showCountdown(): void {
    if (qr === undefined || used) return;
    // The server's interval is 30 s plus the part of a second it was issued in: never show 31.
    const left = Math.min(CAMPUS_QR_REFRESH_MS / 1000, Math.max(0, Math.ceil((refreshDueMs - Date.now()) / 1000)));
    countdown.textContent = t('refreshIn', { s: left });
  }

  function drawQr(): void {
    if (qr === undefined) return;
    qrBox.replaceChildren(qrSvg(qr.code, t('campusQrLabel')));
    if (used) qrBox.append(h('div', { class: 'qr-used' }, t('qrUsed')));
    qrBox.classList.toggle('is-used', used);
    if (used) countdown.textContent = t('qrUsed');
    else showCountdown();
  }

  function schedule(delayMs: number): void {
    clearTimeout(refreshTimer);
    refreshDueMs = Date.now() + delayMs;
    refreshTimer = setTimeout(() => void loadQr(), delayMs);
  }

  async function loadQr(): Promise<void> {
    if (disposed || loading || qrUnavailable(card) !== undefined) return;
    loading = true;
    try {
      const answer = ((await shell.takeFirstQr()) as CampusQr | undefined) ?? (await shell.api.call<CampusQr>('GET', '/api/v1/ecard/qr'));
      if (disposed) return;
      qr = answer;
      qrId = campusQrId(answer.code);
      used = false;
      // Counted from now, by the server's own interval: a phone's clock may be minutes off.
      const interval = answer.refreshAtMs - answer.issuedAtMs;
      schedule(interval > 1000 && interval <= CAMPUS_QR_REFRESH_MS + 1000 ? interval : CAMPUS_QR_REFRESH_MS);
      drawQr();
    } catch (err) {
      if (disposed) return;
      if (err instanceof ApiError && err.status === 409) {
        await shell.loadCard().catch(() => undefined);
        card = shell.card ?? card;
        renderCard();
        return;
      }
      qrBox.replaceChildren(h('p', { class: 'notice warning' }, err instanceof ApiError ? serverText(err) : t('retry')));
      schedule(5000);
    } finally {
      loading = false;
    }
  }

  balanceButton.addEventListener('click', () => {
    shown = !shown;
    renderCard();
  });
  refreshButton.addEventListener('click', () => void loadQr());

  const qrSection = h(
    'section',
    { class: 'panel qr-panel', 'aria-labelledby': 'qr-title' },
    h('h2', { id: 'qr-title' }, t('campusQr')),
    qrBox,
    countdown,
    h('p', { class: 'hint' }, t('refreshHint')),
    refreshButton,
    h('p', { class: 'hint brightness' }, t('brightness')),
  );

  renderCard();
  const tick = setInterval(showCountdown, 1000);
  void loadQr();

  const node = h(
    'div',
    {},
    h('section', { class: 'panel card-panel', 'aria-label': t('homeTitle') }, statusLine, balanceButton, wallet),
    passwordHint,
    unavailable,
    result,
    qrSection,
    menu(),
  );

  function showPayment(event: CardEvent): void {
    const ok = event.approved === true;
    const where = event.location !== undefined && event.location !== '' ? event.location : (event.merchantId ?? '');
    result.className = `result ${ok ? 'ok' : 'declined'}`;
    result.replaceChildren(
      h(
        'p',
        { class: 'result-title' },
        ok ? t('paymentApproved') : `${t('paymentDeclined')}${event.declineReason ? ` (${event.declineReason})` : ''}`,
      ),
      h(
        'dl',
        {},
        h('dt', {}, t('paidAt')),
        h('dd', {}, where),
        h('dt', {}, t('amount')),
        h('dd', {}, yuan(event.amountFen ?? 0)),
        h('dt', {}, t('balanceAfter')),
        h('dd', {}, yuan(event.balanceFen ?? card.balanceFen)),
      ),
    );
  }

  return {
    title: t('homeTitle'),
    node,
    dispose() {
      disposed = true;
      clearTimeout(refreshTimer);
      clearInterval(tick);
    },
    onEvent(event) {
      card = shell.card ?? card;
      renderCard();
      if (event.type === 'payment') {
        showPayment(event);
        if (event.qrCodeId !== undefined && event.qrCodeId === qrId) {
          used = true;
          drawQr();
          schedule(NEXT_AFTER_USE_MS);
        }
        return;
      }
      const text = eventText(event);
      if (text !== undefined) {
        result.className = 'result ok';
        result.replaceChildren(h('p', { class: 'result-title' }, text));
      }
      if (event.type === 'card_status') {
        qr = undefined;
        qrBox.replaceChildren();
        void loadQr();
      }
    },
    onCard() {
      card = shell.card ?? card;
      renderCard();
      void loadQr();
    },
  };
};
