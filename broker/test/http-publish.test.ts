import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DISCARD_BYTES } from '../src/http/publish.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

const servers: Server[] = [];
afterEach(async () => {
  await cleanup();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

const httpUrl = (wsUrl: string, path: string): string => new URL(path, wsUrl.replace(/^ws/, 'http')).toString();

async function post(url: string, body: Uint8Array | string, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', body, headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A raw TCP client: what it received, and whether the server closed it. */
function rawHttp(port: number): { socket: Socket; received: () => string; ended: () => boolean } {
  const socket = connect(port, '127.0.0.1');
  let data = '';
  let ended = false;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (data += chunk));
  socket.on('close', () => (ended = true));
  socket.on('error', () => {}); // a reset once the broker cuts the upload is expected
  return { socket, received: () => data, ended: () => ended };
}

describe('POST /publish/<channel>', () => {
  it('publishes the body to a WebSocket subscriber, with labels and key from the query and headers', async () => {
    const b = await startBroker();
    const sub = await RawClient.connect(b.url);
    await sub.subscribe('user.*');
    const first = await post(httpUrl(b.url, '/publish/user.created?label=a&labels=b,c&key=k1'), text('{"id":42}'));
    expect(first).toEqual({ status: 202, body: { id: expect.any(String), offset: 1, epoch: expect.any(String) } });
    const second = await post(httpUrl(b.url, '/publish/user.deleted'), new Uint8Array([0, 255, 1]), {
      'Crier-Labels': 'x, y', 'Crier-Key': 'k2', 'Content-Type': 'application/octet-stream',
    });
    expect(second.status).toBe(202);
    const events = await sub.waitEvents(2);
    expect(events[0]).toMatchObject({ c: 'user.created', id: first.body['id'], o: 1, e: first.body['epoch'], l: ['a', 'b', 'c'], k: 'k1' });
    expect(Buffer.from(events[0]!.d).toString()).toBe('{"id":42}');
    expect(events[1]).toMatchObject({ c: 'user.deleted', l: ['x', 'y'], k: 'k2' });
    expect([...events[1]!.d]).toEqual([0, 255, 1]);
    // The same path as a socket's publish: offsets and counters are shared.
    expect((await b.publish('user.created', text('again'))).offset).toBe(2);
    expect(b.stats().published).toBe(3);
  });

  it('works under a path option and with an empty body', async () => {
    const b = await startBroker({ path: '/crier' });
    const seen: string[] = [];
    b.subscribe('a.>', (e) => seen.push(`${e.channel}:${e.data.length}`));
    const res = await post(httpUrl(b.url, '/crier/publish/a.b%2Dc'), '');
    expect(res.status).toBe(202);
    await waitFor('the in-process subscriber', () => seen.length === 1);
    expect(seen).toEqual(['a.b-c:0']);
  });

  it('answers every refusal with the socket error codes and the right status', async () => {
    const b = await startBroker({ maxPayload: 16 });
    const url = (path: string): string => httpUrl(b.url, path);
    const cases: [string, RequestInit, number, string][] = [
      ['/publish/user.*', {}, 400, 'bad_channel'],
      ['/publish/user.>', {}, 400, 'bad_channel'],
      ['/publish/a..b', {}, 400, 'bad_channel'],
      ['/publish/', {}, 400, 'bad_channel'],
      ['/publish/a%E0%A4%A', {}, 400, 'bad_channel'],
      [`/publish/a.b?${Array.from({ length: 17 }, (_, i) => `label=l${i}`).join('&')}`, {}, 400, 'bad_frame'],
      ['/publish/a.b?labels=a,,b', {}, 400, 'bad_frame'],
      [`/publish/a.b?key=${'k'.repeat(257)}`, {}, 400, 'bad_frame'],
      ['/publish/a.b?key=one', { headers: { 'Crier-Key': 'two' } }, 400, 'bad_frame'],
      ['/publish/a.b', { headers: { 'Crier-Labels': `${'x'.repeat(65)}` } }, 400, 'bad_frame'],
      ['/publish/a.b', { body: 'x'.repeat(17) }, 413, 'payload_too_large'],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await fetch(url(path), { method: 'POST', body: '', ...init });
      expect({ path, status: res.status, body: await res.json() }).toEqual({ path, status, body: { code, message: expect.any(String) } });
    }
    const get = await fetch(url('/publish/a.b'));
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(await get.json()).toEqual({ code: 'method_not_allowed', message: expect.any(String) });
    expect((await post(url('/publish/a.b'), 'x'.repeat(16))).status).toBe(202); // exactly maxPayload
    expect(b.stats().published).toBe(1);
  });

  it('refuses a Content-Length above maxPayload before reading the body', async () => {
    const b = await startBroker({ maxPayload: 1024 });
    const client = rawHttp(b.port);
    client.socket.write('POST /publish/a.b HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n');
    await waitFor('the 413 answer', () => client.received().includes('}'), { wakeOn: [[client.socket, 'data']] });
    expect(client.received()).toMatch(/^HTTP\/1\.1 413 /);
    expect(client.received()).toContain('"code":"payload_too_large"');
    // The body that follows is read and thrown away, then the connection closes (gracefully: the
    // answer is not lost to a reset).
    client.socket.write('x'.repeat(1025));
    await waitFor('the broker to close the connection', client.ended, { wakeOn: [[client.socket, 'close']] });
    expect(b.stats().published).toBe(0);
  });

  it('answers a chunked body that streams past maxPayload with 413 while the client is still sending, discards a bounded rest, then cuts', async () => {
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const bytesRead: number[] = [];
    server.on('connection', (s: Socket) => s.on('close', () => bytesRead.push(s.bytesRead)));
    const cap = 256 * 1024;
    const b = await startBroker({ server, path: '/', maxPayload: cap });
    const port = (server.address() as { port: number }).port;

    const CHUNK = 64 * 1024;
    const TOTAL = 64 * 1024 * 1024; // far past any kernel buffer: the client cannot be done
    const client = rawHttp(port);
    const head = 'POST /publish/big.upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
    await new Promise<void>((resolve) => client.socket.write(head, () => resolve()));
    const chunk = Buffer.concat([Buffer.from(`${CHUNK.toString(16)}\r\n`), Buffer.alloc(CHUNK, 1), Buffer.from('\r\n')]);
    let sent = 0;
    while (sent < TOTAL && client.received() === '' && !client.ended()) {
      const ok = await new Promise<boolean>((resolve) => client.socket.write(chunk, (err) => resolve(!err)));
      if (!ok) break;
      sent += CHUNK;
    }
    await waitFor('the 413 answer', () => client.received().includes('}'), { wakeOn: [[client.socket, 'data']] });
    expect(sent).toBeLessThan(TOTAL);
    expect(client.received()).toMatch(/^HTTP\/1\.1 413 /);
    expect(client.received()).toContain('"code":"payload_too_large"');
    expect(client.received()).toMatch(/connection: close/i);
    // A client that goes on sending is read (and nothing kept) up to DISCARD_BYTES more, then cut.
    while (!client.ended() && bytesRead.length === 0 && sent < TOTAL) {
      const ok = await new Promise<boolean>((resolve) => client.socket.write(chunk, (err) => resolve(!err)));
      if (!ok) break;
      sent += CHUNK;
    }
    await waitFor('the broker to cut the connection', () => bytesRead.length === 1);
    // Request head and chunk-size lines are a few hundred bytes more.
    expect(bytesRead[0]).toBeLessThanOrEqual(cap + CHUNK + DISCARD_BYTES + CHUNK + 4096);
    expect(b.stats().published).toBe(0);
    // The broker goes on serving.
    expect((await post(httpUrl(b.url, '/publish/small.one'), 'ok')).status).toBe(202);
  });

  it('answers 503 shutting_down while the broker closes, and /readyz says draining beside /healthz', async () => {
    const b = await startBroker();
    const stalled = await RawClient.connect(b.url);
    expect(await (await fetch(httpUrl(b.url, '/readyz'))).json()).toEqual({ status: 'ready' });
    stalled.ws.pause(); // it will not answer the close frame: close() waits for it
    const closing = b.close();
    const res = await post(httpUrl(b.url, '/publish/a.b'), 'x');
    expect(res).toEqual({ status: 503, body: { code: 'shutting_down', message: expect.any(String) } });
    const ready = await fetch(httpUrl(b.url, '/readyz'));
    expect(ready.status).toBe(503);
    expect(ready.headers.get('cache-control')).toBe('no-store');
    expect(await ready.json()).toEqual({ status: 'draining' });
    expect((await fetch(httpUrl(b.url, '/healthz'))).status).toBe(503);
    stalled.ws.resume();
    await closing;
    await expect(fetch(httpUrl(b.url, '/readyz'))).rejects.toThrow(); // no longer listening
  });

  it('answers a CORS preflight for an allowed origin', async () => {
    const b = await startBroker({ corsOrigins: ['https://app.example'], allowedOrigins: ['https://app.example'] });
    const pre = await fetch(httpUrl(b.url, '/publish/a.b'), {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'crier-key' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const res = await fetch(httpUrl(b.url, '/publish/a.b'), { method: 'POST', body: 'x', headers: { Origin: 'https://app.example' } });
    expect(res.status).toBe(202);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
  });
});
