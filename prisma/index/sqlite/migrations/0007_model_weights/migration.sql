-- CreateTable
CREATE TABLE "ModelWeights" (
    "hash" TEXT NOT NULL PRIMARY KEY,
    "bytes" BLOB NOT NULL,
    "paramCount" INTEGER NOT NULL,
    "createdAt" DATETIME NOT NULL
);

