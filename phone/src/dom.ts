// A few DOM helpers instead of a framework: the page is a handful of forms and lists, re-rendered whole
// per screen, so a 2 KB helper does what a 40 KB library would.
type Child = Node | string | number | null | undefined | false;
type Props = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') node.addEventListener(name.slice(2).toLowerCase(), value);
    else if (name === 'class') node.className = String(value);
    else if (value === true) node.setAttribute(name, '');
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

export function append(node: Node, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
}

export function clear(node: Node): void {
  while (node.firstChild !== null) node.removeChild(node.firstChild);
}

/** Integer fen as yuan with two decimals; never through floating point. */
export function yuan(fen: number, signed = false): string {
  const negative = fen < 0;
  const abs = Math.abs(Math.trunc(fen));
  const text = `${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
  return `${negative ? '-' : signed && fen > 0 ? '+' : ''}¥${text}`;
}

/** "12", "12.5", "12.50" -> fen; undefined for anything else (more than 2 decimals, signs, letters). */
export function parseYuan(text: string): number | undefined {
  const match = /^\s*(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(text);
  if (match === null) return undefined;
  return Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
}

const SHANGHAI = 'Asia/Shanghai';
const CST_OFFSET_MS = 8 * 3_600_000;

export function formatTime(ms: number, lang: string): string {
  return new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'zh-CN', {
    timeZone: SHANGHAI,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hour12: false,
  }).format(ms);
}

/** The campus day (China Standard Time) of `ms` as YYYY-MM-DD. */
export function cstDate(ms: number): string {
  return new Date(ms + CST_OFFSET_MS).toISOString().slice(0, 10);
}

/** Midnight China Standard Time of a YYYY-MM-DD date, in ms; undefined when not a date. */
export function cstMidnight(date: string): number | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (match === null) return undefined;
  const ms = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) - CST_OFFSET_MS;
  return Number.isFinite(ms) ? ms : undefined;
}

/** An id for a label/field pair. */
let nextId = 0;
export function uid(prefix: string): string {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** Random text for a request id (recharge: 1-64 of A-Z a-z 0-9 _ -). */
export function randomId(length = 24): string {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

/** A fee's requestId: a random integer 1..2^53-1. */
export function randomRequestNumber(): number {
  const words = new Uint32Array(2);
  crypto.getRandomValues(words);
  return ((words[0] ?? 0) & 0x1fffff) * 2 ** 32 + (words[1] ?? 0) || 1;
}
