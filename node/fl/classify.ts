/**
 * Classifying one text with a model version: the same featurisation the model was trained on
 * (features.ts, the feature width read off the model's size) and its logistic output. Pure, so
 * the node API, the CLI and the gateway all give the same verdict and score for the same version.
 */
import { DEFAULT_FEATURES, featurizeText, sparseDot } from './features.ts';
import { type Params, sigmoid } from './logistic.ts';

/**
 * The longest text classified, in UTF-16 code units: training reads only this much of a mail's
 * body (features.ts maxChars), so more could not change the answer, only the cost.
 */
export const MAX_CLASSIFY_CHARS = DEFAULT_FEATURES.maxChars;
/** P(spam) at or above which a text is spam (the threshold `evaluate` scores accuracy with). */
export const SPAM_THRESHOLD = 0.5;

export interface Verdict {
  readonly spam: boolean;
  /** P(spam) under the model, in [0, 1]. */
  readonly score: number;
}

export type ClassifyErrorCode = 'text-too-long' | 'not-text' | 'bad-model';

export class ClassifyError extends Error {
  readonly code: ClassifyErrorCode;
  constructor(code: ClassifyErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'ClassifyError';
  }
}

/** log2 of the model's weight count: the hashing width it was trained with. */
export function featureBitsOf(params: Params): number {
  const dim = params.length - 1;
  const bits = Math.log2(dim);
  if (!Number.isInteger(bits) || bits < 1 || bits > 24)
    throw new ClassifyError('bad-model', `a model of ${params.length} parameters has no feature width`);
  return bits;
}

/** Throws ClassifyError unless `text` is a string the classifier takes. */
export function checkText(text: unknown): string {
  if (typeof text !== 'string') throw new ClassifyError('not-text', 'text must be a string');
  if (text.length > MAX_CLASSIFY_CHARS)
    throw new ClassifyError(
      'text-too-long',
      `text is ${text.length} characters; at most ${MAX_CLASSIFY_CHARS}`,
    );
  return text;
}

/**
 * The model's verdict on `text`, read as a mail body (no headers: a person pastes a message,
 * not its routing). The score is computed exactly as `predictProba` does in training.
 */
export function classifyText(params: Params, text: string): Verdict {
  const row = featurizeText(checkText(text), featureBitsOf(params));
  const z = sparseDot(row, params) + params[params.length - 1]!;
  const score = sigmoid(z);
  return { spam: score >= SPAM_THRESHOLD, score };
}
