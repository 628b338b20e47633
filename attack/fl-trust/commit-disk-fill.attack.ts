/**
 * Finding 5 (MEDIUM): `fl-commit` stores whatever model bytes the coordinator sends (any valid
 * encoding up to 2^17+1 parameters, ~1 MiB), whether or not a model entry will ever name them, and
 * nothing deletes a stored model. announce + commit is one cycle; at the protocols' per-peer
 * budgets (60 of each per 10 s) a coordinator writes ~6 MiB/s to every trainer's disk, forever.
 *
 *   npm exec -- node --import tsx --test attack/fl-trust/commit-disk-fill.attack.ts
 *
 * Fails until commit keeps at most a bounded amount of unreferenced model bytes (e.g. hold the
 * round's candidate in memory, of the announced parameter count, and store it once a main-chain
 * model entry names its hash; or GC models no main-chain entry names).
 */
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { subset } from '../../node/fl/dataset.ts';
import { zeroParams } from '../../node/fl/logistic.ts';
import { encodeModel, MAX_PARAMS } from '../../node/fl/net/model-codec.ts';
import { ModelStore } from '../../node/fl/net/model-store.ts';
import { FlParticipant, MAX_HELD_ROUNDS } from '../../node/fl/net/participant.ts';
import { announcement, COORD, cleanup, coordinatorKeys, data, gate, tmp } from './lib.ts';

after(cleanup);

describe('attack: commit as a disk writer', async () => {
  const keys = await coordinatorKeys();

  test('20 announce+commit cycles with models no entry names leave at most MAX_HELD_ROUNDS on disk', async () => {
    const { ex, split } = data();
    const dir = path.join(await tmp(), 'models');
    const store = new ModelStore(dir);
    const p = new FlParticipant({
      self: 'p1',
      data: () => subset(ex, split.slices[0]!),
      privacy: await gate(),
      resolveModel: async (_h, count) => zeroParams(count - 1),
      storeModel: (bytes) => store.putEncoded(bytes),
      verifySurvivors: keys.verify,
    });
    const cycles = 20;
    const t0 = Date.now();
    for (let r = 0; r < cycles; r++) {
      const roundId = new Uint8Array(32).fill(r + 1);
      assert.equal((await p.announce(COORD, announcement(roundId))).accept, true);
      // Not this round's model, not even its size: MAX_PARAMS parameters, unique per cycle.
      const junk = new Float64Array(MAX_PARAMS);
      junk[0] = r + 1;
      await p.commit(COORD, { roundId, model: encodeModel(junk) }).catch(() => {});
    }
    const files = await readdir(dir).catch(() => [] as string[]);
    let bytes = 0;
    for (const f of files) bytes += (await stat(path.join(dir, f))).size;
    console.log(
      JSON.stringify({
        cycles,
        files: files.length,
        bytes,
        ms: Date.now() - t0,
        nothingHeld: p.active === 0,
      }),
    );
    assert.ok(
      files.length <= MAX_HELD_ROUNDS,
      `${files.length} models (${(bytes / 2 ** 20).toFixed(1)} MiB) written by ${cycles} commits no chain entry names`,
    );
  });
});
