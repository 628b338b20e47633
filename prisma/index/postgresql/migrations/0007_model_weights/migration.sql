-- CreateTable
CREATE TABLE "ModelWeights" (
    "hash" TEXT NOT NULL,
    "bytes" BYTEA NOT NULL,
    "paramCount" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ModelWeights_pkey" PRIMARY KEY ("hash")
);

