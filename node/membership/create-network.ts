/**
 * Creating a roster network: the config that, with its genesis block, defines a new chain whose
 * first admin is whoever creates it. `npm run node` on a new data dir without --network-config
 * writes one to `<dataDir>/network.json` with the node's own key as admin; the demo, compose
 * and the cluster harness create one listing every device they start.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { toHex } from '../chain/bytes.ts';
import { DEFAULT_NETWORK, type GenesisMember, type NetworkConfig } from '../chain/network-config.ts';
import { keyPairFromSeed } from '../chain/signature.ts';
import { networkConfigToJson, readNetworkConfig } from '../config-file.ts';
import { readRegularFile, realDirectory, writeFileNoFollow } from './root-files.ts';
import { CAPABILITIES, type Capability } from './view.ts';

/**
 * What a full member of a network Cairn creates may do: everything but administer and command
 * other nodes (that is the gateway's, see GATEWAY_MEMBER).
 */
export const FULL_MEMBER_CAPABILITIES: readonly Capability[] = CAPABILITIES.filter((c) => c !== 'command');

export const NETWORK_FILE = 'network.json';
/**
 * network-init's folder of what every device may read (a copy of the network file, the
 * collector's receipt key): compose mounts it read-only into each node beside the node's own
 * folder, so no node sees another's (or the admin's) identity.
 */
export const PUBLIC_DIR = 'public';
export const COLLECTOR_RECEIPT_KEY_FILE = 'collector-receipt-key.hex';

/** A roster network over `base` (default DEFAULT_NETWORK's consensus parameters). */
export function rosterNetwork(
  admins: readonly string[],
  members: readonly GenesisMember[] = [],
  base: Partial<NetworkConfig> = {},
  now = Date.now(),
): NetworkConfig {
  return {
    ...DEFAULT_NETWORK,
    name: `cairn-${admins[0]?.slice(0, 8) ?? 'network'}`,
    // Whole seconds: the file is read back by people, and a new chain's first retarget window
    // should not span months of "time since genesis".
    genesisTimestamp: Math.floor(now / 1000) * 1000,
    genesisMessage: 'Cairn: a new network',
    ...base,
    membership: 'roster',
    admins: admins.map((a) => a.toLowerCase()),
    members,
  };
}

/**
 * The network of a data dir started without --network-config: `<dataDir>/network.json`, created
 * on first start as a roster network with `ownKeyHex` as its only admin.
 */
export async function loadOrCreateOwnNetwork(
  dataDir: string,
  ownKeyHex: string,
): Promise<{ config: NetworkConfig; created: boolean; file: string }> {
  const file = path.join(dataDir, NETWORK_FILE);
  if (existsSync(file)) return { config: await readNetworkConfig(file), created: false, file };
  const config = rosterNetwork([ownKeyHex]);
  await mkdir(dataDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, networkConfigToJson(config));
  await rename(tmp, file);
  return { config: await readNetworkConfig(file), created: true, file };
}

/**
 * The public key of the identity in `dataDir`, creating the identity (node/identity's seed file
 * format) if there is none: so a network can list a device before the device first starts.
 */
export function ensureIdentity(dataDir: string, tmpDir?: string): string {
  const file = path.join(dataDir, 'identity.json');
  // network-init runs this as root in folders devices write: never through their links
  // (root-files.ts), a link or non-regular file is an error.
  realDirectory(dataDir);
  const text = readRegularFile(file);
  let seedHex: string;
  if (text !== undefined) {
    const parsed = JSON.parse(text) as { version?: number; seed?: unknown };
    if (parsed.version !== 1 || typeof parsed.seed !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.seed))
      throw new Error(`${file} is not a Cairn identity file (expected {"version":1,"seed":"<64 hex>"})`);
    seedHex = parsed.seed;
  } else {
    seedHex = randomBytes(32).toString('hex');
    writeFileNoFollow(
      file,
      `${JSON.stringify({ version: 1, seed: seedHex, created: new Date().toISOString() })}\n`,
      { mode: 0o600, tmpDir },
    );
  }
  return toHex(keyPairFromSeed(Buffer.from(seedHex, 'hex')).publicKey);
}

export function ensureDeviceNetwork(
  dir: string,
  names: readonly string[],
  base: Partial<NetworkConfig> = {},
  file = path.join(dir, NETWORK_FILE),
  /** Where new identity files are written before they are renamed into a device's folder. */
  tmpDir?: string,
): string {
  if (existsSync(file)) return file;
  const [first, ...rest] = names;
  if (!first) throw new Error('a network needs at least one device');
  const admin = ensureIdentity(path.join(dir, first), tmpDir);
  const members: GenesisMember[] = rest.map((name) => ({
    publicKey: ensureIdentity(path.join(dir, name), tmpDir),
    name,
    role: 'submind',
    capabilities: [...FULL_MEMBER_CAPABILITIES],
  }));
  const config = rosterNetwork(
    [admin],
    [{ publicKey: admin, name: first, role: 'hub', capabilities: [...FULL_MEMBER_CAPABILITIES] }, ...members],
    base,
  );
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileNoFollow(file, networkConfigToJson(config), { mode: 0o644, tmpDir });
  return file;
}
