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

/** Fraction of each class held out for testing; the same on every node. */
export const TEST_FRACTION = 0.2;

export class FlData {
  private sliceCache: Examples | undefined;
  private testCache: Examples | undefined;

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
      const split = splitIndices(ex.labels, {
        seed: this.slice.seed,
        testFraction: TEST_FRACTION,
        nodes: this.slice.of,
        mode: this.slice.mode,
      });
      this.sliceCache = subset(ex, split.slices[this.slice.index]!);
      this.testCache ??= subset(ex, split.test);
    }
    return this.sliceCache;
  }

  /** The held-out test set (it depends on the seed only, not on the number of slices). */
  test(): Examples {
    if (!this.testCache) {
      const ex = featurisedCorpus();
      const seed = this.slice?.seed ?? this.splitSeed;
      const split = splitIndices(ex.labels, { seed, testFraction: TEST_FRACTION, nodes: 1, mode: 'iid' });
      this.testCache = subset(ex, split.test);
    }
    return this.testCache;
  }
}
