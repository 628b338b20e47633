-- A recipient's pending outbox messages in sequence order: without it, every flush scanned all
-- of the recipient's rows, delivered ones included (1.2 ms at 5,000, growing with the outbox).
-- CreateIndex
CREATE INDEX "OutboxMessage_recipient_deliveredAt_seq_idx" ON "OutboxMessage"("recipient", "deliveredAt", "seq");
