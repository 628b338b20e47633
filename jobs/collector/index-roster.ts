/**
 * The roster at any indexed block, for judging whether a reported block's miner (and its
 * entries' authors) were members at its parent: the chain's pure roster functions
 * (node/membership/roster-state.ts) applied along the indexed ancestry, from the network
 * config's genesis roster. Only validated blocks are indexed, and a block is indexed only
 * after its parent, so every indexed block's ancestry reaches the genesis.
 */
import { fromHex, type Hex } from '../../node/chain/bytes.ts';
import type { ConfigPayload, SealedEntry } from '../../node/chain/types.ts';
import { applyEntries, genesisRoster, type RosterState } from '../../node/membership/roster-state.ts';
import type { IndexDb } from '../index-db/open.ts';
import type { IndexedNetwork } from './block-check.ts';

type Reader = Pick<IndexDb, 'block' | 'entry'>;

/**
 * Roster after each block, cached by hash. Blocks without membership changes share their
 * parent's object (applyEntries returns it), so a slot costs a pointer; the oldest slots go
 * first beyond `capacity`, and a miss walks the index back to a cached block or the genesis.
 */
export class IndexRoster {
  private readonly states = new Map<Hex, RosterState>();
  private readonly genesisState: RosterState;

  constructor(
    private readonly net: IndexedNetwork,
    private readonly capacity = 10_000,
  ) {
    this.genesisState = genesisRoster(net.config);
  }

  /** The roster after the indexed block `hashHex` (or the genesis). */
  async after(db: Reader, hashHex: Hex): Promise<RosterState> {
    const path: Hex[] = [];
    let state: RosterState | undefined;
    for (let h = hashHex; ; ) {
      if (h === this.net.genesis.hashHex) state = this.genesisState;
      else state = this.states.get(h);
      if (state) break;
      const row = await db.block.findUnique({ where: { hash: h }, select: { prevHash: true } });
      if (!row) throw new Error(`block ${h} is not indexed: its roster is unknown`);
      path.push(h);
      h = row.prevHash;
    }
    for (const h of path.reverse()) {
      state = applyEntries(state, await this.configEntries(db, h));
      this.remember(h, state);
    }
    return state;
  }

  /** Records the roster after a newly indexed block whose parent's roster is `parent`. */
  record(hashHex: Hex, parent: RosterState, entries: readonly SealedEntry[]): RosterState {
    const state = applyEntries(parent, entries);
    this.remember(hashHex, state);
    return state;
  }

  /**
   * A block's config entries as the index stores them. applyEntries reads kind, changes,
   * author and timestamp only: a config payload is plain JSON (no bytes), so the row is enough.
   */
  private async configEntries(db: Reader, blockHash: Hex): Promise<SealedEntry[]> {
    const rows = await db.entry.findMany({
      where: { blockHash, kind: 'config' },
      orderBy: { position: 'asc' },
      select: { author: true, timestamp: true, payload: true },
    });
    return rows.map(
      (r) =>
        ({
          author: fromHex(r.author),
          timestamp: r.timestamp.getTime(),
          payload: JSON.parse(r.payload) as ConfigPayload,
        }) as unknown as SealedEntry,
    );
  }

  private remember(hashHex: Hex, state: RosterState): void {
    this.states.delete(hashHex);
    this.states.set(hashHex, state);
    if (this.states.size > this.capacity) this.states.delete(this.states.keys().next().value!);
  }
}
