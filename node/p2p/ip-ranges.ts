/**
 * IP ranges in CIDR form, matched with node's own `net.BlockList`. Used for the addresses exempt
 * from connection limits and bans and for gossipsub's IP-colocation whitelist; and the one rule
 * for which addresses count as one host (`capKey`), shared by the per-IP cap and address refusals.
 */
import { BlockList, isIP } from 'node:net';

/** Why `cidr` is not an IP range like 10.1.0.0/16 or ::1/128 (a bare address is /32 or /128), or undefined. */
export function cidrProblem(cidr: string): string | undefined {
  const [addr, bits, ...rest] = cidr.split('/');
  const family = isIP(addr ?? '');
  const max = family === 4 ? 32 : 128;
  if (!family || rest.length || (bits !== undefined && !/^\d+$/.test(bits)) || Number(bits ?? max) > max)
    return 'takes IP ranges like 10.1.0.0/16 or ::1/128';
  return undefined;
}

/** A membership test for the given ranges; anything that is not an IP address is outside them. */
export function ipRanges(cidrs: readonly string[]): (ip: string) => boolean {
  const list = new BlockList();
  let empty = true;
  for (const c of cidrs) {
    const problem = cidrProblem(c);
    if (problem) throw new RangeError(`bad IP range "${c}": ${problem}`);
    const [addr, bits] = c.split('/') as [string, string | undefined];
    const type = isIP(addr) === 4 ? 'ipv4' : 'ipv6';
    list.addSubnet(addr, Number(bits ?? (type === 'ipv4' ? 32 : 128)), type);
    empty = false;
  }
  if (empty) return () => false;
  return (ip) => {
    const family = isIP(ip);
    return family !== 0 && list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  };
}

/**
 * What counts as one host: an IPv4 address itself, an IPv6 address's /64 (a host usually owns a
 * whole /64 and can pick any address in it). Not the /24 of an IPv4 address: a family's or an
 * office's LAN is one /24, and one stranger on it must not cost every device there.
 */
export function capKey(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/** The exact-address ranges (/32, /128) of the IP addresses in `multiaddrs` (dns names are skipped). */
export function addressRanges(multiaddrs: readonly string[]): string[] {
  const out = new Set<string>();
  for (const a of multiaddrs) {
    const m = /^\/(ip4|ip6)\/([^/]+)/.exec(a);
    if (m && isIP(m[2]!)) out.add(`${m[2]}/${m[1] === 'ip4' ? 32 : 128}`);
  }
  return [...out];
}
