import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { pino } from 'pino';
import WebSocket from 'ws';
import { cleanup, startBroker, waitFor } from './helpers.js';

afterEach(cleanup);

const httpUrl = (wsUrl: string, path: string): string => new URL(path, wsUrl.replace(/^ws/, 'http')).toString();

/** The HTTP status a WebSocket upgrade gets (101 when it opens). */
function upgradeStatus(url: string, origin?: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, origin ? { origin } : {});
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => {});
  });
}

describe('allowedOrigins', () => {
  it('refuses browser pages from unlisted origins on every door, and lets services (no Origin) through', async () => {
    const b = await startBroker({ allowedOrigins: ['https://app.example.com'] });
    expect(await upgradeStatus(b.url)).toBe(101);
    expect(await upgradeStatus(b.url, 'https://app.example.com')).toBe(101);
    expect(await upgradeStatus(b.url, 'https://evil.example')).toBe(403);

    const post = (origin?: string): Promise<Response> =>
      fetch(httpUrl(b.url, '/publish/user.created'), { method: 'POST', body: 'x', headers: origin ? { Origin: origin } : {} });
    expect((await post()).status).toBe(202);
    expect((await post('https://app.example.com')).status).toBe(202);
    const refused = await post('https://evil.example');
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ code: 'forbidden_origin' });

    const sse = await fetch(httpUrl(b.url, '/events?channels=a.b'), { headers: { Origin: 'https://evil.example' } });
    expect(sse.status).toBe(403);
    expect(await sse.json()).toMatchObject({ code: 'forbidden_origin' });
    expect(b.stats().published).toBe(2); // the refused publish never happened
  });

  it('logs refused origins at warn, one line per origin and interval, and counts every refusal', async () => {
    const entries: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => entries.push(JSON.parse(line) as Record<string, unknown>) });
    const b = await startBroker({ logger, allowedOrigins: ['https://app.example.com'] });
    const refusedLines = (): Record<string, unknown>[] => entries.filter((e) => e['msg'] === 'refused: origin not in allowedOrigins');
    // A page retrying its handshake: six refusals, one line.
    for (let i = 0; i < 6; i++) expect(await upgradeStatus(b.url, 'https://evil.example')).toBe(403);
    expect(refusedLines()).toEqual([
      expect.objectContaining({ level: 40, reason: 'forbidden_origin', door: 'websocket', origin: 'https://evil.example', remoteAddress: expect.any(String) }),
    ]);
    // The same origin on another door is the same key; another origin gets its own line.
    const sse = await fetch(httpUrl(b.url, '/events?channels=a.b'), { headers: { Origin: 'https://evil.example' } });
    expect(sse.status).toBe(403);
    expect(await upgradeStatus(b.url, 'https://other.example')).toBe(403);
    expect(refusedLines().map((e) => e['origin'])).toEqual(['https://evil.example', 'https://other.example']);
    const metrics = await (await fetch(httpUrl(b.url, '/metrics'))).text();
    expect(metrics).toContain('crier_refused_total{reason="forbidden_origin"} 8\n');
    // Allowed pages and services are neither refused nor logged.
    expect(await upgradeStatus(b.url, 'https://app.example.com')).toBe(101);
    expect(await upgradeStatus(b.url)).toBe(101);
    expect(refusedLines()).toHaveLength(2);
  });

  it('allows the broker\'s own origin and loopback pages by default, and refuses other origins', async () => {
    const b = await startBroker();
    expect(await upgradeStatus(b.url, `http://127.0.0.1:${b.port}`)).toBe(101);
    expect(await upgradeStatus(b.url, 'http://localhost:5173')).toBe(101);
    expect(await upgradeStatus(b.url, 'https://anywhere.example')).toBe(403);
    const open = await startBroker({ allowedOrigins: ['*'] });
    expect(await upgradeStatus(open.url, 'https://anywhere.example')).toBe(101);
  });
});

describe('maxConnections counts SSE streams with sockets', () => {
  it('answers a stream past the limit with 503 and Retry-After', async () => {
    const b = await startBroker({ maxConnections: 2 });
    const open: ReturnType<typeof request>[] = [];
    for (let i = 0; i < 2; i++) {
      const req = request(httpUrl(b.url, '/events?channels=a.b'));
      req.on('error', () => {});
      req.end();
      open.push(req);
    }
    await waitFor('two SSE streams', () => b.stats().sseStreams === 2);
    const third = await fetch(httpUrl(b.url, '/events?channels=a.b'));
    expect(third.status).toBe(503);
    expect(third.headers.get('retry-after')).toBe('5');
    expect(await third.json()).toMatchObject({ code: 'too_many_connections' });
    expect(await upgradeStatus(b.url)).toBe(503);
    for (const req of open) req.destroy();
    await waitFor('the streams to be freed', () => b.stats().sseStreams === 0);
    expect(await upgradeStatus(b.url)).toBe(101);
  });
});
