import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { lpStream, RateLimiter } from '@libp2p/utils';
import type { SealedEntry } from '../chain/types.ts';
import type { Logger } from '../log.ts';
import type { CairnLibp2p } from '../p2p/host.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';
import { decodeReconcileFrame, encodeReconcileFrame, RECONCILE_LIMITS } from './reconcile-codec.ts';
import { ReconcileSide } from './reconcile-session.ts';

export interface ReconcileStats {
  readonly frames: number;
  readonly roundTrips: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly entriesSent: number;
  readonly entriesReceived: number;
}

export interface ReconcileProtocolOptions {
  readonly host: CairnLibp2p;
  readonly protocolId: string;
  /** Current mempool contents. */
  readonly entries: () => Iterable<SealedEntry>;
  /** Entries learnt from the peer; returns how many were invalid. */
  readonly accept: (entries: readonly SealedEntry[], peer: PeerId) => Promise<number>;
  readonly penalise: (peer: PeerId, action: PeerAction, reason: string) => void;
  /** Banned or blocked peers (and, in roster mode, peers not admitted) are neither served nor asked. */
  readonly refuses?: (peer: PeerId) => boolean;
  readonly log: Logger;
  readonly timeoutMs?: number;
}

/**
 * Mempool reconciliation over one libp2p stream: frames alternate until a side has nothing
 * left to say. Both sides end with the union of the two mempools (as far as each entry is
 * valid). Sessions are bounded in frame size, count and time, and limited per peer.
 */
export class ReconcileProtocol {
  private readonly limiter = new RateLimiter({ points: 3, duration: 5 });

  private readonly opts: ReconcileProtocolOptions;
  constructor(opts: ReconcileProtocolOptions) {
    this.opts = opts;
  }

  async start(): Promise<void> {
    await this.opts.host.handle(
      this.opts.protocolId,
      (stream: Stream, conn: Connection) => this.serve(stream, conn.remotePeer),
      {
        maxInboundStreams: 4,
      },
    );
  }

  /** Runs a reconciliation with `peer` as the initiator. */
  async reconcileWith(peer: PeerId): Promise<ReconcileStats> {
    // Our mempool's fingerprints and entries are for members only.
    if (this.opts.refuses?.(peer)) throw new Error(`not reconciling with refused peer ${peer.toString()}`);
    const signal = AbortSignal.timeout(this.opts.timeoutMs ?? 20_000);
    const stream = await this.opts.host.dialProtocol(peer, this.opts.protocolId, { signal });
    return this.run(stream, peer, signal, true);
  }

  private async serve(stream: Stream, peer: PeerId): Promise<void> {
    if (this.opts.refuses?.(peer)) {
      stream.abort(new Error('peer refused'));
      return;
    }
    try {
      this.limiter.consume(peer.toString());
    } catch {
      this.opts.penalise(peer, 'high-tolerance', 'mempool reconciliation: rate limited');
      stream.abort(new Error('rate limited'));
      return;
    }
    const signal = AbortSignal.timeout(this.opts.timeoutMs ?? 20_000);
    await this.run(stream, peer, signal, false).catch((err) =>
      this.opts.log.debug(
        { err: (err as Error).message, peer: peer.toString() },
        'inbound reconciliation failed',
      ),
    );
  }

  private async run(
    stream: Stream,
    peer: PeerId,
    signal: AbortSignal,
    initiator: boolean,
  ): Promise<ReconcileStats> {
    const lp = lpStream(stream, { maxDataLength: RECONCILE_LIMITS.frameBytes });
    // Entries of the frame being handled: admitted (and their validity judged) before the reply
    // goes out, so a session never buffers more than one frame and a peer that sends invalid
    // entries is cut off at the first such frame.
    let received: SealedEntry[] = [];
    const side = new ReconcileSide(this.opts.entries(), (es) => received.push(...es));
    const admit = async () => {
      if (!received.length) return;
      const batch = received;
      received = [];
      const invalid = await this.opts.accept(batch, peer);
      if (invalid > 0) {
        this.opts.penalise(peer, 'low-tolerance', `${invalid} invalid entries in reconciliation`);
        throw new Error(`${invalid} invalid entries in a reconciliation frame`);
      }
    };
    let frames = 0;
    let bytesSent = 0;
    let bytesReceived = 0;
    const send = async (bytes: Uint8Array) => {
      frames++;
      bytesSent += bytes.length;
      await lp.write(bytes, { signal });
    };
    try {
      if (initiator) await send(encodeReconcileFrame(side.start()));
      while (!side.done) {
        if (frames > 16) throw new Error('reconciliation did not converge in 16 frames');
        const raw = (await lp.read({ signal })).subarray();
        frames++;
        bytesReceived += raw.length;
        let frame: ReturnType<typeof decodeReconcileFrame>;
        try {
          frame = decodeReconcileFrame(raw);
        } catch (err) {
          this.opts.penalise(peer, 'low-tolerance', `mempool reconciliation: ${(err as Error).message}`);
          throw err;
        }
        const reply = side.receive(frame);
        await admit();
        if (reply) await send(encodeReconcileFrame(reply));
      }
      await stream.close({ signal }).catch(() => {});
    } catch (err) {
      stream.abort(err as Error);
      throw err;
    }
    return {
      frames,
      roundTrips: Math.ceil(frames / 2),
      bytesSent,
      bytesReceived,
      entriesSent: side.entriesSent,
      entriesReceived: side.entriesReceived,
    };
  }
}
