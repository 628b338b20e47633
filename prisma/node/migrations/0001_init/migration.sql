-- CreateTable
CREATE TABLE "Block" (
    "hash" BLOB NOT NULL PRIMARY KEY,
    "height" INTEGER NOT NULL,
    "prevHash" BLOB NOT NULL,
    "header" BLOB NOT NULL,
    "entryIds" BLOB NOT NULL,
    "raw" BLOB NOT NULL,
    "staleReason" TEXT,
    "receivedAt" BIGINT NOT NULL
);

-- CreateTable
CREATE TABLE "ChainHead" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "hash" BLOB NOT NULL,
    "height" INTEGER NOT NULL,
    "updatedAt" BIGINT NOT NULL
);

-- CreateTable
CREATE TABLE "Orphan" (
    "hash" BLOB NOT NULL PRIMARY KEY,
    "parentHash" BLOB NOT NULL,
    "raw" BLOB NOT NULL,
    "receivedAt" BIGINT NOT NULL,
    "fromPeer" TEXT
);

-- CreateTable
CREATE TABLE "MempoolEntry" (
    "id" BLOB NOT NULL PRIMARY KEY,
    "raw" BLOB NOT NULL,
    "seq" BIGINT NOT NULL
);

-- CreateTable
CREATE TABLE "StoreMeta" (
    "key" TEXT NOT NULL PRIMARY KEY,
    "value" TEXT NOT NULL
);

-- CreateIndex
CREATE INDEX "Block_height_idx" ON "Block"("height");

-- CreateIndex
CREATE INDEX "MempoolEntry_seq_idx" ON "MempoolEntry"("seq");

