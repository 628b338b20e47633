/**
 * Spreads a burst of work over event-loop turns. Gossipsub decodes every message already
 * buffered on a stream in one chain of microtasks and starts each one's validation at once, so
 * a peer that queued 20,000 entries would hold the event loop (HTTP, pings, req/resp) for as
 * long as they take to handle. Callers wait here and at most `perTurn` go on per turn of the
 * loop, I/O running in between. Bounded: past `maxWaiting` waiters, `enter` says no at once and
 * the caller drops the work (gossip ignores the message).
 */
export class TurnGate {
  private waiting: (() => void)[] = [];
  private scheduled = false;

  readonly perTurn;
  readonly maxWaiting;
  constructor(perTurn = 64, maxWaiting = 8_192) {
    this.perTurn = perTurn;
    this.maxWaiting = maxWaiting;
  }

  get size(): number {
    return this.waiting.length;
  }

  /** Resolves true when the caller's turn has come, false (at once) when too many wait. */
  enter(): Promise<boolean> {
    if (this.waiting.length >= this.maxWaiting) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.waiting.push(() => resolve(true));
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate runs after the poll phase: each slice lets pending I/O in first.
    setImmediate(() => {
      this.scheduled = false;
      const slice = this.waiting.splice(0, this.perTurn);
      for (const go of slice) go();
      if (this.waiting.length) this.schedule();
    });
  }
}
