import { sealBlock } from './block-codec.ts';
import { ZERO_HASH } from './bytes.ts';
import { EMPTY_MERKLE_ROOT } from './merkle.ts';
import { chainIdOf, type NetworkConfig } from './network-config.ts';
import { FORMAT_VERSION, type SealedBlock } from './types.ts';

/**
 * The genesis block is fully determined by the network config: no proof of work, no miner,
 * no signature. Every node derives the same bytes, so agreeing on the chain id is agreeing on it.
 */
export function genesisBlock(config: NetworkConfig): SealedBlock {
  return sealBlock({
    header: {
      version: FORMAT_VERSION,
      chainId: chainIdOf(config),
      height: 0,
      prevHash: ZERO_HASH,
      merkleRoot: EMPTY_MERKLE_ROOT,
      timestamp: config.genesisTimestamp,
      target: config.initialTarget,
      miner: new Uint8Array(32),
      nonce: 0,
    },
    signature: new Uint8Array(64),
    entries: [],
  });
}
