/**
 * The operator `sendMessage` mutation end to end: a real gateway (real index, real Redis) signs
 * admin.sendMessage for two real in-process nodes on loopback, each running its real job worker
 * (NodeJobs: verifier, runner, signed answers). The node started with allowOperatorMessages
 * sends and the other node's inbox gets the text; the node without it refuses, signed, as
 * `disabled`, and its outbox stays empty. Only admins may ask.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { multiaddr } from '@multiformats/multiaddr';
import { ephemeralSigner } from '../jobs/command-signer.ts';
import { NodeJobs, OPERATOR_MESSAGES_OFF } from '../jobs/node-jobs.ts';
import { redisUrl } from '../jobs/redis.ts';
import { toHex } from '../node/chain/bytes.ts';
import { createLogger } from '../node/log.ts';
import { CairnNode } from '../node/node.ts';
import { testNetwork } from '../node/testing/forge.ts';
import { gql, startTestGateway, type TestGateway } from './testing.ts';
import { sha256Hex } from './tokens.ts';

const signer = ephemeralSigner();
let gw: TestGateway;
let dir: string;
let allowing: CairnNode;
let refusing: CairnNode;
const jobs: NodeJobs[] = [];
const admin = { authorization: 'Bearer admin-token' };
const operator = { authorization: 'Bearer op-token' };

const startNode = (name: string) =>
  CairnNode.start({
    dataDir: path.join(dir, name),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mine: false,
    mdns: false,
    role: 'submind',
    capabilities: [],
    network: testNetwork(),
    reconcileIntervalMs: 0,
    logger: createLogger('silent'),
  });

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-sendmsg-'));
  gw = await startTestGateway({
    seed: false,
    adminTimeoutMs: 10_000,
    signer,
    tokens: [
      { name: 'op', role: 'operator', sha256: sha256Hex('op-token') },
      { name: 'root', role: 'admin', sha256: sha256Hex('admin-token') },
    ],
    tokenRateLimit: null,
  });
  allowing = await startNode('allowing');
  refusing = await startNode('refusing');
  await allowing.host.dial(multiaddr(refusing.host.getMultiaddrs()[0]!.toString()));
  for (const [node, allowOperatorMessages] of [
    [allowing, true],
    [refusing, false],
  ] as const) {
    jobs.push(
      await NodeJobs.start({
        node,
        redisUrl: redisUrl(),
        namespace: gw.namespace,
        // Open network: the gateway's key is the one allowed to command these nodes.
        commandKeys: [toHex(signer.key.publicKey)],
        allowOperatorMessages,
        log: createLogger('silent'),
      }),
    );
    // The gateway only commands nodes the index knows (as their stats reports make them).
    const now = new Date();
    await gw.db.node.create({
      data: {
        id: node.identity.peerId.toString(),
        role: 'submind',
        capabilities: '',
        addrs: '[]',
        firstSeenAt: now,
        lastSeenAt: now,
        height: 0,
        headHash: '00'.repeat(32),
        peerCount: 1,
        mempoolSize: 0,
        mining: false,
      },
    });
  }
});

after(async () => {
  for (const j of jobs) await j.stop();
  await allowing?.stop();
  await refusing?.stop();
  await gw?.close();
  await rm(dir, { recursive: true, force: true });
});

const SEND =
  'mutation($n: ID!, $to: String!, $text: String!) { sendMessage(nodeId: $n, to: $to, text: $text) { to seq status contentId } }';

test('a node started with allowOperatorMessages sends for an admin; the recipient reads the text', async () => {
  const r = await gql(
    gw.url,
    SEND,
    {
      n: allowing.identity.peerId.toString(),
      to: refusing.identity.peerId.toString(),
      text: 'hello from ops',
    },
    admin,
  );
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body.errors));
  const sent = r.body.data!.sendMessage as { to: string; seq: number; status: string; contentId: string };
  assert.equal(sent.to, refusing.identity.publicKeyHex);
  assert.equal(sent.seq, 1);
  // The result carries ids and the outcome, never the text.
  assert.ok(!JSON.stringify(r.body).includes('hello from ops'));
  const deadline = Date.now() + 10_000;
  let inbox = await refusing.messaging!.inbox(0, 10);
  while (inbox.length === 0 && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 100));
    inbox = await refusing.messaging!.inbox(0, 10);
  }
  assert.deepEqual(
    inbox.map((m) => [m.from, m.text]),
    [[allowing.identity.publicKeyHex, 'hello from ops']],
  );
  // The sender's figures count it, as its next stats report will carry them.
  const stats = allowing.messaging!.stats();
  assert.equal(stats.sent, 1);
});

test('a node without it refuses, signed, as disabled; nothing enters its outbox', async () => {
  const r = await gql(
    gw.url,
    SEND,
    { n: refusing.identity.peerId.toString(), to: allowing.identity.peerId.toString(), text: 'not allowed' },
    admin,
  );
  const err = r.body.errors?.[0];
  assert.equal(err?.extensions?.code, 'COMMAND_REFUSED', JSON.stringify(r.body.errors));
  assert.equal(err?.extensions?.refusal, 'disabled');
  assert.ok(err?.message.includes(OPERATOR_MESSAGES_OFF), err?.message);
  assert.deepEqual(await refusing.messaging!.outbox(10), []);
  assert.equal(refusing.messaging!.stats().sent, 0);
  // Counted where refused, by its code.
  const counted = await refusing.metrics.registry.getSingleMetric('cairn_admin_commands_total')!.get();
  assert.ok(
    counted.values.some(
      (v) => v.labels.command === 'admin.sendMessage' && v.labels.outcome === 'disabled' && v.value === 1,
    ),
    JSON.stringify(counted.values),
  );
});

test('only admins may send as a node: an operator is forbidden before any command is signed', async () => {
  const r = await gql(
    gw.url,
    SEND,
    { n: allowing.identity.peerId.toString(), to: refusing.identity.peerId.toString(), text: 'op' },
    operator,
  );
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'FORBIDDEN', JSON.stringify(r.body.errors));
  assert.equal(allowing.messaging!.stats().sent, 1);
});
