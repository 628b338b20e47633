import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import type { Ed25519PrivateKey, PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { toHex } from '../chain/bytes.ts';
import { keyPairFromSeed, type SigningKey } from '../chain/signature.ts';

export const ROLES = ['submind', 'hub', 'backup', 'observer'] as const;
export type Role = (typeof ROLES)[number];
export const CAPABILITIES = ['mine', 'train', 'relay', 'archive'] as const;
export type Capability = (typeof CAPABILITIES)[number];

/**
 * A node's identity: one Ed25519 key that is both its libp2p peer id and the key that signs
 * its blocks and entries. Kept as a 32-byte seed in `<dataDir>/identity.json` (mode 0600).
 */
export interface NodeIdentity {
  readonly signingKey: SigningKey;
  readonly privateKey: Ed25519PrivateKey;
  readonly peerId: PeerId;
  readonly publicKeyHex: string;
}

const FILE = 'identity.json';

export async function identityFromSeed(seed: Uint8Array): Promise<NodeIdentity> {
  const signingKey = keyPairFromSeed(seed);
  const privateKey = await generateKeyPairFromSeed('Ed25519', seed);
  return {
    signingKey,
    privateKey,
    peerId: peerIdFromPrivateKey(privateKey),
    publicKeyHex: toHex(signingKey.publicKey),
  };
}

/** Loads the identity of a data dir, creating it on first start. */
export async function loadOrCreateIdentity(dataDir: string): Promise<NodeIdentity> {
  const file = path.join(dataDir, FILE);
  let seedHex: string | undefined;
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as { version?: number; seed?: string };
    if (parsed.version !== 1 || typeof parsed.seed !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.seed)) {
      throw new Error(`${file} is not a Cairn identity file (expected {"version":1,"seed":"<64 hex>"})`);
    }
    seedHex = parsed.seed;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!seedHex) {
    seedHex = randomBytes(32).toString('hex');
    await mkdir(dataDir, { recursive: true });
    // Write-then-rename so a crash never leaves half an identity behind; the temp file is new
    // (O_EXCL, a random name), so nothing planted under a guessable name is written through.
    const tmp = `${file}.${randomBytes(12).toString('hex')}.tmp`;
    await writeFile(
      tmp,
      `${JSON.stringify({ version: 1, seed: seedHex, created: new Date().toISOString() })}\n`,
      { mode: 0o600, flag: 'wx' },
    );
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  }
  return identityFromSeed(Buffer.from(seedHex, 'hex'));
}
