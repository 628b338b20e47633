import { bigIntToBytes, toHex } from './bytes.ts';
import { Writer } from './codec/writer.ts';
import { sha256 } from './hash.ts';
import { targetForWork } from './pow.ts';

/**
 * Consensus parameters. Together with the genesis block they define the chain id, so two
 * networks with different rules can never mistake each other's blocks.
 */
export interface NetworkConfig {
  readonly name: string;
  /** Genesis block timestamp (ms). */
  readonly genesisTimestamp: number;
  readonly genesisMessage: string;
  readonly blockTimeMs: number;
  /** Difficulty is retargeted at every height that is a multiple of this. */
  readonly retargetInterval: number;
  /** Largest change of the target in one retarget, as a factor (4 means ×4 or ÷4). */
  readonly maxRetargetFactor: number;
  readonly initialTarget: bigint;
  /** Hardest allowed target. */
  readonly minTarget: bigint;
  /** Easiest allowed target. */
  readonly maxTarget: bigint;
  readonly maxBlockBytes: number;
  readonly maxEntriesPerBlock: number;
  /** How far a block or entry timestamp may lie ahead of the local clock. */
  readonly maxFutureDriftMs: number;
  /** Number of previous blocks whose median timestamp a new block must exceed. */
  readonly medianTimeSpan: number;
  /** Public keys (hex) allowed to sign `config` entries. */
  readonly admins: readonly string[];
}

export const DEFAULT_NETWORK: NetworkConfig = {
  name: 'cairn-local',
  genesisTimestamp: Date.UTC(2026, 0, 1),
  genesisMessage: 'Cairn: one stone on another',
  blockTimeMs: 10_000,
  retargetInterval: 10,
  maxRetargetFactor: 4,
  // About 2^16 hashes per block to start: a couple of seconds of one worker thread.
  initialTarget: targetForWork(1n << 16n),
  minTarget: 1n,
  maxTarget: targetForWork(1n << 4n),
  maxBlockBytes: 1024 * 1024,
  maxEntriesPerBlock: 1000,
  maxFutureDriftMs: 30_000,
  medianTimeSpan: 11,
  admins: [],
};

export function encodeNetworkConfig(c: NetworkConfig): Uint8Array {
  const w = new Writer(256);
  w.u8(1).string(c.name).u64(c.genesisTimestamp).string(c.genesisMessage);
  w.u64(c.blockTimeMs).u32(c.retargetInterval).u32(c.maxRetargetFactor);
  for (const t of [c.initialTarget, c.minTarget, c.maxTarget]) w.fixed(bigIntToBytes(t, 32), 32);
  w.u32(c.maxBlockBytes).u32(c.maxEntriesPerBlock).u64(c.maxFutureDriftMs).u32(c.medianTimeSpan);
  const admins = [...c.admins].map((a) => a.toLowerCase()).sort();
  w.varint(admins.length);
  for (const a of admins) w.string(a);
  return w.finish();
}

export function assertValidNetworkConfig(c: NetworkConfig): void {
  const problems: string[] = [];
  if (!(c.blockTimeMs > 0)) problems.push('blockTimeMs must be positive');
  if (!(c.retargetInterval >= 2)) problems.push('retargetInterval must be at least 2');
  if (!(c.maxRetargetFactor >= 1)) problems.push('maxRetargetFactor must be at least 1');
  if (!(c.minTarget >= 1n && c.minTarget <= c.initialTarget && c.initialTarget <= c.maxTarget)) {
    problems.push('targets must satisfy 1 <= minTarget <= initialTarget <= maxTarget');
  }
  if (!(c.medianTimeSpan >= 1)) problems.push('medianTimeSpan must be at least 1');
  if (!(c.maxEntriesPerBlock >= 1)) problems.push('maxEntriesPerBlock must be at least 1');
  for (const a of c.admins)
    if (!/^[0-9a-f]{64}$/i.test(a)) problems.push(`admin key ${a} is not 32 bytes of hex`);
  if (problems.length) throw new Error(`invalid network config: ${problems.join('; ')}`);
}

/** The chain id commits to every consensus parameter and the genesis contents. */
export function chainIdOf(c: NetworkConfig): Uint8Array {
  return sha256(new TextEncoder().encode('cairn/chain-id/v1'), encodeNetworkConfig(c));
}

export const chainIdHex = (c: NetworkConfig) => toHex(chainIdOf(c));
