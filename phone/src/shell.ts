// What a screen gets from the page: the API, the card as last loaded, navigation, and a few shared bits.
import type { Api, CardEvent, Ecard } from './api.js';
import type { MessageKey } from './i18n.js';

export interface Shell {
  readonly api: Api;
  /** The card as last loaded or updated by an event; undefined before binding. */
  card: Ecard | undefined;
  /** A message for the sign-in screen (why the holder is there). */
  notice: MessageKey | undefined;
  go(route: Route): void;
  loadCard(): Promise<Ecard>;
  /** Re-renders the current screen (after a language switch or a new card state). */
  rerender(): void;
  /** A short message read out and shown for a few seconds. */
  toast(text: string): void;
  /** Ends the session on this page: the tokens are dropped, the live events stop. */
  signedOut(notice: MessageKey): void;
  /** Starts the live events once a card is bound. */
  startLive(): void;
  /** The campus QR code asked for beside the card at sign-in (one round trip less on a slow network), once. */
  takeFirstQr(): Promise<unknown> | undefined;
}

export type Route = 'signin' | 'bind' | 'home' | 'me' | 'recharge' | 'statement' | 'loss' | 'network' | 'electricity';

export interface ScreenView {
  readonly title: string;
  readonly node: HTMLElement;
  dispose?(): void;
  onEvent?(event: CardEvent): void;
  /** The card was reloaded (visibility, resync). */
  onCard?(): void;
}

export type Screen = (shell: Shell) => ScreenView;
