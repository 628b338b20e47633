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
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { namespace } from '../jobs/queues.ts';
import { passwordEnv, redisAclFile } from '../jobs/redis-acl.ts';
import { toHex } from './chain/bytes.ts';
import { readNetworkConfig } from './config-file.ts';
import { loadOrCreateIdentity } from './identity/identity.ts';
import {
  COLLECTOR_RECEIPT_KEY_FILE,
  ensureDeviceNetwork,
  NETWORK_FILE,
  PUBLIC_DIR,
} from './membership/create-network.ts';
import { ensureGatewayCertificate, keyOfDataDir, loadOrCreateKeyFile } from './membership/gateway-member.ts';
import { ownTree, parseOwner } from './membership/own-tree.ts';

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
const file = ensureDeviceNetwork(dir, names, base);
const gateway = await ensureGatewayCertificate({
  keyFile: path.join(dir, 'gateway', 'identity.json'),
  certificateFile: path.join(dir, 'gateway', 'certificate.hex'),
  networkFile: file,
  admin: keyOfDataDir(path.join(dir, names[0]!)),
});
const collectorKey = toHex(loadOrCreateKeyFile(path.join(dir, 'collector', 'identity.json')).publicKey);
// Public: any node may read it (the private half stays in identity.json, 0600).
writeFileSync(path.join(dir, 'collector', 'receipt-key.hex'), `${collectorKey}\n`, { mode: 0o644 });
const publicDir = path.join(dir, PUBLIC_DIR);
/** Written whole or not at all: a node starting while network-init re-runs reads old or new. */
const publish = (name: string, bytes: string | Buffer) => {
  const target = path.join(publicDir, name);
  writeFileSync(`${target}.tmp`, bytes, { mode: 0o644 });
  renameSync(`${target}.tmp`, target);
};
mkdirSync(publicDir, { recursive: true, mode: 0o755 });
publish(NETWORK_FILE, readFileSync(file));
publish(COLLECTOR_RECEIPT_KEY_FILE, `${collectorKey}\n`);
if (values['redis-acl']) {
  const password = (user: string) => {
    const v = process.env[passwordEnv(user)];
    if (!v) throw new Error(`${passwordEnv(user)} is not set (the Redis user ${user} needs a password)`);
    return v;
  };
  const nodes = [];
  for (const name of names) {
    const id = await loadOrCreateIdentity(path.join(dir, name));
    nodes.push({ user: name, nodeId: id.peerId.toString(), password: password(name) });
  }
  const acl = redisAclFile({
    prefix: namespace(),
    nodes,
    collectorPassword: password('collector'),
    gatewayPassword: password('gateway'),
    healthPassword: password('health'),
  });
  const aclFile = path.resolve(values['redis-acl']);
  mkdirSync(path.dirname(aclFile), { recursive: true });
  // Password hashes only (SHA-256 of random secrets), readable by Redis's own uid in its
  // container; written whole or not at all.
  writeFileSync(`${aclFile}.tmp`, acl, { mode: 0o644 });
  renameSync(`${aclFile}.tmp`, aclFile);
}
if (owner) ownTree(dir, owner);
process.stdout.write(
  `${JSON.stringify({ network: file, public: publicDir, devices: names, gateway: { key: gateway.publicKeyHex, issued: gateway.issued }, collector: { receiptKey: collectorKey } })}\n`,
);
