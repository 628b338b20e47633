-- AlterTable
ALTER TABLE "Node" ADD COLUMN     "msgDelivered" INTEGER,
ADD COLUMN     "msgLatencyP50Ms" DOUBLE PRECISION,
ADD COLUMN     "msgLatencyP99Ms" DOUBLE PRECISION,
ADD COLUMN     "msgLatencySamples" INTEGER,
ADD COLUMN     "msgMailboxBytes" DOUBLE PRECISION,
ADD COLUMN     "msgMailboxCapacityBytes" DOUBLE PRECISION,
ADD COLUMN     "msgMailboxItems" INTEGER,
ADD COLUMN     "msgPending" INTEGER,
ADD COLUMN     "msgSent" INTEGER;
