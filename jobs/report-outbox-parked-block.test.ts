/**
 * The consequence of finding 1 of attack review #13: one block report moved from `wait` into
 * `completed` (LREM + ZADD, no BullMQ script) was forgotten by the outbox as delivered, and the
 * collector then held every later block of that node as unknown-parent. With collector receipts
 * the outbox sends it again and the index gets all three. Real Redis, BullMQ, collector and
 * index DB; blocks forged on the test chain.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forgeBranch, testChain } from '../node/testing/forge.ts';
import { blockAcceptedReport } from './node-reports.ts';
import { REPORTS_QUEUE } from './queues.ts';
import { receiptedOutboxRig } from './report-queue-testing.ts';
import { REPORTER_ID } from './report-testing.ts';

for (const attacked of [false, true])
  test(`outbox: ${attacked ? 'a block report moved into completed before the collector saw it' : 'control, no attack: a block report'} still gets indexed, and so do its children`, async (t) => {
    const { rig, outbox, reissued } = await receiptedOutboxRig(t, 'pb');
    const { ns, db, attacker, attackerRedis: c2 } = rig;
    const chain = testChain();
    const blocks = forgeBranch(chain.chain, chain.chain.tip, [{}, {}, {}]);
    for (const b of blocks) await chain.submit(b);
    const report = (b: (typeof blocks)[number]) =>
      blockAcceptedReport(REPORTER_ID, b, chain.chain.tree.get(b.hashHex)!);

    await attacker.pause();
    const first = outbox.push('block.accepted', `block.n.${blocks[0]!.hashHex}`, report(blocks[0]!));
    assert.ok(await outbox.drain(5_000));
    if (attacked) {
      assert.equal(await c2.lrem(`${ns}:${REPORTS_QUEUE}:wait`, 0, first), 1);
      await c2.zadd(`${ns}:${REPORTS_QUEUE}:completed`, Date.now(), first);
    }
    await attacker.resume();
    for (const b of blocks.slice(1)) outbox.push('block.accepted', `block.n.${b.hashHex}`, report(b));
    assert.ok(await outbox.drain(5_000));
    for (let i = 0; i < 6 && ((await db.block.count()) < 3 || outbox.stats().unconfirmed > 0); i++) {
      await outbox.confirm();
      await outbox.drain(5_000);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(await db.block.count(), 3, `outbox ${JSON.stringify(outbox.stats())}`);
    assert.deepEqual(reissued, attacked ? ['unreceipted:1'] : []);
    assert.equal(outbox.stats().unconfirmed, 0, 'every report receipted and let go');
  });
