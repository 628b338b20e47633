/** A tiny DOM builder: enough for a console of tables and forms, no framework needed. */
import { safeHref, URL_ATTRIBUTES } from './safe-href.ts';

export type Child = Node | string | number | null | undefined | false | Child[];
type AttrValue = string | number | boolean | null | undefined | ((ev: Event) => void);

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, AttrValue> | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, '').toLowerCase(), v);
    else if (k === 'value' && 'value' in el) (el as HTMLInputElement).value = String(v);
    else if (URL_ATTRIBUTES.has(k.toLowerCase())) {
      // Built from data: a script URL is dropped, the element stays (as a plain text link).
      const href = safeHref(String(v));
      if (href !== undefined) el.setAttribute(k, href);
    } else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** A table with one header row and `rows` as its body. */
export function table(
  attrs: Record<string, AttrValue> | null,
  headers: readonly string[],
  rows: Child[],
): HTMLTableElement {
  return h(
    'table',
    attrs,
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        headers.map((t) => h('th', null, t)),
      ),
    ),
    h('tbody', null, rows),
  );
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else
      el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces the element's children. */
export function mount(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

export function shortHex(hex: string | null | undefined, n = 8): string {
  if (!hex) return '—';
  return hex.length <= 2 * n + 1 ? hex : `${hex.slice(0, n)}…${hex.slice(-4)}`;
}

export function fmtTime(iso: string | number | null | undefined): string {
  if (iso === null || iso === undefined || iso === '') return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString();
}

export function fmtDateTime(iso: string | number | null | undefined): string {
  if (iso === null || iso === undefined || iso === '') return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function fmtNum(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (Math.abs(x) >= 1e6) return x.toExponential(digits);
  return Number.isInteger(x) ? x.toLocaleString() : x.toFixed(digits);
}

/** An error box with a stable test id. */
export function errorBox(err: unknown): HTMLElement {
  const e = err as { message?: string; code?: string };
  return h(
    'p',
    { class: 'error', 'data-testid': 'error' },
    e.code ? `${e.code}: ` : '',
    e.message ?? String(err),
  );
}

export function emptyState(text: string, testid = 'empty'): HTMLElement {
  return h('p', { class: 'empty', 'data-testid': testid }, text);
}
