// Connection lifecycle on scripted sockets and a manual clock: exact, no network, no waiting.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CloseCode, ErrorCode, FrameType, encodeFrame } from '@crier/protocol';
import { connect } from '../src/client.js';
import { tick } from './wait-for.js';
import { scriptedClient } from './scripted-client.js';

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('handshake', () => {
  it('sends hello on open and becomes connected at the welcome, with uuid and limits', async () => {
    const { client, socket, welcome, rec } = scriptedClient();
    expect(client.state).toBe('connecting');
    expect(socket().binaryType).toBe('arraybuffer');
    socket().open();
    expect(socket().sent).toEqual([{ t: FrameType.hello, v: 1 }]);
    const ready = client.ready();
    welcome({ ka: 2000 });
    await ready;
    expect(client.state).toBe('connected');
    expect(client.uuid).toBe('uuid-1');
    expect(client.limits).toEqual({ maxChannels: 3, maxPayload: 1024, bufferSize: 100, keepAliveInterval: 2000 });
    expect(rec.states).toEqual([['connected', {}]]);
    await client.ready(); // resolves at once when connected
  });

  it('takes a stream over with options.uuid and options.secret, then keeps the secret of its own welcome', () => {
    const { client, socket, welcome } = scriptedClient({ uuid: 'mine', secret: 'held-secret' });
    socket().open();
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, u: 'mine', s: 'held-secret' }]);
    welcome({ u: 'mine', s: 'new-secret' });
    expect(client.secret).toBe('new-secret');
  });

  it('asks for options.uuid, then reconnects with the uuid the broker gave', () => {
    const { socket, welcome, clock, sockets } = scriptedClient({ uuid: 'mine' });
    socket().open();
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, u: 'mine' }]);
    welcome({ u: 'assigned' });
    socket().fireClose(CloseCode.goingAway);
    clock.advance(1000);
    expect(sockets).toHaveLength(2);
    socket().open();
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, u: 'assigned', s: 'secret-1' }]);
  });

  it('abandons a socket without a welcome after requestTimeout, and tries again', () => {
    const { client, socket, clock, sockets, rec } = scriptedClient({ requestTimeout: 3000 });
    socket().open();
    clock.advance(2999);
    expect(client.state).toBe('connecting');
    clock.advance(1);
    expect(client.state).toBe('reconnecting');
    expect(rec.states[0]![1].code).toBe(CloseCode.helloTimeout);
    expect(sockets[0]!.closeCalls).toHaveLength(1);
    clock.advance(1000);
    expect(sockets).toHaveLength(2);
  });

  it('throws an actionable TypeError when there is no WebSocket', () => {
    vi.stubGlobal('WebSocket', undefined);
    expect(() => connect('ws://x')).toThrow(TypeError);
    expect(() => connect('ws://x')).toThrow('pass options.WebSocket (in Node use @crier/sdk-node)');
  });

  it('throws a RangeError naming a bad option', () => {
    const { WebSocket } = { WebSocket: class {} as never };
    expect(() => connect('ws://x', { WebSocket, requestTimeout: -1 })).toThrow('options.requestTimeout');
  });
});

describe('reconnect', () => {
  it('waits a full-jitter backoff delay between attempts, and resets it after a welcome', () => {
    const { client, socket, clock, welcome, rec } = scriptedClient({ random: () => 0.5 });
    socket().fireClose(CloseCode.abnormal); // the first attempt fails
    expect(client.state).toBe('reconnecting');
    expect(rec.states).toEqual([['reconnecting', { code: 1006, reason: '' }]]);
    expect(clock.pending()).toEqual([125]); // 0.5 * 250
    clock.advance(125);
    socket().fireClose(CloseCode.abnormal);
    expect(clock.pending()).toEqual([250]); // 0.5 * 500
    clock.advance(250);
    socket().fireClose(CloseCode.tryAgainLater);
    expect(clock.pending()).toEqual([500]);
    clock.advance(500);
    welcome();
    expect(client.state).toBe('connected');
    socket().fireClose(CloseCode.goingAway);
    expect(clock.pending()).toEqual([125]);
  });

  it.each([
    [CloseCode.replaced, 'replaced'],
    [CloseCode.helloRejected, 'unsupported_version'],
    [CloseCode.badFrame, 'bad frame'],
    [CloseCode.normal, ''],
  ])('does not reconnect after close code %i', async (code, reason) => {
    const { client, socket, clock, welcome, rec, sockets } = scriptedClient();
    welcome();
    const sub = client.subscribe('a.b');
    const pending = client.publish('a.b', new Uint8Array(1));
    socket().fireClose(code, reason);
    expect(client.state).toBe('closed');
    expect(rec.states.at(-1)).toEqual(['closed', { code, reason }]);
    expect(clock.pending()).toEqual([]); // no retry scheduled, no keep-alive left
    await expect(client.ready()).rejects.toMatchObject({ code: ErrorCode.closed });
    await expect(pending).rejects.toMatchObject({ code: ErrorCode.closed });
    await expect(sub.ready).rejects.toMatchObject({ code: ErrorCode.closed });
    await expect(client.publish('a.b', new Uint8Array(1))).rejects.toMatchObject({ code: ErrorCode.closed });
    clock.advance(60_000);
    expect(sockets).toHaveLength(1);
  });

  it('a refused handshake (4006, as sdk-node reports a 403) is final and reported as an error with the broker code', () => {
    const { client, socket, clock, rec, sockets } = scriptedClient();
    socket().fireClose(CloseCode.handshakeRefused, 'forbidden_origin: origin https://evil.example is not in allowedOrigins');
    expect(client.state).toBe('closed');
    expect(rec.errors.map((e) => [e.code, e.message])).toEqual([[ErrorCode.forbiddenOrigin, 'origin https://evil.example is not in allowedOrigins']]);
    expect(rec.states).toEqual([['closed', { code: CloseCode.handshakeRefused, reason: 'forbidden_origin: origin https://evil.example is not in allowedOrigins' }]]);
    expect(clock.pending()).toEqual([]);
    expect(sockets).toHaveLength(1);
  });

  it('a browser only sees 1006 for a refused handshake: it retries with backoff, and reports no error', () => {
    const { client, socket, clock, rec, sockets } = scriptedClient({ random: () => 0.5 });
    socket().fireClose(CloseCode.abnormal);
    expect(client.state).toBe('reconnecting');
    expect(rec.errors).toEqual([]);
    clock.advance(clock.pending()[0]!);
    expect(sockets).toHaveLength(2);
  });

  it('with reconnect: false, any loss closes for good', () => {
    const { client, socket, clock, welcome } = scriptedClient({ reconnect: false });
    welcome();
    socket().fireClose(CloseCode.goingAway);
    expect(client.state).toBe('closed');
    expect(clock.pending()).toEqual([]);
  });

  it('sends an acked publish in flight when the connection dropped again after the next welcome, with its id, before the publishes queued meanwhile', async () => {
    const { client, socket, clock, welcome } = scriptedClient();
    welcome();
    const results: unknown[] = [];
    const sent = client.publish('a.b', new Uint8Array([1])).then((ack) => results.push(ack));
    await tick();
    const [first] = socket().sentOf(FrameType.publish);
    socket().fireClose(CloseCode.abnormal);
    const queued = client.publish('a.b', new Uint8Array([2]));
    clock.advance(1000);
    const s = welcome();
    await tick();
    expect(s.messages.at(-1)).toBe(2); // both in one message
    const publish = s.sentOf(FrameType.publish);
    expect(publish).toEqual([
      { t: FrameType.publish, r: 2, c: 'a.b', d: new Uint8Array([1]), i: first!.i },
      { t: FrameType.publish, r: 3, c: 'a.b', d: new Uint8Array([2]), i: expect.any(String) },
    ]);
    expect(publish[1]!.i).not.toBe(first!.i);
    s.receive({ t: FrameType.ack, r: 2, id: 'e1', o: 6, e: 'E' });
    s.receive({ t: FrameType.ack, r: 3, id: 'e2', o: 7, e: 'E' });
    await sent;
    await expect(queued).resolves.toEqual({ id: 'e2', offset: 7, epoch: 'E' });
    expect(results).toEqual([{ id: 'e1', offset: 6, epoch: 'E' }]);
  });

  it('ignores a late close or message from a socket it already gave up on', () => {
    const { client, clock, welcome, sockets, rec } = scriptedClient();
    const old = welcome({ ka: 1000 });
    clock.advance(2000); // silence: the keep-alive gives up on the old socket
    expect(client.state).toBe('reconnecting');
    expect(rec.states.at(-1)![1].code).toBe(CloseCode.keepAliveTimeout);
    expect(old.closeCalls).toEqual([{ code: CloseCode.keepAliveTimeout, reason: expect.stringContaining('keep-alive') }]);
    clock.advance(1000);
    welcome({ u: 'uuid-1' });
    expect(sockets).toHaveLength(2);
    const statesBefore = rec.states.length;
    old.receive({ t: FrameType.event, c: 'a.b', d: new Uint8Array(1), id: 'x', o: 1, e: 'E', ts: 0 });
    old.fireClose(CloseCode.replaced);
    expect(client.state).toBe('connected');
    expect(rec.states).toHaveLength(statesBefore);
    expect(rec.events).toEqual([]);
  });
});

describe('keep-alive', () => {
  it('answers the broker ping with pong', () => {
    const { socket, welcome } = scriptedClient();
    welcome();
    socket().receive({ t: FrameType.ping });
    expect(socket().sentOf(FrameType.pong)).toHaveLength(1);
  });

  it('stays connected while frames arrive', () => {
    const { client, socket, clock, welcome } = scriptedClient();
    welcome({ ka: 1000 });
    for (let i = 0; i < 20; i++) {
      clock.advance(1000);
      socket().receive({ t: FrameType.ping });
    }
    expect(client.state).toBe('connected');
  });

  it('after a late timer (a sleeping tab) it probes with a ping, and a pong keeps the connection', () => {
    const { client, socket, clock, welcome } = scriptedClient();
    welcome({ ka: 1000 });
    clock.sleep(60_000);
    expect(socket().sentOf(FrameType.ping)).toHaveLength(1);
    expect(client.state).toBe('connected');
    socket().receive({ t: FrameType.pong });
    clock.advance(1000);
    expect(client.state).toBe('connected');
  });

  it('an unanswered probe ends the socket and reconnects', () => {
    const { client, clock, welcome } = scriptedClient();
    welcome({ ka: 1000 });
    clock.sleep(60_000);
    clock.advance(1000);
    expect(client.state).toBe('reconnecting');
  });
});

describe('frames from the broker', () => {
  it('ignores text messages, and reports undecodable frames as error events without dropping the connection', () => {
    const { client, socket, welcome, rec } = scriptedClient();
    welcome();
    socket().receiveRaw('{"t":11}');
    socket().receiveRaw(new Uint8Array([0xc1]));
    expect(rec.errors.map((e) => e.code)).toEqual([ErrorCode.badFrame]);
    expect(client.state).toBe('connected');
  });

  it('reports a frame whose fields are not what its type says as bad_frame, and goes on with the next', () => {
    const { client, socket, welcome, rec } = scriptedClient();
    welcome();
    socket().receive({ t: FrameType.dropped, n: 1, c: 7 } as never);
    socket().receive({ t: FrameType.dropped, n: 1, c: [['a.b', 1]] });
    expect(rec.errors.map((e) => e.code)).toEqual([ErrorCode.badFrame]);
    expect(rec.dropped.map((d) => d.total)).toEqual([1]);
    expect(client.state).toBe('connected');
  });

  it('accepts Uint8Array views (ws in Node gives Buffers) as well as ArrayBuffers', () => {
    const { socket, welcome, rec } = scriptedClient();
    welcome();
    const frame = encodeFrame({ t: FrameType.event, c: 'a.b', d: new Uint8Array([9]), id: 'i', o: 1, e: 'E', ts: 5 });
    // The frame in the middle of a larger buffer, as a pooled Node Buffer would hold it.
    const pool = new Uint8Array(frame.length + 16);
    pool.set(frame, 8);
    socket().receiveRaw(pool.subarray(8, 8 + frame.length));
    expect(rec.events).toEqual([{ channel: 'a.b', data: new Uint8Array([9]), id: 'i', offset: 1, epoch: 'E', time: 5 }]);
  });
});

describe('quit', () => {
  it('sends quit, closes with 1000, rejects what is pending, and resolves when the socket closed', async () => {
    const { client, socket, welcome, rec } = scriptedClient();
    welcome();
    const pending = client.publish('a.b', new Uint8Array(1));
    let resolved = false;
    const quitting = client.quit().then(() => (resolved = true));
    expect(client.state).toBe('closed');
    expect(rec.states.at(-1)).toEqual(['closed', { code: 1000, reason: 'quit' }]);
    expect(socket().sent.at(-1)).toEqual({ t: FrameType.quit });
    expect(socket().closeCalls).toEqual([{ code: 1000, reason: 'quit' }]);
    await expect(pending).rejects.toMatchObject({ code: ErrorCode.closed });
    await Promise.resolve();
    expect(resolved).toBe(false);
    socket().fireClose(1000);
    await quitting;
    expect(client.quit()).toBe(client.quit()); // idempotent
  });

  it('while waiting to reconnect: resolves at once and cancels the retry', async () => {
    const { client, socket, clock, sockets } = scriptedClient();
    socket().fireClose(CloseCode.abnormal);
    await client.quit();
    expect(clock.pending()).toEqual([]);
    expect(sockets).toHaveLength(1);
  });

  it('a state listener may quit: on reconnecting no retry is left scheduled, and quit() inside quit() is the same promise', async () => {
    const { client, socket, clock, welcome } = scriptedClient();
    welcome();
    const inner: Promise<void>[] = [];
    client.on('state', (state) => {
      if (state === 'reconnecting' || state === 'closed') inner.push(client.quit());
    });
    socket().fireClose(CloseCode.abnormal);
    expect(client.state).toBe('closed');
    expect(clock.pending()).toEqual([]);
    await Promise.all(inner);
    expect(inner[0]).toBe(client.quit());
  });

  it('resolves after requestTimeout when the socket never reports its close', async () => {
    const { client, clock, welcome } = scriptedClient({ requestTimeout: 500 });
    welcome();
    const quitting = client.quit();
    clock.advance(500);
    await quitting;
  });
});
