/**
 * Group commit for Prisma writes: writes asked for while a transaction is committing wait and
 * then commit together in the next one, so a burst of N small writes costs a few fsyncs instead
 * of N (the store runs synchronous=FULL: every transaction is one fsync). Nothing waits on a
 * timer: the first write of a quiet moment commits at once, alone.
 *
 * A batch that fails is retried one write per transaction, so one bad write (a constraint it
 * breaks) fails only its own caller.
 */
import type { Prisma } from './generated/client.ts';

type PrismaPromise<T> = Prisma.PrismaPromise<T>;

export interface TransactionRunner {
  $transaction(ops: PrismaPromise<unknown>[]): Promise<unknown[]>;
}

/** A write: builds its operations when its batch commits (Prisma promises are lazy but single-use). */
export type Write = () => PrismaPromise<unknown>[];

interface Waiting {
  readonly write: Write;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** Operations in one transaction at most: SQLite's bound on variables is far above this. */
export const GROUP_COMMIT_MAX_OPS = 512;

export class GroupCommit {
  private queue: Waiting[] = [];
  private running = false;
  /** Transactions committed (or tried), for tests and metrics. */
  transactions = 0;

  private readonly db: TransactionRunner;
  private readonly maxOps: number;
  constructor(db: TransactionRunner, maxOps = GROUP_COMMIT_MAX_OPS) {
    this.db = db;
    this.maxOps = maxOps;
  }

  /** Resolves once the write is committed; rejects with its own error if it could not be. */
  commit(write: Write): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ write, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch: { w: Waiting; ops: PrismaPromise<unknown>[] }[] = [];
        let ops = 0;
        while (this.queue.length > 0 && (batch.length === 0 || ops < this.maxOps)) {
          const w = this.queue.shift()!;
          let built: PrismaPromise<unknown>[];
          try {
            built = w.write();
          } catch (err) {
            w.reject(err);
            continue;
          }
          batch.push({ w, ops: built });
          ops += built.length;
        }
        if (batch.length === 0) continue;
        try {
          this.transactions++;
          await this.db.$transaction(batch.flatMap((b) => b.ops));
          for (const b of batch) b.w.resolve();
        } catch (err) {
          if (batch.length === 1) {
            batch[0]!.w.reject(err);
            continue;
          }
          // Someone's write broke the batch: each alone, so only that one fails.
          for (const b of batch) {
            try {
              this.transactions++;
              await this.db.$transaction(b.w.write());
              b.w.resolve();
            } catch (own) {
              b.w.reject(own);
            }
          }
        }
      }
    } finally {
      this.running = false;
    }
  }
}
