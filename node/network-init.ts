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
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { namespace } from '../jobs/queues.ts';
import { passwordEnv, redisAclFile } from '../jobs/redis-acl.ts';
import { toHex } from './chain/bytes.ts';
import { readNetworkConfig } from './config-file.ts';
import { loadOrCreateIdentity } from './identity/identity.ts';
import { ensureDeviceNetwork } from './membership/create-network.ts';
import { ensureGatewayCertificate, keyOfDataDir, loadOrCreateKeyFile } from './membership/gateway-member.ts';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    devices: { type: 'string' },
    'network-config': { type: 'string' },
    'redis-acl': { type: 'string' },
  },
  strict: true,
});
if (!values.dir || !values.devices) {
  process.stderr.write(
    'usage: npm run network:init -- --dir DIR --devices NAME,NAME,… [--network-config FILE] [--redis-acl FILE]\n',
  );
  process.exit(2);
}
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
process.stdout.write(
  `${JSON.stringify({ network: file, devices: names, gateway: { key: gateway.publicKeyHex, issued: gateway.issued }, collector: { receiptKey: collectorKey } })}\n`,
);
