-- AlterTable
ALTER TABLE "MempoolEntry" ADD COLUMN "origin" TEXT NOT NULL DEFAULT 'peer';
