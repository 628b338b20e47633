/**
 * A real libp2p host on 127.0.0.1 for unit tests of req/resp protocols: a deterministic identity
 * from `seed`, a temp data dir (pushed on `dirs` for the test's cleanup), nothing discovered.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { identityFromSeed } from '../identity/identity.ts';
import { createHost, type HostOptions } from '../p2p/host.ts';

export async function startLoopbackHost(
  seed: number,
  tag: string,
  dirs: string[],
  /** Gater hooks, limits or gossip scoring of the host under test. */
  extra: Partial<Pick<HostOptions, 'gater' | 'limits' | 'gossipScore'>> = {},
) {
  const identity = await identityFromSeed(new Uint8Array(32).fill(seed));
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `cairn-${tag}-`));
  dirs.push(dataDir);
  const host = await createHost({
    identity,
    dataDir,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mdns: false,
    networkTag: `cairn-${tag}-test`,
    gater: {},
    maxGossipBytes: 1024 * 1024,
    ...extra,
  });
  await host.start();
  return { host, identity };
}
