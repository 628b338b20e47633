import { toHex } from '../node/chain/bytes.ts';
import type { CairnNode } from '../node/node.ts';
import type { NodeStatsReport } from './payloads.ts';

const hashRateMemo = new WeakMap<CairnNode, { at: number; hashes: number }>();

/** The miner's hashes per second since the previous call for this node (0 if it does not mine). */
function hashRate(node: CairnNode, now: number): number {
  const prev = hashRateMemo.get(node);
  const hashes = node.minerHashes;
  hashRateMemo.set(node, { at: now, hashes });
  if (!prev || now <= prev.at) return 0;
  return Math.max(0, ((hashes - prev.hashes) * 1000) / (now - prev.at));
}

const configJson = (node: CairnNode) =>
  JSON.stringify(node.opts.network, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));

export function statsReport(node: CairnNode, boot: number, seq: number): NodeStatsReport {
  const tip = node.chain.tip;
  const now = Date.now();
  return {
    nodeId: node.identity.peerId.toString(),
    boot,
    seq,
    at: new Date(now).toISOString(),
    role: node.opts.role,
    capabilities: [...node.opts.capabilities],
    addrs: node.host.getMultiaddrs().map(String).slice(0, 64),
    height: tip.height,
    headHash: tip.hashHex,
    totalWork: tip.chainWork.toString(),
    target: tip.header.target.toString(),
    peers: node.host.getPeers().map(String).slice(0, 1000),
    mempoolSize: node.chain.mempool.size,
    hashRate: hashRate(node, now),
    mining: node.opts.mine,
    chainId: toHex(node.chain.chainId),
    genesisHash: node.chain.genesis.hashHex,
    networkConfig: configJson(node),
  };
}
