import { Buffer } from 'node:buffer';
import type { Hex } from './bytes.ts';
import type { PublicKey } from './signature.ts';
import type { SignatureVerifier } from './signature-cache.ts';
import type { SealedEntry } from './types.ts';

/** What the verifier needs of the mempool: the entry it holds under an id. */
export interface PooledEntries {
  get(idHex: Hex): SealedEntry | undefined;
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/**
 * The verifier block bodies are validated with: an entry the mempool holds byte for byte (the
 * same signature over the same id by the same author) had its signature checked when it was
 * admitted, so it is not checked again; anything else goes to `inner` (the signature cache).
 *
 * Why not the cache alone: the cache is bounded (200,000 signatures) and evicts oldest first,
 * so a mempool that had taken more entries than that in advance missed on every one of them
 * in arrival order, and validation fell back to a signature check per entry on the main
 * thread: bench:chain's warm import took 1.4 s to validate 10,000 blocks of 10 entries and
 * 25.8 s for 20,000. The mempool itself is bounded, and what it holds is known valid.
 *
 * The id excludes the signature, so the id alone proves nothing: the signature, message and
 * key are compared to the pooled entry's own.
 */
export class PooledEntryVerifier implements SignatureVerifier {
  /** Entry signatures answered from the mempool (tests and metrics). */
  pooledHits = 0;

  private readonly pool: PooledEntries;
  private readonly inner: SignatureVerifier;
  constructor(pool: PooledEntries, inner: SignatureVerifier) {
    this.pool = pool;
    this.inner = inner;
  }

  verify(signature: Uint8Array, message: Uint8Array, publicKey: PublicKey, holder?: object): boolean {
    const idHex = (holder as Partial<SealedEntry> | undefined)?.idHex;
    const pooled = typeof idHex === 'string' ? this.pool.get(idHex) : undefined;
    if (
      pooled &&
      same(pooled.signature, signature) &&
      same(pooled.id, message) &&
      same(pooled.author, publicKey)
    ) {
      this.pooledHits++;
      return true;
    }
    return this.inner.verify(signature, message, publicKey, holder);
  }

  hasCheckedBlock(block: object): boolean {
    return this.inner.hasCheckedBlock?.(block) ?? false;
  }
}
