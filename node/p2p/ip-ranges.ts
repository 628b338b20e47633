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

/** The eight 16-bit groups of an IPv6 address (a trailing dotted quad and a zone id allowed). */
function groupsOf(ip6: string): number[] {
  let s = ip6.split('%')[0] ?? '';
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail = ''] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = s.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => Number.parseInt(g, 16));
}

/**
 * The address as the host it names: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
 * dual-stack listener reports for IPv4 clients) becomes plain IPv4, so it is one host of its
 * own, matches IPv4 ranges and bans, and does not share the one /64 `::ffff:0:0/96` sits in
 * with every other IPv4 client. Anything else is returned as given.
 */
export function plainIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const g = groupsOf(ip);
  if (g.length !== 8 || g.slice(0, 5).some((x) => x !== 0) || g[5] !== 0xffff) return ip;
  const [hi = 0, lo = 0] = g.slice(6);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Every loopback address: all of 127.0.0.0/8 and ::1 (IPv4-mapped ones are plain IPv4 first). */
const isLoopback = ipRanges(['127.0.0.0/8', '::1/128']);

/** The capKey of every loopback address: they are all this machine. */
export const LOOPBACK_HOST = 'loopback';

/**
 * What counts as one host: an IPv4 address itself (IPv4-mapped IPv6 included, `plainIp`), an
 * IPv6 address's /64 (a host usually owns a whole /64 and can pick any address in it), and all
 * of loopback as one (LOOPBACK_HOST): any local process can bind any of 127.0.0.0/8, so 127.0.0.2
 * and 127.0.0.3 are not two callers (an attack review held 32 subscriptions from four of them).
 * Not the /24 of an IPv4 address: a family's or an office's LAN is one /24, and one stranger on
 * it must not cost every device there.
 */
export function capKey(ip: string): string {
  const plain = plainIp(ip);
  if (isLoopback(plain)) return LOOPBACK_HOST;
  if (isIP(plain) !== 6) return plain;
  return `${groupsOf(plain)
    .slice(0, 4)
    .map((g) => g.toString(16))
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
