-- CreateTable
CREATE TABLE "ConfigEntry" (
    "blockHash" BLOB NOT NULL,
    "position" INTEGER NOT NULL,
    "raw" BLOB NOT NULL,

    PRIMARY KEY ("blockHash", "position")
);
