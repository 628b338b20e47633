/**
 * The messaging store on a real node store file (the writer connection's prepared statements):
 * the outbox's life of a row, arrivals all or none, the application's inbox order, one
 * transaction for a burst of sends, and everything still there after a reopen.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { genesisBlock } from '../chain/genesis.ts';
import { chainIdHex } from '../chain/network-config.ts';
import { NodeStore } from '../store/node-store.ts';
import { testNetwork } from '../testing/forge.ts';
import { type ArrivalRecord, MessageRowMissing, MessageStore } from './message-store.ts';

const config = testNetwork();
const bob = 'b0'.repeat(32);
const carol = 'c0'.repeat(32);
const alice = 'a0'.repeat(32);

async function open(t: { after(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-message-store-'));
  const opts = {
    file: path.join(dir, 'node.db'),
    chainIdHex: chainIdHex(config),
    genesisHashHex: genesisBlock(config).hashHex,
  };
  let node = await NodeStore.open(opts);
  t.after(async () => {
    await node.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  return {
    get node() {
      return node;
    },
    store: () => new MessageStore(node.writes),
    reopen: async () => {
      await node.close();
      node = await NodeStore.open(opts);
      return new MessageStore(node.writes);
    },
  };
}

const bytes = (n: number, len = 4) => new Uint8Array(len).fill(n);

test('an outbox row from send to delivery, and the recipient’s pending list in sequence order', async (t) => {
  const s = await open(t);
  const store = s.store();
  await store.addOutbox({ recipient: bob, seq: 2, body: 'two', now: 1_002 });
  await store.addOutbox({
    recipient: bob,
    seq: 1,
    body: 'one',
    now: 1_001,
    sealed: { envelope: bytes(9, 40), contentId: bytes(8, 32) },
  });
  await store.addOutbox({ recipient: carol, seq: 1, body: 'for carol', now: 1_003 });
  await assert.rejects(
    store.addOutbox({ recipient: bob, seq: 1, body: 'again', now: 1_004 }),
    /UNIQUE/,
    'a sequence is used once',
  );

  const pending = await store.pending(bob);
  assert.deepEqual(
    pending.map((r) => r.seq),
    [1, 2],
  );
  assert.deepEqual(pending[0], {
    recipient: bob,
    seq: 1,
    body: 'one',
    envelope: bytes(9, 40),
    contentId: bytes(8, 32),
    createdAt: 1_001,
    attempts: 0,
    nextAttemptAt: 1_001,
    deliveredAt: null,
    lastError: null,
    deposited: 0,
  });
  assert.equal(pending[1]!.envelope, null);
  assert.deepEqual(
    (await store.pending()).map((r) => `${r.recipient.slice(0, 2)}:${r.seq}`),
    ['b0:1', 'b0:2', 'c0:1'],
  );
  assert.deepEqual(
    await store.lastSequences(),
    new Map([
      [bob, 2],
      [carol, 1],
    ]),
  );

  await store.setEnvelope(bob, 2, bytes(7, 40), bytes(6, 32));
  await store.markFailed(bob, 2, 3, 9_000, `unreachable ${'x'.repeat(600)}`);
  await store.markDeposited(bob, 2, 2);
  const failed = await store.outboxRow(bob, 2);
  assert.deepEqual(failed?.envelope, bytes(7, 40));
  assert.equal(failed?.attempts, 3);
  assert.equal(failed?.nextAttemptAt, 9_000);
  assert.equal(failed?.lastError?.length, 500, 'errors are kept to 500 characters');
  assert.equal(failed?.deposited, 2);

  await store.markDelivered(bob, 2, bytes(5, 64), 9_500);
  const delivered = await store.outboxRow(bob, 2);
  assert.equal(delivered?.deliveredAt, 9_500);
  assert.equal(delivered?.lastError, null, 'a delivery clears the last error');
  assert.deepEqual(
    (await store.pending(bob)).map((r) => r.seq),
    [1],
  );
  assert.deepEqual(
    (await store.outbox(2)).map((r) => r.body),
    ['for carol', 'two'],
    'newest first',
  );

  await assert.rejects(store.markDelivered(bob, 99, bytes(5, 64), 1), MessageRowMissing);
  await assert.rejects(store.setEnvelope(carol, 7, bytes(1), bytes(1)), MessageRowMissing);

  const again = await s.reopen();
  assert.deepEqual(await again.outboxRow(bob, 2), delivered, 'the same row after a reopen');
  assert.deepEqual(
    await again.lastSequences(),
    new Map([
      [bob, 2],
      [carol, 1],
    ]),
  );
});

test('a burst of sends in one turn commits in one transaction', async (t) => {
  const s = await open(t);
  const store = s.store();
  const before = store.transactions;
  await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      store.addOutbox({ recipient: bob, seq: i + 1, body: `m${i}`, now: i }),
    ),
  );
  assert.equal(store.transactions - before, 1);
  assert.equal((await store.pending(bob)).length, 50);
});

test('arrivals: held until released, duplicates left alone, a batch all or none, inbox in release order', async (t) => {
  const s = await open(t);
  const store = s.store();
  const row = (sender: string, seq: number, body = `m${seq}`) => ({
    sender,
    seq,
    body,
    sentAt: 100 + seq,
    receivedAt: 200 + seq,
    contentId: bytes(seq, 32),
  });
  // Alice's 2 arrives first (held), then her 1 releases both; Carol's 1 releases itself.
  await store.recordArrivals([{ row: row(alice, 2), released: [], cursor: 1 }]);
  let state = await store.receiveState();
  assert.deepEqual(
    state.held.map((h) => h.seq),
    [2],
  );
  assert.equal(state.lastOrder, 0);
  await store.recordArrivals([
    {
      row: row(alice, 1),
      released: [
        { seq: 1, appOrder: 1 },
        { seq: 2, appOrder: 2 },
      ],
      cursor: 3,
    },
    { row: row(carol, 1), released: [{ seq: 1, appOrder: 3 }], cursor: 2 },
  ]);
  // A copy already stored (its receipt was lost) changes nothing.
  await store.recordArrivals([{ row: row(alice, 1, 'tampered'), released: [], cursor: 3 }]);

  // A batch whose release names a row that is not there fails whole: its new row and cursor too.
  const broken: ArrivalRecord[] = [
    { row: row(carol, 2), released: [{ seq: 2, appOrder: 4 }], cursor: 3 },
    { row: row(carol, 4), released: [{ seq: 3, appOrder: 5 }], cursor: 5 },
  ];
  await assert.rejects(store.recordArrivals(broken), MessageRowMissing);

  const check = async (st: MessageStore) => {
    const inbox = await st.inbox(0, 10);
    assert.deepEqual(
      inbox.map((m) => [m.sender.slice(0, 2), m.seq, m.body, m.appOrder]),
      [
        ['a0', 1, 'm1', 1],
        ['a0', 2, 'm2', 2],
        ['c0', 1, 'm1', 3],
      ],
    );
    assert.deepEqual(inbox[0], { ...row(alice, 1), appOrder: 1 });
    assert.deepEqual(
      (await st.inbox(1, 1)).map((m) => m.appOrder),
      [2],
      'after an order, at most limit',
    );
    state = await st.receiveState();
    assert.deepEqual(
      state.cursors,
      new Map([
        [alice, 3],
        [carol, 2],
      ]),
    );
    assert.deepEqual(state.held, []);
    assert.equal(state.lastOrder, 3);
  };
  await check(store);
  await check(await s.reopen());
});

test('key records: stored, replaced, read back after a reopen', async (t) => {
  const s = await open(t);
  const store = s.store();
  assert.equal(await store.keyRecord(bob), undefined);
  await store.putKeyRecord(bob, bytes(1, 80), 1);
  await store.putKeyRecord(bob, bytes(2, 80), 2);
  assert.deepEqual(await store.keyRecord(bob), bytes(2, 80));
  assert.deepEqual(await (await s.reopen()).keyRecord(bob), bytes(2, 80));
});
