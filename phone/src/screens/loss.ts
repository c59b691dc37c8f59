// Loss report (挂失, no password: a stolen card is stopped at once) and its cancellation (解挂, with the
// card password). A frozen or cancelled card is the card office's matter.
import { ApiError } from '../api.js';
import { h } from '../dom.js';
import { busy, field, FormErrors, passwordInput } from '../forms.js';
import { colon, serverText, t } from '../i18n.js';
import type { Screen } from '../shell.js';
import { statusText } from './home.js';

export const lossScreen: Screen = (shell) => {
  const card = shell.card;
  const status = card?.status ?? 'active';
  const state = h('p', { class: 'big-status' }, `${t('cardStatus')}${colon()}`, h('strong', {}, statusText(status)));
  let body: HTMLElement;
  if (status === 'active') {
    const report = h('button', { type: 'button', class: 'danger' }, t('reportLoss'));
    const failure = h('p', { class: 'notice warning', role: 'alert', hidden: true });
    report.addEventListener('click', () => {
      if (!window.confirm(t('reportLossConfirm'))) return;
      void busy(report, '…', async () => {
        try {
          const answer = await shell.api.call<{ message: string }>('POST', '/api/v1/ecard/loss');
          await shell.loadCard().catch(() => undefined);
          shell.rerender();
          shell.toast(answer.message);
        } catch (err) {
          failure.textContent = err instanceof ApiError ? serverText(err) : t('retry');
          failure.hidden = false;
        }
      });
    });
    body = h('div', {}, h('p', {}, t('lossLead')), failure, report);
  } else if (status === 'lost') {
    const password = field('password', t('cardPassword'), passwordInput());
    const errors = new FormErrors([password]);
    const submit = h('button', { type: 'submit', class: 'primary' }, t('cancelLoss'));
    const form = h('form', { novalidate: true }, errors.summary, h('p', {}, t('cancelLossLead')), password.node, submit);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const value = password.control.value.trim();
      if (errors.show(/^\d{6}$/.test(value) ? [] : [{ field: 'password', text: t('errPassword') }])) return;
      void busy(submit, '…', async () => {
        try {
          const answer = await shell.api.call<{ message: string }>('POST', '/api/v1/ecard/loss/cancel', { password: value });
          await shell.loadCard().catch(() => undefined);
          shell.rerender();
          shell.toast(answer.message);
        } catch (err) {
          errors.showError(err, { WRONG_PASSWORD: 'password', PASSWORD_LOCKED: 'password' });
        }
      });
    });
    body = form;
  } else {
    body = h('p', { class: 'notice warning' }, t('lossOffice'));
  }
  return {
    title: t('lossTitle'),
    node: h('section', { class: 'panel' }, state, body),
    onEvent(event) {
      if (event.type === 'card_status') shell.rerender();
    },
  };
};
