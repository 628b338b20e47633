/**
 * A model version's weights as a report carries them: the canonical encoding
 * (node/fl/net/model-codec.ts) in base64, and the check the collector makes before keeping
 * them. The weights are content-addressed: bytes whose SHA-256 is the version's committed hash
 * are that version, whoever sent them, so a node cannot pass other weights off as a version.
 */
import { toHex } from '../node/chain/bytes.ts';
import { decodeModel, MAX_MODEL_BYTES, modelHash } from '../node/fl/net/model-codec.ts';

/** Base64 of the largest model the codec accepts (MAX_MODEL_BYTES): the report field's bound. */
export const MAX_WEIGHTS_BASE64 = Math.ceil(MAX_MODEL_BYTES / 3) * 4;

export const weightsToBase64 = (encoded: Uint8Array): string => Buffer.from(encoded).toString('base64');

export type WeightsProblemCode = 'weights-mismatch' | 'malformed-weights';

export class WeightsProblem extends Error {
  readonly code: WeightsProblemCode;
  constructor(code: WeightsProblemCode, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * The encoded bytes of version `hash` from a report's base64, and their parameter count.
 * Throws WeightsProblem when they do not hash to `hash` or are not a canonical model encoding.
 */
export function checkWeights(
  hash: string,
  base64: string,
): { bytes: Uint8Array<ArrayBuffer>; paramCount: number } {
  const bytes = new Uint8Array(Buffer.from(base64, 'base64'));
  if (bytes.length > MAX_MODEL_BYTES)
    throw new WeightsProblem('malformed-weights', `${bytes.length} bytes of weights`);
  const got = toHex(modelHash(bytes));
  if (got !== hash)
    throw new WeightsProblem('weights-mismatch', `weights hash to ${got}, the version is ${hash}`);
  try {
    return { bytes, paramCount: decodeModel(bytes).length };
  } catch (err) {
    throw new WeightsProblem('malformed-weights', (err as Error).message);
  }
}
