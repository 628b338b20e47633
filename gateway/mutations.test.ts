import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import pino from 'pino';
import { Counter } from 'prom-client';
import { commandSignatureValid, decodeCommand } from '../jobs/command-codec.ts';
import { RefusalLog } from '../jobs/command-refusal-log.ts';
import { runCommandJob } from '../jobs/command-runner.ts';
import { ephemeralSigner } from '../jobs/command-signer.ts';
import { CommandVerifier } from '../jobs/command-verifier.ts';
import type { AdminResults } from '../jobs/payloads.ts';
import { nodeQueueName } from '../jobs/queues.ts';
import { createRedis } from '../jobs/redis.ts';
import { answerCommand } from '../jobs/result-envelope.ts';
import { toHex } from '../node/chain/bytes.ts';
import type { NodeControl } from '../node/control.ts';
import { identityFromSeed } from '../node/identity/identity.ts';
import { gql, startTestGateway, type TestGateway } from './testing.ts';
import { sha256Hex } from './tokens.ts';

// A fake node: a real BullMQ worker on the node's queue (same Redis, same namespace) answering
// each admin command with a fixed valid result, signed and sealed as the node's worker does. It
// records what the gateway signed (the job carries nothing else); who may sign is the node's
// test's business. A second one answers like a Redis writer would: signed, but not by the node.
const nodeIdentity = await identityFromSeed(new Uint8Array(32).fill(11));
const forgerIdentity = await identityFromSeed(new Uint8Array(32).fill(12));
const refuserIdentity = await identityFromSeed(new Uint8Array(32).fill(13));
const NODE = nodeIdentity.peerId.toString();
const FORGED = forgerIdentity.peerId.toString();
/** A node whose clock runs 15 min ahead: every command the gateway signs is expired there. */
const REFUSER = refuserIdentity.peerId.toString();
const signer = ephemeralSigner();
const SILENT = '12D3KooWsilentNode';
const RESULTS: Partial<AdminResults> = {
  'admin.syncMempool': { peerId: '12D3KooWpeer', sent: 3, received: 5, roundTrips: 2, bytes: 1234 },
  'admin.syncChain': { state: 'synced', height: 42, headHash: 'ab'.repeat(32), outcome: null },
  'admin.submitEntry': { id: 'cd'.repeat(32), accepted: true, reason: null },
  'admin.blockPeers': { peers: ['p1'], blocked: ['p0', 'p1'] },
  'fl.startRound': { roundIds: ['ef'.repeat(32)] },
};

let gw: TestGateway;
let worker: Worker;
let forger: Worker;
let refuser: Worker;
const seen: { name: string; data: unknown }[] = [];
const auth = { authorization: 'Bearer op-token' };
const adminAuth = { authorization: 'Bearer admin-token' };

before(async () => {
  gw = await startTestGateway({
    seed: { blocks: 2 },
    adminTimeoutMs: 1500,
    signer,
    tokens: [
      { name: 'op', role: 'operator', sha256: sha256Hex('op-token') },
      { name: 'root', role: 'admin', sha256: sha256Hex('admin-token') },
    ],
  });
  worker = new Worker(
    nodeQueueName(NODE),
    async (job) => {
      const cmd = decodeCommand(Buffer.from(job.data.command, 'hex'));
      if (!commandSignatureValid(cmd) || cmd.command !== job.name || cmd.target !== NODE)
        throw new Error('not signed for this node');
      seen.push({ name: job.name, data: cmd.args });
      const result = RESULTS[job.name as keyof AdminResults];
      return answerCommand(
        cmd,
        result ? { completed: result } : { failed: `unsupported command ${job.name}` },
        nodeIdentity.signingKey,
      );
    },
    { connection: createRedis(), prefix: gw.namespace },
  );
  // Sealed to the gateway's reply key (it is in the command for anyone to read), signed by a key
  // that is not the addressed node's.
  forger = new Worker(
    nodeQueueName(FORGED),
    async (job) =>
      answerCommand(
        decodeCommand(Buffer.from(job.data.command, 'hex')),
        { completed: RESULTS['admin.syncChain'] },
        nodeIdentity.signingKey,
      ),
    { connection: createRedis(), prefix: gw.namespace },
  );
  // The node's own command path (command-runner.ts), gateway key among its command keys.
  const log = pino({ level: 'silent' });
  const deps = {
    verifier: new CommandVerifier({
      nodeId: REFUSER,
      membership: {
        mode: 'open' as const,
        admit: () => {
          throw new Error('open networks take command keys only');
        },
        memberAt: () => undefined,
        certifiedCapabilities: () => undefined,
      },
      commandKeys: [toHex(signer.key.publicKey)],
      now: () => Date.now() + 15 * 60_000,
    }),
    control: {} as NodeControl,
    key: refuserIdentity.signingKey,
    counter: new Counter({
      name: 'refuser_commands',
      help: 'x',
      labelNames: ['command', 'outcome'],
      registers: [],
    }),
    refusals: new RefusalLog(log),
    log,
    reportStats: () => 0,
  };
  refuser = new Worker(nodeQueueName(REFUSER), async (job) => (await runCommandJob(job, deps)).answer, {
    connection: createRedis(),
    prefix: gw.namespace,
  });
  await worker.waitUntilReady();
  await forger.waitUntilReady();
  await refuser.waitUntilReady();
  // Admin mutations accept only nodes the index knows.
  for (const id of [NODE, FORGED, SILENT, REFUSER])
    await gw.db.node.create({
      data: {
        id,
        role: 'submind',
        capabilities: '',
        addrs: '[]',
        firstSeenAt: new Date(),
        lastSeenAt: new Date(),
        height: 0,
        headHash: '00'.repeat(32),
        peerCount: 0,
        mempoolSize: 0,
        mining: false,
        peers: '[]',
      },
    });
});
after(async () => {
  for (const w of [worker, forger, refuser]) {
    await w.close();
    await (w.opts.connection as { quit?: () => Promise<unknown> }).quit?.();
  }
  await gw.close();
});

test('syncMempool returns the node worker’s reconciliation result', async () => {
  const r = await gql(
    gw.url,
    'mutation($n: ID!) { syncMempool(nodeId: $n, peerId: "12D3KooWpeer") { peerId sent received roundTrips bytes } }',
    { n: NODE },
    auth,
  );
  assert.deepEqual(r.body.data?.syncMempool, RESULTS['admin.syncMempool']);
  assert.deepEqual(seen.at(-1), { name: 'admin.syncMempool', data: { peerId: '12D3KooWpeer' } });
});

test('syncChain, submitEntry (with metadata) and blockPeers return their results', async () => {
  const chain = await gql(
    gw.url,
    `mutation { syncChain(nodeId: "${NODE}") { state height headHash outcome } }`,
    {},
    auth,
  );
  assert.deepEqual(chain.body.data?.syncChain, RESULTS['admin.syncChain']);
  const entry = await gql(
    gw.url,
    `mutation { submitEntry(nodeId: "${NODE}", content: "water boils at 100 C", metadata: [{ key: "lang", value: "en" }]) { id accepted reason } }`,
    {},
    auth,
  );
  assert.deepEqual(entry.body.data?.submitEntry, RESULTS['admin.submitEntry']);
  assert.deepEqual(seen.at(-1)?.data, {
    content: 'water boils at 100 C',
    metadata: [{ key: 'lang', value: 'en' }],
  });
  const peers = await gql(
    gw.url,
    `mutation { blockPeers(nodeId: "${NODE}", peerIds: ["p1"]) { peers blocked } }`,
    {},
    adminAuth,
  );
  assert.deepEqual(peers.body.data?.blockPeers, RESULTS['admin.blockPeers']);
});

test('startFederatedRound carries its DP mode to the node; a mode it does not know never leaves', async () => {
  const start = (args: string) =>
    gql(gw.url, `mutation { startFederatedRound(nodeId: "${NODE}", ${args}) { roundIds } }`, {}, adminAuth);
  const r = await start('rounds: 2, mode: "update", noiseMultiplier: 0.3');
  assert.deepEqual(r.body.data?.startFederatedRound, RESULTS['fl.startRound']);
  assert.deepEqual(seen.at(-1), {
    name: 'fl.startRound',
    data: { rounds: 2, noiseMultiplier: 0.3, mode: 'update' },
  });
  await start('rounds: 1, mode: "record", localSteps: 10');
  assert.deepEqual(seen.at(-1)?.data, { rounds: 1, localSteps: 10, mode: 'record' });
  // Absent: no mode in the command, so the coordinator's own applies.
  await start('rounds: 1');
  assert.deepEqual(seen.at(-1)?.data, { rounds: 1 });
  const before = seen.length;
  const bad = await start('rounds: 1, mode: "none"');
  assert.equal(bad.body.errors?.[0]?.extensions?.code, 'INVALID_INPUT');
  assert.match(bad.body.errors?.[0]?.message ?? '', /record|update/);
  assert.equal(seen.length, before);
});

test('a command the node fails is COMMAND_FAILED; invalid input is INVALID_INPUT before any job', async () => {
  const r = await gql(gw.url, `mutation { reportStats(nodeId: "${NODE}") { seq } }`, {}, auth);
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'COMMAND_FAILED');
  assert.match(r.body.errors?.[0]?.message ?? '', /unsupported command admin.reportStats/);
  const before = seen.length;
  const bad = await gql(
    gw.url,
    `mutation { blockPeers(nodeId: "${NODE}", peerIds: []) { blocked } }`,
    {},
    adminAuth,
  );
  assert.equal(bad.body.errors?.[0]?.extensions?.code, 'INVALID_INPUT');
  assert.equal(seen.length, before);
});

test('a node id the index does not know is UNKNOWN_NODE, and nothing is queued', async () => {
  const before = seen.length;
  const r = await gql(gw.url, 'mutation { syncChain(nodeId: "12D3KooWnobody") { state } }', {}, auth);
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'UNKNOWN_NODE');
  const queue = new Queue(nodeQueueName('12D3KooWnobody'), {
    connection: createRedis(),
    prefix: gw.namespace,
  });
  assert.equal(await queue.count(), 0);
  await queue.close();
  await (queue.opts.connection as { quit?: () => Promise<unknown> }).quit?.();
  assert.equal(seen.length, before);
});

test('a node that never answers gives NODE_UNAVAILABLE within the configured timeout', async () => {
  const t0 = Date.now();
  const r = await gql(gw.url, `mutation { syncChain(nodeId: "${SILENT}") { state } }`, {}, auth);
  const took = Date.now() - t0;
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'NODE_UNAVAILABLE');
  assert.equal(r.body.errors?.[0]?.extensions?.nodeId, SILENT);
  assert.match(r.body.errors?.[0]?.message ?? '', /did not answer admin.syncChain within 1500 ms/);
  assert.ok(took >= 1400 && took < 5000, `took ${took} ms`);
});

test('an answer not signed by the addressed node is BAD_RESULT_SIGNATURE, never its data, and counted', async () => {
  const r = await gql(
    gw.url,
    `mutation { syncChain(nodeId: "${FORGED}") { state height headHash outcome } }`,
    {},
    auth,
  );
  assert.equal(r.body.data?.syncChain ?? null, null, 'no data from the forged answer');
  const err = r.body.errors?.[0];
  assert.equal(err?.extensions?.code, 'BAD_RESULT_SIGNATURE', JSON.stringify(r.body));
  assert.equal(err?.extensions?.reason, 'bad-signature');
  assert.equal(err?.extensions?.nodeId, FORGED);
  const metrics = await (await fetch(new URL('/metrics', gw.url))).text();
  assert.match(
    metrics,
    /cairn_gateway_command_results_refused_total\{command="admin.syncChain",reason="bad-signature"\} 1/,
  );
});

test('a refusal the node signs is COMMAND_REFUSED with its verified code', async () => {
  const r = await gql(gw.url, `mutation { syncChain(nodeId: "${REFUSER}") { state } }`, {}, auth);
  const ext = r.body.errors?.[0]?.extensions;
  assert.equal(ext?.code, 'COMMAND_REFUSED', JSON.stringify(r.body.errors));
  assert.equal(ext?.refusal, 'expired');
  assert.equal(ext?.claimedRefusal, undefined);
});
