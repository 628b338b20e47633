import './style.css';
import { resolveGateway } from './config.ts';
import { h, mount } from './dom.ts';
import { type ConnState, Gateway } from './gateway.ts';
import { adminView } from './views/admin.ts';
import { blockView } from './views/block.ts';
import { blocksView } from './views/blocks.ts';
import { knowledgeView } from './views/knowledge.ts';
import { membersView } from './views/members.ts';
import { messagesView } from './views/messages.ts';
import { modelsView } from './views/models.ts';
import { nodesView } from './views/nodes.ts';
import { orphansView } from './views/orphans.ts';
import { overview } from './views/overview.ts';
import type { View } from './views/view.ts';

/** Hash routes: the console is a static bundle, so deep links must not need server rewrites. */
const ROUTES: Record<string, { view: View; title?: string }> = {
  '': { view: overview, title: 'Overview' },
  blocks: { view: blocksView, title: 'Live blocks' },
  block: { view: blockView },
  knowledge: { view: knowledgeView, title: 'Knowledge' },
  nodes: { view: nodesView, title: 'Nodes' },
  orphans: { view: orphansView, title: 'Orphaned' },
  models: { view: modelsView, title: 'Models' },
  messages: { view: messagesView, title: 'Messages' },
  members: { view: membersView, title: 'Members' },
  admin: { view: adminView, title: 'Admin' },
};

const STATE_TEXT: Record<ConnState, string> = {
  connecting: 'connecting…',
  connected: 'connected',
  reconnecting: 'reconnecting…',
};

async function start(): Promise<void> {
  const app = document.getElementById('app')!;
  const nav = document.getElementById('nav')!;
  const conn = document.getElementById('connection')!;
  const endpoints = await resolveGateway();
  const gw = new Gateway(endpoints);
  gw.onState((s) => {
    conn.dataset.state = s;
    conn.textContent = STATE_TEXT[s];
    conn.title = `gateway ${endpoints.ws}`;
  });
  document.body.appendChild(
    h(
      'footer',
      null,
      'Gateway ',
      h(
        'a',
        { href: endpoints.http, target: '_blank', rel: 'noopener', 'data-testid': 'gateway-url' },
        endpoints.http,
      ),
      ` (from ${endpoints.source}; GraphiQL at that address)`,
    ),
  );

  let cleanup: (() => void) | undefined;
  const route = () => {
    const [name = '', ...params] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    const r = ROUTES[name] ?? ROUTES['']!;
    mount(
      nav,
      Object.entries(ROUTES)
        .filter(([, v]) => v.title)
        .map(([k, v]) => h('a', { href: `#/${k}`, class: k === name ? 'active' : undefined }, v.title!)),
    );
    cleanup?.();
    app.replaceChildren();
    cleanup = r.view(app, { gw, params });
  };
  window.addEventListener('hashchange', route);
  route();
}

void start();
