-- AlterTable
ALTER TABLE "OrphanedBlock" ADD COLUMN "reorgDepth" INTEGER;
