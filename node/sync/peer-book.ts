import type { PeerId } from '@libp2p/interface';
import type { Status } from '../p2p/messages.ts';

export interface PeerRecord {
  readonly peer: PeerId;
  status: Status;
  statusAt: number;
  rttMs: number | undefined;
  pingFailures: number;
}

/**
 * What we know of each connected peer: its last status (valid for a TTL) and its latency.
 * Best peer: most total work, then lowest latency.
 */
export class PeerBook {
  private readonly peers = new Map<string, PeerRecord>();

  constructor(readonly statusTtlMs = 30_000) {}

  setStatus(peer: PeerId, status: Status, now: number): PeerRecord {
    const key = peer.toString();
    const r = this.peers.get(key);
    if (r) {
      r.status = status;
      r.statusAt = now;
      return r;
    }
    const fresh: PeerRecord = { peer, status, statusAt: now, rttMs: undefined, pingFailures: 0 };
    this.peers.set(key, fresh);
    return fresh;
  }

  get(peer: PeerId | string): PeerRecord | undefined {
    return this.peers.get(peer.toString());
  }

  remove(peer: PeerId | string): void {
    this.peers.delete(peer.toString());
  }

  recordPing(peer: PeerId, rttMs: number | undefined): number {
    const r = this.peers.get(peer.toString());
    if (!r) return 0;
    if (rttMs === undefined) return ++r.pingFailures;
    r.rttMs = r.rttMs === undefined ? rttMs : r.rttMs * 0.7 + rttMs * 0.3;
    r.pingFailures = 0;
    return 0;
  }

  /** Records with a status younger than the TTL. */
  fresh(now: number): PeerRecord[] {
    return [...this.peers.values()].filter((r) => now - r.statusAt <= this.statusTtlMs);
  }

  stale(now: number): PeerRecord[] {
    return [...this.peers.values()].filter((r) => now - r.statusAt > this.statusTtlMs);
  }

  all(): PeerRecord[] {
    return [...this.peers.values()];
  }

  best(now: number, exclude: ReadonlySet<string> = new Set()): PeerRecord | undefined {
    return this.fresh(now)
      .filter((r) => !exclude.has(r.peer.toString()))
      .sort(
        (a, b) =>
          (b.status.totalWork > a.status.totalWork ? 1 : b.status.totalWork < a.status.totalWork ? -1 : 0) ||
          (a.rttMs ?? Number.MAX_SAFE_INTEGER) - (b.rttMs ?? Number.MAX_SAFE_INTEGER),
      )[0];
  }
}
