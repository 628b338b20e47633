-- CreateTable
CREATE TABLE "FinalCheckpoint" (
    "height" INTEGER NOT NULL,
    "hash" TEXT NOT NULL,
    "carrierHash" TEXT NOT NULL,
    "finalizedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "FinalCheckpoint_pkey" PRIMARY KEY ("height")
);
