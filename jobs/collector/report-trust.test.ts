/**
 * Every report kind is the node's word or nothing (attack review of issue 13): the collector
 * refuses unsigned reports and reports signed by another key or for another job id, stats dated
 * ahead of its clock, model versions no indexed block commits, and FL round reports from anyone
 * but the round's coordinator; a round's status never moves back. Real Redis, BullMQ and both
 * index providers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Queue, QueueEvents } from 'bullmq';
import { Registry } from 'prom-client';
import { createEntry } from '../../node/chain/authoring.ts';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdHex } from '../../node/chain/network-config.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import { createLogger } from '../../node/log.ts';
import { forgeBranch, testChain, testKey } from '../../node/testing/forge.ts';
import { createTestIndexDb, TEST_PROVIDERS } from '../index-db/testing.ts';
import { blockAcceptedReport } from '../node-reports.ts';
import type { FlRoundReport, ModelVersionReport, NodeStatsReport } from '../payloads.ts';
import { createCairnPubSub } from '../pubsub.ts';
import { REPORTS_QUEUE, type ReportKind } from '../queues.ts';
import { createRedis, redisUrl } from '../redis.ts';
import { nodeIdOfKey, signReport } from '../report-envelope.ts';
import { addSignedReport, REPORTER_ID, REPORTER_KEY } from '../report-testing.ts';
import { Collector } from './collector.ts';

async function counter(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((n, v) => n + v.value, 0);
}

const OTHER_KEY = testKey(901);
const OTHER_ID = nodeIdOfKey(OTHER_KEY.publicKey);

async function setup(provider: (typeof TEST_PROVIDERS)[number]) {
  const ns = `rt${randomBytes(4).toString('hex')}`;
  const index = await createTestIndexDb(provider);
  const bus = createCairnPubSub(redisUrl(), ns);
  const registry = new Registry();
  const chain = testChain();
  const collector = new Collector({
    db: index.db,
    pubsub: bus.pubsub,
    redisUrl: redisUrl(),
    namespace: ns,
    log: createLogger('silent'),
    registry,
    network: chain.chain.config,
    holdMs: 1_500,
  });
  const connection = createRedis();
  const queue = new Queue(REPORTS_QUEUE, { connection, prefix: ns });
  const eventsConnection = createRedis();
  const events = new QueueEvents(REPORTS_QUEUE, { connection: eventsConnection, prefix: ns });
  await events.waitUntilReady();
  const refused = (reason: string) => counter(registry, 'cairn_collector_refused_reports_total', { reason });
  /** Adds a job and waits for its verdict: the result, or the error message it failed with. */
  const verdict = async (kind: ReportKind, jobId: string, data: object): Promise<string> => {
    const job = await queue.add(kind, data, { jobId, attempts: 3 });
    try {
      return JSON.stringify(await job.waitUntilFinished(events, 10_000));
    } catch (err) {
      return (err as Error).message;
    }
  };
  return {
    ...index,
    chain,
    queue,
    events,
    refused,
    verdict,
    close: async () => {
      await collector.close();
      await queue.obliterate({ force: true }).catch(() => {});
      await Promise.all([queue.close(), events.close()]);
      connection.disconnect();
      eventsConnection.disconnect();
      await bus.close();
      await index.drop();
    },
  };
}

const stats =
  (nodeId: string, network: ReturnType<typeof testChain>['chain']['config']) =>
  (o: { at: string; seq: number; height: number; addrs: string[] }): NodeStatsReport => ({
    nodeId,
    boot: 1,
    seq: o.seq,
    at: o.at,
    role: 'hub',
    capabilities: ['mine'],
    addrs: o.addrs,
    height: o.height,
    headHash: 'ab'.repeat(32),
    totalWork: '1',
    target: '1',
    peers: [],
    mempoolSize: 0,
    hashRate: 0,
    mining: true,
    chainId: chainIdHex(network),
    genesisHash: genesisBlock(network).hashHex,
    networkConfig: '{}',
  });

for (const provider of TEST_PROVIDERS) {
  test(`${provider} collector: unsigned, mis-signed and future-dated reports are refused with their code; the node's own later report lands`, async (t) => {
    const c = await setup(provider);
    t.after(c.close);
    const mk = stats(REPORTER_ID, c.chain.chain.config);
    const forgedAt = {
      at: '9999-01-01T00:00:00.000Z',
      seq: 999,
      height: 1_000_000,
      addrs: ['/ip4/203.0.113.66/tcp/4001'],
    };
    // A bare Redis client: the payload as it was before reports were signed.
    assert.match(await c.verdict('node.stats', 's.raw', mk(forgedAt)), /^unsigned:/);
    // Signed by a key of the forger's, claiming the victim's node id.
    assert.match(
      await c.verdict('node.stats', 's.other', signReport('node.stats', 's.other', mk(forgedAt), OTHER_KEY)),
      /^bad-report-signature:/,
    );
    // A genuine signed report copied to another job id (to count twice, or to dodge the report log).
    const genuine = signReport(
      'node.stats',
      's.1',
      mk({ ...forgedAt, at: new Date().toISOString() }),
      REPORTER_KEY,
    );
    assert.match(await c.verdict('node.stats', 's.copy', genuine), /^bad-report-signature:/);
    // Kind changed: signed as a stats report, queued as an orphan report.
    assert.match(await c.verdict('block.orphaned', 's.1', genuine), /^bad-report-signature:/);
    // The node's own key, dated far ahead: would freeze its row ("a re-sent report must not roll back").
    assert.match(
      await c.verdict(
        'node.stats',
        's.future',
        signReport('node.stats', 's.future', mk(forgedAt), REPORTER_KEY),
      ),
      /^report-from-future:/,
    );
    assert.equal(await c.db.node.count(), 0, 'nothing refused reached the index');
    assert.equal(await c.db.report.count(), 0);
    // Two minutes' skew is allowed: a clock a little ahead is not an attack.
    const ahead = new Date(Date.now() + 60_000).toISOString();
    const real = mk({ at: ahead, seq: 1, height: 42, addrs: ['/ip4/192.168.1.5/tcp/4001'] });
    assert.equal(
      await c.verdict('node.stats', 's.real', signReport('node.stats', 's.real', real, REPORTER_KEY)),
      '{"duplicate":false}',
    );
    const row = await c.db.node.findUniqueOrThrow({ where: { id: REPORTER_ID } });
    assert.equal(row.height, 42);
    assert.doesNotMatch(row.addrs, /203\.0\.113/);
    // A recorded report of the node's, two hours old, under a job id the (pruned) log forgot.
    const old = mk({ at: new Date(Date.now() - 2 * 3_600_000).toISOString(), seq: 2, height: 7, addrs: [] });
    assert.match(
      await c.verdict('node.stats', 's.old', signReport('node.stats', 's.old', old, REPORTER_KEY)),
      /^stale-report:/,
    );
    assert.equal((await c.db.node.findUniqueOrThrow({ where: { id: REPORTER_ID } })).height, 42);
    for (const [reason, n] of [
      ['unsigned', 1],
      ['bad-report-signature', 3],
      ['report-from-future', 1],
      ['stale-report', 1],
    ] as const)
      assert.equal(await c.refused(reason), n, reason);
  });

  test(`${provider} collector: a model version is indexed from the block that commits it; an FL round is its coordinator's and only moves forward`, async (t) => {
    const c = await setup(provider);
    t.after(c.close);
    const tc = c.chain;
    const modelHash = 'cd'.repeat(32);
    const version = (o: Partial<ModelVersionReport> = {}): ModelVersionReport => ({
      nodeId: REPORTER_ID,
      hash: modelHash,
      parentHash: null,
      round: 1,
      metrics: { accuracy: 0.999 },
      epsilon: 0,
      participants: 50,
      blockHash: null,
      at: new Date().toISOString(),
      ...o,
    });
    const round = (status: FlRoundReport['status'], o: Partial<FlRoundReport> = {}): FlRoundReport => ({
      nodeId: REPORTER_ID,
      id: 'ab'.repeat(32),
      round: 1,
      status,
      participants: [],
      leftOut: [],
      dp: { epsilon: 2 },
      modelHash: status === 'completed' ? modelHash : null,
      error: null,
      startedAt: new Date().toISOString(),
      finishedAt: status === 'running' ? null : new Date().toISOString(),
      ...o,
    });

    // No indexed block holds this version: held, then refused when the hold time is up.
    assert.match(
      await c.verdict(
        'model.version',
        'mv.fake',
        signReport('model.version', 'mv.fake', version(), REPORTER_KEY),
      ),
      /^model-not-indexed:/,
    );
    assert.equal(await c.db.modelVersion.count(), 0);

    // The round's coordinator (the node that announced it) reports it running.
    const running = round('running');
    assert.equal(
      await c.verdict('fl.round', 'fl.1', signReport('fl.round', 'fl.1', running, REPORTER_KEY)),
      '{"duplicate":false}',
    );
    // Another node claims the round's outcome: refused, the row is unchanged.
    const stolen = round('failed', { nodeId: OTHER_ID, error: 'sabotaged' });
    assert.match(
      await c.verdict('fl.round', 'fl.x', signReport('fl.round', 'fl.x', stolen, OTHER_KEY)),
      /^not-coordinator:/,
    );
    assert.equal((await c.db.flRound.findUniqueOrThrow({ where: { id: running.id } })).status, 'running');

    // The coordinator mines its model entry; the version is indexed with the entry's figures.
    const entry = createEntry(
      {
        kind: 'model',
        modelHash: Buffer.from(modelHash, 'hex'),
        parentHash: null,
        round: 1,
        metrics: [
          ['accuracy', 0.91],
          ['participants', 3],
        ],
        epsilon: 2.5,
      },
      REPORTER_KEY,
      tc.chain.tip.header.timestamp + 1,
    );
    const [b1] = forgeBranch(tc.chain, tc.chain.tip, [{ entries: [entry] }]) as [SealedBlock];
    assert.equal((await tc.submit(b1)).status, 'connected');
    const accepted = blockAcceptedReport(REPORTER_ID, b1, tc.chain.tree.get(b1.hashHex)!);
    await (await addSignedReport(c.queue, 'block.accepted', 'b1', accepted)).waitUntilFinished(
      c.events,
      10_000,
    );
    const ok = signReport('model.version', 'mv.1', version({ blockHash: b1.hashHex }), REPORTER_KEY);
    assert.equal(await c.verdict('model.version', 'mv.1', ok), '{"duplicate":false}');
    const mv = await c.db.modelVersion.findUniqueOrThrow({ where: { hash: modelHash } });
    assert.deepEqual(
      [mv.accuracy, mv.epsilon, mv.participants, mv.blockHash],
      [0.91, 2.5, 3, b1.hashHex],
      "the entry's figures, not the report's",
    );

    // Its completion lands; a late `running` (a retry overtaken) moves nothing back.
    const done = signReport('fl.round', 'fl.2', round('completed'), REPORTER_KEY);
    assert.equal(await c.verdict('fl.round', 'fl.2', done), '{"duplicate":false}');
    const late = signReport('fl.round', 'fl.3', round('running', { participants: [OTHER_ID] }), REPORTER_KEY);
    assert.equal(await c.verdict('fl.round', 'fl.3', late), '{"duplicate":false}');
    const fl = await c.db.flRound.findUniqueOrThrow({ where: { id: running.id } });
    assert.deepEqual([fl.status, fl.coordinator, fl.modelHash], ['completed', REPORTER_ID, modelHash]);
    assert.equal(fl.participants, '[]');

    // A round of another node naming this model as its outcome: the model is not its author's.
    const claim = round('completed', { nodeId: OTHER_ID, id: 'ef'.repeat(32) });
    assert.match(
      await c.verdict('fl.round', 'fl.y', signReport('fl.round', 'fl.y', claim, OTHER_KEY)),
      /^not-coordinator:/,
    );
    assert.equal(await c.db.flRound.count(), 1);
    assert.equal(await c.refused('not-coordinator'), 2);
    assert.equal(await c.refused('model-not-indexed'), 1);
  });
}
