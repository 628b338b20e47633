import {
  CAPABILITIES,
  type Capability,
  MEMBERSHIP_MODES,
  type MembershipMode,
  ROLES,
  type Role,
} from '../membership/view.ts';
import { bigIntToBytes, fromHex, toHex } from './bytes.ts';
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
  /**
   * Public keys (hex) allowed to sign `config` entries. In roster mode these are the genesis
   * admins: the admin set then changes by admin-majority config entries (node/membership).
   */
  readonly admins: readonly string[];
  /** `roster`: only members take part, permissions are consensus rules; `open`: anyone (no roster). */
  readonly membership: MembershipMode;
  /**
   * The genesis roster (roster mode): members trusted because the config, and so the chain id,
   * names them. Admins need no record here; they hold every capability.
   */
  readonly members: readonly GenesisMember[];
}

/** A member recorded by the network config itself. */
export interface GenesisMember {
  readonly publicKey: string;
  readonly name: string;
  readonly role: Role;
  readonly capabilities: readonly Capability[];
  /** Milliseconds since the epoch; NEVER_EXPIRES (the default) for no expiry. */
  readonly expiresAtMs?: number;
}

/** The expiry of a genesis member without one: the largest u64 the codecs write. */
export const NEVER_EXPIRES = Number.MAX_SAFE_INTEGER;
/** Bounds of a member name (UTF-8 bytes), shared with certificates. */
export const MEMBER_NAME_MAX_BYTES = 64;
/** Genesis members at most: the config is read by every node before anything else. */
export const MAX_GENESIS_MEMBERS = 1024;

/** Capabilities as a bit mask in CAPABILITIES order (the canonical encoding of a set). */
export function capabilityMask(caps: Iterable<Capability>): number {
  let m = 0;
  for (const c of caps) {
    const i = CAPABILITIES.indexOf(c);
    if (i < 0) throw new RangeError(`unknown capability ${c}`);
    m |= 1 << i;
  }
  return m;
}

export function capabilitiesOfMask(mask: number): Capability[] {
  return CAPABILITIES.filter((_, i) => mask & (1 << i));
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
  // Tests and benchmarks mine with throwaway keys on this network; every network Cairn creates
  // for people (createNetworkConfig, the demo, compose) is a roster network.
  membership: 'open',
  members: [],
};

export function encodeNetworkConfig(c: NetworkConfig): Uint8Array {
  const w = new Writer(256);
  // Version 2 added the membership mode and the genesis roster.
  w.u8(2).string(c.name).u64(c.genesisTimestamp).string(c.genesisMessage);
  w.u64(c.blockTimeMs).u32(c.retargetInterval).u32(c.maxRetargetFactor);
  for (const t of [c.initialTarget, c.minTarget, c.maxTarget]) w.fixed(bigIntToBytes(t, 32), 32);
  w.u32(c.maxBlockBytes).u32(c.maxEntriesPerBlock).u64(c.maxFutureDriftMs).u32(c.medianTimeSpan);
  const admins = [...c.admins].map((a) => a.toLowerCase()).sort();
  w.varint(admins.length);
  for (const a of admins) w.string(a);
  w.u8(MEMBERSHIP_MODES.indexOf(c.membership));
  const members = [...c.members].sort((a, b) => cmp(a.publicKey.toLowerCase(), b.publicKey.toLowerCase()));
  w.varint(members.length);
  for (const m of members) {
    w.fixed(fromHex(m.publicKey), 32).string(m.name).u8(ROLES.indexOf(m.role));
    w.u8(capabilityMask(m.capabilities)).u64(m.expiresAtMs ?? NEVER_EXPIRES);
  }
  return w.finish();
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

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
  if (!MEMBERSHIP_MODES.includes(c.membership))
    problems.push(`membership must be ${MEMBERSHIP_MODES.join(' or ')}`);
  if (c.membership === 'roster' && c.admins.length === 0)
    problems.push('a roster network needs at least one admin (whoever creates it)');
  if (!Array.isArray(c.members) || c.members.length > MAX_GENESIS_MEMBERS)
    problems.push(`members must be a list of at most ${MAX_GENESIS_MEMBERS}`);
  else {
    const seen = new Set<string>();
    for (const m of c.members) {
      const key = String(m.publicKey).toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(key)) problems.push(`member key ${m.publicKey} is not 32 bytes of hex`);
      if (seen.has(key)) problems.push(`member ${key} listed twice`);
      seen.add(key);
      const nameBytes = typeof m.name === 'string' ? Buffer.byteLength(m.name) : 0;
      if (nameBytes < 1 || nameBytes > MEMBER_NAME_MAX_BYTES)
        problems.push(`member ${key}: name must be 1–${MEMBER_NAME_MAX_BYTES} UTF-8 bytes`);
      if (!ROLES.includes(m.role)) problems.push(`member ${key}: unknown role ${m.role}`);
      if (!Array.isArray(m.capabilities) || m.capabilities.some((x: Capability) => !CAPABILITIES.includes(x)))
        problems.push(`member ${key}: capabilities must be among ${CAPABILITIES.join(', ')}`);
      const exp = m.expiresAtMs ?? NEVER_EXPIRES;
      if (!Number.isSafeInteger(exp) || exp <= c.genesisTimestamp)
        problems.push(`member ${key}: expiresAtMs must be an integer after the genesis timestamp`);
    }
  }
  if (problems.length) throw new Error(`invalid network config: ${problems.join('; ')}`);
}

/** The chain id commits to every consensus parameter and the genesis contents. */
export function chainIdOf(c: NetworkConfig): Uint8Array {
  return sha256(new TextEncoder().encode('cairn/chain-id/v1'), encodeNetworkConfig(c));
}

export const chainIdHex = (c: NetworkConfig) => toHex(chainIdOf(c));
