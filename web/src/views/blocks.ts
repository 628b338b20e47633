import { emptyState, errorBox, fmtTime, h, mount, shortHex, table } from '../dom.ts';
import { BLOCKS, type BlockSummary, type Connection, SUB_NEW_BLOCK } from '../queries.ts';
import { attempt, loadAndReload, type View } from './view.ts';

export function blockTable(
  blocks: readonly BlockSummary[],
  fresh: ReadonlySet<string> = new Set(),
): HTMLElement {
  return table(
    { class: 'blocks', 'data-testid': 'block-table' },
    ['Height', 'Hash', 'Time', 'Entries', 'Size', 'Miner', 'Reported by'],
    blocks.map((b) =>
      h(
        'tr',
        {
          'data-testid': 'block-row',
          'data-height': b.height,
          'data-hash': b.hash,
          class: fresh.has(b.hash) ? 'fresh' : undefined,
        },
        h('td', null, h('a', { href: `#/block/${b.hash}` }, String(b.height))),
        h('td', { class: 'mono' }, h('a', { href: `#/block/${b.hash}` }, shortHex(b.hash, 12))),
        h('td', null, fmtTime(b.timestamp)),
        h('td', null, String(b.entryCount)),
        h('td', null, `${b.sizeBytes} B`),
        h('td', { class: 'mono', title: b.miner }, shortHex(b.miner)),
        h('td', { class: 'mono', title: b.reportedBy }, shortHex(b.reportedBy, 6)),
      ),
    ),
  );
}

/** Canonical blocks newest first; new ones arrive through the newBlock subscription. */
export const blocksView: View = (root, { gw }) => {
  let blocks: BlockSummary[] = [];
  let endCursor: string | null = null;
  let hasMore = false;
  let error: unknown;
  const fresh = new Set<string>();
  const list = h('div');
  const err = h('div');
  const counter = h('span', { class: 'muted', 'data-testid': 'live-count' });
  const more = h('button', { type: 'button', onclick: () => void older() }, 'Load older');
  mount(root, h('h1', null, 'Live blocks ', counter), err, list, h('p', null, more));

  const render = () => {
    mount(err, error ? errorBox(error) : null);
    mount(
      list,
      blocks.length
        ? blockTable(blocks, fresh)
        : emptyState('No blocks indexed yet: waiting for the first one.'),
    );
    counter.textContent = fresh.size ? `(${fresh.size} arrived live)` : '';
    more.hidden = !hasMore;
  };

  const merge = (incoming: readonly BlockSummary[]) => {
    const byHash = new Map(blocks.map((b) => [b.hash, b]));
    for (const b of incoming) byHash.set(b.hash, b);
    blocks = [...byHash.values()].sort((a, b) => b.height - a.height);
  };

  const load = async () => {
    error = await attempt(async () => {
      const d = await gw.query<{ blockConnection: Connection<BlockSummary> }>(BLOCKS);
      // Keep what is already shown (older pages) and add the newest page on top.
      merge(d.blockConnection.edges.map((e) => e.node));
      if (endCursor === null) {
        endCursor = d.blockConnection.pageInfo.endCursor;
        hasMore = d.blockConnection.pageInfo.hasNextPage;
      }
    });
    render();
  };

  const older = async () => {
    if (!endCursor) return;
    error = await attempt(async () => {
      const d = await gw.query<{ blockConnection: Connection<BlockSummary> }>(BLOCKS, { after: endCursor });
      merge(d.blockConnection.edges.map((e) => e.node));
      endCursor = d.blockConnection.pageInfo.endCursor;
      hasMore = d.blockConnection.pageInfo.hasNextPage;
    });
    render();
  };

  render();
  const offLoad = loadAndReload(gw, load);
  const offSub = gw.subscribe<{ newBlock: BlockSummary }>(SUB_NEW_BLOCK, {}, ({ newBlock }) => {
    fresh.add(newBlock.hash);
    merge([newBlock]);
    render();
  });
  return () => {
    offLoad();
    offSub();
  };
};
