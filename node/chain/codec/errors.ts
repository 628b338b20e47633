/** Why a byte string could not be decoded. Every decoder failure is one of these, never a RangeError. */
export type DecodeErrorCode =
  | 'truncated'
  | 'trailing-bytes'
  | 'oversized'
  | 'non-canonical'
  | 'invalid-value'
  | 'unknown-tag'
  | 'unsupported-version';

export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  readonly code: DecodeErrorCode;
  constructor(code: DecodeErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}
