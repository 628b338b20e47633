import type { GossipSub } from '@libp2p/gossipsub';
import { TopicValidatorResult } from '@libp2p/gossipsub';
import type { PeerId } from '@libp2p/interface';
import { decodeBlock } from '../chain/block-codec.ts';
import type { ProcessResult } from '../chain/chain.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import { decodeEntry } from '../chain/entry-codec.ts';
import { isModelHeadCode } from '../chain/model-ledger.ts';
import type { SealedBlock, SealedEntry } from '../chain/types.ts';
import { isMembershipCode } from '../membership/roster-state.ts';
import type { AddResult } from '../mempool/mempool.ts';
import type { NodeMetrics } from '../metrics.ts';
import type { PeerAction } from './peer-scores.ts';

export interface GossipHandlers {
  onBlock(block: SealedBlock, from: PeerId): Promise<ProcessResult>;
  onEntry(entry: SealedEntry, from: PeerId): Promise<AddResult>;
  /**
   * Asked before an entry message is decoded: a refusal (the sender is over its admission rate)
   * ends its validation there, so a flood costs no decoding and no queueing. Undefined: go on.
   */
  preadmitEntry?(from: PeerId): AddResult | undefined;
  penalise(peer: PeerId, action: PeerAction, reason: string): void;
  /**
   * A peer we refuse (banned or blocked): its messages still queued in gossipsub are ignored
   * unread, so a flood sent before the ban costs nothing after it.
   */
  refuses?(peer: PeerId): boolean;
  /**
   * Roster mode: whether the sender passed admission (`true` at once, or its handshake's
   * outcome). A message from a peer that was not is rejected unread: never handed on, relayed or
   * charged to a member.
   */
  admitted?(peer: PeerId): true | Promise<boolean>;
}

/**
 * What an ignored block costs its sender. A far-ahead orphan says nothing bad about the sender
 * (we are the ones behind); an orphan outside the difficulty envelope or a side chain beyond
 * the work margin can come from an honest peer that followed another fork, so they cost little,
 * unless the chain is clearly junk (under half our work: a cheap fork from far below).
 */
export function ignoredPenalty(r: Extract<ProcessResult, { status: 'ignored' }>): PeerAction | undefined {
  if (r.junk) return 'low-tolerance';
  switch (r.reason) {
    case 'orphan-too-far-ahead':
      return undefined;
    case 'orphan-outside-envelope':
      return 'mid-tolerance';
    // Past its quota a sender's orphans buy nothing but our work (attack review #11).
    case 'orphan-peer-quota':
      return 'mid-tolerance';
    // Judged at our tip's roster (its parent is unknown), so an honest peer could send one while
    // we are behind on membership; as for the envelope, ten ban (at -1 each a flood of them only
    // earned a disconnect).
    case 'orphan-not-member':
      return 'mid-tolerance';
    case 'low-work-side-chain':
      return 'high-tolerance';
  }
}

/**
 * Block validations from one peer in flight at most. Blocks are validated one at a time (the
 * chain's queue), so a peer's burst would otherwise queue behind itself and everyone else's
 * blocks (attack review #11: 100 orphans in 1.1 s kept the victim busy 24 s). One new block per
 * block time is what an honest relay forwards; beyond this its messages are ignored unread.
 */
export const MAX_BLOCK_VALIDATIONS_PER_PEER = 4;

export interface GossipTopics {
  readonly blocks: string;
  readonly entries: string;
}

export const gossipTopics = (chainTag: string): GossipTopics => ({
  blocks: `/cairn/${chainTag}/blocks/1`,
  entries: `/cairn/${chainTag}/entries/1`,
});

/**
 * Blocks and entries over gossipsub. Every message is validated before it is forwarded:
 * accepted when it is new and valid, ignored when it is a duplicate or cannot be judged yet
 * (orphan, clock skew, full mempool), rejected — which also costs the sender gossipsub score
 * and our own peer score — when it is malformed, oversized or invalid.
 */
export class Gossip {
  private unwatchOversizedFrames: (() => void) | undefined;
  private readonly blocksInFlight = new Map<string, number>();

  private readonly pubsub: GossipSub;
  readonly topics: GossipTopics;
  private readonly maxBlockBytes: number;
  private readonly maxEntryBytes: number;
  private readonly handlers: GossipHandlers;
  private readonly metrics: NodeMetrics;
  constructor(
    pubsub: GossipSub,
    topics: GossipTopics,
    maxBlockBytes: number,
    maxEntryBytes: number,
    handlers: GossipHandlers,
    metrics: NodeMetrics,
  ) {
    this.pubsub = pubsub;
    this.topics = topics;
    this.maxBlockBytes = maxBlockBytes;
    this.maxEntryBytes = maxEntryBytes;
    this.handlers = handlers;
    this.metrics = metrics;
  }

  start(): void {
    this.pubsub.topicValidators.set(this.topics.blocks, (peer, msg) =>
      this.count('blocks', this.validateBlock(peer, msg.data)),
    );
    this.pubsub.topicValidators.set(this.topics.entries, (peer, msg) =>
      this.count('entries', this.validateEntry(peer, msg.data)),
    );
    this.pubsub.subscribe(this.topics.blocks);
    this.pubsub.subscribe(this.topics.entries);
    this.watchOversizedFrames();
  }

  stop(): void {
    this.pubsub.topicValidators.delete(this.topics.blocks);
    this.pubsub.topicValidators.delete(this.topics.entries);
    this.unwatchOversizedFrames?.();
  }

  /**
   * A gossip frame longer than the host's inbound bound (maxBlockBytes + 4 KiB) never reaches a
   * validator: gossipsub's length-prefix decoder throws, and gossipsub silently drops the peer
   * from every mesh, leaving the connection up. Penalise it like an oversized message, so that
   * sending such frames costs the sender (the hook is gossipsub's read-stream error handler).
   */
  private watchOversizedFrames(): void {
    const ps = this.pubsub as unknown as { handlePeerReadStreamError?: (err: Error, peer: PeerId) => void };
    const original = ps.handlePeerReadStreamError;
    if (typeof original !== 'function' || this.unwatchOversizedFrames) return;
    ps.handlePeerReadStreamError = (err: Error, peer: PeerId) => {
      if (err?.name === 'InvalidDataLengthError' || err?.name === 'InvalidDataLengthLengthError') {
        this.handlers.penalise(peer, 'mid-tolerance', `oversized gossip frame: ${err.message}`);
      }
      original.call(this.pubsub, err, peer);
    };
    this.unwatchOversizedFrames = () => {
      ps.handlePeerReadStreamError = original;
      this.unwatchOversizedFrames = undefined;
    };
  }

  /**
   * Drops gossipsub's cached score of `peer` (it is cached for a heartbeat), so an admission or
   * refusal takes effect on the next mesh or publish decision rather than up to 700 ms later: a
   * GRAFT from a just-admitted member judged on its stale pending score would be answered with a
   * PRUNE and a minute of backoff on both sides.
   */
  rescore(peer: string): void {
    const score = (this.pubsub as unknown as { score?: { scoreCache?: Map<string, unknown> } }).score;
    score?.scoreCache?.delete(peer);
  }

  private async fromStranger(peer: PeerId): Promise<boolean> {
    const admitted = this.handlers.admitted?.(peer) ?? true;
    return admitted !== true && !(await admitted);
  }

  async publishBlock(block: SealedBlock): Promise<void> {
    if (block.encoded.length > this.maxBlockBytes)
      throw new Error(`block of ${block.encoded.length} bytes is too large to gossip`);
    await this.pubsub.publish(this.topics.blocks, block.encoded);
  }

  async publishEntry(entry: SealedEntry): Promise<void> {
    if (entry.encoded.length > this.maxEntryBytes) throw new Error('entry too large to gossip');
    await this.pubsub.publish(this.topics.entries, entry.encoded);
  }

  private async count(topic: string, result: Promise<TopicValidatorResult>): Promise<TopicValidatorResult> {
    const r = await result;
    this.metrics.gossip.inc({ topic, result: r });
    return r;
  }

  private async validateBlock(peer: PeerId, data: Uint8Array): Promise<TopicValidatorResult> {
    if (this.handlers.refuses?.(peer)) return TopicValidatorResult.Ignore;
    if (await this.fromStranger(peer)) return TopicValidatorResult.Reject;
    if (data.length > this.maxBlockBytes) {
      this.handlers.penalise(peer, 'mid-tolerance', `oversized block gossip (${data.length} bytes)`);
      return TopicValidatorResult.Reject;
    }
    const key = peer.toString();
    const inFlight = this.blocksInFlight.get(key) ?? 0;
    if (inFlight >= MAX_BLOCK_VALIDATIONS_PER_PEER) {
      this.handlers.penalise(peer, 'high-tolerance', `over ${inFlight} blocks in validation at once`);
      return TopicValidatorResult.Ignore;
    }
    this.blocksInFlight.set(key, inFlight + 1);
    try {
      return await this.judgeBlock(peer, data);
    } finally {
      const n = (this.blocksInFlight.get(key) ?? 1) - 1;
      if (n > 0) this.blocksInFlight.set(key, n);
      else this.blocksInFlight.delete(key);
    }
  }

  private async judgeBlock(peer: PeerId, data: Uint8Array): Promise<TopicValidatorResult> {
    let block: SealedBlock;
    try {
      block = decodeBlock(data, this.maxBlockBytes);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      this.handlers.penalise(peer, 'low-tolerance', `malformed block gossip: ${err.message}`);
      return TopicValidatorResult.Reject;
    }
    const r = await this.handlers.onBlock(block, peer);
    switch (r.status) {
      case 'connected':
      case 'reorg':
        return TopicValidatorResult.Accept;
      case 'side':
        // Kept, but its chain reaches the floor only with orphans we hold: not relayed.
        return r.relay === false ? TopicValidatorResult.Ignore : TopicValidatorResult.Accept;
      case 'duplicate':
      case 'orphan':
        return TopicValidatorResult.Ignore;
      case 'ignored': {
        // Not stored, so not relayed either.
        const action = ignoredPenalty(r);
        if (action) this.handlers.penalise(peer, action, `ignored block: ${r.reason} ${r.hashHex}`);
        return TopicValidatorResult.Ignore;
      }
      case 'invalid':
        if (r.error.isTransient) return TopicValidatorResult.Ignore;
        this.handlers.penalise(
          peer,
          r.error.code === 'wrong-chain-id' ? 'fatal' : 'low-tolerance',
          `invalid block: ${r.error.message}`,
        );
        return TopicValidatorResult.Reject;
    }
  }

  private async validateEntry(peer: PeerId, data: Uint8Array): Promise<TopicValidatorResult> {
    if (this.handlers.refuses?.(peer)) return TopicValidatorResult.Ignore;
    if (await this.fromStranger(peer)) return TopicValidatorResult.Reject;
    if (data.length > this.maxEntryBytes) {
      this.handlers.penalise(peer, 'mid-tolerance', `oversized entry gossip (${data.length} bytes)`);
      return TopicValidatorResult.Reject;
    }
    const refused = this.handlers.preadmitEntry?.(peer);
    if (refused) return this.entryVerdict(refused, peer);
    let entry: SealedEntry;
    try {
      entry = decodeEntry(data);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      this.handlers.penalise(peer, 'low-tolerance', `malformed entry gossip: ${err.message}`);
      return TopicValidatorResult.Reject;
    }
    return this.entryVerdict(await this.handlers.onEntry(entry, peer), peer);
  }

  private entryVerdict(r: AddResult, peer: PeerId): TopicValidatorResult {
    if (r.status === 'added') return TopicValidatorResult.Accept;
    if (r.status === 'duplicate') return TopicValidatorResult.Ignore;
    if (
      r.reason === 'already-included' ||
      r.reason === 'mempool-full' ||
      r.reason === 'entry-timestamp-in-future' ||
      // An admin's checkpoint of a block we do not follow (yet): not the relayer's fault.
      r.reason === 'checkpoint-not-in-chain' ||
      // Judged against our tip's roster or model head, which a relayer at another tip may not share.
      isMembershipCode(r.reason) ||
      isModelHeadCode(r.reason)
    ) {
      return TopicValidatorResult.Ignore;
    }
    this.handlers.penalise(peer, 'low-tolerance', `invalid entry: ${r.message}`);
    return TopicValidatorResult.Reject;
  }
}
