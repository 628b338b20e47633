-- CreateIndex
CREATE INDEX "Report_receivedAt_idx" ON "Report"("receivedAt");
