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
-- key columns are stored UNINDEXED instead. The text is normalised in TypeScript before it gets
-- here (lower case, diacritics folded, punctuation gone), the way PostgreSQL's tsvector sees it;
-- remove_diacritics 0 keeps unicode61 from folding anything PostgreSQL would not.
CREATE VIRTUAL TABLE "EntryFts" USING fts5(
    "searchText",
    "blockHash" UNINDEXED,
    "entryId" UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER "Entry_fts_insert" AFTER INSERT ON "Entry" WHEN new."searchText" IS NOT NULL AND new."searchText" <> '' BEGIN
    INSERT INTO "EntryFts" ("searchText", "blockHash", "entryId") VALUES (new."searchText", new."blockHash", new."id");
END;

CREATE TRIGGER "Entry_fts_update" AFTER UPDATE OF "searchText" ON "Entry" BEGIN
    DELETE FROM "EntryFts" WHERE "blockHash" = old."blockHash" AND "entryId" = old."id";
    INSERT INTO "EntryFts" ("searchText", "blockHash", "entryId")
    SELECT new."searchText", new."blockHash", new."id" WHERE new."searchText" IS NOT NULL AND new."searchText" <> '';
END;

-- Entries go only with their block (a cascade), which the collector never does in normal running.
CREATE TRIGGER "Entry_fts_delete" AFTER DELETE ON "Entry" WHEN old."searchText" IS NOT NULL AND old."searchText" <> '' BEGIN
    DELETE FROM "EntryFts" WHERE "blockHash" = old."blockHash" AND "entryId" = old."id";
END;
