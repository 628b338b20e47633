-- Entry search (issue 18): normalised text, metadata pairs, and a GIN full-text index.

-- AlterTable
ALTER TABLE "Entry" ADD COLUMN     "searchText" TEXT;

-- CreateTable
CREATE TABLE "EntryMetadata" (
    "blockHash" TEXT NOT NULL,
    "entryId" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "value" TEXT NOT NULL,

    CONSTRAINT "EntryMetadata_pkey" PRIMARY KEY ("blockHash","entryId","key")
);

-- CreateIndex
CREATE INDEX "EntryMetadata_key_value_idx" ON "EntryMetadata"("key", "value");

-- CreateIndex
CREATE INDEX "Entry_author_idx" ON "Entry"("author");

-- CreateIndex
CREATE INDEX "Entry_timestamp_idx" ON "Entry"("timestamp");

-- AddForeignKey
ALTER TABLE "EntryMetadata" ADD CONSTRAINT "EntryMetadata_blockHash_entryId_fkey" FOREIGN KEY ("blockHash", "entryId") REFERENCES "Entry"("blockHash", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Back-fill: the metadata pairs of the knowledge entries already indexed ([key, value] arrays).
INSERT INTO "EntryMetadata" ("blockHash", "entryId", "key", "value")
SELECT e."blockHash", e."id", m.value->>0, m.value->>1
FROM "Entry" e, jsonb_array_elements(e."payload"::jsonb->'metadata') m
WHERE e."kind" = 'knowledge'
ON CONFLICT DO NOTHING;

-- Full-text index. The text is normalised in TypeScript (lower case, diacritics folded,
-- punctuation gone) exactly as for SQLite's FTS5 table, and the `simple` configuration neither
-- stems nor drops stop words, so both providers see the same words. Outside the Prisma schema:
-- Prisma has no tsvector type; nothing but this index reads the column.
ALTER TABLE "Entry" ADD COLUMN "searchVector" tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', coalesce("searchText", ''))) STORED;
CREATE INDEX "Entry_searchVector_idx" ON "Entry" USING GIN ("searchVector");
