/**
 * Permissions are consensus rules across real nodes of a roster network. Three node processes
 * (a miner, a member without `submit`, a full member) and two insiders speaking the protocol
 * from the test (an observer, and a full member that mines by hand). The observer's mined block
 * is refused by every node as `miner-lacks-mine`; the non-`submit` member's entry is refused at
 * every node's mempool as `author-lacks-submit`, and so is a properly mined block carrying it.
 * An addition signed by the harness admin and posted to one node then lets the member submit.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { createEntry } from '../../node/chain/authoring.ts';
import { toHex } from '../../node/chain/bytes.ts';
import { ByzantinePeer, ChainMirror } from './byzantine-peer.ts';
import { Cluster, type ClusterNode } from './harness.ts';

const MINER = 0;
const WRITER = 1;
const OBSERVER = 2;
const FULL = 3;
const INSIDER = 4;

const errors = (n: ClusterNode, code: string) =>
  n.metric('cairn_block_validation_errors_total', { code }).then((v) => v ?? 0);

test('an observer’s block and a non-submit member’s entry are refused by every node with their own codes', {
  timeout: 180_000,
}, async (t) => {
  const cluster = new Cluster({
    network: { blockTimeMs: 500 },
    roster: {
      size: 5,
      member: (i) =>
        i === WRITER
          ? { name: 'writer', role: 'submind', capabilities: ['train'] }
          : i === OBSERVER
            ? { name: 'tablet', role: 'observer', capabilities: ['train'] }
            : {},
    },
  });
  t.diagnostic(`run dir ${cluster.runDir} (removed if the test passes)`);
  const roster = cluster.roster!;
  const network = cluster.networkConfig!;
  const peers: ByzantinePeer[] = [];
  let passed = false;
  try {
    const nodes = (await cluster.start(3, (i) => ({
      name: ['miner', 'writer', 'full'][i],
      member: [MINER, WRITER, FULL][i],
      mine: i === 0,
    }))) as [ClusterNode, ClusterNode, ClusterNode];
    const [miner, writer] = nodes;
    await cluster.waitForConverged({ minHeight: 2, timeoutMs: 60_000, description: 'a common chain' });
    const members = await writer.getJson<{
      mode: string;
      members: { name: string; capabilities: string[] }[];
    }>('/members');
    assert.equal(members.mode, 'roster');
    assert.deepEqual(
      members.members.find((m) => m.name === 'writer')?.capabilities,
      ['train'],
      'the writer node reports what its genesis record grants',
    );

    // ---- The observer mines a block and gossips it to every node. ----
    const dir = path.join(cluster.runDir, 'insiders');
    await mkdir(dir, { recursive: true });
    const observer = await ByzantinePeer.start('observer', network, dir, { seed: roster.seeds[OBSERVER] });
    const insider = await ByzantinePeer.start('insider', network, dir, { seed: roster.seeds[INSIDER] });
    peers.push(observer, insider);
    for (const p of peers) for (const n of nodes) await p.connect(n, 20_000);
    const before = await Promise.all(nodes.map((n) => errors(n, 'miner-lacks-mine')));
    const observed = await new ChainMirror(observer, miner).forgeOnTip(roster.keys[OBSERVER]!);
    const sentTo = await observer.publishBlockBytes(observed.encoded);
    assert.deepEqual(new Set(sentTo), new Set(nodes.map((n) => n.peerId)), 'gossiped to every node');
    await cluster.waitFor(
      async () => {
        const now = await Promise.all(nodes.map((n) => errors(n, 'miner-lacks-mine')));
        return now.every((v, i) => v > before[i]!);
      },
      { timeoutMs: 20_000, description: 'every node counts the observer’s block as miner-lacks-mine' },
    );

    // ---- The writer (no submit) authors an entry: refused at every mempool. ----
    const local = await writer
      .request('POST', '/entries', { content: 'from the writer' })
      .catch((e: Error) => e);
    assert.ok(
      local instanceof Error && /HTTP 422 .*"author-lacks-submit:/.test(local.message),
      String(local),
    );
    const entry = createEntry(
      { kind: 'knowledge', content: 'signed by the writer', metadata: [] },
      roster.keys[WRITER]!,
    );
    for (const n of nodes) {
      const r = await n
        .request('POST', '/entries/signed', { entry: toHex(entry.encoded) })
        .catch((e: Error) => e);
      assert.ok(
        r instanceof Error && /HTTP 422 .*"author-lacks-submit:/.test(r.message),
        `${n.name}: ${String(r)}`,
      );
    }

    // ---- A member with `mine` puts it in a properly mined block: every node refuses the block. ----
    // The miner keeps mining at 500 ms, so under load its next block can land between forging
    // and publishing; the carrier is then a side-chain block whose entries are only checked if
    // it ever becomes head. Forge again on the new tip until every node has judged one on its tip.
    const beforeEntry = await Promise.all(nodes.map((n) => errors(n, 'author-lacks-submit')));
    const carriers: string[] = [];
    const allRefused = async () => {
      const now = await Promise.all(nodes.map((n) => errors(n, 'author-lacks-submit')));
      return now.every((v, i) => v > beforeEntry[i]!);
    };
    for (let attempt = 0; attempt < 4 && !(await allRefused()); attempt++) {
      const carrier = await new ChainMirror(insider, miner).forgeOnTip(roster.keys[INSIDER]!, {
        entries: [entry],
      });
      carriers.push(carrier.hashHex);
      const carriedTo = await insider.publishBlockBytes(carrier.encoded);
      // A node that refused an earlier carrier may have dropped the insider by now.
      if (attempt === 0) assert.equal(carriedTo.length, nodes.length);
      await cluster
        .waitFor(allRefused, { timeoutMs: 5_000, description: 'every node refuses this carrier' })
        .catch(() => {});
    }
    await cluster.waitFor(allRefused, {
      timeoutMs: 5_000,
      description: 'every node counts the carrier block as author-lacks-submit',
    });
    for (const n of nodes) {
      const { height } = await n.status();
      const hashes = (await n.chain(Math.max(0, height - 30), height)).blocks.map((b) => b.hash);
      assert.ok(
        !hashes.includes(observed.hashHex) && !carriers.some((c) => hashes.includes(c)),
        `${n.name} kept neither`,
      );
    }

    // ---- The admin grants `submit` with a certificate mined on the chain: the entry goes in. ----
    const grant = roster.addition(roster.keys[WRITER]!.publicKey, {
      name: 'writer',
      capabilities: ['train', 'submit'],
    });
    const posted = await writer.postJson<{ status: string }>('/entries/signed', {
      entry: toHex(grant.encoded),
    });
    assert.equal(posted.status, 'added');
    await cluster.waitFor(
      async () => {
        const r = await writer
          .postJson<{ status: string }>('/entries', { content: 'now permitted' })
          .catch(() => undefined);
        return r?.status === 'added';
      },
      { timeoutMs: 30_000, intervalMs: 500, description: 'the writer may submit once the addition is mined' },
    );
    passed = true;
  } finally {
    for (const p of peers) await p.stop().catch(() => {});
    if (passed) await cluster.removeRunDir();
    else await cluster.stopAll();
  }
});
