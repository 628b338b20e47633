#!/usr/bin/env node
/**
 * `npm run network:init -- --dir DIR --devices node-1,node-2,node-3 [--network-config FILE]`:
 * creates a roster network for devices that are set up side by side (docker compose): a data
 * dir `<DIR>/<device>` with an identity for each, and `<DIR>/network.json` listing them, the
 * first device being the admin. An existing network.json is kept (the same chain on restart).
 * Also `<DIR>/gateway/`: the gateway's key and a certificate from the admin admitting it as a
 * commanding observer (node/membership/gateway-member.ts), renewed when it nears its expiry.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readNetworkConfig } from './config-file.ts';
import { ensureDeviceNetwork } from './membership/create-network.ts';
import { ensureGatewayCertificate, keyOfDataDir } from './membership/gateway-member.ts';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    devices: { type: 'string' },
    'network-config': { type: 'string' },
  },
  strict: true,
});
if (!values.dir || !values.devices) {
  process.stderr.write(
    'usage: npm run network:init -- --dir DIR --devices NAME,NAME,… [--network-config FILE]\n',
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
process.stdout.write(
  `${JSON.stringify({ network: file, devices: names, gateway: { key: gateway.publicKeyHex, issued: gateway.issued } })}\n`,
);
