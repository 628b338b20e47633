-- A narrow full-text table (issue 18, search speed): per knowledge entry its keys, its block's
-- height, the normalised text and the tsvector. The search walked blocks newest first and read
-- all 100 wide Entry rows of each (payload and all) to test the tsvector beside them: 12,600 rows
-- and ~2,500 buffers for a word in 8% of the bench's 100,000 entries, twice per search. Here
-- the height index yields narrow rows newest first and the GIN index serves rare words. Outside
-- the Prisma schema, like SQLite's EntryFts: Prisma has no tsvector type, and only
-- schema/entry-search.ts reads it.
CREATE TABLE "EntrySearch" (
    "blockHash" TEXT NOT NULL,
    "entryId" TEXT NOT NULL,
    "height" INTEGER NOT NULL,
    "searchText" TEXT NOT NULL,
    -- Stripped: matching needs the lexemes only (the rank counts words in searchText).
    "searchVector" tsvector GENERATED ALWAYS AS (strip(to_tsvector('simple', "searchText"))) STORED,

    CONSTRAINT "EntrySearch_pkey" PRIMARY KEY ("blockHash", "entryId"),
    CONSTRAINT "EntrySearch_entry_fkey" FOREIGN KEY ("blockHash", "entryId")
        REFERENCES "Entry"("blockHash", "id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- Back-fill: every entry with words (the back-fill at open fills searchText of older rows, and
-- the trigger below follows it).
INSERT INTO "EntrySearch" ("blockHash", "entryId", "height", "searchText")
SELECT e."blockHash", e."id", b."height", e."searchText"
FROM "Entry" e JOIN "Block" b ON b."hash" = e."blockHash"
WHERE e."searchText" IS NOT NULL AND e."searchText" <> '';

CREATE INDEX "EntrySearch_height_idx" ON "EntrySearch"("height");
CREATE INDEX "EntrySearch_searchVector_idx" ON "EntrySearch" USING GIN ("searchVector");

-- Entry rows are written with their block (one nested create, the block row first), so its
-- height is there. An update of searchText (the back-fill at open) moves the row along.
CREATE FUNCTION "Entry_search_sync"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW."searchText" IS NULL OR NEW."searchText" = '' THEN
        DELETE FROM "EntrySearch" WHERE "blockHash" = NEW."blockHash" AND "entryId" = NEW."id";
    ELSE
        INSERT INTO "EntrySearch" ("blockHash", "entryId", "height", "searchText")
        SELECT NEW."blockHash", NEW."id", b."height", NEW."searchText" FROM "Block" b WHERE b."hash" = NEW."blockHash"
        ON CONFLICT ("blockHash", "entryId") DO UPDATE SET "searchText" = EXCLUDED."searchText";
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER "Entry_search_insert" AFTER INSERT ON "Entry"
    FOR EACH ROW WHEN (NEW."searchText" IS NOT NULL AND NEW."searchText" <> '')
    EXECUTE FUNCTION "Entry_search_sync"();
CREATE TRIGGER "Entry_search_update" AFTER UPDATE OF "searchText" ON "Entry"
    FOR EACH ROW EXECUTE FUNCTION "Entry_search_sync"();

-- The tsvector on Entry and its GIN index (0009) have no reader left; every insert paid for them.
DROP INDEX "Entry_searchVector_idx";
ALTER TABLE "Entry" DROP COLUMN "searchVector";
