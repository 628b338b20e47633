#!/usr/bin/env node
/**
 * `npm run network:init -- --dir DIR --devices node-1,node-2,node-3 [--network-config FILE]`:
 * creates a roster network for devices that are set up side by side (docker compose): a data
 * dir `<DIR>/<device>` with an identity for each, and `<DIR>/network.json` listing them, the
 * first device being the admin. An existing network.json is kept (the same chain on restart).
 * Also `<DIR>/gateway/`: the gateway's key and a certificate from the admin admitting it as a
 * commanding observer (node/membership/gateway-member.ts), renewed when it nears its expiry.
 * With `--redis-acl FILE`, also the Redis ACL file (jobs/redis-acl.ts): a user per device, named
 * like it and allowed only its own queue, with passwords from `CAIRN_REDIS_<DEVICE>_PASSWORD`
 * (and `_COLLECTOR_`, `_GATEWAY_`, `_HEALTH_`); rewritten on every run, so passwords can change.
 * And `<DIR>/collector/`: the key the collector signs report receipts with (`identity.json`, for
 * CAIRN_COLLECTOR_KEY_FILE) and its public half (`receipt-key.hex`, for a node's
 * --collector-key-file), so nodes count a report delivered only on the collector's receipt.
 * And `<DIR>/public/`: what every container may read, and the only shared folder nodes and the
 * collector mount (compose gives each its own folder besides, never the whole volume, which holds
 * the admin's key): `network.json` (a copy of `<DIR>/network.json`, which stays the original so
 * volumes made before this folder keep their chain) and `collector-receipt-key.hex`.
 * With `--owner UID:GID` (compose: the image's `node` user, as which every service runs), the
 * whole `<DIR>` is given to that user at the end, so volumes written by root containers work.
 * Running as root over folders the services' containers write, it never follows a link there
 * (membership/root-files.ts: regular files only, new files made under random O_EXCL names in
 * `<DIR>/.network-init/`, a folder no container mounts, and renamed into place), and it takes
 * the device ids for the ACL from its own record, `<DIR>/devices.json` (membership/device-record.ts).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { namespace } from '../jobs/queues.ts';
import { passwordEnv, redisAclFile } from '../jobs/redis-acl.ts';
import { nodeIdOfKey } from '../jobs/report-envelope.ts';
import { toHex } from './chain/bytes.ts';
import { readNetworkConfig } from './config-file.ts';
import {
  COLLECTOR_RECEIPT_KEY_FILE,
  ensureDeviceNetwork,
  NETWORK_FILE,
  PUBLIC_DIR,
} from './membership/create-network.ts';
import { deviceKeys } from './membership/device-record.ts';
import { ensureGatewayCertificate, keyOfDataDir, loadOrCreateKeyFile } from './membership/gateway-member.ts';
import { ownTree, parseOwner } from './membership/own-tree.ts';
import { readRegularFile, realDirectory, writeFileNoFollow } from './membership/root-files.ts';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    devices: { type: 'string' },
    'network-config': { type: 'string' },
    'redis-acl': { type: 'string' },
    owner: { type: 'string' },
  },
  strict: true,
});
if (!values.dir || !values.devices) {
  process.stderr.write(
    'usage: npm run network:init -- --dir DIR --devices NAME,NAME,… [--network-config FILE] [--redis-acl FILE] [--owner UID:GID]\n',
  );
  process.exit(2);
}
// Parsed first: a bad value fails before anything is written.
const owner = values.owner === undefined ? undefined : parseOwner(values.owner);
const names = values.devices
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const base = values['network-config'] ? await readNetworkConfig(values['network-config']) : {};
const dir = path.resolve(values.dir);
realDirectory(dir, 0o755);
/** New files are made here and renamed into place: no container mounts it. */
const tmpDir = path.join(dir, '.network-init');
realDirectory(tmpDir);
const foreign = { tmpDir };
const file = ensureDeviceNetwork(dir, names, base, undefined, tmpDir);
const network = await readNetworkConfig(file);
const devices = deviceKeys(dir, names, network, tmpDir);
// The admin's key signs the gateway's certificate: it must be the key the record names for the
// first device, whatever its folder (which its container writes) holds now.
const admin = keyOfDataDir(path.join(dir, names[0]!), foreign);
if (toHex(admin.publicKey) !== toHex(devices.get(names[0]!)!))
  throw new Error(
    `${names[0]}'s identity.json is not the key ${path.join(dir, 'devices.json')} records for it`,
  );
const gateway = await ensureGatewayCertificate({
  keyFile: path.join(dir, 'gateway', 'identity.json'),
  certificateFile: path.join(dir, 'gateway', 'certificate.hex'),
  networkFile: file,
  admin,
  foreign,
});
const collectorKey = toHex(
  loadOrCreateKeyFile(path.join(dir, 'collector', 'identity.json'), foreign).publicKey,
);
// Public: any node may read it (the private half stays in identity.json, 0600).
writeFileNoFollow(path.join(dir, 'collector', 'receipt-key.hex'), `${collectorKey}\n`, {
  mode: 0o644,
  tmpDir,
});
const publicDir = path.join(dir, PUBLIC_DIR);
/** Written whole or not at all: a node starting while network-init re-runs reads old or new. */
const publish = (name: string, bytes: string) =>
  writeFileNoFollow(path.join(publicDir, name), bytes, { mode: 0o644, tmpDir });
realDirectory(publicDir, 0o755);
publish(NETWORK_FILE, readRegularFile(file)!);
publish(COLLECTOR_RECEIPT_KEY_FILE, `${collectorKey}\n`);
if (values['redis-acl']) {
  const password = (user: string) => {
    const v = process.env[passwordEnv(user)];
    if (!v) throw new Error(`${passwordEnv(user)} is not set (the Redis user ${user} needs a password)`);
    return v;
  };
  const nodes = names.map((name) => ({
    user: name,
    nodeId: nodeIdOfKey(devices.get(name)!),
    password: password(name),
  }));
  const acl = redisAclFile({
    prefix: namespace(),
    nodes,
    collectorPassword: password('collector'),
    gatewayPassword: password('gateway'),
    healthPassword: password('health'),
  });
  const aclFile = path.resolve(values['redis-acl']);
  // Password hashes only (SHA-256 of random secrets), readable by Redis's own uid in its
  // container; written whole or not at all.
  writeFileNoFollow(aclFile, acl, { mode: 0o644 });
}
if (owner) ownTree(dir, owner);
process.stdout.write(
  `${JSON.stringify({ network: file, public: publicDir, devices: names, gateway: { key: gateway.publicKeyHex, issued: gateway.issued }, collector: { receiptKey: collectorKey } })}\n`,
);
