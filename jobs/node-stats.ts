import type { NodeStatus } from '../node/control.ts';
import type { CairnNode } from '../node/node.ts';
import { type NodeStatsReport, REPORT_COUNT_MAX, REPORT_LATENCY_MAX_MS } from './payloads.ts';

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

/**
 * The stats report: the node's status (NodeStatus, built in one place: CairnNode.status) in the
 * report's bounded shape, plus what only the index wants (hash rate, genesis, the config).
 */
export function statsReport(node: CairnNode, status: NodeStatus, boot: number, seq: number): NodeStatsReport {
  const now = Date.now();
  return {
    nodeId: status.peerId,
    boot,
    seq,
    at: new Date(now).toISOString(),
    role: status.role,
    capabilities: [...status.capabilities],
    addrs: status.addrs.slice(0, 64),
    height: status.height,
    headHash: status.headHash,
    totalWork: status.totalWork,
    // The report carries the target in decimal, the status in hex.
    target: BigInt(`0x${status.difficultyTarget}`).toString(),
    peers: status.peers.map((p) => p.peerId).slice(0, 1000),
    connectionKinds: { ...status.connectionKinds },
    mempoolSize: status.mempoolSize,
    hashRate: hashRate(node, now),
    mining: status.mining,
    chainId: status.chainId,
    genesisHash: node.chain.genesis.hashHex,
    networkConfig: configJson(node),
    ...(status.fl
      ? { fl: { mode: status.fl.mode, ...(status.fl.privacy ? { privacy: status.fl.privacy } : {}) } }
      : {}),
    ...(status.messaging ? { messaging: messagingReport(status.messaging) } : {}),
  };
}

/** The status' messaging block in the report's shape: figures only, each bounded as payloads.ts checks. */
function messagingReport(m: NonNullable<NodeStatus['messaging']>): NonNullable<NodeStatsReport['messaging']> {
  const count = (n: number) => Math.min(REPORT_COUNT_MAX, n);
  return {
    sent: count(m.sent),
    delivered: count(m.delivered),
    pending: count(m.pending),
    ...(m.latency
      ? {
          latency: {
            p50Ms: Math.min(REPORT_LATENCY_MAX_MS, m.latency.p50Ms),
            p99Ms: Math.min(REPORT_LATENCY_MAX_MS, m.latency.p99Ms),
            samples: m.latency.samples,
          },
        }
      : {}),
    ...(m.mailbox ? { mailbox: { ...m.mailbox } } : {}),
  };
}
