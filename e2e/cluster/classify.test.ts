/**
 * Issue 16 item 3, "Must show": `classify` gives the same answer through the node API, the CLI
 * and GraphQL, for the same model version. A small real cluster (three node processes, Redis,
 * the collector, the gateway) trains one round; the version it commits is what each node
 * classifies with, its weights reach the index through the collector (hash-checked), and the
 * gateway scores with them. The same texts must give bit-identical scores all three ways.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import type { Capability } from '../../node/membership/view.ts';
import { eventually, JobsCluster } from './jobs-cluster.ts';
import { NODE_MAIN, nodeBinary, REPO_ROOT } from './node-process.ts';
import { portOrFree } from './service.ts';
import { gatewayProcess } from './service-process.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const ADMIN = randomBytes(16).toString('hex');
const COORDINATOR = 1;
const capabilitiesOf = (i: number): Capability[] =>
  i === COORDINATOR
    ? ['coordinate', 'train', 'submit']
    : i === 0
      ? ['mine', 'train', 'submit']
      : ['train', 'submit'];

interface Answer {
  version: string;
  round: number;
  spam: boolean;
  score: number;
}

async function gql<T>(url: string, query: string, variables?: unknown, token?: string) {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(30_000),
  });
  return (await res.json()) as { data?: T; errors?: { message: string; extensions?: { code?: string } }[] };
}

const TEXTS = [
  'Subject: You have WON a FREE prize!!! Click here now to claim $1000 cash, limited offer',
  "Hi Anna, attached are the notes from Tuesday's meeting; can we move the review to Friday?",
  '',
];

test('classify: the node API, the CLI and GraphQL agree for the same model version', {
  timeout: 240_000,
}, async (t) => {
  const slice = (k: number) => ['--fl-slice', String(k), '--fl-slices', '3'];
  const jc = await JobsCluster.start({
    nodes: 3,
    schedule: 'stats.report=10000,mempool.sync=3000,chain.sync=5000,peers.refresh=5000',
    roster: { member: (i) => ({ capabilities: capabilitiesOf(i) }) },
    nodeOptions: (i) => ({ member: i, mine: i === 0, args: ['--fl-deadline', '30000', ...slice(i)] }),
  });
  t.after(() => jc.stop());
  const port = await portOrFree();
  const gateway = gatewayProcess(
    path.join(jc.cluster.runDir, 'gateway.log'),
    port,
    { ...jc.env, CAIRN_TOKENS: `admin:${sha(ADMIN)}` },
    { track: true },
  );
  await gateway.start();
  t.after(() => gateway.stop());
  const url = `http://127.0.0.1:${port}`;
  const [miner, coordinator, trainer] = jc.nodes as [
    (typeof jc.nodes)[0],
    (typeof jc.nodes)[0],
    (typeof jc.nodes)[0],
  ];

  // Before any version: a 409 from the node, NO_MODEL from the gateway.
  const early = await miner.request('POST', '/classify', { text: 'hi' }).catch((e: Error) => e);
  assert.ok(early instanceof Error && /HTTP 409 .*API_NO_MODEL/.test(early.message), String(early));
  const none = await gql(url, '{ classify(text: "hi") { version } }');
  assert.equal(none.errors?.[0]?.extensions?.code, 'NO_MODEL');

  await eventually(
    'the coordinator to see both trainers',
    async () => (await coordinator.status()).peers.length >= 2,
    30_000,
  );
  // One round with the record-level DP-SGD defaults (a node declines a noise multiplier below
  // its floor of 1: the update-level z = 0.2 this test used to ask for is refused now).
  const started = await gql<{ startFederatedRound: { roundIds: string[] } }>(
    url,
    `mutation { startFederatedRound(nodeId: "${coordinator.peerId}", rounds: 1) { roundIds } }`,
    undefined,
    ADMIN,
  );
  assert.equal(started.data?.startFederatedRound.roundIds.length, 1, JSON.stringify(started.errors));

  const classifyOn = (n: typeof miner, text: string) => n.postJson<Answer>('/classify', { text });
  // Every node classifies with the version once it is committed in a mined block.
  const version = await eventually(
    'every node to classify with a committed version',
    async () => {
      const answers = await Promise.all(jc.nodes.map((n) => classifyOn(n, 'ping').catch(() => undefined)));
      return answers.every((a) => a && a.version === answers[0]!.version) && answers[0]!.version;
    },
    120_000,
    1_000,
  );
  // The gateway serves it once the collector has archived its weights.
  await eventually(
    'the gateway to classify with that version',
    async () => {
      const r = await gql<{ classify: Answer }>(url, '{ classify(text: "ping") { version } }');
      return r.data?.classify.version === version;
    },
    60_000,
    1_000,
  );
  const weightsRows = await jc.db.modelWeights.count({ where: { hash: version } });
  assert.equal(weightsRows, 1, 'the collector archived the weights');

  const cli = async (dataDir: string, text: string): Promise<Answer> => {
    const { stdout } = await promisify(execFile)(
      nodeBinary(),
      ['--import', 'tsx', NODE_MAIN, 'classify', text, '--data-dir', dataDir, '--json'],
      { cwd: REPO_ROOT, timeout: 30_000 },
    );
    return JSON.parse(stdout) as Answer;
  };
  let spam = 0;
  for (const text of TEXTS) {
    const api = await classifyOn(trainer, text);
    const viaCli = await cli(trainer.dataDir, text);
    const graph = await gql<{ classify: Answer }>(
      url,
      'query($t: String!, $v: String) { classify(text: $t, version: $v) { version round spam score } }',
      { t: text, v: version },
    );
    assert.equal(api.version, version);
    assert.equal(api.round, 1);
    assert.deepEqual(viaCli, api, `CLI = API for ${JSON.stringify(text)}`);
    assert.deepEqual(graph.data?.classify, api, `GraphQL = API for ${JSON.stringify(text)}`);
    assert.deepEqual(await classifyOn(miner, text), api, 'another node gives the same answer');
    if (api.spam) spam++;
    t.diagnostic(`${JSON.stringify(text.slice(0, 30))}: spam=${api.spam} score=${api.score}`);
  }
  // A trained version, not the all-zero start (which scores every text exactly 0.5). One round
  // under DP noise gives a weak model (scores near 0.5), so its verdicts are not asserted here:
  // only that all three ways agree on them.
  const scores = await Promise.all(TEXTS.slice(0, 2).map(async (x) => (await classifyOn(trainer, x)).score));
  assert.ok(scores.every((s) => s !== 0.5) && scores[0] !== scores[1], `scores ${scores}`);
  t.diagnostic(`${spam} of ${TEXTS.length} texts flagged`);
});
