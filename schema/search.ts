import { TOPICS } from '../jobs/events.ts';
import { payloadMetadata } from '../jobs/index-db/search-text.ts';
import { keyOfPeerId, nodeIdOfKey } from '../jobs/report-envelope.ts';
import { fromHex, toHex } from '../node/chain/bytes.ts';
import { BlockRef } from './blocks.ts';
import { builder } from './builder.ts';
import { EntryRef } from './entries.ts';
import {
  type EntryFilter,
  type EntryHit,
  encodeSearchCursor,
  highlightRanges,
  MAX_METADATA_FILTERS,
  MAX_SEARCH_PAGE,
  queryTerms,
  searchEntries,
  searchRefusals,
  topicCounts,
} from './entry-search.ts';
import { badInput } from './errors.ts';
import { eventRow } from './event-rows.ts';
import type { BlockShape, EntryShape } from './shapes.ts';

const MetadataFilterInput = builder.inputType('MetadataFilter', {
  description: 'Entries whose metadata has this key (with this value, when given).',
  fields: (t) => ({ key: t.string({ required: true }), value: t.string() }),
});

const EntryFilterInput = builder.inputType('EntryFilter', {
  description: 'Conditions an entry must all meet (omitted ones do not filter).',
  fields: (t) => ({
    kind: t.string({ description: "'knowledge' | 'model' | 'config'" }),
    author: t.string({
      description:
        "The author's node id (peer id), Ed25519 public key (hex), or member name: a name matches the entries of every key the roster gave it (genesis config or `member.add`), case and all; an unknown name matches nothing.",
    }),
    metadata: t.field({
      type: [MetadataFilterInput],
      description: `Metadata conditions, all of which must hold; at most ${MAX_METADATA_FILTERS}.`,
    }),
    fromHeight: t.int({ description: 'Lowest block height, inclusive.' }),
    toHeight: t.int({ description: 'Highest block height, inclusive.' }),
    since: t.field({ type: 'DateTime', description: 'Entry timestamp at or after.' }),
    until: t.field({ type: 'DateTime', description: 'Entry timestamp before.' }),
    canonicalOnly: t.boolean({
      defaultValue: true,
      description: 'Only entries of canonical blocks (default); false includes former and side-chain blocks.',
    }),
    query: t.string({
      description:
        'Full-text search over knowledge content: every word must occur (the last one as a prefix); case and diacritics are ignored ("muhle" finds "Mühle"). Ranked: the words in order first, then how often they occur, then newest.',
    }),
  }),
});

type FilterArg = typeof EntryFilterInput.$inferInput;

/**
 * Strings an author filter treats as a node id or key, never as a member name: base58btc peer
 * ids (Ed25519 "12D3KooW…" and secp256k1 "16Uiu2…" by their prefix, even cut short; any 40+
 * base58 characters, such as RSA's 46 "Qm…") and long hex. Such a string that does not parse is
 * a mistake worth an error, not an unknown name; a short name like "Qmara" stays a name.
 */
const ID_LIKE = /^(?:(?:12D3Koo|16Uiu2)[1-9A-HJ-NP-Za-km-z]*|[1-9A-HJ-NP-Za-km-z]{40,}|[0-9a-fA-F]{40,})$/;

/** The author filter as the search takes it: a key (hex), or a member name. */
function authorOf(author: string): { authorKey: string } | { authorName: string } {
  if (/^[0-9a-fA-F]{64}$/.test(author)) return { authorKey: author.toLowerCase() };
  const key = keyOfPeerId(author);
  if (key) return { authorKey: toHex(key) };
  if (ID_LIKE.test(author)) {
    searchRefusals.inc({ reason: 'bad-author' });
    throw badInput('"author" must be a node id (Ed25519 peer id), a public key in hex or a member name');
  }
  // A name no member carries matches nothing: an empty result, as for any other filter.
  return { authorName: author };
}

/** The GraphQL filter as the search takes it: the author as a key, hex, or a member name. */
function entryFilter(f: FilterArg | null | undefined): EntryFilter {
  if (!f) return {};
  return {
    kind: f.kind,
    ...(f.author != null ? authorOf(f.author) : {}),
    metadata: f.metadata,
    fromHeight: f.fromHeight,
    toHeight: f.toHeight,
    since: f.since,
    until: f.until,
    canonicalOnly: f.canonicalOnly,
    query: f.query,
  };
}

const MetadataPair = builder.objectRef<{ key: string; value: string }>('MetadataPair').implement({
  fields: (t) => ({ key: t.exposeString('key'), value: t.exposeString('value') }),
});

const Highlight = builder.objectRef<{ start: number; end: number }>('Highlight').implement({
  description: 'Where a query word occurs in `content`: [start, end) in UTF-16 code units.',
  fields: (t) => ({ start: t.exposeInt('start'), end: t.exposeInt('end') }),
});

const isHit = (e: EntryShape): e is EntryHit => Array.isArray((e as Partial<EntryHit>).terms);

builder.objectFields(EntryRef, (t) => ({
  metadata: t.field({
    type: [MetadataPair],
    description: "A knowledge entry's metadata pairs (topic, source, …); empty for other kinds.",
    resolve: (e) => payloadMetadata(e.payload).map(([key, value]) => ({ key, value })),
  }),
  highlights: t.field({
    type: [Highlight],
    description:
      'In search results: where the query words occur in `content` (at most 100); otherwise empty.',
    resolve: (e) => {
      if (!isHit(e) || !e.terms.length) return [];
      const content = (JSON.parse(e.payload) as { content?: unknown }).content;
      return typeof content === 'string' ? highlightRanges(content, e.terms) : [];
    },
  }),
  authorNodeId: t.string({
    description: "The author's node id (peer id), as `node(id)` takes it.",
    resolve: (e) => nodeIdOfKey(fromHex(e.author)),
  }),
  block: t.field({
    type: BlockRef,
    nullable: true,
    resolve: (e, _, ctx) => ctx.db.block.findUnique({ where: { hash: e.blockHash } }),
  }),
}));

const TopicRef = builder.objectRef<{ value: string; count: number }>('Topic').implement({
  description: 'A metadata value and how many entries carry it.',
  fields: (t) => ({ value: t.exposeString('value'), count: t.exposeInt('count') }),
});

builder.queryFields((t) => ({
  entries: t.connection(
    {
      type: EntryRef,
      description: `Entries matching a filter: ranked by the full-text query when there is one, otherwise newest block first; pages of at most ${MAX_SEARCH_PAGE} (first/after; the order is stable while new entries arrive).`,
      args: { filter: t.arg({ type: EntryFilterInput }) },
      resolve: async (_, args, ctx) => {
        if (args.last != null || args.before != null)
          throw badInput('entries pages forward only: use "first" and "after"');
        const page = await searchEntries(ctx.db, entryFilter(args.filter), {
          first: args.first,
          after: args.after,
        });
        const edges = page.hits.map((node) => ({ cursor: encodeSearchCursor(node), node }));
        return {
          edges,
          pageInfo: {
            hasNextPage: page.hasNextPage,
            hasPreviousPage: Boolean(args.after),
            startCursor: edges[0]?.cursor ?? null,
            endCursor: edges.at(-1)?.cursor ?? null,
          },
        };
      },
    },
    { name: 'EntryConnection' },
    { name: 'EntryEdge' },
  ),
  topics: t.field({
    type: [TopicRef],
    description: `The values of one metadata key (e.g. "topic") by how many entries carry them, most first; at most ${MAX_SEARCH_PAGE}.`,
    args: {
      key: t.arg.string({ required: true }),
      first: t.arg.int({ defaultValue: 20 }),
      canonicalOnly: t.arg.boolean({ defaultValue: true }),
    },
    resolve: (_, a, ctx) =>
      topicCounts(ctx.db, a.key, { first: a.first ?? 20, canonicalOnly: a.canonicalOnly }),
  }),
}));

/** Most entries one indexed block yields to one subscriber (a block's whole entry list fits). */
const PER_BLOCK = MAX_SEARCH_PAGE;

builder.subscriptionField('newEntry', (t) =>
  t.field({
    type: EntryRef,
    description:
      'Entries of every newly indexed block that match the filter (the same filter as `entries`), in rank order per block.',
    args: { filter: t.arg({ type: EntryFilterInput }) },
    // newBlock events are hints (schema/event-rows.ts): the block row is re-read, and its entries
    // come from the index, never from the event.
    subscribe: async function* (_, args, ctx) {
      const filter = entryFilter(args.filter);
      queryTerms(filter.query); // refuse a bad query when subscribing, not on the first block
      for await (const ev of ctx.pubsub.subscribe(TOPICS.newBlock as never) as AsyncIterable<unknown>) {
        const block = (await eventRow(ctx.db, TOPICS.newBlock, ev)) as BlockShape | undefined;
        if (!block) continue;
        let after: string | undefined;
        for (;;) {
          const page = await searchEntries(
            ctx.db,
            { ...filter, blockHash: block.hash },
            { first: PER_BLOCK, after },
          );
          for (const hit of page.hits) yield hit;
          if (!page.hasNextPage) break;
          after = encodeSearchCursor(page.hits.at(-1)!);
        }
      }
    },
    resolve: (row: EntryShape) => row,
  }),
);
