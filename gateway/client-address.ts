/**
 * The client a request comes from, for the per-host caps (rate limits, subscriptions, open
 * WebSockets). Behind a reverse proxy every caller is the proxy's one address, so the caps that
 * keep one host from exhausting the gateway turn into a switch that locks every caller out
 * (compose's console proxy: 100 tokenless idle sockets from one stranger, attack review 13). A
 * proxy named in CAIRN_TRUSTED_PROXIES is believed about who it forwards: X-Forwarded-For is
 * read from the right (each proxy appends the address it saw), trusted hops skipped, and the
 * first address no trusted proxy claims is the client. From anyone else the header is ignored,
 * since a client can write any X-Forwarded-For it likes.
 */
import { isIP } from 'node:net';
import { ipRanges, plainIp } from '../node/p2p/ip-ranges.ts';

/** What the gateway needs of a node:http request (IncomingMessage). */
export interface AddressedRequest {
  readonly socket?: { readonly remoteAddress?: string };
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
}

/** Why a trusted proxy's X-Forwarded-For was not used: the proxy's own address counts then. */
export type ForwardedProblem = 'malformed' | 'too-long';

/** At most this many hops are read: a header of thousands costs nothing then. */
export const MAX_FORWARDED_HOPS = 16;

export interface ClientAddresses {
  /** The client's address: the peer's, or from a trusted proxy the one it forwards. */
  of(req: AddressedRequest | undefined): string | undefined;
}

/**
 * `trusted`: IP ranges (10.0.0.5, 172.29.213.0/24, ::1/128) whose X-Forwarded-For is believed.
 * `onProblem` is told each header from a trusted proxy that could not be read (a metric).
 */
export function clientAddresses(
  trusted: readonly string[],
  onProblem: (problem: ForwardedProblem) => void = () => {},
): ClientAddresses {
  const isTrusted = ipRanges(trusted);
  return {
    of(req) {
      const peer = req?.socket?.remoteAddress;
      if (peer === undefined || trusted.length === 0 || !isTrusted(plainIp(peer))) return peer;
      const raw = req?.headers?.['x-forwarded-for'];
      if (raw === undefined) return peer;
      const hops = (Array.isArray(raw) ? raw.join(',') : raw).split(',').map((h) => h.trim());
      if (hops.length > MAX_FORWARDED_HOPS) {
        onProblem('too-long');
        return peer;
      }
      // From the right: the last hop is what the trusted peer saw, and so on while trusted.
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = plainIp(hops[i]!);
        if (!isIP(hop)) {
          onProblem('malformed');
          return peer;
        }
        if (!isTrusted(hop)) return hop;
      }
      // Every hop a trusted proxy: the first of them is the client as far as anyone knows.
      return plainIp(hops[0]!);
    },
  };
}
