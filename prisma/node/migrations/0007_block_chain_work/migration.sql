-- AlterTable
ALTER TABLE "Block" ADD COLUMN "chainWork" BLOB;
