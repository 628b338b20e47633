/**
 * A minimum pace for one download (a range-sync batch, a header pre-sync): after a grace
 * period, the bytes received must keep up with a floor rate. Every chunk of a trickled answer
 * can arrive just inside the per-chunk write timeout and every answer just inside the request
 * deadline, so those alone let one peer hold a sync for minutes (a pre-sync of 200,000 headers
 * at one 512-header answer per 9.9 s is more than an hour); this bounds the time to the grace
 * plus what the bytes justify at the floor rate.
 *
 * The allowance grows with the bytes, not with the answers or blocks, so a peer buys time only
 * by sending data: what counts is the pace of the link, which is the same for small and large
 * blocks. Pure: the clock is injected.
 */
export interface ProgressFloorOptions {
  /** Time allowed before the first byte counts (latency, a busy server, our own import). */
  readonly graceMs: number;
  /** The slowest pace accepted after the grace, in bytes per second. */
  readonly minBytesPerSec: number;
}

export class ProgressFloor {
  private readonly startedAt: number;
  private received = 0;

  private readonly o: ProgressFloorOptions;
  private readonly now: () => number;
  constructor(o: ProgressFloorOptions, now: () => number) {
    this.o = o;
    this.now = now;
    this.startedAt = now();
  }

  /** Counts `n` bytes received. */
  add(n: number): void {
    this.received += n;
  }

  get bytes(): number {
    return this.received;
  }

  get elapsedMs(): number {
    return this.now() - this.startedAt;
  }

  /** Whether the download has taken longer than the grace plus its bytes at the floor rate. */
  behind(): boolean {
    return this.elapsedMs > this.o.graceMs + (this.received * 1000) / this.o.minBytesPerSec;
  }

  /** For logs and penalty reasons. */
  describe(): string {
    return `${this.received} bytes in ${Math.round(this.elapsedMs)} ms, below ${this.o.minBytesPerSec} B/s after ${this.o.graceMs} ms`;
  }
}
