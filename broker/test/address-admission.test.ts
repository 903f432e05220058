// Per-address caps and handshake rate. Different clients are different loopback addresses
// (127.0.0.2, 127.0.0.3 … are all loopback on Linux): the client socket is bound with
// localAddress. Rates run on the broker's injected clock.
import { get, type IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ErrorCode } from '@crier/protocol';
import { AddressAdmission } from '../src/admission/address-admission.js';
import type { Ingress } from '../src/transport/ingress.js';
import type { Broker } from '../src/index.js';
import { RawClient, cleanup, startBroker, waitFor } from './helpers.js';

const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await cleanup();
});

function coreOf(broker: Broker): Ingress {
  return (broker as unknown as { ingress: Ingress }).ingress;
}

/** Opens a socket from `localAddress` and says nothing: resolves 'open', or the refusal's status. */
function openSilent(url: string, localAddress: string): Promise<{ ws: WebSocket; status: number; retryAfter?: string; body?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress, perMessageDeflate: false });
    sockets.push(ws);
    ws.on('error', () => {});
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        req.destroy();
        resolve({ ws, status: res.statusCode!, retryAfter: res.headers['retry-after'], body });
      });
    });
    setTimeout(() => reject(new Error(`no answer to a handshake from ${localAddress}`)), 5000).unref();
  });
}

/** GET /events from `localAddress`: the status and Retry-After (the stream is left open). */
function openStream(broker: Broker, localAddress: string): Promise<{ status: number; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port: broker.port, path: '/events?channels=a', localAddress }, (res) => {
      resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'] });
      if (res.statusCode !== 200) res.resume();
    });
    req.on('error', reject);
  });
}

describe('AddressAdmission', () => {
  it('caps open and pending per address, and rates handshakes, on the clock it is given', () => {
    const a = new AddressAdmission({ maxConnectionsPerIp: 3, maxPendingPerIp: 2, handshakeRate: 10 });
    expect(a.admit('203.0.113.5', true, 0)).toBeUndefined();
    a.opened('203.0.113.5', true);
    a.opened('203.0.113.5', true);
    expect(a.admit('203.0.113.5', true, 0)).toMatchObject({ code: 'too_many_connections', limit: 'maxPendingPerIp', retryAfter: 5 });
    expect(a.admit('203.0.113.5', false, 0)).toBeUndefined(); // a stream never says hello: not pending
    a.opened('203.0.113.5', false);
    expect(a.admit('203.0.113.5', false, 0)).toMatchObject({ code: 'too_many_connections', limit: 'maxConnectionsPerIp' });
    expect(a.admit('198.51.100.1', true, 0)).toBeUndefined(); // another address is not concerned
    a.settled('203.0.113.5');
    a.closed('203.0.113.5');
    expect(a.of('203.0.113.5')).toEqual({ open: 2, pending: 1 });
    a.closed('203.0.113.5');
    a.settled('203.0.113.5');
    a.closed('203.0.113.5');
    expect(a.of('203.0.113.5')).toEqual({ open: 0, pending: 0 });
  });

  it('handshakes: a burst of twice the rate, then the rate; a refusal says when to retry', () => {
    const a = new AddressAdmission({ maxConnectionsPerIp: 1000, maxPendingPerIp: 1000, handshakeRate: 2 });
    const results = [0, 1, 2, 3, 4].map(() => a.admit('203.0.113.5', true, 0)?.code);
    expect(results).toEqual([undefined, undefined, undefined, undefined, 'rate_limited']);
    expect(a.admit('203.0.113.5', true, 0)).toMatchObject({ limit: 'handshakeRate', retryAfter: 1 });
    expect(a.admit('203.0.113.5', true, 500)).toBeUndefined();
    expect(a.admit('198.51.100.1', true, 0)).toBeUndefined();
  });
});

describe('per-address caps through the upgrade', () => {
  it('20 silent sockets from one address cannot lock anyone out of maxConnections 20 (finding 5)', async () => {
    const broker = await startBroker({ maxConnections: 20 });
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await openSilent(broker.url, '127.0.0.2'));
    expect(results.filter((r) => r.status === 101)).toHaveLength(16);
    const refused = results.filter((r) => r.status !== 101);
    expect(refused.every((r) => r.status === 503 && r.retryAfter === '5' && r.body?.includes('"code":"too_many_connections"'))).toBe(true);
    expect(refused[0]!.body).toContain('maxPendingPerIp');
    // Someone else still gets in and is welcomed.
    const other = await RawClient.connect(broker.url);
    expect(other.welcome?.u).toBeTruthy();
    expect(coreOf(broker).refusals.count(ErrorCode.tooManyConnections)).toBe(4);
    expect(coreOf(broker).admission.of('127.0.0.2')).toEqual({ open: 16, pending: 16 });
  });

  it('a welcomed socket no longer counts as pending; a closed one frees its slot', async () => {
    const broker = await startBroker({ maxPendingPerIp: 1, maxConnectionsPerIp: 2 });
    const core = coreOf(broker);
    const a = await openSilent(broker.url, '127.0.0.3');
    expect(a.status).toBe(101);
    expect((await openSilent(broker.url, '127.0.0.3')).status).toBe(503); // one pending already
    const { FrameType, PROTOCOL_VERSION, encodeFrame } = await import('@crier/protocol');
    a.ws.send(encodeFrame({ t: FrameType.hello, v: PROTOCOL_VERSION }));
    await waitFor('the hello to settle', () => core.admission.of('127.0.0.3').pending === 0);
    const b = await openSilent(broker.url, '127.0.0.3');
    expect(b.status).toBe(101);
    // Two open now: a third (socket or stream) is over maxConnectionsPerIp.
    const c = await openSilent(broker.url, '127.0.0.3');
    expect([c.status, c.body?.includes('maxConnectionsPerIp')]).toEqual([503, true]);
    expect(await openStream(broker, '127.0.0.3')).toEqual({ status: 503, retryAfter: '5' });
    expect((await openStream(broker, '127.0.0.4')).status).toBe(200);
    b.ws.close();
    await waitFor('the closed socket to free its slot', () => core.admission.of('127.0.0.3').open === 1);
    expect((await openSilent(broker.url, '127.0.0.3')).status).toBe(101);
  });

  it('handshakes past handshakeRate get 503 rate_limited with Retry-After until the bucket refills', async () => {
    const broker = await startBroker({ handshakeRate: 1 });
    const core = coreOf(broker);
    let t = 1_000_000;
    core.now = () => t;
    expect((await RawClient.connect(broker.url)).welcome).toBeDefined();
    expect((await RawClient.connect(broker.url)).welcome).toBeDefined();
    const refused = await openSilent(broker.url, '127.0.0.1');
    expect([refused.status, refused.retryAfter, refused.body?.includes('"code":"rate_limited"')]).toEqual([503, '1', true]);
    expect((await openSilent(broker.url, '127.0.0.5')).status).toBe(101);
    expect(core.refusals.count(ErrorCode.rateLimited)).toBe(1);
    t += 1000;
    expect((await openSilent(broker.url, '127.0.0.1')).status).toBe(101);
  });
});
