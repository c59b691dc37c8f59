// The personal centre (figures 10, 11): the card and its binding, the Alipay and WeChat identity binding
// (核身状态: 未绑定 / 已绑定, bind, unbind), the password change, unbinding the e-card, and signing out.
import type { Ecard } from '../api.js';
import { ApiError } from '../api.js';
import { formatTime, h } from '../dom.js';
import { busy, field, FormErrors, passwordInput } from '../forms.js';
import { currentLang, serverText, t } from '../i18n.js';
import { qrSvg } from '../qr.js';
import type { Screen, Shell } from '../shell.js';
import { statusText } from './home.js';

function row(label: string, value: string): HTMLElement[] {
  return [h('dt', {}, label), h('dd', {}, value)];
}

function channelRow(shell: Shell, channel: 'alipay' | 'wechat', area: HTMLElement): HTMLElement {
  const card = shell.card as Ecard;
  const bound = card.channels[channel] === 'bound';
  const name = t(channel);
  const state = h('span', { class: `badge ${bound ? 'ok' : 'off'}` }, bound ? t('channelBound') : t('channelUnbound'));
  const action = h(
    'button',
    { type: 'button', class: 'secondary small', 'aria-label': `${bound ? t('unbindChannel') : t('bind')} ${name}` },
    bound ? t('unbindChannel') : t('bind'),
  );
  action.addEventListener('click', () => {
    if (bound) {
      void busy(action, '…', async () => {
        try {
          const answer = await shell.api.call<{ card: Ecard; message: string }>('DELETE', `/api/v1/ecard/channels/${channel}`);
          shell.card = answer.card;
          shell.toast(answer.message);
          shell.rerender();
        } catch (err) {
          area.replaceChildren(h('p', { class: 'notice warning', role: 'alert' }, err instanceof ApiError ? serverText(err) : t('retry')));
        }
      });
    } else if (channel === 'alipay') {
      void busy(action, '…', async () => {
        try {
          const answer = await shell.api.call<{ authorizeUrl: string }>('POST', '/api/v1/ecard/channels/alipay/authorize');
          const done = h('button', { type: 'button', class: 'secondary' }, t('alipayDone'));
          done.addEventListener('click', () => void shell.loadCard().then(() => shell.rerender()));
          area.replaceChildren(
            h('p', {}, t('alipayAuthorize')),
            h('div', { class: 'qr-box small' }, qrSvg(answer.authorizeUrl, t('alipayQrLabel'), 'L')),
            h('p', {}, h('a', { href: answer.authorizeUrl, rel: 'noopener' }, t('alipayOpen'))),
            done,
          );
        } catch (err) {
          area.replaceChildren(h('p', { class: 'notice warning', role: 'alert' }, err instanceof ApiError ? serverText(err) : t('retry')));
        }
      });
    } else {
      area.replaceChildren(wechatBindForm(shell));
    }
  });
  return h('li', { class: 'channel-row' }, h('span', { class: 'channel-name' }, name), state, action);
}

function wechatBindForm(shell: Shell): HTMLElement {
  const password = field('password', t('cardPassword'), passwordInput());
  const errors = new FormErrors([password]);
  const submit = h('button', { type: 'submit', class: 'primary' }, t('confirmBind'));
  const form = h('form', { novalidate: true }, errors.summary, h('p', {}, t('wechatBindLead')), password.node, submit);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = password.control.value.trim();
    if (errors.show(/^\d{6}$/.test(value) ? [] : [{ field: 'password', text: t('errPassword') }])) return;
    void busy(submit, '…', async () => {
      try {
        const answer = await shell.api.call<{ card: Ecard; message: string }>('POST', '/api/v1/ecard/channels/wechat/bind', {
          password: value,
        });
        shell.card = answer.card;
        shell.toast(answer.message);
        shell.rerender();
      } catch (err) {
        errors.showError(err, { WRONG_PASSWORD: 'password', PASSWORD_LOCKED: 'password' });
      }
    });
  });
  return form;
}

function passwordForm(shell: Shell): HTMLElement {
  const oldField = field('oldPassword', t('oldPassword'), passwordInput());
  const newField = field('newPassword', t('newPassword'), passwordInput());
  const confirmField = field('confirmPassword', t('confirmPassword'), passwordInput());
  const errors = new FormErrors([oldField, newField, confirmField]);
  const done = h('p', { class: 'notice ok', role: 'status', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, t('changePasswordButton'));
  const form = h(
    'form',
    { novalidate: true, 'aria-labelledby': 'password-title' },
    errors.summary,
    done,
    oldField.node,
    newField.node,
    confirmField.node,
    submit,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    done.hidden = true;
    const oldPassword = oldField.control.value.trim();
    const newPassword = newField.control.value.trim();
    const problems = [];
    if (!/^\d{6}$/.test(oldPassword)) problems.push({ field: 'oldPassword', text: t('errPassword') });
    if (!/^\d{6}$/.test(newPassword)) problems.push({ field: 'newPassword', text: t('errPassword') });
    else if (newPassword === oldPassword) problems.push({ field: 'newPassword', text: t('errSamePassword') });
    if (confirmField.control.value.trim() !== newPassword) problems.push({ field: 'confirmPassword', text: t('errConfirm') });
    if (errors.show(problems)) return;
    void busy(submit, '…', async () => {
      try {
        const answer = await shell.api.call<{ message: string }>('POST', '/api/v1/ecard/password', { oldPassword, newPassword });
        form.reset();
        done.textContent = answer.message;
        done.hidden = false;
        if (shell.card !== undefined) shell.card.initialPassword = false;
      } catch (err) {
        errors.showError(err, { WRONG_PASSWORD: 'oldPassword', PASSWORD_LOCKED: 'oldPassword' });
      }
    });
  });
  return form;
}

function unbindForm(shell: Shell): HTMLElement {
  const password = field('password', t('cardPassword'), passwordInput());
  const errors = new FormErrors([password]);
  const submit = h('button', { type: 'submit', class: 'danger' }, t('unbindButton'));
  const form = h('form', { novalidate: true }, errors.summary, h('p', {}, t('unbindLead')), password.node, submit);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = password.control.value.trim();
    if (errors.show(/^\d{6}$/.test(value) ? [] : [{ field: 'password', text: t('errPassword') }])) return;
    if (!window.confirm(t('unbindConfirm'))) return;
    void busy(submit, '…', async () => {
      try {
        await shell.api.call('DELETE', '/api/v1/ecard/binding', { password: value });
        shell.signedOut('unbound');
      } catch (err) {
        errors.showError(err, { WRONG_PASSWORD: 'password', PASSWORD_LOCKED: 'password' });
      }
    });
  });
  return form;
}

export const meScreen: Screen = (shell) => {
  const card = shell.card as Ecard;
  const area = h('div', { class: 'channel-area', 'aria-live': 'polite' });
  const logout = h('button', { type: 'button', class: 'secondary' }, t('logout'));
  logout.addEventListener('click', () => {
    void busy(logout, '…', async () => {
      await shell.api.logout().catch(() => undefined);
      shell.signedOut('loggedOut');
    });
  });
  const node = h(
    'div',
    {},
    h(
      'section',
      { class: 'panel' },
      h(
        'dl',
        { class: 'facts' },
        row(t('holderName'), card.maskedName),
        row(t('cardNumber'), card.cardNumber),
        row(t('holderType'), card.holderType === 'staff' ? t('staff') : t('student')),
        row(t('cardStatus'), statusText(card.status)),
        card.binding === null ? [] : row(t('boundAccount'), card.binding.userId),
        card.binding === null ? [] : row(t('boundAt'), formatTime(card.binding.boundAtMs, currentLang())),
      ),
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'channels-title' },
      h('h2', { id: 'channels-title' }, t('identityBinding')),
      h('ul', { class: 'channels' }, channelRow(shell, 'alipay', area), channelRow(shell, 'wechat', area)),
      area,
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'password-title' },
      h('h2', { id: 'password-title' }, t('changePasswordTitle')),
      passwordForm(shell),
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'unbind-title' },
      h('h2', { id: 'unbind-title' }, t('unbindTitle')),
      unbindForm(shell),
    ),
    h('div', { class: 'panel' }, logout),
  );
  return { title: t('meTitle'), node };
};
