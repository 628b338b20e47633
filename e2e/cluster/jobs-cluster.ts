/**
 * A cluster wired to the job system the way a deployment is: a private redis-server, the
 * collector writing a private index DB, and nodes running their jobs on that Redis (`--redis`)
 * in a random namespace. Tests drive it and read the index DB directly.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { CommandSigner } from '../../jobs/command-signer.ts';
import { type IndexDb, type IndexDbLocation, openIndexDb } from '../../jobs/index-db/open.ts';
import { createTestLocation } from '../../jobs/index-db/testing.ts';
import { toHex } from '../../node/chain/bytes.ts';
import { loadOrCreateKeyFile } from '../../node/membership/gateway-member.ts';
import { Cluster, type ClusterNode, type NodeOptions, type RosterSpec } from './harness.ts';
import type { TestNetworkConfig } from './network-config.ts';
import { portOrFree, type Service } from './service.ts';
import { collectorProcess, redisProcess } from './service-process.ts';

export interface JobsClusterOptions {
  readonly nodes: number;
  /** Scheduler periods passed to every node (`--schedule`). */
  readonly schedule?: string;
  readonly network?: TestNetworkConfig;
  /** The genesis roster's pool (roster networks): sizes, names, roles, capabilities. */
  readonly roster?: RosterSpec;
  readonly nodeOptions?: (i: number) => NodeOptions;
  readonly provider?: IndexDbLocation['provider'];
  /** The PostgreSQL server the index DB is created on (default TEST_POSTGRES_URL). */
  readonly postgresServer?: string;
}

export class JobsCluster {
  readonly cluster: Cluster;
  readonly redis: Service;
  readonly redisUrl: string;
  readonly collector: Service;
  readonly db: IndexDb;
  readonly location: IndexDbLocation;
  readonly namespace: string;
  private readonly destroyDb: () => Promise<void>;
  readonly gateway: { env: Record<string, string>; signer: CommandSigner } | undefined;
  private constructor(
    cluster: Cluster,
    redis: Service,
    redisUrl: string,
    collector: Service,
    db: IndexDb,
    location: IndexDbLocation,
    namespace: string,
    destroyDb: () => Promise<void>,
    /** The cluster's gateway key, admitted by a certificate from the roster admin (roster networks). */
    gateway: { env: Record<string, string>; signer: CommandSigner } | undefined,
  ) {
    this.cluster = cluster;
    this.redis = redis;
    this.redisUrl = redisUrl;
    this.collector = collector;
    this.db = db;
    this.location = location;
    this.namespace = namespace;
    this.destroyDb = destroyDb;
    this.gateway = gateway;
  }

  /**
   * Environment for every process of this cluster (nodes, collector, gateways): gateways get the
   * cluster's gateway key and certificate, so the nodes obey their commands.
   */
  get env(): Record<string, string> {
    return {
      REDIS_URL: this.redisUrl,
      DATABASE_URL: this.location.url,
      CAIRN_NAMESPACE: this.namespace,
      ...this.gateway?.env,
    };
  }

  /** The signer an AdminClient in the test uses: the gateway's. */
  get signer(): CommandSigner | undefined {
    return this.gateway?.signer;
  }

  static async start(o: JobsClusterOptions): Promise<JobsCluster> {
    const cluster = new Cluster({ network: o.network ?? {}, ...(o.roster ? { roster: o.roster } : {}) });
    // What has been started so far, undone in reverse if a later step fails: a collector or
    // redis-server left running would keep the test file alive and hide its error for good.
    const undo: (() => Promise<unknown>)[] = [];
    try {
      const port = await portOrFree();
      const redis = redisProcess(path.join(cluster.runDir, 'redis.log'), port, { track: true });
      undo.push(() => redis.stop());
      await redis.start();
      const redisUrl = `redis://127.0.0.1:${port}`;
      const namespace = `t${randomBytes(4).toString('hex')}`;
      const { location, destroy } = await createTestLocation(o.provider ?? 'sqlite', o.postgresServer);
      undo.push(destroy);
      // As the demo and compose run it: the collector signs a receipt for every report it judges
      // and the nodes count a report delivered only on that receipt (jobs/report-receipt.ts).
      const collectorKeyFile = path.join(cluster.runDir, 'collector', 'identity.json');
      const collectorKey = toHex(loadOrCreateKeyFile(collectorKeyFile).publicKey);
      const env = {
        REDIS_URL: redisUrl,
        DATABASE_URL: location.url,
        CAIRN_NAMESPACE: namespace,
        CAIRN_COLLECTOR_KEY_FILE: collectorKeyFile,
        // The collector judges reports against the network the nodes run.
        ...(cluster.networkConfigPath ? { CAIRN_NETWORK_CONFIG: cluster.networkConfigPath } : {}),
      };
      const collector = collectorProcess(path.join(cluster.runDir, 'collector.log'), env, { track: true });
      undo.push(() => collector.stop());
      await collector.start();
      const db = await openIndexDb(location);
      undo.push(() => db.$disconnect());
      const gateway = cluster.roster?.gateway(path.join(cluster.runDir, 'gateway'));
      const jc = new JobsCluster(
        cluster,
        redis,
        redisUrl,
        collector,
        db,
        location,
        namespace,
        destroy,
        gateway,
      );
      undo.push(() => cluster.stopAll());
      await cluster.start(o.nodes, (i) => {
        const extra = o.nodeOptions?.(i) ?? {};
        return {
          ...extra,
          args: [
            '--redis',
            redisUrl,
            '--collector-keys',
            collectorKey,
            ...(o.schedule ? ['--schedule', o.schedule] : []),
            ...(extra.args ?? []),
          ],
          env: { CAIRN_NAMESPACE: namespace, ...(extra.env ?? {}) },
        };
      });
      return jc;
    } catch (err) {
      for (const step of undo.reverse()) await step().catch(() => {});
      throw err;
    }
  }

  get nodes(): ClusterNode[] {
    return this.cluster.nodes;
  }

  /**
   * Forces a reorg: the last node is cut off from the others (operator block lists on both
   * sides) until it has mined `blocks` blocks alone, then reconnected; the lighter side's blocks
   * are reorged out.
   */
  async forceReorg(blocks = 3): Promise<void> {
    const loner = this.nodes.at(-1)!;
    const rest = this.nodes.slice(0, -1);
    const restIds = rest.map((n) => n.peerId);
    await loner.postJson('/admin/block-peers', { peers: restIds });
    for (const n of rest) await n.postJson('/admin/block-peers', { peers: [loner.peerId] });
    const h0 = (await loner.status()).height;
    await eventually(
      `${loner.name} to mine ${blocks} blocks alone`,
      async () => (await loner.status()).height >= h0 + blocks,
      60_000,
    );
    await loner.postJson('/admin/unblock-peers', { peers: restIds });
    for (const n of rest) await n.postJson('/admin/unblock-peers', { peers: [loner.peerId] });
  }

  async stop(): Promise<void> {
    await this.cluster.stopAll();
    await this.collector.stop();
    await this.db.$disconnect();
    await this.redis.stop();
    await this.destroyDb();
  }
}

/** Polls `fn` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
