/**
 * Checkpoint finality across real nodes. Three nodes on loopback (half-second blocks): a0
 * (miner) and a1 in half A, b0 (miner) in half B. After a common prefix the halves are cut
 * apart; in A an admin-signed checkpoint entry (the admin key is in the network config, and
 * signs offline: the entry reaches a1 through POST /entries/signed) names A's block two above
 * the cut, and is mined. Then A's miner stops and B mines on until its chain has clearly more
 * work. On healing, both A nodes refuse B's heavier chain (it forks below their checkpoint):
 * they keep their head, count the refusal as a split, and penalise b0. Finally a reorg above
 * the checkpoint still happens: a1 mines one block alone, a0 mines three, and once they meet
 * again a1 reorgs onto a0's chain.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEntry } from '../../node/chain/authoring.ts';
import { toHex } from '../../node/chain/bytes.ts';
import { checkpointPayload } from '../../node/chain/checkpoint.ts';
import { testKey } from '../../node/testing/forge.ts';
import { Cluster, type ClusterNode } from './harness.ts';

const admin = testKey(4242);

const hashAt = async (n: ClusterNode, h: number) =>
  (await n.getJson<{ blocks: { height: number; hash: string }[] }>(`/chain?from=${h}&to=${h}`)).blocks[0]
    ?.hash;

test('an admin checkpoint is final: a heavier chain forking below it is refused as a split; reorgs above it still happen', {
  timeout: 240_000,
}, async (t) => {
  const cluster = new Cluster({ network: { blockTimeMs: 500, admins: [toHex(admin.publicKey)] } });
  let passed = false;
  const t0 = Date.now();
  const phase = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  try {
    const [a0, a1, b0] = (await cluster.start(3, (i) => ({
      name: ['a0', 'a1', 'b0'][i],
      mine: i !== 1,
    }))) as [ClusterNode, ClusterNode, ClusterNode];
    await cluster.waitForConverged({ minHeight: 3, timeoutMs: 60_000, description: 'a common prefix' });

    const cut = async (left: ClusterNode[], right: ClusterNode[]) => {
      await Promise.all([
        ...left.map((n) => n.blockPeers(right.map((r) => r.peerId))),
        ...right.map((n) => n.blockPeers(left.map((l) => l.peerId))),
      ]);
      await cluster.waitFor(
        async () => {
          for (const n of [...left, ...right]) {
            const others = (left.includes(n) ? right : left).map((o) => o.peerId);
            if ((await n.status()).peers.some((p) => others.includes(p.peerId))) return false;
          }
          return true;
        },
        { timeoutMs: 15_000, description: 'the halves apart' },
      );
    };
    const heal = (left: ClusterNode[], right: ClusterNode[]) =>
      Promise.all([
        ...left.map((n) => n.unblockPeers(right.map((r) => r.peerId))),
        ...right.map((n) => n.unblockPeers(left.map((l) => l.peerId))),
      ]);

    phase('common prefix');
    await cut([a0, a1], [b0]);
    const cutHeight = Math.max((await a0.status()).height, (await b0.status()).height);
    const h = cutHeight + 2;
    await cluster.waitFor(
      async () => (await a1.status()).height >= h + 1 && (await b0.status()).height >= h,
      {
        timeoutMs: 60_000,
        description: `both halves past height ${h}`,
      },
    );
    const finalHash = (await hashAt(a1, h))!;
    assert.notEqual(await hashAt(b0, h), finalHash, 'the halves differ at the checkpoint height');

    // The admin signs the checkpoint offline; a1 takes it and gossips it; a0 mines it.
    const entry = createEntry(checkpointPayload({ height: h, hashHex: finalHash as never }), admin);
    const posted = await a1.postJson<{ status: string }>('/entries/signed', { entry: toHex(entry.encoded) });
    assert.equal(posted.status, 'added');
    await cluster.waitFor(
      async () =>
        ((await a0.metric('cairn_finalized_height')) ?? 0) >= h &&
        ((await a1.metric('cairn_finalized_height')) ?? 0) >= h,
      { timeoutMs: 60_000, description: `checkpoint ${h} final on a0 and a1` },
    );
    t.diagnostic(`checkpoint at height ${h} (${finalHash.slice(0, 12)}…) final in half A`);

    phase('checkpoint final in A');
    // A stops; B mines until its chain has clearly more work than A's.
    await cluster.restart('a0', { mine: false });
    // Finality is rebuilt from a0's store on reopening, before it hears from any peer.
    assert.ok(((await a0.metric('cairn_finalized_height')) ?? 0) >= h, 'a0 still final after its restart');
    await cut([a0, a1], [b0]);
    const aHead = await a1.status();
    await cluster.waitFor(
      async () => {
        const b = await b0.status();
        return BigInt(b.totalWork) > BigInt(aHead.totalWork) && b.height >= aHead.height + 2;
      },
      {
        timeoutMs: 90_000,
        description: "half B's chain ahead in work",
      },
    );

    phase('B ahead in work; healing');
    await heal([a0, a1], [b0]);
    await cluster.waitFor(
      async () => {
        for (const n of [a0, a1])
          if (((await n.metric('cairn_checkpoint_refusals_total')) ?? 0) < 1) return false;
        return true;
      },
      { timeoutMs: 60_000, description: "both A nodes refuse B's chain" },
    );
    for (const n of [a0, a1]) {
      const st = await n.status();
      assert.equal(await hashAt(n, h), finalHash, `${n.name} keeps the checkpointed block`);
      assert.ok(
        BigInt(st.totalWork) < BigInt((await b0.status()).totalWork),
        `${n.name} stayed on the lighter, final chain`,
      );
      assert.ok(
        ((await n.metric('cairn_network_splits_detected_total')) ?? 0) >= 1,
        `${n.name} reports a split`,
      );
      const b = st.peers.find((p) => p.peerId === b0.peerId);
      const banned = st.banned.some((x) => x.peer === b0.peerId);
      // Penalised past the disconnect threshold, b0 may be neither connected nor banned right
      // now: then the low-tolerance penalties (b0 is the only other side) show it.
      const penalties = (await n.metric('cairn_peer_penalties_total', { action: 'low-tolerance' })) ?? 0;
      assert.ok(
        banned || (b !== undefined ? (b as { score?: number }).score! < 0 : penalties >= 1),
        `${n.name} penalised b0`,
      );
    }

    phase('B refused by both A nodes');
    // A reorg above the checkpoint: a1 mines one block alone, a0 three; then they meet. Each
    // restart comes up with no bootstrap peers (and blocks the others at once), so the two stay
    // apart until a1 is restarted with a0 as its bootstrap peer.
    const alone = async (n: ClusterNode, mine: boolean) => {
      await cluster.restart(n.name, { mine, bootstrap: [] });
      await n.blockPeers([a0, a1, b0].filter((x) => x !== n).map((x) => x.peerId));
    };
    await alone(a1, true);
    const base = (await a0.status()).height;
    await cluster.waitFor(async () => (await a1.status()).height >= base + 1, {
      timeoutMs: 60_000,
      description: 'a1 mines alone',
    });
    await alone(a1, false);
    const lone = await a1.status();
    await alone(a0, true);
    await cluster.waitFor(
      async () => {
        const st = await a0.status();
        return BigInt(st.totalWork) > BigInt(lone.totalWork) && st.height >= lone.height + 2;
      },
      { timeoutMs: 60_000, description: 'a0 ahead of a1' },
    );
    await a0.unblockPeers([a1.peerId]);
    const reorg = a1.waitForLog((e) => e.msg === 'reorg', { timeoutMs: 60_000 });
    await cluster.restart('a1', { mine: false, bootstrap: [...a0.addrs] });
    const line = JSON.parse(await reorg) as { fork: number; depth: number };
    assert.ok(line.fork >= h, `the reorg forks at ${line.fork}, above the checkpoint ${h}`);
    assert.ok(line.depth >= 1);
    assert.ok(((await a1.metric('cairn_reorg_depth_blocks_count')) ?? 0) >= 1, 'reorg depth in metrics');
    assert.equal(await hashAt(a1, h), finalHash);
    phase('a1 reorged above the checkpoint');
    passed = true;
  } finally {
    await cluster.stopAll().catch(() => {});
    if (passed) await cluster.removeRunDir().catch(() => {});
    else t.diagnostic(`logs kept in ${cluster.runDir}`);
  }
});
