import type { PeerId } from '@libp2p/interface';
import { encodeHeader } from '../chain/block-codec.ts';
import { type Hex, toHex } from '../chain/bytes.ts';
import type { Chain } from '../chain/chain.ts';
import type { NodeStore } from '../store/node-store.ts';
import type { BlockRef, Status } from './messages.ts';
import { NodeServeBudget } from './node-serve-budget.ts';
import type { PeerManager } from './peer-manager.ts';
import {
  ANCESTOR,
  BLOCKS_BY_HASH,
  BLOCKS_BY_RANGE,
  HASHES_AT,
  HEADERS_BY_RANGE,
  MAX_BLOCK_RESPONSE_BYTES,
  STATUS,
  type WireBlock,
} from './protocols.ts';
import { NodeBusyError, OverBudgetError, type ReqResp } from './reqresp.ts';
import { ServeBudget } from './serve-budget.ts';

/**
 * Blocks read from the store per query while streaming an answer: what one request holds in
 * memory beyond the recent-block cache (8 × the 1 MiB block bound at worst, a few KB each
 * usually), whatever the count asked for.
 */
export const SERVE_READ_AHEAD = 8;

/** The slice of the store block serving reads (NodeStore.readEncodedBlocks). */
export type BlockSource = Pick<NodeStore, 'readEncodedBlocks'>;

/** Why an answer was cut by the node-wide budget: ended short (blocks sent), or refused (none). */
export type ServeBusyEnding = 'short' | 'refused';

export interface ServeChainOptions {
  /** Each peer's own budget (over it: refused and penalised). */
  readonly budget?: ServeBudget;
  /** What all peers share (over it: queued, fairly by address group; see node-serve-budget.ts). */
  readonly nodeBudget?: NodeServeBudget;
  /** The address group a peer's requests queue in (default: the peer id alone). */
  readonly groupOf?: (peer: PeerId) => string;
  /** An answer the node-wide budget cut (its wait ran out, the queue was full, or time did). */
  readonly onBusy?: (reason: 'wait' | 'queue-full' | 'answer-time', ending: ServeBusyEnding) => void;
  /** Called with each store read's size (tests count them). */
  readonly onRead?: (blocks: number) => void;
  /** Bytes of blocks one answer carries at most (default: the block protocols' maxResponseBytes). */
  readonly maxResponseBytes?: number;
}

/** Blocks to serve, as stored bytes, in the order asked; stops at the first one missing. */
function encodedBlocks(chain: Chain, store: BlockSource, hashes: readonly Hex[]): WireBlock[] {
  const uncached = hashes.filter((h) => !chain.cachedEncoding(h));
  const stored = uncached.length ? store.readEncodedBlocks(uncached) : new Map<Hex, Uint8Array>();
  const out: WireBlock[] = [];
  for (const h of hashes) {
    const encoded = chain.cachedEncoding(h) ?? stored.get(h);
    if (!encoded) break;
    out.push({ encoded });
  }
  return out;
}

export interface StreamOptions {
  readonly maxBytes?: number;
  readonly onRead?: (blocks: number) => void;
  /** After this long an answer that has sent blocks ends short (a chunk's turn can be queued). */
  readonly maxAnswerMs?: number;
  readonly onBusy?: ServeChainOptions['onBusy'];
}

/**
 * Streams blocks a few at a time: each read-ahead is fetched only after the previous one has
 * been written (and the requester took it), and each block's bytes are charged to the peer's
 * budget before it goes out. Ends early, as a short answer, when the main chain changes under
 * it (the next block's parent is not the last one sent), runs out, or the next block would
 * take the answer over `maxBytes` (that block is neither charged nor sent; the requester
 * continues from its height).
 */
export async function* streamBlocks(
  chain: Chain,
  store: BlockSource,
  hashesFrom: (readAhead: number) => Hex[],
  charge: (bytes: number) => void | Promise<void>,
  signal: AbortSignal,
  opts: StreamOptions = {},
): AsyncGenerator<WireBlock> {
  const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  const endBy = performance.now() + (opts.maxAnswerMs ?? Number.POSITIVE_INFINITY);
  let sent = 0;
  while (!signal.aborted) {
    const hashes = hashesFrom(SERVE_READ_AHEAD);
    if (!hashes.length) return;
    opts.onRead?.(hashes.length);
    const blocks = encodedBlocks(chain, store, hashes);
    // Let other work run between reads: the reads themselves are synchronous.
    await new Promise<void>((r) => setImmediate(r));
    for (const b of blocks) {
      if (sent + b.encoded.length > maxBytes) return;
      // Queued behind other peers for this long, the answer ends short before the requester's
      // deadline (it continues from the next height); with nothing sent yet, it waits on.
      if (sent > 0 && performance.now() > endBy) {
        opts.onBusy?.('answer-time', 'short');
        return;
      }
      try {
        const turn = charge(b.encoded.length);
        if (turn) await turn;
      } catch (err) {
        if (!(err instanceof NodeBusyError)) throw err;
        opts.onBusy?.(err.reason, sent > 0 ? 'short' : 'refused');
        if (sent > 0) return;
        throw err;
      }
      sent += b.encoded.length;
      yield b;
    }
    if (blocks.length < hashes.length) return;
  }
}

/**
 * The server side of Cairn's request/response protocols: what a node answers about its chain.
 * Blocks go out as the bytes the store holds (or the recent cache), without re-encoding, and
 * within a per-peer budget of blocks and bytes.
 */
export async function serveChainProtocols(
  reqresp: ReqResp,
  chain: Chain,
  store: BlockSource,
  peers: Pick<PeerManager, 'receiveStatus'>,
  opts: ServeChainOptions = {},
): Promise<void> {
  const budget = opts.budget ?? new ServeBudget();
  const nodeBudget = opts.nodeBudget ?? new NodeServeBudget();
  const groupOf = opts.groupOf ?? ((p: PeerId) => p.toString());
  const maxBytes = opts.maxResponseBytes ?? MAX_BLOCK_RESPONSE_BYTES;
  // Half the deadline: what is left covers the last chunk's wait and the requester's import.
  const streamFor = (timeoutMs: number): StreamOptions => ({
    maxBytes,
    maxAnswerMs: timeoutMs / 2,
    ...(opts.onRead ? { onRead: opts.onRead } : {}),
    ...(opts.onBusy ? { onBusy: opts.onBusy } : {}),
  });
  // Its own budget first (over it: penalised), then its turn in the node-wide one.
  const chargeFor = (peer: PeerId, signal: AbortSignal) => {
    const key = peer.toString();
    const group = groupOf(peer);
    return (bytes: number) => {
      if (!budget.takeBytes(key, bytes)) throw new OverBudgetError('byte budget exhausted');
      return nodeBudget.take(group, key, { blocks: 1, bytes }, signal);
    };
  };
  const takeBlocks = (peer: string, n: number) => {
    if (!budget.takeBlocks(peer, n)) throw new OverBudgetError(`block budget exhausted (${n} blocks asked)`);
  };
  await reqresp.register(STATUS, (theirs: Status, peer) => [peers.receiveStatus(peer, theirs)]);
  await reqresp.register({ ...BLOCKS_BY_RANGE, maxResponseBytes: maxBytes }, (q, peer, signal) => {
    const start = Math.max(1, q.startHeight);
    const end = Math.min(q.startHeight + q.count, chain.tip.height + 1);
    // Charged for what we hold, not what was asked past our tip.
    takeBlocks(peer.toString(), Math.max(1, end - start));
    let h = start;
    let last: Hex | undefined;
    const next = (n: number): Hex[] => {
      const out: Hex[] = [];
      for (; h < end && out.length < n; h++) {
        // Below the in-memory window the header is read from the store.
        const node = chain.tree.mainAt(h);
        // A reorg between reads: stop rather than serve a range that does not link up.
        if (!node || (last !== undefined && toHex(node.header.prevHash) !== last)) {
          h = end;
          break;
        }
        last = node.hashHex;
        out.push(node.hashHex);
      }
      return out;
    };
    return streamBlocks(
      chain,
      store,
      next,
      chargeFor(peer, signal),
      signal,
      streamFor(BLOCKS_BY_RANGE.timeoutMs),
    );
  });
  // Headers come from the in-memory tree in one synchronous pass (the main chain cannot change
  // under it), below its window from the store: 182 bytes each, at most 512 per answer,
  // stopping at our tip.
  await reqresp.register(HEADERS_BY_RANGE, (q): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (let h = Math.max(1, q.startHeight); h < q.startHeight + q.count; h++) {
      const node = chain.tree.mainAt(h);
      if (!node) break;
      out.push(encodeHeader(node.header));
    }
    return out;
  });
  await reqresp.register({ ...BLOCKS_BY_HASH, maxResponseBytes: maxBytes }, (hashes, peer, signal) => {
    const wanted = hashes
      .map((h) => toHex(h))
      .filter((hex) => chain.has(hex) && hex !== chain.genesis.hashHex);
    takeBlocks(peer.toString(), Math.max(1, wanted.length));
    let i = 0;
    const next = (n: number) => {
      const out = wanted.slice(i, i + n);
      i += out.length;
      return out;
    };
    return streamBlocks(
      chain,
      store,
      next,
      chargeFor(peer, signal),
      signal,
      streamFor(BLOCKS_BY_HASH.timeoutMs),
    );
  });
  // The first locator hash on our main chain is the fork point; genesis is always shared.
  await reqresp.register(ANCESTOR, (locator): BlockRef[] => {
    for (const h of locator) {
      const node = chain.isOnMain(toHex(h));
      if (node) return [{ height: node.height, hash: node.hash }];
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
