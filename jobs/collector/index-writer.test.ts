import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toHex } from '../../node/chain/bytes.ts';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdHex } from '../../node/chain/network-config.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import {
  forgeBranch,
  knowledgeEntry,
  TEST_NOW,
  testChain,
  testKey,
  testNetwork,
} from '../../node/testing/forge.ts';
import { TOPICS } from '../events.ts';
import { createTestIndexDb, TEST_PROVIDERS } from '../index-db/testing.ts';
import { blockAcceptedReport, blockOrphanedReport } from '../node-reports.ts';
import type { NodeStatsReport } from '../payloads.ts';
import { nodeIdOfKey } from '../report-envelope.ts';
import { IndexWriter, type IndexWriterOptions } from './index-writer.ts';
import { ReportRefused } from './report-errors.ts';

/** Stats reports name the network the collector indexes (others are refused). */
const TEST_CHAIN_ID = chainIdHex(testNetwork());
const TEST_GENESIS = genesisBlock(testNetwork()).hashHex;

/** The test chain's network, and its clock (entries are stamped around TEST_NOW). */
const OPTS: IndexWriterOptions = { network: testNetwork(), now: () => TEST_NOW };

/** A main chain of 4 blocks and a heavier fork of 3 from block 2 (fork → heights 3, 4, 5). */
async function chains() {
  const t = testChain();
  const key = testKey(1);
  const shared = knowledgeEntry(key, TEST_NOW - 10_000, 'shared fact');
  const main = forgeBranch(t.chain, t.chain.tip, [{}, {}, { entries: [shared] }, {}]);
  for (const b of main) assert.equal((await t.submit(b)).status, 'connected');
  const forkParent = t.chain.tree.get(main[1]!.hashHex)!;
  const other = { miner: testKey(2) };
  // The fork re-includes the main chain's entry at another height (as after a reorg).
  const fork = forgeBranch(t.chain, forkParent, [{ ...other, entries: [shared] }, other, other]);
  for (const b of fork) assert.notEqual((await t.submit(b)).status, 'invalid');
  const report = (b: SealedBlock, nodeId: string) =>
    blockAcceptedReport(nodeId, b, t.chain.tree.get(b.hashHex)!);
  return { main, fork, report };
}

const stats = (nodeId: string, seq: number, height: number): NodeStatsReport => ({
  nodeId,
  boot: 1,
  seq,
  at: new Date().toISOString(),
  role: 'submind',
  capabilities: ['mine'],
  addrs: ['/ip4/127.0.0.1/tcp/1'],
  height,
  headHash: 'ab'.repeat(32),
  totalWork: '100',
  target: String(2n ** 250n),
  peers: ['p1', 'p2'],
  mempoolSize: seq,
  hashRate: 10,
  mining: true,
  chainId: TEST_CHAIN_ID,
  genesisHash: TEST_GENESIS,
  networkConfig: '{"name":"t"}',
});

for (const provider of TEST_PROVIDERS) {
  test(`${provider}: a block reported by three nodes is one row and one newBlock event; a replayed report is a no-op`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, OPTS);
      const { main, report } = await chains();
      const events: string[] = [];
      for (const b of main.slice(0, 2))
        for (const node of ['A', 'B', 'C']) {
          const r = await w.apply(`block.${node}.${b.hashHex}`, 'block.accepted', report(b, node));
          for (const p of r.publications) if (p.topic === TOPICS.newBlock) events.push(p.payload.hash);
        }
      assert.equal(await db.block.count(), 2);
      assert.equal(await db.entry.count(), 0, 'the first two blocks carry no entries');
      assert.deepEqual(
        events,
        main.slice(0, 2).map((b) => b.hashHex),
      );
      assert.equal(await db.report.count(), 6);
      const again = await w.apply(`block.A.${main[0]!.hashHex}`, 'block.accepted', report(main[0]!, 'A'));
      assert.deepEqual(again, { duplicate: true, publications: [] });
      assert.equal(await db.report.count(), 6);
    } finally {
      await drop();
    }
  });

  test(`${provider}: a reorged-out block is indexed with the depth of its reorg; other orphans have none`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, OPTS);
      const { main, fork } = await chains();
      const out = await w.apply('o1', 'block.orphaned', blockOrphanedReport('A', main[3]!, 'reorged-out', 2));
      const [published] = out.publications;
      assert.equal(published?.topic, TOPICS.orphanedBlock);
      assert.equal(
        (published?.payload as { reorgDepth?: number } | undefined)?.reorgDepth,
        2,
        'the event carries the depth',
      );
      await w.apply('o2', 'block.orphaned', blockOrphanedReport('A', fork[0]!, 'side-chain'));
      const rows = await db.orphanedBlock.findMany({ orderBy: { height: 'asc' } });
      assert.deepEqual(
        rows.map((r) => [r.reason, r.reorgDepth]),
        [
          ['side-chain', null],
          ['reorged-out', 2],
        ],
      );
    } finally {
      await drop();
    }
  });

  test(`${provider}: an orphan report naming an indexed block must agree with its header`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, OPTS);
      const { main, report } = await chains();
      await w.apply('b1', 'block.accepted', report(main[0]!, 'A'));
      // Framing: block 1 reported orphaned with another miner's key as its producer.
      const framed = { ...blockOrphanedReport('B', main[0]!, 'reorged-out', 1), miner: 'cd'.repeat(32) };
      await assert.rejects(
        w.apply('o1', 'block.orphaned', framed),
        (e: unknown) => e instanceof ReportRefused && e.code === 'orphan-mismatch',
      );
      assert.equal(await db.orphanedBlock.count(), 0);
      // The truth about it is indexed.
      await w.apply('o2', 'block.orphaned', blockOrphanedReport('B', main[0]!, 'reorged-out', 1));
      assert.equal(await db.orphanedBlock.count(), 1);
    } finally {
      await drop();
    }
  });

  test(`${provider}: the canonical flag follows the most work; the same entry may sit in two fork blocks`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, OPTS);
      const { main, fork, report } = await chains();
      for (const b of main) await w.apply(`m.${b.hashHex}`, 'block.accepted', report(b, 'A'));
      const canon = async () =>
        (await db.block.findMany({ where: { canonical: true }, orderBy: { height: 'asc' } })).map(
          (b) => b.hash,
        );
      assert.deepEqual(
        await canon(),
        main.map((b) => b.hashHex),
      );
      // The fork's first two blocks are lighter than the main chain: not canonical yet.
      for (const b of fork.slice(0, 2)) await w.apply(`f.${b.hashHex}`, 'block.accepted', report(b, 'B'));
      assert.deepEqual(
        await canon(),
        main.map((b) => b.hashHex),
      );
      // Its third block outweighs the main chain: the fork becomes canonical down to the fork point.
      await w.apply(`f.${fork[2]!.hashHex}`, 'block.accepted', report(fork[2]!, 'B'));
      assert.deepEqual(
        await canon(),
        [...main.slice(0, 2), ...fork].map((b) => b.hashHex),
      );
      assert.equal(await db.block.count(), 7);
      assert.equal(await db.entry.count(), 2, 'the shared entry, once in each branch');
    } finally {
      await drop();
    }
  });

  test(`${provider}: stats update the node, add one snapshot per report and recompute network stats`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, OPTS);
      await w.apply('s.A.1', 'node.stats', stats('A', 1, 5));
      await w.apply('s.B.1', 'node.stats', stats('B', 1, 7));
      const r = await w.apply('s.A.2', 'node.stats', stats('A', 2, 6));
      assert.deepEqual(
        r.publications.map((p) => p.topic),
        [TOPICS.nodeStatus, TOPICS.networkStats],
      );
      // A stale report re-sent after a Redis restart does not roll the node back.
      const old = { ...stats('A', 0 + 1, 1), seq: 3, at: new Date(Date.now() - 60_000).toISOString() };
      await w.apply('s.A.3', 'node.stats', old);
      const a = await db.node.findUniqueOrThrow({ where: { id: 'A' } });
      assert.equal(a.height, 6);
      assert.equal(await db.nodeStatsSnapshot.count({ where: { nodeId: 'A' } }), 3);
      const latest = await db.networkStats.findFirstOrThrow({ orderBy: { id: 'desc' } });
      assert.equal(latest.totalNodes, 2);
      assert.equal(latest.chainLengthMin, 7);
      assert.equal(latest.chainLengthMax, 8);
      assert.equal(latest.avgPeers, 2);
      assert.equal(await db.networkConfig.count(), 1);
      // The config the index shows is the collector's own, whatever a report carries.
      const shown = JSON.parse((await db.networkConfig.findFirstOrThrow()).config) as { name: string };
      assert.equal(shown.name, testNetwork().name);
      // A node of another network is refused, and changes nothing.
      const before = await db.nodeStatsSnapshot.count();
      await assert.rejects(
        w.apply('s.X.1', 'node.stats', { ...stats('X', 1, 3), chainId: 'cd'.repeat(32) }),
        (err: unknown) => err instanceof ReportRefused && err.code === 'wrong-chain-id',
      );
      assert.equal(await db.nodeStatsSnapshot.count(), before);
      assert.equal(await db.node.count({ where: { id: 'X' } }), 0);
    } finally {
      await drop();
    }
  });

  test(`${provider}: a stats report's connection kinds are indexed on the node; an older node's none keeps them`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, OPTS);
      const kinds = { tcp: 2, 'webrtc-direct': 0, relayed: 1, 'webrtc-via-relay': 0, other: 0 };
      await w.apply('s.A.1', 'node.stats', { ...stats('A', 1, 5), connectionKinds: kinds });
      assert.deepEqual(
        JSON.parse((await db.node.findUniqueOrThrow({ where: { id: 'A' } })).connectionKinds),
        kinds,
      );
      await w.apply('s.A.2', 'node.stats', stats('A', 2, 6));
      assert.deepEqual(
        JSON.parse((await db.node.findUniqueOrThrow({ where: { id: 'A' } })).connectionKinds),
        kinds,
      );
      // A node never reporting kinds has the column's default.
      await w.apply('s.B.1', 'node.stats', stats('B', 1, 5));
      assert.equal((await db.node.findUniqueOrThrow({ where: { id: 'B' } })).connectionKinds, '{}');
    } finally {
      await drop();
    }
  });

  test(`${provider}: the privacy ledger of a stats report is indexed on the node and its snapshot`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, OPTS);
      const fl = (epsilon: number, rounds: number) => ({
        mode: 'record' as const,
        privacy: { epsilon, budget: 3, delta: 1e-5, rounds },
      });
      await w.apply('s.A.1', 'node.stats', { ...stats('A', 1, 5), fl: fl(0.5, 4) });
      await w.apply('s.A.2', 'node.stats', { ...stats('A', 2, 6), fl: fl(1.25, 9) });
      // A report without the block (an older node) keeps what the index knew.
      await w.apply('s.A.3', 'node.stats', stats('A', 3, 7));
      const a = await db.node.findUniqueOrThrow({ where: { id: 'A' } });
      assert.deepEqual(
        [a.flMode, a.flEpsilon, a.flBudget, a.flDelta, a.flRounds],
        ['record', 1.25, 3, 1e-5, 9],
      );
      const snaps = await db.nodeStatsSnapshot.findMany({ where: { nodeId: 'A' }, orderBy: { seq: 'asc' } });
      assert.deepEqual(
        snaps.map((x) => [x.flEpsilon, x.flBudget, x.flRounds]),
        [
          [0.5, 3, 4],
          [1.25, 3, 9],
          [null, null, null],
        ],
      );
    } finally {
      await drop();
    }
  });

  test(`${provider}: a stats report's messaging figures are indexed on the node; an older report keeps them`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, OPTS);
      await w.apply('s.M.1', 'node.stats', {
        ...stats('M', 1, 5),
        messaging: {
          sent: 2_000,
          delivered: 1_990,
          pending: 10,
          latency: { p50Ms: 3.5, p99Ms: 41, samples: 1024 },
          mailbox: { items: 7, bytes: 3 * 2 ** 30, capacityBytes: 4 * 2 ** 30 },
        },
      });
      const cols = async () => {
        const n = await db.node.findUniqueOrThrow({ where: { id: 'M' } });
        return [
          n.msgSent,
          n.msgDelivered,
          n.msgPending,
          n.msgLatencyP50Ms,
          n.msgLatencyP99Ms,
          n.msgLatencySamples,
          n.msgMailboxItems,
          n.msgMailboxBytes,
          n.msgMailboxCapacityBytes,
        ];
      };
      // Mailbox bytes past 2^31 survive (floats on both providers).
      assert.deepEqual(await cols(), [2_000, 1_990, 10, 3.5, 41, 1024, 7, 3 * 2 ** 30, 4 * 2 ** 30]);
      // An older node's report without the block keeps the figures.
      await w.apply('s.M.2', 'node.stats', stats('M', 2, 6));
      assert.deepEqual(await cols(), [2_000, 1_990, 10, 3.5, 41, 1024, 7, 3 * 2 ** 30, 4 * 2 ** 30]);
      // After a restart: no receipt yet, no mailbox any more: those clear, the counts restart.
      await w.apply('s.M.3', 'node.stats', {
        ...stats('M', 3, 7),
        messaging: { sent: 0, delivered: 0, pending: 4 },
      });
      assert.deepEqual(await cols(), [0, 0, 4, null, null, null, null, null, null]);
    } finally {
      await drop();
    }
  });

  test(`${provider}: roster mode: only members report; a node id that is no member's key is refused`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const member = testKey(810);
      const observer = testKey(811);
      const network = testNetwork({
        membership: 'roster',
        admins: [],
        members: [
          { publicKey: toHex(member.publicKey), name: 'm', role: 'hub', capabilities: ['mine'] },
          { publicKey: toHex(observer.publicKey), name: 'o', role: 'observer', capabilities: [] },
        ],
      });
      const w = new IndexWriter(db, { network, now: () => TEST_NOW });
      const inNet = (nodeId: string, seq: number): NodeStatsReport => ({
        ...stats(nodeId, seq, 1),
        chainId: chainIdHex(network),
        genesisHash: genesisBlock(network).hashHex,
      });
      for (const id of [nodeIdOfKey(testKey(812).publicKey), 'nodeA'])
        await assert.rejects(
          w.apply(`s.${id}`, 'node.stats', inNet(id, 1)),
          (err: unknown) => err instanceof ReportRefused && err.code === 'not-a-member',
        );
      assert.equal(await db.node.count(), 0, 'no stranger in the index (admin mutations take its ids)');
      for (const k of [member, observer])
        await w.apply(`s.${toHex(k.publicKey)}`, 'node.stats', inNet(nodeIdOfKey(k.publicKey), 1));
      assert.equal(await db.node.count(), 2);
    } finally {
      await drop();
    }
  });
}
