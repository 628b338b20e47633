/**
 * Caps on open WebSockets. The subscription caps count operations, not connections: a
 * graphql-ws socket that initialises and then runs nothing held no slot, and 19,900 such idle
 * sockets (from as many loopback addresses) cost the gateway 300 MB, about 15 KB each (attack
 * review #13). So one client host (ip-ranges.ts capKey: an IPv4 address, an IPv6 /64, all of
 * loopback) holds at most `perHost` open WebSockets, and the gateway at most `total`; the
 * upgrade past either is refused with 429 and counted by reason. A console tab holds one socket.
 */
import { capKey } from '../node/p2p/ip-ranges.ts';

export interface WebSocketLimits {
  /** Open WebSockets from one client host. */
  readonly perHost: number;
  /** Open WebSockets in all. */
  readonly total: number;
}

/**
 * 100 per host: a host with a few dozen dashboards and tabs, as for subscriptions (behind a reverse
 * proxy every client is the proxy's one host unless the proxy is in CAIRN_TRUSTED_PROXIES, or raise
 * it with CAIRN_WEBSOCKETS_PER_HOST). 5,000 in
 * all: at ~15 KB an idle socket, 75 MB.
 */
export const WEBSOCKET_DEFAULTS: WebSocketLimits = Object.freeze({ perHost: 100, total: 5_000 });

export interface WebSocketRefusal {
  readonly reason: 'per-host' | 'total';
  readonly message: string;
}

export class WebSocketLimiter {
  readonly limits: WebSocketLimits;
  private readonly perHost = new Map<string, number>();
  private openCount = 0;

  constructor(limits: Partial<WebSocketLimits> = {}) {
    this.limits = { ...WEBSOCKET_DEFAULTS, ...limits };
  }

  /** One more socket from `address`: a release (idempotent, call when it closes), or the refusal. */
  open(address: string | undefined): (() => void) | WebSocketRefusal {
    if (this.openCount >= this.limits.total)
      return { reason: 'total', message: 'This gateway holds all the WebSockets it can: retry later' };
    const key = address === undefined ? undefined : capKey(address);
    const n = key === undefined ? 0 : (this.perHost.get(key) ?? 0);
    if (key !== undefined && n >= this.limits.perHost)
      return {
        reason: 'per-host',
        message: `Too many open WebSockets from this host: at most ${this.limits.perHost}`,
      };
    if (key !== undefined) this.perHost.set(key, n + 1);
    this.openCount++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.openCount--;
      if (key === undefined) return;
      const left = (this.perHost.get(key) ?? 1) - 1;
      if (left > 0) this.perHost.set(key, left);
      else this.perHost.delete(key);
    };
  }

  /** Open sockets now, in all and from `address`'s host. */
  count(address?: string): number {
    return address === undefined ? this.openCount : (this.perHost.get(capKey(address)) ?? 0);
  }
}
