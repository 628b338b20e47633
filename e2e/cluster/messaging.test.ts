/**
 * Issue 14 across real node processes of a roster network: alice sends to bob by member name,
 * bob's inbox holds it once and alice holds bob's signed receipt; an insider member's tampered
 * and misaddressed envelopes are refused by bob with their own codes and cost it score; bob
 * stopped, three messages sent, bob back: each delivered exactly once, in order.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { peerIdFromString } from '@libp2p/peer-id';
import { chainIdOf } from '../../node/chain/network-config.ts';
import { keyPairFromSeed } from '../../node/chain/signature.ts';
import { sealMessage } from '../../node/messaging/envelope.ts';
import { openKeyRecord } from '../../node/messaging/keys.ts';
import { MSG_KEY, msgProtocol } from '../../node/messaging/protocols.ts';
import { ReqRespError } from '../../node/p2p/reqresp.ts';
import { ByzantinePeer } from './byzantine-peer.ts';
import { Cluster, type ClusterNode } from './harness.ts';
import { nodeApiHeaders } from './node-process.ts';

interface InboxView {
  messages: { from: string; fromName: string | null; seq: number; text: string; order: number }[];
}
interface OutboxView {
  messages: { seq: number; status: string; toName: string | null }[];
}

const getAuthed = async <T>(n: ClusterNode, p: string): Promise<T> => {
  const res = await fetch(`${n.httpUrl}${p}`, { headers: await nodeApiHeaders(n.cookieFile) });
  assert.equal(res.status, 200, `${n.name} GET ${p}: ${res.status} ${await res.clone().text()}`);
  return (await res.json()) as T;
};

test('messages between nodes: by name with receipts, forgeries refused, exactly once after an outage', {
  timeout: 240_000,
}, async (t) => {
  const ALICE = 0;
  const BOB = 1;
  const MALLORY = 2;
  const cluster = new Cluster({
    network: { blockTimeMs: 1000 },
    roster: { size: 3, member: (i) => ({ name: ['alice', 'bob', 'mallory'][i] }) },
  });
  t.diagnostic(`run dir ${cluster.runDir}`);
  const roster = cluster.roster!;
  let mallory: ByzantinePeer | undefined;
  try {
    const [alice, bob] = (await cluster.start(2, (i) => ({
      name: ['alice', 'bob'][i],
      member: [ALICE, BOB][i],
      mine: i === 0,
    }))) as [ClusterNode, ClusterNode];
    await cluster.waitForConnected({ timeoutMs: 60_000 });

    // ---- By name, with a receipt. ----
    const started = performance.now();
    const sent = await alice.postJson<{ status: string; seq: number; toName: string; contentId: string }>(
      '/messages',
      { to: 'bob', text: 'hello bob' },
    );
    t.diagnostic(
      `first message: ${sent.status} in ${(performance.now() - started).toFixed(0)} ms (key fetch included)`,
    );
    assert.equal(sent.status, 'delivered', 'the receipt came back');
    assert.equal(sent.toName, 'bob');
    assert.equal(sent.seq, 1);
    assert.match(sent.contentId, /^[0-9a-f]{64}$/);
    let inbox = await getAuthed<InboxView>(bob, '/messages');
    assert.deepEqual(
      inbox.messages.map((m) => [m.fromName, m.seq, m.text]),
      [['alice', 1, 'hello bob']],
    );
    const unauth = await fetch(`${bob.httpUrl}/messages`);
    assert.equal(unauth.status, 401, 'the inbox needs the token');
    assert.equal(await alice.metric('cairn_messages_delivered_total'), 1);
    assert.equal(await bob.metric('cairn_messages_received_total', { outcome: 'delivered' }), 1);
    const tooBig = await fetch(`${alice.httpUrl}/messages`, {
      method: 'POST',
      headers: await nodeApiHeaders(alice.cookieFile),
      body: JSON.stringify({ to: 'bob', text: 'x'.repeat(16 * 1024 + 1) }),
    });
    assert.equal(tooBig.status, 413, 'an oversized message is refused with its own code');
    const nobody = await fetch(`${alice.httpUrl}/messages`, {
      method: 'POST',
      headers: await nodeApiHeaders(alice.cookieFile),
      body: JSON.stringify({ to: 'carol', text: 'hi' }),
    });
    assert.equal(nobody.status, 404);

    // ---- An insider's forgeries. ----
    const dir = path.join(cluster.runDir, 'insiders');
    await mkdir(dir, { recursive: true });
    mallory = await ByzantinePeer.start('mallory', cluster.networkConfig!, dir, {
      seed: roster.seeds[MALLORY],
    });
    await mallory.connect(bob, 20_000);
    await mallory.connect(alice, 20_000);
    const chain = chainIdOf(cluster.networkConfig!);
    const bobPeer = peerIdFromString(bob.peerId);
    const alicePeer = peerIdFromString(alice.peerId);
    const bobRecord = (await mallory.reqresp.request(bobPeer, MSG_KEY, new Uint8Array([1])))[0]!;
    const aliceRecord = (await mallory.reqresp.request(alicePeer, MSG_KEY, new Uint8Array([1])))[0]!;
    const bobKey = openKeyRecord(bobRecord, chain);
    const aliceKey = openKeyRecord(aliceRecord, chain);
    const malloryKey = keyPairFromSeed(roster.seeds[MALLORY]!);
    const seal = (to: typeof bobKey, seq: number, body: string) =>
      sealMessage({
        chainId: chain,
        sender: malloryKey,
        recipient: to.identity,
        recipientMessagingKey: to.messagingKey,
        sequence: seq,
        sentAtMs: Date.now(),
        body,
      }).envelope;
    const spec = msgProtocol(16 * 1024);
    const refusal = async (bytes: Uint8Array) => {
      try {
        await mallory!.reqresp.request(bobPeer, spec, bytes);
        return 'accepted';
      } catch (err) {
        assert.ok(err instanceof ReqRespError, String(err));
        return err.code;
      }
    };
    const tampered = seal(bobKey, 1, 'pay mallory');
    tampered[tampered.length - 20]! ^= 0x01;
    assert.equal(await refusal(tampered), 'invalid-request');
    assert.equal(await refusal(seal(aliceKey, 1, 'for alice, sent to bob')), 'invalid-request');
    assert.equal(await bob.metric('cairn_messages_rejected_total', { reason: 'tampered' }), 1);
    assert.equal(await bob.metric('cairn_messages_rejected_total', { reason: 'misaddressed' }), 1);
    const status = await bob.status();
    const score = status.peers.find((p) => p.peerId === mallory!.peerId)?.score;
    t.diagnostic(`mallory's score at bob: ${score}`);
    assert.ok(score !== undefined && score <= -14, `mallory penalised (score ${score})`);
    inbox = await getAuthed<InboxView>(bob, '/messages');
    assert.equal(inbox.messages.length, 1, 'nothing of the forgeries reached the inbox');
    await mallory.stop();
    mallory = undefined;

    // ---- Bob offline: the outbox keeps and retries; bob back: once each, in order. ----
    await cluster.stop('bob');
    const pending = [];
    for (const text of ['while you were out 1', 'while you were out 2', 'while you were out 3'])
      pending.push(await alice.postJson<{ status: string; seq: number }>('/messages', { to: 'bob', text }));
    assert.deepEqual(
      pending.map((p) => [p.seq, p.status]),
      [
        [2, 'pending'],
        [3, 'pending'],
        [4, 'pending'],
      ],
    );
    await cluster.restart('bob', {});
    const back = performance.now();
    await cluster.waitFor(async () => (await getAuthed<InboxView>(bob, '/messages')).messages.length >= 4, {
      timeoutMs: 60_000,
      description: 'bob received the messages sent while it was down',
    });
    t.diagnostic(`backlog of 3 delivered ${(performance.now() - back).toFixed(0)} ms after bob's restart`);
    inbox = await getAuthed<InboxView>(bob, '/messages');
    assert.deepEqual(
      inbox.messages.map((m) => [m.fromName, m.seq, m.text]),
      [
        ['alice', 1, 'hello bob'],
        ['alice', 2, 'while you were out 1'],
        ['alice', 3, 'while you were out 2'],
        ['alice', 4, 'while you were out 3'],
      ],
      'each once, in order, across bob’s restart',
    );
    await cluster.waitFor(
      async () =>
        (await getAuthed<OutboxView>(alice, '/messages/outbox')).messages.every(
          (m) => m.status === 'delivered',
        ),
      { timeoutMs: 20_000, description: "alice holds bob's receipts for all four" },
    );
    assert.equal(await alice.metric('cairn_messages_delivered_total'), 4);
    // A second restart of bob changes nothing: the cursor and the rows are on disk.
    await cluster.restart('bob', {});
    inbox = await getAuthed<InboxView>(bob, '/messages');
    assert.equal(inbox.messages.length, 4);

    // ---- The CLI: the same through `npm run node -- msg …`. ----
    const root = path.resolve(import.meta.dirname, '../..');
    const cli = async (...args: string[]) =>
      (
        await promisify(execFile)(process.execPath, ['--import', 'tsx', 'node/main.ts', 'msg', ...args], {
          cwd: root,
          timeout: 60_000,
        })
      ).stdout;
    await cluster.waitForConnected({ timeoutMs: 30_000 });
    assert.match(
      await cli('send', 'bob', 'from the cli', '--data-dir', alice.dataDir),
      /^#5 to bob: delivered/,
    );
    const lines = (await cli('inbox', '--data-dir', bob.dataDir)).trim().split('\n');
    assert.equal(lines.length, 5);
    assert.match(lines[4]!, / alice #5: from the cli$/);
    assert.match(await cli('outbox', '--data-dir', alice.dataDir), /#5 to bob: delivered/);
    await cluster.stopAll();
    await cluster.removeRunDir();
  } finally {
    await mallory?.stop();
    await cluster.stopAll();
  }
});
