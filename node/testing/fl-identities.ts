/**
 * Real Ed25519 identity keys for in-process FL tests whose members go by names ('p1', 'boss')
 * rather than peer ids: `signer(name)` signs as that member (its key adverts), `verify` checks a
 * signature against the key of the member it names and fails for a name without a key. In
 * production the key is the one the peer id embeds (survivor-set.ts peerIdVerifier).
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import type { SurvivorSigner, SurvivorVerifier } from '../fl/net/survivor-set.ts';

export interface FlIdentities {
  signer(name: string): SurvivorSigner;
  readonly verify: SurvivorVerifier;
}

export function flIdentities(): FlIdentities {
  const keys = new Map<string, Promise<PrivateKey>>();
  const keyOf = (name: string) => {
    const known = keys.get(name);
    if (known) return known;
    const k = generateKeyPair('Ed25519');
    keys.set(name, k);
    return k;
  };
  return {
    signer: (name) => async (m) => (await keyOf(name)).sign(m),
    verify: async (name, m, sig) => {
      const k = keys.get(name);
      return k ? (await k).publicKey.verify(m, sig) : false;
    },
  };
}
