/**
 * Issue 14's churn Must-show: 10 real node processes, 2,000 messages between random pairs while
 * recipients and one mailbox are restarted at random: every message delivered exactly once, in
 * per-sender order, none lost, counted on both sides (the senders' receipts, the recipients'
 * inboxes). The run is seeded: CAIRN_CHURN_SEED=<seed> replays a failure's choices.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHURN_DEFAULTS, churnCluster, runChurn, startChurnCluster } from './messaging-churn.ts';

test('churn: 2,000 messages between 10 nodes while recipients and a mailbox restart', {
  timeout: 300_000,
}, async (t) => {
  const seed = Number(process.env.CAIRN_CHURN_SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.diagnostic(`seed ${seed} (CAIRN_CHURN_SEED=${seed} replays it)`);
  const cluster = churnCluster();
  t.diagnostic(`run dir ${cluster.runDir}`);
  try {
    const t0 = performance.now();
    await startChurnCluster(cluster, CHURN_DEFAULTS.nodes, (line) => t.diagnostic(line));
    t.diagnostic(`${CHURN_DEFAULTS.nodes} nodes up in ${Math.round(performance.now() - t0)} ms`);
    const r = await runChurn(cluster, { seed, log: (line) => t.diagnostic(line) });
    t.diagnostic(
      JSON.stringify({
        ...r,
        restarts: r.restarts.length,
        missing: r.missing.length ? r.missing : undefined,
      }),
    );
    assert.equal(r.sent, CHURN_DEFAULTS.messages, 'every post was accepted');
    assert.ok(
      r.restarts.some((x) => x.startsWith('post0:')) && r.restarts.some((x) => x.startsWith('m')),
      `the mailbox and recipients restarted while sending (${r.restarts.join(', ')})`,
    );
    assert.deepEqual(r.missing, [], 'none lost');
    assert.equal(r.duplicates, 0, 'none twice');
    assert.equal(r.wrong, 0, 'each with the text it was sent with');
    assert.equal(r.outOfOrder, 0, 'in per-sender order');
    assert.equal(r.delivered, r.sent, 'recipients count every message');
    assert.equal(r.receipted, r.sent, 'senders hold a receipt for every message');
    await cluster.removeRunDir();
  } finally {
    await cluster.stopAll();
  }
});
