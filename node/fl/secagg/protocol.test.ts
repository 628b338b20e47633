import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { seededBytes } from '../../testing/prng.ts';
import { recoverInput } from '../../testing/secagg-attack.ts';
import { seededUniform } from '../random.ts';
import { collectMasked, routeShares, unmaskSum } from './aggregator.ts';
import {
  decodeAdvertisement,
  decodeMasked,
  decodeUnmask,
  encodeAdvertisement,
  encodeMasked,
  encodeShare,
  encodeUnmask,
  MAX_DIM,
  type MaskedUpdate,
  SecAggError,
} from './messages.ts';
import {
  createParticipant,
  type Delivered,
  maskUpdate,
  type Participant,
  receiveShares,
  revealOnce,
  revealShares,
  type SecAggConfig,
  shareKeys,
} from './protocol.ts';
import { addInto, dequantise, quantise, quantiserFor } from './ring.ts';

const DIM = 1000;
const config: SecAggConfig = {
  roundId: new Uint8Array(32).fill(7),
  participants: [1, 2, 3, 4, 5],
  threshold: 3,
  dim: DIM,
};
const quantiser = quantiserFor(4, 5);

/** Real-valued updates in [−1, 1] and their quantised ring form. */
function inputs(seed: number) {
  const u = seededUniform(seed);
  return config.participants.map(() => {
    const real = Float64Array.from({ length: DIM }, () => 2 * u() - 1);
    return { real, words: quantise(real, quantiser).words };
  });
}

/** Rounds 0–2 for everyone; returns states and the masked updates (not yet delivered). */
function setUp(seed: number, cfg = config) {
  const rand = seededBytes(seed);
  let states = cfg.participants.map((id) => createParticipant(cfg, id, rand));
  const adverts = states.map((s) =>
    decodeAdvertisement(encodeAdvertisement(s.advertisement), {
      roundId: cfg.roundId,
      participants: new Set(cfg.participants),
    }),
  );
  const shareMsgs: Delivered[] = [];
  states = states.map((s) => {
    const r = shareKeys(s, adverts, rand);
    for (const m of r.shares) shareMsgs.push({ from: s.id, bytes: encodeShare(m) });
    return r.participant;
  });
  const routed = routeShares(cfg, cfg.participants, shareMsgs);
  assert.deepEqual(routed.u2, [...cfg.participants]);
  states = states.map((s) => receiveShares(s, routed.u2, routed.inbox.get(s.id)!));
  const xs = inputs(seed);
  const masked = states.map((s, k) => maskUpdate(s, xs[k]!.words));
  return { states, adverts, xs, masked };
}

function finish(
  states: Participant[],
  adverts: ReturnType<typeof setUp>['adverts'],
  received: MaskedUpdate[],
) {
  const survivors = received.map((m) => m.from);
  const reveals = survivors.map((id) =>
    decodeUnmask(encodeUnmask(revealShares(states.find((s) => s.id === id)!, survivors)), {
      roundId: config.roundId,
      participants: new Set(config.participants),
    }),
  );
  return unmaskSum(config, adverts, received, reveals);
}

const plainSum = (words: Uint32Array[]) => {
  const s = new Uint32Array(DIM);
  for (const w of words) addInto(s, w);
  return s;
};

describe('secure aggregation', () => {
  test('what the aggregator receives from each participant is not its update', () => {
    const { xs, masked } = setUp(1);
    masked.forEach((m, k) => {
      const x = xs[k]!.words;
      assert.notDeepEqual(m.masked, x);
      let equal = 0;
      for (let i = 0; i < DIM; i++) if (m.masked[i] === x[i]) equal++;
      // A uniformly random word matches by chance with probability 2^-32.
      assert.ok(equal <= 1, `${equal} coordinates in the clear`);
      // Read as reals, a masked update is noise: no correlation with the participant's input.
      const y = dequantise(m.masked, quantiser);
      const r = xs[k]!.real;
      const mean = (a: ArrayLike<number>) => {
        let s = 0;
        for (let i = 0; i < a.length; i++) s += a[i]!;
        return s / a.length;
      };
      const my = mean(y);
      const mr = mean(r);
      let cov = 0;
      let vy = 0;
      let vr = 0;
      for (let i = 0; i < DIM; i++) {
        cov += (y[i]! - my) * (r[i]! - mr);
        vy += (y[i]! - my) ** 2;
        vr += (r[i]! - mr) ** 2;
      }
      assert.ok(Math.abs(cov / Math.sqrt(vy * vr)) < 0.15, `correlation ${cov / Math.sqrt(vy * vr)}`);
    });
  });

  test('with everyone present the masks cancel: the sum is exactly the plaintext sum', () => {
    const { states, adverts, xs, masked } = setUp(2);
    assert.deepEqual(finish(states, adverts, masked), plainSum(xs.map((x) => x.words)));
  });

  test('one of five drops after masking: the survivors still unmask to exactly their plaintext sum', () => {
    const { states, adverts, xs, masked } = setUp(3);
    // Participant 4 masked its update with everyone's keys, but it never arrives.
    const received = masked.filter((m) => m.from !== 4);
    const sum = finish(states, adverts, received);
    const survivorsPlain = xs.filter((_, k) => k !== 3);
    assert.deepEqual(sum, plainSum(survivorsPlain.map((x) => x.words)));
    // And, read back as reals, within quantisation of the true sum.
    const real = dequantise(sum, quantiser);
    for (let i = 0; i < DIM; i++) {
      const truth = survivorsPlain.reduce((s, x) => s + x.real[i]!, 0);
      assert.ok(Math.abs(real[i]! - truth) <= (4 * 0.5) / quantiser.scale + 1e-12);
    }
    // Without the dropped party's shares the sum would be garbage.
    const naive = new Uint32Array(DIM);
    for (const m of received) addInto(naive, m.masked);
    assert.notDeepEqual(naive, sum);
  });

  test('two of five drop (threshold 3): still exact; three drop: the round refuses, typed', () => {
    const { states, adverts, xs, masked } = setUp(4);
    const received = masked.filter((m) => m.from !== 2 && m.from !== 5);
    assert.deepEqual(
      finish(states, adverts, received),
      plainSum([xs[0]!, xs[2]!, xs[3]!].map((x) => x.words)),
    );
    assert.throws(
      () => revealShares(states[0]!, [1, 3]),
      (e: unknown) => e instanceof SecAggError && e.code === 'too-few-participants',
    );
  });

  test('a survivor never reveals the mask key of another survivor, and the aggregator refuses such shares', () => {
    const { states, adverts, masked } = setUp(5);
    const r = revealShares(states[0]!, [1, 2, 3, 5]);
    assert.deepEqual(
      r.shares.map((s) => [s.of, s.kind]),
      [
        [1, 'self'],
        [2, 'self'],
        [3, 'self'],
        [4, 'mask'],
        [5, 'self'],
      ],
    );
    const forged = { ...r, shares: r.shares.map((s) => (s.of === 2 ? { ...s, kind: 'mask' as const } : s)) };
    const received = masked.filter((m) => m.from !== 4);
    const others = [2, 3, 5].map((id) => revealShares(states[id - 1]!, [1, 2, 3, 5]));
    assert.throws(
      () => unmaskSum(config, adverts, received, [forged, ...others]),
      (e: unknown) => e instanceof SecAggError && e.code === 'protocol-violation',
    );
  });

  test('a corrupted share is caught by the commitment, not silently summed', () => {
    const { states, adverts, masked } = setUp(6);
    const survivors = [1, 2, 3, 4, 5];
    const reveals = survivors.map((id) => revealShares(states[id - 1]!, survivors));
    const bad = reveals.map((r) => ({
      ...r,
      shares: r.shares.map((s) => (s.of === 3 ? { ...s, share: s.share.map((b) => b ^ 1) } : s)),
    }));
    assert.throws(
      () => unmaskSum(config, adverts, masked, bad),
      (e: unknown) => e instanceof SecAggError && e.code === 'reconstruction-failed',
    );
  });

  test('malformed, oversized, foreign and duplicate updates are rejected one by one; the round still sums', () => {
    const { states, adverts, xs, masked } = setUp(7);
    const bytes = masked.map((m) => encodeMasked(m));
    const wrongRound = encodeMasked({ ...masked[3]!, roundId: new Uint8Array(32).fill(9) });
    const delivered: Delivered[] = [
      { from: 1, bytes: bytes[0]! },
      { from: 2, bytes: bytes[1]!.subarray(0, bytes[1]!.length - 1) }, // truncated
      { from: 3, bytes: new Uint8Array(bytes[2]!.length + 1) }, // oversized
      { from: 4, bytes: wrongRound },
      { from: 5, bytes: bytes[4]! },
      { from: 5, bytes: bytes[4]! }, // duplicate → 5 is out too
      { from: 1, bytes: bytes[1]! }, // 1 forwarding 2's update
    ];
    const { received, rejected } = collectMasked(config, config.participants, delivered);
    assert.deepEqual(
      rejected.map((r) => [r.from, r.error.code]),
      [
        [2, 'malformed'],
        [3, 'oversized'],
        [4, 'wrong-round'],
        [5, 'duplicate'],
        [1, 'duplicate'],
      ],
    );
    assert.deepEqual(received, []);
    // Without the spoofing and duplicates, 1 and 5 survive the junk from 2, 3, 4.
    const clean = collectMasked(config, config.participants, delivered.slice(0, 5));
    assert.deepEqual(
      clean.received.map((m) => m.from),
      [1, 5],
    );
    assert.throws(() => finish(states, adverts, clean.received), SecAggError);
    const three = collectMasked(config, config.participants, [
      ...delivered.slice(0, 5),
      { from: 3, bytes: bytes[2]! },
    ]);
    // 3's earlier message was rejected: its retry does not count either.
    assert.deepEqual(
      three.received.map((m) => m.from),
      [1, 5],
    );
    const ok = collectMasked(config, config.participants, [
      delivered[0]!,
      delivered[1]!,
      delivered[4]!,
      { from: 4, bytes: bytes[3]! },
    ]);
    assert.deepEqual(
      finish(states, adverts, ok.received),
      plainSum([xs[0]!, xs[3]!, xs[4]!].map((x) => x.words)),
    );
  });

  test('decoders bound sizes and check every field', () => {
    const expect = { roundId: config.roundId, participants: new Set([1, 2]), dim: 4 };
    const good = encodeMasked({ roundId: config.roundId, from: 1, masked: new Uint32Array(4) });
    assert.equal(decodeMasked(good, expect).from, 1);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof SecAggError ? e.code : 'other';
      }
      return 'none';
    };
    assert.equal(
      code(() => decodeMasked(good, { ...expect, dim: 5 })),
      'dimension-mismatch',
    );
    assert.equal(
      code(() => decodeMasked(good, { ...expect, participants: new Set([2]) })),
      'unknown-participant',
    );
    assert.equal(
      code(() => decodeMasked(good.subarray(0, 10), expect)),
      'malformed',
    );
    const versioned = Uint8Array.from(good);
    versioned[1] = 9;
    assert.equal(
      code(() => decodeMasked(versioned, expect)),
      'malformed',
    );
    assert.equal(
      code(() => encodeMasked({ roundId: config.roundId, from: 1, masked: new Uint32Array(MAX_DIM + 1) })),
      'oversized',
    );
    assert.equal(
      code(() => decodeMasked(new Uint8Array(50_000_000), expect)),
      'oversized',
    );
  });

  test('participants and config are validated', () => {
    assert.throws(() => createParticipant({ ...config, threshold: 2 }, 1), SecAggError); // t ≤ n/2
    assert.throws(() => createParticipant(config, 9), SecAggError);
    assert.throws(() => createParticipant({ ...config, participants: [1, 1, 2] }, 1), SecAggError);
  });
});

describe('the unmask step, once per round', () => {
  const all = [1, 2, 3, 4, 5];
  const without5 = [1, 2, 3, 4];

  test('answering two survivor sets exposes an update; revealOnce refuses the second set', () => {
    const { states, adverts, xs, masked } = setUp(11);
    const byId = new Map(adverts.map((a) => [a.from, a]));
    // Control: participants that answer every request. {1,2,3} for "everyone survived" (b_5),
    // {2,3,4} for "5 dropped" (5's mask key): t = 3 of each, and x_5 comes out exactly.
    const naive = [
      ...[0, 1, 2].map((k) => revealShares(states[k]!, all)),
      ...[1, 2, 3].map((k) => revealShares(states[k]!, without5)),
    ];
    const got = recoverInput(config, byId, 5, masked[4]!.masked, naive);
    assert.ok('input' in got, 'failed' in got ? got.failed : '');
    assert.deepEqual(got.input, xs[4]!.words);

    // The same requests against revealOnce: 2 and 3 refuse the second set, only 4 answers it.
    const answered = new Map<number, Participant>();
    const reveals = [0, 1, 2].map((k) => {
      const r = revealOnce(states[k]!, all);
      answered.set(k, r.participant);
      return r.message;
    });
    for (const k of [1, 2])
      assert.throws(
        () => revealOnce(answered.get(k)!, without5),
        (e: unknown) => e instanceof SecAggError && e.code === 'protocol-violation',
      );
    reveals.push(revealOnce(states[3]!, without5).message);
    const attempt = recoverInput(config, byId, 5, masked[4]!.masked, reveals);
    assert.deepEqual(attempt, { failed: '1 mask-key shares of 5, need 3' });
  });

  test('the same set again gets the same answer; the order of the ids does not matter', () => {
    const { states } = setUp(12);
    const first = revealOnce(states[0]!, [3, 1, 2, 5, 4]);
    assert.deepEqual(first.participant.revealed?.survivors, all);
    const again = revealOnce(first.participant, all);
    assert.equal(again.message, first.message);
    assert.equal(again.participant, first.participant);
    // A subset is another set.
    assert.throws(() => revealOnce(first.participant, [1, 2, 3]), /another survivor set/);
  });
});
