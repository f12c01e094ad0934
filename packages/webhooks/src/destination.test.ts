import { describe, expect, it } from 'vitest';
import { CallbackUrlCheck } from './callback-check.ts';
import { addressRange, DestinationGuard, DestinationRefusedError, type Resolver } from './destination.ts';

describe('addressRange', () => {
  it.each([
    // Public
    ['8.8.8.8', 'unicast'],
    ['1.1.1.1', 'unicast'],
    ['2606:4700:4700::1111', 'unicast'],
    ['2001:4860:4860::8888', 'unicast'],
    // Private (RFC 1918) and unique-local
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.254', 'private'],
    ['192.168.1.1', 'private'],
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456:789a::1', 'uniqueLocal'],
    // Just outside the private blocks
    ['172.15.255.255', 'unicast'],
    ['172.32.0.1', 'unicast'],
    ['11.0.0.1', 'unicast'],
    // Loopback
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    // Link-local (cloud metadata lives at 169.254.169.254)
    ['169.254.169.254', 'linkLocal'],
    ['fe80::1', 'linkLocal'],
    ['febf:ffff::1', 'linkLocal'],
    // Unspecified, carrier-grade NAT, multicast, broadcast, reserved
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['100.127.255.255', 'carrierGradeNat'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['2001:db8::1', 'reserved'],
    // IPv4 reached through IPv6 is judged by the IPv4 address
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    ['::ffff:8.8.8.8', 'unicast'],
    ['64:ff9b::a9fe:a9fe', 'linkLocal'],
    ['64:ff9b::808:808', 'unicast'],
    // IPv6 outside the global unicast block, and tunnels that can reach anything
    ['::7f00:1', 'reserved'],
    ['100::1', 'discard'],
    ['100:0:0:1::1', 'reserved'],
    ['4000::1', 'reserved'],
    ['2002:7f00:1::', '6to4'],
    ['2001::1', 'teredo'],
  ])('%s is %s', (address, range) => {
    expect(addressRange(address)).toBe(range);
  });

  it('throws on something that is not an address', () => {
    expect(() => addressRange('example.com')).toThrow();
  });
});

const open = new DestinationGuard({ allowHosts: [], allowCidrs: [] });

describe('DestinationGuard.refusalOfUrl (no DNS)', () => {
  it.each([
    ['https://hooks.example.com/x', undefined],
    ['https://8.8.8.8/x', undefined],
    ['https://[2606:4700:4700::1111]:8443/x', undefined],
    [
      'http://hooks.example.com/x',
      'must be https:// (http:// is accepted only for allow-listed destinations)',
    ],
    ['https://user:pw@hooks.example.com/', 'must not carry a user name or password'],
    ['https://token@hooks.example.com/', 'must not carry a user name or password'],
    ['ftp://hooks.example.com/', 'must be an http:// or https:// URL'],
    ['https://127.0.0.1/', '127.0.0.1 is not a public address (loopback)'],
    // The URL parser normalises the odd spellings of an IPv4 address first.
    ['https://2130706433/', '127.0.0.1 is not a public address (loopback)'],
    ['https://0x7f.1/', '127.0.0.1 is not a public address (loopback)'],
    ['https://10.1.2.3:8443/', '10.1.2.3 is not a public address (private)'],
    ['https://169.254.169.254/latest/meta-data', '169.254.169.254 is not a public address (linkLocal)'],
    ['https://[::1]/', '::1 is not a public address (loopback)'],
    ['https://[::ffff:192.168.0.1]/', '::ffff:c0a8:1 is not a public address (private)'],
    ['https://[fd00::1]/', 'fd00::1 is not a public address (uniqueLocal)'],
    // A name is judged by what it resolves to, at delivery.
    ['https://localhost:9000/', undefined],
  ])('%s → %s', (url, refusal) => {
    expect(open.refusalOfUrl(new URL(url))).toBe(refusal);
  });

  it('lets allow-listed hosts and ranges through, over http too', () => {
    const guard = new DestinationGuard({
      allowHosts: ['hooks.internal'],
      allowCidrs: ['127.0.0.1/32', 'fd00::/8'],
    });
    expect(guard.refusalOfUrl(new URL('http://127.0.0.1:8080/hook'))).toBeUndefined();
    expect(guard.refusalOfUrl(new URL('http://[::ffff:127.0.0.1]/'))).toBeUndefined();
    expect(guard.refusalOfUrl(new URL('http://[fd00::5]/'))).toBeUndefined();
    expect(guard.refusalOfUrl(new URL('http://HOOKS.internal/x'))).toBeUndefined();
    expect(guard.refusalOfUrl(new URL('https://127.0.0.2/'))).toBe(
      '127.0.0.2 is not a public address (loopback)',
    );
    expect(guard.refusalOfUrl(new URL('http://other.internal/'))).toMatch(/^must be https:\/\//);
  });
});

describe('DestinationGuard.resolve', () => {
  const answers: Record<string, string[]> = {
    'public.example': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
    'mixed.example': ['93.184.215.14', '10.0.0.7'],
    'rebind.example': ['::ffff:127.0.0.1'],
    'metadata.example': ['169.254.169.254'],
    'hooks.internal': ['10.20.30.40'],
    'nowhere.example': [],
  };
  const resolver: Resolver = async (host) => {
    const addresses = answers[host];
    if (addresses === undefined)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

  it('returns every address of a public name', async () => {
    const guard = new DestinationGuard({ allowHosts: [], allowCidrs: [] }, resolver);
    expect(await guard.resolve(new URL('https://public.example/hook'))).toEqual([
      { address: '93.184.215.14', family: 4 },
      { address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c', family: 6 },
    ]);
  });

  it.each([
    ['mixed.example', 'mixed.example resolves to 10.0.0.7, not a public address (private)'],
    ['rebind.example', 'rebind.example resolves to ::ffff:127.0.0.1, not a public address (loopback)'],
    ['metadata.example', 'metadata.example resolves to 169.254.169.254, not a public address (linkLocal)'],
    ['hooks.internal', 'hooks.internal resolves to 10.20.30.40, not a public address (private)'],
  ])('refuses %s when ANY address is not public', async (host, message) => {
    const guard = new DestinationGuard({ allowHosts: [], allowCidrs: [] }, resolver);
    const attempt = guard.resolve(new URL(`https://${host}/`));
    await expect(attempt).rejects.toThrow(DestinationRefusedError);
    await expect(attempt).rejects.toThrow(message);
  });

  it('accepts a private address inside an allowed range, and an allowed host whatever it resolves to', async () => {
    const byRange = new DestinationGuard({ allowHosts: [], allowCidrs: ['10.0.0.0/8'] }, resolver);
    expect(await byRange.resolve(new URL('https://hooks.internal/'))).toEqual([
      { address: '10.20.30.40', family: 4 },
    ]);
    const byHost = new DestinationGuard({ allowHosts: ['hooks.internal'], allowCidrs: [] }, resolver);
    expect(await byHost.resolve(new URL('http://hooks.internal/'))).toEqual([
      { address: '10.20.30.40', family: 4 },
    ]);
  });

  it('checks an address literal without resolving it', async () => {
    const guard = new DestinationGuard({ allowHosts: [], allowCidrs: [] }, async () => {
      throw new Error('must not resolve');
    });
    expect(await guard.resolve(new URL('https://[2606:4700:4700::1111]/'))).toEqual([
      { address: '2606:4700:4700::1111', family: 6 },
    ]);
    await expect(guard.resolve(new URL('https://192.168.0.10/'))).rejects.toThrow(DestinationRefusedError);
  });

  it('reports a name without address as an ordinary (retryable) error', async () => {
    const guard = new DestinationGuard({ allowHosts: [], allowCidrs: [] }, resolver);
    const empty = guard.resolve(new URL('https://nowhere.example/'));
    await expect(empty).rejects.toThrow('nowhere.example has no address');
    await expect(empty).rejects.not.toBeInstanceOf(DestinationRefusedError);
    await expect(guard.resolve(new URL('https://unknown.example/'))).rejects.toThrow(/ENOTFOUND/);
  });
});

describe('CallbackUrlCheck', () => {
  const secret = new Uint8Array(24);

  it('refuses every callback URL when no secret is configured', () => {
    const check = new CallbackUrlCheck({ secret: undefined, allowHosts: [], allowCidrs: [] });
    expect(check.refusalOf('https://hooks.example.com/')).toBe(
      'cannot be used: this server has no WEBHOOK_SECRET to sign webhooks with',
    );
  });

  it('applies the destination rules that need no DNS', () => {
    const check = new CallbackUrlCheck({ secret, allowHosts: [], allowCidrs: ['127.0.0.1/32'] });
    expect(check.refusalOf('https://hooks.example.com/x?token=1')).toBeUndefined();
    expect(check.refusalOf('http://127.0.0.1:9000/hook')).toBeUndefined();
    expect(check.refusalOf('https://10.0.0.1/')).toBe('10.0.0.1 is not a public address (private)');
    expect(check.refusalOf('https://localhost:9000/')).toBe('localhost is a loopback name');
    expect(check.refusalOf('https://LOCALHOST./')).toBe('localhost is a loopback name');
    expect(check.refusalOf('https://api.localhost/')).toBe('api.localhost is a loopback name');
    const allowed = new CallbackUrlCheck({ secret, allowHosts: ['localhost'], allowCidrs: [] });
    expect(allowed.refusalOf('http://localhost:9000/')).toBeUndefined();
    expect(check.refusalOf('not a url')).toBe('must be an absolute http:// or https:// URL');
  });
});
