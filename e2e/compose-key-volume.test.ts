/**
 * ATK-13 finding 7 (HIGH, fixed): no compose container but node-1 can read the admin's identity.
 *
 * network-init writes every identity into the one `cairn-data` volume: node-1/identity.json (the
 * network's only admin), node-2/…, gateway/…, collector/…. Before the fix node-1, node-2 and
 * node-3 mounted the whole volume read-write and the collector read-only, as root: code execution
 * in node-3 (a plain miner parsing every peer's bytes) or in the collector read node-1's seed and
 * was the network's admin. Now each node mounts its own folder and `public/` (read-only: the
 * network config and the collector's receipt key), the collector its own folder and `public/`,
 * and every service but network-init runs as the image's `node` user (e2e/compose.test.ts).
 *
 * Figures: compose's own network-init command run for real (temp dir for the volume): node-1's
 * identity at cairn-data:node-1/identity.json; services that can read it, network-init aside:
 * before node-1, node-2, node-3 (rw), collector (ro); now node-1.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { nodeBinary, REPO_ROOT } from './cluster/node-process.ts';

type Mount = string | { source?: string; target?: string; volume?: { subpath?: string } };
interface Service {
  command: string[];
  environment?: Record<string, string>;
  volumes?: Mount[];
}
const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};

/** The cairn-data subpaths a service's mounts expose ('' = the whole volume). */
function cairnDataView(mounts: readonly Mount[] | undefined): string[] {
  const out: string[] = [];
  for (const m of mounts ?? []) {
    if (typeof m === 'string') {
      if (m.split(':')[0] === 'cairn-data') out.push('');
    } else if (m.source === 'cairn-data') out.push(m.volume?.subpath ?? '');
  }
  return out;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cairn-key-volume-'));
  const init = compose.services['network-init']!;
  // Compose's own arguments with its container paths moved into the temp dir, and each
  // ${VAR:?…} password filled in (the ACL file needs them all).
  const local = (arg: string) => arg.replace(/^\/(cairn|acl)(?=\/|$)/, (m) => path.join(dir, m));
  const env = Object.fromEntries(
    Object.entries(init.environment ?? {}).map(([k, v]) => [k, v.replace(/\$\{[^}]*\}/g, `${k}-pw`)]),
  );
  const args = init.command.slice(4).map(local);
  // Run as whoever runs the test: chowning to the image's uid is compose's business.
  const owner = args.indexOf('--owner');
  if (owner >= 0) args[owner + 1] = `${process.getuid!()}:${process.getgid!()}`;
  const r = spawnSync(nodeBinary(), [path.join(REPO_ROOT, 'node/network-init.ts'), ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('compose: only node-1 can read the admin key network-init writes for it', (t) => {
  const adminKey = 'node-1/identity.json';
  assert.ok(existsSync(path.join(dir, 'cairn', adminKey)), 'network-init wrote node-1’s identity there');
  const readers = Object.entries(compose.services)
    .filter(([, s]) => cairnDataView(s.volumes).some((sub) => sub === '' || adminKey.startsWith(`${sub}/`)))
    .map(([name]) => name)
    .filter((name) => name !== 'network-init');
  t.diagnostic(`services that mount node-1's identity (besides network-init): ${readers.join(', ')}`);
  assert.deepEqual(readers, ['node-1']);
});

test('compose: the public folder every node and the collector mount holds only public files', () => {
  const pub = path.join(dir, 'cairn', 'public');
  assert.deepEqual(readdirSync(pub).sort(), ['collector-receipt-key.hex', 'network.json']);
  assert.equal(
    readFileSync(path.join(pub, 'network.json'), 'utf8'),
    readFileSync(path.join(dir, 'cairn', 'network.json'), 'utf8'),
    'a copy of the volume’s network.json (which older volumes keep using as the original)',
  );
  assert.match(readFileSync(path.join(pub, 'collector-receipt-key.hex'), 'utf8'), /^[0-9a-f]{64}\n$/);
});
