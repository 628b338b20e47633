import { toLatin1 } from './bytes.ts';
import { type PublicKey, verifyNative } from './signature.ts';

export interface SignatureVerifier {
  /**
   * `holder` is the immutable object the signature belongs to (a sealed block or entry); a
   * verifier may remember that it already checked that very object.
   */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: PublicKey, holder?: object): boolean;
  /** Whether every signature of this very block object (miner's and entries') was found valid. */
  hasCheckedBlock?(block: object): boolean;
}

/** The exact bytes as a string key: no hashing on the hot path, and no collisions by construction. */
const cacheKey = (signature: Uint8Array, message: Uint8Array, publicKey: PublicKey) =>
  `${toLatin1(publicKey)}${toLatin1(signature)}${message.length}:${toLatin1(message)}`;

/**
 * Remembers signatures already found valid, as Bitcoin's sigcache does: an entry checked when
 * it entered the mempool, or a batch checked in parallel by the worker pool, is not checked
 * again when its block is validated. Only valid results are cached.
 */
export class CachedVerifier implements SignatureVerifier {
  private readonly valid = new Set<string>();
  /** Sealed objects whose signature the worker pool checked: no key to build, no lookup string. */
  private readonly checkedHolders = new WeakSet<object>();
  /** Sealed blocks whose every signature the worker pool checked: one mark instead of eleven. */
  private readonly checkedBlocks = new WeakSet<object>();

  private readonly capacity;
  private readonly verifyFn: (s: Uint8Array, m: Uint8Array, p: PublicKey) => boolean;
  constructor(
    capacity = 200_000,
    verifyFn: (s: Uint8Array, m: Uint8Array, p: PublicKey) => boolean = verifyNative,
  ) {
    this.capacity = capacity;
    this.verifyFn = verifyFn;
  }

  verify(signature: Uint8Array, message: Uint8Array, publicKey: PublicKey, holder?: object): boolean {
    if (holder && this.checkedHolders.has(holder)) return true;
    // Fixed lengths keep the string key unambiguous.
    if (signature.length !== 64 || publicKey.length !== 32) return false;
    const key = cacheKey(signature, message, publicKey);
    if (this.valid.has(key)) return true;
    if (!this.verifyFn(signature, message, publicKey)) return false;
    this.remember(key);
    return true;
  }

  hasCheckedHolder(holder: object): boolean {
    return this.checkedHolders.has(holder);
  }

  /** Records that the signature carried by `holder` (sealed, never mutated) was verified elsewhere. */
  markHolderValid(holder: object): void {
    this.checkedHolders.add(holder);
  }

  /**
   * Records a signature verified elsewhere both for its holder and by its bytes: an entry the
   * pool checked on admission comes back as another object, decoded from the block that
   * includes it, and must still be found (a 1,000-entry block otherwise costs 0.2 s of checks).
   */
  markSignatureValid(signature: Uint8Array, message: Uint8Array, publicKey: PublicKey, holder: object): void {
    this.checkedHolders.add(holder);
    if (signature.length === 64 && publicKey.length === 32)
      this.remember(cacheKey(signature, message, publicKey));
  }

  hasCheckedBlock(block: object): boolean {
    return this.checkedBlocks.has(block);
  }

  /** Records that every signature of `block` (sealed, never mutated) was verified elsewhere. */
  markBlockValid(block: object): void {
    this.checkedBlocks.add(block);
  }

  private remember(key: string): void {
    if (this.valid.size >= this.capacity) {
      // A Set iterates in insertion order: dropping the first key evicts the oldest.
      const oldest = this.valid.values().next().value;
      if (oldest !== undefined) this.valid.delete(oldest);
    }
    this.valid.add(key);
  }

  get size(): number {
    return this.valid.size;
  }
}
