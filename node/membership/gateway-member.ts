/**
 * The gateway as a member of a roster network: it holds an Ed25519 key of its own (an identity
 * file in the node's seed format, created on first start) and signs every admin command with it
 * (jobs/command-codec.ts); nodes run a command only if its signer holds the `command` capability.
 *
 * Its membership is GATEWAY_MEMBER: role `observer`, the closest existing role (it syncs no
 * chain, and an observer can never mine, submit or coordinate whatever a certificate says), with
 * `command` alone. It is admitted by a certificate an admin signs, kept next to its key and sent
 * with each command, so a network that already runs (the demo resumed, compose restarted) admits
 * a gateway without any chain entry; revoking the key on the chain voids it like any member's.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fromHex, toHex } from '../chain/bytes.ts';
import { chainIdOf } from '../chain/network-config.ts';
import { keyPairFromSeed, type SigningKey } from '../chain/signature.ts';
import { readNetworkConfig } from '../config-file.ts';
import {
  type Certificate,
  certificateForChain,
  certificateSignatureValid,
  decodeCertificate,
  signCertificate,
} from './certificate.ts';
import { type ForeignFolder, readOwnOrForeign, writeFileNoFollow } from './root-files.ts';
import type { Capability, Role } from './view.ts';

export const GATEWAY_MEMBER: { readonly role: Role; readonly capabilities: readonly Capability[] } = {
  role: 'observer',
  capabilities: ['command'],
};
/** A gateway certificate is issued for a year and renewed when less than a month is left. */
export const GATEWAY_CERTIFICATE_VALID_MS = 365 * 86_400_000;
export const GATEWAY_CERTIFICATE_RENEW_MS = 30 * 86_400_000;

/** Whole or not at all, and never through a link planted at `file` (root-files.ts). */
const writeAtomic = (file: string, text: string, foreign?: ForeignFolder) => {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileNoFollow(file, text, { mode: 0o600, tmpDir: foreign?.tmpDir });
};

/**
 * The key in an identity file (`{"version":1,"seed":"<64 hex>"}`), created there if absent.
 * `foreign`: network-init, as root in folders services write, reads it as a regular file only.
 */
export function loadOrCreateKeyFile(file: string, foreign?: ForeignFolder): SigningKey {
  const text = readOwnOrForeign(file, foreign);
  if (text !== undefined) {
    const parsed = JSON.parse(text) as { version?: number; seed?: string };
    if (parsed.version !== 1 || typeof parsed.seed !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.seed))
      throw new Error(`${file} is not a Cairn identity file (expected {"version":1,"seed":"<64 hex>"})`);
    return keyPairFromSeed(fromHex(parsed.seed));
  }
  const seed = randomBytes(32).toString('hex');
  writeAtomic(file, `${JSON.stringify({ version: 1, seed, created: new Date().toISOString() })}\n`, foreign);
  return keyPairFromSeed(fromHex(seed));
}

/** A certificate file: the certificate's canonical bytes in hex (one line). */
export function readCertificateFile(file: string, foreign?: ForeignFolder): Certificate {
  const text = readOwnOrForeign(file, foreign);
  if (text === undefined) throw new Error(`no certificate file ${file}`);
  return decodeCertificate(fromHex(text.trim()));
}

export interface GatewayAdmission {
  readonly keyFile: string;
  readonly certificateFile: string;
  readonly publicKeyHex: string;
  /** False when a valid certificate was already there. */
  readonly issued: boolean;
}

/**
 * Makes sure the gateway key in `keyFile` has a current certificate in `certificateFile`, signed
 * by `admin` for the network in `networkFile`: issues one when there is none, it names another
 * key, network or issuer, or it expires within GATEWAY_CERTIFICATE_RENEW_MS.
 */
export async function ensureGatewayCertificate(o: {
  readonly keyFile: string;
  readonly certificateFile: string;
  readonly networkFile: string;
  readonly admin: SigningKey;
  readonly name?: string;
  readonly now?: number;
  /** network-init: the gateway's folder is the gateway's to write (root-files.ts). */
  readonly foreign?: ForeignFolder;
}): Promise<GatewayAdmission> {
  const now = o.now ?? Date.now();
  const key = loadOrCreateKeyFile(o.keyFile, o.foreign);
  const chainId = chainIdOf(await readNetworkConfig(o.networkFile));
  const publicKeyHex = toHex(key.publicKey);
  let current: Certificate | undefined;
  try {
    current = readCertificateFile(o.certificateFile, o.foreign);
  } catch {
    current = undefined;
  }
  const fine =
    current &&
    current.subjectHex === publicKeyHex &&
    current.issuerHex === toHex(o.admin.publicKey) &&
    certificateForChain(current, chainId) &&
    certificateSignatureValid(current) &&
    current.role === GATEWAY_MEMBER.role &&
    current.capabilities.join() === GATEWAY_MEMBER.capabilities.join() &&
    current.expiresAtMs - now > GATEWAY_CERTIFICATE_RENEW_MS;
  if (!fine) {
    const cert = signCertificate(
      {
        chainId,
        subject: key.publicKey,
        name: o.name ?? 'gateway',
        role: GATEWAY_MEMBER.role,
        capabilities: GATEWAY_MEMBER.capabilities,
        // A little in the past: a node whose clock lags must not find it not yet valid.
        issuedAtMs: now - 60_000,
        expiresAtMs: now + GATEWAY_CERTIFICATE_VALID_MS,
      },
      o.admin,
    );
    writeAtomic(o.certificateFile, `${toHex(cert.encoded)}\n`, o.foreign);
  }
  return { keyFile: o.keyFile, certificateFile: o.certificateFile, publicKeyHex, issued: !fine };
}

/** The key of a device whose data dir holds an identity file (the admin's, when issuing). */
export const keyOfDataDir = (dataDir: string, foreign?: ForeignFolder): SigningKey => {
  const file = path.join(dataDir, 'identity.json');
  if (readOwnOrForeign(file, foreign) === undefined) throw new Error(`no identity in ${dataDir}`);
  return loadOrCreateKeyFile(file, foreign);
};
