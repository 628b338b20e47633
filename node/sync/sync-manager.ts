import type { Chain } from '../chain/chain.ts';
import type { Logger } from '../log.ts';
import type { NodeMetrics } from '../metrics.ts';
import type { PeerBook } from './peer-book.ts';
import { type RangeSyncDeps, type RangeSyncOptions, rangeSync, type SyncOutcome } from './range-sync.ts';

export type SyncState = 'idle' | 'syncing';

/**
 * Decides when to sync: whenever a peer with a fresh status claims more total work than our
 * tip, range-sync from the best such peer (most work, then lowest latency) with up to two
 * helpers. A peer whose sync was aborted through its fault is skipped for a while.
 */
export class SyncManager {
  state: SyncState = 'idle';
  lastOutcome: SyncOutcome | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly suspects = new Map<string, number>();

  constructor(
    private readonly chain: Chain,
    private readonly book: PeerBook,
    private readonly deps: RangeSyncDeps,
    private readonly metrics: NodeMetrics,
    private readonly log: Logger,
    private readonly opts: RangeSyncOptions & { intervalMs?: number } = {},
  ) {}

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
    const now = Date.now();
    for (const [peer, until] of this.suspects) if (until < now) this.suspects.delete(peer);
    const best = this.book.best(now, new Set(this.suspects.keys()));
    if (!best || best.status.totalWork <= this.chain.tip.chainWork) return;
    const ourHeight = this.chain.tip.height;
    // Evaluated during the sync too: peers whose statuses arrive later join the download.
    const helpers = () =>
      this.book
        .fresh(Date.now())
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
      },
      'sync started',
    );
    try {
      const outcome = await rangeSync(
        { peer: best.peer, status: best.status },
        helpers,
        this.deps,
        this.opts,
      );
      this.lastOutcome = outcome;
      this.metrics.syncedBlocks.inc(outcome.imported);
      const ms = Math.round(performance.now() - started);
      if (outcome.kind === 'aborted') {
        if (outcome.blame) this.suspects.set(outcome.blame, Date.now() + 60_000);
        this.log.warn({ ...outcome, ms }, 'sync aborted');
      } else {
        this.log.info({ imported: outcome.imported, tip: outcome.tip, ms }, 'sync finished');
      }
    } finally {
      this.state = 'idle';
      this.metrics.syncState.set(0);
    }
  }
}
