/**
 * IP ranges in CIDR form, matched with node's own `net.BlockList`. Used for the addresses exempt
 * from connection limits and bans and for gossipsub's IP-colocation whitelist.
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
