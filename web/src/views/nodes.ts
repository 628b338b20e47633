import { emptyState, errorBox, fmtTime, h, mount, shortHex, table } from '../dom.ts';
import {
  type Connection,
  NODES,
  NODES_DETAIL,
  type NodeInfo,
  SUB_NODE,
  SUB_NODE_DETAIL,
} from '../queries.ts';
import { attempt, loadAndReload, type View } from './view.ts';

/**
 * "3f2a…: tcp 2 · relayed 1", and a warning when every connection goes through a relay (the node
 * is reachable, but only as fast as its relay and within the relay's limits).
 */
const connectionsLine = (n: NodeInfo): string => {
  const cs = n.connections ?? [];
  const text = cs.length ? cs.map((c) => `${c.kind} ${c.count}`).join(' · ') : 'none reported';
  const relayedOnly = cs.length > 0 && cs.every((c) => c.kind === 'relayed');
  return `${shortHex(n.id, 6)}: ${text}${relayedOnly ? ' (relayed only)' : ''}`;
};

/** Known nodes with their peers; each node's status is replaced live by nodeStatus events. */
export const nodesView: View = (root, { gw, params }) => {
  // #/nodes/<id> (the Knowledge page's author links) marks that node's row.
  const selected = params[0];
  const byId = new Map<string, NodeInfo>();
  let error: unknown;
  const body = h('div');
  mount(root, h('h1', null, 'Nodes and peers'), body);
  // Peers and addresses are a map of the network: the gateway gives them to token holders only.
  const detail = gw.token() !== '';

  const render = () => {
    const nodes = [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
    const known = new Set(nodes.map((n) => n.id));
    const name = (id: string) => {
      const i = nodes.findIndex((n) => n.id === id);
      return i >= 0 ? `#${i + 1} ${shortHex(id, 6)}` : shortHex(id, 6);
    };
    mount(
      body,
      error ? errorBox(error) : null,
      nodes.length
        ? table(
            { class: 'nodes', 'data-testid': 'node-table' },
            [
              '',
              'Peer id',
              'Role',
              'Capabilities',
              'Height',
              'Head',
              'Peers',
              'Mempool',
              'Mining',
              'Last seen',
              '',
            ],
            nodes.map((n, i) =>
              h(
                'tr',
                {
                  'data-testid': 'node-row',
                  'data-node-id': n.id,
                  class: n.id === selected ? 'selected' : undefined,
                },
                h('td', null, `#${i + 1}`),
                h('td', { class: 'mono', title: n.id }, shortHex(n.id, 10)),
                h('td', null, n.role),
                h('td', null, n.capabilities.join(', ')),
                h('td', null, String(n.height)),
                h('td', { class: 'mono' }, h('a', { href: `#/block/${n.headHash}` }, shortHex(n.headHash))),
                h(
                  'td',
                  { class: 'peers' },
                  `${n.peerCount}${n.peers ? ': ' : ''}`,
                  (n.peers ?? []).map((p) =>
                    h('span', { class: known.has(p) ? 'peer known' : 'peer', title: p }, name(p)),
                  ),
                ),
                h('td', null, String(n.mempoolSize)),
                h('td', null, n.mining ? 'yes' : 'no'),
                h('td', null, fmtTime(n.lastSeenAt)),
                h('td', null, h('a', { href: `#/admin/${n.id}` }, 'admin')),
              ),
            ),
          )
        : emptyState('No node has reported yet (nodes report every 60 s, or on "Report stats now").'),
      detail
        ? [
            h(
              'p',
              { class: 'muted', 'data-testid': 'node-connections' },
              'Connections by kind: ',
              nodes.map((n) => h('div', { class: 'small', 'data-node-id': n.id }, connectionsLine(n))),
            ),
            h(
              'p',
              { class: 'muted' },
              'Addresses: ',
              nodes.map((n) =>
                h('div', { class: 'mono small' }, `${shortHex(n.id, 6)}: ${(n.addrs ?? []).join('  ')}`),
              ),
            ),
          ]
        : h(
            'p',
            { class: 'muted', 'data-testid': 'peers-need-token' },
            'Peer lists and addresses are shown with a token (Admin page).',
          ),
    );
  };

  const load = async () => {
    error = await attempt(async () => {
      const d = await gw.query<{ nodes: Connection<NodeInfo> }>(detail ? NODES_DETAIL : NODES);
      for (const e of d.nodes.edges) byId.set(e.node.id, e.node);
    });
    render();
  };
  render();
  const offLoad = loadAndReload(gw, load);
  const offSub = gw.subscribe<{ nodeStatus: NodeInfo }>(
    detail ? SUB_NODE_DETAIL : SUB_NODE,
    {},
    ({ nodeStatus }) => {
      byId.set(nodeStatus.id, nodeStatus);
      render();
    },
  );
  return () => {
    offLoad();
    offSub();
  };
};
