import { type Child, emptyState, errorBox, fmtDateTime, h, mount, shortHex } from '../dom.ts';
import { type Connection, ENTRIES, type KnowledgeEntry, SUB_NEW_ENTRY, TOPICS } from '../queries.ts';
import { attempt, loadAndReload, type View } from './view.ts';

/** The filter the page searches with (the gateway's EntryFilter, the parts the form has). */
interface Filter {
  query?: string;
  author?: string;
  topic?: string;
  allBlocks?: boolean;
}

/** A followed filter survives reloads and restarts of the tab: the user saved it on purpose. */
const SAVED_KEY = 'cairn.knowledge.saved';

function loadSaved(): Filter | undefined {
  try {
    const v = JSON.parse(localStorage.getItem(SAVED_KEY) ?? 'null') as unknown;
    return v && typeof v === 'object' ? (v as Filter) : undefined;
  } catch {
    return undefined;
  }
}

const gqlFilter = (f: Filter) => ({
  ...(f.query ? { query: f.query } : {}),
  ...(f.author ? { author: f.author } : {}),
  ...(f.topic ? { metadata: [{ key: 'topic', value: f.topic }] } : {}),
  canonicalOnly: !f.allBlocks,
});

const describe = (f: Filter) =>
  [
    f.query ? `“${f.query}”` : 'everything',
    f.topic ? `topic ${f.topic}` : '',
    // Node ids and keys are 52+ characters; member names are shown whole.
    f.author ? `by ${f.author.length > 48 ? shortHex(f.author, 6) : f.author}` : '',
    f.allBlocks ? 'all blocks' : '',
  ]
    .filter(Boolean)
    .join(', ');

/**
 * The content with the query's words in <mark>: text nodes and elements only, so whatever an
 * entry says is shown as text, never parsed as markup.
 */
export function highlighted(content: string, ranges: readonly { start: number; end: number }[]): Child[] {
  const out: Child[] = [];
  let at = 0;
  for (const r of [...ranges].sort((a, b) => a.start - b.start)) {
    if (r.start < at || r.end > content.length || r.end <= r.start) continue;
    out.push(content.slice(at, r.start), h('mark', null, content.slice(r.start, r.end)));
    at = r.end;
  }
  out.push(content.slice(at));
  return out;
}

function entryItem(e: KnowledgeEntry, fresh: boolean): HTMLElement {
  return h(
    'li',
    { class: fresh ? 'entry fresh' : 'entry', 'data-testid': 'knowledge-result', 'data-entry-id': e.id },
    h(
      'p',
      { class: 'content', 'data-testid': 'knowledge-content' },
      e.content === null
        ? h('span', { class: 'muted' }, `(${e.kind} entry)`)
        : highlighted(e.content, e.highlights),
    ),
    h(
      'p',
      { class: 'muted meta' },
      e.block
        ? h(
            'a',
            { href: `#/block/${e.blockHash}`, 'data-testid': 'knowledge-block' },
            `block ${e.block.height}`,
          )
        : shortHex(e.blockHash),
      e.block && !e.block.canonical ? ' (not canonical)' : '',
      ' · by ',
      h(
        'a',
        {
          href: `#/nodes/${e.authorNodeId}`,
          class: 'mono',
          title: e.authorNodeId,
          'data-testid': 'knowledge-author',
        },
        shortHex(e.authorNodeId, 8),
      ),
      ' · ',
      fmtDateTime(e.timestamp),
      e.metadata.map((m) => h('span', { class: 'tag' }, `${m.key}: ${m.value}`)),
    ),
  );
}

/** Search and browse knowledge entries; a saved filter's new entries arrive live. */
export const knowledgeView: View = (root, { gw }) => {
  const saved = loadSaved();
  let filter: Filter = saved ?? {};
  let results: KnowledgeEntry[] = [];
  let endCursor: string | null = null;
  let hasMore = false;
  let error: unknown;
  let live: KnowledgeEntry[] = [];
  let topics: { value: string; count: number }[] = [];
  let offLive: (() => void) | undefined;

  const query = h('input', {
    type: 'search',
    placeholder: 'Search knowledge (e.g. mühle)',
    'data-testid': 'knowledge-query',
    value: filter.query ?? '',
  });
  const topic = h('input', {
    placeholder: 'topic',
    'data-testid': 'knowledge-topic',
    value: filter.topic ?? '',
  });
  const author = h('input', {
    placeholder: 'author: node id or member name',
    'data-testid': 'knowledge-author-filter',
    value: filter.author ?? '',
  });
  const allBlocks = h('input', { type: 'checkbox', 'data-testid': 'knowledge-all-blocks' });
  allBlocks.checked = Boolean(filter.allBlocks);
  const readForm = (): Filter => ({
    query: query.value.trim() || undefined,
    topic: topic.value.trim() || undefined,
    author: author.value.trim() || undefined,
    allBlocks: allBlocks.checked || undefined,
  });

  const topicList = h('p', { class: 'topics', 'data-testid': 'knowledge-topics' });
  const err = h('div');
  const list = h('ul', { class: 'entries', 'data-testid': 'knowledge-results' });
  const liveBox = h('div', { 'data-testid': 'knowledge-live' });
  const followState = h('span', { class: 'muted', 'data-testid': 'knowledge-follow-state' });
  const more = h('button', { type: 'button', onclick: () => void search(true) }, 'Load more');

  const render = () => {
    mount(err, error ? errorBox(error) : null);
    mount(
      topicList,
      topics.length ? 'Topics: ' : '',
      topics.map((t) =>
        h(
          'button',
          {
            type: 'button',
            class: 'tag',
            onclick: () => {
              topic.value = t.value;
              void search(false);
            },
          },
          `${t.value} (${t.count})`,
        ),
      ),
    );
    mount(
      list,
      results.length
        ? results.map((e) => entryItem(e, false))
        : emptyState('No entries match.', 'knowledge-empty'),
    );
    const followed = loadSaved();
    followState.textContent = followed ? `Following ${describe(followed)}` : 'Not following a search';
    mount(
      liveBox,
      followed ? h('h2', null, `Live: ${describe(followed)}`) : null,
      followed && live.length
        ? h(
            'ul',
            { class: 'entries' },
            live.map((e) => entryItem(e, true)),
          )
        : null,
      followed && !live.length ? emptyState('Waiting for new entries…', 'knowledge-live-empty') : null,
    );
    more.hidden = !hasMore;
  };

  const search = async (next: boolean) => {
    if (!next) filter = readForm();
    error = await attempt(async () => {
      const d = await gw.query<{ entries: Connection<KnowledgeEntry> }>(ENTRIES, {
        filter: gqlFilter(filter),
        after: next ? endCursor : null,
      });
      const page = d.entries.edges.map((x) => x.node);
      results = next ? [...results, ...page] : page;
      endCursor = d.entries.pageInfo.endCursor;
      hasMore = d.entries.pageInfo.hasNextPage;
    });
    render();
  };

  const follow = (f: Filter | undefined) => {
    offLive?.();
    offLive = undefined;
    live = [];
    if (f) {
      localStorage.setItem(SAVED_KEY, JSON.stringify(f));
      offLive = gw.subscribe<{ newEntry: KnowledgeEntry }>(
        SUB_NEW_ENTRY,
        { filter: gqlFilter(f) },
        ({ newEntry }) => {
          if (live.some((e) => e.id === newEntry.id && e.blockHash === newEntry.blockHash)) return;
          live = [newEntry, ...live].slice(0, 50);
          render();
        },
      );
    } else localStorage.removeItem(SAVED_KEY);
    render();
  };

  const loadTopics = async () => {
    const e = await attempt(async () => {
      topics = (await gw.query<{ topics: { value: string; count: number }[] }>(TOPICS)).topics;
    });
    if (e) error = e;
    render();
  };

  mount(
    root,
    h('h1', null, 'Knowledge'),
    h(
      'form',
      {
        class: 'actions',
        'data-testid': 'knowledge-form',
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          void search(false);
        },
      },
      query,
      topic,
      author,
      h('label', null, allBlocks, ' all blocks'),
      h('button', { type: 'submit', 'data-testid': 'knowledge-search' }, 'Search'),
      h(
        'button',
        { type: 'button', 'data-testid': 'knowledge-follow', onclick: () => follow(readForm()) },
        'Follow live',
      ),
      h(
        'button',
        { type: 'button', 'data-testid': 'knowledge-unfollow', onclick: () => follow(undefined) },
        'Stop',
      ),
    ),
    h('p', null, followState),
    topicList,
    err,
    liveBox,
    h('h2', null, 'Results'),
    list,
    h('p', null, more),
  );
  render();
  const offLoad = loadAndReload(gw, async () => {
    await Promise.all([search(false), loadTopics()]);
  });
  if (saved) follow(saved);
  return () => {
    offLoad();
    offLive?.();
  };
};
