/**
 * The collector indexes a block only on proof: forged `block.accepted` reports are refused with
 * their code and leave every row and `canonical` flag as it was; total work is the collector's
 * own figure; a block whose parent is not indexed is held, never indexed on trust; and in roster
 * mode the miner must be a member at the block's parent, by the roster of the indexed chain.
 * Real index DBs, both providers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEntry, signBlock } from '../../node/chain/authoring.ts';
import { sealBlock } from '../../node/chain/block-codec.ts';
import type { BlockNode } from '../../node/chain/block-tree.ts';
import { toHex } from '../../node/chain/bytes.ts';
import { chainIdOf, type NetworkConfig } from '../../node/chain/network-config.ts';
import { MAX_TARGET, workForTarget } from '../../node/chain/pow.ts';
import type { SigningKey } from '../../node/chain/signature.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import { signCertificate } from '../../node/membership/certificate.ts';
import { MEMBER_ADD } from '../../node/membership/roster-state.ts';
import {
  forgeBlock,
  forgeBranch,
  knowledgeEntry,
  mineHeader,
  scratchNode,
  TEST_NOW,
  testChain,
  testKey,
  testNetwork,
  unmineHeader,
} from '../../node/testing/forge.ts';
import type { IndexDb } from '../index-db/open.ts';
import { createTestIndexDb, TEST_PROVIDERS } from '../index-db/testing.ts';
import { blockAcceptedReport } from '../node-reports.ts';
import type { BlockAcceptedReport } from '../payloads.ts';
import { nodeIdOfKey } from '../report-envelope.ts';
import { IndexWriter } from './index-writer.ts';
import { ReportHeld, ReportRefused } from './report-errors.ts';

const now = () => TEST_NOW;

/** A report of `block` whose totalWork is `parentWork` plus the block's own (what an honest node says). */
const reportOf = (block: SealedBlock, parentWork: bigint, nodeId = 'A'): BlockAcceptedReport =>
  blockAcceptedReport(nodeId, block, {
    chainWork: parentWork + workForTarget(block.header.target),
  } as BlockNode);

/** Everything a forged report could change: every block row with its flag and work, entries, report ids. */
async function snapshot(db: IndexDb) {
  return {
    blocks: await db.block.findMany({
      orderBy: { hash: 'asc' },
      select: { hash: true, canonical: true, totalWork: true, height: true },
    }),
    entries: await db.entry.count(),
    reports: await db.report.count(),
  };
}

const refusedWith = (code: string) => (err: unknown) => {
  assert.ok(err instanceof ReportRefused, `expected ReportRefused, got ${String(err)}`);
  assert.equal(err.code, code);
  return true;
};

for (const provider of TEST_PROVIDERS) {
  test(`${provider}: forged block reports (bad hash, PoW, target, signature, entries, totalWork) are refused and change nothing`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const t = testChain();
      const w = new IndexWriter(db, { network: t.chain.config, now });
      const key = testKey(1);
      const main = forgeBranch(t.chain, t.chain.tip, [
        {},
        {},
        { entries: [knowledgeEntry(key, TEST_NOW - 5_000)] },
      ]);
      for (const b of main) assert.equal((await t.submit(b)).status, 'connected');
      const fork = forgeBranch(t.chain, t.chain.tree.get(main[0]!.hashHex)!, [{ miner: testKey(2) }]);
      const genuine = (b: SealedBlock) => blockAcceptedReport('A', b, t.chain.tree.get(b.hashHex)!);
      await w.apply('r1', 'block.accepted', genuine(main[0]!));
      await w.apply('r2', 'block.accepted', genuine(main[1]!));
      const before = await snapshot(db);
      assert.deepEqual(
        before.blocks.filter((b) => b.canonical).length,
        2,
        'the two genuine blocks are canonical',
      );

      const b3 = main[2]!;
      const parentWork = t.chain.tree.get(main[1]!.hashHex)!.chainWork;
      // Proof of work that does not meet the header's own target, correctly signed.
      const weak = signBlock(unmineHeader(b3.header), b3.entries, testKey(0));
      // A target easier than the network allows (MAX_TARGET: every hash meets it), mined and signed.
      const easy = signBlock(mineHeader({ ...b3.header, target: MAX_TARGET }), b3.entries, testKey(0));
      const otherEntries = [knowledgeEntry(key, TEST_NOW - 4_000, 'not in the header')];
      const forged: [string, BlockAcceptedReport][] = [
        ['bad-hash', { ...genuine(b3), hash: main[1]!.hashHex }],
        ['bad-hash', { ...genuine(b3), header: toHex(main[1]!.headerBytes) }],
        ['header-mismatch', { ...genuine(b3), height: 99 }],
        ['insufficient-work', reportOf(weak, parentWork)],
        ['target-out-of-range', reportOf(easy, parentWork)],
        ['bad-block-signature', { ...genuine(b3), signature: toHex(main[1]!.signature) }],
        [
          'bad-merkle-root',
          reportOf(
            sealBlock({ header: b3.header, signature: b3.signature, entries: otherEntries }),
            parentWork,
          ),
        ],
        ['wrong-total-work', { ...genuine(b3), totalWork: (parentWork * 1000n).toString() }],
        // The lighter fork block, claiming enough work to take over the canonical chain.
        ['wrong-total-work', { ...reportOf(fork[0]!, 0n), totalWork: (parentWork * 1000n).toString() }],
        ['malformed-block', { ...genuine(b3), header: genuine(b3).header.slice(0, -2) }],
      ];
      for (const [i, [code, report]] of forged.entries()) {
        await assert.rejects(w.apply(`forged.${i}`, 'block.accepted', report), refusedWith(code), code);
        assert.deepEqual(await snapshot(db), before, `${code}: nothing changed`);
      }
      // The genuine block still goes in, with the work the collector computed.
      await w.apply('r3', 'block.accepted', genuine(b3));
      const row = await db.block.findUniqueOrThrow({ where: { hash: b3.hashHex } });
      assert.equal(row.canonical, true);
      assert.equal(row.totalWork, t.chain.tree.get(b3.hashHex)!.chainWork.toString());
      assert.equal(await db.entry.count(), 1);
    } finally {
      await drop();
    }
  });

  test(`${provider}: a block whose parent is not indexed is held, not indexed; once the parent is in, both are canonical`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const t = testChain();
      const w = new IndexWriter(db, { network: t.chain.config, now });
      const [b1, b2] = forgeBranch(t.chain, t.chain.tip, [{}, {}]);
      for (const b of [b1!, b2!]) await t.submit(b);
      const genuine = (b: SealedBlock) => blockAcceptedReport('A', b, t.chain.tree.get(b.hashHex)!);
      await assert.rejects(w.apply('child', 'block.accepted', genuine(b2!)), (err: unknown) => {
        assert.ok(err instanceof ReportHeld);
        assert.equal(err.code, 'unknown-parent');
        return true;
      });
      assert.equal(await db.block.count(), 0);
      assert.equal(await db.report.count(), 0, 'a held report is not recorded as processed');
      await w.apply('parent', 'block.accepted', genuine(b1!));
      await w.apply('child', 'block.accepted', genuine(b2!));
      const rows = await db.block.findMany({ orderBy: { height: 'asc' } });
      assert.deepEqual(
        rows.map((r) => [r.hash, r.canonical]),
        [
          [b1!.hashHex, true],
          [b2!.hashHex, true],
        ],
      );
    } finally {
      await drop();
    }
  });

  test(`${provider}: roster mode: a non-member's block is refused; a member added on the indexed chain mines from the next block`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const admin = testKey(700);
      const miner = testKey(701);
      const newcomer = testKey(702);
      const hex = (k: SigningKey) => toHex(k.publicKey);
      const roster: Partial<NetworkConfig> = {
        membership: 'roster',
        admins: [hex(admin)],
        members: [
          { publicKey: hex(miner), name: 'miner', role: 'submind', capabilities: ['mine', 'submit'] },
        ],
      };
      const config = testNetwork(roster);
      const at = TEST_NOW - 60_000;
      const add = createEntry(
        {
          kind: 'config',
          changes: [
            [
              MEMBER_ADD,
              toHex(
                signCertificate(
                  {
                    chainId: chainIdOf(config),
                    subject: newcomer.publicKey,
                    name: 'newcomer',
                    role: 'submind',
                    capabilities: ['mine', 'submit'],
                    // Valid from genesis: a certificate grants nothing before its issued-at,
                    // and these forged blocks are stamped from genesis on.
                    issuedAtMs: config.genesisTimestamp,
                    expiresAtMs: TEST_NOW + 86_400_000,
                  },
                  admin,
                ).encoded,
              ),
            ],
          ],
        },
        admin,
        at,
      );
      const t = testChain(roster);
      // In a roster network only members report (index-writer.ts): the miner's node reports.
      const reporter = nodeIdOfKey(miner.publicKey);
      const w = new IndexWriter(db, { network: config, now });
      const genesis = t.chain.tip;
      const [b1] = forgeBranch(t.chain, genesis, [{ miner }]);
      assert.equal((await t.submit(b1!)).status, 'connected');
      await w.apply(
        'b1',
        'block.accepted',
        blockAcceptedReport(reporter, b1!, t.chain.tree.get(b1!.hashHex)!),
      );
      const before = await snapshot(db);
      const n1 = t.chain.tree.get(b1!.hashHex)!;

      // A stranger's (and the not-yet-added newcomer's) block on b1: refused, nothing changes.
      for (const k of [testKey(703), newcomer]) {
        const [x] = forgeBranch(t.chain, n1, [{ miner: k }]);
        await assert.rejects(
          w.apply(`x.${hex(k)}`, 'block.accepted', reportOf(x!, n1.chainWork, reporter)),
          refusedWith('miner-not-member'),
        );
        assert.deepEqual(await snapshot(db), before);
      }

      // The admin adds the newcomer in b2; the newcomer mines b3 on it.
      const [b2] = forgeBranch(t.chain, n1, [{ miner, entries: [add] }]);
      assert.equal((await t.submit(b2!)).status, 'connected');
      await w.apply(
        'b2',
        'block.accepted',
        blockAcceptedReport(reporter, b2!, t.chain.tree.get(b2!.hashHex)!),
      );
      const [b3] = forgeBranch(t.chain, t.chain.tree.get(b2!.hashHex)!, [{ miner: newcomer }]);
      assert.equal((await t.submit(b3!)).status, 'connected');
      // A collector restarted in between (no cached roster) derives it from the index.
      const fresh = new IndexWriter(db, { network: config, now });
      await fresh.apply(
        'b3',
        'block.accepted',
        blockAcceptedReport(reporter, b3!, t.chain.tree.get(b3!.hashHex)!),
      );
      assert.equal((await db.block.findUniqueOrThrow({ where: { hash: b3!.hashHex } })).canonical, true);

      // A block of another network (its own genesis, rules and roster) is refused outright.
      const other = testChain({ ...roster, name: 'elsewhere' });
      const foreign = forgeBlock(other.chain, other.chain.tip, { miner });
      const foreignNode = scratchNode(foreign, other.chain.tip);
      await assert.rejects(
        w.apply('foreign', 'block.accepted', reportOf(foreign, other.chain.tip.chainWork, reporter)),
        refusedWith('wrong-chain-id'),
      );
      assert.equal(foreignNode.height, 1);
    } finally {
      await drop();
    }
  });
}
