/**
 * ATK-13 finding 7 (HIGH): in compose every node container and the collector can read the admin's
 * identity key (and every other node's, and the gateway's).
 *
 * network-init writes every identity into the one `cairn-data` volume: /cairn/node-1/identity.json
 * (node-1 is the network's only admin), /cairn/node-2/…, /cairn/gateway/identity.json. The gateway
 * mounts only its own subpath ("never the nodes' keys", docker-compose.yml), but node-1, node-2
 * and node-3 each mount the whole volume read-write at /cairn, and the collector mounts it whole
 * read-only; the image has no USER, so every container is root and the files' 0600 mode stops
 * nobody. Whoever gets code execution in node-3 (a plain miner, which parses every peer's
 * blocks, gossip and FL traffic) or in the collector (which parses every report) reads node-1's
 * seed and is the network's admin:
 * member.add/revoke, admin votes, checkpoints, certificates for any key with any capability; it
 * can also sign reports and blocks as any node, and (read-write) replace node-1's identity or
 * chain store. The per-node Redis ACL users, which contain a compromised node to its own queue,
 * are moot once that node holds every other node's key.
 *
 * Figures: compose's own network-init run for real (temp dir for the volume): node-1's identity
 * at cairn-data:node-1/identity.json; services that can read it: network-init (writes it),
 * node-1, node-2, node-3 (rw), collector (ro).
 *
 * Run: npm exec -- node --test attack/control/compose-key-volume.attack.ts
 *
 * Fix that makes it pass: each node mounts only its own subpath (`volume: {subpath: node-N}`,
 * as the gateway does) plus the network config read-only (a `network` subpath or a config file
 * network-init writes apart from the keys); the collector mounts only the network config; and
 * the image runs as a non-root USER so the files' modes mean something.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type AclRig, compose, startComposeRedis } from './acl-rig.ts';

type Mount = string | { type?: string; source?: string; target?: string; volume?: { subpath?: string } };

/** The cairn-data subpath a service's mounts expose ('' = the whole volume), or undefined. */
function cairnDataView(mounts: readonly Mount[] | undefined): string[] {
  const out: string[] = [];
  for (const m of mounts ?? []) {
    if (typeof m === 'string') {
      const [source] = m.split(':');
      if (source === 'cairn-data') out.push('');
    } else if (m.source === 'cairn-data') out.push(m.volume?.subpath ?? '');
  }
  return out;
}

let rig: AclRig;
before(async () => {
  rig = await startComposeRedis();
});
after(async () => {
  await rig?.close();
});

test('compose: only node-1 can read the admin key network-init writes for it', (t) => {
  const adminKey = 'node-1/identity.json';
  assert.ok(existsSync(path.join(rig.dir, 'cairn', adminKey)), 'network-init wrote node-1’s identity there');
  const services = compose.services as Record<string, { volumes?: Mount[] }>;
  const readers = Object.entries(services)
    .filter(([, s]) => cairnDataView(s.volumes).some((sub) => sub === '' || adminKey.startsWith(`${sub}/`)))
    .map(([name]) => name)
    .filter((name) => name !== 'network-init');
  t.diagnostic(`services that mount node-1's identity (besides network-init): ${readers.join(', ')}`);
  assert.deepEqual(readers, ['node-1']);
});
