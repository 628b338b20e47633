/**
 * The headers-first pre-sync state machine, driven by hand with forged headers: what proves a
 * fork's work, what fails it (and with which code), how far it reads, and what it keeps.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { blockHashOf } from '../chain/block-codec.ts';
import { toHex } from '../chain/bytes.ts';
import { MAX_TARGET, workForTarget } from '../chain/pow.ts';
import type { SealedBlock } from '../chain/types.ts';
import type { SealedHeader } from '../chain/validation.ts';
import {
  forgeBlock,
  forgeChain,
  scratchNode,
  TEST_NOW,
  testChain,
  testKey,
  unmineHeader,
} from '../testing/forge.ts';
import { HeaderPresync, type PresyncOptions, presyncHeaders } from './header-presync.ts';

const t = testChain();
const { chain } = t;
const genesis = chain.tree.genesis;
/** Every test-network block carries the same work (the easiest target, never retargeted). */
const W = workForTarget(chain.config.maxTarget);
const hdr = (b: SealedBlock): SealedHeader => ({ header: b.header, hash: b.hash, hashHex: b.hashHex });

/** A 1,000-block fork from genesis at the minimum difficulty. */
let FORK: SealedHeader[] = [];
before(() => {
  FORK = forgeChain(chain, genesis, 1_000, { miner: testKey(77) }).map(hdr);
});

const presync = (o: Partial<PresyncOptions> = {}) =>
  new HeaderPresync({
    config: chain.config,
    chainId: chain.chainId,
    fork: { ...chain.tree.parentContext(genesis), chainWork: genesis.chainWork },
    threshold: genesis.chainWork + 150n * W,
    claimedHeight: 1_000,
    anchorEvery: 128,
    now: () => TEST_NOW,
    ...o,
  });

/** Feeds `p` the answers `serve(start, count)` gives, as the runner would, until it settles. */
function drive(p: HeaderPresync, serve: (start: number, count: number) => SealedHeader[] = slice) {
  const asked: { startHeight: number; count: number }[] = [];
  for (let q = p.nextRequest(); q; q = p.nextRequest()) {
    asked.push(q);
    p.accept(serve(q.startHeight, q.count));
  }
  return asked;
}
const slice = (start: number, count: number) => FORK.slice(start - 1, start - 1 + count);

/** The fork with header `height` replaced by `b` (forged on the real parent). */
const withAt = (height: number, make: (parent: SealedHeader) => SealedHeader) => {
  const copy = [...FORK];
  copy[height - 1] = make(FORK[height - 2] ?? hdr(chain.genesis));
  return (start: number, count: number) => copy.slice(start - 1, start - 1 + count);
};
/** A scratch tree node for a forked header, to forge its replacement child on. */
const nodeOf = (h: SealedHeader, parentHeight: number) => {
  let parent = genesis;
  for (let i = 1; i <= parentHeight; i++) {
    const f = FORK[i - 1]!;
    parent = scratchNode({ ...f, entries: [] } as unknown as SealedBlock, parent);
  }
  return scratchNode({ ...h, entries: [] } as unknown as SealedBlock, parent);
};
const childOf = (height: number, header: Partial<SealedBlock['header']>, mine = true) => {
  const parent = height === 1 ? genesis : nodeOf(FORK[height - 2]!, height - 2);
  return hdr(forgeBlock(chain, parent, { miner: testKey(77), header, mine }));
};

describe('a fork whose headers prove the work', () => {
  test('is proven at the first header that reaches the threshold, and reads no further', () => {
    const p = presync();
    const asked = drive(p);
    assert.equal(p.status, 'Proven');
    assert.equal(p.height, 150);
    assert.equal(p.headers, 150);
    assert.equal(p.provenWork, genesis.chainWork + 150n * W);
    assert.deepEqual(asked, [{ startHeight: 1, count: 150 }], 'asked only what the threshold could need');
  });

  test('keeps one anchor per batch end and the last header, nothing else', () => {
    const p = presync({ threshold: genesis.chainWork + 600n * W, headersPerRequest: 100 });
    const asked = drive(p);
    assert.equal(p.status, 'Proven');
    assert.equal(asked.length, 6, 'six answers of 100');
    assert.deepEqual([...p.anchors.keys()], [128, 256, 384, 512, 600]);
    for (const [h, hash] of p.anchors) assert.equal(toHex(hash), FORK[h - 1]!.hashHex);
  });

  test('a fork point already at the threshold needs no headers', () => {
    const p = presync({ threshold: genesis.chainWork });
    assert.equal(p.status, 'Proven');
    assert.equal(p.nextRequest(), undefined);
  });

  test('the runner asks the peer and yields the same result', async () => {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
    const calls: string[] = [];
    const p = presync({ headersPerRequest: 64 });
    const status = await presyncHeaders(p, peer, async (who, start, count) => {
      calls.push(`${who.equals(peer)}:${start}+${count}`);
      return slice(start, count);
    });
    assert.equal(status, 'Proven');
    assert.deepEqual(calls, ['true:1+64', 'true:65+64', 'true:129+22']);
  });
});

describe('a fork that does not', () => {
  test('1,000 minimum-difficulty headers short of the threshold: work-unproven at the claimed head', () => {
    const p = presync({ threshold: genesis.chainWork + 1_200n * W });
    const asked = drive(p);
    assert.equal(p.status, 'Failed');
    assert.equal(p.failure?.code, 'work-unproven');
    assert.equal(p.headers, 1_000);
    assert.deepEqual(
      asked.map((q) => q.count),
      [512, 488],
      'never asked above the claimed head',
    );
    assert.equal(p.anchors.size, 0, 'a failed pre-sync keeps nothing');
  });

  test('a short answer below the claimed head', () => {
    const p = presync();
    drive(p, (start, count) => slice(start, Math.min(count, 40)));
    assert.equal(p.failure?.code, 'short');
    assert.equal(p.headers, 40);
  });

  test('an empty answer', () => {
    const p = presync();
    drive(p, () => []);
    assert.equal(p.failure?.code, 'short');
  });

  test('more headers than asked', () => {
    const p = presync({ headersPerRequest: 10 });
    drive(p, (start) => slice(start, 11));
    assert.equal(p.failure?.code, 'unlinked');
  });

  test('a header that does not link to the one before', () => {
    const other = forgeChain(chain, genesis, 60, { miner: testKey(78) }).map(hdr);
    const p = presync();
    drive(p, (start, count) =>
      [...FORK.slice(0, 49), ...other.slice(49)].slice(start - 1, start - 1 + count),
    );
    assert.equal(p.failure?.code, 'unlinked');
    assert.equal(p.headers, 49);
  });

  test('a header that skips a height', () => {
    const p = presync();
    drive(p, (start, count) => [...FORK.slice(0, 9), ...FORK.slice(10)].slice(start - 1, start - 1 + count));
    assert.equal(p.failure?.code, 'unlinked');
  });

  test('the peer stops answering', async () => {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
    const p = presync();
    const status = await presyncHeaders(p, peer, async () => {
      throw new Error('timeout');
    });
    assert.equal(status, 'Failed');
    assert.equal(p.failure?.code, 'unserved');
  });

  test('answers trickled just inside the request deadline: too-slow at the floor', () => {
    let now = 0;
    const p = presync({
      threshold: genesis.chainWork + 900n * W,
      headersPerRequest: 100,
      progress: { graceMs: 10_000, minBytesPerSec: 128 * 1024 },
      clock: () => now,
    });
    // 100 headers (18 KB) every 9.9 s: the first is inside the 10 s grace, the second is not.
    const asked = drive(p, (start, count) => {
      now += 9_900;
      return slice(start, count);
    });
    assert.equal(asked.length, 2);
    assert.equal(p.status, 'Failed');
    assert.equal(p.failure?.code, 'too-slow');
    assert.match(p.failure?.reason ?? '', /36400 bytes in 19800 ms, below 131072 B\/s after 10000 ms/);
    assert.equal(p.anchors.size, 0, 'nothing kept');
  });

  test('the same headers at a pace above the floor are proven', () => {
    let now = 0;
    const p = presync({
      headersPerRequest: 100,
      progress: { graceMs: 10_000, minBytesPerSec: 128 * 1024 },
      clock: () => now,
    });
    drive(p, (start, count) => {
      now += 100;
      return slice(start, count);
    });
    assert.equal(p.status, 'Proven');
  });

  test('the hard cap is reached first: too-long, not a lie', () => {
    const p = presync({ maxHeaders: 100 });
    assert.equal(p.maxHeight, 100);
    drive(p);
    assert.equal(p.failure?.code, 'too-long');
    assert.equal(p.headers, 100);
  });

  test('the claimed head below the fork point fails at once', () => {
    const p = presync({ claimedHeight: 0 });
    assert.equal(p.failure?.code, 'work-unproven');
    assert.equal(p.nextRequest(), undefined);
  });
});

describe('every header rule applies', () => {
  const cases: [string, () => (start: number, count: number) => SealedHeader[], string][] = [
    [
      'a target easier than the network allows (checked before the proof of work)',
      () => withAt(20, () => childOf(20, { target: MAX_TARGET }, false)),
      'target-out-of-range',
    ],
    [
      'a hash that does not meet its target',
      () =>
        withAt(20, () => {
          const b = childOf(20, {});
          const header = unmineHeader(b.header);
          const hash = blockHashOf(header);
          return { header, hash, hashHex: toHex(hash) };
        }),
      'insufficient-work',
    ],
    [
      'a target the retarget rule does not give (height 20 is a retarget height)',
      () => withAt(20, () => childOf(20, { target: chain.config.maxTarget >> 1n })),
      'bad-difficulty',
    ],
    [
      'a timestamp not after the median of the last eleven',
      () => withAt(20, () => childOf(20, { timestamp: FORK[5]!.header.timestamp })),
      'timestamp-too-early',
    ],
    [
      'a timestamp ahead of our clock',
      () => withAt(20, () => childOf(20, { timestamp: TEST_NOW + 10 * 60_000 })),
      'timestamp-in-future',
    ],
    [
      'another network’s chain id',
      () => withAt(20, () => childOf(20, { chainId: new Uint8Array(32).fill(7) })),
      'wrong-chain-id',
    ],
  ];
  for (const [name, serve, code] of cases) {
    test(`${name}: bad-header ${code}`, () => {
      const p = presync();
      drive(p, serve());
      assert.equal(p.status, 'Failed');
      assert.equal(p.failure?.code, 'bad-header', p.failure?.reason);
      assert.equal(p.failure?.error?.code, code);
      assert.equal(p.headers, 19, 'the headers before it were accepted');
    });
  }
});
