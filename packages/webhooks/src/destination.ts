/**
 * Which destinations a webhook may be sent to. A callback URL comes from a client, so without these
 * checks it would let anyone make the worker call internal services (SSRF): only global unicast
 * addresses are called, unless the operator allow-lists a host name or an address range.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface DestinationPolicy {
  /** Host names whose addresses are not checked (lower case, exact match). */
  readonly allowHosts: readonly string[];
  /** CIDR ranges whose addresses may be called even though they are not public. */
  readonly allowCidrs: readonly string[];
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Every address a host name resolves to. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** The URL or the address it resolves to may not be called; retrying will not change that. */
export class DestinationRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DestinationRefusedError';
  }
}

const systemResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true })).map((entry) => ({
    address: entry.address,
    family: entry.family === 6 ? 6 : 4,
  }));

// ipaddr.js names the special-purpose ranges but calls everything else in IPv6 "unicast", including
// addresses outside the global unicast block that no public host uses.
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');

/**
 * The ipaddr.js range of an address: `unicast` for a public address, otherwise the name of the
 * special range (`private`, `loopback`, `linkLocal`, `uniqueLocal`, `carrierGradeNat`, `multicast`,
 * `unspecified`, `reserved`, ...). An IPv4 address carried in IPv6 (mapped `::ffff:a.b.c.d` or the
 * NAT64 prefix `64:ff9b::/96`) is judged by the IPv4 address it reaches. Throws on a non-address.
 */
export function addressRange(address: string): string {
  const ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv4') return ip.range();
  const v6 = ip as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().range();
  if (v6.match(NAT64_WELL_KNOWN)) return ipaddr.fromByteArray(v6.toByteArray().slice(12)).range();
  const range = v6.range();
  if (range === 'unicast' && !v6.match(GLOBAL_UNICAST_V6)) return 'reserved';
  return range;
}

/** The host of a URL as an address or name: no IPv6 brackets, lower case, no trailing dot. */
export function hostOf(url: URL): string {
  return url.hostname
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '')
    .toLowerCase();
}

export class DestinationGuard {
  private readonly allowHosts: ReadonlySet<string>;
  private readonly allowRanges: readonly [ipaddr.IPv4 | ipaddr.IPv6, number][];
  private readonly resolver: Resolver;

  constructor(policy: DestinationPolicy, resolver: Resolver = systemResolver) {
    this.allowHosts = new Set(policy.allowHosts.map((host) => host.toLowerCase()));
    this.allowRanges = policy.allowCidrs.map((cidr) => ipaddr.parseCIDR(cidr));
    this.resolver = resolver;
  }

  /**
   * What can be said of a URL without DNS (cheap enough for the submit path): why it is refused, or
   * undefined. A host name that resolves to a private address passes here and is refused at delivery.
   */
  refusalOfUrl(url: URL): string | undefined {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
    if (url.username !== '' || url.password !== '') return 'must not carry a user name or password';
    const host = hostOf(url);
    if (this.isAllowListed(host)) return undefined;
    // Without TLS the outputs travel in clear and a network attacker can answer in the receiver's place.
    if (url.protocol === 'http:') {
      return 'must be https:// (http:// is accepted only for allow-listed destinations)';
    }
    if (isIP(host) !== 0) {
      const range = this.refusalOfAddress(host);
      if (range !== undefined) return `${host} is not a public address (${range})`;
    }
    return undefined;
  }

  /**
   * The addresses to connect to for `url`, every one of them checked. Throws
   * DestinationRefusedError when the URL or ANY of its addresses may not be called: a name that
   * resolves to one public and one private address could send the connection to either.
   */
  async resolve(url: URL): Promise<ResolvedAddress[]> {
    const refusal = this.refusalOfUrl(url);
    if (refusal !== undefined) throw new DestinationRefusedError(`callback URL ${refusal}`);
    const host = hostOf(url);
    const family = isIP(host);
    if (family !== 0) return [{ address: host, family: family === 6 ? 6 : 4 }];
    const addresses = await this.resolver(host);
    if (addresses.length === 0) throw new Error(`${host} has no address`);
    if (this.allowHosts.has(host)) return addresses;
    for (const { address } of addresses) {
      const range = this.refusalOfAddress(address);
      if (range !== undefined) {
        throw new DestinationRefusedError(`${host} resolves to ${address}, not a public address (${range})`);
      }
    }
    return addresses;
  }

  /** The range that forbids calling `address`, or undefined when it is public or allow-listed. */
  refusalOfAddress(address: string): string | undefined {
    const ip = ipaddr.process(address);
    if (this.allowRanges.some(([range, bits]) => range.kind() === ip.kind() && ip.match(range, bits))) {
      return undefined;
    }
    const range = addressRange(address);
    return range === 'unicast' ? undefined : range;
  }

  /** An allow-listed host name, or an address literal inside an allow-listed range. */
  isAllowListed(host: string): boolean {
    if (this.allowHosts.has(host)) return true;
    if (isIP(host) === 0) return false;
    const ip = ipaddr.process(host);
    return this.allowRanges.some(([range, bits]) => range.kind() === ip.kind() && ip.match(range, bits));
  }
}
