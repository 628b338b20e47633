/**
 * network-init's own record of each device's public key, `<DIR>/devices.json`: a file only
 * network-init reaches (no container mounts the volume's top level), written the first time a
 * device is set up. The Redis ACL (each node user may touch only `cairn:node.<its id>:*`) and the
 * admin key check take device ids from here, never again from the device folders, which the
 * devices' own containers write: re-deriving them there let node-3's planted
 * `identity.json -> ../node-1/identity.json` give Redis user node-3 the admin node's queue.
 * A device missing from the record is taken from the genesis roster by name (network.json, also
 * root's), else from its folder's identity (read as a regular file only, created if absent).
 */
import path from 'node:path';
import { fromHex } from '../chain/bytes.ts';
import type { NetworkConfig } from '../chain/network-config.ts';
import { ensureIdentity } from './create-network.ts';
import { readRegularFile, writeFileNoFollow } from './root-files.ts';

export const DEVICE_RECORD_FILE = 'devices.json';

interface DeviceRecord {
  readonly version: 1;
  readonly devices: Record<string, string>;
}

const HEX_KEY = /^[0-9a-f]{64}$/;

function readRecord(file: string): Record<string, string> {
  const text = readRegularFile(file);
  if (text === undefined) return {};
  const parsed = JSON.parse(text) as Partial<DeviceRecord>;
  const devices = parsed.devices;
  if (
    parsed.version !== 1 ||
    typeof devices !== 'object' ||
    devices === null ||
    !Object.values(devices).every((k) => typeof k === 'string' && HEX_KEY.test(k))
  )
    throw new Error(
      `${file} is not a device record (expected {"version":1,"devices":{"<name>":"<64 hex>"}})`,
    );
  return { ...devices };
}

/**
 * Each of `names`' public key (hex), from the record, recording those not in it yet. Refuses
 * two devices with one key (one node user would hold two queues).
 */
export function deviceKeys(
  dir: string,
  names: readonly string[],
  config: NetworkConfig,
  tmpDir?: string,
): Map<string, Uint8Array> {
  const file = path.join(dir, DEVICE_RECORD_FILE);
  const record = readRecord(file);
  let added = false;
  for (const name of names) {
    if (record[name]) continue;
    const genesis = config.members.find((m) => m.name === name);
    record[name] = genesis ? genesis.publicKey.toLowerCase() : ensureIdentity(path.join(dir, name), tmpDir);
    added = true;
  }
  const keys = new Map<string, Uint8Array>();
  const seen = new Map<string, string>();
  for (const name of names) {
    const hex = record[name]!;
    const other = seen.get(hex);
    if (other) throw new Error(`devices ${other} and ${name} have the same key ${hex.slice(0, 16)}…`);
    seen.set(hex, name);
    keys.set(name, fromHex(hex));
  }
  if (added)
    writeFileNoFollow(file, `${JSON.stringify({ version: 1, devices: record } satisfies DeviceRecord)}\n`, {
      mode: 0o600,
      tmpDir,
    });
  return keys;
}
