import { h, mount } from '../dom.ts';
import type { Gateway } from '../gateway.ts';
import { type Connection, NODES, type NodeInfo, SUB_NODE } from '../queries.ts';

export interface NodeSelect {
  readonly element: HTMLSelectElement;
  /** The chosen node's id ('' while none has reported and none came in the route). */
  readonly selected: string;
  /** Reads the reported nodes again and redraws; a failed read leaves the list as it was. */
  load(): Promise<void>;
  /** Adds nodes as they first report (nodeStatus); returns the unsubscribe. */
  follow(): () => void;
}

/**
 * The "which node" picker the Admin and Members pages share: the nodes the collector knows, the
 * first one chosen when the route named none, and a node named in the route kept even before it
 * has reported (a bookmarked admin link must not switch nodes silently).
 */
export function nodeSelect(
  gw: Gateway,
  o: { readonly testId: string; readonly initial?: string; readonly onChange?: (id: string) => void },
): NodeSelect {
  let nodes: NodeInfo[] = [];
  let selected = o.initial ?? '';
  const element = h('select', {
    'data-testid': o.testId,
    onchange: () => {
      selected = element.value;
      o.onChange?.(selected);
    },
  });
  const render = () => {
    if (!selected && nodes[0]) selected = nodes[0].id;
    mount(
      element,
      nodes.length ? null : h('option', { value: '' }, 'no node has reported yet'),
      nodes.map((n, i) => h('option', { value: n.id, selected: n.id === selected }, `#${i + 1} ${n.id}`)),
    );
    if (selected && !nodes.some((n) => n.id === selected))
      element.appendChild(h('option', { value: selected, selected: true }, selected));
  };
  render();
  return {
    element,
    get selected() {
      return selected;
    },
    load: async () => {
      try {
        nodes = (await gw.query<{ nodes: Connection<NodeInfo> }>(NODES)).nodes.edges.map((e) => e.node);
      } catch {
        // The node list is a convenience; a failed load leaves the select as it was.
      }
      render();
    },
    follow: () =>
      gw.subscribe<{ nodeStatus: NodeInfo }>(SUB_NODE, {}, ({ nodeStatus }) => {
        if (nodes.some((n) => n.id === nodeStatus.id)) return;
        nodes = [...nodes, nodeStatus];
        render();
      }),
  };
}
