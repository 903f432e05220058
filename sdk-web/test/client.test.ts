// The SDK over real sockets against the fake broker (ws on 127.0.0.1, a free port).
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CloseCode, ErrorCode, FrameType } from '@crier/protocol';
import { connect } from '../src/full.js';
import type { ClientOptions, CrierClientFull } from '../src/types.js';
import { startFakeBroker, type FakeBroker, type FakeBrokerOptions } from './fake-broker.js';
import { ManualClock } from './manual-clock.js';
import { record } from './record.js';
import { changed, waitFor } from './wait-for.js';

const brokers: FakeBroker[] = [];
const clients: CrierClientFull[] = [];

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.quit()));
  await Promise.allSettled(brokers.splice(0).map((b) => b.close()));
});

async function broker(options: FakeBrokerOptions = {}): Promise<FakeBroker> {
  const b = await startFakeBroker(options);
  brokers.push(b);
  return b;
}

/** A client on `ws`, reconnecting at once (random() = 0) so tests never wait for a backoff. */
function client(b: FakeBroker, options: ClientOptions = {}): CrierClientFull {
  const c = connect(b.url, { WebSocket, random: () => 0, ...options });
  clients.push(c);
  return c;
}

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

describe('handshake', () => {
  it('says hello, gets welcomed, and takes the uuid and limits from the welcome', async () => {
    const b = await broker({ maxChannels: 7, maxPayload: 4096, bufferSize: 50, keepAlive: 30_000 });
    const c = client(b);
    expect(c.state).toBe('connecting');
    await waitFor('ready', c.ready());
    expect(b.connections[0]!.frames[0]).toEqual({ t: FrameType.hello, v: 1 });
    expect(c.state).toBe('connected');
    expect(c.uuid).toBe('fake-1');
    expect(c.limits).toEqual({ maxChannels: 7, maxPayload: 4096, bufferSize: 50, keepAliveInterval: 30_000 });
  });

  it('asks for a chosen uuid', async () => {
    const b = await broker();
    const c = client(b, { uuid: 'worker-7' });
    await waitFor('ready', c.ready());
    expect(b.connections[0]!.frames[0]).toEqual({ t: FrameType.hello, v: 1, u: 'worker-7' });
    expect(c.uuid).toBe('worker-7');
  });
});

describe('publish', () => {
  it('resolves with the ack {id, offset, epoch}; offsets count per channel', async () => {
    const b = await broker();
    const c = client(b);
    const acks = [];
    for (const ch of ['a.x', 'a.x', 'b.x']) acks.push(await waitFor(`ack on ${ch}`, c.publish(ch, bytes(1))));
    expect(acks).toEqual([
      { id: 'ev-1', offset: 1, epoch: 'E1' },
      { id: 'ev-2', offset: 2, epoch: 'E1' },
      { id: 'ev-3', offset: 1, epoch: 'E1' },
    ]);
  });

  it('fire-and-forget sends no request id, and its events still arrive', async () => {
    const b = await broker();
    const c = client(b);
    const rec = record(c);
    await waitFor('subscribed', c.subscribe('a.*').ready);
    await c.publish('a.b', bytes(5), { ack: false });
    await waitFor('the event', () => rec.events.length === 1);
    expect(b.connections[0]!.received(FrameType.publish)).toEqual([{ t: FrameType.publish, c: 'a.b', d: bytes(5) }]);
    expect(rec.events[0]).toMatchObject({ channel: 'a.b', data: bytes(5), offset: 1 });
  });

  it("the broker's error frames reject with their code; one for a fire-and-forget publish is an error event", async () => {
    const b = await broker({
      intercept: (conn, f) => {
        if (f.t !== FrameType.publish || f.c !== 'refused.here') return false;
        conn.send({ t: FrameType.error, r: f.r, code: ErrorCode.internal, msg: 'nope' });
        return true;
      },
    });
    const c = client(b);
    const rec = record(c);
    await expect(waitFor('the refusal', c.publish('refused.here', bytes(1)))).rejects.toMatchObject({ code: 'internal', message: 'nope' });
    await c.publish('refused.here', bytes(1), { ack: false });
    await waitFor('the error event', () => rec.errors.length === 1);
    expect(rec.errors[0]).toMatchObject({ code: 'internal', requestId: undefined });
    await expect(waitFor('the refusal', c.subscribe('x.*').ready)).resolves.toBeUndefined();
  });

  it('local checks fail fast with bad_channel, bad_pattern, payload_too_large and max_channels', async () => {
    const b = await broker({ maxPayload: 16, maxChannels: 1 });
    const c = client(b);
    await waitFor('ready', c.ready());
    await expect(c.publish('a.*', bytes(1))).rejects.toMatchObject({ code: ErrorCode.badChannel });
    await expect(c.subscribe('a..b').ready).rejects.toMatchObject({ code: ErrorCode.badPattern });
    await expect(c.publish('a.b', new Uint8Array(17))).rejects.toMatchObject({ code: ErrorCode.payloadTooLarge });
    await waitFor('first subscription', c.subscribe('a.b').ready);
    await expect(c.subscribe('a.c').ready).rejects.toMatchObject({ code: ErrorCode.maxChannels });
    // Nothing of it reached the broker.
    const sent = b.connections[0]!.frames.map((f) => f.t);
    expect(sent).toEqual([FrameType.hello, FrameType.subscribe]);
  });
});

describe('reconnect', () => {
  it('after the broker closes with 1001: reconnects with the same uuid, resubscribes, and receives again', async () => {
    const b = await broker();
    const c = client(b);
    const rec = record(c);
    const got: string[] = [];
    await waitFor('subscribed', c.subscribe('user.*', (e) => (got.push(e.channel), changed())).ready);
    const uuid = c.uuid;

    b.connections[0]!.close(CloseCode.goingAway, 'restart');
    await waitFor('a second welcome', () => b.connections.length === 2 && c.state === 'connected');
    const second = b.connections[1]!;
    expect(second.frames[0]).toEqual({ t: FrameType.hello, v: 1, u: uuid, s: `secret-${uuid}` }); // with the stream's secret
    await waitFor('the resubscribe', () => second.patterns.has('user.*'));
    expect(rec.states.map(([s]) => s)).toEqual(['connected', 'reconnecting', 'connected']);
    expect(rec.states[1]![1]).toEqual({ code: 1001, reason: 'restart' });

    b.publish('user.created', bytes(1));
    await waitFor('the event after the reconnect', () => got.length === 1);
  });

  it('a publish in flight when the socket drops is resent once with the same id and resolves once; the broker delivers it once', async () => {
    // The first connection takes the publish (delivers it) and drops before its ack.
    const b: FakeBroker = await broker({
      intercept: (conn, f) => {
        if (f.t !== FrameType.publish || conn !== b.connections[1]) return false;
        b.accept(f);
        conn.close(CloseCode.internalError);
        return true;
      },
    });
    const watcher = client(b);
    const seen = record(watcher);
    await waitFor('the watcher subscribed', watcher.subscribe('a.*').ready);
    const c = client(b);
    await waitFor('ready', c.ready());
    const settled: unknown[] = [];
    const inFlight = c.publish('a.b', bytes(1)).then((ack) => (settled.push(ack), ack), (err: unknown) => (settled.push(err), Promise.reject(err)));
    const ack = await waitFor('the ack after the reconnect', inFlight);
    const [sent] = b.connections[1]!.received(FrameType.publish);
    expect(b.connections[2]!.received(FrameType.publish)).toEqual([{ ...sent, r: expect.any(Number) }]);
    expect(ack).toEqual({ id: 'ev-1', offset: 1, epoch: 'E1' }); // the first one's
    expect(settled).toEqual([ack]);
    expect(b.log).toHaveLength(1);
    await c.publish('a.b', bytes(2)); // in order behind it on the watcher's stream
    await waitFor('the next event', () => seen.events.length === 2);
    expect(seen.events.map((e) => e.data)).toEqual([bytes(1), bytes(2)]);
  });

  it.each([
    ['replaced (4001)', CloseCode.replaced],
    ['hello rejected (4002)', CloseCode.helloRejected],
    ['normal (1000)', CloseCode.normal],
  ])('does not reconnect after %s: closed, ready() rejects, nothing scheduled', async (_name, code) => {
    const b = await broker();
    const clock = new ManualClock(); // proves no retry is scheduled: no timer is left
    const c = client(b, { timers: clock });
    const rec = record(c);
    await waitFor('ready', c.ready());
    b.connections[0]!.close(code, 'bye');
    await waitFor('closed', () => c.state === 'closed');
    expect(rec.states.at(-1)).toEqual(['closed', { code, reason: 'bye' }]);
    expect(clock.pending()).toEqual([]);
    await expect(c.ready()).rejects.toMatchObject({ code: ErrorCode.closed });
    expect(b.connections).toHaveLength(1);
  });

  it('a second client with the same uuid replaces the first, which closes for good', async () => {
    const b = await broker();
    const first = client(b, { uuid: 'same' });
    const rec = record(first);
    await waitFor('first ready', first.ready());
    const second = client(b, { uuid: 'same' });
    await waitFor('second ready', second.ready());
    await waitFor('the first closed', () => first.state === 'closed');
    expect(rec.states.at(-1)![1].code).toBe(CloseCode.replaced);
    expect(b.connections).toHaveLength(2);
  });

  it('a broker that goes silent is declared dead by the keep-alive, and the client reconnects', async () => {
    const b = await broker({ keepAlive: 100, ping: true });
    const c = client(b);
    const rec = record(c);
    await waitFor('ready', c.ready());
    b.connections[0]!.silent = true; // the socket stays open, nothing comes through it
    await waitFor('the reconnect', () => b.connections.length === 2 && c.state === 'connected');
    expect(rec.states[1]).toEqual(['reconnecting', { code: CloseCode.keepAliveTimeout, reason: expect.stringContaining('keep-alive') }]);
    expect(b.connections[1]!.frames[0]).toMatchObject({ t: FrameType.hello, u: c.uuid });
  });
});

describe('offline', () => {
  it("'queue': a publish made while reconnecting is sent after the welcome", async () => {
    const b = await broker();
    const c = client(b);
    await waitFor('ready', c.ready());
    let queued: Promise<unknown> | undefined;
    c.on('state', (s) => {
      if (s === 'reconnecting') queued = c.publish('late.news', bytes(9));
    });
    b.connections[0]!.close(CloseCode.goingAway);
    await waitFor('the queued publish at the new connection', () => b.connections[1]?.received(FrameType.publish).length === 1);
    await expect(waitFor('its ack', queued!)).resolves.toMatchObject({ offset: 1 });
  });

  it("'fail': a publish while not connected rejects with disconnected", async () => {
    const b = await broker();
    const c = client(b, { offline: 'fail' });
    await expect(c.publish('a.b', bytes(1))).rejects.toMatchObject({ code: ErrorCode.disconnected });
    await waitFor('ready', c.ready());
    await expect(waitFor('ack', c.publish('a.b', bytes(1)))).resolves.toMatchObject({ offset: 1 });
  });
});

describe('events', () => {
  it("a slow-consumer notice surfaces as a 'dropped' event", async () => {
    const b = await broker();
    const c = client(b);
    const rec = record(c);
    await waitFor('ready', c.ready());
    b.connections[0]!.send({ t: FrameType.dropped, n: 3, c: [['a.b', 3]] });
    await waitFor('the notice', () => rec.dropped.length === 1);
    expect(rec.dropped[0]).toEqual({ total: 3, channels: new Map([['a.b', 3]]), source: 'broker' });
  });

  it('the async iterator yields events, and break unsubscribes', async () => {
    const b = await broker();
    const c = client(b);
    const sub = c.subscribe('feed.*');
    await waitFor('subscribed', sub.ready);
    const got: string[] = [];
    const reading = (async () => {
      for await (const e of sub) {
        got.push(new TextDecoder().decode(e.data));
        if (got.length === 2) break;
      }
    })();
    for (const t of ['one', 'two', 'three']) b.publish('feed.x', new TextEncoder().encode(t));
    await waitFor('the loop to end', reading);
    expect(got).toEqual(['one', 'two']);
    await waitFor('the unsubscribe at the broker', () => !b.connections[0]!.patterns.has('feed.*'));
    expect(b.connections[0]!.received(FrameType.unsubscribe)).toEqual([{ t: FrameType.unsubscribe, r: 2, p: 'feed.*' }]);
  });
});

describe('quit', () => {
  it('sends quit, the broker closes with 1000, and quit() resolves once the socket closed', async () => {
    const b = await broker();
    const c = client(b);
    await waitFor('ready', c.ready());
    await waitFor('quit', c.quit());
    expect(c.state).toBe('closed');
    const conn = b.connections[0]!;
    expect(conn.frames.at(-1)).toEqual({ t: FrameType.quit });
    await waitFor('the close at the broker', () => conn.closed);
    expect(conn.closed!.code).toBe(1000);
    await expect(c.ready()).rejects.toMatchObject({ code: ErrorCode.closed });
  });

  it('before the socket even opened: resolves, and nothing is left behind', async () => {
    const b = await broker();
    const c = client(b);
    await waitFor('quit', c.quit());
    expect(c.state).toBe('closed');
  });
});
