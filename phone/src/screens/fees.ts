// Network and electricity fees. The requestId is chosen when the holder confirms and kept until the outcome
// is final: a lost answer (no connection, 503) is sent again with the same id, so a fee is never paid twice;
// a pending one is asked again with the same id. The id outlives the retries here: pressing 确认缴费 again
// for the same fee, after 网络连接失败 or a pending answer, sends it once more (../unsettled-fees.ts). A new
// payment (after a final outcome, or of another target or amount) gets a new id.
import { ApiError } from '../api.js';
import { h, parseYuan, yuan } from '../dom.js';
import { busy, field, FormErrors, input, passwordInput, type Field, type Problem } from '../forms.js';
import { colon, t } from '../i18n.js';
import type { Screen, Shell } from '../shell.js';
import { feeKey, requestIdFor, settle } from '../unsettled-fees.js';

interface FeeAnswer {
  outcome: 'paid' | 'pending' | 'returned' | 'declined';
  message: string;
  balanceAfterFen: number;
  receipt: string;
}

const RETRIES = 3;
const RETRY_WAIT_MS = 2000;
/** Answers that say the id can never pay this fee: it belongs to another request, or the server refused it. */
const ID_UNUSABLE = new Set(['IDEMPOTENCY_CONFLICT', 'INVALID_REQUEST_ID']);

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** No answer, or the switch too busy to give one: the fee may or may not have been paid. */
function isUnknown(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 0 || err.code === 'UNAVAILABLE');
}

function feeScreen(kind: 'network' | 'electricity'): Screen {
  return (shell: Shell) => {
    const targets: Field[] =
      kind === 'network'
        ? [field('account', t('networkAccount'), input({ autocapitalize: 'none' }))]
        : [
            field('building', t('building'), input({ placeholder: t('buildingPlaceholder') })),
            field('room', t('room'), input({ placeholder: t('roomPlaceholder') })),
          ];
    const amount = field('amountFen', t('feeAmount'), input({ inputmode: 'decimal' }));
    const password = field('password', t('cardPassword'), passwordInput());
    const errors = new FormErrors([...targets, amount, password]);
    const submit = h('button', { type: 'submit', class: 'primary' }, t('payFee'));
    const outcome = h('div', { class: 'outcome', role: 'status', 'aria-live': 'polite' });
    const form = h(
      'form',
      { novalidate: true, class: 'panel' },
      errors.summary,
      ...targets.map((f) => f.node),
      amount.node,
      password.node,
      submit,
    );

    function check(values: Record<string, string>, fen: number | undefined): Problem[] {
      const problems: Problem[] = [];
      if (kind === 'network' && !/^[A-Za-z0-9_.@-]{4,32}$/.test(values['account'] ?? ''))
        problems.push({ field: 'account', text: t('errAccount') });
      if (kind === 'electricity') {
        const building = values['building'] ?? '';
        if (building.length < 1 || building.length > 16) problems.push({ field: 'building', text: t('errBuilding') });
        if (!/^[A-Za-z0-9-]{1,8}$/.test(values['room'] ?? '')) problems.push({ field: 'room', text: t('errRoom') });
      }
      if (fen === undefined || fen < 100 || fen > 50_000) problems.push({ field: 'amountFen', text: t('errFeeAmount') });
      if (!/^\d{6}$/.test(values['password'] ?? '')) problems.push({ field: 'password', text: t('errPassword') });
      return problems;
    }

    async function pay(body: Record<string, string | number>): Promise<FeeAnswer> {
      for (let attempt = 0; ; attempt++) {
        try {
          const answer = await shell.api.call<FeeAnswer>('POST', `/api/v1/ecard/fees/${kind}`, body);
          if (answer.outcome !== 'pending' || attempt >= RETRIES) return answer;
          outcome.replaceChildren(h('p', { class: 'notice' }, t('feePending')));
        } catch (err) {
          // The answer was lost or the switch was busy: the same requestId again can never pay twice.
          if (!isUnknown(err) || attempt >= RETRIES) throw err;
        }
        await wait(RETRY_WAIT_MS * (attempt + 1));
      }
    }

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const values: Record<string, string> = {};
      for (const f of [...targets, password]) values[f.name] = f.control.value.trim();
      const fen = parseYuan(amount.control.value);
      if (errors.show(check(values, fen)) || fen === undefined) return;
      const target = targets.map((f) => values[f.name] ?? '');
      const key = feeKey(shell.card?.cardNumber ?? '', kind, target, fen);
      const body = { ...values, amountFen: fen, requestId: requestIdFor(key) };
      outcome.replaceChildren();
      void busy(submit, t('paying'), async () => {
        try {
          const answer = await pay(body);
          if (answer.outcome !== 'pending') settle(key);
          const ok = answer.outcome === 'paid';
          outcome.replaceChildren(
            h(
              'div',
              { class: `result ${ok ? 'ok' : answer.outcome === 'pending' ? '' : 'declined'}` },
              h('p', { class: 'result-title' }, answer.message),
              answer.receipt === '' ? null : h('p', {}, `${t('feeReceipt')}${colon()}${answer.receipt}`),
              h('p', {}, t('feeBalance', { balance: yuan(answer.balanceAfterFen) })),
            ),
          );
          if (ok) form.reset();
          if (shell.card !== undefined) shell.card.balanceFen = answer.balanceAfterFen;
        } catch (err) {
          // Any other refusal keeps the id: an earlier try of this fee with it may have been paid, and the
          // server checks the fields and the password before it replays, so the id is not spent by them.
          if (err instanceof ApiError && ID_UNUSABLE.has(err.code)) settle(key);
          errors.showError(err, { WRONG_PASSWORD: 'password', PASSWORD_LOCKED: 'password' });
          if (isUnknown(err)) outcome.replaceChildren(h('p', { class: 'notice' }, t('feeUnknown')));
        }
      });
    });
    return { title: kind === 'network' ? t('feesNetworkTitle') : t('feesElectricityTitle'), node: h('div', {}, form, outcome) };
  };
}

export const networkFeeScreen = feeScreen('network');
export const electricityFeeScreen = feeScreen('electricity');
