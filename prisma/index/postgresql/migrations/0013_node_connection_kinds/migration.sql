-- AlterTable
ALTER TABLE "Node" ADD COLUMN     "connectionKinds" TEXT NOT NULL DEFAULT '{}';
