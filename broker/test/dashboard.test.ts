import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '@crier/protocol';
import { ChannelIndex } from '../src/core/channel-index.js';
import type { Ingress } from '../src/transport/ingress.js';
import type { SseHub } from '../src/transport/sse.js';
import { createRequestListener } from '../src/http/endpoints.js';
import { brokerPaths } from '../src/config/paths.js';
import { STATIC_DIR, loadStaticAssets } from '../src/http/static-assets.js';
import type { BrokerTop } from '../src/types.js';
import { RawClient, cleanup, publishUntil, startBroker, waitFor } from './helpers.js';

const servers: Server[] = [];
afterEach(async () => {
  await cleanup();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

const httpUrl = (wsUrl: string, path: string): string => new URL(path, wsUrl.replace(/^ws/, 'http')).toString();

// The build (`node broker/scripts/copy-assets.mjs`, after sdk-web's bundle) puts these in dist/static.
const HOOKS = ['connections', 'published', 'delivered', 'status', 'tail', 'publish-form', 'publish-channel', 'publish-data', 'publish-result'];

describe('the browser bundle and the dashboard files', () => {
  it('GET /crier.min.js serves the sdk-web IIFE as JavaScript, with an ETag that revalidates', async () => {
    const b = await startBroker();
    const res = await fetch(httpUrl(b.url, '/crier.min.js'));
    expect(res.status, `${STATIC_DIR.pathname}crier.min.js is missing: the build copies it there`).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const etag = res.headers.get('etag');
    expect(etag).toMatch(/^"[\w-]{27}"$/);
    expect(await res.text()).toMatch(/\bCrier\b/); // the global the IIFE defines
    const again = await fetch(httpUrl(b.url, '/crier.min.js'), { headers: { 'If-None-Match': etag! } });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);
    const head = await fetch(httpUrl(b.url, '/crier.min.js'), { method: 'HEAD' });
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(1000);
  });

  it('serves the dashboard\'s script, styles and icon beside the WebSocket path, under any path', async () => {
    const b = await startBroker({ path: '/crier' });
    const types: Record<string, RegExp> = {
      '/crier/crier.min.js': /^text\/javascript/, '/crier/crier.full.min.js': /^text\/javascript/, '/crier/dashboard.js': /^text\/javascript/,
      '/crier/dashboard.css': /^text\/css/, '/crier/favicon.svg': /^image\/svg\+xml/,
    };
    for (const [path, type] of Object.entries(types)) {
      const res = await fetch(httpUrl(b.url, path));
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toMatch(type);
    }
    expect((await fetch(httpUrl(b.url, '/crier.min.js'))).status).toBe(404); // not at the root
    expect((await fetch(httpUrl(b.url, '/crier/dashboard.js'), { method: 'POST' })).status).toBe(405);
  });

  it('GET / is the dashboard: the test hooks, its own script and styles, nothing from another host', async () => {
    const b = await startBroker();
    const res = await fetch(httpUrl(b.url, '/'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self' ws: wss:");
    const html = await res.text();
    for (const id of HOOKS) expect(html, `#${id}`).toContain(`id="${id}"`);
    expect(html).toContain('<script src="crier.min.js"');
    expect(html).toContain('<script src="dashboard.js" type="module">');
    expect(html).toContain('<base href="/">');
    expect(html).toContain('<meta name="crier-bundle" content="present">');
    expect(html).not.toContain('%CRIER_');
    // Every src and href is relative to the broker (no CDN, no other host, no inline script).
    const refs = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(3);
    for (const ref of refs) expect(ref, ref).not.toMatch(/^(?:[a-z][a-z0-9+.-]*:|\/\/)/i);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    for (const file of ['dashboard.js', 'dashboard.css']) {
      const text = await (await fetch(httpUrl(b.url, `/${file}`))).text();
      // The only URL-looking string is the SVG namespace name, which nothing loads.
      expect(text.replaceAll('http://www.w3.org/2000/svg', ''), file).not.toMatch(/https?:\/\/|@import|\burl\((?!#)/);
    }
  });

  it('fills in the broker\'s path, so the page works under a prefix, with or without the trailing slash', async () => {
    const b = await startBroker({ path: '/crier' });
    for (const path of ['/crier', '/crier/']) {
      const html = await (await fetch(httpUrl(b.url, path))).text();
      expect(html, path).toContain('<base href="/crier/">');
      expect(html, path).toContain('<meta name="crier-path" content="/crier">');
    }
  });
});

describe('without the built files', () => {
  async function serveWithout(): Promise<string> {
    const core = { closing: false, auth: { enabled: false }, options: { allowAnonymous: false }, stats: () => ({}), top: () => ({}) } as unknown as Ingress;
    const assets = await loadStaticAssets(new URL('./no-such-dir/', import.meta.url));
    expect(assets.size).toBe(0);
    const server = createServer(createRequestListener(core, {} as SseHub, brokerPaths('/'), undefined, assets));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  }

  it('/crier.min.js answers a JSON 404 that says to run the build, and / says the dashboard is not built', async () => {
    const base = await serveWithout();
    const res = await fetch(`${base}/crier.min.js`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ code: 'not_found', message: expect.stringContaining('run the build') });
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('not built');
    expect(html).toContain('/stats/top');
  });
});

describe('GET /stats/top', () => {
  it('lists subscribed names and patterns by subscribers (ties by name), bounded by limit', async () => {
    const b = await startBroker();
    const [c1, c2, c3] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url), RawClient.connect(b.url)]);
    await c1.subscribe('a.b');
    await c1.subscribe('a.*');
    await c2.subscribe('a.b');
    await c2.subscribe('x.>');
    await c3.subscribe('a.b');
    await c3.subscribe('m.n');
    b.subscribe('a.*', () => {}); // in-process subscribers count too

    const res = await fetch(httpUrl(b.url, '/stats/top'));
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({
      channels: {
        total: 4,
        top: [
          { name: 'a.b', pattern: false, subscribers: 3 },
          { name: 'a.*', pattern: true, subscribers: 2 },
          { name: 'm.n', pattern: false, subscribers: 1 },
          { name: 'x.>', pattern: true, subscribers: 1 },
        ],
      },
      slowConsumers: { total: 0, top: [] },
    } satisfies BrokerTop);

    const two = (await (await fetch(httpUrl(b.url, '/stats/top?limit=2'))).json()) as BrokerTop;
    expect(two.channels.total).toBe(4);
    expect(two.channels.top.map((c) => c.name)).toEqual(['a.b', 'a.*']);

    c1.send({ t: FrameType.quit });
    await c1.waitClose();
    await waitFor('c1 to be freed', () => b.stats().subscriptions === 5);
    const after = (await (await fetch(httpUrl(b.url, '/stats/top'))).json()) as BrokerTop;
    expect(after.channels.top.slice(0, 2)).toEqual([
      { name: 'a.b', pattern: false, subscribers: 2 },
      { name: 'a.*', pattern: true, subscribers: 1 },
    ]);
  });

  it('refuses a limit that is not an integer from 1 to 100', async () => {
    const b = await startBroker();
    for (const q of ['limit=0', 'limit=101', 'limit=abc', 'limit=1.5', 'limit=-1', 'limit=']) {
      const res = await fetch(httpUrl(b.url, `/stats/top?${q}`));
      expect(res.status, q).toBe(400);
      expect(await res.json()).toEqual({ code: 'bad_request', message: expect.stringContaining('limit') });
    }
    expect((await fetch(httpUrl(b.url, '/stats/top?limit=100'))).status).toBe(200);
    expect((await fetch(httpUrl(b.url, '/stats/top'), { method: 'DELETE' })).status).toBe(405);
  });

  it('never lists more than limit, however many channels there are', async () => {
    const b = await startBroker({ maxChannels: 300 });
    const c = await RawClient.connect(b.url);
    await Promise.all(Array.from({ length: 250 }, (_, i) => c.subscribe(`load.c${i}`)));
    const top = (await (await fetch(httpUrl(b.url, '/stats/top?limit=100'))).json()) as BrokerTop;
    expect(top.channels.total).toBe(250);
    expect(top.channels.top).toHaveLength(100);
    const byDefault = (await (await fetch(httpUrl(b.url, '/stats/top'))).json()) as BrokerTop;
    expect(byDefault.channels.top).toHaveLength(20);
  });

  it('lists a connection that stopped reading as a slow consumer, with its backlog and drops, until it drains', async () => {
    const b = await startBroker({ bufferSize: 16, maxBufferBytes: 256 * 1024 });
    const uuid = 'frozen-reader';
    const [fast, frozen] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url, uuid)]);
    await frozen.subscribe('feed.>');
    await fast.subscribe('feed.>');
    frozen.ws.pause();
    await publishUntil(fast, (payload) => b.publish('feed.x', payload), () => b.stats().dropped > 0);
    const top = (await (await fetch(httpUrl(b.url, '/stats/top'))).json()) as BrokerTop;
    expect(top.slowConsumers).toEqual({
      total: 1,
      top: [{ uuid, events: expect.any(Number), bytes: expect.any(Number), dropped: b.stats().dropped, since: expect.any(Number) }],
    });
    expect(top.slowConsumers.top[0]!.since).toBeLessThanOrEqual(Date.now());
    expect(top.slowConsumers.top[0]!.bytes).toBeGreaterThan(0);

    frozen.ws.resume();
    await waitFor('the slow consumer to drain', () => b.stats().slowConsumers === 0, { timeoutMs: 15_000 });
    const after = (await (await fetch(httpUrl(b.url, '/stats/top'))).json()) as BrokerTop;
    expect(after.slowConsumers).toEqual({ total: 0, top: [] });
  }, 60_000);
});

describe('ChannelIndex.top', () => {
  it('keeps the most subscribed, most first, ties by name, without sorting the whole index', () => {
    const index = new ChannelIndex<number>();
    for (let i = 0; i < 500; i++) for (let s = 0; s <= i % 7; s++) index.add(`c.${String(i).padStart(3, '0')}`, s);
    index.add('w.*', 1);
    for (let s = 0; s < 9; s++) index.add('w.>', s);
    const top = index.top(5);
    expect(top).toEqual([
      { name: 'w.>', pattern: true, subscribers: 9 },
      { name: 'c.006', pattern: false, subscribers: 7 },
      { name: 'c.013', pattern: false, subscribers: 7 },
      { name: 'c.020', pattern: false, subscribers: 7 },
      { name: 'c.027', pattern: false, subscribers: 7 },
    ]);
    expect(index.top(0)).toEqual([]);
    expect(index.top(1000)).toHaveLength(502);
  });
});
