import { createHash } from 'node:crypto';

/** SHA-256; node's OpenSSL binding is several times faster than a JS implementation on this path. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
