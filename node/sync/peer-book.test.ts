import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Status } from '../p2p/messages.ts';
import { PeerBook } from './peer-book.ts';

const status = (totalWork: bigint, headHeight = Number(totalWork)): Status => ({
  chainId: new Uint8Array(32),
  genesisHash: new Uint8Array(32),
  headHash: new Uint8Array(32).fill(headHeight & 0xff),
  headHeight,
  totalWork,
  role: 'submind',
  capabilities: [],
});

let A: PeerId;
let B: PeerId;
let C: PeerId;
let D: PeerId;
before(async () => {
  const ids = await Promise.all(
    [0, 1, 2, 3].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))),
  );
  [A, B, C, D] = ids as [PeerId, PeerId, PeerId, PeerId];
});
const keys = (rs: { peer: PeerId }[]) => rs.map((r) => r.peer.toString()).sort();

describe('status freshness', () => {
  test('a status is fresh up to and including the TTL, stale after', () => {
    const book = new PeerBook(1000);
    book.setStatus(A, status(5n), 10_000);
    assert.deepEqual(keys(book.fresh(10_000)), [A.toString()]);
    assert.deepEqual(keys(book.fresh(11_000)), [A.toString()], 'exactly TTL old is still fresh');
    assert.deepEqual(keys(book.stale(11_000)), []);
    assert.deepEqual(book.fresh(11_001), []);
    assert.deepEqual(keys(book.stale(11_001)), [A.toString()]);
    assert.equal(book.best(11_001), undefined, 'a stale status is not a sync candidate');
    assert.deepEqual(keys(book.all()), [A.toString()], 'stale records are kept until removed');
  });

  test('a new status refreshes the record in place and keeps latency and ping state', () => {
    const book = new PeerBook(1000);
    const first = book.setStatus(A, status(5n), 0);
    book.recordPing(A, 40);
    book.recordPing(A, undefined);
    const again = book.setStatus(A, status(9n), 5000);
    assert.equal(again, first, 'same record');
    assert.equal(again.status.totalWork, 9n);
    assert.equal(again.statusAt, 5000);
    assert.equal(again.rttMs, 40);
    assert.equal(again.pingFailures, 1);
    assert.deepEqual(keys(book.fresh(5500)), [A.toString()]);
    assert.equal(book.all().length, 1);
  });

  test('the default TTL is 30 s', () => {
    const book = new PeerBook();
    book.setStatus(A, status(1n), 0);
    assert.equal(book.fresh(30_000).length, 1);
    assert.equal(book.fresh(30_001).length, 0);
  });

  test('get and remove accept a PeerId or its string', () => {
    const book = new PeerBook();
    book.setStatus(A, status(1n), 0);
    book.setStatus(B, status(2n), 0);
    assert.equal(book.get(A)?.status.totalWork, 1n);
    assert.equal(book.get(B.toString())?.status.totalWork, 2n);
    assert.equal(book.get(C), undefined);
    book.remove(A.toString());
    assert.equal(book.get(A), undefined);
    book.remove(B);
    assert.deepEqual(book.all(), []);
    assert.equal(book.best(0), undefined);
  });
});

describe('best peer', () => {
  test('most total work wins, whatever the latency or height', () => {
    const book = new PeerBook();
    book.setStatus(A, status(100n, 50), 0);
    book.setStatus(B, status(101n, 40), 0);
    book.setStatus(C, status(99n, 60), 0);
    book.recordPing(A, 1);
    book.recordPing(B, 900);
    assert.equal(book.best(0)?.peer.toString(), B.toString());
  });

  test('work is compared as bigints (beyond 2^53)', () => {
    const book = new PeerBook();
    const big = 1n << 200n;
    book.setStatus(A, status(big + 1n, 1), 0);
    book.setStatus(B, status(big, 1), 0);
    book.recordPing(B, 1);
    assert.equal(book.best(0)?.peer.toString(), A.toString());
  });

  test('equal work: lowest latency wins; an unmeasured latency ranks last', () => {
    const book = new PeerBook();
    book.setStatus(A, status(100n), 0);
    book.setStatus(B, status(100n), 0);
    book.setStatus(C, status(100n), 0);
    book.recordPing(B, 30);
    book.recordPing(C, 10);
    assert.equal(book.best(0)?.peer.toString(), C.toString());
    book.recordPing(C, 200); // smoothed: 0.7 * 10 + 0.3 * 200 = 67 > 30
    assert.equal(book.best(0)?.peer.toString(), B.toString());
    book.remove(B);
    book.remove(C);
    book.setStatus(D, status(100n), 0);
    book.recordPing(D, 5000);
    assert.equal(book.best(0)?.peer.toString(), D.toString(), 'any measured latency beats none');
  });

  test('the exclusion set and staleness remove candidates', () => {
    const book = new PeerBook(1000);
    book.setStatus(A, status(300n), 0);
    book.setStatus(B, status(200n), 500);
    book.setStatus(C, status(100n), 900);
    assert.equal(book.best(900)?.peer.toString(), A.toString());
    assert.equal(book.best(900, new Set([A.toString()]))?.peer.toString(), B.toString());
    assert.equal(book.best(900, new Set([A.toString(), B.toString()]))?.peer.toString(), C.toString());
    assert.equal(book.best(900, new Set([A, B, C].map(String))), undefined);
    // At 1200 A's status is stale: B is best without excluding anything.
    assert.equal(book.best(1200)?.peer.toString(), B.toString());
    assert.equal(book.best(1600)?.peer.toString(), C.toString());
    assert.equal(book.best(1901), undefined);
  });
});

describe('latency and ping failures', () => {
  test('failures are counted consecutively and reset by a success', () => {
    const book = new PeerBook();
    book.setStatus(A, status(1n), 0);
    assert.equal(book.recordPing(A, undefined), 1);
    assert.equal(book.recordPing(A, undefined), 2);
    assert.equal(book.recordPing(A, undefined), 3);
    assert.equal(book.get(A)?.pingFailures, 3);
    assert.equal(book.get(A)?.rttMs, undefined, 'a failure is not a latency sample');
    assert.equal(book.recordPing(A, 20), 0);
    assert.equal(book.get(A)?.pingFailures, 0);
    assert.equal(book.recordPing(A, undefined), 1, 'counting starts over');
  });

  test('latency is smoothed (first sample as is, then 70/30)', () => {
    const book = new PeerBook();
    book.setStatus(A, status(1n), 0);
    book.recordPing(A, 100);
    assert.equal(book.get(A)?.rttMs, 100);
    book.recordPing(A, 200);
    assert.ok(Math.abs((book.get(A)?.rttMs ?? 0) - 130) < 1e-9);
    book.recordPing(A, undefined);
    assert.ok(Math.abs((book.get(A)?.rttMs ?? 0) - 130) < 1e-9, 'unchanged by a failure');
  });

  test('pings of unknown peers are ignored', () => {
    const book = new PeerBook();
    assert.equal(book.recordPing(A, undefined), 0);
    assert.equal(book.recordPing(A, 10), 0);
    assert.deepEqual(book.all(), []);
  });

  test('peers are independent', () => {
    const book = new PeerBook();
    book.setStatus(A, status(1n), 0);
    book.setStatus(B, status(1n), 0);
    book.recordPing(A, undefined);
    book.recordPing(A, undefined);
    book.recordPing(B, 15);
    assert.equal(book.get(A)?.pingFailures, 2);
    assert.equal(book.get(B)?.pingFailures, 0);
    assert.equal(book.get(B)?.rttMs, 15);
    assert.equal(book.get(A)?.rttMs, undefined);
  });
});

describe('disproved statuses', () => {
  test('a disproved status starts no sync until a fresh status arrives after the back-off', () => {
    const book = new PeerBook(30_000, { baseMs: 1_000 });
    book.setStatus(A, status(100n), 10_000);
    book.setStatus(B, status(50n), 10_000);
    assert.equal(book.best(10_000)?.peer.toString(), A.toString());
    const d = book.disprove(A, 10_100);
    assert.deepEqual(d, { count: 1, at: 10_100, until: 11_100 });
    assert.equal(book.best(10_100)?.peer.toString(), B.toString(), 'the lie no longer wins');
    assert.deepEqual(keys(book.syncable(10_100)), [B.toString()]);
    assert.deepEqual(keys(book.fresh(10_100)), keys([{ peer: A }, { peer: B }]), 'still a known, fresh peer');
    // The same status again within the back-off: still not believed, even once the back-off ends.
    book.setStatus(A, status(100n), 10_100);
    assert.equal(book.best(10_500)?.peer.toString(), B.toString());
    assert.equal(book.best(11_200)?.peer.toString(), B.toString(), 'a status from the disproof instant');
    // Sent again during the back-off (after the disproof): counts once the back-off is over.
    book.setStatus(A, status(100n), 10_600);
    assert.equal(book.best(11_000)?.peer.toString(), B.toString(), 'back-off not over');
    assert.equal(book.best(11_100)?.peer.toString(), A.toString());
    // Without a new status after the back-off, the old one stays disproved.
    book.disprove(A, 12_000);
    assert.equal(book.best(20_000)?.peer.toString(), B.toString(), 'no fresh status: still disproved');
  });

  test('the back-off doubles with every disproof, is capped, and a long quiet spell resets it', () => {
    const book = new PeerBook(30_000, { baseMs: 1_000, maxMs: 5_000, forgetMs: 60_000 });
    const backoffs = [0, 1, 2, 3, 4].map((i) => {
      const d = book.disprove(A, 1_000 * i);
      return [d.count, d.until - d.at];
    });
    assert.deepEqual(backoffs, [
      [1, 1_000],
      [2, 2_000],
      [3, 4_000],
      [4, 5_000],
      [5, 5_000],
    ]);
    assert.deepEqual(book.disprove(A, 4_000 + 60_001), { count: 1, at: 64_001, until: 65_001 });
  });

  test('disproofs outlive the connection: reconnecting does not clear them', () => {
    const book = new PeerBook(30_000, { baseMs: 1_000 });
    book.setStatus(A, status(100n), 0);
    book.disprove(A, 0);
    book.remove(A);
    book.setStatus(A, status(100n), 500);
    assert.equal(book.best(600), undefined, 'within the back-off');
    assert.equal(book.disprove(A, 2_000).count, 2);
  });

  test('the disproof list is bounded (oldest first out)', () => {
    const book = new PeerBook(30_000, { maxEntries: 2 });
    book.disprove(A, 0);
    book.disprove(B, 1);
    book.disprove(C, 2);
    assert.equal(book.disproof(A), undefined);
    assert.ok(book.disproof(B) && book.disproof(C));
    book.disprove(B, 3);
    book.disprove(D, 4);
    assert.equal(book.disproof(C), undefined, 'B was renewed, so C was the oldest');
  });
});
