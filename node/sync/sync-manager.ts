import type { PeerId } from '@libp2p/interface';
import type { Hex } from '../chain/bytes.ts';
import { toHex } from '../chain/bytes.ts';
import type { Chain } from '../chain/chain.ts';
import type { Logger } from '../log.ts';
import type { NodeMetrics } from '../metrics.ts';
import { SYNC_DEFAULTS } from '../options.ts';
import type { BlockRef, Status } from '../p2p/messages.ts';
import type { PeerBook, PeerRecord } from './peer-book.ts';
import { PresyncBudget } from './presync-budget.ts';
import {
  BAD_FORK_POINT,
  type Disproval,
  judgeFork,
  type RangeSyncDeps,
  type RangeSyncOptions,
  rangeSync,
  type SyncOutcome,
} from './range-sync.ts';

/** Claims of deep forks remembered (peer id and head): a stranger's ids are free. */
const MAX_DEEP_CLAIMS = 1024;

const headOf = (r: PeerRecord): string => toHex(r.status.headHash);

export interface SyncManagerOptions extends RangeSyncOptions {
  readonly intervalMs?: number;
  readonly now?: () => number;
  /** Claimants asked for their fork point at once in a connecting turn (SYNC_DEFAULTS). */
  readonly connectingProbes?: number;
  /** Pre-syncs per period for the node and per address group (default SYNC_DEFAULTS.presyncs). */
  readonly presyncBudget?: PresyncBudget;
  /** A peer's address group, as address bans count them (default: the peer id alone). */
  readonly groupOf?: (peer: PeerId) => string;
}

export type SyncState = 'idle' | 'syncing';

/**
 * Decides when to sync: whenever a peer with a fresh status claims more total work than our
 * tip, range-sync from the best such peer (most work, then lowest latency) with up to two
 * helpers. A peer whose sync was aborted through its fault is skipped for a while.
 *
 * A status the sync disproved (the peer did not serve what it claimed) is recorded in the peer
 * book: it starts no sync again, the peer must send a fresh one after a back-off that doubles
 * with every disproof, and a peer that lies again is penalised each time until it is banned
 * (the range penalty alone is one per sync and would take ten lies).
 *
 * One slot, two kinds of claim. A claim whose fork starts deeper than the side-chain margin is
 * pre-synced (headers only, from the target alone) before any block is fetched, and a stranger
 * can make one for nothing: in open mode every fresh id claiming huge work got one capped
 * pre-sync, and while any was connected the honest peer (less claimed work, a chain connecting
 * at our tip) never had the slot (attack review #11: 12 such ids kept a node 60 blocks behind
 * for 20 s and more). So after a slot spent on a pre-sync that failed, the next is a
 * *connecting turn*: the claimants not known to claim a deep fork are asked for their fork point
 * at once (each claim once), and the best whose chain connects near our tip (its blocks are
 * validated, work and all, as they come) is followed; only if none does is the best claim
 * followed as usual. Unproven claims then get at most every other slot, and a node that is
 * behind catches up with a connecting peer in one.
 *
 * And pre-syncs are rationed (presync-budget.ts): per period, a few for the node and fewer per
 * address group, for claimants with no disproof on record (a repeat liar pays with its score,
 * more each time, until banned). A deep claim over budget ends its sync before any header is read, unblamed,
 * and waits (not picked as the best) until its group and the node have a pre-sync again, so
 * the slot goes to claims of other groups and to chains that connect: fresh ids no longer buy
 * one capped pre-sync after another (~54 s each at the default cap).
 */
export class SyncManager {
  state: SyncState = 'idle';
  lastOutcome: SyncOutcome | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly suspects = new Map<string, number>();
  /** The last slot went to a pre-sync that failed: the next is a connecting turn. */
  private connectingTurn = false;
  /** Claimants whose fork point was deep: the head of the status they claimed it with, their group. */
  private readonly deepForks = new Map<string, { readonly head: string; readonly group: string }>();
  private readonly presyncs: PresyncBudget;
  private readonly groupOf: (peer: PeerId) => string;
  /** The deps range sync gets: ours, with pre-syncs taken from the budget. */
  private readonly syncDeps: RangeSyncDeps;

  private readonly chain: Chain;
  private readonly book: PeerBook;
  private readonly deps: RangeSyncDeps;
  private readonly metrics: NodeMetrics;
  private readonly log: Logger;
  private readonly opts: SyncManagerOptions;
  constructor(
    chain: Chain,
    book: PeerBook,
    deps: RangeSyncDeps,
    metrics: NodeMetrics,
    log: Logger,
    opts: SyncManagerOptions = {},
  ) {
    this.chain = chain;
    this.book = book;
    this.deps = deps;
    this.metrics = metrics;
    this.log = log;
    this.opts = opts;
    this.presyncs =
      opts.presyncBudget ?? new PresyncBudget({ ...SYNC_DEFAULTS.presyncs, now: () => this.now() });
    this.groupOf = opts.groupOf ?? ((p) => p.toString());
    this.syncDeps = {
      ...deps,
      takePresync: (peer) => {
        if (this.isRepeat(peer.toString())) return undefined;
        const group = this.groupOf(peer);
        const why = this.presyncs.take(group);
        if (why) this.metrics.presyncs.inc({ outcome: `refused-${why}` });
        this.log.info({ peer: peer.toString(), group, refused: why ?? null }, 'pre-sync budget');
        return why;
      },
    };
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  start(): void {
    this.timer = setInterval(() => this.poke(), this.opts.intervalMs ?? 250);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Checks now whether a sync is due (called on new statuses and on orphans). */
  poke(): void {
    if (this.running) return;
    this.running = this.maybeSync().finally(() => {
      this.running = undefined;
    });
  }

  /** Syncs now if a peer claims more work (or waits for the sync already running); returns its outcome. */
  async syncNow(): Promise<SyncOutcome | undefined> {
    const before = this.lastOutcome;
    this.poke();
    await this.running;
    return this.lastOutcome === before ? undefined : this.lastOutcome;
  }

  private async maybeSync(): Promise<void> {
    const now = this.now();
    for (const [peer, until] of this.suspects) if (until < now) this.suspects.delete(peer);
    const top = this.book.best(now, new Set([...this.suspects.keys(), ...this.waitingDeepClaims()]));
    if (!top || top.status.totalWork <= this.chain.tip.chainWork) return;
    let best: PeerRecord = top;
    let fork: BlockRef | undefined;
    let turn: 'best' | 'connecting' = 'best';
    if (this.connectingTurn) {
      this.connectingTurn = false;
      const pick = await this.connectingClaim(now);
      if (pick) {
        ({ record: best, fork } = pick);
        turn = 'connecting';
      }
    }
    this.metrics.syncTurns.inc({ turn });
    const ourHeight = this.chain.tip.height;
    // Evaluated during the sync too: peers whose statuses arrive later join the download.
    const helpers = () =>
      this.book
        .syncable(this.now())
        .filter(
          (r) =>
            r.peer !== best.peer && !this.suspects.has(r.peer.toString()) && r.status.headHeight > ourHeight,
        )
        .sort((a, b) => (a.rttMs ?? 1e9) - (b.rttMs ?? 1e9))
        .map((h) => ({ peer: h.peer, status: h.status }));
    this.state = 'syncing';
    this.metrics.syncState.set(1);
    const started = performance.now();
    this.log.info(
      {
        peer: best.peer.toString(),
        theirHeight: best.status.headHeight,
        ourHeight: this.chain.tip.height,
        helpers: helpers().length,
        turn,
      },
      'sync started',
    );
    try {
      const outcome = await rangeSync(
        { peer: best.peer, status: best.status },
        helpers,
        this.syncDeps,
        fork ? { ...this.opts, fork } : this.opts,
      );
      // A failed pre-sync had the slot: the next goes to a chain that connects, if one does.
      if (outcome.kind === 'aborted' && outcome.presync) this.connectingTurn = true;
      // Over the pre-sync budget: the claim is deep and waits for its group's next pre-sync.
      if (outcome.kind === 'aborted' && outcome.presyncRefused) this.rememberDeep(best);
      this.lastOutcome = outcome;
      this.metrics.syncedBlocks.inc(outcome.imported);
      const ms = Math.round(performance.now() - started);
      if (outcome.kind === 'aborted') {
        // A disproved status is the peer book's business (a fresh status after a growing
        // back-off); other faults (a bad fork point, invalid blocks, a vote) skip the peer a while.
        if (outcome.blame && !outcome.disproved) this.suspects.set(outcome.blame, this.now() + 60_000);
        this.log.warn({ ...outcome, ms }, 'sync aborted');
      } else {
        this.log.info({ imported: outcome.imported, tip: outcome.tip, ms }, 'sync finished');
      }
      this.judgeStatus(best.peer, best.status, outcome);
    } finally {
      this.state = 'idle';
      this.metrics.syncState.set(0);
    }
  }

  /**
   * The connecting turn's pick: the claimants (most work first) not already known to claim a
   * deep fork with their current status are asked for their fork point at once, and the best
   * whose fork is near our tip is followed, with the fork it named (not asked twice). Undefined
   * when none is: the best claim is followed as usual. A fork point not on our main chain is
   * penalised as in range sync. A deep answer is remembered with the status's head, so a
   * claim is asked once however many turns it waits (and fresh ids cost one ask each).
   */
  private async connectingClaim(now: number): Promise<{ record: PeerRecord; fork: BlockRef } | undefined> {
    const work = this.chain.tip.chainWork;
    const claimants = this.book
      .ranked(now, new Set(this.suspects.keys()))
      .filter((r) => r.status.totalWork > work && this.deepForks.get(r.peer.toString())?.head !== headOf(r))
      .slice(0, this.opts.connectingProbes ?? SYNC_DEFAULTS.connectingProbes);
    const locator = this.chain.locator().map((h) => Buffer.from(h, 'hex'));
    // Each answer is bounded by the request deadline; asked at once, slow liars cost one.
    const forks = await Promise.all(
      claimants.map((r) => this.deps.requestAncestor(r.peer, locator).catch(() => undefined)),
    );
    let pick: { record: PeerRecord; fork: BlockRef } | undefined;
    for (let i = 0; i < claimants.length; i++) {
      const record = claimants[i]!;
      const fork = forks[i];
      if (!fork) continue;
      const judged = judgeFork(this.chain, fork);
      if (judged === 'bad') this.deps.penalise(record.peer, 'mid-tolerance', BAD_FORK_POINT);
      else if (judged === 'deep') this.rememberDeep(record);
      else pick ??= { record, fork };
    }
    return pick;
  }

  /** Peers whose current claim is known deep while the budget has no pre-sync for their group. */
  private *waitingDeepClaims(): Iterable<string> {
    for (const [key, claim] of this.deepForks) {
      const r = this.book.get(key);
      if (r && headOf(r) === claim.head && !this.isRepeat(key) && this.presyncs.refusal(claim.group))
        yield key;
    }
  }

  /**
   * A peer whose status a sync disproved lately: its pre-syncs are not taken from the budget,
   * since each repeat lie already costs it score (judgeStatus) and its back-off doubles, so its
   * score bounds them until the ban. The budget rations what is free: fresh ids' first claims.
   */
  private isRepeat(key: string): boolean {
    return this.book.disproof(key) !== undefined;
  }

  private rememberDeep(r: PeerRecord): void {
    const key = r.peer.toString();
    this.deepForks.delete(key);
    this.deepForks.set(key, { head: headOf(r), group: this.groupOf(r.peer) });
    // Ids are free: the oldest entry goes first (forgetting one costs one more ask).
    while (this.deepForks.size > MAX_DEEP_CLAIMS) this.deepForks.delete(this.deepForks.keys().next().value!);
  }

  /** Records a status the sync disproved, and penalises a peer that does it again. */
  private judgeStatus(peer: PeerId, status: Status, outcome: SyncOutcome): void {
    let kind: Disproval | undefined;
    let reason: string;
    if (outcome.kind === 'aborted') {
      kind = outcome.disproved;
      reason = outcome.reason;
    } else {
      // Synced, and its head is ours with the work it claimed: the status was true.
      const head = this.chain.tree.get(toHex(status.headHash) as Hex);
      if (head && head.chainWork >= status.totalWork) return;
      // Another head than it named, but all the work it claimed: an honest peer that switched to
      // a sibling between its status and our requests (competing miners do that).
      if (!head && this.chain.tip.chainWork >= status.totalWork) return;
      kind = 'lie';
      // A head we hold with less work than claimed (our genesis or tip, say) would otherwise
      // keep the peer "best" at every poke while a peer that really has more work waits.
      reason = head
        ? `status claimed work ${status.totalWork} for a head with ${head.chainWork}`
        : 'status named a head it did not serve';
    }
    if (!kind) return;
    const d = this.book.disprove(peer, this.now());
    this.metrics.syncDisproved.inc({ kind });
    this.log.info(
      { peer: peer.toString(), kind, count: d.count, backoffMs: d.until - d.at, reason },
      'status disproved',
    );
    // Unserved batches were penalised where they failed (errors, timeouts): a lie is only seen
    // here, and the first one is already penalised by range sync.
    if (kind === 'lie' && d.count >= 2)
      this.deps.penalise(peer, 'low-tolerance', `status disproved ${d.count} times: ${reason}`);
  }
}
