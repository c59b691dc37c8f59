// The binding form, as the guide's figure 3: binding type, student / staff number, card password with the
// default-password hint, document type and number, phone, privacy consent, and the guide's reminders. The
// page checks what the server checks first (the same rules, docs/gateway-api.md), so most mistakes are
// shown at once; the server's refusals land next to their field too.
import type { Ecard } from '../api.js';
import { ApiError } from '../api.js';
import { h } from '../dom.js';
import { busy, field, FormErrors, input, passwordInput, select, type Problem } from '../forms.js';
import { serverText, t } from '../i18n.js';
import type { Screen } from '../shell.js';

/** Refusals the server answers without `field` that still belong to one. */
const FIELD_OF_CODE: Record<string, string> = {
  BINDING_TYPE_MISMATCH: 'bindingType',
  CARD_NOT_FOUND: 'personNumber',
  WRONG_PASSWORD: 'password',
  PASSWORD_LOCKED: 'password',
  DOCUMENT_MISMATCH: 'documentNumber',
  PHONE_MISMATCH: 'phone',
};

interface BindingForm {
  bindingType: string;
  personNumber: string;
  password: string;
  documentType: string;
  documentNumber: string;
  phone: string;
  consent: boolean;
}

export function checkBindingForm(form: BindingForm): Problem[] {
  const problems: Problem[] = [];
  if (!/^[A-Za-z0-9]{4,20}$/.test(form.personNumber)) problems.push({ field: 'personNumber', text: t('errPersonNumber') });
  if (!/^\d{6}$/.test(form.password)) problems.push({ field: 'password', text: t('errPassword') });
  const doc = form.documentNumber;
  if (form.documentType === 'resident_id' && !/^\d{17}[\dX]$/.test(doc))
    problems.push({ field: 'documentNumber', text: t('errDocumentNumberId') });
  if (form.documentType === 'passport' && !/^[A-Z0-9]{5,20}$/.test(doc))
    problems.push({ field: 'documentNumber', text: t('errDocumentNumberPassport') });
  if (!/^(1\d{10}|\+\d{6,15})$/.test(form.phone)) problems.push({ field: 'phone', text: t('errPhone') });
  if (!form.consent) problems.push({ field: 'consent', text: t('errConsent') });
  return problems;
}

export const bindScreen: Screen = (shell) => {
  const type = select([
    ['student', t('student')],
    ['staff', t('staff')],
  ]);
  const person = input({ placeholder: t('personNumberPlaceholder'), autocapitalize: 'characters' });
  const password = passwordInput({ placeholder: t('cardPasswordPlaceholder') });
  const docType = select([
    ['resident_id', t('residentId')],
    ['passport', t('passport')],
  ]);
  const docNumber = input({ placeholder: t('documentNumberPlaceholder'), autocapitalize: 'characters' });
  const phone = input({ type: 'tel', inputmode: 'tel', placeholder: t('phonePlaceholder'), autocomplete: 'tel' });
  const consent = h('input', { type: 'checkbox' });
  const fields = [
    field('bindingType', t('bindingType'), type),
    field('personNumber', t('personNumber'), person, t('personNumberHelp')),
    field('password', t('cardPassword'), password),
    field('documentType', t('documentType'), docType),
    field('documentNumber', t('documentNumber'), docNumber),
    field('phone', t('phone'), phone),
  ];
  consent.id = 'consent';
  const consentError = h('p', { class: 'field-error', id: 'consent-error', hidden: true });
  consent.setAttribute('aria-describedby', 'consent-error');
  const consentField = {
    name: 'consent',
    control: consent,
    error: consentError,
    node: h(
      'div',
      { class: 'field checkbox' },
      consentError,
      h('div', { class: 'check-row' }, consent, h('label', { for: 'consent' }, t('consent'))),
      h('details', {}, h('summary', {}, t('privacyPolicy')), h('p', {}, t('privacyText'))),
      h('details', {}, h('summary', {}, t('serviceAgreement')), h('p', {}, t('serviceText'))),
    ),
  };
  const errors = new FormErrors([...fields, consentField]);
  const notSynced = h('p', { class: 'notice warning', role: 'alert', hidden: true }, t('notSyncedExplained'));
  const submit = h('button', { type: 'submit', class: 'primary' }, t('bindButton'));
  const form = h(
    'form',
    { novalidate: true, class: 'panel' },
    errors.summary,
    notSynced,
    ...fields.map((f) => f.node),
    consentField.node,
    submit,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    notSynced.hidden = true;
    const body: BindingForm = {
      bindingType: type.value,
      personNumber: person.value.trim(),
      password: password.value.trim(),
      documentType: docType.value,
      documentNumber: docNumber.value.trim().toUpperCase(),
      phone: phone.value.replace(/[\s-]/g, ''),
      consent: consent.checked,
    };
    if (errors.show(checkBindingForm(body))) return;
    void busy(submit, t('binding'), async () => {
      try {
        const answer = await shell.api.call<{
          card: Ecard;
          accessToken?: string;
          accessExpiresAtMs?: number;
          signInAgain?: boolean;
        }>('POST', '/api/v1/ecard/binding', body);
        // Bound, but the session ended meanwhile (a logout on another page): no token; the sign-in finds the card.
        if (answer.signInAgain === true || answer.accessToken === undefined || answer.accessExpiresAtMs === undefined) {
          shell.signedOut('boundSignInAgain');
          return;
        }
        shell.api.useAccessToken(answer.accessToken, answer.accessExpiresAtMs);
        shell.card = answer.card;
        shell.startLive();
        shell.go('home');
      } catch (err) {
        if (err instanceof ApiError && err.code === 'CARD_NOT_SYNCED') {
          errors.show([{ text: serverText(err) }]);
          notSynced.hidden = false;
          return;
        }
        errors.showError(err, FIELD_OF_CODE);
      }
    });
  });
  const reminders = h(
    'section',
    { class: 'reminders', 'aria-labelledby': 'reminders-title' },
    h('h2', { id: 'reminders-title' }, t('remindersTitle')),
    h('ol', {}, h('li', {}, t('reminder1')), h('li', {}, t('reminder2')), h('li', {}, t('reminder3')), h('li', {}, t('reminderSync'))),
  );
  return { title: t('bindTitle'), node: h('div', {}, form, reminders) };
};
