// A handshake the broker refuses for good (403 forbidden_origin) ends the sdk-node client at once,
// with the broker's code; a temporary refusal (503 too_many_connections) is retried.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode, connect, type CrierClient } from '../src/index.js';
import { connectOnce } from '../src/cli-connect.js';
import { ManualClock } from '../../sdk-web/test/manual-clock.js';
import { record } from '../../sdk-web/test/record.js';
import { changed, waitFor } from '../../sdk-web/test/wait-for.js';

const servers: Server[] = [];
const clients: CrierClient[] = [];

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.quit()));
  const open = servers.splice(0);
  for (const s of open) s.closeAllConnections();
  await Promise.all(open.map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A server that answers every WebSocket upgrade with `status` and `body`, counting them. */
async function refusingServer(status: number, body: string, headers: Record<string, string> = {}): Promise<{ url: string; upgrades: () => number }> {
  let upgrades = 0;
  const server = createServer();
  servers.push(server);
  server.on('upgrade', (_req, socket) => {
    socket.on('error', () => {}); // a client that aborts after the answer resets the socket
    upgrades++;
    const head = [`HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : 'Service Unavailable'}`, 'Connection: close',
      'Content-Type: application/json; charset=utf-8', `Content-Length: ${Buffer.byteLength(body)}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
    changed();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`, upgrades: () => upgrades };
}

const FORBIDDEN = JSON.stringify({ code: 'forbidden_origin', message: 'origin https://evil.example is not in allowedOrigins' });

describe('a refused handshake', () => {
  it('403 forbidden_origin: an error with the broker code, state closed (4006), and no second socket', async () => {
    const server = await refusingServer(403, FORBIDDEN);
    const clock = new ManualClock(); // any retry would be a timer left pending
    const c = connect(server.url, { timers: clock });
    clients.push(c);
    const rec = record(c);
    await waitFor('the client to close', () => c.state === 'closed');
    expect(rec.errors).toHaveLength(1);
    expect(rec.errors[0]).toMatchObject({ name: 'CrierError', code: ErrorCode.forbiddenOrigin, message: 'origin https://evil.example is not in allowedOrigins' });
    expect(rec.states).toEqual([
      ['closed', { code: CloseCode.handshakeRefused, reason: 'forbidden_origin: origin https://evil.example is not in allowedOrigins' }],
    ]);
    await expect(c.ready()).rejects.toMatchObject({ code: ErrorCode.closed, message: expect.stringContaining('forbidden_origin') });
    expect(clock.pending()).toEqual([]);
    expect(server.upgrades()).toBe(1);
  });

  it('a 403 without a crier body closes for good too, without an error code', async () => {
    const server = await refusingServer(403, 'no');
    const c = connect(server.url, { timers: new ManualClock() });
    clients.push(c);
    const rec = record(c);
    await waitFor('the client to close', () => c.state === 'closed');
    expect(rec.states).toEqual([['closed', { code: CloseCode.handshakeRefused, reason: 'HTTP 403 Forbidden' }]]);
    expect(rec.errors).toEqual([]);
    expect(server.upgrades()).toBe(1);
  });

  it('503 too_many_connections is temporary: 1006, reconnecting, and another try', async () => {
    const server = await refusingServer(503, JSON.stringify({ code: 'too_many_connections', message: 'full' }), { 'Retry-After': '5' });
    const c = connect(server.url, { random: () => 0 }); // no backoff delay: the retry comes at once
    clients.push(c);
    const rec = record(c);
    await waitFor('a second handshake', () => server.upgrades() >= 2);
    expect(rec.states[0]).toEqual(['reconnecting', { code: CloseCode.abnormal, reason: '' }]);
    expect(rec.errors).toEqual([]);
    expect(c.state).not.toBe('closed');
  });

  it('the crier command says forbidden_origin and stops', async () => {
    const server = await refusingServer(403, FORBIDDEN);
    await expect(connectOnce(server.url, 2000)).rejects.toThrow(
      `cannot reach ${server.url}: forbidden_origin: origin https://evil.example is not in allowedOrigins (HTTP 403 to the WebSocket handshake)`,
    );
    expect(server.upgrades()).toBe(1);
  });
});
