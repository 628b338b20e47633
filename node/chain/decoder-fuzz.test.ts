/**
 * Decoder fuzz run with a fixed seed: 100,000 inputs, purely random byte strings and mutations
 * of valid encodings, each fed to decodeBlock, decodeEntry and decodeHeader. Nothing may escape
 * but a DecodeError, and whatever decodes must be canonical (re-encodes to the same bytes).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../testing/prng.ts';
import { decodeBlock, decodeHeader, encodeHeader, HEADER_BYTES, sealBlock } from './block-codec.ts';
import { toHex } from './bytes.ts';
import { DecodeError } from './codec/errors.ts';
import { decodeEntry, sealEntry } from './entry-codec.ts';
import {
  type BlockHeader,
  type EntryPayload,
  FORMAT_VERSION,
  type KeyValue,
  LIMITS,
  type SealedBlock,
  type SealedEntry,
} from './types.ts';

const SEED = 0xc0ffee;
const RANDOM_INPUTS = 30_000;
const MUTATED_INPUTS = 70_000;

/** mulberry32: small, fast, and the same sequence on every machine. */
function prng(seed: number) {
  const next = seededRandom(seed);
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    /** Integer in [lo, hi]. */
    range: (lo: number, hi: number) => lo + int(hi - lo + 1),
    chance: (p: number) => next() < p,
    pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]!,
    bytes: (n: number) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = int(256);
      return b;
    },
  };
}
type Rng = ReturnType<typeof prng>;

// ---------------------------------------------------------------------------------------------
// A corpus of valid encodings, with the offsets of their length prefixes and counts

const enc = new TextEncoder();
const varintLength = (n: number): number => (n < 0x80 ? 1 : 1 + varintLength(Math.floor(n / 0x80)));
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

interface Seed {
  readonly kind: 'entry' | 'header' | 'block';
  readonly bytes: Uint8Array;
  /** Offsets of every varint (lengths and counts) in `bytes`. */
  readonly prefixes: readonly number[];
}

const ALPHABET = ['a', 'b', 'z', '0', ' ', '_', 'é', '€', 'ß', '\u{1F600}', '中', '\u0000', '\uFEFF'];
function text(rng: Rng, maxChars: number): string {
  let s = '';
  for (let n = rng.int(maxChars + 1); n > 0; n--) s += rng.pick(ALPHABET);
  return s;
}
/** Sorted, unique pairs within the byte limits. */
function keyValues(rng: Rng, max: number): KeyValue[] {
  const m = new Map<string, string>();
  for (let n = rng.int(max + 1); n > 0; n--) m.set(text(rng, 12), text(rng, rng.chance(0.1) ? 200 : 20));
  return [...m].sort(([a], [b]) => (a < b ? -1 : 1));
}
function payload(rng: Rng): EntryPayload {
  switch (rng.int(3)) {
    case 0:
      return {
        kind: 'knowledge',
        content: rng.chance(0.05) ? 'x'.repeat(rng.range(200, 3000)) : text(rng, 80),
        metadata: keyValues(rng, rng.chance(0.2) ? LIMITS.metadataPairs : 4),
      };
    case 1: {
      const metrics = [...new Set(Array.from({ length: rng.int(6) }, () => text(rng, 8)))].sort();
      return {
        kind: 'model',
        modelHash: rng.bytes(32),
        parentHash: rng.chance(0.3) ? null : rng.bytes(32),
        round: rng.int(2 ** 32),
        metrics: metrics.map((name): readonly [string, number] => [
          name,
          rng.pick([0, 1, -1, 0.5, 1e308, 5e-324, rng.next() * 1000 - 500]),
        ]),
        epsilon: rng.pick([0, 0.1, 8, rng.next() * 10]),
      };
    }
    default: {
      const changes = keyValues(rng, 5);
      return { kind: 'config', changes: changes.length ? changes : [['blockTimeMs', '10000']] };
    }
  }
}

function entrySeed(rng: Rng): SealedEntry {
  return sealEntry({
    version: FORMAT_VERSION,
    author: rng.bytes(32),
    timestamp: rng.pick([0, 1_700_000_000_000 + rng.int(1e9), Number.MAX_SAFE_INTEGER]),
    payload: payload(rng),
    signature: rng.bytes(64),
  });
}

function headerSeed(rng: Rng): BlockHeader {
  let target = 0n;
  for (const b of rng.bytes(32)) target = (target << 8n) | BigInt(b);
  return {
    version: FORMAT_VERSION,
    chainId: rng.bytes(32),
    height: rng.pick([0, 1, rng.int(1000), 2 ** 32 - 1]),
    prevHash: rng.bytes(32),
    merkleRoot: rng.bytes(32),
    timestamp: rng.int(2 ** 53),
    target: target >> BigInt(rng.int(256)),
    miner: rng.bytes(32),
    nonce: rng.int(2 ** 53),
  };
}

const strLen = (s: string) => enc.encode(s).length;
/** Offsets of the varints inside one entry encoding that starts at `base`. */
function entryPrefixes(e: SealedEntry, base: number): number[] {
  const out: number[] = [];
  let pos = base + 43; // tag, version, author, timestamp, kind
  const str = (s: string) => {
    out.push(pos);
    pos += varintLength(strLen(s)) + strLen(s);
  };
  const count = (n: number) => {
    out.push(pos);
    pos += varintLength(n);
  };
  const p = e.payload;
  if (p.kind === 'knowledge') {
    str(p.content);
    count(p.metadata.length);
    for (const [k, v] of p.metadata) {
      str(k);
      str(v);
    }
  } else if (p.kind === 'model') {
    pos += 32 + 32 + 4;
    count(p.metrics.length);
    for (const [name] of p.metrics) {
      str(name);
      pos += 8; // value
    }
    pos += 8; // epsilon
  } else {
    count(p.changes.length);
    for (const [k, v] of p.changes) {
      str(k);
      str(v);
    }
  }
  assert.equal(pos, base + e.encoded.length - 64, 'prefix scan ends at the signature');
  return out;
}
function blockPrefixes(b: SealedBlock): number[] {
  const out = [2 + HEADER_BYTES + 64];
  let pos = out[0]! + varintLength(b.entries.length);
  for (const e of b.entries) {
    out.push(pos);
    pos += varintLength(e.encoded.length);
    out.push(...entryPrefixes(e, pos));
    pos += e.encoded.length;
  }
  assert.equal(pos, b.encoded.length);
  return out;
}

function buildCorpus(rng: Rng): Seed[] {
  const entries = Array.from({ length: 120 }, () => entrySeed(rng));
  const seeds: Seed[] = entries.map((e) => ({
    kind: 'entry',
    bytes: e.encoded,
    prefixes: entryPrefixes(e, 0),
  }));
  for (let i = 0; i < 40; i++)
    seeds.push({ kind: 'header', bytes: encodeHeader(headerSeed(rng)), prefixes: [] });
  for (let i = 0; i < 60; i++) {
    const picked = Array.from({ length: rng.pick([0, 1, 2, 3, 5, 8, 12]) }, () => rng.pick(entries));
    const b = sealBlock({ header: headerSeed(rng), signature: rng.bytes(64), entries: picked });
    seeds.push({ kind: 'block', bytes: b.encoded, prefixes: blockPrefixes(b) });
  }
  return seeds;
}

// ---------------------------------------------------------------------------------------------
// Mutations

const INTERESTING_U64 = [
  '0000000000000000',
  '001fffffffffffff', // 2^53 - 1
  '0020000000000000', // 2^53
  'ffffffffffffffff',
  '8000000000000000', // -0 as f64
  '7ff0000000000000', // +Infinity
  'fff0000000000000', // -Infinity
  '7ff8000000000000', // NaN
  '0000000000000001', // smallest subnormal
].map((h) => Uint8Array.from(Buffer.from(h, 'hex')));

const concat = (...parts: (Uint8Array | number[])[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
};

/** Reads the varint at `pos` (as the decoder would) and returns its value and byte length. */
function readVarint(b: Uint8Array, pos: number): { value: number; length: number } {
  let value = 0;
  let scale = 1;
  for (let i = 0; pos + i < b.length && i < 8; i++) {
    value += (b[pos + i]! & 0x7f) * scale;
    if ((b[pos + i]! & 0x80) === 0) return { value, length: i + 1 };
    scale *= 0x80;
  }
  return { value, length: 1 };
}

type Mutator = (rng: Rng, b: Uint8Array, seed: Seed, corpus: readonly Seed[]) => Uint8Array;
const at = (rng: Rng, b: Uint8Array) => rng.int(Math.max(1, b.length));

const MUTATORS: Record<string, Mutator> = {
  bitFlips: (rng, b) => {
    const c = b.slice();
    for (let n = rng.range(1, 8); n > 0 && c.length; n--) c[at(rng, c)]! ^= 1 << rng.int(8);
    return c;
  },
  byteSet: (rng, b) => {
    const c = b.slice();
    if (c.length) c[at(rng, c)] = rng.pick([0, 1, 2, 3, 0x7f, 0x80, 0xff, rng.int(256)]);
    return c;
  },
  insert: (rng, b) => {
    const i = rng.int(b.length + 1);
    return concat(
      b.subarray(0, i),
      rng.bytes(rng.pick([1, 1, 2, 4, 8, 32, rng.range(1, 300)])),
      b.subarray(i),
    );
  },
  delete: (rng, b) => {
    const i = rng.int(b.length + 1);
    return concat(
      b.subarray(0, i),
      b.subarray(Math.min(b.length, i + rng.pick([1, 1, 2, 8, 32, rng.range(1, 300)]))),
    );
  },
  truncate: (rng, b) => b.slice(0, rng.int(b.length + 1)),
  extend: (rng, b) => concat(b, rng.chance(0.5) ? [0] : rng.bytes(rng.range(1, 64))),
  splice: (rng, b, _seed, corpus) => {
    const other = rng.pick(corpus).bytes;
    return concat(b.subarray(0, rng.int(b.length + 1)), other.subarray(rng.int(other.length + 1)));
  },
  duplicateRange: (rng, b) => {
    const i = rng.int(b.length + 1);
    const j = Math.min(b.length, i + rng.range(1, 200));
    return concat(b.subarray(0, j), b.subarray(i, j), b.subarray(j));
  },
  interestingU64: (rng, b) => {
    if (b.length < 8) return b.slice();
    const c = b.slice();
    c.set(rng.pick(INTERESTING_U64), rng.int(c.length - 7));
    return c;
  },
  lengthPrefix: (rng, b, seed) => {
    if (seed.prefixes.length === 0 || b.length !== seed.bytes.length)
      return MUTATORS.bitFlips!(rng, b, seed, []);
    const pos = rng.pick(seed.prefixes);
    const { value, length } = readVarint(b, pos);
    const choice = rng.int(9);
    let replacement: number[];
    if (choice === 0) {
      // The same value with a redundant continuation byte.
      const v = varint(value);
      v[v.length - 1]! |= 0x80;
      replacement = [...v, 0];
    } else {
      const newValue = [
        value + 1,
        Math.max(0, value - 1),
        0,
        value * 2,
        rng.int(1 << 21),
        2 ** 35,
        rng.pick([LIMITS.entryBytes + 1, LIMITS.contentBytes + 1, LIMITS.entriesPerBlock + 1, 17, 65, 1025]),
        value + rng.range(2, 200),
      ][choice - 1]!;
      replacement = varint(newValue);
    }
    return concat(b.subarray(0, pos), replacement, b.subarray(pos + length));
  },
};
const MUTATOR_NAMES = Object.keys(MUTATORS);

// ---------------------------------------------------------------------------------------------

type Outcome = 'ok' | DecodeError['code'];
const DECODERS = {
  block: (b: Uint8Array) => {
    const d = decodeBlock(b);
    assert.equal(toHex(sealBlock(d).encoded), toHex(b), 'an accepted block re-encodes to its bytes');
  },
  entry: (b: Uint8Array) => {
    const d = decodeEntry(b);
    assert.equal(toHex(sealEntry(d).encoded), toHex(b), 'an accepted entry re-encodes to its bytes');
  },
  header: (b: Uint8Array) => {
    const d = decodeHeader(b);
    assert.equal(toHex(encodeHeader(d)), toHex(b), 'an accepted header re-encodes to its bytes');
  },
} as const;

test('decoder fuzz: 100,000 random and mutated inputs, only typed decode errors', (t) => {
  const rng = prng(SEED);
  const corpus = buildCorpus(rng);
  for (const s of corpus) {
    DECODERS[s.kind](s.bytes); // the corpus itself is valid
  }

  const problems: string[] = [];
  const tally = (set: 'random' | 'mutated') => {
    const counts: Record<string, Record<Outcome, number>> = {};
    for (const d of Object.keys(DECODERS)) counts[d] = {} as Record<Outcome, number>;
    return { set, counts, inputs: 0 };
  };
  const random = tally('random');
  const mutated = tally('mutated');
  const mutatorUse: Record<string, number> = {};

  const feed = (b: Uint8Array, into: ReturnType<typeof tally>) => {
    into.inputs++;
    for (const [name, decode] of Object.entries(DECODERS)) {
      let outcome: Outcome = 'ok';
      try {
        decode(b);
      } catch (err) {
        if (err instanceof DecodeError) outcome = err.code;
        else if (problems.length < 10) problems.push(`${name}(${toHex(b).slice(0, 400)}): ${String(err)}`);
        else problems.push('…');
      }
      const c = into.counts[name]!;
      c[outcome] = (c[outcome] ?? 0) + 1;
    }
  };

  const started = performance.now();
  for (let i = 0; i < RANDOM_INPUTS; i++) {
    const size = rng.chance(0.6) ? rng.int(65) : rng.chance(0.6) ? rng.range(65, 512) : rng.range(513, 4096);
    const b = rng.chance(0.05) ? rng.bytes(HEADER_BYTES) : rng.bytes(size);
    // A quarter start with a valid tag and version, to get past the first two bytes.
    if (b.length >= 2 && rng.chance(0.25)) {
      b[0] = rng.range(1, 3);
      b[1] = FORMAT_VERSION;
    }
    feed(b, random);
  }
  for (let i = 0; i < MUTATED_INPUTS; i++) {
    const seed = rng.pick(corpus);
    let b = seed.bytes;
    for (let n = rng.chance(0.7) ? 1 : rng.range(2, 4); n > 0; n--) {
      const name = rng.pick(MUTATOR_NAMES);
      mutatorUse[name] = (mutatorUse[name] ?? 0) + 1;
      b = MUTATORS[name]!(rng, b, seed, corpus);
    }
    feed(b, mutated);
  }
  const seconds = (performance.now() - started) / 1000;

  t.diagnostic(`seed ${SEED}: ${random.inputs + mutated.inputs} inputs in ${seconds.toFixed(1)} s`);
  t.diagnostic(`random: ${JSON.stringify(random.counts)}`);
  t.diagnostic(`mutated: ${JSON.stringify(mutated.counts)}`);
  t.diagnostic(`mutators: ${JSON.stringify(mutatorUse)}`);

  assert.deepStrictEqual(problems, [], 'every failure is a DecodeError and every success is canonical');
  assert.ok(random.inputs + mutated.inputs >= 100_000);
  for (const set of [random, mutated]) {
    for (const counts of Object.values(set.counts)) {
      assert.equal(
        Object.values(counts).reduce((a, b) => a + b, 0),
        set.inputs,
        'every input reached every decoder',
      );
    }
  }

  // The mutations reach deep into the format: many distinct errors, and some inputs still decode.
  const codesOf = (c: Record<string, number>) => Object.keys(c).filter((k) => k !== 'ok');
  const allMutatedCodes = new Set(Object.values(mutated.counts).flatMap(codesOf));
  assert.deepStrictEqual([...allMutatedCodes].sort(), [
    'invalid-value',
    'non-canonical',
    'oversized',
    'trailing-bytes',
    'truncated',
    'unknown-tag',
    'unsupported-version',
  ]);
  assert.ok(codesOf(mutated.counts.block!).length >= 6, `block: ${codesOf(mutated.counts.block!)}`);
  assert.ok(codesOf(mutated.counts.entry!).length >= 6, `entry: ${codesOf(mutated.counts.entry!)}`);
  assert.ok(codesOf(mutated.counts.header!).length >= 4, `header: ${codesOf(mutated.counts.header!)}`);
  for (const d of ['block', 'entry', 'header'] as const) {
    assert.ok((mutated.counts[d]!.ok ?? 0) > 100, `some mutated ${d}s still decode`);
  }
});
