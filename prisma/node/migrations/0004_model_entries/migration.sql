-- CreateTable
CREATE TABLE "ModelEntry" (
    "blockHash" BLOB NOT NULL,
    "position" INTEGER NOT NULL,
    "raw" BLOB NOT NULL,

    PRIMARY KEY ("blockHash", "position")
);
