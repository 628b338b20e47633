/**
 * One real Ed25519 coordinator key for in-process FL tests: `sign` for coordinateRound, `verify`
 * for FlParticipant. The tests' local links each claim their own peer id as the coordinator, so
 * `verify` checks against this key whatever id it is given (production uses the peer id's key).
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { SurvivorSigner, SurvivorVerifier } from '../fl/net/survivor-set.ts';

export async function survivorKeys(): Promise<{ sign: SurvivorSigner; verify: SurvivorVerifier }> {
  const key = await generateKeyPair('Ed25519');
  return {
    sign: async (m) => key.sign(m),
    verify: async (_coordinator, m, sig) => key.publicKey.verify(m, sig),
  };
}
