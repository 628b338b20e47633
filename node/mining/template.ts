import { merkleRootOf } from '../chain/authoring.ts';
import type { Chain } from '../chain/chain.ts';
import { expectedTarget } from '../chain/difficulty.ts';
import { type BlockHeader, FORMAT_VERSION, type SealedEntry } from '../chain/types.ts';
import { medianTimePast } from '../chain/validation.ts';
import { templateEntryBudget } from '../mempool/mempool.ts';

export interface BlockTemplate {
  /** Header with nonce 0; the miner searches the nonce. */
  readonly header: BlockHeader;
  readonly entries: readonly SealedEntry[];
  /** Hash of the parent the template builds on; a new tip makes the template stale. */
  readonly parentHashHex: string;
}

/** The next block on the current tip: retargeted difficulty, a valid timestamp, mempool entries. */
export function buildTemplate(chain: Chain, miner: Uint8Array, now: number): BlockTemplate {
  const parent = chain.tip;
  const ctx = chain.tree.parentContext(parent);
  const height = parent.height + 1;
  const mtp = medianTimePast(ctx, chain.config.medianTimeSpan);
  // A checkpoint entry admitted before a reorg may no longer name this chain's block.
  // An author may have lost a permission (revoked, expired) since its entry was admitted.
  // Of two model entries for the same round (two coordinators), only the first can be mined.
  const at = Math.max(now, mtp + 1);
  const entries = chain.models.extending(
    chain.mempool
      .select(chain.config.maxEntriesPerBlock, templateEntryBudget(chain.config))
      .filter((e) => e.payload.kind !== 'config' || !chain.checkpointProblem([e], parent))
      .filter((e) => !chain.permissionProblem(e, at, parent)),
    parent,
  );
  return {
    header: {
      version: FORMAT_VERSION,
      chainId: chain.chainId,
      height,
      prevHash: parent.hash,
      merkleRoot: merkleRootOf(entries),
      timestamp: at,
      target: expectedTarget(height, parent.header.target, (h) => ctx.timestampAt(h), chain.config),
      miner,
      nonce: 0,
    },
    entries,
    parentHashHex: parent.hashHex,
  };
}
