import { PEERS_DEFAULTS } from '../options.ts';

/**
 * Peer reputation after Lodestar's scheme: a score in [-100, 100] that decays toward 0 with a
 * half-life, lowered by misbehaviour of graded severity. Below the disconnect threshold the
 * peer is dropped; below the ban threshold it is also refused for a while. Pure: the caller
 * supplies the clock and acts on the verdicts. The table is bounded (peer ids cost a stranger
 * nothing): past `maxPeers` the idle entries go first, then the best scores; active bans only to
 * remember a newer ban when nothing else is left (the one ending soonest).
 */
export type PeerAction =
  /** Proven malice (a wrong chain, a forged signature on a block it produced): ban at once. */
  | 'fatal'
  /** Clearly invalid data (bad PoW, bad signature, garbage frames). */
  | 'low-tolerance'
  /** Protocol misuse that could be a bug (a lying status, an oversized message). */
  | 'mid-tolerance'
  /** Minor issues (timeouts, rate limit hits, useless answers). */
  | 'high-tolerance';

export const ACTION_SCORE: Record<PeerAction, number> = {
  fatal: -100,
  'low-tolerance': -10,
  'mid-tolerance': -5,
  'high-tolerance': -1,
};

export type PeerVerdict = 'ok' | 'disconnect' | 'ban';

export interface PeerScoreOptions {
  readonly halfLifeMs?: number;
  readonly disconnectBelow?: number;
  readonly banBelow?: number;
  readonly banMs?: number;
  /** Peers remembered at most. */
  readonly maxPeers?: number;
}

interface Record_ {
  score: number;
  updatedAt: number;
  bannedUntil: number;
  lastReason: string | undefined;
}

export class PeerScores {
  private readonly peers = new Map<string, Record_>();
  /** Records not kept because the table was full of bans (a metric reads it). */
  dropped = 0;
  /** Bans forgotten before their end to remember a newer one (the table was full of bans). */
  bansEvicted = 0;
  /** A record created over a full table, held for the current call only (see settle). */
  private overflow: string | undefined;
  readonly halfLifeMs: number;
  readonly disconnectBelow: number;
  readonly banBelow: number;
  readonly banMs: number;
  readonly maxPeers: number;

  constructor(opts: PeerScoreOptions = {}) {
    this.halfLifeMs = opts.halfLifeMs ?? PEERS_DEFAULTS.scoreHalfLifeMs;
    this.disconnectBelow = opts.disconnectBelow ?? PEERS_DEFAULTS.disconnectBelow;
    this.banBelow = opts.banBelow ?? PEERS_DEFAULTS.banBelow;
    this.banMs = opts.banMs ?? PEERS_DEFAULTS.banMs;
    this.maxPeers = opts.maxPeers ?? PEERS_DEFAULTS.maxScoredPeers;
  }

  /**
   * The peer's record, created when absent (a mutation follows); decayed to `now`. When the table
   * is full of records it must not drop (bans), the newcomer is held only for this call: `settle`
   * then keeps it if it earned a ban (the ban ending soonest makes room) and drops it otherwise.
   */
  private get(peer: string, now: number): Record_ {
    let r = this.peers.get(peer);
    if (!r) {
      r = { score: 0, updatedAt: now, bannedUntil: 0, lastReason: undefined };
      this.peers.set(peer, r);
      if (this.peers.size > this.maxPeers) {
        this.prune(now, peer);
        if (this.peers.size > this.maxPeers) this.overflow = peer;
      }
    }
    return this.decay(r, now);
  }

  /**
   * After a call that created a record over a table full of bans. A ban verdict is always
   * remembered until it ends (else a table filled with throwaway bans leaves every later peer
   * unbannable): the ban that ends soonest goes instead, and is counted. Anything else is dropped.
   */
  private settle(peer: string, verdict: PeerVerdict | undefined, now: number): void {
    if (this.overflow !== peer) return;
    this.overflow = undefined;
    if (verdict !== 'ban') {
      this.peers.delete(peer);
      this.dropped++;
      return;
    }
    let soonest: string | undefined;
    let until = Number.POSITIVE_INFINITY;
    for (const [p, r] of this.peers)
      if (p !== peer && r.bannedUntil > now && r.bannedUntil < until) {
        soonest = p;
        until = r.bannedUntil;
      }
    if (soonest !== undefined) {
      this.peers.delete(soonest);
      this.bansEvicted++;
    }
  }

  // Exponential decay toward zero; a banned peer's score does not recover until the ban ends.
  private decay(r: Record_, now: number): Record_ {
    if (now > r.updatedAt && now >= r.bannedUntil) {
      r.score *= 0.5 ** ((now - r.updatedAt) / this.halfLifeMs);
      if (Math.abs(r.score) < 0.01) r.score = 0;
    }
    r.updatedAt = Math.max(r.updatedAt, now);
    return r;
  }

  /** A lookup does not add the peer: asking about a stranger must not grow the table. */
  score(peer: string, now: number): number {
    const r = this.peers.get(peer);
    return r ? this.decay(r, now).score : 0;
  }

  get size(): number {
    return this.peers.size;
  }

  /**
   * Shrinks the table toward 90% of its bound (so pruning is rare). Forgetting a record resets
   * the peer to 0, a gift to a peer that misbehaved, so the order is: entries at score 0 first,
   * then the best scores (they lose only goodwill), the worst last; an active ban never goes
   * (a banned peer that could get strangers scored would lift its own ban). `keep` stays.
   */
  prune(now: number, keep?: string): void {
    const target = Math.floor(this.maxPeers * 0.9);
    for (const [p, r] of this.peers) {
      if (this.peers.size <= target) return;
      if (p !== keep && r.bannedUntil <= now && this.decay(r, now).score === 0) this.peers.delete(p);
    }
    if (this.peers.size <= target) return;
    const ranked = [...this.peers]
      .filter(([p, r]) => p !== keep && r.bannedUntil <= now)
      .sort(([, a], [, b]) => b.score - a.score || a.updatedAt - b.updatedAt);
    for (const [p] of ranked.slice(0, this.peers.size - target)) this.peers.delete(p);
  }

  /** Applies an action and returns what should happen to the peer now. */
  apply(peer: string, action: PeerAction, reason: string, now: number): PeerVerdict {
    const r = this.get(peer, now);
    r.score = Math.max(-100, Math.min(100, r.score + ACTION_SCORE[action]));
    r.lastReason = `${action}: ${reason}`;
    const verdict = this.verdictOf(r, now);
    this.settle(peer, verdict, now);
    return verdict;
  }

  /** A small reward for useful service (valid blocks, answered requests). */
  reward(peer: string, now: number, amount = 0.5): void {
    const r = this.get(peer, now);
    r.score = Math.min(100, r.score + amount);
    this.settle(peer, undefined, now);
  }

  verdict(peer: string, now: number): PeerVerdict {
    const r = this.peers.get(peer);
    return r ? this.verdictOf(this.decay(r, now), now) : 'ok';
  }

  isBanned(peer: string, now: number): boolean {
    const r = this.peers.get(peer);
    return r !== undefined && r.bannedUntil > now;
  }

  lastReason(peer: string): string | undefined {
    return this.peers.get(peer)?.lastReason;
  }

  /** Peers currently banned, with the time the ban ends. */
  banned(now: number): { peer: string; until: number; reason: string | undefined }[] {
    return [...this.peers]
      .filter(([, r]) => r.bannedUntil > now)
      .map(([peer, r]) => ({ peer, until: r.bannedUntil, reason: r.lastReason }));
  }

  private verdictOf(r: Record_, now: number): PeerVerdict {
    if (r.bannedUntil > now) return 'ban';
    if (r.score <= this.banBelow) {
      r.bannedUntil = now + this.banMs;
      return 'ban';
    }
    return r.score <= this.disconnectBelow ? 'disconnect' : 'ok';
  }
}
