/**
 * Network configs for test clusters: a partial NetworkConfig written as JSON, bigint fields as
 * decimal strings (what the node's `--network-config` reads).
 */
import { writeFileSync } from 'node:fs';
import type { NetworkConfig } from '../../node/chain/network-config.ts';
import { targetForWork } from '../../node/chain/pow.ts';
import { networkConfigToJson } from '../../node/config-file.ts';

export type TestNetworkConfig = Partial<NetworkConfig>;

/** Hashes per second of one miner worker on the reference 2-core machine (SHA-256 via node:crypto). */
export const REFERENCE_HASH_RATE = 1_000_000n;

/**
 * A fast chain for tests: about one block per second with one miner on this machine, retargeting
 * every 10 blocks (×4 at most) between ~10k and ~4G expected hashes per block. The genesis
 * timestamp is "now" (whole seconds) unless given, so the first retarget window does not span
 * months and immediately ease the target by the full factor.
 */
export function testNetworkConfig(overrides: TestNetworkConfig = {}): TestNetworkConfig {
  const blockTimeMs = overrides.blockTimeMs ?? 1000;
  const expectedHashes = (REFERENCE_HASH_RATE * BigInt(blockTimeMs)) / 1000n;
  return {
    name: 'cluster-test',
    genesisTimestamp: Math.floor(Date.now() / 1000) * 1000,
    genesisMessage: 'Cairn cluster test',
    blockTimeMs,
    retargetInterval: 10,
    maxRetargetFactor: 4,
    initialTarget: targetForWork(expectedHashes > 0n ? expectedHashes : 1n),
    minTarget: targetForWork(1n << 32n),
    maxTarget: targetForWork(10_000n),
    ...overrides,
  };
}

/** JSON text of a (partial) network config with bigints as decimal strings. */
export const networkConfigJson = (config: TestNetworkConfig): string => networkConfigToJson(config);

/** Writes `testNetworkConfig(overrides)` (or an exact config with `exact`) to `file`; returns the config. */
export function writeNetworkConfig(
  file: string,
  overrides: TestNetworkConfig = {},
  { exact = false }: { exact?: boolean } = {},
): TestNetworkConfig {
  const config = exact ? overrides : testNetworkConfig(overrides);
  writeFileSync(file, networkConfigJson(config));
  return config;
}

/**
 * Overrides for a network whose chain `seedChain` (node/testing/seed-store.ts) can write in
 * seconds: the easiest target (about 16 hashes a block) and a genesis one day in the past, so
 * a long seeded chain ends before "now". A miner on it ramps the difficulty up by retargeting.
 */
export function seedableNetwork(overrides: TestNetworkConfig = {}): TestNetworkConfig {
  const easy = targetForWork(16n);
  return {
    blockTimeMs: 1000,
    initialTarget: easy,
    maxTarget: easy,
    genesisTimestamp: Date.now() - 86_400_000,
    ...overrides,
  };
}
