// Recharge (figures 12, 13): WeChat (at most 999.00 a time) or Alipay, the day's maximum as the server
// says it; the order's QR code for the payer to scan, followed to the credit: the `recharge` event on the
// socket, and GET .../recharge-orders/:id every few seconds (which asks the channel itself after a while).
import type { CardEvent } from '../api.js';
import { ApiError } from '../api.js';
import { formatTime, h, parseYuan, randomId, yuan } from '../dom.js';
import { busy, field, FormErrors, input, select } from '../forms.js';
import { colon, currentLang, t } from '../i18n.js';
import { qrSvg } from '../qr.js';
import type { Screen } from '../shell.js';

const WECHAT_MAX_FEN = 99_900;
const POLL_MS = 3000;

interface Order {
  orderId: string;
  channel: string;
  amountFen: number;
  expiresAtMs: number;
  pay: { kind: 'qr'; qrContent: string } | { kind: 'jsapi'; [key: string]: string };
}

interface OrderState {
  state: string;
  balanceAfterFen?: number;
  amountFen: number;
}

declare global {
  interface Window {
    WeixinJSBridge?: { invoke(name: string, args: unknown, done: (answer: unknown) => void): void };
  }
}

export const rechargeScreen: Screen = (shell) => {
  const channel = select([
    ['wechat', t('wechatPay')],
    ['alipay', t('alipayPay')],
  ]);
  const amount = input({ inputmode: 'decimal', placeholder: t('rechargeAmountPlaceholder') });
  const limit = h('p', { class: 'field-hint', id: 'recharge-limit' });
  const channelField = field('channel', t('channel'), channel);
  const amountField = field('amountFen', t('rechargeAmount'), amount);
  amount.setAttribute('aria-describedby', `recharge-limit ${amount.id}-error`);
  const errors = new FormErrors([channelField, amountField]);
  const quick = h(
    'div',
    { class: 'quick-amounts' },
    [50, 100, 200].map((v) => {
      const b = h('button', { type: 'button', class: 'chip' }, `¥${v}`);
      b.addEventListener('click', () => {
        amount.value = String(v);
      });
      return b;
    }),
  );
  const submit = h('button', { type: 'submit', class: 'primary' }, t('rechargeButton'));
  const form = h('form', { novalidate: true, class: 'panel' }, errors.summary, channelField.node, amountField.node, limit, quick, submit);
  const orderArea = h('section', { class: 'panel order', 'aria-live': 'polite', hidden: true });
  let requestId = randomId();
  let requestFor = '';
  let order: Order | undefined;
  let poll: ReturnType<typeof setInterval> | undefined;
  let finished = false;

  const showLimit = (): void => {
    limit.textContent = channel.value === 'wechat' ? t('rechargeLimitWechat') : t('rechargeLimitAlipay');
  };
  channel.addEventListener('change', showLimit);
  showLimit();

  function paid(balanceFen: number, amountFen: number): void {
    if (finished) return;
    finished = true;
    clearInterval(poll);
    const again = h('button', { type: 'button', class: 'secondary' }, t('rechargeAgain'));
    again.addEventListener('click', () => shell.rerender());
    orderArea.replaceChildren(
      h(
        'p',
        { class: 'result ok result-title', role: 'status' },
        t('rechargePaid', { amount: yuan(amountFen), balance: yuan(balanceFen) }),
      ),
      again,
    );
    form.hidden = true;
  }

  async function follow(): Promise<void> {
    if (order === undefined || finished) return;
    try {
      const state = await shell.api.call<OrderState>('GET', `/api/v1/ecard/recharge-orders/${encodeURIComponent(order.orderId)}`);
      if (state.state === 'paid') {
        const card = await shell.loadCard().catch(() => undefined);
        paid(state.balanceAfterFen ?? card?.balanceFen ?? 0, state.amountFen);
      } else if (state.state === 'expired' || state.state === 'closed') {
        finished = true;
        clearInterval(poll);
        orderArea.replaceChildren(h('p', { class: 'notice warning', role: 'alert' }, t('rechargeExpired')));
        form.hidden = false;
        requestId = randomId();
      }
    } catch {
      // the next poll tries again; the event may come first
    }
  }

  function showOrder(o: Order): void {
    order = o;
    finished = false;
    form.hidden = true;
    orderArea.hidden = false;
    const head = [
      h('p', { class: 'amount-big' }, yuan(o.amountFen)),
      h('p', {}, `${t('orderNumber')}${colon()}`, h('span', { class: 'order-id' }, o.orderId)),
      h('p', { class: 'hint' }, t('orderExpires', { time: formatTime(o.expiresAtMs, currentLang()) })),
    ];
    if (o.pay.kind === 'qr') {
      orderArea.replaceChildren(
        h('p', {}, o.channel === 'wechat' ? t('rechargeScanWechat') : t('rechargeScanAlipay')),
        h('div', { class: 'qr-box' }, qrSvg(o.pay.qrContent, t('rechargeQrLabel'))),
        ...head,
        h('p', { class: 'waiting' }, t('orderWaiting')),
      );
    } else {
      const bridge = window.WeixinJSBridge;
      orderArea.replaceChildren(...head, h('p', { class: 'waiting' }, bridge === undefined ? t('jsapiUnavailable') : t('orderWaiting')));
      const { kind: _kind, ...args } = o.pay;
      bridge?.invoke('getBrandWCPayRequest', args, () => void follow());
    }
    clearInterval(poll);
    poll = setInterval(() => void follow(), POLL_MS);
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const fen = parseYuan(amount.value);
    const problems = [];
    if (fen === undefined || fen < 1) problems.push({ field: 'amountFen', text: t('errAmount') });
    else if (channel.value === 'wechat' && fen > WECHAT_MAX_FEN) problems.push({ field: 'amountFen', text: t('errAmountWechat') });
    if (errors.show(problems) || fen === undefined) return;
    // The same request id for the same order, so a retry after a lost answer shows the same order.
    const key = `${channel.value}:${fen}`;
    if (key !== requestFor) {
      requestId = randomId();
      requestFor = key;
    }
    void busy(submit, '…', async () => {
      try {
        showOrder(
          await shell.api.call<Order>('POST', '/api/v1/ecard/recharge-orders', { channel: channel.value, amountFen: fen, requestId }),
        );
      } catch (err) {
        errors.showError(err, { AMOUNT_OUT_OF_RANGE: 'amountFen', DAILY_RECHARGE_LIMIT: 'amountFen' });
        if (err instanceof ApiError && err.status !== 503 && err.status !== 0) requestFor = '';
        else if (!(err instanceof ApiError)) errors.show([{ text: t('retry') }]);
      }
    });
  });

  return {
    title: t('rechargeTitle'),
    node: h('div', {}, form, orderArea),
    dispose() {
      clearInterval(poll);
    },
    onEvent(event: CardEvent) {
      if (event.type === 'recharge' && order !== undefined && !finished && event.amountFen === order.amountFen) void follow();
    },
  };
};
