/**
 * A real libp2p host on 127.0.0.1 for unit tests of req/resp protocols: a deterministic identity
 * from `seed`, a temp data dir (pushed on `dirs` for the test's cleanup), nothing discovered.
 * TCP only unless `listen` says otherwise (e.g. WEBRTC_DIRECT_LOOPBACK as well).
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { identityFromSeed } from '../identity/identity.ts';
import { createHost, type HostOptions } from '../p2p/host.ts';

export const TCP_LOOPBACK = '/ip4/127.0.0.1/tcp/0';
export const WEBRTC_DIRECT_LOOPBACK = '/ip4/127.0.0.1/udp/0/webrtc-direct';

/** Listen addresses, gater hooks, limits, gossip scoring (IP colocation, app score), identify gating of the host under test. */
export type LoopbackHostOptions = Partial<
  Pick<HostOptions, 'listen' | 'gater' | 'limits' | 'gossipScore' | 'appScore' | 'admitted'>
>;

export async function startLoopbackHost(
  seed: number,
  tag: string,
  dirs: string[],
  opts: LoopbackHostOptions = {},
) {
  const identity = await identityFromSeed(new Uint8Array(32).fill(seed));
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `cairn-${tag}-`));
  dirs.push(dataDir);
  const host = await createHost({
    identity,
    dataDir,
    bootstrap: [],
    mdns: false,
    networkTag: `cairn-${tag}-test`,
    maxGossipBytes: 1024 * 1024,
    ...opts,
    gater: opts.gater ?? {},
    listen: opts.listen ?? [TCP_LOOPBACK],
  });
  await host.start();
  return { host, identity };
}
