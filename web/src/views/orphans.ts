import { emptyState, errorBox, fmtDateTime, h, mount, shortHex, table } from '../dom.ts';
import { type Connection, ORPHANS, type Orphan, SUB_ORPHAN } from '../queries.ts';
import { attempt, loadAndReload, type View } from './view.ts';

const REASONS: Record<string, string> = {
  'unknown-parent': 'waited for an unknown parent',
  'reorged-out': 'lost a reorg',
  'side-chain': 'stayed on a side chain',
  dropped: 'dropped from the orphan pool',
};

export const orphansView: View = (root, { gw }) => {
  let orphans: Orphan[] = [];
  let error: unknown;
  const body = h('div');
  mount(root, h('h1', null, 'Orphaned blocks'), body);
  const key = (o: Orphan) => `${o.hash}:${o.reason}`;
  const render = () =>
    mount(
      body,
      error ? errorBox(error) : null,
      orphans.length
        ? table(
            { 'data-testid': 'orphan-table' },
            ['Height', 'Hash', 'Reason', 'Parent', 'Miner', 'Reported by', 'At'],
            orphans.map((o) =>
              h(
                'tr',
                { 'data-testid': 'orphan-row' },
                h('td', null, String(o.height)),
                h('td', { class: 'mono', title: o.hash }, shortHex(o.hash, 12)),
                h(
                  'td',
                  { title: REASONS[o.reason] ?? o.reason },
                  o.reorgDepth ? `${o.reason} (depth ${o.reorgDepth})` : o.reason,
                ),
                h('td', { class: 'mono', title: o.prevHash }, shortHex(o.prevHash)),
                h('td', { class: 'mono', title: o.miner }, shortHex(o.miner)),
                h('td', { class: 'mono', title: o.reportedBy }, shortHex(o.reportedBy, 6)),
                h('td', null, fmtDateTime(o.at)),
              ),
            ),
          )
        : emptyState('No orphaned blocks: every reported block is on the canonical chain.'),
    );
  const load = async () => {
    error = await attempt(async () => {
      const d = await gw.query<{ orphanedBlocks: Connection<Orphan> }>(ORPHANS);
      orphans = d.orphanedBlocks.edges.map((e) => e.node);
    });
    render();
  };
  render();
  const offLoad = loadAndReload(gw, load);
  const offSub = gw.subscribe<{ orphanedBlock: Orphan }>(SUB_ORPHAN, {}, ({ orphanedBlock }) => {
    orphans = [orphanedBlock, ...orphans.filter((o) => key(o) !== key(orphanedBlock))];
    render();
  });
  return () => {
    offLoad();
    offSub();
  };
};
