/**
 * Getting model versions onto this node: the global model a round starts from, and every
 * version a `model` entry on the main chain commits to, fetched by hash from peers when missing
 * (the entry's author — the coordinator — first, then the others).
 */
import type { PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { BlockNode } from '../../chain/block-tree.ts';
import { type Hex, toHex } from '../../chain/bytes.ts';
import type { Chain } from '../../chain/chain.ts';
import type { ModelPayload } from '../../chain/types.ts';
import type { Logger } from '../../log.ts';
import type { ReqResp } from '../../p2p/reqresp.ts';
import { type Params, zeroParams } from '../logistic.ts';
import type { FlMetrics } from './metrics.ts';
import { decodeModel, modelHash } from './model-codec.ts';
import { ModelHashMismatch, type ModelStore } from './model-store.ts';
import type { MODEL_BY_HASH } from './protocols.ts';

export interface ModelSyncDeps {
  readonly store: ModelStore;
  readonly reqresp: Pick<ReqResp, 'request'>;
  readonly spec: typeof MODEL_BY_HASH;
  /** Connected peers to ask, best first. */
  readonly peers: () => readonly PeerId[];
  readonly metrics: FlMetrics;
  readonly log: Logger;
}

export class ModelSync {
  private readonly inflight = new Map<Hex, Promise<{ bytes: Uint8Array; from: string }>>();

  private readonly d: ModelSyncDeps;
  constructor(d: ModelSyncDeps) {
    this.d = d;
  }

  /**
   * The model with this hash (null = the all-zero initial model), fetched if not stored. `named`:
   * a main-chain entry names it, so it is kept on disk; otherwise (a round's announcement, before
   * or without its entry) it is held as a candidate of `prefer[0]`'s (model-store.ts), below every
   * trained round's version.
   */
  async resolve(
    hash: Uint8Array | null,
    paramCount: number,
    prefer: readonly string[] = [],
    named = true,
  ): Promise<Params> {
    if (!hash) return zeroParams(paramCount - 1);
    const hex = toHex(hash);
    const sized = (params: Params) => {
      if (params.length !== paramCount) throw new Error(`model ${hex} has ${params.length} parameters`);
      return params;
    };
    const local =
      (await this.d.store.get(hex)) ?? (named ? await this.d.store.keep(hex) : this.d.store.heldModel(hex));
    if (local) return sized(local);
    let p = this.inflight.get(hex);
    if (!p) {
      p = this.fetch(hash, prefer).finally(() => this.inflight.delete(hex));
      this.inflight.set(hex, p);
    }
    const { bytes, from } = await p;
    // Each caller keeps what it asked for: a named fetch may join an announcement's.
    if (named) return sized((await this.d.store.putChecked(bytes, hex)).params);
    const held = this.d.store.hold(bytes, paramCount, prefer[0] ?? from, {
      expectHash: hex,
      standing: 'announced',
    });
    // Not held when trained rounds' versions fill the store: the round still trains from it.
    return sized(this.d.store.heldModel(held) ?? decodeModel(bytes, paramCount));
  }

  /** Bytes that hash to `hash`, from the first peer that serves them. */
  private async fetch(
    hash: Uint8Array,
    prefer: readonly string[],
  ): Promise<{ bytes: Uint8Array; from: string }> {
    const hex = toHex(hash);
    const preferred = prefer.flatMap((p) => {
      try {
        return [peerIdFromString(p)];
      } catch {
        return [];
      }
    });
    const others = this.d.peers().filter((p) => !prefer.includes(p.toString()));
    for (const peer of [...preferred, ...others].slice(0, 5)) {
      try {
        const [bytes] = await this.d.reqresp.request(peer, this.d.spec, hash);
        if (!bytes) throw new Error('bytes do not match the hash');
        // Content-addressed: bytes of this hash that do not decode would not decode from anyone.
        if (toHex(modelHash(bytes)) !== hex)
          throw new ModelHashMismatch(`peer served other bytes than ${hex}`);
        this.d.metrics.modelsFetched.inc({ outcome: 'ok' });
        return { bytes, from: peer.toString() };
      } catch (err) {
        this.d.metrics.modelsFetched.inc({ outcome: 'failed' });
        this.d.log.debug(
          { err: (err as Error).message, peer: peer.toString(), model: hex },
          'model fetch failed',
        );
      }
    }
    throw new Error(`no peer served model ${hex.slice(0, 16)}…`);
  }
}

/**
 * The model entries of a block, for the caller to fetch and to track the newest version. A block
 * without entries is not loaded at all.
 */
export async function modelEntriesOf(
  chain: Pick<Chain, 'getBlock'>,
  node: Pick<BlockNode, 'hashHex' | 'entryIds'>,
): Promise<ModelPayload[]> {
  if (node.entryIds.length === 0) return [];
  const block = await chain.getBlock(node.hashHex);
  return (block?.entries ?? []).flatMap((e) => (e.payload.kind === 'model' ? [e.payload] : []));
}
