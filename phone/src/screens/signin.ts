// Sign-in: WeCom's web authorisation (网页授权, snsapi_base) brings the holder back with ?code=…&state=…;
// main.ts exchanges the code. In development the identity simulator stands in for WeCom (its own page).
import { h, randomId } from '../dom.js';
import { t } from '../i18n.js';
import type { Screen } from '../shell.js';

export const STATE_KEY = 'cardswitch.phone.oauthState';

export interface SignInSettings {
  readonly oauthBase: string;
  readonly appId: string;
  readonly school: string;
}

export function signInSettings(): SignInSettings {
  const meta = document.querySelector('meta[name="cardswitch-sign-in"]');
  try {
    const parsed = JSON.parse(meta?.getAttribute('content') ?? '{}') as Partial<SignInSettings>;
    return { oauthBase: parsed.oauthBase ?? '', appId: parsed.appId ?? '', school: parsed.school ?? '' };
  } catch {
    return { oauthBase: '', appId: '', school: '' };
  }
}

export function authorizeUrl(settings: SignInSettings, state: string): string {
  const back = `${location.origin}${location.pathname}`;
  const query = new URLSearchParams({
    appid: settings.appId,
    redirect_uri: back,
    response_type: 'code',
    scope: 'snsapi_base',
    state,
  });
  return `${settings.oauthBase}/connect/oauth2/authorize?${query.toString()}#wechat_redirect`;
}

/**
 * Sends the holder to WeCom's authorisation with a new state kept in sessionStorage (checked when the page
 * is opened again with ?code=…&state=…). False, without leaving, when sign-in is not configured or the
 * state cannot be kept (a state that cannot be checked would send the page round in circles).
 */
export function startAuthorization(settings: SignInSettings): boolean {
  if (settings.oauthBase === '' || settings.appId === '') return false;
  const state = randomId(16);
  try {
    sessionStorage.setItem(STATE_KEY, state);
    if (sessionStorage.getItem(STATE_KEY) !== state) return false;
  } catch {
    return false;
  }
  location.assign(authorizeUrl(settings, state));
  return true;
}

export const signInScreen: Screen = (shell) => {
  const settings = signInSettings();
  const notice = shell.notice === undefined ? null : h('p', { class: 'notice', role: 'status' }, t(shell.notice));
  const button = h('button', { type: 'button', class: 'primary' }, t('signInButton'));
  button.addEventListener('click', () => {
    if (startAuthorization(settings)) return;
    // Without storage the state is not checked on return; the code is still single-use.
    location.assign(authorizeUrl(settings, randomId(16)));
  });
  const configured = settings.oauthBase !== '' && settings.appId !== '';
  return {
    title: t('signInTitle'),
    node: h(
      'section',
      { class: 'panel signin' },
      notice,
      h('p', {}, t('signInLead')),
      configured ? button : h('p', { class: 'notice' }, t('signInNotConfigured')),
    ),
  };
};
