import type { Hex } from '../chain/bytes.ts';
import type { SealedEntry } from '../chain/types.ts';
import { Reconciler } from './reconcile.ts';
import type { ReconcileFrame } from './reconcile-codec.ts';

/**
 * One side of a reconciliation: turns received frames into the next frame to send, hands the
 * entries the peer sent to `accept`, and knows when it is done. A side is done after it sends
 * a frame with nothing to answer (no ranges, no requests); the receiver of such a frame is
 * done too, after taking its entries.
 */
export class ReconcileSide {
  private readonly reconciler: Reconciler;
  private finished = false;
  framesSent = 0;
  entriesSent = 0;
  entriesReceived = 0;

  private readonly accept: (entries: readonly SealedEntry[]) => void;
  constructor(entries: Iterable<SealedEntry>, accept: (entries: readonly SealedEntry[]) => void) {
    this.accept = accept;
    const byId = new Map<Hex, SealedEntry>();
    for (const e of entries) byId.set(e.idHex, e);
    this.byId = byId;
    this.reconciler = new Reconciler([...byId.values()].map((e) => e.id));
  }

  private readonly byId: Map<Hex, SealedEntry>;

  get done(): boolean {
    return this.finished;
  }

  start(): ReconcileFrame {
    this.framesSent++;
    return { ...this.reconciler.initiate(), entries: [] };
  }

  /** Returns the frame to send back, or null when the exchange is over. */
  receive(frame: ReconcileFrame): ReconcileFrame | null {
    this.entriesReceived += frame.entries.length;
    if (frame.entries.length) this.accept(frame.entries);
    if (frame.ranges.length === 0 && frame.requests.length === 0) {
      this.finished = true;
      return null;
    }
    const { reply, outcome, requested } = this.reconciler.respond(frame);
    const entries = [...outcome.send, ...requested]
      .map((id) => this.byId.get(Buffer.from(id).toString('hex')))
      .filter((e): e is SealedEntry => e !== undefined);
    if (reply.ranges.length === 0 && reply.requests.length === 0) this.finished = true;
    this.framesSent++;
    this.entriesSent += entries.length;
    return { ...reply, entries };
  }
}
