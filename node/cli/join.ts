/**
 * `npm run node -- join <invitation> --data-dir DIR [node options]`
 *
 * The new device's side of an invitation: creates (or loads) the device's identity in DIR,
 * connects to the inviter named in the invitation, redeems the one-time secret for its member
 * certificate and the network config, checks that config hashes to the chain id the invitation
 * names, and writes both into DIR. The node then starts on that network with the inviter as
 * its bootstrap peer and syncs; later starts need only `--data-dir`.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Logger } from 'pino';
import { toHex } from '../chain/bytes.ts';
import { chainIdHex } from '../chain/network-config.ts';
import { networkConfigToJson, parseNetworkConfig } from '../config-file.ts';
import { loadOrCreateIdentity } from '../identity/identity.ts';
import { decodeInvitation, type Invitation } from '../membership/invitation.ts';
import { InvitationError } from '../membership/invitation-book.ts';
import { requestJoin } from '../membership/join-protocol.ts';
import { createHost } from '../p2p/host.ts';
import { reqRespPrefix } from '../p2p/protocols.ts';
import { ReqResp } from '../p2p/reqresp.ts';

export const NETWORK_FILE = 'network.json';
export const MEMBERSHIP_FILE = 'membership.json';

/** A refusal the user can act on: printed as is, exit code 1. */
export class JoinError extends Error {
  override readonly name = 'JoinError';
}

export interface Joined {
  readonly networkConfigFile: string;
  readonly bootstrap: readonly string[];
  readonly certificate: Uint8Array;
}

export interface MembershipFile {
  readonly version: 1;
  readonly chainIdHex: string;
  readonly certificate: string;
  readonly inviter: string;
  /**
   * The invitation's addresses of the inviter: added to the bootstrap list on every start, so a
   * device that stopped before it synced its inviter's admin can still catch up from it (only
   * bootstrap peers may serve a node read-only while it is behind). Absent in older files.
   */
  readonly inviterAddrs?: readonly string[];
  readonly joinedAtMs: number;
}

/** Writes membership.json as `join` does (mode 0600: it names this device's certificate). */
export async function saveMembershipFile(dataDir: string, m: MembershipFile): Promise<void> {
  await writeFile(path.join(dataDir, MEMBERSHIP_FILE), `${JSON.stringify(m, null, 2)}\n`, { mode: 0o600 });
}

/** membership.json of a data dir that joined a network, if it did. */
async function readMembership(dataDir: string): Promise<MembershipFile | undefined> {
  try {
    return JSON.parse(await readFile(path.join(dataDir, MEMBERSHIP_FILE), 'utf8')) as MembershipFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The inviter's addresses a data dir joined with, if it did (none for older files). */
export async function readInviterAddrs(dataDir: string): Promise<string[]> {
  const addrs = (await readMembership(dataDir))?.inviterAddrs;
  return Array.isArray(addrs) ? addrs.filter((a) => typeof a === 'string') : [];
}

/** The certificate a data dir joined with, if it did (hex in membership.json). */
export async function readMembershipFile(dataDir: string): Promise<Uint8Array | undefined> {
  const m = await readMembership(dataDir);
  return m && new Uint8Array(Buffer.from(m.certificate, 'hex'));
}

export async function joinNetwork(
  invitationText: string,
  dataDir: string,
  log: Logger,
  now = Date.now(),
): Promise<Joined> {
  let inv: Invitation;
  try {
    inv = decodeInvitation(invitationText);
  } catch (err) {
    throw new JoinError(`that is not a valid invitation (${(err as Error).message})`);
  }
  if (now > inv.expiresAtMs)
    throw new JoinError(
      `this invitation expired at ${new Date(inv.expiresAtMs).toISOString()}; ask for a new one`,
    );
  if (await readMembershipFile(dataDir))
    throw new JoinError(
      `${dataDir} has joined a network already; start it with npm run node -- --data-dir ${dataDir}`,
    );
  await mkdir(dataDir, { recursive: true });
  const identity = await loadOrCreateIdentity(dataDir);
  const host = await createHost({
    identity,
    dataDir,
    listen: [],
    bootstrap: [],
    // The inviter may be reachable over WebRTC only.
    webrtc: inv.addrs.some((a) => a.includes('/webrtc')),
    mdns: false,
    networkTag: `cairn-join-${inv.chainIdHex.slice(0, 16)}`,
    gater: {},
    maxGossipBytes: 64 * 1024,
  });
  await host.start();
  try {
    const reqresp = new ReqResp(host, reqRespPrefix(inv.chainIdHex), { penalise: () => {} }, log);
    let lastError: unknown;
    for (const addr of inv.addrs) {
      const inviterId = /\/p2p\/([1-9A-HJ-NP-Za-km-z]+)$/.exec(addr)?.[1];
      if (!inviterId) continue;
      try {
        await host.dial(multiaddr(addr), { signal: AbortSignal.timeout(5_000) });
        const answer = await requestJoin(reqresp, peerIdFromString(inviterId), inv.secret);
        const network = parseNetworkConfig(answer.networkConfigJson, 'the network config the inviter sent');
        // The inviter could send any config: only the one the invitation names is accepted.
        if (chainIdHex(network) !== inv.chainIdHex)
          throw new JoinError('the inviter sent the config of another network than the invitation names');
        const networkConfigFile = path.join(dataDir, NETWORK_FILE);
        await writeFile(networkConfigFile, networkConfigToJson(network), { mode: 0o644 });
        await saveMembershipFile(dataDir, {
          version: 1,
          chainIdHex: inv.chainIdHex,
          certificate: toHex(answer.certificate),
          inviter: inviterId,
          inviterAddrs: inv.addrs,
          joinedAtMs: now,
        });
        log.info(
          { inviter: inviterId, chainId: inv.chainIdHex },
          'joined: certificate and network config saved',
        );
        return { networkConfigFile, bootstrap: inv.addrs, certificate: answer.certificate };
      } catch (err) {
        if (err instanceof InvitationError)
          throw new JoinError(`the inviter refused: ${err.code} (${err.message})`);
        if (err instanceof JoinError) throw err;
        lastError = err;
        log.debug({ addr, err: (err as Error).message }, 'join: inviter not reached at this address');
      }
    }
    throw new JoinError(
      `could not reach the inviter at ${inv.addrs.join(', ')}: ${(lastError as Error | undefined)?.message ?? 'no address with a peer id'}`,
    );
  } finally {
    await host.stop();
  }
}
