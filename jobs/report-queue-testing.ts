/**
 * What the report-queue attack tests share: a fresh namespace on the test Redis, an index DB, a
 * reports queue as the node's outbox sees it and one more for the attacker (with its raw
 * connection, for the commands BullMQ does not wrap), a collector started when the test says
 * (signing receipts with COLLECTOR_KEY), and stats reports of the test reporter. Real Redis, BullMQ, collector and index DB.
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Registry } from 'prom-client';
import { genesisBlock } from '../node/chain/genesis.ts';
import { chainIdHex } from '../node/chain/network-config.ts';
import { createLogger, type Logger } from '../node/log.ts';
import { testChain } from '../node/testing/forge.ts';
import { Collector, type CollectorOptions } from './collector/collector.ts';
import { createTestIndexDb } from './index-db/testing.ts';
import type { NodeStatsReport } from './payloads.ts';
import { createCairnPubSub } from './pubsub.ts';
import { REPORTS_QUEUE } from './queues.ts';
import { createRedis, redisUrl } from './redis.ts';
import { ReportOutbox } from './report-outbox.ts';
import { COLLECTOR_KEY, REPORTER_ID, REPORTER_KEY } from './report-testing.ts';

/** Polls `fn` every 50 ms until it holds; throws after `ms`. */
export async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function reportQueueRig(prefix: string, log: Logger = createLogger('silent')) {
  const ns = `${prefix}${randomBytes(4).toString('hex')}`;
  const { db, drop } = await createTestIndexDb('sqlite');
  const network = testChain().chain.config;
  const bus = createCairnPubSub(redisUrl(), ns);
  const nodeRedis = createRedis();
  const attackerRedis = createRedis();
  const nodeQueue = new Queue(REPORTS_QUEUE, { connection: nodeRedis, prefix: ns });
  const attacker = new Queue(REPORTS_QUEUE, { connection: attackerRedis, prefix: ns });
  const registry = new Registry();
  let collector: Collector | undefined;
  return {
    ns,
    db,
    network,
    log,
    registry,
    nodeQueue,
    attacker,
    attackerRedis,
    startCollector: (extra: Partial<CollectorOptions> = {}): Collector => {
      collector = new Collector({
        db,
        pubsub: bus.pubsub,
        redisUrl: redisUrl(),
        namespace: ns,
        log,
        registry,
        network,
        receiptKey: COLLECTOR_KEY,
        ...extra,
      });
      return collector;
    },
    /** The reporter's stats report number `seq` of boot `boot`. */
    stats: (boot: number, seq: number, at = new Date().toISOString()): NodeStatsReport => ({
      nodeId: REPORTER_ID,
      boot,
      seq,
      at,
      role: 'submind',
      capabilities: ['mine'],
      addrs: [],
      height: seq,
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
    }),
    close: async (): Promise<void> => {
      await collector?.close();
      await attacker.obliterate({ force: true }).catch(() => {});
      await Promise.all([attacker.close(), nodeQueue.close()]);
      nodeRedis.disconnect();
      attackerRedis.disconnect();
      await bus.close();
      await drop();
    },
  };
}

/**
 * A rig with its collector running and the node's outbox checking the collector's receipts; the
 * ids the outbox sent again are collected as `<why>:<new id>`. Both close when the test ends.
 */
export async function receiptedOutboxRig(t: { after(fn: () => Promise<void>): void }, prefix: string) {
  const rig = await reportQueueRig(prefix);
  rig.startCollector();
  const reissued: string[] = [];
  const outbox = new ReportOutbox(rig.nodeQueue, {
    log: rig.log,
    key: REPORTER_KEY,
    receiptKeys: [COLLECTOR_KEY.publicKey],
    confirmMs: 60_000,
    onReissued: (w, n) => reissued.push(`${w}:${n}`),
  });
  t.after(async () => {
    outbox.close();
    await rig.close();
  });
  return { rig, outbox, reissued };
}
