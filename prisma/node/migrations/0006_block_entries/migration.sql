-- CreateTable
CREATE TABLE "BlockEntry" (
    "entryId" BLOB NOT NULL,
    "blockHash" BLOB NOT NULL,

    PRIMARY KEY ("entryId", "blockHash")
);

-- Backfill: every stored block's entry ids (32 bytes each, concatenated in "Block"."entryIds").
WITH RECURSIVE "ids"("blockHash", "i", "n", "all") AS (
    SELECT "hash", 0, length("entryIds") / 32, "entryIds" FROM "Block" WHERE length("entryIds") >= 32
    UNION ALL
    SELECT "blockHash", "i" + 1, "n", "all" FROM "ids" WHERE "i" + 1 < "n"
)
INSERT OR IGNORE INTO "BlockEntry" ("entryId", "blockHash")
SELECT substr("all", "i" * 32 + 1, 32), "blockHash" FROM "ids";
