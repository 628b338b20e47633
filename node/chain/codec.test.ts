/**
 * The canonical binary encoding of entries, headers and blocks: property round trips, a
 * byte-exact layout check, and one test per typed decode error.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { testNetwork } from '../testing/forge.ts';
import {
  blockHashOf,
  decodeBlock,
  decodeHeader,
  encodeHeader,
  HEADER_BYTES,
  sealBlock,
} from './block-codec.ts';
import { bigIntToBytes, toHex } from './bytes.ts';
import { DecodeError, type DecodeErrorCode } from './codec/errors.ts';
import { Reader } from './codec/reader.ts';
import { Writer } from './codec/writer.ts';
import { decodeEntry, encodeUnsignedEntry, entryIdOf, sealEntry } from './entry-codec.ts';
import { genesisBlock } from './genesis.ts';
import { sha256 } from './hash.ts';
import {
  type BlockHeader,
  type EntryPayload,
  FORMAT_VERSION,
  type KeyValue,
  LIMITS,
  type SealedBlock,
  type SealedEntry,
} from './types.ts';

// ---------------------------------------------------------------------------------------------
// Arbitraries

const utf8 = new TextEncoder();
const byteLength = (s: string) => utf8.encode(s).length;

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const nonZero32 = bytes(32).filter((b) => b.some((x) => x !== 0));
/** Well-formed strings over the whole code point range, bounded in UTF-8 bytes. */
const text = (maxBytes: number, maxLength = maxBytes) =>
  fc.string({ unit: 'binary', maxLength, size: 'max' }).filter((s) => byteLength(s) <= maxBytes);
/** Finite doubles without -0 (the encoder normalises -0 to +0, see its own test). */
const finite = fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => (v === 0 ? 0 : v));

/** Plain objects (fc.record makes null-prototype ones, which deepStrictEqual tells apart). */
const record = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }) =>
  fc.record(model, { noNullPrototype: true });

const byKey = <T extends readonly [string, unknown]>(a: T, b: T) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

const keyValues = (minLength: number, maxLength: number) =>
  fc
    .uniqueArray(fc.tuple(text(LIMITS.keyBytes, 24), text(LIMITS.valueBytes, 60)), {
      minLength,
      maxLength,
      size: 'max',
      selector: ([k]) => k,
    })
    .map((pairs) => pairs.map(([k, v]): KeyValue => [k, v]).sort(byKey));

const knowledgePayload: fc.Arbitrary<EntryPayload> = record({
  kind: fc.constant('knowledge' as const),
  content: fc.oneof(
    { weight: 4, arbitrary: text(LIMITS.contentBytes, 300) },
    { weight: 1, arbitrary: fc.nat({ max: LIMITS.contentBytes }).map((n) => 'x'.repeat(n)) },
  ),
  metadata: keyValues(0, LIMITS.metadataPairs),
});

const modelPayload: fc.Arbitrary<EntryPayload> = record({
  kind: fc.constant('model' as const),
  modelHash: nonZero32,
  parentHash: fc.option(nonZero32, { nil: null }),
  round: fc.integer({ min: 0, max: 0xffff_ffff }),
  metrics: fc
    .uniqueArray(fc.tuple(text(LIMITS.keyBytes, 24), finite), {
      maxLength: LIMITS.metrics,
      size: 'max',
      selector: ([name]) => name,
    })
    .map((m) => m.map(([n, v]): readonly [string, number] => [n, v]).sort(byKey)),
  epsilon: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }).map((v) => (v === 0 ? 0 : v)),
});

const configPayload: fc.Arbitrary<EntryPayload> = record({
  kind: fc.constant('config' as const),
  changes: keyValues(1, LIMITS.configChanges),
});

const payload = fc.oneof(knowledgePayload, modelPayload, configPayload);

const entry: fc.Arbitrary<SealedEntry> = record({
  author: bytes(32),
  timestamp: fc.maxSafeNat(),
  payload,
  signature: bytes(64),
}).map((e) => sealEntry({ version: FORMAT_VERSION, ...e }));

const header: fc.Arbitrary<BlockHeader> = record({
  version: fc.constant(FORMAT_VERSION),
  chainId: bytes(32),
  height: fc.integer({ min: 0, max: 0xffff_ffff }),
  prevHash: bytes(32),
  merkleRoot: bytes(32),
  timestamp: fc.maxSafeNat(),
  target: fc.oneof(
    fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }),
    fc.constantFrom(0n, 1n, (1n << 255n) - 1n, 1n << 255n, (1n << 256n) - 1n),
  ),
  miner: bytes(32),
  nonce: fc.maxSafeNat(),
});

const block: fc.Arbitrary<SealedBlock> = record({
  header,
  signature: bytes(64),
  entries: fc.array(entry, { maxLength: 20, size: 'max' }),
}).map((b) => sealBlock(b));

// ---------------------------------------------------------------------------------------------
// Independent byte builders (not the Writer under test), for the layout check and malformed inputs

type Part = number | readonly number[] | Uint8Array;
const raw = (...parts: Part[]): Uint8Array =>
  new Uint8Array(parts.flatMap((p) => (typeof p === 'number' ? [p] : [...p])));
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}
const u32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
function u64(n: bigint): number[] {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n);
  return [...b];
}
function f64(x: number): number[] {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, x);
  return [...b];
}
const lenPrefixed = (b: Uint8Array | readonly number[]) => [...varint(b.length), ...b];
const str = (s: string) => lenPrefixed(utf8.encode(s));

const AUTHOR = new Uint8Array(32).fill(0xaa);
const SIG = new Uint8Array(64).fill(0x5c);
const TS = 1_700_000_000_123;

const knowledgeBody = (content: Part, metadata: Part[] = [0]) => raw(1, content, ...metadata);
/** A whole entry encoding from its parts; every default is valid. */
function entryBytes(
  body: Uint8Array,
  o: { tag?: number; version?: number; timestamp?: Part; signature?: Part } = {},
): Uint8Array {
  return raw(o.tag ?? 1, o.version ?? 1, AUTHOR, o.timestamp ?? u64(BigInt(TS)), body, o.signature ?? SIG);
}
/** A model payload; metrics as (name, value) with the value given as raw f64 bits. */
const modelBody = (metrics: [string, number][], epsilon: Part = f64(0.5), count = metrics.length) =>
  raw(
    2,
    new Uint8Array(32).fill(7),
    new Uint8Array(32),
    u32(3),
    varint(count),
    ...metrics.flatMap(([name, value]) => [...str(name), ...f64(value)]),
    epsilon,
  );

const HEADER_FIELDS = {
  chainId: new Uint8Array(32).fill(1),
  height: 7,
  prevHash: new Uint8Array(32).fill(2),
  merkleRoot: new Uint8Array(32).fill(3),
  timestamp: 1_700_000_000_000,
  target: (1n << 240n) + 12345n,
  miner: new Uint8Array(32).fill(4),
  nonce: 987_654_321,
};
function headerBytes(o: { tag?: number; version?: number; timestamp?: Part; nonce?: Part } = {}) {
  const h = HEADER_FIELDS;
  return raw(
    o.tag ?? 2,
    o.version ?? 1,
    h.chainId,
    u32(h.height),
    h.prevHash,
    h.merkleRoot,
    o.timestamp ?? u64(BigInt(h.timestamp)),
    bigIntToBytes(h.target, 32),
    h.miner,
    o.nonce ?? u64(BigInt(h.nonce)),
  );
}
function blockBytes(
  entries: Part[],
  o: { tag?: number; version?: number; header?: Uint8Array; count?: Part } = {},
): Uint8Array {
  return raw(
    o.tag ?? 3,
    o.version ?? 1,
    o.header ?? headerBytes(),
    SIG,
    o.count ?? varint(entries.length),
    ...entries,
  );
}

function rejects(fn: () => unknown, code: DecodeErrorCode, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DecodeError, `expected a DecodeError, got ${String(err)}`);
    assert.equal(err.code, code, `wrong code for: ${err.message}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

const VALID_ENTRY = entryBytes(knowledgeBody(str('hello'), [1, ...str('lang'), ...str('en')]));

// ---------------------------------------------------------------------------------------------

describe('round trips (property)', () => {
  test('entries of every payload kind: decode(encode(e)) is e, byte for byte', () => {
    fc.assert(
      fc.property(entry, (e) => {
        const d = decodeEntry(e.encoded);
        assert.deepStrictEqual(d, e);
        assert.deepStrictEqual(sealEntry(d).encoded, e.encoded, 're-encoding gives the same bytes');
        // The id is the hash of the unsigned part, and the signature is the last 64 bytes.
        const unsigned = encodeUnsignedEntry(e);
        assert.deepStrictEqual(d.id, sha256(unsigned));
        assert.deepStrictEqual(d.id, entryIdOf(d));
        assert.equal(d.idHex, toHex(d.id));
        assert.deepStrictEqual(e.encoded.subarray(0, unsigned.length), unsigned);
        assert.deepStrictEqual(e.encoded.subarray(unsigned.length), e.signature);
      }),
      { numRuns: 300 },
    );
  });

  test('headers (any 256-bit target, u32 height, safe-integer timestamp and nonce)', () => {
    fc.assert(
      fc.property(header, (h) => {
        const bytes = encodeHeader(h);
        assert.equal(bytes.length, HEADER_BYTES);
        const d = decodeHeader(bytes);
        assert.deepStrictEqual(d, h);
        assert.deepStrictEqual(encodeHeader(d), bytes);
        assert.deepStrictEqual(blockHashOf(d), sha256(bytes));
      }),
      { numRuns: 300 },
    );
  });

  test('blocks with 0..20 entries', () => {
    fc.assert(
      fc.property(block, (b) => {
        const d = decodeBlock(b.encoded);
        assert.deepStrictEqual(d, b);
        assert.deepStrictEqual(sealBlock(d).encoded, b.encoded);
        assert.deepStrictEqual(d.hash, blockHashOf(b.header));
        assert.deepStrictEqual(d.hash, sha256(d.headerBytes));
        assert.equal(d.hashHex, toHex(d.hash));
        assert.deepStrictEqual(
          d.entries.map((e) => e.idHex),
          b.entries.map((e) => e.idHex),
        );
        // The block hash commits to the header only; changing the signature keeps it.
        const resigned = sealBlock({ ...d, signature: new Uint8Array(64).fill(9) });
        assert.equal(resigned.hashHex, b.hashHex);
      }),
      { numRuns: 100 },
    );
  });

  test('any change to an encoded field changes the id or hash', () => {
    fc.assert(
      fc.property(entry, fc.string({ minLength: 1, maxLength: 8 }), (e, extra) => {
        if (e.payload.kind !== 'knowledge') return;
        if (byteLength(e.payload.content + extra) > LIMITS.contentBytes) return;
        const changed = sealEntry({ ...e, payload: { ...e.payload, content: e.payload.content + extra } });
        assert.notEqual(changed.idHex, e.idHex);
        const later = sealEntry({ ...e, timestamp: e.timestamp === 0 ? 1 : e.timestamp - 1 });
        assert.notEqual(later.idHex, e.idHex);
        // The signature is not part of the id.
        assert.equal(sealEntry({ ...e, signature: new Uint8Array(64) }).idHex, e.idHex);
      }),
    );
    fc.assert(
      fc.property(header, (h) => {
        const a = blockHashOf(h);
        assert.notDeepStrictEqual(blockHashOf({ ...h, nonce: h.nonce === 0 ? 1 : h.nonce - 1 }), a);
        assert.notDeepStrictEqual(blockHashOf({ ...h, target: h.target ^ 1n }), a);
        assert.notDeepStrictEqual(blockHashOf({ ...h, height: h.height === 0 ? 1 : h.height - 1 }), a);
      }),
    );
  });

  test('the genesis block of a network round trips', () => {
    const g = genesisBlock(testNetwork());
    assert.deepStrictEqual(decodeBlock(g.encoded), g);
    assert.deepStrictEqual(genesisBlock(testNetwork()).hash, g.hash, 'deterministic');
  });

  test('-0 is normalised to +0 on encode (one value, one encoding)', () => {
    const p = (metric: number, epsilon: number): EntryPayload => ({
      kind: 'model',
      modelHash: new Uint8Array(32).fill(1),
      parentHash: null,
      round: 0,
      metrics: [['loss', metric]],
      epsilon,
    });
    const base = { version: FORMAT_VERSION, author: AUTHOR, timestamp: 1, signature: SIG };
    const neg = sealEntry({ ...base, payload: p(-0, -0) });
    const pos = sealEntry({ ...base, payload: p(0, 0) });
    assert.deepStrictEqual(neg.encoded, pos.encoded);
    const d = decodeEntry(neg.encoded).payload;
    assert.ok(d.kind === 'model' && Object.is(d.metrics[0]![1], 0) && Object.is(d.epsilon, 0));
  });

  test('a leading byte-order mark in a string is kept (not stripped)', () => {
    const e = sealEntry({
      version: FORMAT_VERSION,
      author: AUTHOR,
      timestamp: 1,
      signature: SIG,
      payload: { kind: 'knowledge', content: '\uFEFFbom', metadata: [] },
    });
    const d = decodeEntry(e.encoded);
    assert.ok(d.payload.kind === 'knowledge');
    assert.equal(d.payload.content, '\uFEFFbom');
  });

  test('a model entry with parentHash null encodes the parent as 32 zero bytes', () => {
    const e = sealEntry({
      version: FORMAT_VERSION,
      author: AUTHOR,
      timestamp: TS,
      signature: SIG,
      payload: {
        kind: 'model',
        modelHash: new Uint8Array(32).fill(7),
        parentHash: null,
        round: 3,
        metrics: [['acc', 0.75]],
        epsilon: 0.5,
      },
    });
    assert.deepStrictEqual(e.encoded, entryBytes(modelBody([['acc', 0.75]], f64(0.5), 1)));
  });
});

describe('layout', () => {
  test('an entry encodes as tag, version, author, u64 timestamp, payload, signature', () => {
    const e = sealEntry({
      version: FORMAT_VERSION,
      author: AUTHOR,
      timestamp: TS,
      signature: SIG,
      payload: { kind: 'knowledge', content: 'hello', metadata: [['lang', 'en']] },
    });
    assert.deepStrictEqual(e.encoded, VALID_ENTRY);
    assert.deepStrictEqual(e.id, sha256(VALID_ENTRY.subarray(0, VALID_ENTRY.length - 64)));
    assert.deepStrictEqual(decodeEntry(VALID_ENTRY), e);
  });

  test('a header is 182 bytes, big-endian, nonce last', () => {
    const h: BlockHeader = { version: FORMAT_VERSION, ...HEADER_FIELDS };
    assert.equal(HEADER_BYTES, 182);
    assert.deepStrictEqual(encodeHeader(h), headerBytes());
    assert.deepStrictEqual(decodeHeader(headerBytes()), h);
  });

  test('a block is tag, version, header, signature, entry count, length-prefixed entries', () => {
    const e = decodeEntry(VALID_ENTRY);
    const h: BlockHeader = { version: FORMAT_VERSION, ...HEADER_FIELDS };
    const b = sealBlock({ header: h, signature: SIG, entries: [e, e] });
    const expected = blockBytes([lenPrefixed(VALID_ENTRY), lenPrefixed(VALID_ENTRY)]);
    assert.deepStrictEqual(b.encoded, expected);
    assert.deepStrictEqual(decodeBlock(expected), b);
  });
});

describe('the encoder only produces what the decoder accepts', () => {
  const base = { version: FORMAT_VERSION, author: AUTHOR, timestamp: 1, signature: SIG };
  const knowledge = (content: string, metadata: KeyValue[] = []) =>
    sealEntry({ ...base, payload: { kind: 'knowledge', content, metadata } });

  test('keys, values and metric names over their byte limits are refused at encode time', () => {
    const key64 = 'k'.repeat(LIMITS.keyBytes);
    const value1024 = 'v'.repeat(LIMITS.valueBytes);
    assert.ok(decodeEntry(knowledge('x', [[key64, value1024]]).encoded));
    assert.throws(() => knowledge('x', [[`${key64}k`, 'v']]), RangeError);
    assert.throws(() => knowledge('x', [['k', `${value1024}v`]]), RangeError);
    // 22 three-byte characters are 66 bytes although only 22 UTF-16 units.
    assert.throws(() => knowledge('x', [['€'.repeat(22), 'v']]), RangeError);
    assert.throws(
      () => sealEntry({ ...base, payload: { kind: 'config', changes: [[`${key64}k`, 'v']] } }),
      RangeError,
    );
    assert.throws(
      () =>
        sealEntry({
          ...base,
          payload: {
            kind: 'model',
            modelHash: new Uint8Array(32).fill(1),
            parentHash: null,
            round: 0,
            metrics: [[`${key64}m`, 1]],
            epsilon: 0,
          },
        }),
      RangeError,
    );
    assert.throws(() => knowledge('c'.repeat(LIMITS.contentBytes + 1)), RangeError);
  });

  test('strings that are not well-formed UTF-16 are refused instead of silently replaced', () => {
    assert.throws(() => knowledge('\uD800'), RangeError);
    assert.throws(() => knowledge('ok', [['a\uDC00', 'v']]), RangeError);
    // Two distinct lone surrogates would otherwise both become U+FFFD: duplicate keys on the wire.
    assert.throws(
      () =>
        knowledge('ok', [
          ['\uD800', 'a'],
          ['\uD801', 'b'],
        ]),
      RangeError,
    );
    assert.equal(decodeEntry(knowledge('\uD83D\uDE00').encoded).payload.kind, 'knowledge');
  });

  test('integers outside their field are refused instead of wrapping', () => {
    const h: BlockHeader = { version: FORMAT_VERSION, ...HEADER_FIELDS };
    assert.equal(decodeHeader(encodeHeader({ ...h, height: 0xffff_ffff })).height, 0xffff_ffff);
    assert.throws(() => encodeHeader({ ...h, height: 2 ** 32 }), RangeError);
    assert.throws(() => encodeHeader({ ...h, height: -1 }), RangeError);
    assert.throws(() => encodeHeader({ ...h, height: 1.5 }), RangeError);
    assert.throws(() => encodeHeader({ ...h, version: 257 }), RangeError);
    assert.throws(() => encodeHeader({ ...h, timestamp: 2 ** 53 }), RangeError);
    assert.throws(() => encodeHeader({ ...h, nonce: -1 }), RangeError);
    assert.throws(() => encodeHeader({ ...h, target: 1n << 256n }), RangeError);
    assert.throws(() => encodeHeader({ ...h, target: -1n }), RangeError);
    assert.throws(
      () =>
        sealEntry({
          ...base,
          payload: {
            kind: 'model',
            modelHash: new Uint8Array(32).fill(1),
            parentHash: null,
            round: 2 ** 32,
            metrics: [],
            epsilon: 0,
          },
        }),
      RangeError,
    );
  });

  test('property: whatever sealEntry accepts, decodeEntry gives back unchanged', () => {
    const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u));
    // Wider than the limits on purpose: keys up to 80 bytes, values up to 1100, any UTF-16.
    const anyText = (maxLength: number) =>
      fc.oneof(fc.string({ unit: 'binary', maxLength }), fc.string({ unit: codeUnit, maxLength }));
    const wide = fc
      .uniqueArray(fc.tuple(anyText(40), anyText(700)), { maxLength: 4, selector: ([k]) => k })
      .map((kv) => kv.map(([k, v]): KeyValue => [k, v]).sort(byKey));
    fc.assert(
      fc.property(anyText(60), wide, (content, metadata) => {
        let e: SealedEntry;
        try {
          e = knowledge(content, metadata);
        } catch (err) {
          assert.ok(err instanceof RangeError, String(err));
          return;
        }
        assert.deepStrictEqual(decodeEntry(e.encoded), e);
      }),
      { numRuns: 500 },
    );
  });
});

describe('typed decode errors', () => {
  test('truncated', () => {
    rejects(() => decodeEntry(VALID_ENTRY.subarray(0, VALID_ENTRY.length - 1)), 'truncated');
    rejects(() => decodeEntry(new Uint8Array(0)), 'truncated');
    rejects(() => decodeEntry(VALID_ENTRY.subarray(0, 40)), 'truncated', /timestamp/);
    rejects(() => decodeHeader(headerBytes().subarray(0, HEADER_BYTES - 1)), 'truncated');
    const b = blockBytes([lenPrefixed(VALID_ENTRY)]);
    rejects(() => decodeBlock(b.subarray(0, b.length - 1)), 'truncated');
    rejects(() => decodeBlock(b.subarray(0, 100)), 'truncated', /header/);
    // A count that cannot fit in what is left is refused before any entry is read.
    rejects(() => decodeBlock(blockBytes([], { count: varint(3) })), 'truncated', /cannot fit/);
    // A string length running past the end.
    rejects(() => decodeEntry(entryBytes(knowledgeBody(varint(500)))), 'truncated');
  });

  test('trailing-bytes', () => {
    rejects(() => decodeEntry(raw(VALID_ENTRY, 0)), 'trailing-bytes');
    rejects(() => decodeHeader(raw(headerBytes(), 0)), 'trailing-bytes');
    rejects(() => decodeBlock(raw(blockBytes([lenPrefixed(VALID_ENTRY)]), 0)), 'trailing-bytes');
    rejects(() => decodeBlock(raw(blockBytes([]), 1, 2, 3)), 'trailing-bytes');
    // An entry whose length prefix in a block is longer than the entry itself.
    const padded = raw(VALID_ENTRY, 0);
    rejects(() => decodeBlock(blockBytes([lenPrefixed(padded)])), 'trailing-bytes');
  });

  test('oversized', () => {
    const valid = blockBytes([lenPrefixed(VALID_ENTRY)]);
    assert.ok(decodeBlock(valid, valid.length));
    rejects(() => decodeBlock(valid, valid.length - 1), 'oversized', /block of/);
    rejects(() => decodeBlock(new Uint8Array(LIMITS.blockBytes + 1)), 'oversized');
    // maxBytes can only tighten the hard cap, never loosen it.
    rejects(() => decodeBlock(new Uint8Array(LIMITS.blockBytes + 1), Infinity), 'oversized');
    rejects(() => decodeEntry(new Uint8Array(LIMITS.entryBytes + 1)), 'oversized');
    // Length prefixes and counts over their limits, read before the bytes they announce.
    rejects(() => decodeEntry(entryBytes(knowledgeBody(varint(LIMITS.contentBytes + 1)))), 'oversized');
    rejects(
      () => decodeEntry(entryBytes(knowledgeBody(str('x'), varint(LIMITS.metadataPairs + 1)))),
      'oversized',
    );
    rejects(
      () => decodeEntry(entryBytes(knowledgeBody(str('x'), [1, ...varint(LIMITS.keyBytes + 1)]))),
      'oversized',
    );
    rejects(
      () =>
        decodeEntry(entryBytes(knowledgeBody(str('x'), [1, ...str('k'), ...varint(LIMITS.valueBytes + 1)]))),
      'oversized',
    );
    rejects(() => decodeEntry(entryBytes(modelBody([], f64(0), LIMITS.metrics + 1))), 'oversized');
    rejects(
      () =>
        decodeBlock(blockBytes([varint(LIMITS.entryBytes + 1), new Uint8Array(200)], { count: varint(1) })),
      'oversized',
      /entry 0 length/,
    );
    rejects(() => decodeBlock(blockBytes([], { count: varint(LIMITS.entriesPerBlock + 1) })), 'oversized');
  });

  test('non-canonical', () => {
    // 'hello' has length 5: 0x85 0x00 is 5 too, with a redundant zero byte.
    rejects(
      () => decodeEntry(entryBytes(knowledgeBody([0x85, 0x00, ...utf8.encode('hello')]))),
      'non-canonical',
      /redundant zero/,
    );
    rejects(() => decodeBlock(blockBytes([], { count: [0x80, 0x00] })), 'non-canonical', /entry count/);
    const unsorted = [2, ...str('b'), ...str('1'), ...str('a'), ...str('2')];
    rejects(() => decodeEntry(entryBytes(knowledgeBody(str('x'), unsorted))), 'non-canonical', /sorted/);
    const duplicate = [2, ...str('a'), ...str('1'), ...str('a'), ...str('2')];
    rejects(() => decodeEntry(entryBytes(knowledgeBody(str('x'), duplicate))), 'non-canonical');
    rejects(
      () =>
        decodeEntry(
          entryBytes(
            modelBody([
              ['b', 1],
              ['a', 2],
            ]),
          ),
        ),
      'non-canonical',
      /metrics/,
    );
    rejects(() => decodeEntry(entryBytes(modelBody([['loss', -0]]))), 'non-canonical', /negative zero/);
    rejects(() => decodeEntry(entryBytes(modelBody([], f64(-0)))), 'non-canonical', /negative zero/);
    // The same metric with +0 is fine: the test above fails for the sign alone.
    assert.ok(decodeEntry(entryBytes(modelBody([['loss', 0]]))));
  });

  test('invalid-value', () => {
    for (const bad of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80]]) {
      rejects(() => decodeEntry(entryBytes(knowledgeBody(lenPrefixed(bad)))), 'invalid-value', /UTF-8/);
    }
    rejects(
      () => decodeEntry(entryBytes(knowledgeBody(str('x'), [1, ...str('k'), ...lenPrefixed([0xfe])]))),
      'invalid-value',
    );
    for (const x of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      rejects(() => decodeEntry(entryBytes(modelBody([['loss', x]]))), 'invalid-value', /finite/);
      rejects(() => decodeEntry(entryBytes(modelBody([], f64(x)))), 'invalid-value', /finite/);
    }
    rejects(() => decodeEntry(entryBytes(modelBody([], f64(-1)))), 'invalid-value', /negative/);
    const max = BigInt(Number.MAX_SAFE_INTEGER);
    assert.equal(
      decodeEntry(entryBytes(knowledgeBody(str('x')), { timestamp: u64(max) })).timestamp,
      2 ** 53 - 1,
    );
    rejects(
      () => decodeEntry(entryBytes(knowledgeBody(str('x')), { timestamp: u64(max + 1n) })),
      'invalid-value',
    );
    rejects(
      () => decodeEntry(entryBytes(knowledgeBody(str('x')), { timestamp: u64(~0n & ((1n << 64n) - 1n)) })),
      'invalid-value',
    );
    rejects(() => decodeHeader(headerBytes({ timestamp: u64(max + 1n) })), 'invalid-value', /timestamp/);
    rejects(() => decodeHeader(headerBytes({ nonce: u64(1n << 63n) })), 'invalid-value', /nonce/);
    rejects(() => decodeEntry(entryBytes(raw(3, 0))), 'invalid-value', /without changes/);
    // A varint longer than 8 bytes.
    rejects(
      () => decodeEntry(entryBytes(knowledgeBody(new Array(9).fill(0x80)))),
      'invalid-value',
      /too long/,
    );
  });

  test('unknown-tag', () => {
    rejects(() => decodeEntry(entryBytes(knowledgeBody(str('x')), { tag: 2 })), 'unknown-tag');
    rejects(() => decodeEntry(entryBytes(raw(4, 0))), 'unknown-tag', /entry kind 4/);
    rejects(() => decodeEntry(entryBytes(raw(0, 0))), 'unknown-tag', /entry kind 0/);
    rejects(() => decodeHeader(headerBytes({ tag: 3 })), 'unknown-tag');
    rejects(() => decodeBlock(blockBytes([], { tag: 2 })), 'unknown-tag');
    // A block whose embedded header carries the wrong tag.
    rejects(() => decodeBlock(blockBytes([], { header: headerBytes({ tag: 1 }) })), 'unknown-tag', /header/);
    // A header fed to the block decoder and a block fed to the entry decoder.
    rejects(() => decodeBlock(headerBytes()), 'unknown-tag');
    rejects(() => decodeEntry(blockBytes([])), 'unknown-tag');
  });

  test('unsupported-version', () => {
    rejects(() => decodeEntry(entryBytes(knowledgeBody(str('x')), { version: 2 })), 'unsupported-version');
    rejects(() => decodeEntry(entryBytes(knowledgeBody(str('x')), { version: 0 })), 'unsupported-version');
    rejects(() => decodeHeader(headerBytes({ version: 2 })), 'unsupported-version');
    rejects(() => decodeBlock(blockBytes([], { version: 2 })), 'unsupported-version');
    rejects(
      () => decodeBlock(blockBytes([], { header: headerBytes({ version: 0 }) })),
      'unsupported-version',
    );
    const v2 = entryBytes(knowledgeBody(str('x')), { version: 2 });
    rejects(() => decodeBlock(blockBytes([lenPrefixed(v2)])), 'unsupported-version');
  });
});

describe('Reader and Writer', () => {
  test('varints round trip and are minimal (property)', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        const b = new Writer(1).varint(n).finish();
        assert.deepStrictEqual([...b], varint(n));
        const r = new Reader(b);
        assert.equal(r.varint(Number.MAX_SAFE_INTEGER), n);
        r.end();
      }),
    );
  });

  test('the writer grows past its initial capacity', () => {
    const w = new Writer(1);
    const big = new Uint8Array(1000).map((_, i) => i & 0xff);
    w.u8(1)
      .bytes(big)
      .u64(2 ** 40);
    const r = new Reader(w.finish());
    assert.equal(r.u8(), 1);
    assert.deepStrictEqual(r.bytes(1000), big);
    assert.equal(r.u64(), 2 ** 40);
    r.end();
  });

  test('reads past the end are truncated errors, never RangeErrors', () => {
    const r = new Reader(new Uint8Array([1, 2, 3]));
    rejects(() => r.u32(), 'truncated');
    rejects(() => r.u64(), 'truncated');
    rejects(() => r.f64(), 'truncated');
    rejects(() => r.fixed(4), 'truncated');
    assert.equal(r.u8(), 1, 'a failed read does not move the reader');
  });
});
