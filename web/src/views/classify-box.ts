import { h, shortHex } from '../dom.ts';
import { type Gateway, GqlError } from '../gateway.ts';
import { CLASSIFY, type Classification } from '../queries.ts';

/** Longest text sent (schema/classify.ts refuses more: the model reads no further). */
const MAX_CHARS = 20_000;

/**
 * The Models page's "try the model" box: text in, the newest committed version's verdict, score
 * and version out. Everything shown is set as DOM text, never as HTML.
 */
export function classifyBox(gw: Gateway): HTMLElement {
  const text = h('textarea', {
    rows: 4,
    maxlength: MAX_CHARS,
    placeholder: 'Paste a message to check it with the newest model version',
    'data-testid': 'classify-text',
  });
  const verdict = h('p', { class: 'result', 'data-testid': 'classify-result', 'aria-live': 'polite' });
  const show = (ok: boolean, line: string) => {
    verdict.className = `result ${ok ? 'ok' : 'bad'}`;
    verdict.textContent = line;
  };
  const run = async (ev: Event) => {
    ev.preventDefault();
    verdict.dataset.pending = 'true';
    show(true, 'Classifying…');
    try {
      const { classify: c } = await gw.query<{ classify: Classification }>(CLASSIFY, { text: text.value });
      verdict.dataset.spam = String(c.spam);
      show(
        true,
        `${c.spam ? 'Spam' : 'Not spam'} — score ${c.score.toFixed(4)} (model round ${c.round}, version ${shortHex(c.version)})`,
      );
    } catch (err) {
      const e = err instanceof GqlError ? err : new GqlError(String(err), undefined, undefined);
      delete verdict.dataset.spam;
      show(false, `${e.code ? `${e.code}: ` : ''}${e.message}`);
    } finally {
      delete verdict.dataset.pending;
    }
  };
  return h(
    'section',
    { class: 'classify', 'data-testid': 'classify-box' },
    h('h2', null, 'Try the model'),
    h(
      'form',
      { onsubmit: run },
      text,
      h('button', { type: 'submit', 'data-testid': 'classify-submit' }, 'Classify'),
    ),
    verdict,
  );
}
