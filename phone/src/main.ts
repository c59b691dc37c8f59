// The e-card page: boot (sign-in by ?code=, or the session kept in this tab), a hash router over the
// screens, the header with the language switch, the live events and the connection banner.
import './style.css';
import { Api, ApiError, type CardEvent, type Ecard } from './api.js';
import { h, yuan } from './dom.js';
import { currentLang, setLang, t, type MessageKey } from './i18n.js';
import { LiveEvents, type LiveState } from './live.js';
import { bindScreen } from './screens/bind.js';
import { electricityFeeScreen, networkFeeScreen } from './screens/fees.js';
import { eventText, homeScreen } from './screens/home.js';
import { lossScreen } from './screens/loss.js';
import { meScreen } from './screens/me.js';
import { rechargeScreen } from './screens/recharge.js';
import { signInScreen, signInSettings, startAuthorization, STATE_KEY } from './screens/signin.js';
import { statementScreen } from './screens/statement.js';
import type { Route, Screen, ScreenView, Shell } from './shell.js';

const SCREENS: Record<Route, Screen> = {
  signin: signInScreen,
  bind: bindScreen,
  home: homeScreen,
  me: meScreen,
  recharge: rechargeScreen,
  statement: statementScreen,
  loss: lossScreen,
  network: networkFeeScreen,
  electricity: electricityFeeScreen,
};
/**
 * The screen a location hash names, or undefined. Own keys only: `in` also finds what every object inherits,
 * so #/__proto__ or #/constructor (a link anyone can send) was taken for a screen and broke the page.
 */
function routeOf(hash: string): Route | undefined {
  const name = hash.replace(/^#\/?/, '');
  return Object.prototype.hasOwnProperty.call(SCREENS, name) ? (name as Route) : undefined;
}
/**
 * In the WeChat mini-program's web-view: its user agent says miniProgram (MiniProgramEnv on PC WeChat), and
 * WeChat's JS bridge sets __wxjs_environment. A page opened from a link elsewhere says neither.
 */
function inMiniProgram(): boolean {
  const env = (window as unknown as { __wxjs_environment?: unknown }).__wxjs_environment;
  return env === 'miniprogram' || /miniprogram/i.test(navigator.userAgent);
}
const TOAST_MS = 6000;
const FIRST_QR_MAX_AGE_MS = 10_000;

class Page implements Shell {
  readonly api = new Api();
  card: Ecard | undefined;
  notice: MessageKey | undefined;
  private view: ScreenView | undefined;
  private readonly live: LiveEvents;
  private readonly main = h('main', { id: 'main', tabindex: '-1' });
  /**
   * Skip to the content: focus moves there, and the hash (the screen) stays. Followed as a link, #main
   * named no screen and drew the home screen instead, losing the screen and what was typed in it.
   */
  private readonly skip = h(
    'a',
    {
      class: 'skip',
      href: '#main',
      onclick: (event: Event) => {
        event.preventDefault();
        this.main.focus();
      },
    },
    t('skipToContent'),
  );
  private readonly title = h('h1', { id: 'title', tabindex: '-1' });
  private readonly back = h('a', { class: 'back', href: '#/home' }, '‹ ', t('back'));
  private readonly langButton = h('button', { type: 'button', class: 'lang' });
  private readonly banner = h('div', { class: 'banner', role: 'status', hidden: true });
  private readonly toastNode = h('div', { class: 'toast', role: 'status', 'aria-live': 'polite' });
  private toastTimer: ReturnType<typeof setTimeout> | undefined;
  private liveState: LiveState = 'offline';
  private firstQr: Promise<unknown> | undefined;
  private firstQrAtMs = 0;

  constructor(private readonly root: HTMLElement) {
    this.live = new LiveEvents(
      this.api,
      {
        onEvent: (event) => this.onEvent(event),
        onResync: () => void this.loadCard().then(() => this.view?.onCard?.()),
        onState: (state) => this.showConnection(state),
        onEnded: () => this.signedOut('sessionEnded'),
      },
      async () => {
        await this.loadCard();
      },
    );
    this.api.onSessionEnded = () => this.signedOut('sessionEnded');
    this.langButton.addEventListener('click', () => {
      setLang(currentLang() === 'en' ? 'zh' : 'en');
      this.rerender();
    });
    window.addEventListener('hashchange', () => this.render());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState !== 'visible' || this.card === undefined) return;
      this.live.reconnectNow();
      void this.loadCard().then(
        () => this.view?.onCard?.(),
        () => undefined,
      );
    });
    window.addEventListener('offline', () => this.showConnection('offline'));
  }

  async boot(): Promise<void> {
    setLang(currentLang());
    this.root.replaceChildren(
      this.skip,
      h('header', { class: 'top' }, this.back, this.title, this.langButton),
      this.banner,
      this.main,
      this.toastNode,
    );
    const params = new URLSearchParams(location.search);
    const code = params.get('code');
    if (code !== null) {
      history.replaceState(null, '', `${location.pathname}${location.hash}`);
      await this.signIn(params.get('provider') ?? 'wecom', code, params.get('state') ?? '');
      return;
    }
    if (!this.api.signedIn) return this.go('signin');
    await this.afterSignIn();
  }

  private async signIn(provider: string, code: string, state: string): Promise<void> {
    let expected: string | null = null;
    try {
      expected = sessionStorage.getItem(STATE_KEY);
      sessionStorage.removeItem(STATE_KEY);
    } catch {
      expected = null;
    }
    // Only a code that came back with the state this page kept is its own. Another (a WeCom menu address with
    // a state of its own, opened after a 通过企业微信登录 the holder did not finish; or someone's link) is
    // treated like a code with no state: taken for an account with a card, asked again otherwise. Refusing
    // it said 登录已失效 to a holder who had done nothing wrong.
    const ours = expected !== null && expected === state;
    this.main.replaceChildren(h('p', { class: 'loading' }, t('signingIn')));
    try {
      this.api.clear();
      const { bound } = await this.api.signIn(provider, code);
      // A WeCom code that did not come back from this page's own request (no state of ours: a link
      // someone sent, or a WeCom menu address) may be another person's: on an account without a card,
      // the holder would bind their own card to it. Ask WeCom again with our own state (silent inside
      // WeCom); a bound account shows its card as before, so opening the page to pay stays one step.
      if (!bound && provider === 'wecom' && !ours) {
        await this.api.logout().catch(() => undefined);
        const settings = signInSettings();
        if (startAuthorization(settings)) return;
        // The state cannot be kept (no storage): the code cannot be told from someone else's, and asking
        // again would come back the same way. Say so, not 登录已失效 and a button that goes round in circles.
        // (Sign-in not configured: the sign-in screen says that itself.)
        this.notice = settings.oauthBase === '' || settings.appId === '' ? undefined : 'signInUnverified';
        return this.go('signin');
      }
      // The same for a mini-program code (?provider=wechat&code=…): it comes in the mini-program's web-view
      // src, where no state of the page's can go. A link with one opened anywhere else (a browser, WeChat's
      // chat) may carry someone else's code: on an account without a card, do not offer the binding form.
      if (!bound && provider === 'wechat' && !inMiniProgram()) {
        await this.api.logout().catch(() => undefined);
        this.notice = 'openInMiniProgram';
        return this.go('signin');
      }
      // A bound holder opens the page to pay: ask for the code beside the card, not after it.
      if (bound) {
        this.firstQr = this.api.call('GET', '/api/v1/ecard/qr');
        this.firstQrAtMs = Date.now();
        this.firstQr.catch(() => undefined);
      }
    } catch (err) {
      this.notice = 'sessionEnded';
      this.go('signin');
      if (err instanceof ApiError) this.toast(currentLang() === 'en' ? err.messageEn : err.message);
      return;
    }
    await this.afterSignIn();
  }

  private async afterSignIn(): Promise<void> {
    try {
      await this.loadCard();
    } catch (err) {
      if (err instanceof ApiError && err.code === 'NOT_BOUND') return this.go('bind');
      if (!this.api.signedIn) return;
      this.main.replaceChildren(h('p', { class: 'notice warning', role: 'alert' }, err instanceof ApiError ? err.message : t('retry')));
      return;
    }
    this.startLive();
    const wanted = routeOf(location.hash);
    this.go(wanted !== undefined && wanted !== 'signin' && wanted !== 'bind' ? wanted : 'home');
  }

  async loadCard(): Promise<Ecard> {
    const card = await this.api.call<Ecard>('GET', '/api/v1/ecard');
    this.card = card;
    return card;
  }

  takeFirstQr(): Promise<unknown> | undefined {
    const first = this.firstQr;
    this.firstQr = undefined;
    // Only for the home screen right after sign-in: a code asked for long ago is not shown.
    return Date.now() - this.firstQrAtMs < FIRST_QR_MAX_AGE_MS ? first : undefined;
  }

  startLive(): void {
    this.live.start();
  }

  go(route: Route): void {
    const hash = `#/${route}`;
    if (location.hash === hash) this.render();
    else location.hash = hash;
  }

  rerender(): void {
    this.render(false);
  }

  private render(moveFocus = true): void {
    let route = routeOf(location.hash) ?? 'home';
    if (!this.api.signedIn) route = 'signin';
    else if (this.card === undefined && route !== 'bind') route = 'bind';
    else if (this.card !== undefined && (route === 'bind' || route === 'signin')) route = 'home';
    this.view?.dispose?.();
    // A message about the screen before does not stay over the next one (or the other language).
    this.toastNode.classList.remove('shown');
    const view = SCREENS[route](this);
    this.view = view;
    document.title = `${view.title} · ${t('appTitle')}`;
    this.title.textContent = view.title;
    this.back.hidden = route === 'home' || route === 'signin' || route === 'bind';
    this.back.replaceChildren('‹ ', t('back'));
    this.skip.textContent = t('skipToContent');
    this.langButton.textContent = t('switchLanguage');
    this.langButton.setAttribute('aria-label', t('switchLanguageLabel'));
    this.langButton.setAttribute('lang', currentLang() === 'en' ? 'zh-CN' : 'en');
    this.main.replaceChildren(view.node);
    this.main.dataset['screen'] = route;
    this.showConnection(this.liveState);
    if (moveFocus) this.title.focus({ preventScroll: false });
  }

  toast(text: string): void {
    this.toastNode.textContent = text;
    this.toastNode.classList.add('shown');
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => this.toastNode.classList.remove('shown'), TOAST_MS);
  }

  signedOut(notice: MessageKey): void {
    this.live.stop();
    this.api.clear();
    this.card = undefined;
    this.notice = notice;
    this.go('signin');
  }

  private showConnection(state: LiveState): void {
    this.liveState = state;
    const show = this.card !== undefined && state !== 'live';
    this.banner.hidden = !show;
    this.banner.className = `banner ${state}`;
    this.banner.textContent = show ? (state === 'offline' ? t('offline') : t('connecting')) : '';
  }

  private onEvent(event: CardEvent): void {
    const card = this.card;
    if (card !== undefined) {
      if (event.balanceFen !== undefined) card.balanceFen = event.balanceFen;
      if (event.type === 'card_status' && event.status !== undefined) card.status = event.status;
    }
    if (this.view?.onEvent !== undefined) this.view.onEvent(event);
    else {
      const text =
        event.type === 'payment'
          ? `${t(event.approved === true ? 'paymentApproved' : 'paymentDeclined')} ${yuan(event.amountFen ?? 0)}`
          : eventText(event);
      if (text !== undefined) this.toast(text);
    }
  }
}

const root = document.getElementById('app');
if (root !== null) void new Page(root).boot();
