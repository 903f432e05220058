// Page lifecycle (pagehide, pageshow, visibilitychange, online) on a fake window: scripted sockets
// and a manual clock for the exact steps, and the fake broker for the round trips.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CloseCode, ErrorCode, FrameType } from '@crier/protocol';
import { connect } from '../src/client.js';
import { resolveLifecycle } from '../src/lifecycle.js';
import type { CrierClient, CrierEvent } from '../src/types.js';
import { startFakeBroker, type FakeBroker } from './fake-broker.js';
import { FakePage } from './fake-page.js';
import { record } from './record.js';
import { scriptedClient } from './scripted-client.js';
import { tick, waitFor } from './wait-for.js';

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

describe('outside a browser', () => {
  it('listens to nothing when the global object has no addEventListener (Node)', () => {
    expect(typeof (globalThis as { addEventListener?: unknown }).addEventListener).toBe('undefined');
    expect(resolveLifecycle({})).toBeUndefined();
    const { client, welcome } = scriptedClient(); // no lifecycleTarget: inert
    welcome();
    expect(client.state).toBe('connected');
  });

  it('refuses a lifecycleTarget that is not an event target', () => {
    expect(() => scriptedClient({ lifecycleTarget: {} as never })).toThrow('options.lifecycleTarget');
  });
});

describe('pagehide, page unloading (persisted false)', () => {
  it('sends quit before closing, closes the client for good, and removes its listeners', async () => {
    const page = new FakePage();
    const { client, socket, welcome, rec, clock, sockets } = scriptedClient({ lifecycleTarget: page });
    expect(page.listeners).toBe(4);
    welcome();
    const pending = client.publish('a.b', bytes(1));
    page.pagehide(false);
    expect(socket().sent.at(-1)).toEqual({ t: FrameType.quit });
    expect(socket().closeCalls).toEqual([{ code: CloseCode.normal, reason: 'quit' }]);
    expect(client.state).toBe('closed');
    expect(rec.states.at(-1)).toEqual(['closed', { code: CloseCode.normal, reason: 'pagehide' }]);
    await expect(pending).rejects.toMatchObject({ code: ErrorCode.closed });
    expect(page.listeners).toBe(0);
    clock.advance(60_000);
    expect(sockets).toHaveLength(1);
  });

  it('reaches the broker as a quit frame, then a normal close', async () => {
    const b = await startFakeBroker();
    try {
      const page = new FakePage();
      const c = connect(b.url, { WebSocket, lifecycleTarget: page });
      await waitFor('ready', c.ready());
      page.pagehide(false);
      const conn = b.connections[0]!;
      await waitFor('the broker to see the close', () => conn.closed);
      expect(conn.frames.at(-1)).toEqual({ t: FrameType.quit });
      expect(conn.closed).toEqual({ code: CloseCode.normal, reason: 'quit' });
    } finally {
      await b.close();
    }
  });
});

describe('back/forward cache (pagehide and pageshow with persisted true)', () => {
  it('closes the socket without quit, waits in reconnecting without retrying, and reconnects at pageshow', async () => {
    const page = new FakePage();
    const { client, socket, welcome, rec, clock, sockets } = scriptedClient({ lifecycleTarget: page });
    const seen: CrierEvent[] = [];
    client.subscribe('a.*', (event) => seen.push(event));
    welcome();
    const first = socket();
    expect(first.sentOf(FrameType.subscribe)).toHaveLength(1);

    page.pagehide(true);
    expect(first.sentOf(FrameType.quit)).toEqual([]);
    expect(first.closeCalls).toEqual([{ code: CloseCode.normal, reason: 'pagehide' }]);
    expect(client.state).toBe('reconnecting');
    expect(rec.states.at(-1)).toEqual(['reconnecting', { code: CloseCode.normal, reason: 'pagehide' }]);
    expect(clock.pending()).toEqual([]); // no retry, no keep-alive
    first.fireClose(CloseCode.normal, 'pagehide'); // its own close event changes nothing
    expect(client.state).toBe('reconnecting');
    const queued = client.publish('a.q', bytes(7), { ack: false }); // queued while suspended
    clock.advance(600_000);
    expect(sockets).toHaveLength(1);
    expect(page.listeners).toBe(4); // still listening, for pageshow

    page.pageshow(true);
    expect(sockets).toHaveLength(2); // at once, no backoff
    welcome();
    expect(client.state).toBe('connected');
    expect(socket().sentOf(FrameType.subscribe).map((f) => f.p)).toEqual(['a.*']);
    await tick();
    expect(socket().sentOf(FrameType.publish).map((f) => f.c)).toEqual(['a.q']);
    socket().receive({ t: FrameType.event, c: 'a.x', d: bytes(1), id: 'e1', o: 1, e: 'E', ts: 1 });
    expect(seen.map((e) => e.channel)).toEqual(['a.x']); // the same handler keeps working
    return queued;
  });

  it('a pageshow that is not from the cache (a first load) changes nothing', () => {
    const page = new FakePage();
    const { socket, welcome, sockets } = scriptedClient({ lifecycleTarget: page });
    welcome();
    page.pageshow(false);
    expect(sockets).toHaveLength(1);
    expect(socket().sent.map((f) => f.t)).toEqual([FrameType.hello]);
  });

  it('suspends while waiting in backoff too, and quit() while suspended closes for good', async () => {
    const page = new FakePage();
    const { client, socket, clock, sockets } = scriptedClient({ lifecycleTarget: page });
    socket().fireClose(CloseCode.abnormal);
    expect(clock.pending()).toHaveLength(1); // the backoff timer
    page.pagehide(true);
    expect(clock.pending()).toEqual([]);
    await client.quit();
    expect(client.state).toBe('closed');
    expect(page.listeners).toBe(0);
    page.pageshow(true);
    expect(sockets).toHaveLength(1);
  });

  it('round trip through the fake broker: same uuid, subscription restored, events reach the same handler', async () => {
    const b = await startFakeBroker();
    let c: CrierClient | undefined;
    try {
      const page = new FakePage();
      c = connect(b.url, { WebSocket, lifecycleTarget: page, random: () => 0 });
      const rec = record(c);
      const sub = c.subscribe('user.*', () => {});
      await waitFor('subscribed', sub.ready);
      const uuid = c.uuid;

      page.pagehide(true);
      await waitFor('the broker to see the close', () => b.connections[0]!.closed);
      expect(b.connections[0]!.received(FrameType.quit)).toEqual([]);
      expect(c.state).toBe('reconnecting');

      page.pageshow(true);
      await waitFor('connected again', () => b.connections.length === 2 && c!.state === 'connected');
      expect(b.connections[1]!.frames[0]).toEqual({ t: FrameType.hello, v: 1, u: uuid, s: `secret-${uuid}` });
      await waitFor('resubscribed', () => b.connections[1]!.patterns.has('user.*'));
      b.publish('user.created', bytes(42));
      await waitFor('the event', () => rec.events.length === 1);
      expect(rec.events[0]!.channel).toBe('user.created');
    } finally {
      await c?.quit();
      await b.close();
    }
  });
});

describe('wake-up probe (visibilitychange to visible, online)', () => {
  it('a visible page pings at once; an answer keeps the connection', () => {
    const page = new FakePage();
    const { client, socket, welcome, clock, sockets } = scriptedClient({ lifecycleTarget: page });
    welcome({ ka: 30_000 });
    page.show();
    expect(socket().sentOf(FrameType.ping)).toHaveLength(1);
    socket().receive({ t: FrameType.pong });
    clock.advance(3000);
    expect(client.state).toBe('connected');
    expect(sockets).toHaveLength(1);
  });

  it('a silent socket is taken for dead after min(keepAlive, 3 s) and the client reconnects at once', () => {
    const page = new FakePage();
    const { client, socket, welcome, clock, sockets, rec } = scriptedClient({ lifecycleTarget: page });
    welcome({ ka: 30_000 });
    const dead = socket();
    page.show();
    clock.advance(2999);
    expect(client.state).toBe('connected');
    clock.advance(1);
    expect(rec.states.at(-1)).toEqual(['reconnecting', { code: CloseCode.keepAliveTimeout, reason: 'keep-alive: no pong within 3000 ms' }]);
    expect(dead.closeCalls).toEqual([{ code: CloseCode.keepAliveTimeout, reason: expect.stringContaining('pong') }]);
    expect(sockets).toHaveLength(2); // no backoff delay
    welcome();
    expect(client.state).toBe('connected');
  });

  it('the grace is the keep-alive interval when that is shorter, and 3 s when the broker sends no pings', () => {
    const short = new FakePage();
    const a = scriptedClient({ lifecycleTarget: short });
    a.welcome({ ka: 1000 });
    short.show();
    a.clock.advance(1000);
    expect(a.sockets).toHaveLength(2);

    const none = new FakePage();
    const b = scriptedClient({ lifecycleTarget: none });
    b.welcome({ ka: 0 });
    expect(b.clock.pending()).toEqual([]); // no periodic checks
    none.online();
    expect(b.socket().sentOf(FrameType.ping)).toHaveLength(1);
    b.clock.advance(2999);
    expect(b.sockets).toHaveLength(1);
    b.clock.advance(1);
    expect(b.sockets).toHaveLength(2);
  });

  it('while waiting in backoff, online retries now and resets the backoff', () => {
    const page = new FakePage();
    const { socket, clock, sockets } = scriptedClient({ lifecycleTarget: page, random: () => 1 });
    for (const delay of [250, 500, 1000]) {
      socket().fireClose(CloseCode.abnormal);
      expect(clock.pending()).toEqual([delay]);
      clock.advance(delay);
    }
    socket().fireClose(CloseCode.abnormal);
    expect(clock.pending()).toEqual([2000]);
    page.online();
    expect(sockets).toHaveLength(5);
    expect(clock.pending()).toEqual([10_000]); // only the handshake timeout
    socket().fireClose(CloseCode.abnormal);
    expect(clock.pending()).toEqual([250]); // back to the first delay
  });

  it('a hidden page, a socket still opening, or a probe already waiting sends nothing more', () => {
    const page = new FakePage();
    const { socket, welcome, sockets } = scriptedClient({ lifecycleTarget: page });
    page.show(); // opening: the handshake timeout covers it
    expect(sockets).toHaveLength(1);
    welcome();
    page.hide();
    expect(socket().sentOf(FrameType.ping)).toEqual([]);
    page.show();
    page.online();
    expect(socket().sentOf(FrameType.ping)).toHaveLength(1);
  });
});

describe('options', () => {
  it('lifecycle: false listens to nothing', () => {
    const page = new FakePage();
    const { client, welcome } = scriptedClient({ lifecycleTarget: page, lifecycle: false });
    expect(page.listeners).toBe(0);
    welcome();
    page.pagehide(false);
    expect(client.state).toBe('connected');
  });

  it('quitOnUnload: false leaves an unloading page to the browser', () => {
    const page = new FakePage();
    const { client, socket, welcome } = scriptedClient({ lifecycleTarget: page, lifecycle: { quitOnUnload: false } });
    welcome();
    page.pagehide(false);
    expect(client.state).toBe('connected');
    expect(socket().closeCalls).toEqual([]);
    page.pagehide(true); // the other behaviours stay on
    expect(client.state).toBe('reconnecting');
  });

  it('reconnectOnPageShow: false keeps the socket on pagehide (persisted) and ignores pageshow', () => {
    const page = new FakePage();
    const { client, socket, welcome, sockets } = scriptedClient({ lifecycleTarget: page, lifecycle: { reconnectOnPageShow: false } });
    welcome();
    page.pagehide(true);
    page.pageshow(true);
    expect(client.state).toBe('connected');
    expect(socket().closeCalls).toEqual([]);
    expect(sockets).toHaveLength(1);
  });

  it('probeOnWake: false sends no probe', () => {
    const page = new FakePage();
    const { socket, welcome } = scriptedClient({ lifecycleTarget: page, lifecycle: { probeOnWake: false } });
    welcome();
    expect(page.listeners).toBe(2);
    page.show();
    page.online();
    expect(socket().sentOf(FrameType.ping)).toEqual([]);
  });

  it('listeners go when the client closes for good on its own', () => {
    const page = new FakePage();
    const { socket, welcome } = scriptedClient({ lifecycleTarget: page });
    welcome();
    socket().fireClose(CloseCode.replaced, 'replaced');
    expect(page.listeners).toBe(0);
  });
});
