/**
 * The roster at every known block: the chain's bookkeeping of roster-state.ts. Each block node
 * maps to the roster after it; blocks without membership changes share their parent's object,
 * so a long chain costs one map slot per block and one roster per change. Side branches have
 * their own rosters, so a block is judged against the roster at its own parent, whichever
 * branch it is on, and a reorg needs no recomputation.
 */
import type { BlockNode } from '../chain/block-tree.ts';
import { toHex } from '../chain/bytes.ts';
import { MainFloor } from '../chain/main-floor.ts';
import type { NetworkConfig } from '../chain/network-config.ts';
import type { SealedBlock, SealedEntry } from '../chain/types.ts';
import {
  applyEntries,
  entryProblem,
  genesisRoster,
  type MembershipProblem,
  minerProblem,
  type RosterState,
} from './roster-state.ts';

export class RosterLedger {
  private readonly states = new WeakMap<BlockNode, RosterState>();
  readonly enabled: boolean;
  /** The roster along the main chain below the in-memory window. */
  readonly floor: MainFloor<RosterState>;

  private readonly chainId: Uint8Array;
  constructor(config: NetworkConfig, chainId: Uint8Array, genesis: BlockNode) {
    this.chainId = chainId;
    this.enabled = config.membership === 'roster';
    const initial = genesisRoster(config);
    this.states.set(genesis, initial);
    this.floor = new MainFloor(initial);
  }

  /** The roster after a block with these entries on one with `before` (floors are folded so). */
  static after(before: RosterState, entries: readonly SealedEntry[]): RosterState {
    return applyEntries(before, entries);
  }

  /** The roster recorded for `node`, if it is recorded (not derived). */
  recorded(node: BlockNode): RosterState | undefined {
    return this.states.get(node);
  }

  /** The roster after `node` (every known node is recorded; the walk covers a restore gap). */
  at(node: BlockNode): RosterState {
    const path: BlockNode[] = [];
    let n: BlockNode | undefined = node;
    let state: RosterState | undefined;
    while (n) {
      // Below the window (a fork point read from the store), the main chain's floor knows it.
      state = this.states.get(n);
      if (state) break;
      // Kept on the node itself too: a reorg below the window truncates the floor.
      state = n.onMain ? this.floor.at(n.height) : undefined;
      if (state) {
        path.push(n);
        break;
      }
      path.push(n);
      n = n.parent;
    }
    if (!state) throw new Error(`block ${node.hashHex} does not descend from the genesis roster`);
    for (const p of path.reverse()) this.states.set(p, state);
    return state;
  }

  /** Records the roster after a newly added block with these entries. */
  record(node: BlockNode, entries: readonly SealedEntry[]): void {
    if (!node.parent) return;
    this.states.set(node, applyEntries(this.at(node.parent), entries));
  }

  /** Why `block` may not extend `parent` under the membership rules (undefined in open mode). */
  blockProblem(block: SealedBlock, parent: BlockNode): MembershipProblem | undefined {
    if (!this.enabled) return undefined;
    const state = this.at(parent);
    const at = block.header.timestamp;
    const miner = minerProblem(state, toHex(block.header.miner), at);
    if (miner) return miner;
    for (const e of block.entries) {
      const p = entryProblem(state, e, this.chainId, at);
      if (p) return p;
    }
    return undefined;
  }

  /** Why `entry` may not go into a block on `parent` stamped about `atMs` (undefined in open mode). */
  entryProblem(entry: SealedEntry, parent: BlockNode, atMs: number): MembershipProblem | undefined {
    return this.enabled ? entryProblem(this.at(parent), entry, this.chainId, atMs) : undefined;
  }

  /** Why `minerKey` may not mine on `parent` at `atMs` (undefined in open mode). */
  minerProblem(minerKey: Uint8Array, parent: BlockNode, atMs: number): MembershipProblem | undefined {
    return this.enabled ? minerProblem(this.at(parent), toHex(minerKey), atMs) : undefined;
  }
}
