-- CreateTable
CREATE TABLE "MessageKey" (
    "identity" TEXT NOT NULL PRIMARY KEY,
    "record" BLOB NOT NULL,
    "updatedAt" BIGINT NOT NULL
);

-- CreateTable
CREATE TABLE "OutboxMessage" (
    "recipient" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "body" TEXT NOT NULL,
    "envelope" BLOB,
    "contentId" BLOB,
    "createdAt" BIGINT NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "nextAttemptAt" BIGINT NOT NULL,
    "deliveredAt" BIGINT,
    "receipt" BLOB,
    "lastError" TEXT,
    "deposited" INTEGER NOT NULL DEFAULT 0,

    PRIMARY KEY ("recipient", "seq")
);

-- CreateTable
CREATE TABLE "InboxMessage" (
    "sender" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "body" TEXT NOT NULL,
    "sentAt" BIGINT NOT NULL,
    "receivedAt" BIGINT NOT NULL,
    "contentId" BLOB NOT NULL,
    "appOrder" INTEGER,

    PRIMARY KEY ("sender", "seq")
);

-- CreateTable
CREATE TABLE "MessageCursor" (
    "sender" TEXT NOT NULL PRIMARY KEY,
    "next" INTEGER NOT NULL
);

-- CreateTable
CREATE TABLE "MailboxItem" (
    "contentId" TEXT NOT NULL PRIMARY KEY,
    "recipient" TEXT NOT NULL,
    "depositor" TEXT NOT NULL,
    "envelope" BLOB NOT NULL,
    "bytes" INTEGER NOT NULL,
    "storedAt" BIGINT NOT NULL,
    "expiresAt" BIGINT NOT NULL
);

-- CreateIndex
CREATE INDEX "OutboxMessage_deliveredAt_idx" ON "OutboxMessage"("deliveredAt");

-- CreateIndex
CREATE INDEX "InboxMessage_appOrder_idx" ON "InboxMessage"("appOrder");

-- CreateIndex
CREATE INDEX "MailboxItem_recipient_idx" ON "MailboxItem"("recipient");

-- CreateIndex
CREATE INDEX "MailboxItem_depositor_idx" ON "MailboxItem"("depositor");

-- CreateIndex
CREATE INDEX "MailboxItem_expiresAt_idx" ON "MailboxItem"("expiresAt");
