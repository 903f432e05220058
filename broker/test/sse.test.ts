// GET /events (SSE), read with a small spec-following parser (sse-client.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { type Broker } from '../src/index.js';
import { encodeSseEvent } from '../src/transport/sse.js';
import { cleanup, startBroker, text, waitFor } from './helpers.js';
import { SseClient, closeStreams, type SseMessage } from './sse-client.js';

afterEach(async () => {
  closeStreams();
  await cleanup();
});

const eventsUrl = (b: Broker, query: string): string => `${b.url.replace(/^ws/, 'http').replace(/\/$/, '')}/events?${query}`;

describe('GET /events', () => {
  it('starts with retry and a subscribed event, then streams text events with id and channel', async () => {
    const b = await startBroker();
    const c = await SseClient.open(eventsUrl(b, 'channels=user.*,order.completed'));
    expect(c.res.statusCode).toBe(200);
    expect(c.res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const [subscribed] = await c.waitEvents('subscribed', 1);
    expect(JSON.parse(subscribed!.data)).toEqual({ channels: ['user.*', 'order.completed'], labels: [], labelMatch: 'any', keys: [] });
    expect(c.retry).toBe(2000);
    await waitFor('the stream to be counted', () => b.stats().sseStreams === 1);
    expect(b.stats().connections).toBe(0);
    b.publish('user.created', text('{"id":42}'));
    b.publish('order.completed', text('line one\nline two\r\nline three'));
    b.publish('order.created', text('not subscribed'));
    b.publish('user.created', text(''));
    await c.waitEvents('user.created', 2);
    await c.waitEvents('order.completed', 1);
    // Each id is the event's position in the broker's stream, <epoch>:<seq> (see sse-resume.test.ts).
    const at = (seq: number): unknown => expect.stringMatching(new RegExp(`^\\S+:${seq}$`));
    expect(c.of('user.created')).toEqual([{ event: 'user.created', data: '{"id":42}', id: at(1) }, { event: 'user.created', data: '', id: at(4) }]);
    expect(c.of('order.completed')).toEqual([{ event: 'order.completed', data: 'line one\nline two\nline three', id: at(2) }]);
    expect(c.of('order.created')).toEqual([]);
  });

  it('sends binary data, and text starting with base64:, as base64', async () => {
    const b = await startBroker();
    const c = await SseClient.open(eventsUrl(b, 'channels=bin.>'));
    await c.waitEvents('subscribed', 1);
    const bytes = new Uint8Array([0xff, 0x00, 0xc3, 0x28, 10, 13]);
    b.publish('bin.raw', bytes);
    b.publish('bin.tricky', text('base64:not really'));
    b.publish('bin.text', text('héllo ✓'));
    await c.waitEvents('bin.text', 1);
    expect(c.of('bin.raw')[0]!.data).toBe(`base64:${Buffer.from(bytes).toString('base64')}`);
    expect(c.of('bin.tricky')[0]!.data).toBe(`base64:${Buffer.from('base64:not really').toString('base64')}`);
    expect(c.of('bin.text')[0]!.data).toBe('héllo ✓');
    expect(encodeSseEvent('a.b', text('x\ny'), 7).toString()).toBe('id: 7\nevent: a.b\ndata: x\ndata: y\n\n');
  });

  it('applies label and key filters like a WebSocket subscription, and counts only what passed', async () => {
    const b = await startBroker();
    const any = await SseClient.open(eventsUrl(b, 'channels=o.*&labels=red,blue'));
    const all = await SseClient.open(eventsUrl(b, 'channels=o.*&labels=blue,red&labelMatch=all'));
    const keys = await SseClient.open(eventsUrl(b, 'channels=o.*&keys=k1&keys=k2'));
    const [s] = await all.waitEvents('subscribed', 1);
    expect(JSON.parse(s!.data)).toEqual({ channels: ['o.*'], labels: ['blue', 'red'], labelMatch: 'all', keys: [] });
    await Promise.all([any, keys].map((c) => c.waitEvents('subscribed', 1)));
    b.publish('o.x', text('1'), { labels: ['red'] });
    b.publish('o.x', text('2'), { labels: ['red', 'blue'], key: 'k2' });
    b.publish('o.x', text('3'), { key: 'k1' });
    b.publish('o.x', text('4'));
    b.publish('o.end', text('end'), { labels: ['red', 'blue'], key: 'k1' });
    await Promise.all([any, all, keys].map((c) => c.waitEvents('o.end', 1)));
    expect(any.of('o.x').map((m) => m.data)).toEqual(['1', '2']);
    expect(all.of('o.x').map((m) => m.data)).toEqual(['2']);
    expect(keys.of('o.x').map((m) => m.data)).toEqual(['2', '3']);
    expect(b.stats().delivered).toBe(5 + 3);
  });

  it('sends a keep-alive comment every keepAliveInterval', async () => {
    const b = await startBroker({ keepAliveInterval: 50 });
    const c = await SseClient.open(eventsUrl(b, 'channels=a.b'));
    await c.wait('two keep-alive comments', () => c.comments.filter((x) => x === 'keep-alive').length >= 2);
  });

  it('frees the stream when the client goes', async () => {
    const b = await startBroker();
    const c = await SseClient.open(eventsUrl(b, 'channels=a.b,a.*'));
    await c.waitEvents('subscribed', 1);
    expect(b.stats()).toMatchObject({ sseStreams: 1, subscriptions: 2 });
    c.close();
    await waitFor('the stream to be freed', () => b.stats().sseStreams === 0 && b.stats().subscriptions === 0);
  });

  it('ends streams when the broker closes', async () => {
    const b = await startBroker();
    const c = await SseClient.open(eventsUrl(b, 'channels=a.b'));
    await c.waitEvents('subscribed', 1);
    b.publish('a.b', text('last'));
    await b.close();
    await c.wait('the stream to end', () => c.ended);
    expect(c.of('a.b').map((m) => m.data)).toEqual(['last']);
  });

  it('answers a bad query with 400 and a stable code', async () => {
    const b = await startBroker({ maxChannels: 2 });
    const answer = async (query: string, method = 'GET'): Promise<[number, string]> => {
      const res = await fetch(eventsUrl(b, query), { method });
      const body = res.status === 405 ? { code: 'method_not_allowed' } : ((await res.json()) as { code: string });
      return [res.status, body.code];
    };
    expect(await answer('')).toEqual([400, 'bad_pattern']);
    expect(await answer('channels=')).toEqual([400, 'bad_pattern']);
    expect(await answer('channels=a..b')).toEqual([400, 'bad_pattern']);
    expect(await answer('channels=a,b,c')).toEqual([400, 'max_channels']);
    expect(await okStatus(b, 'channels=a,a,b')).toEqual([200, 'a,b']); // repeated patterns count once
    expect(await answer('channels=a&labelMatch=most')).toEqual([400, 'bad_filter']);
    expect(await answer(`channels=a&labels=${'x'.repeat(65)}`)).toEqual([400, 'bad_filter']);
    expect(await answer('channels=a&labels=a,,b')).toEqual([400, 'bad_filter']);
    expect(await answer(`channels=a&labels=${Array.from({ length: 17 }, (_, i) => i).join(',')}`)).toEqual([400, 'bad_filter']);
    expect(await answer('channels=a', 'POST')).toEqual([405, 'method_not_allowed']);
  });

  it('sends CORS headers for allowed origins only, and answers preflights', async () => {
    // CORS alone here: every origin may connect (allowedOrigins), only some may read (corsOrigins).
    const b = await startBroker({ corsOrigins: ['https://app.example.com'], allowedOrigins: ['*'] });
    const url = eventsUrl(b, 'channels=a');
    const ok = await SseClient.open(url, { Origin: 'https://app.example.com' });
    expect(ok.res.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(ok.res.headers['vary']).toBe('Origin');
    const other = await SseClient.open(url, { Origin: 'https://evil.example.com' });
    expect(other.res.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await fetch(url, { method: 'OPTIONS', headers: { Origin: 'https://app.example.com', 'Access-Control-Request-Method': 'GET' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('GET');
    const bad = await fetch(eventsUrl(b, 'channels=a..'), { headers: { Origin: 'https://app.example.com' } });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('access-control-allow-origin')).toBe('https://app.example.com');

    const star = await startBroker({ corsOrigins: ['*'], allowedOrigins: ['*'] });
    const s = await SseClient.open(eventsUrl(star, 'channels=a'), { Origin: 'https://anything.example' });
    expect(s.res.headers['access-control-allow-origin']).toBe('*');
    const none = await startBroker({ allowedOrigins: ['*'] });
    const n = await SseClient.open(eventsUrl(none, 'channels=a'), { Origin: 'https://app.example.com' });
    expect(n.res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('a stream that does not read loses events (counted, and told after it drains) while a reading one gets them all', async () => {
    const b = await startBroker({ bufferSize: 64, maxBufferBytes: 256 * 1024 });
    const fast = await SseClient.open(eventsUrl(b, 'channels=load.>'));
    const slow = await SseClient.open(eventsUrl(b, 'channels=load.>'));
    await Promise.all([fast, slow].map((c) => c.waitEvents('subscribed', 1)));
    slow.res.pause();
    slow.res.socket.pause();
    const payload = text('x'.repeat(16 * 1024));
    let published = 0;
    let batchesWhileSlow = 0;
    for (let batch = 0; batchesWhileSlow < 5; batch++) {
      if (batch === 400) throw new Error(`the paused stream never became slow after ${published} events`);
      for (let i = 0; i < 32; i++) b.publish('load.data', payload);
      published += 32;
      await fast.waitEvents('load.data', published);
      if (b.stats().slowConsumers === 1) batchesWhileSlow++;
    }
    const dropped = b.stats().dropped;
    expect(dropped).toBeGreaterThan(0);
    const seq = (m: SseMessage): number => Number(m.id.slice(m.id.lastIndexOf(':') + 1));
    expect(fast.of('load.data').map(seq)).toEqual(Array.from({ length: published }, (_, i) => i + 1));

    slow.res.socket.resume();
    slow.res.resume();
    const [notice] = await slow.waitEvents('dropped', 1);
    expect(JSON.parse(notice!.data)).toEqual({ n: dropped, channels: [['load.data', dropped]] });
    await waitFor('the slow stream to recover', () => b.stats().slowConsumers === 0);
    b.publish('load.end', text('end'));
    await slow.waitEvents('load.end', 1);
    const ids = slow.of('load.data').map(seq);
    expect(ids.length + dropped).toBe(published);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
  }, 60_000);
});

async function okStatus(b: Broker, query: string): Promise<[number, string]> {
  const c = await SseClient.open(eventsUrl(b, query));
  const [s] = await c.waitEvents('subscribed', 1);
  c.close();
  return [c.res.statusCode!, (JSON.parse(s!.data) as { channels: string[] }).channels.join(',')];
}
