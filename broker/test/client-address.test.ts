// Which address a request comes from, behind trusted proxies or not: decided on fabricated
// requests (tests connect to loopback only).
import { Duplex } from 'node:stream';
import type { IncomingMessage, Server } from 'node:http';
import { describe, expect, it } from 'vitest';
import { AddressAdmission } from '../src/admission/address-admission.js';
import { clientAddress, trustedProxySet } from '../src/admission/client-address.js';
import { Refusals } from '../src/observe/refusals.js';
import { createUpgradeListener } from '../src/transport/upgrade.js';
import type { Ingress } from '../src/transport/ingress.js';
import { brokerPaths } from '../src/config/paths.js';

const request = (remoteAddress: string, forwarded?: string | string[]): IncomingMessage =>
  ({ url: '/', headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded }, socket: { remoteAddress } }) as unknown as IncomingMessage;

describe('clientAddress', () => {
  const proxies = trustedProxySet(['127.0.0.1', '10.0.0.7', '10.0.0.8', '2001:DB8::7']);

  it('is the socket address when no proxy is trusted, whatever X-Forwarded-For says', () => {
    expect(clientAddress(request('127.0.0.1', '203.0.113.5'), undefined)).toBe('127.0.0.1');
    expect(clientAddress(request('127.0.0.1', '203.0.113.5'), trustedProxySet([]))).toBe('127.0.0.1');
    expect(clientAddress(request('::ffff:127.0.0.1'), undefined)).toBe('127.0.0.1');
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', () => {
    expect(clientAddress(request('198.51.100.9', '127.0.0.1'), proxies)).toBe('198.51.100.9');
    expect(clientAddress(request('127.0.0.2', '203.0.113.5'), proxies)).toBe('127.0.0.2');
  });

  it('from a trusted proxy, takes the right-most forwarded address that is not a trusted proxy', () => {
    expect(clientAddress(request('127.0.0.1', '203.0.113.5'), proxies)).toBe('203.0.113.5');
    expect(clientAddress(request('::ffff:127.0.0.1', '203.0.113.5'), proxies)).toBe('203.0.113.5');
    // The left part is the client's to write: a forged "127.0.0.1" in front changes nothing.
    expect(clientAddress(request('127.0.0.1', '127.0.0.1, 203.0.113.5, 10.0.0.8'), proxies)).toBe('203.0.113.5');
    expect(clientAddress(request('10.0.0.7', ['198.51.100.1', '203.0.113.5 , 10.0.0.8']), proxies)).toBe('203.0.113.5');
    expect(clientAddress(request('2001:db8::7', '2001:db8::99'), proxies)).toBe('2001:db8::99');
  });

  it('every hop trusted: the left-most; no header: the proxy; garbage: stops at the last good hop', () => {
    expect(clientAddress(request('127.0.0.1', '10.0.0.8, 10.0.0.7'), proxies)).toBe('10.0.0.8');
    expect(clientAddress(request('127.0.0.1'), proxies)).toBe('127.0.0.1');
    expect(clientAddress(request('127.0.0.1', 'unknown'), proxies)).toBe('127.0.0.1');
    expect(clientAddress(request('127.0.0.1', '203.0.113.5, not-an-ip, 10.0.0.8'), proxies)).toBe('10.0.0.8');
  });
});

describe('the loopback-only admission behind a proxy', () => {
  function upgrade(trusted: string[], req: IncomingMessage): Promise<{ written: string; refusals: Refusals }> {
    const trustedProxies = trustedProxySet(trusted);
    const refusals = new Refusals({ warn() {}, info() {} } as never, 10, trustedProxies);
    const core = {
      auth: { enabled: false }, closing: false, refusals, trustedProxies, now: () => 0,
      admission: new AddressAdmission({ maxConnectionsPerIp: 10, maxPendingPerIp: 10, handshakeRate: 10 }),
      options: { allowAnonymous: false, allowedOrigins: [], maxConnections: 10 },
      openCount: 0,
    } as unknown as Ingress;
    let written = '';
    const socket = new Duplex({ read() {}, write(chunk: Buffer, _enc, done) { written += chunk.toString(); done(); } });
    const handled = { value: false };
    const wss = { handleUpgrade: () => { handled.value = true; socket.end(); } } as never;
    const listener = createUpgradeListener({ ingress: core, wss, paths: brokerPaths('/'), server: {} as Server, attached: false });
    listener(req, socket, Buffer.alloc(0));
    return new Promise((resolve) => socket.once('finish', () => resolve({ written: handled.value ? 'upgraded' : written, refusals })));
  }

  it('a loopback peer forwarding for an outside client is admitted when the peer is not trusted (its header is ignored)', async () => {
    const { written, refusals } = await upgrade([], request('127.0.0.1', '203.0.113.5'));
    expect(written).toBe('upgraded');
    expect(refusals.count('forbidden')).toBe(0);
  });

  it('a trusted proxy forwarding for an outside client gets 403 forbidden: the client is not on loopback', async () => {
    const { written, refusals } = await upgrade(['127.0.0.1'], request('127.0.0.1', '203.0.113.5'));
    expect(written).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(written).toContain('"code":"forbidden"');
    expect(refusals.count('forbidden')).toBe(1);
  });

  it('a trusted proxy forwarding for a loopback client is admitted', async () => {
    const { written } = await upgrade(['127.0.0.1'], request('127.0.0.1', '127.0.0.3'));
    expect(written).toBe('upgraded');
  });
});
