import { PEERS_DEFAULTS } from '../options.ts';

/**
 * Peer reputation after Lodestar's scheme: a score in [-100, 100] that decays toward 0 with a
 * half-life, lowered by misbehaviour of graded severity. Below the disconnect threshold the
 * peer is dropped; below the ban threshold it is also refused for a while. Pure: the caller
 * supplies the clock and acts on the verdicts. Both tables are bounded (peer ids cost a stranger
 * nothing): past `maxPeers` scores the idle entries go first, then the best scores, the worst
 * last; active bans are kept apart (`maxBans`), so they never crowd a newcomer's score out.
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
  /** Peers whose score is remembered at most (bans apart). */
  readonly maxPeers?: number;
  /** Bans remembered at most (sized so a flood of bans cannot fill it within one ban). */
  readonly maxBans?: number;
}

interface Record_ {
  score: number;
  updatedAt: number;
  bannedUntil: number;
  lastReason: string | undefined;
}

export class PeerScores {
  /** Scores of peers not banned now; bounded by `maxPeers`, pruned idle and best first. */
  private readonly peers = new Map<string, Record_>();
  /**
   * Records of peers banned now, apart from the scores so that bans cannot fill the score table
   * (a table full of bans left no room to account a newcomer, and penalties that never add up
   * never ban: attack review of #11). Bounded by `maxBans`.
   */
  private readonly bans = new Map<string, Record_>();
  /** Ban verdicts not recorded because the ban store was full (a metric reads it). */
  bansUnrecorded = 0;
  readonly halfLifeMs: number;
  readonly disconnectBelow: number;
  readonly banBelow: number;
  readonly banMs: number;
  readonly maxPeers: number;
  readonly maxBans: number;

  constructor(opts: PeerScoreOptions = {}) {
    this.halfLifeMs = opts.halfLifeMs ?? PEERS_DEFAULTS.scoreHalfLifeMs;
    this.disconnectBelow = opts.disconnectBelow ?? PEERS_DEFAULTS.disconnectBelow;
    this.banBelow = opts.banBelow ?? PEERS_DEFAULTS.banBelow;
    this.banMs = opts.banMs ?? PEERS_DEFAULTS.banMs;
    this.maxPeers = opts.maxPeers ?? PEERS_DEFAULTS.maxScoredPeers;
    this.maxBans = opts.maxBans ?? PEERS_DEFAULTS.maxBannedPeers;
  }

  /** The peer's record wherever it is, without creating one. */
  private find(peer: string): Record_ | undefined {
    return this.bans.get(peer) ?? this.peers.get(peer);
  }

  /**
   * The peer's record, created when absent (a mutation follows); decayed to `now`. A ban that has
   * ended goes back among the scores. The score table never holds bans, so pruning always makes
   * room for a newcomer: every peer's penalties add up.
   */
  private get(peer: string, now: number): Record_ {
    const banned = this.bans.get(peer);
    if (banned && banned.bannedUntil > now) return this.decay(banned, now);
    if (banned) this.bans.delete(peer);
    let r = banned ?? this.peers.get(peer);
    if (!r || banned) {
      r ??= { score: 0, updatedAt: now, bannedUntil: 0, lastReason: undefined };
      this.peers.set(peer, r);
      if (this.peers.size > this.maxPeers) this.prune(now, peer);
    }
    return this.decay(r, now);
  }

  /**
   * After a call: a record that earned a ban moves from the scores to the ban store, where it
   * stays until the ban ends. No ban is forgotten early to remember a newer one: throwaway bans
   * would then push a real one out (the oldest went first: 16 more bans lifted a 30 min ban in
   * 11.5 s, attack review of #11). When the store is full of bans that have not ended, the new
   * one is not recorded: the record stays among the scores at its score (the worst are pruned
   * last), the caller sees `isBanned` false after a ban verdict and refuses the peer's address
   * instead (peer-manager.ts), and it is counted.
   */
  private settle(peer: string, r: Record_, now: number): void {
    if (r.bannedUntil <= now || this.bans.has(peer)) return;
    if (this.bans.size >= this.maxBans)
      for (const [p, b] of this.bans) if (b.bannedUntil <= now) this.bans.delete(p);
    if (this.bans.size >= this.maxBans) {
      r.bannedUntil = 0;
      this.bansUnrecorded++;
      return;
    }
    this.peers.delete(peer);
    this.bans.set(peer, r);
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
    const r = this.find(peer);
    return r ? this.decay(r, now).score : 0;
  }

  /** Scores remembered (bans apart). */
  get size(): number {
    return this.peers.size;
  }

  /** Bans remembered (some may have ended and not been swept yet). */
  get bansSize(): number {
    return this.bans.size;
  }

  /**
   * Shrinks the table toward 90% of its bound (so pruning is rare). Forgetting a record resets
   * the peer to 0, a gift to a peer that misbehaved, so the order is: entries at score 0 first,
   * then the best scores (they lose only goodwill), the worst last. Bans are not in this table
   * (a banned peer that could get strangers scored would lift its own ban). `keep` stays.
   */
  prune(now: number, keep?: string): void {
    const target = Math.floor(this.maxPeers * 0.9);
    for (const [p, r] of this.peers) {
      if (this.peers.size <= target) return;
      if (p !== keep && this.decay(r, now).score === 0) this.peers.delete(p);
    }
    if (this.peers.size <= target) return;
    const ranked = [...this.peers]
      .filter(([p]) => p !== keep)
      .sort(([, a], [, b]) => b.score - a.score || a.updatedAt - b.updatedAt);
    for (const [p] of ranked.slice(0, this.peers.size - target)) this.peers.delete(p);
  }

  /** Applies an action and returns what should happen to the peer now. */
  apply(peer: string, action: PeerAction, reason: string, now: number): PeerVerdict {
    const r = this.get(peer, now);
    r.score = Math.max(-100, Math.min(100, r.score + ACTION_SCORE[action]));
    r.lastReason = `${action}: ${reason}`;
    const verdict = this.verdictOf(r, now);
    this.settle(peer, r, now);
    return verdict;
  }

  /** A small reward for useful service (valid blocks, answered requests). */
  reward(peer: string, now: number, amount = 0.5): void {
    const r = this.get(peer, now);
    r.score = Math.min(100, r.score + amount);
  }

  verdict(peer: string, now: number): PeerVerdict {
    const r = this.find(peer);
    if (!r) return 'ok';
    const v = this.verdictOf(this.decay(r, now), now);
    this.settle(peer, r, now); // a score still at the ban threshold bans again: into the ban store
    return v;
  }

  isBanned(peer: string, now: number): boolean {
    const r = this.bans.get(peer);
    return r !== undefined && r.bannedUntil > now;
  }

  lastReason(peer: string): string | undefined {
    return this.find(peer)?.lastReason;
  }

  /** Peers currently banned, with the time the ban ends. */
  banned(now: number): { peer: string; until: number; reason: string | undefined }[] {
    return [...this.bans]
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
