-- Entry search (issue 18): normalised text, metadata pairs, and an FTS5 index.

-- AlterTable
ALTER TABLE "Entry" ADD COLUMN "searchText" TEXT;

-- CreateTable
CREATE TABLE "EntryMetadata" (
    "blockHash" TEXT NOT NULL,
    "entryId" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "value" TEXT NOT NULL,

    PRIMARY KEY ("blockHash", "entryId", "key"),
    CONSTRAINT "EntryMetadata_blockHash_entryId_fkey" FOREIGN KEY ("blockHash", "entryId") REFERENCES "Entry" ("blockHash", "id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE INDEX "EntryMetadata_key_value_idx" ON "EntryMetadata"("key", "value");

-- CreateIndex
CREATE INDEX "Entry_author_idx" ON "Entry"("author");

-- CreateIndex
CREATE INDEX "Entry_timestamp_idx" ON "Entry"("timestamp");

-- Back-fill: the metadata pairs of the knowledge entries already indexed ([key, value] arrays).
INSERT OR IGNORE INTO "EntryMetadata" ("blockHash", "entryId", "key", "value")
SELECT e."blockHash", e."id", json_extract(m.value, '$[0]'), json_extract(m.value, '$[1]')
FROM "Entry" e, json_each(json_extract(e."payload", '$.metadata')) m
WHERE e."kind" = 'knowledge' AND json_valid(e."payload");

-- Full-text index over Entry.searchText. Not an external-content table keyed by Entry's rowid:
-- Entry has no INTEGER PRIMARY KEY, so VACUUM may renumber its rowids and break the link. The
-- key columns are stored UNINDEXED instead, and the FTS rowid is the entry's block height times
-- 2^20 plus a number within that height: matches come out of the index newest block first, so a
-- search can take the newest matches without reading every one (schema/entry-search.ts).
-- The text is normalised in TypeScript before it gets here (lower case, diacritics folded,
-- punctuation gone), the way PostgreSQL's tsvector sees it; remove_diacritics 0 keeps unicode61
-- from folding anything PostgreSQL would not.
CREATE VIRTUAL TABLE "EntryFts" USING fts5(
    "searchText",
    "blockHash" UNINDEXED,
    "entryId" UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 0'
);

-- The block is written before its entries (one nested create), so its height is there.
CREATE TRIGGER "Entry_fts_insert" AFTER INSERT ON "Entry" WHEN new."searchText" IS NOT NULL AND new."searchText" <> '' BEGIN
    INSERT INTO "EntryFts" (rowid, "searchText", "blockHash", "entryId")
    SELECT COALESCE(
        (SELECT MAX(f.rowid) + 1 FROM "EntryFts" f WHERE f.rowid BETWEEN b."height" * 1048576 AND b."height" * 1048576 + 1048575),
        b."height" * 1048576), new."searchText", new."blockHash", new."id"
    FROM "Block" b WHERE b."hash" = new."blockHash";
END;

CREATE TRIGGER "Entry_fts_update" AFTER UPDATE OF "searchText" ON "Entry" BEGIN
    DELETE FROM "EntryFts" WHERE rowid IN (
        SELECT f.rowid FROM "EntryFts" f JOIN "Block" b ON b."hash" = old."blockHash"
        WHERE f.rowid BETWEEN b."height" * 1048576 AND b."height" * 1048576 + 1048575
          AND f."blockHash" = old."blockHash" AND f."entryId" = old."id");
    INSERT INTO "EntryFts" (rowid, "searchText", "blockHash", "entryId")
    SELECT COALESCE(
        (SELECT MAX(f.rowid) + 1 FROM "EntryFts" f WHERE f.rowid BETWEEN b."height" * 1048576 AND b."height" * 1048576 + 1048575),
        b."height" * 1048576), new."searchText", new."blockHash", new."id"
    FROM "Block" b WHERE b."hash" = new."blockHash" AND new."searchText" IS NOT NULL AND new."searchText" <> '';
END;

-- Entries go only with their block (a cascade, the block row already gone): a full scan, which
-- the collector never causes in normal running.
CREATE TRIGGER "Entry_fts_delete" AFTER DELETE ON "Entry" WHEN old."searchText" IS NOT NULL AND old."searchText" <> '' BEGIN
    DELETE FROM "EntryFts" WHERE "blockHash" = old."blockHash" AND "entryId" = old."id";
END;
