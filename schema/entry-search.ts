/**
 * Entry search over the index DB: filters, full-text match, a rank both providers compute alike,
 * and a keyset over (rank, height, id, blockHash). Raw SQL: FTS5 MATCH and tsvector @@ have no
 * Prisma spelling, and the query builder's own cost was ~4 ms of gateway CPU a search.
 *
 * Same entries, same order on SQLite and PostgreSQL: both index Entry.searchText, which
 * jobs/index-db/search-text.ts normalises once; matching is "every query word, the last one as a
 * prefix" on both; and the rank is integer arithmetic on that same text (no bm25 / ts_rank,
 * whose floats differ between engines): 1000 when the query's words occur in order, plus how
 * often each word starts a word of the entry. Ties go to the newest block, then entry id and
 * block hash (binary order), so every row has one place.
 *
 * Bounded work: ranking every match of a common word (in 40% of 100,000 entries) took seconds
 * under load. A full-text search ranks the newest matches only: those in the newest blocks that
 * hold RANK_WINDOW matches (the whole block at the edge), found newest first from the index
 * (FTS5 rowids are height-ordered, migration 0009; PostgreSQL's narrow EntrySearch rows by their
 * height index, migration 0012). Older
 * matches are reached by narrowing the filter (a height or time range). The window and the head
 * height at the first page travel in the cursor, so later pages rank the same set: pages stay
 * stable while entries arrive (those arrive through newEntry).
 */
import { Counter } from 'prom-client';
import { type IndexDb, indexProvider } from '../jobs/index-db/open.ts';
import { MAX_QUERY_WORDS, searchWords } from '../jobs/index-db/search-text.ts';
import { badInput } from './errors.ts';
import type { EntryShape } from './shapes.ts';

export const MAX_SEARCH_PAGE = 100;
export const DEFAULT_SEARCH_PAGE = 20;
/** Metadata conditions one search may combine. */
export const MAX_METADATA_FILTERS = 4;
/** Longest query text accepted (characters); words past MAX_QUERY_WORDS are refused. */
export const MAX_QUERY_CHARS = 256;
/** Matches a full-text search ranks at least (the newest ones; see the module comment). */
export const RANK_WINDOW = 1000;
/** FTS5 rowid = height * HEIGHT_STRIDE + n (migration 0009_entry_search). */
const HEIGHT_STRIDE = 1_048_576;

export const searchRefusals = new Counter({
  name: 'cairn_gateway_search_refused_total',
  help: 'Entry searches refused before reaching the index DB, by reason.',
  labelNames: ['reason'] as const,
  // Registered by the gateway that serves it (gateway.ts), like the other schema counters.
  registers: [],
});

const refuse = (reason: string, message: string) => {
  searchRefusals.inc({ reason });
  return badInput(message);
};

export interface EntryFilter {
  readonly kind?: string | null;
  /** Ed25519 public key of the author, hex (the GraphQL layer resolves peer ids). */
  readonly authorKey?: string | null;
  /**
   * A member name: entries of every key that carried it (table MemberName, written by the
   * collector). With canonicalOnly, only names the genesis or a canonical block gave.
   */
  readonly authorName?: string | null;
  readonly metadata?: readonly { key: string; value?: string | null }[] | null;
  readonly fromHeight?: number | null;
  readonly toHeight?: number | null;
  readonly since?: Date | null;
  readonly until?: Date | null;
  /** Only entries of canonical blocks (default true). */
  readonly canonicalOnly?: boolean | null;
  /** Full-text query: every word must occur, the last one as a prefix. */
  readonly query?: string | null;
  /** Only this block's entries (the newEntry subscription). */
  readonly blockHash?: string | null;
}

/** A search result: the entry row with the keys it is ordered by, and the words that matched. */
export type EntryHit = EntryShape & {
  height: number;
  rank: number;
  terms: readonly string[];
  /** The search's head height and window edge (lowest height ranked), for the cursor. */
  asOf: number;
  edge: number;
};

export interface SearchPage {
  readonly hits: EntryHit[];
  readonly hasNextPage: boolean;
}

type Cursor = [asOf: number, edge: number, rank: number, height: number, id: string, blockHash: string];

export const encodeSearchCursor = (h: EntryHit): string =>
  Buffer.from(
    JSON.stringify([h.asOf, h.edge, h.rank, h.height, h.id, h.blockHash] satisfies Cursor),
  ).toString('base64url');

function decodeCursor(cursor: string): Cursor {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw refuse('bad-cursor', `invalid cursor ${JSON.stringify(cursor.slice(0, 100))}`);
  }
  if (
    Array.isArray(v) &&
    v.length === 6 &&
    v.slice(0, 4).every((x) => Number.isSafeInteger(x) && x >= 0) &&
    typeof v[4] === 'string' &&
    typeof v[5] === 'string'
  )
    return v as Cursor;
  throw refuse('bad-cursor', `invalid cursor ${JSON.stringify(cursor.slice(0, 100))}`);
}

/** The query's words (normalised as the index stores text), refused when too long. */
export function queryTerms(query: string | null | undefined): string[] {
  if (query == null) return [];
  if (query.length > MAX_QUERY_CHARS)
    throw refuse('query-too-long', `"query" may have at most ${MAX_QUERY_CHARS} characters`);
  const words = [...new Set(searchWords(query))];
  if (words.length > MAX_QUERY_WORDS)
    throw refuse('query-too-many-words', `"query" may have at most ${MAX_QUERY_WORDS} words`);
  return words;
}

/**
 * Collects bind values and spells their placeholders per dialect: numbered on both ($n, ?n), so
 * a value may be used twice (the keyset) and text order does not matter.
 */
class Params {
  readonly values: unknown[] = [];
  readonly pg: boolean;
  constructor(pg: boolean) {
    this.pg = pg;
  }
  add(v: unknown): string {
    this.values.push(v);
    return `${this.pg ? '$' : '?'}${this.values.length}`;
  }
  text(v: string): string {
    return `CAST(${this.add(v)} AS TEXT)`;
  }
  int(v: number): string {
    return this.pg ? `CAST(${this.add(v)} AS BIGINT)` : this.add(v);
  }
}

/**
 * FROM and WHERE of a search: the match, every filter, and heights within [low, high] (SQL
 * expressions: bound values, or the head and edge the statement computes itself).
 */
function source(
  f: EntryFilter,
  terms: readonly string[],
  p: Params,
  heights: { low?: string; high?: string; at?: string },
): Source {
  const where: string[] = [];
  let from = `"Entry" e JOIN "Block" b ON b."hash" = e."blockHash"`;
  // Newest first as the index yields it: FTS5's rowid, or EntrySearch's height index.
  let order = 'b."height"';
  let height = 'b."height"';
  let keys = { bh: 'e."blockHash"', id: 'e."id"', text: 'e."searchText"' };
  // Entry is joined only for a filter on its own columns: the narrow search rows carry the keys
  // and the text, and 1,000 lookups of the wide Entry rows cost more than the match itself.
  const needsEntry =
    f.kind != null || f.authorKey != null || f.authorName != null || f.since != null || f.until != null;
  const entryJoin = (t: string) =>
    needsEntry ? ` JOIN "Entry" e ON e."blockHash" = ${t}."blockHash" AND e."id" = ${t}."entryId"` : '';
  if (terms.length && p.pg) {
    const tsq = terms.map((t, i) => `'${t}'${i === terms.length - 1 ? ':*' : ''}`).join(' & ');
    // EntrySearch (migration 0012): keys, height and text beside the tsvector, so the planner
    // walks the height index newest first for a common word and takes the GIN index for a rare
    // one, reading narrow rows either way (the walk over Entry read 100 wide rows per block).
    from = `"EntrySearch" s JOIN "Block" b ON b."hash" = s."blockHash"${entryJoin('s')}`;
    keys = { bh: 's."blockHash"', id: 's."entryId"', text: 's."searchText"' };
    order = height = 's."height"';
    // A tsquery literal, not to_tsquery(): the words are normalised already, and a bound
    // to_tsquery() call in a generic plan is evaluated again for every row (12 ms, not 2).
    where.push(`s."searchVector" @@ CAST(${p.add(tsq)} AS tsquery)`);
  } else if (terms.length) {
    // Words are letters and digits only, so quoting each as an FTS5 string is exact.
    const match = terms.map((t, i) => `"${t}"${i === terms.length - 1 ? '*' : ''}`).join(' ');
    from = `"EntryFts" f JOIN "Block" b ON b."hash" = f."blockHash"${entryJoin('f')}`;
    keys = { bh: 'f."blockHash"', id: 'f."entryId"', text: 'f."searchText"' };
    where.push(`f."EntryFts" MATCH ${p.add(match)}`);
    order = 'f.rowid';
    const stride = p.int(HEIGHT_STRIDE);
    if (heights.at != null)
      where.push(`f.rowid >= ${heights.at} * ${stride} AND f.rowid < (${heights.at} + 1) * ${stride}`);
    if (heights.low != null) where.push(`f.rowid >= ${heights.low} * ${stride}`);
    if (heights.high != null) where.push(`f.rowid < (${heights.high} + 1) * ${stride}`);
  }
  if (heights.at != null) where.push(`${height} = ${heights.at}`);
  if (heights.low != null) where.push(`${height} >= ${heights.low}`);
  if (heights.high != null) where.push(`${height} <= ${heights.high}`);
  if (f.canonicalOnly ?? true) where.push(p.pg ? 'b."canonical" = true' : 'b."canonical" = 1');
  if (f.kind != null) where.push(`e."kind" = ${p.add(f.kind)}`);
  if (f.authorKey != null) where.push(`e."author" = ${p.add(f.authorKey)}`);
  if (f.authorName != null) {
    // Resolved in the query, not before it: a newEntry subscription by name then also sees a
    // device that joins under that name after it subscribed.
    const carried =
      (f.canonicalOnly ?? true)
        ? ` AND (n."blockHash" = '' OR EXISTS (SELECT 1 FROM "Block" nb WHERE nb."hash" = n."blockHash"
            AND nb."canonical" = ${p.pg ? 'true' : '1'}))`
        : '';
    where.push(
      `e."author" IN (SELECT n."key" FROM "MemberName" n WHERE n."name" = ${p.add(f.authorName)}${carried})`,
    );
  }
  if (f.blockHash != null) where.push(`${keys.bh} = ${p.add(f.blockHash)}`);
  if (f.since != null) where.push(`e."timestamp" >= ${p.add(f.since)}`);
  if (f.until != null) where.push(`e."timestamp" < ${p.add(f.until)}`);
  for (const m of f.metadata ?? []) {
    const key = p.add(m.key);
    const value = m.value == null ? '' : ` AND m."value" = ${p.add(m.value)}`;
    where.push(`EXISTS (SELECT 1 FROM "EntryMetadata" m WHERE m."blockHash" = ${keys.bh}
      AND m."entryId" = ${keys.id} AND m."key" = ${key}${value})`);
  }
  return { from, where, order, height, keys };
}

interface Source {
  readonly from: string;
  readonly where: string[];
  /** The expression the index yields newest first. */
  readonly order: string;
  /** The entry's block height in `from`. */
  readonly height: string;
  /** Expressions of the entry's block hash, id and search text in `from`. */
  readonly keys: { readonly bh: string; readonly id: string; readonly text: string };
}

/** The rank expression (see the module comment): integers only, the same on both engines. */
function rankExpression(terms: readonly string[], p: Params, text: string): string {
  if (!terms.length) return '0';
  const s = `(' ' || COALESCE(${text}, ''))`;
  const counts = terms.map((t) => {
    const needle = p.text(` ${t}`);
    return `((LENGTH(${s}) - LENGTH(REPLACE(${s}, ${needle}, ''))) / ${t.length + 1})`;
  });
  if (terms.length > 1) {
    const phrase = p.text(` ${terms.join(' ')}`);
    counts.unshift(
      `(CASE WHEN ${p.pg ? `STRPOS(${s}, ${phrase})` : `INSTR(${s}, ${phrase})`} > 0 THEN 1000 ELSE 0 END)`,
    );
  }
  return `(${counts.join(' + ')})`;
}

export function checkFilter(f: EntryFilter): void {
  if (f.fromHeight != null && f.fromHeight < 0) throw refuse('bad-range', '"fromHeight" must be ≥ 0');
  if (f.fromHeight != null && f.toHeight != null && f.toHeight < f.fromHeight)
    throw refuse('bad-range', `invalid height range ${f.fromHeight}..${f.toHeight}`);
  if (f.since != null && f.until != null && f.until < f.since)
    throw refuse('bad-range', '"until" is before "since"');
  if ((f.metadata?.length ?? 0) > MAX_METADATA_FILTERS)
    throw refuse('too-many-filters', `at most ${MAX_METADATA_FILTERS} metadata conditions`);
}

interface RawHit extends Omit<EntryHit, 'terms' | 'height' | 'rank' | 'asOf' | 'edge'> {
  height: number | bigint;
  rank: number | bigint;
  asOf: number | bigint;
  edge: number | bigint;
}

const COLUMNS = `e."id", e."blockHash", e."position", e."kind", e."author", e."timestamp", e."payload",
  e."signature", e."searchText"`;

/**
 * One page of entries matching the filter, in rank order, strictly after `after`: one statement.
 * A first page computes its head height and window edge in the same statement (each was a round
 * trip of its own, and a loaded host spends ~10 ms on any round trip), and finds the edge on the
 * same walk that collects the window: the RANK_WINDOW newest matches, plus the rest of the edge
 * block (their order within a block is the index's). Later pages rank the window their cursor
 * names.
 */
export async function searchEntries(
  db: IndexDb,
  filter: EntryFilter,
  page: { first?: number | null; after?: string | null; window?: number } = {},
): Promise<SearchPage> {
  const first = page.first ?? DEFAULT_SEARCH_PAGE;
  if (!Number.isInteger(first) || first < 0 || first > MAX_SEARCH_PAGE)
    throw refuse(
      'page-too-large',
      `"first" must be an integer between 0 and ${MAX_SEARCH_PAGE} (got ${first})`,
    );
  checkFilter(filter);
  const terms = queryTerms(filter.query);
  const after = page.after ? decodeCursor(page.after) : undefined;
  if (first === 0) return { hits: [], hasNextPage: false };
  const p = new Params(indexProvider(db) === 'postgresql');
  const C = p.pg ? ' COLLATE "C"' : '';
  const M = ' AS MATERIALIZED';
  const ctes: string[] = [];
  let asOf: string;
  let edge: string;
  // The highest height searched. A first page needs no bound beyond the filter's own: every row
  // is at or below the head, in the statement's one snapshot; and a bound the planner cannot see
  // (a subquery) made PostgreSQL hash-join and sort every match instead of walking the newest.
  let high: string | undefined;
  if (after) {
    asOf = p.int(after[0]);
    edge = p.int(after[1]);
    high = asOf;
  } else {
    if (filter.toHeight != null) high = p.int(filter.toHeight);
    // The head a first page searches up to (the filter's toHeight when lower).
    const head = 'COALESCE((SELECT MAX("height") FROM "Block"), 0)';
    const top = filter.toHeight != null ? p.int(filter.toHeight) : undefined;
    ctes.push(
      `"head"${M} (SELECT ${top ? `CASE WHEN ${head} > ${top} THEN ${top} ELSE ${head} END` : head} AS "h")`,
    );
    asOf = '(SELECT "h" FROM "head")';
    edge = p.int(filter.fromHeight ?? 0);
  }
  const low = edge;
  let rows: string;
  if (!after && terms.length) {
    const window = page.window ?? RANK_WINDOW;
    const s = source(filter, terms, p, { low, high });
    const pick = (t: Source) =>
      `${t.keys.bh} AS "bh", ${t.keys.id} AS "eid", ${t.height} AS "height", ${t.keys.text} AS "txt"`;
    ctes.push(
      `"top"${M} (SELECT ${pick(s)} FROM ${s.from} WHERE ${s.where.join(' AND ')}
        ORDER BY ${s.order} DESC LIMIT ${p.int(window)})`,
      // The window's lowest height: that of its RANK_WINDOW-th newest match (the floor with fewer).
      `"edge"${M} (SELECT CASE WHEN COUNT(*) >= ${p.int(window)} THEN MIN("height") ELSE ${low} END AS "e" FROM "top")`,
    );
    edge = '(SELECT "e" FROM "edge")';
    const rest = source(filter, terms, p, { at: edge });
    rows = `(SELECT "bh", "eid", "height", "txt" FROM "top" UNION
      SELECT ${pick(rest)} FROM ${rest.from} WHERE ${rest.where.join(' AND ')}) w`;
  } else {
    const s = source(filter, terms, p, { low, high });
    rows = `(SELECT ${s.keys.bh} AS "bh", ${s.keys.id} AS "eid", ${s.height} AS "height", ${s.keys.text} AS "txt"
      FROM ${s.from} WHERE ${s.where.join(' AND ')}) w`;
  }
  const rank = rankExpression(terms, p, 'w."txt"');
  const keyset: string[] = [];
  if (after) {
    const [, , r, h, id, bh] = after;
    const R = p.int(r);
    const H = p.int(h);
    const I = p.text(id);
    const B = p.text(bh);
    keyset.push(`WHERE (${rank} < ${R} OR (${rank} = ${R} AND (w."height" < ${H}
      OR (w."height" = ${H} AND (w."eid"${C} > ${I} OR (w."eid" = ${I} AND w."bh"${C} > ${B}))))))`);
  }
  // Ranked and cut on keys alone; the page's few entry rows are read after the LIMIT.
  const sql = `${ctes.length ? `WITH ${ctes.join(',\n')}\n` : ''}SELECT ${COLUMNS}, t."rank" AS "rank",
     t."height" AS "height", ${asOf} AS "asOf", ${edge} AS "edge" FROM (
       SELECT w."bh" AS "bh", w."eid" AS "eid", w."height" AS "height", ${rank} AS "rank"
       FROM ${rows} ${keyset.join('')}
       ORDER BY "rank" DESC, w."height" DESC, w."eid"${C} ASC, w."bh"${C} ASC
       LIMIT ${p.int(first + 1)}
     ) t JOIN "Entry" e ON e."blockHash" = t."bh" AND e."id" = t."eid"
     ORDER BY t."rank" DESC, t."height" DESC, t."eid"${C} ASC, t."bh"${C} ASC`;
  const raw = await db.$queryRawUnsafe<RawHit[]>(sql, ...p.values);
  const hits = raw.slice(0, first).map(
    ({ asOf: a, edge: g, ...r }): EntryHit => ({
      ...r,
      timestamp: r.timestamp instanceof Date ? r.timestamp : new Date(r.timestamp),
      height: Number(r.height),
      rank: Number(r.rank),
      terms,
      asOf: Number(a),
      edge: Number(g),
    }),
  );
  return { hits, hasNextPage: raw.length > first };
}

export interface TopicCount {
  readonly value: string;
  readonly count: number;
}

/** Metadata values of `key` by how many entries carry them (canonical blocks by default). */
export async function topicCounts(
  db: IndexDb,
  key: string,
  opts: { first: number; canonicalOnly?: boolean | null },
): Promise<TopicCount[]> {
  if (!Number.isInteger(opts.first) || opts.first < 0 || opts.first > MAX_SEARCH_PAGE)
    throw refuse('page-too-large', `"first" must be an integer between 0 and ${MAX_SEARCH_PAGE}`);
  const pg = indexProvider(db) === 'postgresql';
  const p = new Params(pg);
  const canonical = (opts.canonicalOnly ?? true) ? ` AND b."canonical" = ${pg ? 'true' : '1'}` : '';
  const rows = await db.$queryRawUnsafe<{ value: string; n: number | bigint }[]>(
    `SELECT m."value" AS "value", COUNT(*) AS "n"
     FROM "EntryMetadata" m JOIN "Block" b ON b."hash" = m."blockHash"
     WHERE m."key" = ${p.add(key)}${canonical}
     GROUP BY m."value"
     ORDER BY "n" DESC, m."value"${pg ? ' COLLATE "C"' : ''} ASC
     LIMIT ${p.add(opts.first)}`,
    ...p.values,
  );
  return rows.map((r) => ({ value: r.value, count: Number(r.n) }));
}

/** Where the query's words occur in a content: [start, end) in UTF-16 units, for highlighting. */
export function highlightRanges(
  content: string,
  terms: readonly string[],
  max = 100,
): { start: number; end: number }[] {
  if (!terms.length) return [];
  const last = terms.at(-1)!;
  const exact = new Set(terms.slice(0, -1));
  const out: { start: number; end: number }[] = [];
  // Words of the original text, marks kept so offsets stay the original's.
  for (const m of content.matchAll(/[\p{L}\p{N}\p{M}]+/gu)) {
    const words = searchWords(m[0]);
    // One original word is one normalised word, save ligatures that fold into more.
    if (words.some((w) => exact.has(w) || w.startsWith(last)) || exact.has(words.join(''))) {
      out.push({ start: m.index, end: m.index + m[0].length });
      if (out.length >= max) break;
    }
  }
  return out;
}
