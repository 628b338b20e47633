import { emptyState, errorBox, fmtTime, h, mount, shortHex, table } from '../dom.ts';
import { MESSAGING_STATS, type MessagingStats, SUB_MESSAGING_STATS } from '../queries.ts';
import { attempt, loadAndReload, type View } from './view.ts';

/** 1536 → "1.5 KiB": mailbox use reads in binary units, as its quotas are set. */
export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

const ms = (x: number | null): string => (x === null ? '—' : `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`);

/**
 * Per-node delivery figures as the nodes' stats reports carry them: sent and delivered since the
 * node started, its outbox, send-to-receipt latency and, on mailbox nodes, what they hold for
 * others. Metadata only: the gateway never sees a message's text or who wrote to whom. The
 * figures are for token holders (viewer and up), like peer lists; rows follow the
 * messagingStats subscription live.
 */
export const messagesView: View = (root, { gw }) => {
  const body = h('div');
  mount(root, h('h1', null, 'Messages'), body);
  if (gw.token() === '') {
    mount(
      body,
      h(
        'p',
        { class: 'muted', 'data-testid': 'messages-need-token' },
        'Delivery figures are shown with a token (Admin page).',
      ),
    );
    return undefined;
  }
  const byId = new Map<string, MessagingStats>();
  let error: unknown;

  const render = () => {
    const nodes = [...byId.values()].sort((a, b) => a.nodeId.localeCompare(b.nodeId));
    mount(
      body,
      error ? errorBox(error) : null,
      h(
        'p',
        { class: 'muted' },
        'Counts since each node started; latency from send to the signed receipt, over its last receipts. ' +
          'Only figures leave the devices: never text, never correspondents.',
      ),
      nodes.length
        ? table(
            { 'data-testid': 'messaging-table' },
            [
              'Node',
              'Sent',
              'Delivered',
              'Pending',
              'Latency p50',
              'Latency p99',
              'Receipts',
              'Mailbox',
              'Reported',
            ],
            nodes.map((n) =>
              h(
                'tr',
                { 'data-testid': 'messaging-row', 'data-node': n.nodeId },
                h('td', { class: 'mono', title: n.nodeId }, shortHex(n.nodeId, 8)),
                h('td', { 'data-testid': 'msg-sent' }, String(n.sent)),
                h('td', { 'data-testid': 'msg-delivered' }, String(n.delivered)),
                h('td', { 'data-testid': 'msg-pending' }, String(n.pending)),
                h('td', { 'data-testid': 'msg-p50', 'data-ms': n.latencyP50Ms ?? '' }, ms(n.latencyP50Ms)),
                h('td', { 'data-testid': 'msg-p99', 'data-ms': n.latencyP99Ms ?? '' }, ms(n.latencyP99Ms)),
                h('td', null, String(n.latencySamples)),
                h(
                  'td',
                  {
                    'data-testid': 'msg-mailbox',
                    'data-items': n.mailbox?.items ?? '',
                    'data-bytes': n.mailbox?.bytes ?? '',
                  },
                  n.mailbox
                    ? [
                        `${n.mailbox.items} held, ${fmtBytes(n.mailbox.bytes)} of ${fmtBytes(n.mailbox.capacityBytes)} `,
                        h('progress', { max: 1, value: n.mailbox.used }),
                      ]
                    : 'not a mailbox',
                ),
                h('td', null, fmtTime(n.at)),
              ),
            ),
          )
        : emptyState('No node has reported messaging figures yet.', 'messaging-empty'),
    );
  };

  const load = async () => {
    error = await attempt(async () => {
      const d = await gw.query<{ messagingStats: MessagingStats[] }>(MESSAGING_STATS);
      for (const s of d.messagingStats) byId.set(s.nodeId, s);
    });
    render();
  };
  render();
  const offLoad = loadAndReload(gw, load);
  const offSub = gw.subscribe<{ messagingStats: MessagingStats }>(
    SUB_MESSAGING_STATS,
    {},
    ({ messagingStats }) => {
      byId.set(messagingStats.nodeId, messagingStats);
      render();
    },
  );
  return () => {
    offLoad();
    offSub();
  };
};
