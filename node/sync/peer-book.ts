import type { PeerId } from '@libp2p/interface';
import type { Status } from '../p2p/messages.ts';

export interface PeerRecord {
  readonly peer: PeerId;
  status: Status;
  statusAt: number;
  rttMs: number | undefined;
  pingFailures: number;
}

/** A peer whose status a sync disproved: how often lately, and until when it is not believed. */
export interface Disproof {
  readonly count: number;
  /** When the last disproof happened: only a status received after it counts again. */
  readonly at: number;
  /** No status of the peer starts or joins a sync before this. */
  readonly until: number;
}

export interface DisproofOptions {
  /** Back-off after the first disproof; doubles with each further one. */
  readonly baseMs?: number;
  readonly maxMs?: number;
  /** Disproofs further apart than this start the count afresh. */
  readonly forgetMs?: number;
  /** Peers remembered at most (the oldest entry goes first): a stranger's ids are free. */
  readonly maxEntries?: number;
}

/**
 * What we know of each connected peer: its last status (valid for a TTL) and its latency.
 * Best peer: most total work, then lowest latency. A status that a sync disproved (the peer
 * could not serve what it claimed) is not used again: the peer must send a fresh status, and
 * only after a back-off that doubles with each disproof. Disproofs outlive the connection, so a
 * liar cannot clear them by reconnecting.
 */
export class PeerBook {
  private readonly peers = new Map<string, PeerRecord>();
  private readonly disproofs = new Map<string, Disproof>();
  private readonly disproofOpts: Required<DisproofOptions>;

  readonly statusTtlMs;
  constructor(statusTtlMs = 30_000, disproof: DisproofOptions = {}) {
    this.statusTtlMs = statusTtlMs;
    this.disproofOpts = {
      baseMs: disproof.baseMs ?? 1_000,
      maxMs: disproof.maxMs ?? 5 * 60_000,
      forgetMs: disproof.forgetMs ?? 10 * 60_000,
      maxEntries: disproof.maxEntries ?? 1024,
    };
  }

  /**
   * Records that `peer`'s current status was disproved; returns how many times in a row
   * (counting earlier disproofs up to `forgetMs` apart).
   */
  disprove(peer: PeerId | string, now: number): Disproof {
    const key = peer.toString();
    const o = this.disproofOpts;
    const prev = this.disproofs.get(key);
    const count = prev && now - prev.at <= o.forgetMs ? prev.count + 1 : 1;
    const d: Disproof = {
      count,
      at: now,
      until: now + Math.min(o.maxMs, o.baseMs * 2 ** Math.min(count - 1, 30)),
    };
    // Re-inserted at the end: the map's order is the eviction order.
    this.disproofs.delete(key);
    this.disproofs.set(key, d);
    while (this.disproofs.size > o.maxEntries) this.disproofs.delete(this.disproofs.keys().next().value!);
    return d;
  }

  disproof(peer: PeerId | string): Disproof | undefined {
    return this.disproofs.get(peer.toString());
  }

  /** Whether the record's status is one a sync disproved, or arrived during the back-off. */
  isDisproved(r: PeerRecord, now: number): boolean {
    const d = this.disproofs.get(r.peer.toString());
    return d !== undefined && (now < d.until || r.statusAt <= d.at);
  }

  /** Fresh records whose status may start or join a sync. */
  syncable(now: number): PeerRecord[] {
    return this.fresh(now).filter((r) => !this.isDisproved(r, now));
  }

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
    return this.ranked(now, exclude)[0];
  }

  /** Syncable records not in `exclude`, best first (most work, then lowest latency). */
  ranked(now: number, exclude: ReadonlySet<string> = new Set()): PeerRecord[] {
    return this.syncable(now)
      .filter((r) => !exclude.has(r.peer.toString()))
      .sort(
        (a, b) =>
          (b.status.totalWork > a.status.totalWork ? 1 : b.status.totalWork < a.status.totalWork ? -1 : 0) ||
          (a.rttMs ?? Number.MAX_SAFE_INTEGER) - (b.rttMs ?? Number.MAX_SAFE_INTEGER),
      );
  }
}
