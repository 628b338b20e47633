/**
 * bench:messaging — issue 14's figures, real node processes on loopback (roster network).
 *
 * directP50Ms / directP99Ms: send to receipt (POST /messages answers once the receipt is in),
 *   MSG_DIRECT messages one after another between two connected nodes;
 * throughputPerSec: MSG_DIRECT messages posted MSG_CONCURRENCY at a time, divided by the time
 *   until the recipient's inbox holds all of them;
 * backlogDrainMs: MSG_BACKLOG messages left with a mailbox while the recipient is down (sender
 *   down too), from the recipient's node being ready again to the last one in its inbox (the
 *   sender's deposits are paced to the mailbox's deposit budget, node/messaging/pacer.ts);
 * overheadBytes: envelope bytes minus body bytes at the 16 KiB body limit;
 * churnSent / churnDelivered / churnDuplicates: the churn run of e2e/cluster/messaging-churn.ts
 *   (10 nodes, MSG_CHURN messages between random pairs while three recipients and a mailbox
 *   restart at random; MSG_CHURN_SEED replays one): messages the senders' outboxes accepted,
 *   distinct ones in the recipients' inboxes, and copies shown twice. MSG_CHURN=0 skips it.
 * Last line: one JSON object.
 */
import { readFileSync } from 'node:fs';
import { Cluster, type ClusterNode } from '../e2e/cluster/harness.ts';
import { churnCluster, runChurn, startChurnCluster } from '../e2e/cluster/messaging-churn.ts';
import { nodeApiHeaders } from '../e2e/cluster/node-process.ts';
import { envelopeBytesFor } from '../node/messaging/envelope.ts';

const DIRECT = Number(process.env.MSG_DIRECT ?? 1000);
const CONCURRENCY = Number(process.env.MSG_CONCURRENCY ?? 50);
const BACKLOG = Number(process.env.MSG_BACKLOG ?? 1000);
const CHURN = Number(process.env.MSG_CHURN ?? 2000);
const CHURN_SEED = Number(process.env.MSG_CHURN_SEED ?? Math.floor(Math.random() * 2 ** 31));
const say = (msg: string) => process.stderr.write(`${msg}\n`);

const post = async (n: ClusterNode, to: string, text: string) => {
  const res = await fetch(`${n.httpUrl}/messages`, {
    method: 'POST',
    headers: await nodeApiHeaders(n.cookieFile),
    body: JSON.stringify({ to, text }),
  });
  const body = (await res.json()) as { status: string };
  if (!res.ok) throw new Error(JSON.stringify(body));
  return body;
};
const inboxSize = async (n: ClusterNode) => {
  const res = await fetch(`${n.httpUrl}/metrics`);
  const m = /^cairn_messages_received_total\{outcome="delivered"\} (\d+)/m.exec(await res.text());
  return Number(m?.[1] ?? 0);
};
const waitUntil = async (fn: () => Promise<boolean>, timeoutMs: number, what: string) => {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
/** CPU time (user + system) a process has used, in ms, from /proc (clock ticks of 10 ms). */
const cpuMs = (pid: number | undefined) => {
  if (!pid) return Number.NaN;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

const cluster = new Cluster({
  network: { blockTimeMs: 2000 },
  roster: {
    size: 3,
    member: (i) =>
      [
        { name: 'alice', capabilities: ['mine', 'submit', 'message'] as const },
        { name: 'bob', capabilities: ['submit', 'message'] as const },
        { name: 'post', capabilities: ['relay', 'message'] as const },
      ][i]!,
  },
});
const out: Record<string, number | null> = {
  directP50Ms: null,
  directP99Ms: null,
  throughputPerSec: null,
  backlogDrainMs: null,
  overheadBytes: envelopeBytesFor(16 * 1024) - 16 * 1024,
  churnDelivered: null,
  churnSent: null,
  churnDuplicates: null,
  cpuMsPerMessage: null,
  idleCpuPercent: null,
};
try {
  const [alice, bob] = (await cluster.start(3, (i) => ({
    name: ['alice', 'bob', 'post'][i],
    member: i,
    // No miner: proof of work would burn one of the two cores the bench measures on.
    mine: false,
  }))) as [ClusterNode, ClusterNode, ClusterNode];
  await cluster.waitForConnected({ timeoutMs: 60_000 });
  await post(alice, 'bob', 'warm-up (fetches the key)');
  const lat: number[] = [];
  for (let i = 0; i < DIRECT; i++) {
    const t0 = performance.now();
    const r = await post(alice, 'bob', `direct ${i} ${'x'.repeat(100)}`);
    if (r.status !== 'delivered') throw new Error(`message ${i}: ${r.status}`);
    lat.push(performance.now() - t0);
  }
  out.directP50Ms = Number(pct(lat, 50).toFixed(2));
  out.directP99Ms = Number(pct(lat, 99).toFixed(2));
  say(`direct: p50 ${out.directP50Ms} ms, p99 ${out.directP99Ms} ms over ${DIRECT}`);

  const before = await inboxSize(bob);
  // What the two nodes burn with no message moving (gossip, status, timers), subtracted below.
  const idle0 = cpuMs(alice.pid) + cpuMs(bob.pid);
  const idleStart = performance.now();
  await new Promise((r) => setTimeout(r, 5000));
  const idleMsPerMs = (cpuMs(alice.pid) + cpuMs(bob.pid) - idle0) / (performance.now() - idleStart);
  const cpu0 = cpuMs(alice.pid) + cpuMs(bob.pid);
  const t1 = performance.now();
  for (let i = 0; i < DIRECT; i += CONCURRENCY)
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, DIRECT - i) }, (_, k) =>
        post(alice, 'bob', `burst ${i + k}`),
      ),
    );
  await waitUntil(async () => (await inboxSize(bob)) >= before + DIRECT, 120_000, 'burst delivered');
  const burstMs = performance.now() - t1;
  out.throughputPerSec = Math.round(DIRECT / (burstMs / 1000));
  // Sender and recipient CPU per message beyond their idle rate: what the throughput costs,
  // whatever else shares the host (throughputPerSec ≈ cores ÷ this when the host is busy).
  const busyCpu = cpuMs(alice.pid) + cpuMs(bob.pid) - cpu0 - idleMsPerMs * burstMs;
  out.cpuMsPerMessage = Number((busyCpu / DIRECT).toFixed(2));
  out.idleCpuPercent = Number((idleMsPerMs * 100).toFixed(1));
  say(`throughput: ${out.throughputPerSec}/s, ${out.cpuMsPerMessage} ms CPU per message (both nodes)`);

  await cluster.stop('bob');
  for (let i = 0; i < BACKLOG; i += CONCURRENCY)
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, BACKLOG - i) }, (_, k) =>
        post(alice, 'bob', `backlog ${i + k}`),
      ),
    );
  const postNode = cluster.node('post');
  await waitUntil(
    async () => {
      const m = /^cairn_mailbox_items (\d+)/m.exec(await (await fetch(`${postNode.httpUrl}/metrics`)).text());
      return Number(m?.[1] ?? 0) >= BACKLOG;
    },
    300_000,
    'backlog deposited',
  );
  await cluster.stop('alice');
  const base = 0; // bob's counters restart with the process
  await cluster.restart('bob', {});
  // From the recipient being up (its connections open as it starts) to the last one delivered.
  const t2 = performance.now();
  await waitUntil(async () => (await inboxSize(bob)) >= base + BACKLOG, 300_000, 'backlog drained');
  out.backlogDrainMs = Math.round(performance.now() - t2);
  say(`backlog of ${BACKLOG} drained ${out.backlogDrainMs} ms after bob was ready`);
} catch (err) {
  say(`bench failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await cluster.stopAll();
}
if (CHURN > 0 && process.exitCode !== 1) {
  const churn = churnCluster();
  try {
    say(`churn: seed ${CHURN_SEED}, run dir ${churn.runDir}`);
    await startChurnCluster(churn, undefined, (line) => say(`churn: ${line}`));
    const r = await runChurn(churn, {
      seed: CHURN_SEED,
      messages: CHURN,
      log: (line) => say(`churn: ${line}`),
    });
    out.churnSent = r.sent;
    out.churnDelivered = r.delivered;
    out.churnDuplicates = r.duplicates;
    say(
      `churn: ${r.delivered}/${r.sent} delivered, ${r.duplicates} duplicates, ${r.outOfOrder} out of order, ` +
        `${r.receipted} receipted, ${r.restarts.length} restarts, sent in ${r.sendMs} ms` +
        (r.missing.length ? `, missing ${r.missing.join(' ')}` : ''),
    );
    await churn.removeRunDir();
  } catch (err) {
    say(`churn failed: ${(err as Error).message}`);
    process.exitCode = 1;
  } finally {
    await churn.stopAll();
  }
}
console.log(JSON.stringify(out));
