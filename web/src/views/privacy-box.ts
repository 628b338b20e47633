import { lineChart } from '../chart.ts';
import { emptyState, errorBox, fmtNum, h, mount, shortHex, table } from '../dom.ts';
import type { Gateway } from '../gateway.ts';
import { FL_PRIVACY, type FlPrivacy } from '../queries.ts';

/**
 * The Models page's privacy box: each node's record-level ε spent against its budget (the
 * node's own ledger, as its stats reports carry it), and ε over the rounds it was charged for.
 * A node at its budget declines further rounds until an operator raises it (POST /fl/budget).
 */
export function privacyBox(gw: Gateway): { el: HTMLElement; load: () => Promise<void> } {
  const body = h('div');
  const el = h(
    'section',
    { class: 'privacy', 'data-testid': 'privacy-box' },
    h('h2', null, 'Privacy spent (record-level DP)'),
    body,
  );
  const render = (nodes: FlPrivacy[], error?: unknown) =>
    mount(
      body,
      error ? errorBox(error) : null,
      nodes.length
        ? [
            table(
              { 'data-testid': 'privacy-table' },
              ['Node', 'Mode', 'ε spent', 'Budget', 'Spent', 'Rounds', 'δ'],
              nodes.map((n) =>
                h(
                  'tr',
                  { 'data-testid': 'privacy-row', 'data-node': n.nodeId },
                  h('td', { class: 'mono', title: n.nodeId }, shortHex(n.nodeId, 8)),
                  h('td', null, n.mode === 'record' ? 'record' : 'update (whole updates only)'),
                  h('td', { 'data-testid': 'privacy-epsilon' }, fmtNum(n.epsilon, 3)),
                  h('td', null, fmtNum(n.budget, 3)),
                  h(
                    'td',
                    null,
                    h('progress', {
                      max: n.budget > 0 ? n.budget : 1,
                      value: Math.min(n.epsilon, n.budget > 0 ? n.budget : 1),
                      title: `${fmtNum(n.epsilon, 3)} of ${fmtNum(n.budget, 3)}`,
                    }),
                    n.remaining <= 0 ? ' exhausted' : '',
                  ),
                  h('td', null, String(n.rounds)),
                  h('td', null, String(n.delta)),
                ),
              ),
            ),
            h(
              'div',
              { class: 'charts' },
              nodes
                .filter((n) => n.history.length > 0)
                .map((n) =>
                  h(
                    'section',
                    null,
                    h('h3', { class: 'mono' }, `ε by round — ${shortHex(n.nodeId, 8)}`),
                    lineChart(
                      n.history.map((p) => ({ t: p.rounds, v: p.epsilon })),
                      { testid: 'chart-privacy', step: true, xLabel: (r) => `round ${r}` },
                    ),
                  ),
                ),
            ),
          ]
        : emptyState('No node has reported a privacy ledger yet.', 'privacy-empty'),
    );
  const load = async () => {
    try {
      const d = await gw.query<{ flPrivacy: FlPrivacy[] }>(FL_PRIVACY);
      render(d.flPrivacy);
    } catch (err) {
      render([], err);
    }
  };
  render([]);
  return { el, load };
}
