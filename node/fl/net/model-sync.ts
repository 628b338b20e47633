/**
 * Getting model versions onto this node: the global model a round starts from, and every
 * version a `model` entry on the main chain commits to, fetched by hash from peers when missing.
 *
 * A fetch asks the peers that claimed the version first (a round's announcer, an entry's author:
 * an honest one stores it), then peers that served a model before, then every other connected
 * peer in an order no peer chooses (shuffled), a few at a time, until one serves it or the fetch's
 * time runs out (FL_DEFAULTS.modelFetch). It asked 5 peers in all, so 4 identities early in the
 * peer book answering `unavailable` hid a head the next peer served and made the node rebase
 * (round-runner.ts basisFor; ATK-16). `unavailable` is an honest answer from a peer that lacks
 * the bytes, but not from one that claimed them: that peer is penalised, and so is one serving
 * other bytes than the hash names.
 */

import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import type { BlockNode } from '../../chain/block-tree.ts';
import { type Hex, toHex } from '../../chain/bytes.ts';
import type { Chain } from '../../chain/chain.ts';
import type { ModelPayload } from '../../chain/types.ts';
import type { Logger } from '../../log.ts';
import { FL_DEFAULTS } from '../../options.ts';
import type { PeerAction } from '../../p2p/peer-scores.ts';
import { type ReqResp, ReqRespError } from '../../p2p/reqresp.ts';
import { type Params, zeroParams } from '../logistic.ts';
import { cryptoUniform, shuffleInPlace } from '../random.ts';
import type { FlMetrics } from './metrics.ts';
import { decodeModel, modelHash } from './model-codec.ts';
import type { ModelStore } from './model-store.ts';
import type { MODEL_BY_HASH } from './protocols.ts';

/** How one peer's answer to a model request went (cairn_fl_models_fetched_total{outcome}). */
export type FetchOutcome =
  | 'ok'
  /** The peer does not store it: an honest answer from a peer that never claimed it. */
  | 'unavailable'
  /** `unavailable` from a peer that claimed the version (announced a round from it, or authored its entry). */
  | 'claim-broken'
  /** Bytes that do not hash to the version asked for. */
  | 'mismatch'
  /** No answer: dial failure, timeout, a refused or malformed answer. */
  | 'failed';

/** No peer served a version before the fetch's time ran out, or every peer was asked. */
export class ModelUnavailable extends Error {
  override readonly name = 'ModelUnavailable';
  readonly code = 'model-unavailable';
  readonly reason: 'out-of-time' | 'no-peer-served';
  /** Peers asked. */
  readonly asked: number;
  constructor(reason: 'out-of-time' | 'no-peer-served', asked: number, message: string) {
    super(message);
    this.reason = reason;
    this.asked = asked;
  }
}

/** How a fetch spends its time (defaults FL_DEFAULTS.modelFetch). */
export interface FetchPolicy {
  /** Time for one fetch over every peer it asks. */
  readonly budgetMs: number;
  /** Without an answer for this long, the next peer is asked too. */
  readonly hedgeMs: number;
  /** Requests in flight at once. */
  readonly inFlight: number;
}

/** Peers remembered as having served a model (asked after the claimants, before the rest). */
const SERVED_MEMORY = 32;
/**
 * Requests a fetch keeps outstanding at most, per request it counts as in flight (FetchPolicy
 * inFlight). A request unanswered after hedgeMs stops counting as in flight (it may still
 * answer), so a silent peer costs the fetch hedgeMs, not its timeout / inFlight; this bounds
 * what silent peers can keep open at once.
 */
const OUTSTANDING_PER_IN_FLIGHT = 4;

export interface ModelSyncDeps {
  readonly store: ModelStore;
  readonly reqresp: Pick<ReqResp, 'request'>;
  readonly spec: typeof MODEL_BY_HASH;
  /** Connected peers to ask (their order does not matter: a fetch shuffles them). */
  readonly peers: () => readonly PeerId[];
  readonly metrics: FlMetrics;
  readonly log: Logger;
  /** A claimant that denied the version, or a peer that served other bytes. */
  readonly penalise?: (peer: string, action: PeerAction, reason: string) => void;
  readonly policy?: Partial<FetchPolicy>;
}

export class ModelSync {
  /** Fetches under way, by hash and whether a chain entry names it (resolve says why). */
  private readonly inflight = new Map<string, Promise<{ bytes: Uint8Array; from: string }>>();
  /** Peers that served a model, oldest first. */
  private readonly served = new Set<string>();
  private readonly policy: FetchPolicy;
  private readonly uniform = cryptoUniform();

  private readonly d: ModelSyncDeps;
  constructor(d: ModelSyncDeps) {
    this.d = d;
    this.policy = { ...FL_DEFAULTS.modelFetch, ...d.policy };
  }

  /**
   * The model with this hash (null = the all-zero initial model), fetched if not stored. `named`:
   * a main-chain entry names it, so it is kept on disk; otherwise (a round's announcement, before
   * or without its entry) it is held as a candidate of `prefer[0]`'s (model-store.ts), below every
   * trained round's version. `prefer`: the peers that claimed it, asked first. `budgetMs`: the
   * fetch's time (a fetch already under way for the hash is joined, with its own).
   */
  async resolve(
    hash: Uint8Array | null,
    paramCount: number,
    prefer: readonly string[] = [],
    named = true,
    budgetMs = this.policy.budgetMs,
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
    // A chain entry's fetch never joins an announcement's: it would inherit the announcer as its
    // claimant (its author never asked first) and the announcement's shorter budget, and 3
    // silent ids ahead of the block hid a head its author served (attack review fl-trust3).
    const key = `${hex}:${named ? 'named' : 'announced'}`;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetch(hash, prefer, budgetMs).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
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

  /** Bytes that hash to `hash`, from the first peer that serves them within `budgetMs`. */
  private async fetch(
    hash: Uint8Array,
    prefer: readonly string[],
    budgetMs: number,
  ): Promise<{ bytes: Uint8Array; from: string }> {
    const hex = toHex(hash);
    const { claimants, order } = this.order(prefer);
    const { hedgeMs, inFlight } = this.policy;
    const deadline = Date.now() + budgetMs;
    const maxOutstanding = inFlight * OUTSTANDING_PER_IN_FLIGHT;
    const pending = new Map<number, Promise<{ key: number; from: string; bytes?: Uint8Array }>>();
    /** When each pending request was sent, until it passed hedgeMs unanswered. */
    const fresh = new Map<number, { sentAt: number; from: string }>();
    let next = 0;
    let outOfTime = false;
    for (;;) {
      const now = Date.now();
      const left = deadline - now;
      if (left <= 0) {
        outOfTime = true;
        break;
      }
      for (const [key, f] of fresh) {
        if (now - f.sentAt < hedgeMs) continue;
        fresh.delete(key);
        // Silent past hedgeMs: it loses its place ahead of the shuffled peers (served-then-silent
        // ids kept the first places of every fetch; attack review fl-trust3).
        if (this.served.delete(f.from)) this.d.metrics.modelPeersDemoted.inc({ why: 'silent' });
      }
      const room = () => next < order.length && fresh.size < inFlight && pending.size < maxOutstanding;
      if (room()) {
        const key = next;
        const peer = order[next++]!;
        const from = peer.toString();
        fresh.set(key, { sentAt: now, from });
        pending.set(
          key,
          this.ask(peer, hash, hex, claimants.has(from)).then((bytes) => ({
            key,
            from,
            ...(bytes ? { bytes } : {}),
          })),
        );
      }
      if (pending.size === 0) break;
      // Room for another request: wait at most hedgeMs for this one before sending the next. With
      // the fresh places full, the oldest of them goes stale within hedgeMs too.
      const wait = next < order.length && pending.size < maxOutstanding ? Math.min(hedgeMs, left) : left;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const tick = new Promise<undefined>((r) => {
        timer = setTimeout(() => r(undefined), wait);
      });
      const settled = await Promise.race([...pending.values(), tick]);
      clearTimeout(timer);
      if (!settled) continue;
      pending.delete(settled.key);
      fresh.delete(settled.key);
      if (settled.bytes) {
        this.served.delete(settled.from);
        this.served.add(settled.from);
        if (this.served.size > SERVED_MEMORY) this.served.delete(this.served.values().next().value!);
        return { bytes: settled.bytes, from: settled.from };
      }
      // A failed or refused answer costs a served peer its place too.
      if (this.served.delete(settled.from)) this.d.metrics.modelPeersDemoted.inc({ why: 'failed' });
    }
    const why = outOfTime ? 'out-of-time' : 'no-peer-served';
    throw new ModelUnavailable(
      why,
      next,
      `no peer served model ${hex.slice(0, 16)}… (${next} of ${order.length} asked${outOfTime ? `, ${budgetMs} ms spent` : ''})`,
    );
  }

  /** Claimants in the order given, then peers that served before (latest first), then the rest shuffled. */
  private order(prefer: readonly string[]): { claimants: Set<string>; order: PeerId[] } {
    const seen = new Set<string>();
    const preferred: PeerId[] = [];
    for (const p of prefer) {
      if (seen.has(p)) continue;
      try {
        preferred.push(peerIdFromString(p));
        seen.add(p);
      } catch {}
    }
    const seenClaimants = new Set(preferred.map(String));
    for (const p of seenClaimants) seen.add(p);
    const before: PeerId[] = [];
    const rest: PeerId[] = [];
    for (const p of this.d.peers()) {
      const id = p.toString();
      if (seen.has(id)) continue;
      seen.add(id);
      (this.served.has(id) ? before : rest).push(p);
    }
    const recency = [...this.served];
    before.sort((a, b) => recency.indexOf(b.toString()) - recency.indexOf(a.toString()));
    const idx = shuffleInPlace(
      rest.map((_, i) => i),
      this.uniform,
    );
    return { claimants: seenClaimants, order: [...preferred, ...before, ...idx.map((i) => rest[i]!)] };
  }

  /** One peer's answer: the bytes if they are the version, undefined otherwise (counted, maybe penalised). */
  private async ask(
    peer: PeerId,
    hash: Uint8Array,
    hex: Hex,
    claimed: boolean,
  ): Promise<Uint8Array | undefined> {
    const id = peer.toString();
    let outcome: FetchOutcome = 'failed';
    try {
      const [bytes] = await this.d.reqresp.request(peer, this.d.spec, hash);
      if (!bytes) return undefined;
      // Content-addressed: other bytes are a lie, whatever they decode to.
      if (toHex(modelHash(bytes)) !== hex) {
        outcome = 'mismatch';
        this.d.penalise?.(id, 'low-tolerance', `model-by-hash: other bytes than ${hex.slice(0, 16)}…`);
        return undefined;
      }
      outcome = 'ok';
      return bytes;
    } catch (err) {
      if (err instanceof ReqRespError && err.code === 'resource-unavailable') {
        outcome = claimed ? 'claim-broken' : 'unavailable';
        if (claimed)
          this.d.penalise?.(
            id,
            'mid-tolerance',
            `model-by-hash: unavailable, although it claimed ${hex.slice(0, 16)}…`,
          );
      }
      this.d.log.debug({ err: (err as Error).message, peer: id, model: hex, outcome }, 'model fetch failed');
      return undefined;
    } finally {
      this.d.metrics.modelsFetched.inc({ outcome });
    }
  }
}

/** A main-chain model entry's payload and its author's peer id (who claims to store the version). */
export interface ModelEntry {
  readonly payload: ModelPayload;
  readonly author: string | undefined;
}

/**
 * The model entries of a block, for the caller to fetch and to track the newest version. A block
 * without entries is not loaded at all.
 */
export async function modelEntriesOf(
  chain: Pick<Chain, 'getBlock'>,
  node: Pick<BlockNode, 'hashHex' | 'entryIds'>,
): Promise<ModelEntry[]> {
  if (node.entryIds.length === 0) return [];
  const block = await chain.getBlock(node.hashHex);
  return (block?.entries ?? []).flatMap((e) =>
    e.payload.kind === 'model' ? [{ payload: e.payload, author: authorPeer(e.author) }] : [],
  );
}

function authorPeer(key: Uint8Array): string | undefined {
  try {
    return peerIdFromPublicKey(publicKeyFromRaw(key)).toString();
  } catch {
    return undefined;
  }
}
