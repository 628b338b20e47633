/** Multiaddr string helpers for the harness (no libp2p parsing needed for these shapes). */

const LOOPBACK = [
  /^\/ip4\/127\.\d+\.\d+\.\d+\//,
  /^\/ip6\/::1\//,
  /^\/dns4\/localhost\//,
  /^\/dns6\/localhost\//,
];

/**
 * Listen addresses that bind no socket of their own: a relay slot and private-to-private WebRTC
 * ride on a connection to a relay, whose own address the bootstrap and `--relay` checks cover.
 */
const NO_SOCKET = new Set(['/p2p-circuit', '/webrtc']);

export function isLoopbackAddr(addr: string): boolean {
  return NO_SOCKET.has(addr) || LOOPBACK.some((re) => re.test(addr));
}

/** Throws unless every address is a loopback multiaddr: the harness never listens or dials elsewhere. */
export function assertLoopback(addrs: readonly string[], what: string): void {
  const bad = addrs.filter((a) => !isLoopbackAddr(a));
  if (bad.length) throw new Error(`${what}: only loopback multiaddrs are allowed, got ${bad.join(', ')}`);
}

/** Drops `/p2p/<id>` and `/certhash/<hash>` components, keeping the transport part of an address. */
export function transportPart(addr: string): string {
  const parts = addr.split('/');
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === 'p2p' || parts[i] === 'certhash') {
      i++;
      continue;
    }
    out.push(parts[i]!);
  }
  return out.join('/');
}

/**
 * Replaces port 0 in listen specs by the port the node actually bound, taken from its announced
 * addresses, so a restarted node can listen where it did before (and keep its certhash-bearing
 * WebRTC address valid). Specs that match no announced address are returned unchanged.
 */
export function pinListenAddrs(specs: readonly string[], announced: readonly string[]): string[] {
  const used = new Set<number>();
  const candidates = announced.map((a) => transportPart(a).split('/'));
  return specs.map((spec) => {
    const s = spec.split('/');
    if (!s.some((p, j) => p === '0' && (s[j - 1] === 'tcp' || s[j - 1] === 'udp'))) return spec;
    for (let i = 0; i < candidates.length; i++) {
      const a = candidates[i]!;
      if (used.has(i) || a.length !== s.length) continue;
      const matches = s.every(
        (p, j) =>
          p === a[j] || (p === '0' && (s[j - 1] === 'tcp' || s[j - 1] === 'udp') && /^\d+$/.test(a[j]!)),
      );
      if (matches) {
        used.add(i);
        return a.join('/');
      }
    }
    return spec;
  });
}

/** True if some spec names a concrete (non-zero) TCP or UDP port. */
export function hasPinnedPort(specs: readonly string[]): boolean {
  return specs.some((spec) => /\/(tcp|udp)\/[1-9]\d*(\/|$)/.test(spec));
}
