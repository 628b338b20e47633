/**
 * Finding 3 (HIGH): a `model` entry whose model hash is 32 zero bytes passes the head rule, and
 * then no successor can: the successor's parent hash (the head's, all zeros) is encoded as the
 * "no parent" marker, so every node that reads it off the wire decodes parent = null and rejects
 * it ('model-parent-not-head'). One coordinator entry pins every node's head for good, like the
 * round 2^32−1 entry the head rule was written against. Its author's in-memory copy still says
 * zeros, so the author's node and the rest may even disagree on the successor's validity.
 *
 *   npm exec -- node --import tsx --test attack/fl-trust/zero-model-hash.attack.ts
 *
 * Fails until either the all-zero model hash is invalid (entry-codec / model-ledger) or the
 * successor is accepted.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createEntry } from '../../node/chain/authoring.ts';
import type { ProcessResult } from '../../node/chain/chain.ts';
import { decodeEntry } from '../../node/chain/entry-codec.ts';
import type { ModelPayload, SealedEntry } from '../../node/chain/types.ts';
import { forgeBranch, TEST_NOW, testChain, testKey } from '../../node/testing/forge.ts';

const coordinator = testKey(700);
const miner = testKey(702);
const codeOf = (r: ProcessResult) => (r.status === 'invalid' ? r.error.code : r.status);
const ZERO = new Uint8Array(32);

const model = (round: number, modelHash: Uint8Array, parentHash: Uint8Array | null): SealedEntry => {
  const payload: ModelPayload = { kind: 'model', modelHash, parentHash, round, metrics: [], epsilon: 0 };
  return createEntry(payload, coordinator, TEST_NOW - 60_000);
};

describe('attack: the all-zero model hash', () => {
  test('a version named 0^32 is refused, or its successor (as read off the wire) is accepted', async () => {
    const t = testChain();
    const { chain } = t;
    const block = (e: SealedEntry) => forgeBranch(chain, chain.tip, [{ miner, entries: [e] }])[0]!;
    const first = await t.submit(block(model(1, ZERO, null)));
    if (first.status === 'invalid') return; // fixed: the pin cannot be placed
    assert.equal(codeOf(first), 'connected');
    assert.deepEqual(chain.tipModel?.modelHash, ZERO, 'the head is the all-zero hash');
    // An honest successor names the head as its parent; every other node sees its decoded bytes.
    const successor = model(2, new Uint8Array(32).fill(2), ZERO);
    const wire = decodeEntry(successor.encoded);
    assert.equal((wire.payload as ModelPayload).parentHash, null, 'parent 0^32 decodes as "no parent"');
    const r = await t.submit(block(wire));
    assert.equal(codeOf(r), 'connected', `the successor is ${codeOf(r)}: the head is pinned`);
  });
});
