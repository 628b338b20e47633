/**
 * A node's federated-learning data: its own slice of the corpus (from `--fl-slice K --fl-slices N`)
 * and the held-out test set every node can evaluate on. The split is deterministic, so no node
 * ever sends another its indices; featurising (~3 s) happens once per process, on first use.
 */
import { featurisedCorpus, splitIndices, subset } from '../dataset.ts';
import { DEFAULT_FEATURES, type Examples } from '../features.ts';

export interface SliceOptions {
  /** 0-based index of this node's slice. */
  readonly index: number;
  readonly of: number;
  readonly mode: 'iid' | 'label-skew';
  readonly seed: number;
}

/** Fraction of each class held out (test plus validation); the same on every node. */
export const TEST_FRACTION = 0.2;
/**
 * Of the held-out part, the fraction of each class a coordinator validates a new version on (its
 * loss-regression check, round-runner.ts) and that the accuracy figure never sees: 5% of the
 * corpus (303 mails), leaving 15% (906) for the test set. Training slices do not change.
 */
export const VALIDATION_FRACTION = 0.05;

/** The split every node computes for itself (dataset.ts splitIndices). */
export const heldOutSplit = (seed: number, nodes: number, mode: SliceOptions['mode']) => ({
  seed,
  testFraction: TEST_FRACTION,
  validationFraction: VALIDATION_FRACTION,
  nodes,
  mode,
});

export class FlData {
  private sliceCache: Examples | undefined;
  private testCache: Examples | undefined;
  private validationCache: Examples | undefined;

  readonly slice: SliceOptions | undefined;
  private readonly splitSeed: number;
  /** `splitSeed`: the split's seed when this node has no slice (FL_DEFAULTS.splitSeed, passed in, so data.ts imports nothing of the node's options). */
  constructor(slice: SliceOptions | undefined, splitSeed: number) {
    this.slice = slice;
    this.splitSeed = splitSeed;
    if (slice && !(Number.isInteger(slice.index) && slice.index >= 0 && slice.index < slice.of))
      throw new RangeError(`slice ${slice.index} of ${slice.of}`);
  }

  /** Parameters of the model: hashed features plus the bias. */
  get paramCount(): number {
    return (1 << DEFAULT_FEATURES.bits) + 1;
  }

  /** This node's training examples, or undefined without a slice. */
  train(): Examples | undefined {
    if (!this.slice) return undefined;
    if (!this.sliceCache) {
      const ex = featurisedCorpus();
      const split = splitIndices(ex.labels, heldOutSplit(this.slice.seed, this.slice.of, this.slice.mode));
      this.sliceCache = subset(ex, split.slices[this.slice.index]!);
      this.testCache ??= subset(ex, split.test);
      this.validationCache ??= subset(ex, split.validation);
    }
    return this.sliceCache;
  }

  /** The held-out test set: the accuracy figure (it depends on the seed only, not on the slices). */
  test(): Examples {
    if (!this.testCache) this.heldOut();
    return this.testCache!;
  }

  /** The validation set, disjoint from the test set and from every slice: the loss check's. */
  validation(): Examples {
    if (!this.validationCache) this.heldOut();
    return this.validationCache!;
  }

  private heldOut(): void {
    const ex = featurisedCorpus();
    const split = splitIndices(ex.labels, heldOutSplit(this.slice?.seed ?? this.splitSeed, 1, 'iid'));
    this.testCache ??= subset(ex, split.test);
    this.validationCache ??= subset(ex, split.validation);
  }
}
