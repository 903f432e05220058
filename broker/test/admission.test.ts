// Who may come in without a credential, and from which pages: decided on a fabricated remote
// address and Origin (tests connect to 127.0.0.1 only, never to this machine's other addresses).
import { Duplex } from 'node:stream';
import type { IncomingMessage, Server } from 'node:http';
import { describe, expect, it } from 'vitest';
import { anonymousRefusal, authenticateRequest, type IngressHost } from '../src/auth/http-auth.js';
import { Principal } from '../src/auth/principal.js';
import { isLoopbackAddress, originAllowed } from '../src/http/cors.js';
import { Refusals } from '../src/observe/refusals.js';
import { createUpgradeListener } from '../src/transport/upgrade.js';
import type { Ingress } from '../src/transport/ingress.js';
import { brokerPaths } from '../src/config/paths.js';

const closed = { auth: { enabled: false }, options: { allowAnonymous: false } };

describe('anonymous clients', () => {
  it('are served on loopback only while no credential is configured', () => {
    for (const a of ['127.0.0.1', '127.9.8.7', '::1', '::ffff:127.0.0.1']) expect(anonymousRefusal(closed, a)).toBeUndefined();
    for (const a of ['203.0.113.5', '10.0.0.1', '::ffff:192.168.1.2', '2001:db8::1', undefined]) {
      const refusal = anonymousRefusal(closed, a);
      expect(refusal?.code).toBe('forbidden');
      expect(refusal?.message).toContain('--allow-anonymous');
    }
  });

  it('allowAnonymous lets anyone publish and subscribe, but the admin endpoints stay with loopback', async () => {
    const host = { auth: { enabled: false }, options: { allowAnonymous: true }, trustedProxies: new Set<string>() } as unknown as IngressHost;
    const from = (remoteAddress: string): IncomingMessage => ({ headers: {}, socket: { remoteAddress } }) as unknown as IncomingMessage;
    const remote = await authenticateRequest(host, from('203.0.113.5'), false);
    expect(remote).toBe(Principal.ANONYMOUS_REMOTE);
    expect([remote.admin, remote.publish.allows('a.b'), remote.subscribe.covers('>')]).toEqual([false, true, true]);
    expect((await authenticateRequest(host, from('127.0.0.1'), false)).admin).toBe(true);
  });

  it('allowAnonymous opens it; a configured credential makes the question moot', () => {
    expect(anonymousRefusal({ ...closed, options: { allowAnonymous: true } }, '203.0.113.5')).toBeUndefined();
    expect(anonymousRefusal({ ...closed, auth: { enabled: true } }, '203.0.113.5')).toBeUndefined();
  });

  it('a WebSocket upgrade from outside loopback is answered 403 forbidden before any socket exists, and counted', async () => {
    const refusals = new Refusals({ warn() {}, info() {} } as never, 10);
    const core = { ...closed, closing: false, refusals, options: { ...closed.options, allowedOrigins: [], maxConnections: 10 }, openCount: 0 } as unknown as Ingress;
    let written = '';
    const socket = new Duplex({ read() {}, write(chunk: Buffer, _enc, done) { written += chunk.toString(); done(); } });
    const req = { url: '/', headers: {}, socket: { remoteAddress: '203.0.113.5' } } as unknown as IncomingMessage;
    const listener = createUpgradeListener({ ingress: core, wss: {} as never, paths: brokerPaths('/'), server: {} as Server, attached: false });
    listener(req, socket, Buffer.alloc(0));
    await new Promise((resolve) => socket.once('finish', resolve));
    expect(written).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(written).toContain('"code":"forbidden"');
    expect(refusals.count('forbidden')).toBe(1);
  });
});

describe('pages allowed by default (allowedOrigins [])', () => {
  const req = (origin: string | undefined, host = 'broker.example.com:10102'): IncomingMessage =>
    ({ headers: { ...(origin === undefined ? {} : { origin }), host } }) as unknown as IncomingMessage;

  it('the broker\'s own origin, loopback pages and clients without Origin; nothing else', () => {
    expect(originAllowed(req(undefined), [])).toBe(true);
    expect(originAllowed(req('https://broker.example.com:10102'), [])).toBe(true);
    for (const o of ['http://localhost:3000', 'http://127.0.0.1:8080', 'http://[::1]:5173']) expect(originAllowed(req(o), [])).toBe(true);
    for (const o of ['https://evil.example', 'null', 'http://broker.example.com:9999', 'not a url']) expect(originAllowed(req(o), [])).toBe(false);
  });

  it('listed origins and * add to them', () => {
    expect(originAllowed(req('https://app.example.com'), ['https://app.example.com'])).toBe(true);
    expect(originAllowed(req('https://evil.example'), ['*'])).toBe(true);
  });

  it('isLoopbackAddress knows 127.0.0.0/8 and ::1, plain or mapped', () => {
    expect(isLoopbackAddress('127.0.0.1')).toBe(true);
    expect(isLoopbackAddress('128.0.0.1')).toBe(false);
    expect(isLoopbackAddress('::ffff:127.1.2.3')).toBe(true);
  });
});
