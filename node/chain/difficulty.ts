import type { NetworkConfig } from './network-config.ts';

export type DifficultyParams = Pick<
  NetworkConfig,
  'blockTimeMs' | 'retargetInterval' | 'maxRetargetFactor' | 'minTarget' | 'maxTarget'
>;

export const isRetargetHeight = (height: number, p: DifficultyParams) =>
  height > 0 && height % p.retargetInterval === 0;

/**
 * The window a retarget at `height` measures: from block `start` to block `height - 1`,
 * `retargetInterval` block intervals (fewer only for the first retarget, which starts at genesis).
 */
export function retargetWindow(height: number, p: DifficultyParams): { start: number; end: number } {
  return { start: Math.max(0, height - 1 - p.retargetInterval), end: height - 1 };
}

/**
 * New target from the parent's target and the time the window actually took. The measured
 * time is clamped to [expected / factor, expected × factor] before scaling, and the result to
 * the configured bounds, so one retarget never moves the target by more than the factor.
 */
export function retarget(
  parentTarget: bigint,
  windowStartTs: number,
  windowEndTs: number,
  intervals: number,
  p: DifficultyParams,
): bigint {
  const expected = BigInt(intervals) * BigInt(p.blockTimeMs);
  const factor = BigInt(p.maxRetargetFactor);
  let actual = BigInt(Math.max(0, windowEndTs - windowStartTs));
  if (actual * factor < expected) actual = (expected + factor - 1n) / factor;
  if (actual > expected * factor) actual = expected * factor;
  let next = (parentTarget * actual) / expected;
  if (next < p.minTarget) next = p.minTarget;
  if (next > p.maxTarget) next = p.maxTarget;
  return next;
}

/**
 * The target a block at `height` must carry. `timestampAt(h)` gives the timestamp of the
 * block's ancestor at height h (only called for heights in the retarget window).
 */
export function expectedTarget(
  height: number,
  parentTarget: bigint,
  timestampAt: (h: number) => number,
  p: DifficultyParams,
): bigint {
  if (!isRetargetHeight(height, p)) return parentTarget;
  const { start, end } = retargetWindow(height, p);
  return retarget(parentTarget, timestampAt(start), timestampAt(end), end - start, p);
}

/**
 * The easiest target any chain can carry at `height` if a block at `fromHeight` carries
 * `fromTarget`: each retarget height in between eases it by at most the clamp factor (retarget
 * clamps the measured time to expected × factor), and never past maxTarget. Heights at or
 * below `fromHeight` get `fromTarget` itself (capped).
 */
export function easiestTargetReachable(
  fromTarget: bigint,
  fromHeight: number,
  height: number,
  p: DifficultyParams,
): bigint {
  const retargets = Math.max(
    0,
    Math.floor(height / p.retargetInterval) - Math.floor(fromHeight / p.retargetInterval),
  );
  const factor = BigInt(p.maxRetargetFactor);
  let t = fromTarget;
  for (let i = 0; i < retargets && t < p.maxTarget; i++) t *= factor;
  if (t > p.maxTarget) t = p.maxTarget;
  return t;
}
