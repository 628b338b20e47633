/**
 * Finding 1 (HIGH): a coordinator recovers every participant's individual masked-then-unmasked
 * update by asking `fl-shares` a second time with adverts it forged. No second unmask request is
 * needed, so revealOnce and the t > n/2 rule do not apply.
 *
 *   npm exec -- node --import tsx --test attack/fl-trust/reshare.attack.ts
 *
 * The first test is the one to keep: it fails until FlParticipant.shares refuses a second
 * request for a round (and, better, until adverts are signed by their owners' identity keys).
 * The second test is the demonstration: it passes while the hole is open (each recovered
 * individual update sums, exactly in the ring, to the honestly unmasked aggregate).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { roundQuantiser } from '../../node/fl/local-round.ts';
import { addInto, dequantise } from '../../node/fl/secagg/ring.ts';
import { cleanup, coordinatorKeys, honestUnmask, participants, reshareAttack, runToMasked } from './lib.ts';

after(cleanup);

describe('attack: re-share after the masked update', async () => {
  const keys = await coordinatorKeys();

  test('a participant answers fl-shares once per round (a second request is refused)', async () => {
    const nodes = await participants(3, keys);
    const s = await runToMasked(nodes, new Uint8Array(32).fill(0x31));
    // Same adverts again: even this must be refused once shares went out, as a new set of shares of
    // the same secrets goes to whoever the adverts name.
    assert.throws(() => nodes[0]!.p.shares('boss', { roundId: s.sa.roundId, adverts: s.advertBytes }), {
      name: 'SecAggError',
    });
  });

  test('demonstration: each individual update is recovered; they sum to the honest aggregate', async () => {
    const nodes = await participants(3, keys);
    const s = await runToMasked(nodes, new Uint8Array(32).fill(0x32));
    const aggregate = await honestUnmask(nodes, s, keys);
    const recovered = nodes.map((n, i) => reshareAttack(n, i + 1, s));
    const sum = new Uint32Array(s.sa.dim);
    for (const x of recovered) addInto(sum, x);
    assert.deepEqual(sum, aggregate, 'the three recovered updates sum exactly to the unmasked aggregate');
    const q = roundQuantiser(s.a.dp, 3, s.sa.threshold);
    const P = s.a.paramCount;
    for (const [i, x] of recovered.entries()) {
      const v = dequantise(x, q);
      // Layout: delta (P) | weight 1 | clip bit ±½ — one participant's own contribution.
      assert.ok(Math.abs(v[P]! - 1) < 1e-3, `p${i + 1} weight ${v[P]}`);
      assert.ok(Math.abs(Math.abs(v[P + 1]!) - 0.5) < 1e-3, `p${i + 1} clip bit ${v[P + 1]}`);
      let sq = 0;
      for (let j = 0; j < P; j++) sq += v[j]! * v[j]!;
      console.log(
        JSON.stringify({
          participant: `p${i + 1}`,
          deltaNorm: Math.sqrt(sq),
          weight: v[P],
          clipBit: v[P + 1],
        }),
      );
    }
  });
});
