/**
 * Issue 3, first "Must show": three nodes find each other by mDNS inside the test's own network
 * namespace and connect. No bootstrap list is given; the namespace (unshare -n) has only a
 * loopback interface with a multicast route, so nothing is multicast anywhere else.
 * Set CAIRN_SKIP_NETNS=1 to skip on machines without network namespaces.
 */
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { netnsSupport, runMdnsClusterInNetns } from './netns.ts';

const skip = process.env.CAIRN_SKIP_NETNS === '1' ? 'CAIRN_SKIP_NETNS=1' : false;

test('three nodes find each other by mDNS inside the test’s own network namespace and connect', {
  timeout: 240_000,
  skip,
}, async (t) => {
  const support = netnsSupport();
  assert.ok(support.ok, support.ok ? '' : `this test needs a network namespace: ${support.reason}`);
  const result = await runMdnsClusterInNetns({ nodes: 3, timeoutMs: 60_000 });
  t.diagnostic(
    `run dir ${result.runDir}; start ${result.startMs} ms, connected after ${result.connectMs} ms`,
  );
  assert.ok(result.ok, `driver reported failure:\n${result.error}`);
  assert.deepEqual(result.interfaces, ['lo'], 'the namespace has only loopback');
  assert.notEqual(result.netns, readlinkSync('/proc/self/ns/net'), 'nodes ran in another network namespace');
  assert.equal(result.nodes.length, 3);
  for (const node of result.nodes) {
    const others = result.nodes.filter((n) => n !== node).map((n) => n.peerId);
    for (const o of others) assert.ok(node.peers.includes(o), `${node.name} is not connected to ${o}`);
  }
  for (const [name, r] of Object.entries(result.stop ?? {}))
    assert.deepEqual([name, r.code, r.forced], [name, 0, false], `${name} did not shut down gracefully`);
  if (!process.env.CAIRN_KEEP_RUN_DIR) await rm(result.runDir, { recursive: true, force: true });
});
