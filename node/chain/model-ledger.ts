/**
 * The model head at every known block: the newest version of the network's model as the chain
 * defines it, i.e. the last `model` entry along that block's chain (none before the first).
 *
 * A `model` entry is valid only if it extends the head at its place in the chain: round =
 * head's round + 1 (1 for the first) and parent = head's model hash (null for the first).
 * Entries of one block are judged in block order, each against the head the previous ones left,
 * so one block may carry a version and its successor but never two versions of the same round.
 * Without this rule any author could pin every node's head (round 2^32−1 leaves no next round
 * to encode) or point everyone at a model trained from nothing. Who may author one (`coordinate`)
 * is a membership rule (membership/roster-state.ts), checked before this one.
 *
 * Bookkept like the roster (membership/ledger.ts): each block node maps to the head after it,
 * blocks without model entries share their parent's, side branches have their own, and a reorg
 * needs no recomputation. The store keeps the model entries of stored blocks apart
 * (store/node-store.ts), so a restart rebuilds every head without decoding a block.
 */
import type { BlockNode } from './block-tree.ts';
import { bytesEqual, toHex } from './bytes.ts';
import { MainFloor } from './main-floor.ts';
import type { ModelPayload, SealedBlock, SealedEntry } from './types.ts';
import type { ModelHeadErrorCode } from './validation.ts';

const MODEL_HEAD_CODES: ReadonlySet<string> = new Set<ModelHeadErrorCode>([
  'model-round-not-next',
  'model-parent-not-head',
]);

/**
 * Whether an entry rejection is the model-head rule: judged against our tip's head, which an
 * honest relayer at another tip (a block with the previous version not yet seen) may not share.
 * Gossip and reconciliation ignore such entries without blaming the relayer.
 */
export const isModelHeadCode = (code: string): code is ModelHeadErrorCode => MODEL_HEAD_CODES.has(code);

export interface ModelHeadProblem {
  readonly code: ModelHeadErrorCode;
  readonly message: string;
}

/** Why `p` does not extend `head` (undefined: no version yet), or undefined if it does. */
export function modelHeadProblem(
  head: ModelPayload | undefined,
  p: ModelPayload,
): ModelHeadProblem | undefined {
  const next = (head?.round ?? 0) + 1;
  if (p.round !== next)
    return {
      code: 'model-round-not-next',
      message: `model entry for round ${p.round}; the head is at round ${head?.round ?? 0}`,
    };
  const extends_ = head
    ? p.parentHash !== null && bytesEqual(p.parentHash, head.modelHash)
    : p.parentHash === null;
  if (!extends_)
    return {
      code: 'model-parent-not-head',
      message: `model entry's parent ${p.parentHash ? `${toHex(p.parentHash).slice(0, 16)}…` : 'none'} is not the head ${head ? `${toHex(head.modelHash).slice(0, 16)}…` : '(none yet)'}`,
    };
  return undefined;
}

const modelPayloads = (entries: readonly SealedEntry[]): ModelPayload[] =>
  entries.flatMap((e) => (e.payload.kind === 'model' ? [e.payload] : []));

/** null: no version on this chain yet (a WeakMap value must tell "none" from "not recorded"). */
export type Head = ModelPayload | null;

export class ModelLedger {
  private readonly heads = new WeakMap<BlockNode, Head>();
  /**
   * Each version's predecessor on its chain (null: the first), i.e. the version its parent hash
   * names: what a coordinator walks back when the head's bytes are unavailable (lineage).
   */
  private readonly previous = new WeakMap<ModelPayload, Head>();
  /** The head along the main chain below the in-memory window. */
  readonly floor = new MainFloor<Head>(null);

  constructor(genesis: BlockNode) {
    this.heads.set(genesis, null);
  }

  /** The head after a block with these entries on one whose head is `before`; remembers each version's predecessor. */
  fold(before: Head, entries: readonly SealedEntry[]): Head {
    let head = before;
    for (const p of modelPayloads(entries)) {
      this.previous.set(p, head);
      head = p;
    }
    return head;
  }

  /**
   * The head after `node` and the versions before it on its chain, newest first, at most
   * `limit` (the walk stops early where a version's predecessor was never recorded here).
   */
  lineage(node: BlockNode, limit: number): ModelPayload[] {
    const out: ModelPayload[] = [];
    for (let p = this.at(node); p && out.length < limit; p = this.previous.get(p) ?? undefined) out.push(p);
    return out;
  }

  /** The head recorded for `node` (null: none yet), if it is recorded. */
  recorded(node: BlockNode): Head | undefined {
    return this.heads.get(node);
  }

  /** The head after `node` (every known node is recorded; the walk covers a restore gap). */
  at(node: BlockNode): ModelPayload | undefined {
    const path: BlockNode[] = [];
    let n: BlockNode | undefined = node;
    let head: Head | undefined;
    while (n) {
      head = this.heads.get(n);
      if (head !== undefined) break;
      // Kept on the node itself too: a reorg below the window truncates the floor.
      head = n.onMain ? this.floor.at(n.height) : undefined;
      if (head !== undefined) {
        path.push(n);
        break;
      }
      path.push(n);
      n = n.parent;
    }
    if (head === undefined) throw new Error(`block ${node.hashHex} does not descend from genesis`);
    for (const p of path) this.heads.set(p, head);
    return head ?? undefined;
  }

  /** Records the head after a newly added block with these entries (already judged valid). */
  record(node: BlockNode, entries: readonly SealedEntry[]): void {
    if (!node.parent) return;
    this.heads.set(node, this.fold(this.at(node.parent) ?? null, entries));
  }

  /** Why `block`'s model entries do not extend the head at `parent`, one after another. */
  blockProblem(block: Pick<SealedBlock, 'entries'>, parent: BlockNode): ModelHeadProblem | undefined {
    let head = this.at(parent);
    for (const p of modelPayloads(block.entries)) {
      const problem = modelHeadProblem(head, p);
      if (problem) return problem;
      head = p;
    }
    return undefined;
  }

  /** Why `entry` could not go into the next block on `parent` (undefined for other kinds). */
  entryProblem(entry: SealedEntry, parent: BlockNode): ModelHeadProblem | undefined {
    return entry.payload.kind === 'model' ? modelHeadProblem(this.at(parent), entry.payload) : undefined;
  }

  /**
   * `entries` (a block template's, in order) without the model entries that would not extend the
   * head at `parent` where they stand: of two versions of the same round, the first is kept.
   */
  extending(entries: readonly SealedEntry[], parent: BlockNode): SealedEntry[] {
    let head = this.at(parent);
    return entries.filter((e) => {
      if (e.payload.kind !== 'model') return true;
      if (modelHeadProblem(head, e.payload)) return false;
      head = e.payload;
      return true;
    });
  }
}
