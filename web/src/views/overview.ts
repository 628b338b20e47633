import { capped, lineChart, type Point } from '../chart.ts';
import { emptyState, errorBox, fmtNum, h, mount, shortHex } from '../dom.ts';
import { type BlockSummary, type Meta, OVERVIEW, type Stats, SUB_NEW_BLOCK, SUB_STATS } from '../queries.ts';
import { blockTable } from './blocks.ts';
import { attempt, loadAndReload, type View } from './view.ts';

interface OverviewData {
  _meta: Meta;
  networkStats: Stats | null;
  networkStatsHistory: Pick<Stats, 'at' | 'chainLengthMax' | 'difficulty'>[];
  networkConfig: { chainId: string; genesisHash: string; config: string } | null;
  blockConnection: { edges: { node: BlockSummary }[] };
}

/**
 * Expected hashes per block at this target, 2^256 / (target + 1): the collector's
 * NetworkStats.difficulty (jobs/collector/network-stats.ts), so both sources draw one line.
 */
export function blockDifficulty(target: string): number | undefined {
  try {
    return Number((1n << 256n) / (BigInt(target) + 1n));
  } catch {
    return undefined;
  }
}

/**
 * Stats, chain height and difficulty over time. Both charts merge the collector's stats history
 * (one point per stats report) with per-block points (height and expected hashes per block of
 * each canonical block), so they move with every block rather than once a minute; live updates come
 * from the newBlock and networkStats subscriptions.
 */
export const overview: View = (root, { gw }) => {
  let meta: Meta | undefined;
  let stats: Stats | null = null;
  let height: Point[] = [];
  let difficulty: Point[] = [];
  let blocks: BlockSummary[] = [];
  let chainId = '';
  let error: unknown;

  const statsGrid = h('div', { class: 'stats', 'data-testid': 'stats' });
  const heightBox = h('div');
  const diffBox = h('div');
  const recent = h('div');
  const err = h('div');
  mount(
    root,
    h('h1', null, 'Overview'),
    err,
    statsGrid,
    h(
      'div',
      { class: 'charts' },
      h('section', null, h('h2', null, 'Chain height'), heightBox),
      h('section', null, h('h2', null, 'Difficulty (expected hashes per block)'), diffBox),
    ),
    h('h2', null, 'Latest blocks ', h('a', { href: '#/blocks', class: 'more' }, 'all live blocks →')),
    recent,
  );

  const render = () => {
    mount(err, error ? errorBox(error) : null);
    const cell = (label: string, value: string, testid?: string) =>
      h(
        'div',
        { class: 'stat' },
        h('span', { class: 'label' }, label),
        h('span', { class: 'value', 'data-testid': testid }, value),
      );
    mount(
      statsGrid,
      cell('Height', meta ? String(meta.height) : '—', 'stat-height'),
      cell('Head', shortHex(meta?.headHash)),
      cell('Nodes', meta ? String(meta.nodes) : '—', 'stat-nodes'),
      cell('Difficulty', fmtNum(stats?.difficulty)),
      cell('Hash rate (H/s)', fmtNum(stats?.hashRate, 0)),
      cell('Avg peers', fmtNum(stats?.avgPeers, 1)),
      cell('Chain length min/max', stats ? `${stats.chainLengthMin} / ${stats.chainLengthMax}` : '—'),
      cell('Mempool total', stats ? String(stats.mempoolTotal) : '—'),
      cell('Chain id', shortHex(chainId)),
    );
    mount(heightBox, lineChart(height, { testid: 'chart-height', step: true }));
    mount(diffBox, lineChart(difficulty, { testid: 'chart-difficulty', step: true }));
    mount(recent, blocks.length ? blockTable(blocks.slice(0, 10)) : emptyState('No blocks indexed yet.'));
  };

  const addBlock = (b: BlockSummary) => {
    const t = Date.parse(b.timestamp);
    height = capped([...height, { t, v: b.height }]);
    const d = blockDifficulty(b.target);
    if (d !== undefined) difficulty = capped([...difficulty, { t, v: d }]);
  };

  const load = async () => {
    error = await attempt(async () => {
      const d = await gw.query<OverviewData>(OVERVIEW);
      meta = d._meta;
      stats = d.networkStats;
      chainId = d.networkConfig?.chainId ?? '';
      blocks = d.blockConnection.edges.map((e) => e.node);
      height = d.networkStatsHistory.map((s) => ({ t: Date.parse(s.at), v: s.chainLengthMax }));
      // A stats row computed before any block was indexed says 0: not a difficulty.
      difficulty = d.networkStatsHistory
        .filter((s) => s.difficulty > 0)
        .map((s) => ({ t: Date.parse(s.at), v: s.difficulty }));
      for (const b of [...blocks].reverse()) addBlock(b);
    });
    render();
  };

  render();
  const offLoad = loadAndReload(gw, load);
  const offBlocks = gw.subscribe<{ newBlock: BlockSummary }>(SUB_NEW_BLOCK, {}, ({ newBlock: b }) => {
    if (blocks.some((x) => x.hash === b.hash)) return;
    blocks = [b, ...blocks].slice(0, 100);
    addBlock(b);
    if (meta && b.height > meta.height) meta = { ...meta, height: b.height, headHash: b.hash };
    render();
  });
  const offStats = gw.subscribe<{ networkStats: Stats }>(SUB_STATS, {}, ({ networkStats: s }) => {
    stats = s;
    const t = Date.parse(s.at);
    height = capped([...height, { t, v: s.chainLengthMax }]);
    if (s.difficulty > 0) difficulty = capped([...difficulty, { t, v: s.difficulty }]);
    if (meta) meta = { ...meta, nodes: Math.max(meta.nodes, s.totalNodes) };
    render();
  });
  return () => {
    offLoad();
    offBlocks();
    offStats();
  };
};
