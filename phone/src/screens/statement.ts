// The statement: a date range (campus days, China Standard Time), a kind filter, pages of 20 newest first
// ("load more" follows nextPageToken), and the spending of the lines loaded, by day and by merchant, as two
// small bar charts drawn with plain elements (each bar's figure is text, so a screen reader reads it too).
import { ApiError } from '../api.js';
import { cstDate, cstMidnight, formatTime, h, yuan } from '../dom.js';
import { busy, field, FormErrors, input, select } from '../forms.js';
import { currentLang, serverText, t } from '../i18n.js';
import type { Screen } from '../shell.js';

interface Line {
  transactionId: string;
  kind: string;
  amountFen: number;
  balanceAfterFen: number;
  atMs: number;
  merchantId: string;
  location: string;
  description: string;
}

const PAGE_SIZE = 20;
const DAY_MS = 86_400_000;
const SPENDING_KINDS = new Set(['payment', 'channel_payment', 'water', 'fee']);
const MAX_BARS = 7;

function bars(title: string, entries: [string, number][]): HTMLElement {
  const top = entries.slice(0, MAX_BARS);
  const max = Math.max(1, ...top.map(([, v]) => v));
  return h(
    'figure',
    { class: 'chart' },
    h('figcaption', {}, title),
    h(
      'ul',
      {},
      top.map(([label, fen]) =>
        h(
          'li',
          {},
          h('span', { class: 'bar-label' }, label),
          h(
            'span',
            { class: 'bar-track', 'aria-hidden': 'true' },
            h('span', { class: `bar w${Math.max(1, Math.round((fen / max) * 20))}` }),
          ),
          h('span', { class: 'bar-value' }, yuan(fen)),
        ),
      ),
    ),
  );
}

function charts(lines: readonly Line[]): HTMLElement | null {
  const byDay = new Map<string, number>();
  const byMerchant = new Map<string, number>();
  for (const line of lines) {
    if (!SPENDING_KINDS.has(line.kind) || line.amountFen >= 0) continue;
    const day = cstDate(line.atMs).slice(5);
    byDay.set(day, (byDay.get(day) ?? 0) - line.amountFen);
    const where = line.location !== '' ? line.location : line.merchantId !== '' ? line.merchantId : line.description;
    byMerchant.set(where, (byMerchant.get(where) ?? 0) - line.amountFen);
  }
  if (byDay.size === 0) return null;
  const days = [...byDay].sort((a, b) => (a[0] < b[0] ? 1 : -1));
  const merchants = [...byMerchant].sort((a, b) => b[1] - a[1]);
  return h(
    'section',
    { class: 'panel charts' },
    bars(t('spendingByDay'), days),
    bars(t('spendingByMerchant'), merchants),
    h('p', { class: 'hint' }, t('chartNote', { n: lines.length })),
  );
}

export const statementScreen: Screen = (shell) => {
  const today = cstDate(Date.now());
  const from = input({ type: 'date', value: cstDate(Date.now() - 29 * DAY_MS) });
  const to = input({ type: 'date', value: today });
  const kind = select([
    ['', t('kindAll')],
    ['payment', t('kindPayment')],
    ['recharge', t('kindRecharge')],
    ['refund', t('kindRefund')],
    ['reversal', t('kindReversal')],
    ['water', t('kindWater')],
    ['fee', t('kindFee')],
    ['adjustment', t('kindAdjustment')],
    ['channel_payment', t('kindChannelPayment')],
  ]);
  const fields = [field('from', t('fromDate'), from), field('to', t('toDate'), to), field('kinds', t('kind'), kind)];
  const errors = new FormErrors(fields);
  const submit = h('button', { type: 'submit', class: 'primary' }, t('search'));
  const form = h(
    'form',
    { novalidate: true, class: 'panel filters' },
    errors.summary,
    h('div', { class: 'filter-row' }, ...fields.map((f) => f.node)),
    submit,
  );
  const list = h('ol', { class: 'lines', 'aria-label': t('statementTitle') });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, t('loadMore'));
  const end = h('p', { class: 'hint', role: 'status' });
  const chartArea = h('div', {});
  let lines: Line[] = [];
  let token = '';
  let query = '';

  function lineNode(line: Line): HTMLElement {
    const where = [line.location, line.merchantId].filter((x) => x !== '')[0] ?? '';
    return h(
      'li',
      { class: 'line' },
      h(
        'div',
        { class: 'line-main' },
        h('span', { class: 'line-desc' }, line.description),
        h('span', { class: `line-amount ${line.amountFen < 0 ? 'out' : 'in'}` }, yuan(line.amountFen, true)),
      ),
      h(
        'div',
        { class: 'line-sub' },
        h('span', {}, `${formatTime(line.atMs, currentLang())}${where === '' ? '' : ` · ${where}`}`),
        h('span', {}, t('balanceAfterShort', { balance: yuan(line.balanceAfterFen) })),
      ),
    );
  }

  // Each first page starts a new list: an answer to a request made for an older list (a next page asked
  // for before a payment or a new search reloaded the first page) is dropped, or its lines would be
  // appended after the new first page, one shifted line then missing from the statement.
  let generation = 0;
  /** The generation whose first page is shown: "load more" goes on from it only, not while another is coming. */
  let shown = 0;

  async function load(first: boolean): Promise<void> {
    const params = new URLSearchParams(query);
    params.set('pageSize', String(PAGE_SIZE));
    if (!first) params.set('pageToken', token);
    if (first) generation++;
    else if (shown !== generation) return;
    const mine = generation;
    try {
      const page = await shell.api.call<{ lines: Line[]; nextPageToken: string }>('GET', `/api/v1/ecard/statement?${params.toString()}`);
      if (mine !== generation) return;
      if (first) {
        shown = mine;
        lines = [];
        list.replaceChildren();
      }
      lines.push(...page.lines);
      list.append(...page.lines.map(lineNode));
      token = page.nextPageToken;
      more.hidden = token === '';
      end.textContent = token !== '' ? '' : lines.length === 0 ? t('noLines') : t('endOfLines');
      chartArea.replaceChildren(charts(lines) ?? '');
    } catch (err) {
      if (mine !== generation) return;
      // A first page that failed: the token shown belongs to the list before it, not to what was asked.
      if (first) more.hidden = true;
      if (err instanceof ApiError && err.field !== undefined) errors.showError(err);
      else end.textContent = err instanceof ApiError ? serverText(err) : t('retry');
    }
  }

  function search(): void {
    const fromMs = cstMidnight(from.value);
    const toMs = cstMidnight(to.value);
    if (errors.show(fromMs !== undefined && toMs !== undefined && fromMs > toMs ? [{ field: 'from', text: t('errDates') }] : [])) return;
    const params = new URLSearchParams();
    if (fromMs !== undefined) params.set('from', String(fromMs));
    if (toMs !== undefined) params.set('to', String(toMs + DAY_MS));
    if (kind.value !== '') params.set('kinds', kind.value);
    query = params.toString();
    void busy(submit, '…', () => load(true));
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    search();
  });
  more.addEventListener('click', () => void busy(more, '…', () => load(false)));
  search();

  return {
    title: t('statementTitle'),
    node: h('div', {}, form, chartArea, h('section', { class: 'panel' }, list, more, end)),
    onEvent() {
      // A new line: the first page again, with the same filters.
      void load(true);
    },
  };
};
