/**
 * Gossipsub's IP-colocation penalty (P6) for Cairn. P6 gives every peer that shares an IP with
 * more than `threshold` others a score of weight × surplus², and gossipsub grafts only peers with
 * a score ≥ 0: with the defaults (−5, 10) an eleventh node on 127.0.0.1 drops every loopback peer
 * from every mesh, and so would eleven members reached through one relay (their connections
 * carry the relay's address). So P6 keeps its defaults for ordinary addresses — many peer ids
 * from one machine stay a Sybil signal — but never applies to the whitelisted ranges (loopback
 * by default) nor to the IP of a relay while relayed connections through it are open.
 *
 * Gossipsub asks only `whitelist.has(ip)`, so the whitelist is a Set whose `has` also consults
 * the ranges and the relays in use.
 */
import type { Connection } from '@libp2p/interface';
import { GOSSIP_DEFAULTS, type GossipScoreOptions } from '../options.ts';
import { relayIp } from './connection-limits.ts';
import { ipRanges } from './ip-ranges.ts';

/** A Set of IPs whose `has` is true for any IP in the ranges or currently used by a relay. */
export class IpWhitelist extends Set<string> {
  private readonly inRanges: (ip: string) => boolean;

  private readonly relayInUse: (ip: string) => boolean;
  constructor(ranges: readonly string[], relayInUse: (ip: string) => boolean = () => false) {
    super();
    this.relayInUse = relayInUse;
    this.inRanges = ipRanges(ranges);
  }

  override has(ip: string): boolean {
    return super.has(ip) || this.inRanges(ip) || this.relayInUse(ip);
  }
}

/** True if some open connection is relayed through a relay at `ip`. */
export function relayedThrough(connections: () => readonly Connection[]): (ip: string) => boolean {
  return (ip) => connections().some((c) => relayIp(c.remoteAddr) === ip);
}

/** The P6 part of gossipsub's `scoreParams`. */
export function ipColocationParams(
  o: Partial<GossipScoreOptions> = {},
  relayInUse?: (ip: string) => boolean,
): {
  IPColocationFactorWeight: number;
  IPColocationFactorThreshold: number;
  IPColocationFactorWhitelist: Set<string>;
} {
  return {
    IPColocationFactorWeight: o.ipColocationWeight ?? GOSSIP_DEFAULTS.ipColocationWeight,
    IPColocationFactorThreshold: o.ipColocationThreshold ?? GOSSIP_DEFAULTS.ipColocationThreshold,
    IPColocationFactorWhitelist: new IpWhitelist(
      o.ipColocationWhitelist ?? GOSSIP_DEFAULTS.ipColocationWhitelist,
      relayInUse,
    ),
  };
}
