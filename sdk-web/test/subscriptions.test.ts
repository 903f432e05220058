// Subscriptions, dispatch and async iterators, on scripted sockets and a manual clock.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, FrameType, type EventFrame } from '@crier/protocol';
import type { CrierEvent } from '../src/types.js';
import { catchRethrown } from './record.js';
import { scriptedClient } from './scripted-client.js';

afterEach(() => {
  vi.unstubAllGlobals();
});

function event(channel: string, n = 1): EventFrame {
  return { t: FrameType.event, c: channel, d: new Uint8Array([n]), id: `id-${n}`, o: n, e: 'E', ts: 1000 + n };
}

describe('dispatch', () => {
  it('an event matching two patterns reaches both handlers, and onEvent once', () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const seen: string[] = [];
    const stream: string[] = [];
    client.onEvent((e) => stream.push(e.channel));
    client.subscribe('user.*', (e) => seen.push(`star ${e.channel}`));
    client.subscribe('user.created', (e) => seen.push(`exact ${e.channel}`));
    client.subscribe('user.created', (e) => seen.push(`exact again ${e.channel}`));
    client.subscribe('order.>', (e) => seen.push(`order ${e.channel}`));
    socket().receive(event('user.created'));
    expect(seen).toEqual(['star user.created', 'exact user.created', 'exact again user.created']);
    expect(stream).toEqual(['user.created']);
  });

  it('maps every event field, labels and key included', () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const got: CrierEvent[] = [];
    client.subscribe('a.b', (e) => got.push(e));
    socket().receive({ ...event('a.b', 4), l: ['x', 'y'], k: 'key' });
    expect(got).toEqual([{ channel: 'a.b', data: new Uint8Array([4]), id: 'id-4', offset: 4, epoch: 'E', time: 1004, labels: ['x', 'y'], key: 'key' }]);
  });

  it('a handler that throws does not keep the others from their event; the error is re-thrown apart', () => {
    const thrown = catchRethrown();
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const seen: string[] = [];
    client.subscribe('a.b', () => {
      throw new Error('boom');
    });
    client.subscribe('a.*', (e) => seen.push(e.channel));
    client.onEvent(() => {
      throw new Error('bang');
    });
    socket().receive(event('a.b'));
    expect(seen).toEqual(['a.b']);
    expect(thrown.map((e) => (e as Error).message)).toEqual(['bang', 'boom']);
  });
});

describe('subscribe and unsubscribe', () => {
  it('handles on one pattern share one broker subscription; the last one to go unsubscribes', async () => {
    const { client, socket, welcome } = scriptedClient();
    const s = welcome();
    const a = client.subscribe('a.b');
    const b = client.subscribe('a.b');
    expect(s.sentOf(FrameType.subscribe)).toEqual([{ t: FrameType.subscribe, r: 1, p: 'a.b' }]);
    s.receive({ t: FrameType.ack, r: 1 });
    await Promise.all([a.ready, b.ready]);
    await a.unsubscribe();
    expect(s.sentOf(FrameType.unsubscribe)).toEqual([]);
    const gone = b.unsubscribe();
    expect(s.sentOf(FrameType.unsubscribe)).toEqual([{ t: FrameType.unsubscribe, r: 2, p: 'a.b' }]);
    socket().receive({ t: FrameType.ack, r: 2 });
    await gone;
  });

  it('unsubscribed before the ack: ready rejects with closed instead of hanging', async () => {
    const { client, welcome } = scriptedClient();
    const offline = client.subscribe('a.b');
    void offline.unsubscribe();
    await expect(offline.ready).rejects.toMatchObject({ code: ErrorCode.closed });
    const s = welcome();
    const online = client.subscribe('c.d');
    void online.unsubscribe();
    s.receive({ t: FrameType.ack, r: 1 }); // the subscribe's ack, then the unsubscribe's
    s.receive({ t: FrameType.ack, r: 2 });
    await expect(online.ready).rejects.toMatchObject({ code: ErrorCode.closed });
    expect(s.sentOf(FrameType.subscribe).map((f) => f.p)).toEqual(['c.d']);
  });

  it('client.unsubscribe(pattern) drops every handle of the pattern', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const seen: number[] = [];
    client.subscribe('a.b', () => seen.push(1));
    client.subscribe('a.b', () => seen.push(2));
    const done = client.unsubscribe('a.b');
    socket().receive({ t: FrameType.ack, r: 2 });
    await done;
    socket().receive(event('a.b'));
    expect(seen).toEqual([]);
    expect(socket().sentOf(FrameType.unsubscribe)).toHaveLength(1);
  });

  it('bad_pattern fails fast: ready rejects and nothing is sent', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const sub = client.subscribe('a.>.b');
    await expect(sub.ready).rejects.toMatchObject({ code: ErrorCode.badPattern });
    await expect(client.unsubscribe('a..b')).resolves.toBeUndefined();
    expect(socket().sentOf(FrameType.subscribe)).toEqual([]);
  });

  it('max_channels fails fast once the limit is known; the same pattern again is fine', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome({ lim: { mc: 2, mp: 1024, bs: 1 } });
    client.subscribe('a.1');
    client.subscribe('a.2');
    await expect(client.subscribe('a.3').ready).rejects.toMatchObject({ code: ErrorCode.maxChannels });
    client.subscribe('a.1');
    expect(socket().sentOf(FrameType.subscribe).map((f) => f.p)).toEqual(['a.1', 'a.2']);
  });

  it("before the limit is known the broker's answer decides, and a refused subscription is removed", async () => {
    const { client, welcome } = scriptedClient();
    const subs = ['a.1', 'a.2', 'a.3'].map((p) => client.subscribe(p, () => {}));
    const s = welcome({ lim: { mc: 2, mp: 1024, bs: 1 } });
    expect(s.sentOf(FrameType.subscribe).map((f) => f.p)).toEqual(['a.1', 'a.2', 'a.3']);
    s.receive({ t: FrameType.ack, r: 1 });
    s.receive({ t: FrameType.ack, r: 2 });
    s.receive({ t: FrameType.error, r: 3, code: ErrorCode.maxChannels, msg: 'full' });
    await expect(subs[2]!.ready).rejects.toMatchObject({ code: ErrorCode.maxChannels, message: 'full' });
    await Promise.all([subs[0]!.ready, subs[1]!.ready]);
    const unsubscribed = client.unsubscribe('a.1');
    s.receive({ t: FrameType.ack, r: 4 });
    await unsubscribed;
    client.subscribe('a.3'); // room again, and the failed one left no trace
    expect(s.sentOf(FrameType.subscribe).map((f) => f.p)).toEqual(['a.1', 'a.2', 'a.3', 'a.3']);
  });

  it('a subscribe without an answer rejects with timeout and is cleaned up on the broker', async () => {
    const { client, socket, clock, welcome } = scriptedClient({ requestTimeout: 500 });
    welcome({ ka: 0 });
    const sub = client.subscribe('a.b');
    clock.advance(500);
    await expect(sub.ready).rejects.toMatchObject({ code: ErrorCode.timeout });
    expect(socket().sentOf(FrameType.unsubscribe).map((f) => f.p)).toEqual(['a.b']);
  });
});

describe('subscriptions survive reconnects', () => {
  it('every pattern is subscribed again after each welcome; a refusal then is an error event', async () => {
    const { client, socket, clock, welcome, rec } = scriptedClient();
    const first = welcome();
    const kept = client.subscribe('a.*');
    const refusedLater = client.subscribe('b.*');
    first.receive({ t: FrameType.ack, r: 1 });
    first.receive({ t: FrameType.ack, r: 2 });
    await Promise.all([kept.ready, refusedLater.ready]);
    first.fireClose(1001);
    clock.advance(1000);
    const second = welcome();
    expect(second.sentOf(FrameType.subscribe).map((f) => f.p)).toEqual(['a.*', 'b.*']);
    second.receive({ t: FrameType.ack, r: 3 });
    second.receive({ t: FrameType.error, r: 4, code: ErrorCode.maxChannels, msg: 'full' });
    expect(rec.errors).toHaveLength(1);
    expect(rec.errors[0]).toMatchObject({ code: ErrorCode.maxChannels });
    expect(rec.errors[0]!.message).toContain('"b.*"');
    const seen: string[] = [];
    client.onEvent((e) => seen.push(e.channel));
    const iterated = refusedLater[Symbol.asyncIterator]();
    await expect(iterated.next()).rejects.toMatchObject({ code: ErrorCode.maxChannels });
    socket().receive(event('a.x'));
    expect(seen).toEqual(['a.x']);
  });

  it('a subscribe in flight when the connection drops is sent again, and its ready waits for that', async () => {
    const { client, clock, welcome } = scriptedClient();
    const first = welcome();
    const sub = client.subscribe('a.b');
    first.fireClose(1006);
    clock.advance(1000);
    const second = welcome();
    second.receive({ t: FrameType.ack, r: 2 });
    await sub.ready;
  });
});

describe('async iterator', () => {
  it('yields events in order; break unsubscribes', async () => {
    const { client, welcome } = scriptedClient();
    const s = welcome();
    const sub = client.subscribe('x.*');
    s.receive({ t: FrameType.ack, r: 1 });
    const got: number[] = [];
    const consumer = (async () => {
      for await (const e of sub) {
        got.push(e.offset);
        if (got.length === 2) break;
      }
    })();
    for (let i = 1; i <= 3; i++) s.receive(event('x.y', i));
    await consumer;
    expect(got).toEqual([1, 2]);
    expect(s.sentOf(FrameType.unsubscribe)).toEqual([{ t: FrameType.unsubscribe, r: 2, p: 'x.*' }]);
  });

  it('ends when the subscription is unsubscribed, or the client quits', async () => {
    const { client, welcome } = scriptedClient();
    const s = welcome();
    const byHandle = client.subscribe('a.b');
    const byPattern = client.subscribe('c.d');
    const byQuit = client.subscribe('e.f');
    const drain = async (it: AsyncIterable<CrierEvent>): Promise<number> => {
      let n = 0;
      for await (const _ of it) n++;
      return n;
    };
    const ends = [drain(byHandle), drain(byPattern), drain(byQuit)];
    s.receive(event('a.b'));
    void byHandle.unsubscribe();
    void client.unsubscribe('c.d');
    void client.quit();
    s.fireClose(1000);
    expect(await Promise.all(ends)).toEqual([1, 0, 0]);
  });

  it('keeps the newest events when its buffer is full, and reports each discarded one', async () => {
    const { client, welcome, rec } = scriptedClient({ iteratorBufferSize: 2 });
    const s = welcome();
    const iterator = client.subscribe('x.*')[Symbol.asyncIterator]();
    for (let i = 1; i <= 5; i++) s.receive(event('x.y', i));
    expect(rec.dropped).toEqual([1, 2, 3].map(() => ({ total: 1, channels: new Map([['x.y', 1]]), source: 'iterator' })));
    expect((await iterator.next()).value?.offset).toBe(4);
    expect((await iterator.next()).value?.offset).toBe(5);
  });

  it('of a refused subscription throws its error', async () => {
    const { client, welcome } = scriptedClient();
    welcome();
    const iterator = client.subscribe('bad..pattern')[Symbol.asyncIterator]();
    await expect(iterator.next()).rejects.toMatchObject({ code: ErrorCode.badPattern });
    await expect(iterator.next()).resolves.toEqual({ done: true, value: undefined });
  });
});

describe('dropped notices', () => {
  it("the broker's slow-consumer notice surfaces as a 'dropped' event", () => {
    const { socket, welcome, rec } = scriptedClient();
    welcome();
    socket().receive({ t: FrameType.dropped, n: 7, c: [['a.b', 5], ['c.d', 2]] });
    expect(rec.dropped).toEqual([{ total: 7, channels: new Map([['a.b', 5], ['c.d', 2]]), source: 'broker' }]);
  });
});
