import { workForTarget } from '../../node/chain/pow.ts';
import type { Jsonified } from '../events.ts';
import type { NetworkStats } from '../index-db/generated/sqlite/client.ts';

/** The latest state of one node, as its last stats report said. */
export interface NodeState {
  readonly height: number;
  readonly peerCount: number;
  readonly mempoolSize: number;
}

export interface RecentBlock {
  readonly timestamp: Date;
  readonly target: string;
}

/** The figures of a NetworkStats row (what the collector computes; id and time are added on insert). */
export type NetworkFigures = Omit<Jsonified<NetworkStats>, 'id' | 'at'>;

const avg = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/**
 * Network-wide figures from the live nodes' latest reports and the canonical chain's recent
 * blocks (newest first). Chain length is height + 1 (genesis counts). Difficulty is the expected
 * number of hashes per block at the head's target; the hash rate is the work of the recent
 * blocks over the time they took, which is what the miners together must have computed.
 */
export function networkFigures(nodes: readonly NodeState[], recent: readonly RecentBlock[]): NetworkFigures {
  const lengths = nodes.map((n) => n.height + 1);
  const mempools = nodes.map((n) => n.mempoolSize);
  const head = recent[0];
  const target = head?.target ?? '0';
  let hashRate = 0;
  if (recent.length >= 2) {
    const newest = recent[0]!.timestamp.getTime();
    const oldest = recent[recent.length - 1]!.timestamp.getTime();
    // The oldest block's own work was done before its timestamp: count the blocks after it.
    const work = recent.slice(0, -1).reduce((sum, b) => sum + workForTarget(BigInt(b.target)), 0n);
    if (newest > oldest) hashRate = Number(work) / ((newest - oldest) / 1000);
  }
  return {
    totalNodes: nodes.length,
    chainLengthMin: lengths.length ? Math.min(...lengths) : 0,
    chainLengthMax: lengths.length ? Math.max(...lengths) : 0,
    chainLengthAvg: avg(lengths),
    avgPeers: avg(nodes.map((n) => n.peerCount)),
    target,
    difficulty: head ? Number(workForTarget(BigInt(target))) : 0,
    hashRate,
    mempoolTotal: mempools.reduce((a, b) => a + b, 0),
    mempoolMin: mempools.length ? Math.min(...mempools) : 0,
    mempoolMax: mempools.length ? Math.max(...mempools) : 0,
  };
}
