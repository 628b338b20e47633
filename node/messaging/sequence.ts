/**
 * Exactly once, in order, per sender: the recipient keeps, per sender, the next sequence number
 * the application has not yet seen and the messages that arrived ahead of it. A copy at or below
 * the cursor is a duplicate (receipted again, shown never); one ahead waits for the gap to fill.
 * Pure: the service persists what it returns (inbox rows and cursors) in one transaction.
 */
export type Arrival<T> =
  | { readonly status: 'duplicate' }
  /** Over the hold bound: not receipted, so the sender retries once the gap has closed. */
  | { readonly status: 'too-far-ahead' }
  /** Stored, waiting for earlier ones. */
  | { readonly status: 'held' }
  /** These, in order, are now the application's (the arrival first when it was next). */
  | { readonly status: 'delivered'; readonly deliver: readonly { seq: number; item: T }[] };

/** Messages one sender may have waiting ahead of a gap (bounds what a sender can make us hold). */
export const DEFAULT_MAX_HELD = 1024;

interface SenderState<T> {
  next: number;
  held: Map<number, T>;
}

export class SequenceTracker<T> {
  private readonly senders = new Map<string, SenderState<T>>();

  private readonly maxHeld;
  constructor(maxHeld = DEFAULT_MAX_HELD) {
    this.maxHeld = maxHeld;
  }

  /** Restores a sender's cursor and held messages (from the store, at start). */
  restore(sender: string, next: number, held: Iterable<[number, T]> = []): void {
    this.senders.set(sender, { next, held: new Map(held) });
  }

  /** The next sequence the application expects from `sender` (1 for a new sender). */
  next(sender: string): number {
    return this.senders.get(sender)?.next ?? 1;
  }

  accept(sender: string, seq: number, item: T): Arrival<T> {
    let s = this.senders.get(sender);
    if (!s) {
      s = { next: 1, held: new Map() };
      this.senders.set(sender, s);
    }
    if (seq < s.next || s.held.has(seq)) return { status: 'duplicate' };
    if (seq > s.next) {
      if (seq - s.next > this.maxHeld) return { status: 'too-far-ahead' };
      s.held.set(seq, item);
      return { status: 'held' };
    }
    const deliver = [{ seq, item }];
    s.next++;
    for (let h = s.held.get(s.next); h !== undefined; h = s.held.get(s.next)) {
      deliver.push({ seq: s.next, item: h });
      s.held.delete(s.next);
      s.next++;
    }
    return { status: 'delivered', deliver };
  }
}
