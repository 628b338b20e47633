/**
 * Issue 16, Finding 3: a `model` entry naming the all-zero model hash used to pass the head rule,
 * and then no successor could: its parent field (the head's hash, all zeros) is the encoding of
 * "no parent", so every node reading the successor off the wire saw parent = null and refused it
 * (`model-parent-not-head`) while its author's in-memory copy said zeros. The all-zero hash is now
 * invalid in the entry codec on both sides: the author cannot seal one, a hostile peer's bytes do
 * not decode, and gossip rejects the block or entry carrying them and penalises its sender.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { GossipSub } from '@libp2p/gossipsub';
import { TopicValidatorResult } from '@libp2p/gossipsub';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { createNodeMetrics } from '../metrics.ts';
import { Gossip, gossipTopics } from '../p2p/gossip.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';
import { forgeBranch, TEST_NOW, testChain, testKey } from '../testing/forge.ts';
import { createEntry } from './authoring.ts';
import { decodeBlock } from './block-codec.ts';
import type { ProcessResult } from './chain.ts';
import { DecodeError } from './codec/errors.ts';
import { decodeEntry } from './entry-codec.ts';
import { sha256 } from './hash.ts';
import { sign } from './signature.ts';
import type { ModelPayload, SealedEntry } from './types.ts';

const coordinator = testKey(700);
const miner = testKey(702);
const codeOf = (r: ProcessResult) => (r.status === 'invalid' ? r.error.code : r.status);
const ZERO = new Uint8Array(32);
/** Where the model hash sits in an entry: tag, version, author, u64 timestamp, kind. */
const MODEL_HASH_OFFSET = 1 + 1 + 32 + 8 + 1;

const model = (round: number, modelHash: Uint8Array, parentHash: Uint8Array | null): SealedEntry => {
  const payload: ModelPayload = { kind: 'model', modelHash, parentHash, round, metrics: [], epsilon: 0 };
  return createEntry(payload, coordinator, TEST_NOW - 60_000);
};

/** A hostile peer's bytes: `e` with its model hash zeroed and the entry signed again by its author. */
function zeroedAndResigned(e: SealedEntry): Uint8Array {
  const bytes = e.encoded.slice();
  bytes.fill(0, MODEL_HASH_OFFSET, MODEL_HASH_OFFSET + 32);
  const unsignedEnd = bytes.length - 64;
  bytes.set(sign(sha256(bytes.subarray(0, unsignedEnd)), coordinator), unsignedEnd);
  return bytes;
}

function replaceOnce(hay: Uint8Array, needle: Uint8Array, by: Uint8Array): Uint8Array {
  const at = Buffer.from(hay).indexOf(Buffer.from(needle));
  assert.ok(at >= 0, 'needle not found');
  const out = hay.slice();
  out.set(by, at);
  return out;
}

describe('the all-zero model hash', async () => {
  const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));

  test('the author cannot seal a version named 0^32, nor a parent of 0^32 that decodes as none', () => {
    assert.throws(() => model(1, ZERO, null), RangeError);
    assert.throws(() => model(2, new Uint8Array(32).fill(2), ZERO), RangeError);
  });

  test('a hostile peer’s entry naming 0^32 does not decode: invalid-value', () => {
    const bytes = zeroedAndResigned(model(1, new Uint8Array(32).fill(0x5a), null));
    assert.throws(
      () => decodeEntry(bytes),
      (err: unknown) => err instanceof DecodeError && err.code === 'invalid-value',
    );
  });

  test('gossip rejects the block and the entry carrying it, penalising the sender, unprocessed', async () => {
    const t = testChain();
    const honest = model(1, new Uint8Array(32).fill(0x5a), null);
    const block = forgeBranch(t.chain, t.chain.tip, [{ miner, entries: [honest] }])[0]!;
    const hostileEntry = zeroedAndResigned(honest);
    const hostileBlock = replaceOnce(block.encoded, honest.encoded, hostileEntry);
    assert.throws(() => decodeBlock(hostileBlock), DecodeError);
    const validators = new Map<string, (p: typeof peer, m: { data: Uint8Array }) => Promise<unknown>>();
    const pubsub = { topicValidators: validators, subscribe() {} } as unknown as GossipSub;
    const penalties: PeerAction[] = [];
    let handled = 0;
    const topics = gossipTopics('test');
    new Gossip(
      pubsub,
      topics,
      1 << 20,
      64 << 10,
      {
        onBlock: async () => {
          handled++;
          return { status: 'duplicate', hashHex: '00' };
        },
        onEntry: async () => {
          handled++;
          return { status: 'duplicate' } as never;
        },
        penalise: (_p, action) => penalties.push(action),
      },
      createNodeMetrics(),
    ).start();
    assert.equal(
      await validators.get(topics.blocks)!(peer, { data: hostileBlock }),
      TopicValidatorResult.Reject,
    );
    assert.equal(
      await validators.get(topics.entries)!(peer, { data: hostileEntry }),
      TopicValidatorResult.Reject,
    );
    assert.deepEqual(penalties, ['low-tolerance', 'low-tolerance']);
    assert.equal(handled, 0, 'neither reached the chain or the mempool');
  });

  test('a successor of a real version, read off the wire, extends it', async () => {
    const t = testChain();
    const block = (e: SealedEntry) => forgeBranch(t.chain, t.chain.tip, [{ miner, entries: [e] }])[0]!;
    const first = model(1, new Uint8Array(32).fill(1), null);
    assert.equal(codeOf(await t.submit(block(decodeEntry(first.encoded)))), 'connected');
    const successor = decodeEntry(model(2, new Uint8Array(32).fill(2), new Uint8Array(32).fill(1)).encoded);
    assert.deepEqual((successor.payload as ModelPayload).parentHash, new Uint8Array(32).fill(1));
    assert.equal(codeOf(await t.submit(block(successor))), 'connected');
    assert.equal(t.chain.tipModel?.round, 2);
  });
});
