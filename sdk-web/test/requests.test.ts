// Publish, acks, errors, timeouts and the offline queue, on scripted sockets and a manual clock.
import { describe, expect, it } from 'vitest';
import { CrierError, ErrorCode, FrameType } from '@crier/protocol';
import { scriptedClient } from './scripted-client.js';
import { tick } from './wait-for.js';

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

describe('publish', () => {
  it('sends a publish with a request id and resolves with the ack as {id, offset, epoch}', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const acked = client.publish('user.created', bytes(1, 2), { labels: ['x'], key: 'k1' });
    await tick(); // the tick's publishes go out at its end
    expect(socket().sentOf(FrameType.publish)).toEqual([
      { t: FrameType.publish, r: 1, c: 'user.created', d: bytes(1, 2), l: ['x'], k: 'k1', i: expect.stringMatching(/^[0-9a-z]+\.0$/) },
    ]);
    socket().receive({ t: FrameType.ack, r: 1, id: 'ev-1', o: 41, e: 'epoch-a' });
    await expect(acked).resolves.toEqual({ id: 'ev-1', offset: 41, epoch: 'epoch-a' });
  });

  it('fire-and-forget sends no request id and resolves once handed to the socket', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    await expect(client.publish('a.b', bytes(3), { ack: false })).resolves.toBeUndefined();
    expect(socket().sentOf(FrameType.publish)).toEqual([{ t: FrameType.publish, c: 'a.b', d: bytes(3) }]);
  });

  it('refuses to publish with queue_full while 16 MiB wait unsent on the socket, and goes on once it drains', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    socket().bufferedAmount = 16 * 1024 * 1024 + 1;
    await expect(client.publish('a.b', bytes(1), { ack: false })).rejects.toMatchObject({ code: ErrorCode.queueFull });
    await expect(client.publish('a.b', bytes(1))).rejects.toMatchObject({ code: ErrorCode.queueFull });
    expect(socket().sentOf(FrameType.publish)).toEqual([]);
    socket().bufferedAmount = 0;
    await expect(client.publish('a.b', bytes(2), { ack: false })).resolves.toBeUndefined();
    expect(socket().sentOf(FrameType.publish)).toHaveLength(1);
  });

  it('an error frame rejects the request with its code and message', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const p = client.publish('a.b', bytes(1));
    socket().receive({ t: FrameType.error, r: 1, code: ErrorCode.shuttingDown, msg: 'draining' });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CrierError);
    expect(err).toMatchObject({ code: 'shutting_down', message: 'draining', requestId: 1 });
  });

  it('an error code this SDK does not know becomes internal, keeping the broker code in the message', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const p = client.publish('a.b', bytes(1));
    socket().receive({ t: FrameType.error, r: 1, code: 'from_the_future', msg: 'hm' });
    await expect(p).rejects.toMatchObject({ code: ErrorCode.internal, message: 'from_the_future: hm' });
  });

  it('an error frame without a request id (a failed fire-and-forget publish) is an error event', () => {
    const { socket, welcome, rec } = scriptedClient();
    welcome();
    socket().receive({ t: FrameType.error, code: ErrorCode.payloadTooLarge, msg: 'too big' });
    expect(rec.errors.map((e) => [e.code, e.message])).toEqual([['payload_too_large', 'too big']]);
  });

  it('an ack that never comes rejects with timeout after requestTimeout; a late ack is ignored', async () => {
    const { client, socket, clock, welcome, rec } = scriptedClient({ requestTimeout: 2000 });
    welcome({ ka: 0 });
    const p = client.publish('a.b', bytes(1));
    clock.advance(1999);
    clock.advance(1);
    await expect(p).rejects.toMatchObject({ code: ErrorCode.timeout, requestId: 1 });
    socket().receive({ t: FrameType.ack, r: 1, id: 'late', o: 1, e: 'E' });
    socket().receive({ t: FrameType.error, r: 1, code: ErrorCode.internal, msg: 'late too' });
    expect(client.state).toBe('connected');
    expect(rec.errors).toEqual([]);
  });
});

describe('one message per tick, one timer for every request', () => {
  it("a tick's publishes go out as one message, in order; any other frame sends what waits first", async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const s = socket();
    for (let n = 0; n < 3; n++) client.publish('a.b', bytes(n)).catch(() => {});
    client.subscribe('a.*'); // not held back: the publishes before it go first
    client.publish('a.b', bytes(3), { ack: false });
    client.publish('a.b', bytes(4), { ack: false });
    await tick();
    expect(s.messages.slice(1)).toEqual([3, 1, 2]); // after the hello
    expect(s.sent.slice(1).map((f) => (f.t === FrameType.publish ? f.d[0] : 'sub'))).toEqual([0, 1, 2, 'sub', 3, 4]);
  });

  it('a message holds 64 publishes at most, and no more bytes than the broker takes in one', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome({ lim: { mc: 3, mp: 1024, bs: 100 } });
    for (let n = 0; n < 130; n++) void client.publish('a.b', bytes(1), { ack: false });
    await tick();
    expect(socket().messages.slice(1)).toEqual([64, 64, 2]);
    // maxPayload 1024 + the 64 KiB envelope: 66 publishes of 1,000 bytes fill one message.
    for (let n = 0; n < 70; n++) void client.publish('a.b', new Uint8Array(1000), { ack: false });
    await tick();
    const sizes = socket().messages.slice(4);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(70);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64);
  });

  it('many requests in flight hold one timer, set for the earliest; each times out at its own deadline', async () => {
    const { client, clock, welcome } = scriptedClient({ requestTimeout: 1000 });
    welcome({ ka: 0 }); // no keep-alive timers: the clock holds the requests' timer alone
    expect(clock.pending()).toEqual([]);
    const first = client.publish('a.b', bytes(1));
    clock.advance(400);
    const second = client.publish('a.b', bytes(2));
    const third = client.publish('a.b', bytes(3));
    expect(clock.pending()).toEqual([600]);
    clock.advance(600);
    await expect(first).rejects.toMatchObject({ code: ErrorCode.timeout, requestId: 1 });
    expect(clock.pending()).toEqual([400]); // set again, for the next one
    clock.advance(400);
    await expect(second).rejects.toMatchObject({ code: ErrorCode.timeout, requestId: 2 });
    await expect(third).rejects.toMatchObject({ code: ErrorCode.timeout, requestId: 3 });
    expect(clock.pending()).toEqual([]);
  });
});

describe('local checks fail fast, before anything is sent', () => {
  it('bad_channel for a pattern or an invalid name', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    await expect(client.publish('user.*', bytes(1))).rejects.toMatchObject({ code: ErrorCode.badChannel });
    await expect(client.publish('user..x', bytes(1), { ack: false })).rejects.toMatchObject({ code: ErrorCode.badChannel });
    expect(socket().sentOf(FrameType.publish)).toEqual([]);
  });

  it('payload_too_large past the maxPayload from welcome (not before it is known)', async () => {
    const { client, socket, welcome } = scriptedClient();
    const early = client.publish('a.b', new Uint8Array(2000)); // limits unknown: queued
    welcome({ lim: { mc: 3, mp: 1024, bs: 1 } });
    await expect(early).rejects.toMatchObject({ code: ErrorCode.payloadTooLarge }); // checked again at flush
    await expect(client.publish('a.b', new Uint8Array(1025))).rejects.toMatchObject({ code: ErrorCode.payloadTooLarge });
    client.publish('a.b', new Uint8Array(1024)).catch(() => {});
    await tick();
    expect(socket().sentOf(FrameType.publish).map((f) => f.d.length)).toEqual([1024]);
  });

  it('a queued fire-and-forget publish found too large at the welcome is an error event', async () => {
    const { client, socket, welcome, rec } = scriptedClient();
    await client.publish('a.b', new Uint8Array(2000), { ack: false });
    await client.publish('a.b', new Uint8Array(10), { ack: false });
    welcome({ lim: { mc: 3, mp: 1024, bs: 1 } });
    expect(rec.errors.map((e) => e.code)).toEqual([ErrorCode.payloadTooLarge]);
    await tick();
    expect(socket().sentOf(FrameType.publish).map((f) => f.d.length)).toEqual([10]);
  });

  it('a queued fire-and-forget publish refused at the welcome for a full socket is an error event', async () => {
    const { client, socket, welcome, rec } = scriptedClient();
    await client.publish('a.b', bytes(1), { ack: false });
    const acked = client.publish('a.b', bytes(2));
    socket().bufferedAmount = 16 * 1024 * 1024 + 1;
    welcome();
    await expect(acked).rejects.toMatchObject({ code: ErrorCode.queueFull });
    expect(rec.errors.map((e) => [e.code, e.message])).toEqual([
      [ErrorCode.queueFull, expect.stringContaining('cannot publish to "a.b"')],
    ]);
    expect(socket().sentOf(FrameType.publish)).toEqual([]);
  });

  it('a TypeError for data that is not bytes', async () => {
    const { client, welcome } = scriptedClient();
    welcome();
    await expect(client.publish('a.b', 'text' as unknown as Uint8Array)).rejects.toThrow(TypeError);
  });
});

describe('offline', () => {
  it("'queue' keeps publishes made while not connected and sends them in order after the welcome", async () => {
    const { client, socket, welcome } = scriptedClient();
    const first = client.publish('a.b', bytes(1));
    const second = client.publish('a.b', bytes(2), { ack: false });
    await expect(second).resolves.toBeUndefined(); // queued counts as handed over
    client.subscribe('a.*');
    const s = welcome();
    await tick();
    // Subscriptions first: the client then receives its own queued events too.
    expect(s.sent.map((f) => f.t)).toEqual([FrameType.hello, FrameType.subscribe, FrameType.publish, FrameType.publish]);
    expect(s.sentOf(FrameType.publish).map((f) => [f.r, f.d[0]])).toEqual([[2, 1], [undefined, 2]]);
    s.receive({ t: FrameType.ack, r: 2, id: 'i', o: 1, e: 'E' });
    await expect(first).resolves.toMatchObject({ offset: 1 });
  });

  it('past offlineQueueSize a publish rejects with queue_full', async () => {
    const { client } = scriptedClient({ offlineQueueSize: 2 });
    client.publish('a.b', bytes(1)).catch(() => {});
    client.publish('a.b', bytes(2), { ack: false }).catch(() => {});
    await expect(client.publish('a.b', bytes(3))).rejects.toMatchObject({ code: ErrorCode.queueFull });
  });

  it("'fail' rejects at once with disconnected", async () => {
    const { client, socket, clock, welcome } = scriptedClient({ offline: 'fail' });
    await expect(client.publish('a.b', bytes(1))).rejects.toMatchObject({ code: ErrorCode.disconnected });
    welcome();
    socket().fireClose(1006);
    await expect(client.publish('a.b', bytes(1), { ack: false })).rejects.toMatchObject({ code: ErrorCode.disconnected });
    clock.advance(1000);
    const s = welcome();
    expect(s.sentOf(FrameType.publish)).toEqual([]);
  });

  it('quit rejects queued publishes with closed', async () => {
    const { client, socket } = scriptedClient();
    const queued = client.publish('a.b', bytes(1));
    const quitting = client.quit();
    socket().fireClose(1006); // closing a socket that never opened
    await quitting;
    await expect(queued).rejects.toMatchObject({ code: ErrorCode.closed });
  });
});
