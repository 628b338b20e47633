import type { Queue } from 'bullmq';
import type { Logger } from '../node/log.ts';
import type { ReportPayloads } from './payloads.ts';
import type { ReportKind } from './queues.ts';

interface Pending<K extends ReportKind = ReportKind> {
  readonly kind: K;
  readonly id: string;
  readonly payload: ReportPayloads[K];
  readonly createdAt: number;
  sentAt: number | undefined;
}

export interface OutboxOptions {
  /** Sent reports are kept this long and sent again after Redis comes back (it keeps nothing on disk). */
  readonly retainMs?: number;
  /** Bound on retained reports; the oldest go first. */
  readonly maxItems?: number;
  /** A single add that takes longer counts as failed and is retried. */
  readonly addTimeoutMs?: number;
  readonly log: Logger;
}

export interface OutboxStats {
  readonly pending: number;
}

/**
 * Reports leave the node through here. Each report has a deterministic job id, so sending it
 * twice is harmless (BullMQ ignores a duplicate id while the job exists, the collector records
 * every report id it processed). That makes the recovery rule simple: on reconnect, everything
 * sent within the retention window is sent again, which covers the reports a restarted Redis
 * lost before the collector saw them.
 */
export class ReportOutbox {
  private readonly items: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private readonly retainMs: number;
  private readonly maxItems: number;
  private readonly addTimeoutMs: number;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly queue: Queue,
    private readonly opts: OutboxOptions,
  ) {
    this.retainMs = opts.retainMs ?? 10 * 60_000;
    this.maxItems = opts.maxItems ?? 10_000;
    this.addTimeoutMs = opts.addTimeoutMs ?? 5_000;
  }

  push<K extends ReportKind>(kind: K, id: string, payload: ReportPayloads[K]): void {
    if (this.closed) return;
    this.items.push({ kind, id, payload, createdAt: Date.now(), sentAt: undefined } as Pending);
    this.trim();
    this.kick();
  }

  /** After a reconnect: send again everything still retained. */
  replay(): void {
    for (const it of this.items) it.sentAt = undefined;
    this.kick();
  }

  stats(): OutboxStats {
    return { pending: this.items.filter((i) => i.sentAt === undefined).length };
  }

  /** Resolves when nothing is pending (or the timeout passes); used at shutdown and in tests. */
  async drain(timeoutMs = 5_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (!this.items.some((i) => i.sentAt === undefined)) return true;
      this.kick();
      await (this.flushing ?? new Promise((r) => setTimeout(r, 50)));
    }
    return false;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
  }

  private trim(): void {
    const cutoff = Date.now() - this.retainMs;
    while (this.items.length > 0) {
      const first = this.items[0]!;
      const expiredAndSent = first.sentAt !== undefined && first.createdAt < cutoff;
      if (!expiredAndSent && this.items.length <= this.maxItems) break;
      this.items.shift();
    }
  }

  private kick(): void {
    if (this.flushing || this.closed) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
    });
  }

  private async flush(): Promise<void> {
    for (;;) {
      // In creation order: the collector sees a node's blocks parent first.
      const next = this.items.find((i) => i.sentAt === undefined);
      if (!next || this.closed) return;
      try {
        await this.add(next);
        next.sentAt = Date.now();
      } catch (err) {
        this.opts.log.debug({ err: (err as Error).message, id: next.id }, 'report not sent yet; retrying');
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.kick(), 1_000);
        this.retryTimer.unref();
        return;
      }
      this.trim();
    }
  }

  private async add(p: Pending): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('add timed out')), this.addTimeoutMs);
    });
    try {
      await Promise.race([
        this.queue.add(p.kind, p.payload, {
          jobId: p.id,
          attempts: 5,
          backoff: { type: 'exponential', delay: 500 },
          removeOnComplete: { age: 3600, count: 10_000 },
          removeOnFail: { age: 24 * 3600 },
        }),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}
