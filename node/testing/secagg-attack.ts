/**
 * What a dishonest aggregator does with two unmask answers for different survivor sets: b_u from
 * the set where u survived, u's mask key from the one where it "dropped", and then y_u minus its
 * self mask and its pairwise masks is x_u, u's own update. Tests use it to show the attack works
 * against participants that answer every request and fails against ones that answer once.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesEqual } from '../chain/bytes.ts';
import type { KeyAdvertisement, UnmaskingShares } from '../fl/secagg/messages.ts';
import { pairwiseSeed, type SecAggConfig } from '../fl/secagg/protocol.ts';
import { addInto, expandMask, subInto } from '../fl/secagg/ring.ts';
import { combineShares, type Share } from '../fl/secagg/shamir.ts';

/** x_u, or why it could not be rebuilt from `reveals`. */
export function recoverInput(
  config: SecAggConfig,
  adverts: ReadonlyMap<number, KeyAdvertisement>,
  u: number,
  maskedOfU: Uint32Array,
  reveals: readonly UnmaskingShares[],
): { input: Uint32Array } | { failed: string } {
  const self: Share[] = [];
  const mask: Share[] = [];
  for (const r of reveals)
    for (const s of r.shares)
      if (s.of === u) (s.kind === 'self' ? self : mask).push({ x: r.from, y: s.share });
  const t = config.threshold;
  if (self.length < t) return { failed: `${self.length} self-mask shares of ${u}, need ${t}` };
  if (mask.length < t) return { failed: `${mask.length} mask-key shares of ${u}, need ${t}` };
  const seed = combineShares(self, t);
  const secret = combineShares(mask, t);
  const a = adverts.get(u)!;
  if (!bytesEqual(sha256(seed), a.selfMaskCommitment)) return { failed: 'self-mask seed wrong' };
  if (!bytesEqual(x25519.getPublicKey(secret), a.maskPublic)) return { failed: 'mask key wrong' };
  const x = Uint32Array.from(maskedOfU);
  subInto(x, expandMask(seed, config.dim));
  for (const [v, av] of adverts) {
    if (v === u) continue;
    const m = expandMask(pairwiseSeed(config.roundId, secret, av.maskPublic, u, v), config.dim);
    // u added the mask for v > u and subtracted it for v < u.
    if (v > u) subInto(x, m);
    else addInto(x, m);
  }
  return { input: x };
}
