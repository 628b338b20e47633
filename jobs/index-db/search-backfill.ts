import type { IndexDb } from './open.ts';
import { payloadSearchText } from './search-text.ts';

/** Rows normalised per round trip: small enough to keep each write transaction short. */
const BATCH = 500;

/**
 * Fills Entry.searchText for rows indexed before 0009_entry_search. The migration cannot do it:
 * the normalisation (NFKD, diacritic folding, Unicode word split) has no SQLite SQL equivalent,
 * and both providers must index the very same words. Runs at every open and costs one indexed
 * query when nothing is left; safe when several processes run it at once (the same value is
 * written twice). SQLite's FTS5 table follows by trigger, PostgreSQL's tsvector is generated.
 */
export async function backfillSearchText(db: IndexDb): Promise<number> {
  let done = 0;
  for (;;) {
    const rows = await db.entry.findMany({
      where: { searchText: null },
      select: { blockHash: true, id: true, payload: true },
      take: BATCH,
    });
    if (rows.length === 0) return done;
    await db.$transaction(
      rows.map((r) =>
        db.entry.update({
          where: { blockHash_id: { blockHash: r.blockHash, id: r.id } },
          data: { searchText: payloadSearchText(r.payload) },
        }),
      ),
    );
    done += rows.length;
  }
}
