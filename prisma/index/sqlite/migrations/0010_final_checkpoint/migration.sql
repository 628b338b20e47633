-- CreateTable
CREATE TABLE "FinalCheckpoint" (
    "height" INTEGER NOT NULL PRIMARY KEY,
    "hash" TEXT NOT NULL,
    "carrierHash" TEXT NOT NULL,
    "finalizedAt" DATETIME NOT NULL
);
