/**
 * Group commit on the node store's synchronous libsql writer connection: writes asked for in
 * one turn of the event loop (everything the poll phase delivered: a burst of HTTP sends, the
 * arrivals one TCP read carried) run in one transaction at the next check phase (setImmediate),
 * so a burst of N small writes costs one fsync instead of N (the store runs synchronous=FULL:
 * every transaction is one fsync). Nothing waits on a timer.
 *
 * Each write runs inside its own savepoint, so one bad write (a constraint it breaks) is rolled
 * back and fails only its own caller while the rest of the batch commits. The transaction is
 * opened, filled and committed in one synchronous step, so it never stays open across an await
 * and never interleaves with the chain's own transactions on the same connection (NodeStore.apply).
 */
import type Database from 'libsql';

/** A write: runs its prepared statements when its batch commits; its result is the caller's. */
export type Write<T> = (db: Database.Database) => T;

interface Waiting {
  readonly write: Write<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/** Writes in one transaction at most; the rest commit in the next turn, so a flood cannot stall the loop. */
export const GROUP_COMMIT_MAX_WRITES = 512;

export class GroupCommit {
  /** The connection writes run on (its owner's prepared statements belong to it). */
  readonly connection: Database.Database;
  /** Transactions committed (or tried): one fsync each, for tests and metrics. */
  transactions = 0;
  private queue: Waiting[] = [];
  private scheduled = false;
  private readonly maxWrites: number;

  constructor(connection: Database.Database, maxWrites = GROUP_COMMIT_MAX_WRITES) {
    this.connection = connection;
    this.maxWrites = maxWrites;
  }

  /** Resolves with the write's result once it is committed; rejects with its own error if it could not be. */
  commit<T>(write: Write<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ write, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue.splice(0, this.maxWrites);
    if (this.queue.length > 0) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    if (batch.length > 0) this.run(batch);
  }

  private run(batch: Waiting[]): void {
    const db = this.connection;
    const results: { w: Waiting; ok: boolean; value: unknown }[] = [];
    this.transactions++;
    try {
      // IMMEDIATE takes the write lock up front, so the commit never fails half-way for a lock.
      db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    const alone = batch.length === 1;
    for (const w of batch) {
      try {
        if (!alone) db.exec('SAVEPOINT w');
        const value = w.write(db);
        if (!alone) db.exec('RELEASE w');
        results.push({ w, ok: true, value });
      } catch (err) {
        if (!db.inTransaction) {
          // SQLite rolled the whole transaction back (disk full, I/O error): nothing in it stands.
          for (const r of results) r.w.reject(err);
          w.reject(err);
          for (const rest of batch.slice(results.length + 1)) rest.reject(err);
          return;
        }
        if (alone) {
          // A write of several statements may have run some: none of it stands.
          db.exec('ROLLBACK');
          w.reject(err);
          return;
        }
        db.exec('ROLLBACK TO w; RELEASE w');
        results.push({ w, ok: false, value: err });
      }
    }
    try {
      db.exec('COMMIT');
    } catch (err) {
      // A second ROLLBACK after SQLite's own would fail and hide the error that matters.
      if (db.inTransaction) db.exec('ROLLBACK');
      for (const r of results) r.w.reject(err);
      return;
    }
    for (const r of results) (r.ok ? r.w.resolve : r.w.reject)(r.value);
  }
}
