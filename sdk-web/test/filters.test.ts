// Subscriptions with server-side filters: identity, frames, local dispatch, reconnects.
import { describe, expect, it } from 'vitest';
import { ErrorCode, FrameType, type EventFrame } from '@crier/protocol';
import { connect } from '../src/index.js';
import { withFilters } from '../src/filter.js';
import { ManualClock } from './manual-clock.js';
import { scriptedClient } from './scripted-client.js';
import { scriptedWebSocket } from './scripted-socket.js';

function event(channel: string, n: number, l?: string[], k?: string): EventFrame {
  const f: EventFrame = { t: FrameType.event, c: channel, d: new Uint8Array([n]), id: `id-${n}`, o: n, e: 'E', ts: 1000 + n };
  if (l) f.l = l;
  if (k) f.k = k;
  return f;
}

describe('subscribe with a filter', () => {
  it('sends the canonical filter in f; (pattern, filter) is one subscription, whatever the spelling', () => {
    const { client, welcome } = scriptedClient();
    const s = welcome();
    client.subscribe('a.*', { labels: ['y', 'x', 'y'], allLabels: true });
    client.subscribe('a.*', { labels: ['x', 'y'], allLabels: true }); // the same
    client.subscribe('a.*', { keys: ['k2', 'k1'] });
    client.subscribe('a.*', { labels: [], keys: [] }, () => {}); // no filter
    expect(s.sentOf(FrameType.subscribe)).toEqual([
      { t: FrameType.subscribe, r: 1, p: 'a.*', f: { l: ['x', 'y'], la: true } },
      { t: FrameType.subscribe, r: 2, p: 'a.*', f: { k: ['k1', 'k2'] } },
      { t: FrameType.subscribe, r: 3, p: 'a.*' },
    ]);
  });

  it('each handler gets only the events its own pattern and filter pass; onEvent gets every one once', () => {
    const { client, socket, welcome } = scriptedClient({});
    welcome({ lim: { mc: 10, mp: 1024, bs: 100 } });
    const seen: string[] = [];
    const stream: number[] = [];
    client.onEvent((e) => stream.push(e.offset));
    client.subscribe('a.*', { labels: ['red', 'blue'] }, (e) => seen.push(`any ${e.offset}`));
    client.subscribe('a.*', { labels: ['red', 'blue'], allLabels: true }, (e) => seen.push(`all ${e.offset}`));
    client.subscribe('a.>', { keys: ['k'] }, (e) => seen.push(`key ${e.offset}`));
    client.subscribe('a.b', { labels: ['red'], keys: ['k'] }, (e) => seen.push(`both ${e.offset}`));
    client.subscribe('a.b', (e) => seen.push(`plain ${e.offset}`));
    const s = socket();
    s.receive(event('a.b', 1, ['red']));
    s.receive(event('a.b', 2, ['blue', 'red'], 'k'));
    s.receive(event('a.c', 3, undefined, 'k'));
    s.receive(event('a.c', 4, ['green']));
    expect(seen).toEqual([
      'any 1', 'plain 1',
      'any 2', 'all 2', 'key 2', 'both 2', 'plain 2',
      'key 3',
    ]);
    expect(stream).toEqual([1, 2, 3, 4]);
  });

  it('unsubscribe(pattern) drops every filter of the pattern; a handle drops its own', async () => {
    const { client, socket, welcome } = scriptedClient();
    const s = welcome();
    const red = client.subscribe('a.b', { labels: ['red'] });
    client.subscribe('a.b', { keys: ['k'] });
    client.subscribe('c.d');
    for (let r = 1; r <= 3; r++) s.receive({ t: FrameType.ack, r });
    const one = red.unsubscribe();
    expect(s.sentOf(FrameType.unsubscribe)).toEqual([{ t: FrameType.unsubscribe, r: 4, p: 'a.b', f: { l: ['red'] } }]);
    s.receive({ t: FrameType.ack, r: 4 });
    await one;
    const all = client.unsubscribe('a.b');
    expect(s.sentOf(FrameType.unsubscribe).slice(1)).toEqual([{ t: FrameType.unsubscribe, r: 5, p: 'a.b', f: { k: ['k'] } }]);
    socket().receive({ t: FrameType.ack, r: 5 });
    await all;
  });

  it('filters count against maxChannels and are sent again, with their filter, after a reconnect', async () => {
    const { client, clock, welcome } = scriptedClient();
    const first = welcome(); // mc: 3
    client.subscribe('a.*', { labels: ['x'] });
    client.subscribe('a.*', { labels: ['y'] });
    client.subscribe('a.*');
    const over = client.subscribe('a.*', { keys: ['k'] });
    await expect(over.ready).rejects.toMatchObject({ code: ErrorCode.maxChannels });
    first.fireClose(1001);
    clock.advance(1000);
    const second = welcome();
    expect(second.sentOf(FrameType.subscribe).map((f) => [f.p, f.f])).toEqual([
      ['a.*', { l: ['x'] }],
      ['a.*', { l: ['y'] }],
      ['a.*', undefined],
    ]);
  });

  it('a filter out of bounds rejects ready with bad_filter and sends nothing', async () => {
    const { client, welcome } = scriptedClient();
    const s = welcome();
    const tooMany = client.subscribe('a.b', { labels: Array.from({ length: 17 }, (_, i) => `l${i}`) });
    const empty = client.subscribe('a.b', { keys: [''] });
    await expect(tooMany.ready).rejects.toMatchObject({ code: ErrorCode.badFilter });
    await expect(empty.ready).rejects.toMatchObject({ code: ErrorCode.badFilter });
    expect(s.sentOf(FrameType.subscribe)).toEqual([]);
  });
});

describe('filters in the core client', () => {
  function coreClient() {
    const { WebSocket, sockets } = scriptedWebSocket();
    const client = connect('ws://broker.test', { WebSocket, timers: new ManualClock(), lifecycle: false });
    sockets[0]!.open();
    sockets[0]!.receive({ t: FrameType.welcome, v: 1, u: 'u1', ka: 0, lim: { mc: 10, mp: 1024, bs: 100 }, s: 'S' });
    return { client, socket: sockets[0]! };
  }

  it('a filtered subscribe fails with bad_filter, naming withFilters(), and sends nothing', async () => {
    const { client, socket } = coreClient();
    const sub = client.subscribe('a.*', { labels: ['x'] }, () => {});
    await expect(sub.ready).rejects.toMatchObject({ code: ErrorCode.badFilter, message: expect.stringContaining('withFilters()') });
    expect(socket.sentOf(FrameType.subscribe)).toEqual([]);
  });

  it('withFilters(client) lets it subscribe with the canonical filter', () => {
    const { client, socket } = coreClient();
    expect(withFilters(client)).toBe(client);
    client.subscribe('a.*', { labels: ['y', 'x'] });
    expect(socket.sentOf(FrameType.subscribe)).toEqual([{ t: FrameType.subscribe, r: 1, p: 'a.*', f: { l: ['x', 'y'] } }]);
  });
});

describe('queue groups', () => {
  it('sends the group in g; with and without a group (or another group) are separate subscriptions, renewed with it', () => {
    const { client, socket, welcome, clock } = scriptedClient();
    welcome();
    client.subscribe('job.*', () => {}, { group: 'workers' });
    client.subscribe('job.*', () => {}, { group: 'workers' }); // the same subscription
    client.subscribe('job.*', () => {}, { group: 'auditors' });
    client.subscribe('job.*', () => {});
    expect(socket().sentOf(FrameType.subscribe)).toEqual([
      { t: FrameType.subscribe, r: 1, p: 'job.*', g: 'workers' },
      { t: FrameType.subscribe, r: 2, p: 'job.*', g: 'auditors' },
      { t: FrameType.subscribe, r: 3, p: 'job.*' },
    ]);
    socket().fireClose(1006);
    clock.advance(60_000);
    const s = welcome();
    expect(s.sentOf(FrameType.subscribe).map((f) => f.g)).toEqual(['workers', 'auditors', undefined]);
  });
});
