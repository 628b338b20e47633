-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateTable
CREATE TABLE "Node" (
    "id" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "capabilities" TEXT NOT NULL,
    "addrs" TEXT NOT NULL,
    "firstSeenAt" TIMESTAMP(3) NOT NULL,
    "lastSeenAt" TIMESTAMP(3) NOT NULL,
    "height" INTEGER NOT NULL,
    "headHash" TEXT NOT NULL,
    "peerCount" INTEGER NOT NULL,
    "mempoolSize" INTEGER NOT NULL,
    "mining" BOOLEAN NOT NULL,
    "peers" TEXT NOT NULL DEFAULT '[]',

    CONSTRAINT "Node_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "NodeStatsSnapshot" (
    "id" TEXT NOT NULL,
    "nodeId" TEXT NOT NULL,
    "boot" BIGINT NOT NULL,
    "seq" INTEGER NOT NULL,
    "at" TIMESTAMP(3) NOT NULL,
    "height" INTEGER NOT NULL,
    "headHash" TEXT NOT NULL,
    "totalWork" TEXT NOT NULL,
    "difficulty" TEXT NOT NULL,
    "peerCount" INTEGER NOT NULL,
    "mempoolSize" INTEGER NOT NULL,
    "hashRate" DOUBLE PRECISION NOT NULL,

    CONSTRAINT "NodeStatsSnapshot_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "NetworkStats" (
    "id" SERIAL NOT NULL,
    "at" TIMESTAMP(3) NOT NULL,
    "totalNodes" INTEGER NOT NULL,
    "chainLengthMin" INTEGER NOT NULL,
    "chainLengthMax" INTEGER NOT NULL,
    "chainLengthAvg" DOUBLE PRECISION NOT NULL,
    "avgPeers" DOUBLE PRECISION NOT NULL,
    "target" TEXT NOT NULL,
    "difficulty" DOUBLE PRECISION NOT NULL,
    "hashRate" DOUBLE PRECISION NOT NULL,
    "mempoolTotal" INTEGER NOT NULL,
    "mempoolMin" INTEGER NOT NULL,
    "mempoolMax" INTEGER NOT NULL,

    CONSTRAINT "NetworkStats_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Block" (
    "hash" TEXT NOT NULL,
    "height" INTEGER NOT NULL,
    "prevHash" TEXT NOT NULL,
    "merkleRoot" TEXT NOT NULL,
    "timestamp" TIMESTAMP(3) NOT NULL,
    "target" TEXT NOT NULL,
    "nonce" TEXT NOT NULL,
    "miner" TEXT NOT NULL,
    "signature" TEXT NOT NULL,
    "header" TEXT NOT NULL,
    "entryCount" INTEGER NOT NULL,
    "sizeBytes" INTEGER NOT NULL,
    "totalWork" TEXT NOT NULL,
    "canonical" BOOLEAN NOT NULL DEFAULT true,
    "reportedBy" TEXT NOT NULL,
    "receivedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Block_pkey" PRIMARY KEY ("hash")
);

-- CreateTable
CREATE TABLE "Entry" (
    "id" TEXT NOT NULL,
    "blockHash" TEXT NOT NULL,
    "position" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "author" TEXT NOT NULL,
    "timestamp" TIMESTAMP(3) NOT NULL,
    "payload" TEXT NOT NULL,
    "signature" TEXT NOT NULL,

    CONSTRAINT "Entry_pkey" PRIMARY KEY ("blockHash","id")
);

-- CreateTable
CREATE TABLE "OrphanedBlock" (
    "hash" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "height" INTEGER NOT NULL,
    "prevHash" TEXT NOT NULL,
    "miner" TEXT NOT NULL,
    "reportedBy" TEXT NOT NULL,
    "at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "OrphanedBlock_pkey" PRIMARY KEY ("hash","reason")
);

-- CreateTable
CREATE TABLE "NetworkConfig" (
    "chainId" TEXT NOT NULL,
    "genesisHash" TEXT NOT NULL,
    "config" TEXT NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "NetworkConfig_pkey" PRIMARY KEY ("chainId")
);

-- CreateTable
CREATE TABLE "ModelVersion" (
    "hash" TEXT NOT NULL,
    "parentHash" TEXT,
    "round" INTEGER NOT NULL,
    "metrics" TEXT NOT NULL,
    "accuracy" DOUBLE PRECISION,
    "epsilon" DOUBLE PRECISION NOT NULL,
    "participants" INTEGER NOT NULL DEFAULT 0,
    "blockHash" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ModelVersion_pkey" PRIMARY KEY ("hash")
);

-- CreateTable
CREATE TABLE "FlRound" (
    "id" TEXT NOT NULL,
    "round" INTEGER NOT NULL,
    "coordinator" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "participants" TEXT NOT NULL,
    "leftOut" TEXT NOT NULL DEFAULT '[]',
    "dp" TEXT NOT NULL,
    "modelHash" TEXT,
    "error" TEXT,
    "startedAt" TIMESTAMP(3) NOT NULL,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "FlRound_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Report" (
    "id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "nodeId" TEXT NOT NULL,
    "receivedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Report_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "NodeStatsSnapshot_nodeId_at_idx" ON "NodeStatsSnapshot"("nodeId", "at");

-- CreateIndex
CREATE INDEX "NodeStatsSnapshot_at_idx" ON "NodeStatsSnapshot"("at");

-- CreateIndex
CREATE INDEX "NetworkStats_at_idx" ON "NetworkStats"("at");

-- CreateIndex
CREATE INDEX "Block_height_idx" ON "Block"("height");

-- CreateIndex
CREATE INDEX "Block_canonical_height_idx" ON "Block"("canonical", "height");

-- CreateIndex
CREATE INDEX "Entry_id_idx" ON "Entry"("id");

-- CreateIndex
CREATE INDEX "Entry_blockHash_position_idx" ON "Entry"("blockHash", "position");

-- CreateIndex
CREATE INDEX "Entry_kind_idx" ON "Entry"("kind");

-- CreateIndex
CREATE INDEX "OrphanedBlock_at_idx" ON "OrphanedBlock"("at");

-- CreateIndex
CREATE INDEX "ModelVersion_round_idx" ON "ModelVersion"("round");

-- CreateIndex
CREATE INDEX "FlRound_startedAt_idx" ON "FlRound"("startedAt");

-- CreateIndex
CREATE INDEX "Report_kind_nodeId_idx" ON "Report"("kind", "nodeId");

-- AddForeignKey
ALTER TABLE "NodeStatsSnapshot" ADD CONSTRAINT "NodeStatsSnapshot_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "Node"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Entry" ADD CONSTRAINT "Entry_blockHash_fkey" FOREIGN KEY ("blockHash") REFERENCES "Block"("hash") ON DELETE CASCADE ON UPDATE CASCADE;

