-- AlterTable
ALTER TABLE "Node" ADD COLUMN "flBudget" REAL;
ALTER TABLE "Node" ADD COLUMN "flDelta" REAL;
ALTER TABLE "Node" ADD COLUMN "flEpsilon" REAL;
ALTER TABLE "Node" ADD COLUMN "flMode" TEXT;
ALTER TABLE "Node" ADD COLUMN "flRounds" INTEGER;

-- AlterTable
ALTER TABLE "NodeStatsSnapshot" ADD COLUMN "flBudget" REAL;
ALTER TABLE "NodeStatsSnapshot" ADD COLUMN "flEpsilon" REAL;
ALTER TABLE "NodeStatsSnapshot" ADD COLUMN "flRounds" INTEGER;
