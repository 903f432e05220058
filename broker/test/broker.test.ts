import { afterEach, describe, expect, it } from 'vitest';
import { CloseCode, CrierError, DEFAULT_MAX_PAYLOAD, FRAME_ENVELOPE_BYTES, FrameType, PROTOCOL_VERSION, type ErrorFrame } from '@crier/protocol';
import type { BrokerEvent } from '../src/index.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

afterEach(cleanup);

describe('hello', () => {
  it('answers with a welcome carrying version, uuid, keep-alive and limits', async () => {
    const b = await startBroker({ keepAliveInterval: 12_345, maxChannels: 7, maxPayload: 2048, bufferSize: 33 });
    const c = await RawClient.open(b.url);
    const welcome = await c.hello();
    expect(welcome).toEqual({
      t: FrameType.welcome,
      v: PROTOCOL_VERSION,
      u: expect.stringMatching(/^[A-Za-z0-9_-]{21}$/),
      ka: 12_345,
      lim: { mc: 7, mp: 2048, bs: 33, pr: 10_000, pb: 20_000 },
      s: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/),
      ep: expect.stringMatching(/^[A-Za-z0-9_-]{10}$/),
    });
    const chosen = await RawClient.open(b.url);
    expect((await chosen.hello('billing-worker_1')).u).toBe('billing-worker_1');
  });

  it('uses the documented defaults', async () => {
    const b = await startBroker();
    const welcome = await (await RawClient.open(b.url)).hello();
    expect(welcome.ka).toBe(30_000);
    expect(welcome.lim).toEqual({ mc: 100, mp: DEFAULT_MAX_PAYLOAD, bs: 1000, pr: 10_000, pb: 20_000 });
  });

  it('closes a socket that sends no hello in time with 4004', async () => {
    const b = await startBroker({ helloTimeout: 50 });
    const c = await RawClient.open(b.url);
    expect((await c.waitClose()).code).toBe(CloseCode.helloTimeout);
    await waitFor('the connection to be freed', () => b.stats().connections === 0);
  });
});

describe('publish and subscribe', () => {
  it('acknowledges subscribe and publish; the publish ack carries id, offset and epoch', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.url);
    expect(await c.request({ t: FrameType.subscribe, r: 0, p: 'user.created' })).toEqual({ t: FrameType.ack, r: 1 });
    const ack = await c.request({ t: FrameType.publish, c: 'user.created', d: text('hi') });
    expect(ack).toEqual({ t: FrameType.ack, r: 2, id: expect.any(String), o: 1, e: expect.any(String) });
    const [event] = await c.waitEvents(1);
    expect(event).toEqual({
      t: FrameType.event, c: 'user.created', d: text('hi'), id: ack.t === FrameType.ack ? ack.id : '',
      o: 1, e: ack.t === FrameType.ack ? ack.e : '', s: 1, ts: expect.any(Number),
    });
    expect(Math.abs(event!.ts - Date.now())).toBeLessThan(60_000);
  });

  it('two subscribers receive identical bytes, labels and key included', async () => {
    const b = await startBroker();
    const [s1, s2, pub] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url), RawClient.connect(b.url)]);
    await Promise.all([s1.subscribe('user.created'), s2.subscribe('user.*')]);
    const data = new Uint8Array([0, 1, 2, 250, 255]);
    pub.send({ t: FrameType.publish, c: 'user.created', d: data, l: ['a', 'b'], k: 'user-42' });
    const [[e1], [e2]] = await Promise.all([s1.waitEvents(1), s2.waitEvents(1)]);
    expect(e1).toEqual(e2);
    expect(e1).toMatchObject({ c: 'user.created', d: data, l: ['a', 'b'], k: 'user-42' });
    const raw = (c: RawClient): Buffer => c.raw[c.frames.findIndex((f) => f.t === FrameType.event)]!;
    expect(Buffer.compare(raw(s1), raw(s2))).toBe(0);
  });

  it('user.* matches one segment, user.> one or more, neither matches user', async () => {
    const b = await startBroker();
    const [star, rest, pub] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url), RawClient.connect(b.url)]);
    await star.subscribe('user.*');
    await rest.subscribe('user.>');
    for (const c of ['user.created', 'user.profile.updated', 'order.created', 'user', 'user.deleted', 'end.marker']) {
      await pub.request({ t: FrameType.publish, c, d: text(c) });
    }
    await Promise.all([star.subscribe('end.marker'), rest.subscribe('end.marker')]);
    pub.send({ t: FrameType.publish, c: 'end.marker', d: text('') });
    await Promise.all([star.waitEvents(1, 'end.marker'), rest.waitEvents(1, 'end.marker')]);
    const channels = (c: RawClient): string[] => c.events().filter((e) => e.c !== 'end.marker').map((e) => e.c);
    expect(channels(star)).toEqual(['user.created', 'user.deleted']);
    expect(channels(rest)).toEqual(['user.created', 'user.profile.updated', 'user.deleted']);
  });

  it('a connection whose several patterns match gets the event once', async () => {
    const b = await startBroker();
    const [sub, pub] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url)]);
    for (const p of ['user.created', 'user.*', 'user.>', '*.created', '>']) await sub.subscribe(p);
    await sub.subscribe('user.created'); // again: idempotent
    expect(b.stats().subscriptions).toBe(5);
    pub.send({ t: FrameType.publish, c: 'user.created', d: text('1') });
    pub.send({ t: FrameType.publish, c: 'order.created', d: text('2') });
    pub.send({ t: FrameType.publish, c: 'z.end', d: text('3') });
    await sub.waitEvents(1, 'z.end');
    expect(sub.events().map((e) => e.c)).toEqual(['user.created', 'order.created', 'z.end']);
    expect(b.stats()).toMatchObject({ published: 3, delivered: 3 });
  });

  it('unsubscribe stops delivery and is acknowledged even when not subscribed', async () => {
    const b = await startBroker();
    const [sub, pub] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url)]);
    await sub.subscribe('user.created');
    await sub.subscribe('order.created');
    expect(await sub.request({ t: FrameType.unsubscribe, r: 0, p: 'user.created' })).toMatchObject({ t: FrameType.ack });
    expect(await sub.request({ t: FrameType.unsubscribe, r: 0, p: 'never.held' })).toMatchObject({ t: FrameType.ack });
    pub.send({ t: FrameType.publish, c: 'user.created', d: text('not for you') });
    pub.send({ t: FrameType.publish, c: 'order.created', d: text('marker') });
    // One publisher's events arrive in order: with the marker here, the other would be too.
    await sub.waitEvents(1, 'order.created');
    expect(sub.events('user.created')).toHaveLength(0);
    expect(b.stats()).toMatchObject({ subscriptions: 1, channels: 1 });
  });

  it('offsets count per channel', async () => {
    const b = await startBroker();
    const pub = await RawClient.connect(b.url);
    const offsets: number[] = [];
    for (const c of ['a.x', 'a.x', 'b.x', 'a.x']) {
      const ack = await pub.request({ t: FrameType.publish, c, d: text('.') });
      if (ack.t === FrameType.ack) offsets.push(ack.o!);
    }
    expect(offsets).toEqual([1, 2, 1, 3]);
  });

  it('a fire-and-forget publish gets no ack, and its error comes without r', async () => {
    const b = await startBroker();
    const [sub, pub] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url)]);
    await sub.subscribe('x.y');
    pub.send({ t: FrameType.publish, c: 'x.y', d: text('1') });
    pub.send({ t: FrameType.publish, c: 'x.*', d: text('2') });
    const err = await pub.waitFrame('the error', (f) => f.t === FrameType.error);
    expect(err).toEqual({ t: FrameType.error, code: 'bad_channel', msg: expect.stringContaining('pattern') });
    await sub.waitEvents(1);
    expect(pub.frames.filter((f) => f.t === FrameType.ack)).toHaveLength(0);
  });
});

describe('limits', () => {
  it('max_channels refuses one subscription too many and keeps the connection', async () => {
    const b = await startBroker({ maxChannels: 2 });
    const c = await RawClient.connect(b.url);
    await c.subscribe('a.1');
    await c.subscribe('a.*');
    expect(await c.request({ t: FrameType.subscribe, r: 0, p: 'a.3' })).toEqual({
      t: FrameType.error, r: 3, code: 'max_channels', msg: expect.any(String),
    });
    await c.subscribe('a.1'); // held already: not a new one
    await c.request({ t: FrameType.unsubscribe, r: 0, p: 'a.1' });
    await c.subscribe('a.3');
  });

  it('data past maxPayload gets payload_too_large; a frame past the frame limit is closed with 1009', async () => {
    const b = await startBroker({ maxPayload: 1024 });
    const c = await RawClient.connect(b.url);
    const answer = (await c.request({ t: FrameType.publish, c: 'big.data', d: new Uint8Array(1025) })) as ErrorFrame;
    expect([answer.t, answer.r, answer.code]).toEqual([FrameType.error, 1, 'payload_too_large']);
    expect(await c.request({ t: FrameType.publish, c: 'big.data', d: new Uint8Array(1024) })).toMatchObject({ t: FrameType.ack, o: 1 });
    // Past maxPayload + envelope, ws itself refuses the message.
    c.send({ t: FrameType.publish, c: 'big.data', d: new Uint8Array(1024 + FRAME_ENVELOPE_BYTES + 1) });
    expect((await c.waitClose()).code).toBe(CloseCode.messageTooBig);
    await waitFor('the connection to be freed', () => b.stats().connections === 0);
  });

  it('labels and key out of bounds get bad_frame', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.url);
    const code = async (l?: string[], k?: string): Promise<string> => {
      const a = await c.request({ t: FrameType.publish, c: 'x.y', d: text(''), l, k });
      return a.t === FrameType.error ? a.code : 'ack';
    };
    expect(await code(Array.from({ length: 17 }, (_, i) => `l${i}`))).toBe('bad_frame');
    expect(await code([''])).toBe('bad_frame');
    expect(await code(['x'.repeat(65)])).toBe('bad_frame');
    expect(await code(undefined, 'k'.repeat(257))).toBe('bad_frame');
    expect(await code(Array.from({ length: 16 }, () => 'x'.repeat(64)), 'k'.repeat(256))).toBe('ack');
  });
});

describe('connection lifecycle', () => {
  it('quit frees subscriptions and the connection at once and closes with 1000', async () => {
    const b = await startBroker({ keepAliveInterval: 600_000 });
    const c = await RawClient.connect(b.url);
    await c.subscribe('user.*');
    await c.subscribe('order.>');
    expect(b.stats()).toMatchObject({ connections: 1, subscriptions: 2, channels: 2 });
    c.send({ t: FrameType.quit });
    expect((await c.waitClose()).code).toBe(CloseCode.normal);
    expect(b.stats()).toMatchObject({ connections: 0, subscriptions: 0, channels: 0 });
  });

  it('a second connection with the same uuid and its session secret replaces the first, which gets 4001', async () => {
    const b = await startBroker();
    const first = await RawClient.connect(b.url, 'worker-1');
    await first.subscribe('jobs.>');
    const second = await RawClient.connect(b.url, 'worker-1', first.welcome!.s);
    expect(second.welcome!.s).not.toBe(first.welcome!.s); // a new secret for the new holder
    const closed = await first.waitClose();
    expect(closed).toEqual({ code: CloseCode.replaced, reason: 'replaced: another connection took over this uuid' });
    expect(b.stats()).toMatchObject({ connections: 1, subscriptions: 0 });
    await second.subscribe('jobs.>');
    second.send({ t: FrameType.publish, c: 'jobs.new', d: text('still here') });
    await second.waitEvents(1);
  });

  it('a uuid is not a credential: a hello with a held uuid and no secret, or a wrong one, is refused and the holder stays', async () => {
    const b = await startBroker();
    const holder = await RawClient.connect(b.url, 'worker-2');
    await holder.subscribe('jobs.>');
    for (const secret of [undefined, 'x'.repeat(32), `${holder.welcome!.s.slice(0, -1)}é`]) {
      const stranger = await RawClient.open(b.url);
      stranger.send({ t: FrameType.hello, v: PROTOCOL_VERSION, u: 'worker-2', ...(secret === undefined ? {} : { s: secret }) });
      expect(await stranger.waitClose()).toEqual({
        code: CloseCode.helloRejected,
        reason: 'forbidden: uuid worker-2 is held by another connection; taking it over needs its session secret',
      });
    }
    expect(holder.closed).toBeUndefined();
    expect(b.stats()).toMatchObject({ connections: 1, subscriptions: 1 });
    holder.send({ t: FrameType.publish, c: 'jobs.new', d: text('still mine') });
    await holder.waitEvents(1);
  });

  it('the keep-alive frees a silent peer and keeps one that answers pings', async () => {
    const b = await startBroker({ keepAliveInterval: 50 });
    const healthy = await RawClient.connect(b.url);
    let pings = 0;
    healthy.ws.on('message', () => {
      const last = healthy.frames.at(-1);
      if (last?.t === FrameType.ping) {
        pings++;
        healthy.send({ t: FrameType.pong });
      }
    });
    const silent = await RawClient.connect(b.url);
    await silent.subscribe('a.b');
    expect((await silent.waitClose()).code).toBe(CloseCode.keepAliveTimeout);
    expect(silent.frames.filter((f) => f.t === FrameType.ping).length).toBeGreaterThanOrEqual(2);
    expect(b.stats()).toMatchObject({ connections: 1, subscriptions: 0 });
    // The healthy one lived through the same intervals, answering each ping.
    await waitFor('a few more pings to the healthy client', () => pings >= 5);
    expect(healthy.closed).toBeUndefined();
  });

  it('answers a client ping with a pong', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.url);
    c.send({ t: FrameType.ping });
    await c.waitFrame('pong', (f) => f.t === FrameType.pong);
  });

  it('close() tells every client 1001, resolves, and is idempotent', async () => {
    const b = await startBroker();
    const [c1, c2] = await Promise.all([RawClient.connect(b.url), RawClient.open(b.url)]);
    await c1.subscribe('a.b');
    const closing = b.close();
    expect(b.close()).toBe(closing);
    await closing;
    expect(c1.closed).toEqual({ code: CloseCode.goingAway, reason: 'broker shutting down' });
    expect((await c2.waitClose()).code).toBe(CloseCode.goingAway);
    expect(b.stats()).toMatchObject({ connections: 0, subscriptions: 0 });
    await expect(fetch(b.url.replace('ws', 'http') + 'healthz')).rejects.toThrow();
    await expect(b.publish('a.b', text('x'))).rejects.toMatchObject({ code: 'shutting_down' });
  });
});

describe('in-process', () => {
  it('publish and subscribe in the process share the semantics of remote clients', async () => {
    const b = await startBroker();
    const remote = await RawClient.connect(b.url);
    await remote.subscribe('user.>');
    const got: BrokerEvent[] = [];
    const sub = b.subscribe('user.*', (e) => got.push(e));
    const twice = b.subscribe('>', () => {}); // another subscriber: does not duplicate into `got`

    const result = await b.publish('user.created', text('local'), { labels: ['x'], key: 'k1' });
    expect(result).toEqual({ id: expect.any(String), offset: 1, epoch: expect.any(String) });
    expect(got).toHaveLength(0); // delivered in the flush, never inside publish
    await waitFor('the in-process event', () => got.length === 1);
    expect(got[0]).toEqual({ channel: 'user.created', data: text('local'), id: result.id, offset: 1, epoch: result.epoch, time: expect.any(Number), labels: ['x'], key: 'k1' });
    const [e] = await remote.waitEvents(1);
    expect(e).toMatchObject({ c: 'user.created', id: result.id, o: 1, e: result.epoch, l: ['x'], k: 'k1' });

    // A remote publish reaches the in-process subscriber as a plain Uint8Array.
    remote.send({ t: FrameType.publish, c: 'user.deleted', d: text('remote') });
    await waitFor('the remote event in process', () => got.length === 2);
    expect(got[1]!.data).toEqual(text('remote'));
    expect(got[1]!.data.constructor).toBe(Uint8Array);

    sub.unsubscribe();
    sub.unsubscribe();
    twice.unsubscribe();
    b.publish('user.updated', text('after'));
    await remote.waitEvents(3);
    expect(got).toHaveLength(2);
    expect(b.stats().subscriptions).toBe(1);
  });

  it('throws CrierError for a bad channel, a pattern, oversized data and a bad pattern', async () => {
    const b = await startBroker({ maxPayload: 16 });
    const code = (f: () => unknown): string => {
      try {
        f();
        return 'none';
      } catch (err) {
        return err instanceof CrierError ? err.code : String(err);
      }
    };
    const rejection = (p: Promise<unknown>): Promise<string> =>
      p.then(() => 'none', (err: unknown) => (err instanceof CrierError ? err.code : String(err)));
    expect(await rejection(b.publish('user.*', text('x')))).toBe('bad_channel');
    expect(await rejection(b.publish('user..x', text('x')))).toBe('bad_channel');
    expect(await rejection(b.publish('a.b', new Uint8Array(17)))).toBe('payload_too_large');
    expect(await rejection(b.publish('a.b', text('x'), { labels: [''] }))).toBe('bad_frame');
    expect(code(() => b.subscribe('a.>.b', () => {}))).toBe('bad_pattern');
  });

  it('a throwing handler does not stop delivery to others, and a handler may publish', async () => {
    const b = await startBroker();
    const seen: string[] = [];
    b.subscribe('a.*', () => {
      throw new Error('handler bug');
    });
    b.subscribe('a.*', (e) => {
      seen.push(e.channel);
      if (e.channel === 'a.first') b.publish('a.second', text(''));
    });
    b.publish('a.first', text(''));
    await waitFor('both events', () => seen.length === 2);
    expect(seen).toEqual(['a.first', 'a.second']);
  });
});

describe('offsets and epochs', () => {
  it('a channel whose counter was evicted restarts at 1 under a new epoch', async () => {
    const b = await startBroker({ channelCacheSize: 2 });
    const first = await b.publish('a.x', text(''));
    expect(await b.publish('a.x', text(''))).toMatchObject({ offset: 2, epoch: first.epoch });
    await b.publish('b.x', text(''));
    await b.publish('c.x', text('')); // evicts a.x, the least recently published
    const again = await b.publish('a.x', text(''));
    expect(again.offset).toBe(1);
    expect(again.epoch).not.toBe(first.epoch);
    expect((await b.publish('c.x', text(''))).offset).toBe(2);
  });

  it('publishing to 200k distinct unsubscribed channels keeps at most channelCacheSize counters', async () => {
    const b = await startBroker({ channelCacheSize: 1000 });
    const empty = new Uint8Array(0);
    const ids = new Set<string>();
    for (let i = 0; i < 200_000; i++) {
      const { id } = await b.publish(`load.c${i}`, empty);
      if (i % 1000 === 0) ids.add(id);
    }
    expect(ids.size).toBe(200);
    expect(b.stats()).toMatchObject({ published: 200_000, channelCounters: 1000, delivered: 0, channels: 0 });
  });
});
