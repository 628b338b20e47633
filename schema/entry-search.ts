/**
 * Entry search over the index DB: filters, full-text match, a rank both providers compute alike,
 * and a keyset over (rank, height, id, blockHash). Raw SQL, one statement per page: the search
 * path through Prisma's query builder cost ~4 ms of gateway CPU a search (previous attempt's
 * bench), and FTS5 MATCH / tsvector @@ have no Prisma spelling anyway.
 *
 * Same entries, same order on SQLite and PostgreSQL: both index Entry.searchText, which
 * jobs/index-db/search-text.ts normalises once; matching is "every query word, the last one as a
 * prefix" on both; and the rank is integer arithmetic on that same text (no bm25 / ts_rank,
 * whose floats differ between engines): 1000 when the query's words occur in order, plus how
 * often each word starts a word of the entry. Ties go to the newest block, then entry id and
 * block hash (binary order), so every row has one place.
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
export type EntryHit = EntryShape & { height: number; rank: number; terms: readonly string[] };

export interface SearchPage {
  readonly hits: EntryHit[];
  readonly hasNextPage: boolean;
}

type Cursor = [rank: number, height: number, id: string, blockHash: string];

export const encodeSearchCursor = (h: EntryHit): string =>
  Buffer.from(JSON.stringify([h.rank, h.height, h.id, h.blockHash] satisfies Cursor)).toString('base64url');

function decodeCursor(cursor: string): Cursor {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw refuse('bad-cursor', `invalid cursor ${JSON.stringify(cursor.slice(0, 100))}`);
  }
  if (
    Array.isArray(v) &&
    v.length === 4 &&
    Number.isSafeInteger(v[0]) &&
    Number.isSafeInteger(v[1]) &&
    typeof v[2] === 'string' &&
    typeof v[3] === 'string'
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
  constructor(private readonly pg: boolean) {}
  add(v: unknown): string {
    this.values.push(v);
    return `${this.pg ? '$' : '?'}${this.values.length}`;
  }
  text(v: string): string {
    return `CAST(${this.add(v)} AS TEXT)`;
  }
}

/** The parts both the page query and the subscription's block query share. */
function whereClause(db: IndexDb, f: EntryFilter, terms: readonly string[], p: Params) {
  const pg = indexProvider(db) === 'postgresql';
  const where: string[] = [];
  let join = '';
  if (terms.length) {
    if (pg) {
      const tsq = terms.map((t, i) => `'${t}'${i === terms.length - 1 ? ':*' : ''}`).join(' & ');
      where.push(`e."searchVector" @@ to_tsquery('simple', ${p.text(tsq)})`);
    } else {
      // Words are letters and digits only, so quoting each as an FTS5 string is exact.
      const match = terms.map((t, i) => `"${t}"${i === terms.length - 1 ? '*' : ''}`).join(' ');
      join = `JOIN (SELECT "blockHash", "entryId" FROM "EntryFts" WHERE "EntryFts" MATCH ${p.add(match)}) f
        ON f."blockHash" = e."blockHash" AND f."entryId" = e."id"`;
    }
  }
  if (f.canonicalOnly ?? true) where.push(pg ? 'b."canonical" = true' : 'b."canonical" = 1');
  if (f.kind != null) where.push(`e."kind" = ${p.add(f.kind)}`);
  if (f.authorKey != null) where.push(`e."author" = ${p.add(f.authorKey)}`);
  if (f.blockHash != null) where.push(`e."blockHash" = ${p.add(f.blockHash)}`);
  if (f.fromHeight != null) where.push(`b."height" >= ${p.add(f.fromHeight)}`);
  if (f.toHeight != null) where.push(`b."height" <= ${p.add(f.toHeight)}`);
  if (f.since != null) where.push(`e."timestamp" >= ${p.add(f.since)}`);
  if (f.until != null) where.push(`e."timestamp" < ${p.add(f.until)}`);
  for (const m of f.metadata ?? []) {
    const value = m.value == null ? '' : ` AND m."value" = ${p.add(m.value)}`;
    where.push(`EXISTS (SELECT 1 FROM "EntryMetadata" m WHERE m."blockHash" = e."blockHash"
      AND m."entryId" = e."id" AND m."key" = ${p.add(m.key)}${value})`);
  }
  return { join, where, pg };
}

/** The rank expression (see the module comment): integers only, the same on both engines. */
function rankExpression(terms: readonly string[], p: Params, pg: boolean): string {
  if (!terms.length) return '0';
  const s = `(' ' || COALESCE(e."searchText", ''))`;
  const counts = terms.map((t) => {
    const needle = p.text(` ${t}`);
    return `((LENGTH(${s}) - LENGTH(REPLACE(${s}, ${needle}, ''))) / ${t.length + 1})`;
  });
  if (terms.length > 1) {
    const phrase = p.text(` ${terms.join(' ')}`);
    counts.unshift(
      `(CASE WHEN ${pg ? `STRPOS(${s}, ${phrase})` : `INSTR(${s}, ${phrase})`} > 0 THEN 1000 ELSE 0 END)`,
    );
  }
  return counts.join(' + ');
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

interface RawHit extends Omit<EntryHit, 'terms' | 'height' | 'rank'> {
  height: number | bigint;
  rank: number | bigint;
}

const hit = (r: RawHit, terms: readonly string[]): EntryHit => ({
  ...r,
  timestamp: r.timestamp instanceof Date ? r.timestamp : new Date(r.timestamp),
  height: Number(r.height),
  rank: Number(r.rank),
  terms,
});

const COLUMNS = `e."id", e."blockHash", e."position", e."kind", e."author", e."timestamp", e."payload",
  e."signature", e."searchText", b."height" AS "height"`;

/** One page of entries matching the filter, in rank order, strictly after `after`. */
export async function searchEntries(
  db: IndexDb,
  filter: EntryFilter,
  page: { first?: number | null; after?: string | null } = {},
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
  const pg = indexProvider(db) === 'postgresql';
  const p = new Params(pg);
  const rank = rankExpression(terms, p, pg);
  const { join, where } = whereClause(db, filter, terms, p);
  const collate = pg ? ' COLLATE "C"' : '';
  let keyset = '';
  if (after) {
    const [r, h, id, bh] = after;
    const R = p.add(r);
    const H = p.add(h);
    const I = p.text(id);
    const B = p.text(bh);
    keyset = `WHERE ("rank" < ${R}) OR ("rank" = ${R} AND "height" < ${H})
      OR ("rank" = ${R} AND "height" = ${H} AND "id"${collate} > ${I})
      OR ("rank" = ${R} AND "height" = ${H} AND "id" = ${I} AND "blockHash"${collate} > ${B})`;
  }
  const sql = `SELECT * FROM (
      SELECT ${COLUMNS}, ${rank} AS "rank"
      FROM "Entry" e JOIN "Block" b ON b."hash" = e."blockHash" ${join}
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
    ) hits ${keyset}
    ORDER BY "rank" DESC, "height" DESC, "id"${collate} ASC, "blockHash"${collate} ASC
    LIMIT ${p.add(first + 1)}`;
  const rows = await db.$queryRawUnsafe<RawHit[]>(sql, ...p.values);
  return {
    hits: rows.slice(0, first).map((r) => hit(r, terms)),
    hasNextPage: rows.length > first,
  };
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
