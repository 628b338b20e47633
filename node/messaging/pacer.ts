/**
 * Sender-side pacing to a responder's advertised budget. Every Cairn protocol states its
 * per-peer budget in its ProtocolSpec (`rateLimit`: points per window; `maxConcurrentPerPeer`),
 * and a responder penalises the requester that goes over it. A sender with a backlog (a week's
 * outbox left with a mailbox) must not learn the budget by being refused, penalised and backing
 * off for minutes: it waits for a slot instead.
 *
 * The responder's limiter is a fixed window that starts at a request it counts; its alignment is
 * unknown here, so the pacer keeps a sliding log: no more than `points` starts in any span of
 * `windowMs`, which no fixed window of that length can see exceeded. `windowMs` should carry a
 * margin over the responder's window for the difference in arrival times.
 */

export interface PacerOptions {
  readonly points: number;
  readonly windowMs: number;
  /** Requests open at once towards one peer. */
  readonly maxInFlight: number;
  /** Peers tracked at most; idle ones are forgotten first (default 256). */
  readonly maxPeers?: number;
  readonly now?: () => number;
}

interface PeerSlots {
  /** Start times within the last window, oldest first. */
  readonly starts: number[];
  inFlight: number;
  readonly waiters: (() => void)[];
}

export class RequestPacer {
  private readonly o: Required<PacerOptions>;
  private readonly peers = new Map<string, PeerSlots>();
  constructor(o: PacerOptions) {
    if (o.points < 1 || o.maxInFlight < 1 || o.windowMs <= 0) throw new RangeError('pacer needs a budget');
    this.o = { maxPeers: 256, now: Date.now, ...o };
  }

  /** Waits for a slot towards `peer`; the returned function gives it back (call it once). */
  async acquire(peer: string): Promise<() => void> {
    const s = this.slots(peer);
    while (s.inFlight >= this.o.maxInFlight) await new Promise<void>((r) => s.waiters.push(r));
    s.inFlight++;
    try {
      for (;;) {
        const now = this.o.now();
        while (s.starts.length > 0 && s.starts[0]! <= now - this.o.windowMs) s.starts.shift();
        if (s.starts.length < this.o.points) {
          s.starts.push(now);
          break;
        }
        await new Promise((r) => setTimeout(r, s.starts[0]! + this.o.windowMs - now).unref());
      }
    } catch (err) {
      this.release(s);
      throw err;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.release(s);
    };
  }

  /** Requests open towards `peer` now (for tests and metrics). */
  inFlight(peer: string): number {
    return this.peers.get(peer)?.inFlight ?? 0;
  }

  private release(s: PeerSlots): void {
    s.inFlight--;
    s.waiters.shift()?.();
  }

  private slots(peer: string): PeerSlots {
    let s = this.peers.get(peer);
    if (s) return s;
    if (this.peers.size >= this.o.maxPeers) {
      const now = this.o.now();
      for (const [k, v] of this.peers) {
        const idle = v.inFlight === 0 && v.waiters.length === 0;
        if (idle && (v.starts.length === 0 || v.starts.at(-1)! <= now - this.o.windowMs))
          this.peers.delete(k);
      }
    }
    s = { starts: [], inFlight: 0, waiters: [] };
    this.peers.set(peer, s);
    return s;
  }
}
