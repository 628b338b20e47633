/**
 * The key the gateway signs admin commands with, and the certificate that admits it to the
 * network's roster (node/membership/gateway-member.ts). Env: CAIRN_GATEWAY_KEY (identity file,
 * created on first start; default .data/gateway/identity.json) and CAIRN_GATEWAY_CERTIFICATE
 * (hex certificate file; default certificate.hex next to the key, used if it exists).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { toHex } from '../node/chain/bytes.ts';
import { generateSigningKey, type SigningKey } from '../node/chain/signature.ts';
import { loadOrCreateKeyFile, readCertificateFile } from '../node/membership/gateway-member.ts';

export interface CommandSigner {
  readonly key: SigningKey;
  /** The signer's certificate bytes, sent with each command (none: the roster must list the key). */
  readonly certificate?: Uint8Array;
}

export const DEFAULT_GATEWAY_KEY_FILE = '.data/gateway/identity.json';

export function loadCommandSigner(env: NodeJS.ProcessEnv = process.env): CommandSigner & {
  readonly keyFile: string;
  readonly certificateFile: string | undefined;
} {
  const keyFile = path.resolve(env.CAIRN_GATEWAY_KEY || DEFAULT_GATEWAY_KEY_FILE);
  const key = loadOrCreateKeyFile(keyFile);
  const named = env.CAIRN_GATEWAY_CERTIFICATE;
  const certificateFile = named
    ? path.resolve(named)
    : existsSync(path.join(path.dirname(keyFile), 'certificate.hex'))
      ? path.join(path.dirname(keyFile), 'certificate.hex')
      : undefined;
  const cert = certificateFile ? readCertificateFile(certificateFile) : undefined;
  if (cert && cert.subjectHex !== toHex(key.publicKey))
    throw new Error(`${certificateFile} certifies ${cert.subjectHex}, not the key in ${keyFile}`);
  return { key, certificate: cert?.encoded, keyFile, certificateFile };
}

/** A throwaway key (tests, or a client that was given none): nodes refuse what it signs unless told to trust it. */
export const ephemeralSigner = (): CommandSigner => ({ key: generateSigningKey() });
