-- CreateTable
CREATE TABLE "Block" (
    "hash" BLOB NOT NULL PRIMARY KEY,
    "height" INTEGER NOT NULL,
    "prevHash" BLOB NOT NULL,
    "raw" BLOB NOT NULL,
    "entryCount" INTEGER NOT NULL,
    "receivedAt" BIGINT NOT NULL
);

-- CreateTable
CREATE TABLE "Entry" (
    "id" BLOB NOT NULL PRIMARY KEY,
    "blockHash" BLOB NOT NULL,
    "position" INTEGER NOT NULL
);

-- CreateIndex
CREATE INDEX "Block_height_idx" ON "Block"("height");

-- CreateIndex
CREATE INDEX "Block_prevHash_idx" ON "Block"("prevHash");

-- CreateIndex
CREATE INDEX "Entry_blockHash_idx" ON "Entry"("blockHash");

