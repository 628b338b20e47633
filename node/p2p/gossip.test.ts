/**
 * Block gossip validation on a stand-in for gossipsub's validator table: an ignored block is not
 * relayed (Ignore) and costs its sender by reason, and a refused peer's queued messages are
 * dropped unread.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { GossipSub } from '@libp2p/gossipsub';
import { TopicValidatorResult } from '@libp2p/gossipsub';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { createEntry } from '../chain/authoring.ts';
import type { IgnoreReason, ProcessResult } from '../chain/chain.ts';
import type { AddResult, MempoolRejection } from '../mempool/mempool.ts';
import { createNodeMetrics } from '../metrics.ts';
import { forgeBlock, testChain, testKey } from '../testing/forge.ts';
import { Gossip, gossipTopics, ignoredPenalty, MAX_BLOCK_VALIDATIONS_PER_PEER } from './gossip.ts';
import type { PeerAction } from './peer-scores.ts';

type Validator = (peer: PeerId, msg: { data: Uint8Array }) => Promise<TopicValidatorResult>;

function setup(result: ProcessResult, refused = false, entryResult?: AddResult, hold?: Promise<unknown>) {
  const validators = new Map<string, Validator>();
  const pubsub = { topicValidators: validators, subscribe() {} } as unknown as GossipSub;
  const penalties: PeerAction[] = [];
  let processed = 0;
  const topics = gossipTopics('test');
  const gossip = new Gossip(
    pubsub,
    topics,
    1 << 20,
    64 << 10,
    {
      onBlock: async () => {
        processed++;
        await hold;
        return result;
      },
      onEntry: async () => entryResult ?? ({ status: 'duplicate' } as never),
      penalise: (_p, action) => penalties.push(action),
      refuses: () => refused,
    },
    createNodeMetrics(),
  );
  gossip.start();
  return {
    validate: validators.get(topics.blocks)!,
    validateEntry: validators.get(topics.entries)!,
    penalties,
    processed: () => processed,
  };
}

const ignoredResult = (reason: IgnoreReason, junk: boolean): ProcessResult => ({
  status: 'ignored',
  hashHex: '00',
  reason,
  junk,
});

describe('block gossip', async () => {
  const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
  const t = testChain();
  const data = forgeBlock(t.chain, t.chain.tip).encoded;

  test('an ignored block is not relayed, and costs its sender by reason', async () => {
    const cases: [IgnoreReason, boolean, PeerAction | undefined][] = [
      ['low-work-side-chain', true, 'low-tolerance'],
      ['low-work-side-chain', false, 'high-tolerance'],
      ['orphan-outside-envelope', false, 'mid-tolerance'],
      ['orphan-too-far-ahead', false, undefined],
      ['orphan-peer-quota', false, 'mid-tolerance'],
      ['orphan-not-member', false, 'mid-tolerance'],
    ];
    for (const [reason, junk, action] of cases) {
      const s = setup(ignoredResult(reason, junk));
      assert.equal(await s.validate(peer, { data }), TopicValidatorResult.Ignore, reason);
      assert.deepEqual(s.penalties, action ? [action] : [], `${reason} junk=${junk}`);
      assert.equal(ignoredPenalty(ignoredResult(reason, junk) as never), action);
    }
  });

  test('a refused peer’s block is ignored unread', async () => {
    const s = setup({ status: 'connected', hashHex: '00' }, true);
    assert.equal(await s.validate(peer, { data }), TopicValidatorResult.Ignore);
    assert.equal(s.processed(), 0);
    assert.deepEqual(s.penalties, []);
  });

  test('a valid block is accepted (relayed)', async () => {
    const s = setup({ status: 'side', hashHex: '00' });
    assert.equal(await s.validate(peer, { data }), TopicValidatorResult.Accept);
    assert.equal(s.processed(), 1);
  });

  test('a side block kept only on our orphans is kept but not relayed, without blame', async () => {
    const s = setup({ status: 'side', hashHex: '00', relay: false });
    assert.equal(await s.validate(peer, { data }), TopicValidatorResult.Ignore);
    assert.equal(s.processed(), 1);
    assert.deepEqual(s.penalties, []);
  });

  test('past its share of validations in flight, a peer’s blocks are ignored unread', async () => {
    // Attack review #11: a burst of orphans queued behind itself kept the victim busy 24 s.
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const s = setup({ status: 'connected', hashHex: '00' }, false, undefined, held);
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
    const first = Array.from({ length: MAX_BLOCK_VALIDATIONS_PER_PEER }, () => s.validate(peer, { data }));
    assert.equal(await s.validate(peer, { data }), TopicValidatorResult.Ignore, 'one over');
    assert.deepEqual(s.penalties, ['high-tolerance']);
    const fromOther = s.validate(other, { data });
    await new Promise((r) => setImmediate(r));
    assert.equal(s.processed(), MAX_BLOCK_VALIDATIONS_PER_PEER + 1, 'another peer is not held up');
    release();
    for (const r of await Promise.all([...first, fromOther])) assert.equal(r, TopicValidatorResult.Accept);
    assert.equal(await s.validate(peer, { data }), TopicValidatorResult.Accept, 'its share is back');
  });
});

describe('entry gossip', async () => {
  const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
  const data = createEntry({ kind: 'knowledge', content: 'x', metadata: [] }, testKey(1)).encoded;
  const rejected = (reason: MempoolRejection): AddResult => ({ status: 'rejected', reason, message: reason });

  test('an entry over its sender’s admission rate is ignored before it is decoded or queued', async () => {
    const validators = new Map<string, Validator>();
    const pubsub = { topicValidators: validators, subscribe() {} } as unknown as GossipSub;
    const penalties: PeerAction[] = [];
    let tickets = 0;
    let handled = 0;
    const topics = gossipTopics('test');
    const gossip = new Gossip(
      pubsub,
      topics,
      1 << 20,
      64 << 10,
      {
        onBlock: async () => ({ status: 'duplicate', hashHex: '00' }),
        onEntry: async () => {
          handled++;
          return { status: 'added', evicted: [] };
        },
        preadmitEntry: () =>
          ++tickets > 1
            ? { status: 'rejected', reason: 'mempool-full', quota: 'peer-rate', message: 'over the rate' }
            : undefined,
        penalise: (_p, action) => penalties.push(action),
      },
      createNodeMetrics(),
    );
    gossip.start();
    const validate = validators.get(topics.entries)!;
    // Not an entry at all: within the rate it is decoded and rejected as malformed, past it not even read.
    const junk = { data: new Uint8Array([0xff, 1, 2, 3]) };
    assert.equal(await validate(peer, junk), TopicValidatorResult.Reject);
    assert.deepEqual(penalties, ['low-tolerance']);
    assert.equal(await validate(peer, junk), TopicValidatorResult.Ignore);
    assert.deepEqual(penalties, ['low-tolerance'], 'refused unread: no malformed-message penalty');
    assert.equal(handled, 0);
    assert.equal(tickets, 2);
  });

  test('a membership rejection (judged at our tip) is ignored without blame; a static one costs', async () => {
    for (const reason of [
      'author-not-member',
      'author-lacks-submit',
      'author-not-admin',
      'certificate-revoked',
    ] as const) {
      const s = setup({ status: 'duplicate', hashHex: '00' }, false, rejected(reason));
      assert.equal(await s.validateEntry(peer, { data }), TopicValidatorResult.Ignore, reason);
      assert.deepEqual(s.penalties, [], reason);
    }
    // Open mode's static admin list: the relayer should have known.
    const s = setup({ status: 'duplicate', hashHex: '00' }, false, rejected('unauthorized-config'));
    assert.equal(await s.validateEntry(peer, { data }), TopicValidatorResult.Reject);
    assert.deepEqual(s.penalties, ['low-tolerance']);
  });
});
