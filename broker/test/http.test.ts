import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { FrameType } from '@crier/protocol';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

const servers: Server[] = [];
afterEach(async () => {
  await cleanup();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

const httpUrl = (wsUrl: string, path: string): string => new URL(path, wsUrl.replace(/^ws/, 'http')).toString();

/** Tries a WebSocket upgrade and resolves with the HTTP answer that refused it. */
function refusedUpgrade(url: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('open', () => reject(new Error(`the upgrade to ${url} was accepted`)));
    ws.on('error', () => {});
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(body) as unknown }));
    });
  });
}

describe('HTTP endpoints', () => {
  it('GET /healthz answers 200 {"status":"ok"}, never cached', async () => {
    const b = await startBroker();
    const res = await fetch(httpUrl(b.url, '/healthz'));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('GET /stats answers every counter', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.url);
    await c.subscribe('a.*');
    await c.request({ t: FrameType.publish, c: 'a.b', d: text('x') });
    await c.waitEvents(1);
    const res = await fetch(httpUrl(b.url, '/stats'));
    expect(res.headers.get('cache-control')).toBe('no-store');
    const stats = (await res.json()) as Record<string, unknown>;
    expect(stats).toEqual({
      connections: 1, sseStreams: 0, subscriptions: 1, channels: 1, published: 1, delivered: 1, dropped: 0, slowConsumers: 0,
      uptime: expect.any(Number), channelCounters: 1,
      memory: { rss: expect.any(Number), heapUsed: expect.any(Number) }, latency: { avgMs: expect.any(Number), p99Ms: expect.any(Number) },
      maxQueueDepth: 0, sessions: { parked: 0, resumed: 0, notRecovered: 0 }, eventsByChannel: [{ channel: 'a.b', events: 1 }],
      engine: { kind: 'memory', ready: true },
      requests: { pending: 0, sent: 0, delivered: 0, answered: 0, noResponders: 0, timedOut: 0, repliesDropped: 0 },
      groups: { groups: 0, members: 0, delivered: 0, skipped: 0, missed: 0, top: [] },
      presence: { watched: 0, notices: 0, folded: 0, queries: 0, top: [{ name: 'a.*', pattern: true, subscribers: 1 }] },
    });
    expect(stats['latency']).toMatchObject({ avgMs: expect.toSatisfy((n: number) => n >= 0) });
  });

  it('GET / is the dashboard page; unknown paths get a JSON 404; other methods 405', async () => {
    const b = await startBroker();
    const page = await fetch(httpUrl(b.url, '/'));
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('id="tail"');
    expect(html).toContain('href="stats"');
    expect(html).toContain('href="healthz"');
    const missing = await fetch(httpUrl(b.url, '/nope?x=1'));
    expect(missing.status).toBe(404);
    expect(missing.headers.get('cache-control')).toBe('no-store');
    expect(await missing.json()).toEqual({ code: 'not_found', message: expect.stringContaining('/nope') });
    const post = await fetch(httpUrl(b.url, '/stats'), { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('a WebSocket upgrade on another path gets 404', async () => {
    const b = await startBroker({ path: '/events' });
    const refused = await refusedUpgrade(b.url.replace('/events', '/other'));
    expect(refused.status).toBe(404);
    await RawClient.connect(b.url); // the right path works
    expect((await fetch(httpUrl(b.url, '/events/stats'))).status).toBe(200);
  });

  it('past maxConnections an upgrade gets 503 with Retry-After, and a freed slot is reusable', async () => {
    const b = await startBroker({ maxConnections: 2 });
    const [c1] = await Promise.all([RawClient.connect(b.url), RawClient.open(b.url)]);
    const refused = await refusedUpgrade(b.url);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.body).toEqual({ code: 'too_many_connections', message: expect.any(String) });
    c1.send({ t: FrameType.quit });
    await c1.waitClose();
    await waitFor('the slot to be released', () => b.stats().connections === 1);
    await RawClient.connect(b.url);
  });
});

describe('attached to an existing http.Server', () => {
  it('serves its own paths, leaves the others to the server, and close() leaves the server running', async () => {
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`app:${req.url}`);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const b = await startBroker({ server, path: '/crier' });
    const port = (server.address() as { port: number }).port;
    expect(b.port).toBe(port);
    expect(b.url).toBe(`ws://127.0.0.1:${port}/crier`);

    const c = await RawClient.connect(b.url);
    await c.subscribe('x.y');
    b.publish('x.y', text('hello'));
    await c.waitEvents(1);
    expect(await (await fetch(httpUrl(b.url, '/crier/healthz'))).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(httpUrl(b.url, '/crier/stats'))).json()).toMatchObject({ connections: 1 });
    expect(await (await fetch(httpUrl(b.url, '/app/page'))).text()).toBe('app:/app/page');

    await b.close();
    expect((await c.waitClose()).code).toBe(1001);
    expect(server.listening).toBe(true);
    // Every path is the application's again.
    expect(await (await fetch(httpUrl(b.url, '/crier/stats'))).text()).toBe('app:/crier/stats');
  });

  it('leaves upgrades on other paths to the server\'s other upgrade listeners', async () => {
    const server = createServer();
    servers.push(server);
    const other = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
      if (req.url === '/other') other.handleUpgrade(req, socket, head, (ws) => ws.close(4999, 'other'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const b = await startBroker({ server, path: '/crier' });
    const c = await RawClient.open(b.url.replace('/crier', '/other'));
    expect(await c.waitClose()).toEqual({ code: 4999, reason: 'other' });
    await RawClient.connect(b.url);
  });
});
