// Form fields with their label, hint and error in place, and the GOV.UK error summary at the top of the
// form that links to each field in error. Forms are validated by the page (novalidate): the browser's own
// bubbles cannot be styled, translated or read in order.
import { ApiError } from './api.js';
import { h, uid } from './dom.js';
import { serverText, t } from './i18n.js';

export type Control = HTMLInputElement | HTMLSelectElement;

export interface Field {
  readonly name: string;
  readonly control: Control;
  readonly node: HTMLElement;
  readonly error: HTMLElement;
}

export function field(name: string, label: string, control: Control, hint?: string): Field {
  const id = control.id !== '' ? control.id : uid(name);
  control.id = id;
  control.name = name;
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const hintNode = hint === undefined ? null : h('p', { class: 'field-hint', id: `${id}-hint` }, hint);
  control.setAttribute('aria-describedby', [hintNode === null ? '' : `${id}-hint`, `${id}-error`].join(' ').trim());
  const node = h('div', { class: 'field' }, h('label', { for: id }, label), hintNode, error, control);
  return { name, control, node, error };
}

export function input(props: Record<string, string | boolean> = {}): HTMLInputElement {
  return h('input', { type: 'text', autocomplete: 'off', ...props });
}

export function passwordInput(props: Record<string, string | boolean> = {}): HTMLInputElement {
  return h('input', { type: 'password', inputmode: 'numeric', maxlength: '6', autocomplete: 'off', ...props });
}

export function select(options: [string, string][], value = ''): HTMLSelectElement {
  const node = h('select', {}, ...options.map(([v, text]) => h('option', { value: v }, text)));
  node.value = value === '' ? (options[0]?.[0] ?? '') : value;
  return node;
}

export interface Problem {
  readonly field?: string;
  readonly text: string;
}

/** The errors of one form: next to each field and in a summary at the top. */
export class FormErrors {
  readonly summary: HTMLElement;
  private readonly list: HTMLElement;

  constructor(private readonly fields: readonly Field[]) {
    this.list = h('ul', {});
    this.summary = h(
      'div',
      { class: 'error-summary', role: 'alert', tabindex: '-1', hidden: true },
      h('h2', {}, t('errorSummary')),
      this.list,
    );
  }

  clear(): void {
    this.summary.hidden = true;
    this.list.replaceChildren();
    for (const f of this.fields) {
      f.error.hidden = true;
      f.error.textContent = '';
      f.control.removeAttribute('aria-invalid');
      f.node.classList.remove('has-error');
    }
  }

  /** Shows the problems; answers false when there were none. */
  show(problems: readonly Problem[]): boolean {
    this.clear();
    if (problems.length === 0) return false;
    for (const problem of problems) {
      const f = this.fields.find((x) => x.name === problem.field);
      if (f !== undefined && f.error.hidden) {
        f.error.textContent = problem.text;
        f.error.hidden = false;
        f.control.setAttribute('aria-invalid', 'true');
        f.node.classList.add('has-error');
        const link = h('a', { href: `#${f.control.id}` }, problem.text);
        link.addEventListener('click', (event) => {
          event.preventDefault();
          f.control.focus();
        });
        this.list.append(h('li', {}, link));
      } else if (f === undefined) {
        this.list.append(h('li', {}, problem.text));
      }
    }
    this.summary.hidden = false;
    this.summary.focus();
    return true;
  }

  /** A refusal of the server: by its field when it names one of ours (or `fieldOf` maps its code). */
  showError(err: unknown, fieldOf: Record<string, string> = {}): void {
    if (err instanceof ApiError) this.show([{ field: err.field ?? fieldOf[err.code], text: serverText(err) }]);
    else this.show([{ text: t('retry') }]);
  }
}

/** A button that shows `busyText` and is disabled while `work` runs. */
export async function busy(button: HTMLButtonElement, busyText: string, work: () => Promise<void>): Promise<void> {
  const text = button.textContent ?? '';
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.textContent = busyText;
  try {
    await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = text;
  }
}
