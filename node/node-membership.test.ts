/**
 * The gate wired into the node (node.ts `admissionView`): three real CairnNodes in this process on
 * loopback TCP. A member with a certificate bootstraps from a chain member, is admitted, and both
 * exchange statuses; a node of the same chain without a certificate is refused, counted in
 * `/metrics`, penalised, and its statuses never reach the member's peer book. Revoking the
 * member drops it from the other's peers. The roster is plain data (node/testing/static-roster.ts).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadOrCreateIdentity } from './identity/identity.ts';
import { createLogger } from './log.ts';
import { CairnNode } from './node.ts';
import { testNetwork } from './testing/forge.ts';
import { StaticRoster, testCertificate, testMember } from './testing/static-roster.ts';

const network = testNetwork();
const roster = new StaticRoster();
const dirs: string[] = [];
const nodes: CairnNode[] = [];

async function start(
  name: string,
  enroll: 'on-chain' | 'certified' | 'stranger',
  bootstrap: string[] = [],
): Promise<CairnNode> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `cairn-member-${name}-`));
  dirs.push(dataDir);
  // The key first (the node loads the same one from its data dir), so the roster can name it.
  const key = (await loadOrCreateIdentity(dataDir)).publicKeyHex;
  if (enroll === 'on-chain') roster.onChain.set(key, testMember(key, name));
  if (enroll === 'certified') roster.certified.set(key, testMember(key, name));
  const node = await CairnNode.start({
    dataDir,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap,
    mine: false,
    mdns: false,
    role: 'submind',
    capabilities: [],
    network,
    reconcileIntervalMs: 0,
    logger: createLogger('silent'),
    admissionView: roster.view(enroll === 'certified' ? testCertificate(key) : undefined),
  });
  nodes.push(node);
  return node;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await cond())) {
    if (Date.now() - started > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const addrOf = (n: CairnNode) => `${n.host.getMultiaddrs()[0]!.toString()}`;
const inBook = (n: CairnNode, other: CairnNode) =>
  n.peers.book.all().some((r) => r.peer.equals(other.identity.peerId));

after(async () => {
  for (const n of nodes) await n.stop().catch(() => {});
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

test('roster mode in the node: members meet, a stranger is refused and counted, a revoked member goes', {
  timeout: 60_000,
}, async () => {
  const a = await start('a', 'on-chain');
  const b = await start('b', 'certified', [addrOf(a)]);
  await until('a and b to exchange statuses', () => inBook(a, b) && inBook(b, a));
  const peerOfA = a.status().peers.find((p) => p.peerId === b.identity.peerId.toString());
  assert.deepEqual(peerOfA?.member, { name: 'b', role: 'submind' });

  const s = await start('s', 'stranger', [addrOf(a)]);
  await until('a to refuse s', async () =>
    /cairn_membership_refusals_total\{code="no-certificate",transport="tcp"\} [1-9]/.test(
      await a.metrics.registry.metrics(),
    ),
  );
  await until('s to be gone', () => a.host.getConnections(s.identity.peerId).length === 0);
  await sleep(500);
  assert.equal(inBook(a, s), false, 'a took the stranger’s status');
  assert.equal(inBook(s, a), false, 's got a’s status');
  // Refused before it was ever admitted: no score record (a flood of strangers must not evict a
  // banned member's record from the bounded table); its address and the refusal counters answer
  // for it.
  assert.equal(a.peers.scores.score(s.identity.peerId.toString(), Date.now()), 0, 'the stranger got a score');
  assert.equal(
    a.peers.scores.lastReason(s.identity.peerId.toString()),
    undefined,
    'the stranger got a record',
  );
  assert.equal(a.gate?.isAdmitted(s.identity.peerId), false);
  // b is untouched.
  assert.ok(a.gate?.isAdmitted(b.identity.peerId) && inBook(a, b));

  roster.revoke(b.identity.publicKeyHex);
  await until('a to drop b', () => a.host.getConnections(b.identity.peerId).length === 0, 2_000);
  await until('b to leave a’s peer book', () => !inBook(a, b), 2_000);
  assert.match(
    await a.metrics.registry.metrics(),
    /cairn_membership_refusals_total\{code="revoked",transport="tcp"\} [1-9]/,
  );
  // b's redials (its bootstrap entry) are refused at a's gater, and a does not dial b.
  await sleep(1_500);
  assert.equal(a.host.getConnections(b.identity.peerId).length, 0);
  assert.equal(inBook(a, b), false);
});
