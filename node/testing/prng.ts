/** mulberry32, seeded, so randomised tests and fuzz runs repeat exactly (one implementation: node/fl/random.ts). */

import type { RoundRandomness } from '../fl/local-round.ts';
import { gaussian, seededUniform } from '../fl/random.ts';

export { seededUniform as seededRandom } from '../fl/random.ts';

/** Seeded stand-in for the CSPRNG byte source (keys, Shamir coefficients). */
export function seededBytes(seed: number): (n: number) => Uint8Array {
  const u = seededUniform(seed);
  return (n) => Uint8Array.from({ length: n }, () => Math.floor(u() * 256));
}

/** Seeded stand-in for cryptoRoundRandomness(): bytes from `seed`, noise from seed + 1, rounding from seed + 2. */
export function seededRoundRandomness(seed: number): RoundRandomness {
  return {
    normal: gaussian(seededUniform(seed + 1)),
    uniform: seededUniform(seed + 2),
    bytes: seededBytes(seed),
  };
}
