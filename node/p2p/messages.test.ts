/**
 * The request/response payload encodings: round trips, exact byte layouts, and a typed
 * DecodeError (never a RangeError or a silently wrong value) for every malformed input.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { DecodeError, type DecodeErrorCode } from '../chain/codec/errors.ts';
import { CAPABILITIES, ROLES } from '../identity/identity.ts';
import {
  type BlockRef,
  decodeBlockRef,
  decodeHashes,
  decodeHeights,
  decodeRangeRequest,
  decodeStatus,
  encodeBlockRef,
  encodeHashes,
  encodeHeights,
  encodeRangeRequest,
  encodeStatus,
  MAX_BLOCKS_PER_REQUEST,
  MAX_HASHES_PER_REQUEST,
  type Status,
} from './messages.ts';

const hash = (n: number) => new Uint8Array(32).fill(n);

function expectDecodeError(fn: () => unknown, code: DecodeErrorCode, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DecodeError, `expected a DecodeError, got ${(err as Error)?.name}: ${err}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

const concat = (...parts: (Uint8Array | number[])[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

const STATUS: Status = {
  chainId: hash(1),
  genesisHash: hash(2),
  headHash: hash(3),
  headHeight: 123_456,
  totalWork: (1n << 200n) + 12345n,
  role: 'hub',
  capabilities: ['mine', 'relay'],
};

describe('status', () => {
  test('round trip, with the exact layout', () => {
    const bytes = encodeStatus(STATUS);
    assert.equal(bytes.length, 1 + 32 * 3 + 4 + 32 + 1 + 1);
    assert.equal(bytes[0], 1, 'version');
    assert.deepEqual(bytes.subarray(1, 33), hash(1));
    assert.deepEqual(bytes.subarray(97, 101), Uint8Array.of(0x00, 0x01, 0xe2, 0x40), 'height, big-endian');
    assert.equal(bytes[133], ROLES.indexOf('hub'));
    assert.equal(bytes[134], 0b0101, 'mine = bit 0, relay = bit 2');
    assert.deepEqual(decodeStatus(bytes), STATUS);
  });

  test('every role and every subset of capabilities round-trips', () => {
    for (const role of ROLES) {
      for (let mask = 0; mask < 1 << CAPABILITIES.length; mask++) {
        const capabilities = CAPABILITIES.filter((_, i) => mask & (1 << i));
        const s: Status = { ...STATUS, role, capabilities };
        const back = decodeStatus(encodeStatus(s));
        assert.equal(back.role, role);
        assert.deepEqual(back.capabilities, capabilities);
      }
    }
  });

  test('capabilities come back in canonical order, duplicates once', () => {
    const s: Status = { ...STATUS, capabilities: ['archive', 'mine', 'archive'] };
    assert.deepEqual(decodeStatus(encodeStatus(s)).capabilities, ['mine', 'archive']);
  });

  test('extreme values round-trip: height 2^32-1, zero work, 256-bit work', () => {
    for (const [headHeight, totalWork] of [
      [0xffff_ffff, 0n],
      [0, (1n << 256n) - 1n],
    ] as const) {
      const back = decodeStatus(encodeStatus({ ...STATUS, headHeight, totalWork }));
      assert.equal(back.headHeight, headHeight);
      assert.equal(back.totalWork, totalWork);
    }
  });

  test('decoded hashes are copies, not views of the input', () => {
    const bytes = encodeStatus(STATUS);
    const s = decodeStatus(bytes);
    bytes.fill(0xee);
    assert.deepEqual(s.chainId, hash(1));
    assert.deepEqual(s.headHash, hash(3));
  });

  test('values that cannot be encoded are refused by the encoder', () => {
    assert.throws(() => encodeStatus({ ...STATUS, headHeight: 2 ** 32 }), RangeError);
    assert.throws(() => encodeStatus({ ...STATUS, headHeight: -1 }), RangeError);
    assert.throws(() => encodeStatus({ ...STATUS, totalWork: 1n << 256n }), RangeError);
    assert.throws(() => encodeStatus({ ...STATUS, headHash: new Uint8Array(31) }), RangeError);
    assert.throws(() => encodeStatus({ ...STATUS, role: 'king' as Status['role'] }), RangeError);
    assert.throws(
      () => encodeStatus({ ...STATUS, capabilities: ['fly' as Status['capabilities'][number]] }),
      RangeError,
    );
  });

  test('malformed statuses are typed decode errors', () => {
    const good = encodeStatus(STATUS);
    const withByte = (i: number, v: number) => {
      const b = good.slice();
      b[i] = v;
      return b;
    };
    expectDecodeError(() => decodeStatus(new Uint8Array()), 'truncated');
    expectDecodeError(() => decodeStatus(withByte(0, 2)), 'unsupported-version', /status version 2/);
    expectDecodeError(() => decodeStatus(withByte(0, 0)), 'unsupported-version');
    expectDecodeError(() => decodeStatus(good.subarray(0, good.length - 1)), 'truncated', /capabilities/);
    expectDecodeError(() => decodeStatus(good.subarray(0, 50)), 'truncated', /genesis/);
    expectDecodeError(() => decodeStatus(concat(good, [0])), 'trailing-bytes');
    expectDecodeError(() => decodeStatus(withByte(133, ROLES.length)), 'invalid-value', /role/);
    expectDecodeError(() => decodeStatus(withByte(133, 255)), 'invalid-value', /role/);
    expectDecodeError(() => decodeStatus(withByte(134, 1 << CAPABILITIES.length)), 'invalid-value', /capab/);
    expectDecodeError(() => decodeStatus(withByte(134, 0x80)), 'invalid-value', /capab/);
    // The largest valid capability mask is fine.
    assert.equal(
      decodeStatus(withByte(134, (1 << CAPABILITIES.length) - 1)).capabilities.length,
      CAPABILITIES.length,
    );
  });

  test('random bytes never escape as anything but a DecodeError', () => {
    for (let i = 0; i < 2000; i++) {
      const b = randomBytes(i % 2 ? 135 : i % 200);
      if (i % 3 === 0) b[0] = 1;
      try {
        decodeStatus(b);
      } catch (err) {
        assert.ok(err instanceof DecodeError, `${(err as Error).name}: ${(err as Error).message}`);
      }
    }
  });
});

describe('range request', () => {
  test('round trip with the exact layout; count bounds 1..128 inclusive', () => {
    assert.deepEqual(
      encodeRangeRequest({ startHeight: 0x01020304, count: 5 }),
      Uint8Array.of(1, 1, 2, 3, 4, 0, 0, 0, 5),
    );
    for (const q of [
      { startHeight: 0, count: 1 },
      { startHeight: 1, count: MAX_BLOCKS_PER_REQUEST },
      { startHeight: 0xffff_ffff, count: 64 },
    ]) {
      assert.deepEqual(decodeRangeRequest(encodeRangeRequest(q)), q);
    }
  });

  test('counts outside 1..128 are refused', () => {
    for (const count of [0, MAX_BLOCKS_PER_REQUEST + 1, 1000, 0xffff_ffff]) {
      expectDecodeError(
        () => decodeRangeRequest(encodeRangeRequest({ startHeight: 1, count })),
        'invalid-value',
        /outside 1\.\.128/,
      );
    }
  });

  test('truncated, trailing, wrong version', () => {
    const good = encodeRangeRequest({ startHeight: 7, count: 3 });
    expectDecodeError(() => decodeRangeRequest(new Uint8Array()), 'truncated');
    expectDecodeError(() => decodeRangeRequest(good.subarray(0, 8)), 'truncated');
    expectDecodeError(() => decodeRangeRequest(good.subarray(0, 3)), 'truncated');
    expectDecodeError(() => decodeRangeRequest(concat(good, [0])), 'trailing-bytes');
    expectDecodeError(() => decodeRangeRequest(concat([2], good.subarray(1))), 'unsupported-version');
  });

  test('the encoder refuses heights and counts outside u32', () => {
    assert.throws(() => encodeRangeRequest({ startHeight: -1, count: 1 }), RangeError);
    assert.throws(() => encodeRangeRequest({ startHeight: 1, count: 2 ** 32 }), RangeError);
    assert.throws(() => encodeRangeRequest({ startHeight: 1.5, count: 1 }), RangeError);
  });
});

describe('hash lists', () => {
  test('round trip for 0, 1 and 64 hashes, with the exact layout', () => {
    assert.deepEqual(encodeHashes([]), Uint8Array.of(1, 0));
    const one = encodeHashes([hash(9)]);
    assert.deepEqual(one, concat([1, 1], hash(9)));
    for (const n of [0, 1, 2, MAX_HASHES_PER_REQUEST]) {
      const hashes = Array.from({ length: n }, (_, i) => hash(i));
      const bytes = encodeHashes(hashes);
      assert.equal(bytes.length, 2 + 32 * n, 'a count below 128 is one varint byte');
      assert.deepEqual(decodeHashes(bytes), hashes);
    }
  });

  test('more than 64 hashes are refused before reading them; a custom bound applies', () => {
    const hashes = Array.from({ length: MAX_HASHES_PER_REQUEST + 1 }, (_, i) => hash(i));
    const bytes = encodeHashes(hashes);
    expectDecodeError(() => decodeHashes(bytes), 'oversized', /65 exceeds 64/);
    assert.equal(decodeHashes(bytes, 65).length, 65);
    expectDecodeError(() => decodeHashes(encodeHashes([hash(1), hash(2), hash(3)]), 2), 'oversized');
    // A huge claimed count with no hashes behind it: refused by the bound, not by running out.
    expectDecodeError(() => decodeHashes(Uint8Array.of(1, 0xff, 0xff, 0x03)), 'oversized');
  });

  test('malformed hash lists', () => {
    const good = encodeHashes([hash(1), hash(2)]);
    expectDecodeError(() => decodeHashes(new Uint8Array()), 'truncated');
    expectDecodeError(() => decodeHashes(Uint8Array.of(1)), 'truncated', /hash count/);
    expectDecodeError(() => decodeHashes(good.subarray(0, good.length - 1)), 'truncated', /hash/);
    expectDecodeError(() => decodeHashes(concat(good, [7])), 'trailing-bytes');
    expectDecodeError(() => decodeHashes(concat([0], good.subarray(1))), 'unsupported-version');
    // Count 2 as a two-byte varint with a redundant zero: two encodings of one list are refused.
    expectDecodeError(() => decodeHashes(concat([1, 0x82, 0x00], hash(1), hash(2))), 'non-canonical');
    // A count that says 1 followed by two hashes.
    expectDecodeError(() => decodeHashes(concat([1, 1], hash(1), hash(2))), 'trailing-bytes');
  });

  test('decoded hashes are copies', () => {
    const bytes = encodeHashes([hash(5)]);
    const [h] = decodeHashes(bytes);
    bytes.fill(0);
    assert.deepEqual(h, hash(5));
  });

  test('the encoder refuses hashes that are not 32 bytes', () => {
    assert.throws(() => encodeHashes([new Uint8Array(33)]), RangeError);
    assert.throws(() => encodeHashes([hash(1), new Uint8Array(0)]), RangeError);
  });
});

describe('height lists', () => {
  test('round trip with the exact layout, up to 64 heights', () => {
    assert.deepEqual(encodeHeights([1, 0x0100]), Uint8Array.of(1, 2, 0, 0, 0, 1, 0, 0, 1, 0));
    for (const heights of [[], [0], [512, 1024, 0xffff_ffff], Array.from({ length: 64 }, (_, i) => i * 7)]) {
      assert.deepEqual(decodeHeights(encodeHeights(heights)), heights);
    }
  });

  test('more than 64 heights, truncation, trailing bytes, wrong version', () => {
    expectDecodeError(
      () => decodeHeights(encodeHeights(Array.from({ length: 65 }, (_, i) => i))),
      'oversized',
      /height count 65/,
    );
    const good = encodeHeights([10, 20]);
    expectDecodeError(() => decodeHeights(new Uint8Array()), 'truncated');
    expectDecodeError(() => decodeHeights(good.subarray(0, good.length - 2)), 'truncated', /height/);
    expectDecodeError(() => decodeHeights(concat(good, [0])), 'trailing-bytes');
    expectDecodeError(() => decodeHeights(concat([9], good.subarray(1))), 'unsupported-version');
    expectDecodeError(() => decodeHeights(Uint8Array.of(1, 0x80, 0x00)), 'non-canonical');
  });

  test('the encoder refuses heights outside u32', () => {
    assert.throws(() => encodeHeights([2 ** 32]), RangeError);
    assert.throws(() => encodeHeights([-1]), RangeError);
  });
});

describe('block refs', () => {
  test('round trip with the exact layout', () => {
    const ref: BlockRef = { height: 0x00a0b0c0, hash: hash(0xab) };
    const bytes = encodeBlockRef(ref);
    assert.deepEqual(bytes, concat([1, 0x00, 0xa0, 0xb0, 0xc0], hash(0xab)));
    assert.deepEqual(decodeBlockRef(bytes), ref);
    assert.deepEqual(decodeBlockRef(encodeBlockRef({ height: 0, hash: hash(0) })), {
      height: 0,
      hash: hash(0),
    });
  });

  test('malformed block refs', () => {
    const good = encodeBlockRef({ height: 3, hash: hash(3) });
    expectDecodeError(() => decodeBlockRef(new Uint8Array()), 'truncated');
    expectDecodeError(() => decodeBlockRef(good.subarray(0, 36)), 'truncated', /hash/);
    expectDecodeError(() => decodeBlockRef(good.subarray(0, 3)), 'truncated', /height/);
    expectDecodeError(() => decodeBlockRef(concat(good, [0])), 'trailing-bytes');
    expectDecodeError(() => decodeBlockRef(concat([2], good.subarray(1))), 'unsupported-version');
    assert.throws(() => encodeBlockRef({ height: 1, hash: new Uint8Array(20) }), RangeError);
  });

  test('decoded hash is a copy', () => {
    const bytes = encodeBlockRef({ height: 1, hash: hash(1) });
    const ref = decodeBlockRef(bytes);
    bytes.fill(9);
    assert.deepEqual(ref.hash, hash(1));
  });
});

test('every decoder turns random input into values or DecodeErrors, never other exceptions', () => {
  const decoders = [decodeStatus, decodeRangeRequest, decodeHashes, decodeHeights, decodeBlockRef];
  for (let i = 0; i < 5000; i++) {
    const b = randomBytes(i % 300);
    if (i % 2 === 0 && b.length) b[0] = 1;
    for (const decode of decoders) {
      try {
        decode(b);
      } catch (err) {
        assert.ok(
          err instanceof DecodeError,
          `${decode.name}: ${(err as Error).name}: ${(err as Error).message}`,
        );
      }
    }
  }
});
