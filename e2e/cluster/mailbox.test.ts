/**
 * Store and forward across real node processes (issue 14): bob is stopped, alice's messages go
 * to the mailbox member `post` (relay), which holds only ciphertext and loses nothing when it
 * restarts; alice goes offline too, bob returns and gets each message once, in order, from the
 * mailbox alone, and his receipts empty it; alice returns and holds bob's receipts.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'libsql';
import { toHex } from '../../node/chain/bytes.ts';
import { keyPairFromSeed } from '../../node/chain/signature.ts';
import { Cluster, type ClusterNode } from './harness.ts';
import { nodeApiHeaders } from './node-process.ts';

interface InboxView {
  messages: { fromName: string | null; seq: number; text: string }[];
}
interface OutboxView {
  messages: { seq: number; status: string }[];
}
const getAuthed = async <T>(n: ClusterNode, p: string): Promise<T> => {
  const res = await fetch(`${n.httpUrl}${p}`, { headers: await nodeApiHeaders(n.cookieFile) });
  assert.equal(res.status, 200, `${n.name} GET ${p}: ${res.status}`);
  return (await res.json()) as T;
};
const metric = async (n: ClusterNode, name: string, labels: Record<string, string> = {}) =>
  (await n.metric(name, labels)) ?? 0;

test('offline delivery through a mailbox: ciphertext only, survives its restart, exactly once', {
  timeout: 300_000,
}, async (t) => {
  const cluster = new Cluster({
    network: { blockTimeMs: 1000 },
    roster: {
      size: 3,
      member: (i) =>
        [
          { name: 'alice', capabilities: ['mine', 'submit', 'message'] as const },
          { name: 'bob', capabilities: ['submit', 'message'] as const },
          { name: 'post', role: 'backup' as const, capabilities: ['relay', 'archive', 'message'] as const },
        ][i]!,
    },
  });
  t.diagnostic(`run dir ${cluster.runDir}`);
  try {
    const [alice, bob, post] = (await cluster.start(3, (i) => ({
      name: ['alice', 'bob', 'post'][i],
      member: i,
      mine: i === 0,
    }))) as [ClusterNode, ClusterNode, ClusterNode];
    await cluster.waitForConnected({ timeoutMs: 60_000 });
    const first = await alice.postJson<{ status: string }>('/messages', { to: 'bob', text: 'before 1' });
    assert.equal(first.status, 'delivered');

    // ---- Bob is away: the mailbox takes the messages. ----
    await cluster.stop('bob');
    const texts = ['while away 2', 'while away 3', 'while away 4'];
    for (const text of texts) {
      const r = await alice.postJson<{ status: string }>('/messages', { to: 'bob', text });
      assert.equal(r.status, 'pending');
    }
    await cluster.waitFor(async () => (await metric(post, 'cairn_mailbox_items')) === 3, {
      timeoutMs: 30_000,
      description: 'the mailbox holds the three messages',
      nodes: ['alice', 'post'],
    });
    assert.equal(await metric(alice, 'cairn_messages_deposited_total', { outcome: 'stored' }), 3);

    // What the mailbox's store holds: ciphertext for bob, not the text, not alice's key.
    const db = new Database(path.join(post.dataDir, 'chain.db'));
    const rows = db.prepare('SELECT * FROM "MailboxItem"').all() as Record<string, unknown>[];
    db.close();
    assert.equal(rows.length, 3);
    const aliceKey = keyPairFromSeed(cluster.roster!.seeds[0]!).publicKey;
    const dump = Buffer.concat(
      rows.flatMap((r) =>
        Object.values(r).map((v) =>
          v instanceof ArrayBuffer || v instanceof Uint8Array
            ? Buffer.from(v as ArrayBuffer)
            : Buffer.from(String(v)),
        ),
      ),
    );
    assert.ok(!dump.includes(Buffer.from('while away')), 'no plaintext at the mailbox');
    assert.ok(!dump.includes(Buffer.from(aliceKey)), "not alice's key");
    assert.ok(!dump.includes(Buffer.from(toHex(aliceKey))), "not alice's key in hex");

    // ---- The mailbox restarts: nothing lost. Then alice leaves, bob returns. ----
    await cluster.restart('post', {});
    assert.equal(await metric(post, 'cairn_mailbox_items'), 3, 'the mailbox restarted with all three');
    await cluster.stop('alice');
    await cluster.restart('bob', {});
    const back = performance.now();
    await cluster.waitFor(async () => (await getAuthed<InboxView>(bob, '/messages')).messages.length >= 4, {
      timeoutMs: 60_000,
      description: 'bob fetched from the mailbox',
      nodes: ['bob', 'post'],
    });
    t.diagnostic(
      `3 messages fetched from the mailbox ${(performance.now() - back).toFixed(0)} ms after bob's restart`,
    );
    const inbox = await getAuthed<InboxView>(bob, '/messages');
    assert.deepEqual(
      inbox.messages.map((m) => [m.fromName, m.seq, m.text]),
      [
        ['alice', 1, 'before 1'],
        ['alice', 2, 'while away 2'],
        ['alice', 3, 'while away 3'],
        ['alice', 4, 'while away 4'],
      ],
    );
    await cluster.waitFor(async () => (await metric(post, 'cairn_mailbox_items')) === 0, {
      timeoutMs: 20_000,
      description: "bob's receipts emptied the mailbox",
      nodes: ['bob', 'post'],
    });

    // ---- Alice returns: her outbox resends, bob receipts the copies, shows nothing twice. ----
    await cluster.restart('alice', {});
    await cluster.waitFor(
      async () =>
        (await getAuthed<OutboxView>(alice, '/messages/outbox')).messages.every(
          (m) => m.status === 'delivered',
        ),
      { timeoutMs: 60_000, description: "alice holds bob's receipts" },
    );
    assert.equal((await getAuthed<InboxView>(bob, '/messages')).messages.length, 4, 'no duplicates');
    assert.ok((await metric(bob, 'cairn_messages_received_total', { outcome: 'duplicate' })) >= 3);
    await cluster.stopAll();
    await cluster.removeRunDir();
  } finally {
    await cluster.stopAll();
  }
});
