/**
 * What of messaging leaves the node in its stats report: counts and delivery latency, never a
 * message's text and never a correspondent's id (issue 14 item 5: plaintext stays on the two
 * devices; the collector and the gateway see metadata only). Counts run since this process
 * started; `pending` is the outbox's, restored from the store at start.
 */

/** Deliveries whose latency the percentiles are taken over (the most recent ones). */
export const LATENCY_WINDOW = 1024;

export interface MessagingStats {
  /** Messages handed to this node to send since it started. */
  readonly sent: number;
  /** Of those and of earlier ones, receipts that arrived since it started. */
  readonly delivered: number;
  /** Messages in the outbox waiting for a receipt. */
  readonly pending: number;
  /** Send-to-receipt latency over the last `latencySamples` deliveries (absent before the first). */
  readonly latency?: { readonly p50Ms: number; readonly p99Ms: number; readonly samples: number } | undefined;
  /** On a mailbox node: the envelopes it holds for others and their bytes, against its total quota. */
  readonly mailbox?:
    | { readonly items: number; readonly bytes: number; readonly capacityBytes: number }
    | undefined;
}

/** Nearest-rank percentile of sorted values (q in (0, 1]). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no values');
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export class DeliveryStats {
  private sentCount = 0;
  private deliveredCount = 0;
  private pendingCount = 0;
  /** A ring of the last LATENCY_WINDOW latencies, ms. */
  private readonly ring = new Float64Array(LATENCY_WINDOW);
  private filled = 0;
  private next = 0;

  restorePending(n: number): void {
    this.pendingCount = n;
  }

  sent(): void {
    this.sentCount++;
    this.pendingCount++;
  }

  delivered(latencyMs: number): void {
    this.deliveredCount++;
    this.pendingCount = Math.max(0, this.pendingCount - 1);
    this.ring[this.next] = Math.max(0, latencyMs);
    this.next = (this.next + 1) % LATENCY_WINDOW;
    this.filled = Math.min(LATENCY_WINDOW, this.filled + 1);
  }

  snapshot(mailbox?: { items: number; bytes: number; capacityBytes: number }): MessagingStats {
    const sorted = Array.from(this.ring.subarray(0, this.filled)).sort((a, b) => a - b);
    return {
      sent: this.sentCount,
      delivered: this.deliveredCount,
      pending: this.pendingCount,
      latency:
        sorted.length === 0
          ? undefined
          : { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), samples: sorted.length },
      mailbox,
    };
  }
}
