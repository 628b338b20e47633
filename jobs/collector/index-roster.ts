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

/** Heights of block links fetched per query when walking back (see IndexRoster.after). */
const WINDOW = 1_000;

/**
 * Roster after each block, cached by hash. Blocks without membership changes share their
 * parent's object (applyEntries returns it), so a slot costs a pointer; the oldest slots go
 * first beyond `capacity`, and a miss walks the index back to a cached block or the genesis.
 */
export class IndexRoster {
  private readonly states = new Map<Hex, RosterState>();
  private readonly genesisState: RosterState;

  private readonly net: IndexedNetwork;
  private readonly capacity;
  constructor(net: IndexedNetwork, capacity = 10_000) {
    this.net = net;
    this.capacity = capacity;
    this.genesisState = genesisRoster(net.config);
  }

  /** The roster after the indexed block `hashHex` (or the genesis). */
  async after(db: Reader, hashHex: Hex): Promise<RosterState> {
    const path: Hex[] = [];
    let state: RosterState | undefined;
    // Links (hash → parent) fetched a height window at a time: after a restart the walk back to
    // the genesis is one query per WINDOW heights, not one per block.
    const links = new Map<Hex, { prevHash: Hex; height: number }>();
    for (let h = hashHex; ; ) {
      if (h === this.net.genesis.hashHex) state = this.genesisState;
      else state = this.states.get(h);
      if (state) break;
      let link = links.get(h);
      if (!link) {
        const row = await db.block.findUnique({
          where: { hash: h },
          select: { prevHash: true, height: true },
        });
        if (!row) throw new Error(`block ${h} is not indexed: its roster is unknown`);
        link = row;
        if (path.length > 0) {
          const rows = await db.block.findMany({
            where: { height: { lte: row.height, gt: row.height - WINDOW } },
            select: { hash: true, prevHash: true, height: true },
          });
          for (const r of rows) links.set(r.hash, r);
        }
      }
      path.push(h);
      h = link.prevHash;
    }
    const entries = await this.configEntries(db, path);
    for (const h of path.reverse()) {
      state = applyEntries(state, entries.get(h) ?? []);
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
   * The config entries of these blocks as the index stores them, by block. applyEntries reads
   * kind, changes, author and timestamp only: a config payload is plain JSON (no bytes), so the
   * row is enough. Config entries are rare: one query per WINDOW blocks.
   */
  private async configEntries(db: Reader, blocks: readonly Hex[]): Promise<Map<Hex, SealedEntry[]>> {
    const out = new Map<Hex, SealedEntry[]>();
    for (let i = 0; i < blocks.length; i += WINDOW) {
      const rows = await db.entry.findMany({
        where: { blockHash: { in: blocks.slice(i, i + WINDOW) }, kind: 'config' },
        orderBy: [{ blockHash: 'asc' }, { position: 'asc' }],
        select: { blockHash: true, author: true, timestamp: true, payload: true },
      });
      for (const r of rows) {
        const list = out.get(r.blockHash) ?? [];
        list.push({
          author: fromHex(r.author),
          timestamp: r.timestamp.getTime(),
          payload: JSON.parse(r.payload) as ConfigPayload,
        } as unknown as SealedEntry);
        out.set(r.blockHash, list);
      }
    }
    return out;
  }

  private remember(hashHex: Hex, state: RosterState): void {
    this.states.delete(hashHex);
    this.states.set(hashHex, state);
    if (this.states.size > this.capacity) this.states.delete(this.states.keys().next().value!);
  }
}
