import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { testNetwork } from '../testing/forge.ts';
import { bigIntToBytes } from './bytes.ts';
import {
  type DifficultyParams,
  expectedTarget,
  isRetargetHeight,
  retarget,
  retargetWindow,
} from './difficulty.ts';
import { DEFAULT_NETWORK } from './network-config.ts';
import { MAX_TARGET, meetsTarget, targetForWork, workForTarget } from './pow.ts';

const MAX = MAX_TARGET;

/** Configured networks: block time, interval, factor and target bounds all vary. */
const params: fc.Arbitrary<DifficultyParams> = fc
  .record({
    blockTimeMs: fc.integer({ min: 1, max: 3_600_000 }),
    retargetInterval: fc.integer({ min: 2, max: 2016 }),
    maxRetargetFactor: fc.oneof(fc.constant(4), fc.integer({ min: 1, max: 16 })),
    a: fc.bigInt({ min: 1n, max: MAX }),
    b: fc.bigInt({ min: 1n, max: MAX }),
  })
  .map(({ a, b, ...p }) => {
    const [minTarget, maxTarget] = a <= b ? [a, b] : [b, a];
    return { ...p, minTarget, maxTarget };
  });

/** A parameter set and a parent target inside its bounds. */
const paramsAndParent = params.chain((p) =>
  fc.record({
    p: fc.constant(p),
    parent: fc.oneof(
      fc.bigInt({ min: p.minTarget, max: p.maxTarget }),
      fc.constantFrom(p.minTarget, p.maxTarget),
    ),
  }),
);

const timestamp = fc.oneof(fc.maxSafeNat(), fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }));

const DEFAULT: DifficultyParams = DEFAULT_NETWORK;

describe('retarget (property)', () => {
  test('stays within the configured bounds and within [parent / factor, parent × factor]', () => {
    fc.assert(
      fc.property(
        paramsAndParent,
        timestamp,
        timestamp,
        fc.integer({ min: 1, max: 2016 }),
        ({ p, parent }, t0, t1, n) => {
          const next = retarget(parent, t0, t1, n, p);
          const f = BigInt(p.maxRetargetFactor);
          assert.ok(next >= p.minTarget && next <= p.maxTarget, 'configured bounds');
          assert.ok(next >= parent / f, `${next} < ${parent} / ${f}`);
          assert.ok(next <= parent * f, `${next} > ${parent} × ${f}`);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('with the default factor 4: never below floor(parent/4) nor above parent×4', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: DEFAULT.minTarget, max: DEFAULT.maxTarget }),
        timestamp,
        timestamp,
        (parent, t0, t1) => {
          const next = retarget(parent, t0, t1, DEFAULT.retargetInterval, DEFAULT);
          assert.ok(next >= parent / 4n && next <= parent * 4n);
          assert.ok(next >= DEFAULT.minTarget && next <= DEFAULT.maxTarget);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('blocks exactly on schedule keep the target', () => {
    fc.assert(
      fc.property(paramsAndParent, fc.integer({ min: 1, max: 2016 }), timestamp, ({ p, parent }, n, t0) => {
        fc.pre(t0 + n * p.blockTimeMs <= Number.MAX_SAFE_INTEGER);
        assert.equal(retarget(parent, t0, t0 + n * p.blockTimeMs, n, p), parent);
      }),
      { numRuns: 1000 },
    );
  });

  test('twice too slow doubles the target, half the time halves it (until clamped)', () => {
    fc.assert(
      fc.property(paramsAndParent, fc.integer({ min: 1, max: 2016 }), ({ p, parent }, n) => {
        fc.pre(p.maxRetargetFactor >= 2);
        const expected = n * p.blockTimeMs;
        const clamp = (t: bigint) => (t < p.minTarget ? p.minTarget : t > p.maxTarget ? p.maxTarget : t);
        assert.equal(retarget(parent, 1000, 1000 + 2 * expected, n, p), clamp(parent * 2n));
        if (expected % 2 === 0) {
          assert.equal(retarget(parent, 1000, 1000 + expected / 2, n, p), clamp(parent / 2n));
        }
      }),
      { numRuns: 1000 },
    );
  });

  test('the measured time is clamped: ten times too slow is only ×4, an instant window only ÷4', () => {
    const p: DifficultyParams = { ...DEFAULT, minTarget: 1n, maxTarget: MAX };
    const parent = 1n << 200n;
    const e = p.retargetInterval * p.blockTimeMs;
    assert.equal(retarget(parent, 0, 10 * e, p.retargetInterval, p), parent * 4n);
    assert.equal(retarget(parent, 0, 4 * e, p.retargetInterval, p), parent * 4n);
    assert.equal(retarget(parent, 0, 3 * e, p.retargetInterval, p), parent * 3n);
    assert.equal(retarget(parent, 5, 5, p.retargetInterval, p), parent / 4n);
    // A window that runs backwards (timestamps only need to beat the median) counts as instant.
    assert.equal(retarget(parent, 1_000_000, 0, p.retargetInterval, p), parent / 4n);
    assert.equal(retarget(parent, 0, e / 4, p.retargetInterval, p), parent / 4n);
    assert.equal(retarget(parent, 0, e / 2, p.retargetInterval, p), parent / 2n);
  });

  test('the configured bounds win over the factor', () => {
    const p: DifficultyParams = { ...DEFAULT, minTarget: 1000n, maxTarget: 5000n };
    const e = p.retargetInterval * p.blockTimeMs;
    assert.equal(retarget(4000n, 0, 4 * e, p.retargetInterval, p), 5000n);
    assert.equal(retarget(1500n, 0, 0, p.retargetInterval, p), 1000n);
    assert.equal(retarget(5000n, 0, 100 * e, p.retargetInterval, p), 5000n);
    assert.equal(retarget(1000n, 0, 0, p.retargetInterval, p), 1000n);
    // The easiest target of a full 256-bit range does not overflow into more than 256 bits.
    const wide: DifficultyParams = { ...DEFAULT, minTarget: 1n, maxTarget: MAX };
    assert.equal(retarget(MAX, 0, 100 * e, p.retargetInterval, wide), MAX);
    assert.equal(retarget(1n, 0, 0, p.retargetInterval, wide), 1n);
  });

  test('monotonic: a slower window never gives a harder target (property)', () => {
    fc.assert(
      fc.property(paramsAndParent, fc.maxSafeNat(), fc.maxSafeNat(), ({ p, parent }, x, y) => {
        const [fast, slow] = x <= y ? [x, y] : [y, x];
        const n = p.retargetInterval;
        assert.ok(retarget(parent, 0, fast, n, p) <= retarget(parent, 0, slow, n, p));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('retarget schedule', () => {
  const p = testNetwork({ minTarget: 1n, maxTarget: MAX >> 2n, initialTarget: MAX >> 20n });

  test('retargets only at positive multiples of the interval', () => {
    const heights = Array.from({ length: 41 }, (_, h) => h).filter((h) => isRetargetHeight(h, p));
    assert.deepStrictEqual(heights, [10, 20, 30, 40]);
  });

  test('off the interval the parent target is kept and no timestamp is looked at', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.bigInt({ min: 1n, max: MAX }), (h, parent) => {
        fc.pre(h % p.retargetInterval !== 0 || h === 0);
        const next = expectedTarget(h, parent, () => assert.fail('timestampAt called off the interval'), p);
        assert.equal(next, parent);
      }),
    );
  });

  test('the first window starts at genesis; later windows span exactly one interval each', () => {
    assert.deepStrictEqual(retargetWindow(10, p), { start: 0, end: 9 });
    assert.deepStrictEqual(retargetWindow(20, p), { start: 9, end: 19 });
    assert.deepStrictEqual(retargetWindow(30, p), { start: 19, end: 29 });
    // Consecutive windows share their boundary block, so no block interval goes unmeasured.
    for (let h = 20; h <= 200; h += 10) {
      assert.equal(retargetWindow(h, p).start, retargetWindow(h - 10, p).end);
      assert.equal(retargetWindow(h, p).end - retargetWindow(h, p).start, p.retargetInterval);
    }
    const asked: number[] = [];
    const first = expectedTarget(
      10,
      1n << 200n,
      (h) => {
        asked.push(h);
        return p.genesisTimestamp + h * p.blockTimeMs;
      },
      p,
    );
    assert.deepStrictEqual(asked, [0, 9]);
    // Nine intervals measured against nine expected: on schedule from genesis keeps the target.
    assert.equal(first, 1n << 200n);
  });

  test('a chain on schedule from genesis keeps its target at every retarget', () => {
    const ts = (h: number) => p.genesisTimestamp + h * p.blockTimeMs;
    let target = p.initialTarget;
    for (let h = 1; h <= 200; h++) target = expectedTarget(h, target, ts, p);
    assert.equal(target, p.initialTarget);
  });

  test('a chain twice too slow doubles its target at each retarget until the maximum', () => {
    const ts = (h: number) => p.genesisTimestamp + h * 2 * p.blockTimeMs;
    let target = p.initialTarget;
    const seen: bigint[] = [];
    for (let h = 1; h <= 300; h++) {
      const next = expectedTarget(h, target, ts, p);
      if (isRetargetHeight(h, p)) seen.push(next);
      else assert.equal(next, target);
      target = next;
    }
    assert.equal(seen[0], p.initialTarget * 2n);
    assert.equal(seen[1], p.initialTarget * 4n);
    assert.equal(target, p.maxTarget, 'clamped at the easiest allowed target');
    for (let i = 1; i < seen.length; i++) {
      const prev = seen[i - 1]!;
      assert.equal(seen[i], prev * 2n > p.maxTarget ? p.maxTarget : prev * 2n);
    }
  });

  test('a chain far too fast divides by four per retarget until the minimum', () => {
    const q = { ...p, minTarget: p.initialTarget >> 10n };
    const ts = (h: number) => p.genesisTimestamp + h; // one millisecond per block
    let target = q.initialTarget;
    const seen: bigint[] = [];
    for (let h = 1; h <= 100; h++) {
      target = expectedTarget(h, target, ts, q);
      if (isRetargetHeight(h, q)) seen.push(target);
    }
    assert.deepStrictEqual(
      seen.slice(0, 5),
      [1n, 2n, 3n, 4n, 5n].map((i) => q.initialTarget >> (2n * i)),
    );
    assert.equal(target, q.minTarget);
  });
});

describe('proof of work', () => {
  test('workForTarget at the extremes', () => {
    assert.equal(workForTarget(MAX), 1n);
    assert.equal(workForTarget(0n), 1n << 256n);
    assert.equal(workForTarget((1n << 255n) - 1n), 2n);
    assert.equal(workForTarget((1n << 240n) - 1n), 1n << 16n);
    assert.equal(targetForWork(1n), MAX);
    assert.equal(targetForWork(2n), (1n << 255n) - 1n);
    assert.equal(targetForWork(1n << 256n), 0n);
    assert.throws(() => targetForWork(0n), RangeError);
    assert.throws(() => targetForWork(-1n), RangeError);
  });

  test('targetForWork inverts workForTarget for work below 2^128 (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: (1n << 128n) - 1n }), (w) => {
        const t = targetForWork(w);
        assert.ok(t >= 0n && t <= MAX);
        assert.equal(workForTarget(t), w);
      }),
      { numRuns: 1000 },
    );
  });

  test('workForTarget then targetForWork gives back an equal-work target no harder than the original (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX }), (t) => {
        const w = workForTarget(t);
        const back = targetForWork(w);
        assert.ok(back >= t);
        assert.equal(workForTarget(back), w);
        // Easier by less than one part in w.
        assert.ok((back - t) * w <= back + 1n);
      }),
      { numRuns: 1000 },
    );
  });

  test('harder targets mean more work (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX }), fc.bigInt({ min: 0n, max: MAX }), (a, b) => {
        const [hard, easy] = a <= b ? [a, b] : [b, a];
        assert.ok(workForTarget(hard) >= workForTarget(easy));
      }),
      { numRuns: 1000 },
    );
  });

  test('meetsTarget: a hash equal to the target meets it, one above does not (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX - 1n }), (t) => {
        const at = bigIntToBytes(t, 32);
        const above = bigIntToBytes(t + 1n, 32);
        assert.equal(meetsTarget(at, t), true);
        assert.equal(meetsTarget(above, t), false);
        assert.equal(meetsTarget(at, t + 1n), true);
        if (t > 0n) assert.equal(meetsTarget(at, t - 1n), false);
      }),
      { numRuns: 1000 },
    );
    // The hash is read big-endian: the first byte is the most significant.
    const hiByte = new Uint8Array(32);
    hiByte[0] = 1;
    const loByte = new Uint8Array(32);
    loByte[31] = 0xff;
    assert.equal(meetsTarget(hiByte, 1n << 248n), true);
    assert.equal(meetsTarget(hiByte, (1n << 248n) - 1n), false);
    assert.equal(meetsTarget(loByte, 0xffn), true);
    assert.equal(meetsTarget(loByte, 0xfen), false);
    assert.equal(meetsTarget(new Uint8Array(32).fill(0xff), MAX), true);
    assert.equal(meetsTarget(new Uint8Array(32), 0n), true);
  });

  test('the default network targets are ordered and the test network is easy', () => {
    assert.ok(DEFAULT_NETWORK.minTarget <= DEFAULT_NETWORK.initialTarget);
    assert.ok(DEFAULT_NETWORK.initialTarget <= DEFAULT_NETWORK.maxTarget);
    assert.equal(workForTarget(DEFAULT_NETWORK.initialTarget), 1n << 16n);
    assert.equal(workForTarget(testNetwork().initialTarget), 4n);
  });
});
