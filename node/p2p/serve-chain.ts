import { type Hex, toHex } from '../chain/bytes.ts';
import type { Chain } from '../chain/chain.ts';
import type { NodeStore } from '../store/node-store.ts';
import type { BlockRef, Status } from './messages.ts';
import type { PeerManager } from './peer-manager.ts';
import { ANCESTOR, BLOCKS_BY_HASH, BLOCKS_BY_RANGE, HASHES_AT, STATUS, type WireBlock } from './protocols.ts';
import type { ReqResp } from './reqresp.ts';

/** Blocks to serve, as stored bytes, in the order asked; stops at the first one missing. */
async function encodedBlocks(chain: Chain, store: NodeStore, hashes: readonly Hex[]): Promise<WireBlock[]> {
  const uncached = hashes.filter((h) => !chain.cachedEncoding(h));
  const stored = uncached.length ? await store.loadEncodedBlocks(uncached) : new Map<Hex, Uint8Array>();
  const out: WireBlock[] = [];
  for (const h of hashes) {
    const encoded = chain.cachedEncoding(h) ?? stored.get(h);
    if (!encoded) break;
    out.push({ encoded });
  }
  return out;
}

/**
 * The server side of Cairn's request/response protocols: what a node answers about its chain.
 * Blocks go out as the bytes the store holds (or the recent cache), without re-encoding.
 */
export async function serveChainProtocols(
  reqresp: ReqResp,
  chain: Chain,
  store: NodeStore,
  peers: Pick<PeerManager, 'receiveStatus'>,
): Promise<void> {
  await reqresp.register(STATUS, (theirs: Status, peer) => [peers.receiveStatus(peer, theirs)]);
  await reqresp.register(BLOCKS_BY_RANGE, (q) => {
    const hashes: Hex[] = [];
    for (let h = Math.max(1, q.startHeight); h < q.startHeight + q.count; h++) {
      const node = chain.tree.mainAt(h);
      if (!node) break;
      hashes.push(node.hashHex);
    }
    return encodedBlocks(chain, store, hashes);
  });
  await reqresp.register(BLOCKS_BY_HASH, (hashes) =>
    encodedBlocks(
      chain,
      store,
      hashes.map((h) => toHex(h)).filter((hex) => chain.tree.get(hex) && hex !== chain.genesis.hashHex),
    ),
  );
  // The first locator hash on our main chain is the fork point; genesis is always shared.
  await reqresp.register(ANCESTOR, (locator): BlockRef[] => {
    for (const h of locator) {
      const node = chain.tree.get(toHex(h));
      if (node?.onMain) return [{ height: node.height, hash: node.hash }];
    }
    return [{ height: 0, hash: chain.genesis.hash }];
  });
  await reqresp.register(HASHES_AT, (heights): BlockRef[] =>
    heights.flatMap((h) => {
      const node = chain.tree.mainAt(h);
      return node ? [{ height: h, hash: node.hash }] : [];
    }),
  );
}
