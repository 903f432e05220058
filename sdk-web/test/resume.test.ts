// Continuity across reconnects: resume (hello rp, welcome rs, the 'resumed' event), a stream
// resumed by another client (a reloaded page), and the drain close 4009. Scripted sockets and a
// manual clock where the order of frames is the point; the fake broker where bytes cross sockets.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CloseCode, FrameType, type EventFrame } from '@crier/protocol';
import { connect } from '../src/client.js';
import type { ClientOptions, CrierClient, ResumedInfo } from '../src/types.js';
import { startFakeBroker, type FakeBroker, type FakeBrokerOptions } from './fake-broker.js';
import { record } from './record.js';
import { scriptedClient } from './scripted-client.js';
import { changed, tick, waitFor } from './wait-for.js';

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

const event = (s: number | undefined, c = 'a.b'): EventFrame => ({ t: FrameType.event, c, d: bytes(s ?? 0), id: `ev-${s}`, o: 1, e: 'E', ts: 1, s });

/** Every 'resumed' event of a client. */
function resumes(client: CrierClient): ResumedInfo[] {
  const seen: ResumedInfo[] = [];
  client.on('resumed', (info) => {
    seen.push(info);
    changed();
  });
  return seen;
}

describe('resume across reconnects (scripted)', () => {
  it('reconnects with rp: the welcome\'s epoch and the highest event position received, with the uuid and secret', () => {
    const { socket, welcome, clock } = scriptedClient();
    socket().open();
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1 }]); // nothing to resume yet
    welcome({ ep: 'EP1' });
    for (const s of [3, 7, 5]) socket().receive(event(s));
    socket().receive(event(undefined)); // an event without a position changes nothing
    socket().fireClose(CloseCode.abnormal);
    clock.advance(1000);
    socket().open();
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, u: 'uuid-1', s: 'secret-1', rp: { e: 'EP1', s: 7 } }]);
  });

  it('asks for no resume when the welcome carries no epoch (a broker without resume)', () => {
    const { socket, welcome, clock } = scriptedClient();
    welcome();
    socket().receive(event(4));
    socket().fireClose(CloseCode.abnormal);
    clock.advance(1000);
    socket().open();
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, u: 'uuid-1', s: 'secret-1' }]);
  });

  it('counts positions again from 0 after a welcome of another epoch (a restarted broker)', () => {
    const { socket, welcome, clock } = scriptedClient();
    welcome({ ep: 'EP1' });
    socket().receive(event(9));
    socket().fireClose(CloseCode.goingAway);
    clock.advance(1000);
    welcome({ ep: 'EP2', rs: { n: 0, why: 'broker_restarted' } });
    socket().fireClose(CloseCode.goingAway);
    clock.advance(1000);
    socket().open();
    expect(socket().sentOf(FrameType.hello)[0]!.rp).toEqual({ e: 'EP2', s: 0 });
  });

  it("emits 'resumed' after the welcome that answers a resume, and its state change: recovered, reason, replayed, patterns", () => {
    const { client, socket, welcome, clock } = scriptedClient();
    const order: string[] = [];
    client.on('state', (state) => order.push(state));
    const seen = resumes(client);
    client.on('resumed', () => order.push('resumed'));
    welcome({ ep: 'EP1' });
    expect(seen).toEqual([]); // a first welcome answers no resume
    socket().fireClose(CloseCode.abnormal);
    clock.advance(1000);
    welcome({ ep: 'EP1', rs: { n: 3 } });
    socket().fireClose(CloseCode.abnormal);
    clock.advance(1000);
    welcome({ ep: 'EP1', rs: { n: 1, why: 'history_evicted', f: ['a.*', 'b.>'] } });
    socket().fireClose(CloseCode.abnormal);
    clock.advance(1000);
    welcome({ ep: 'EP1', rs: { n: 0, why: 'window_passed' } });
    expect(seen).toEqual([
      { recovered: true, replayed: 3 },
      { recovered: false, reason: 'history_evicted', replayed: 1, patterns: ['a.*', 'b.>'] },
      { recovered: false, reason: 'window_passed', replayed: 0 },
    ]);
    expect(order).toEqual(['connected', 'reconnecting', 'connected', 'resumed', 'reconnecting', 'connected', 'resumed', 'reconnecting', 'connected', 'resumed']);
  });

  it('still subscribes every pattern again after a resumed welcome (the broker acks what it already holds), before queued publishes', async () => {
    const { client, socket, welcome, clock } = scriptedClient();
    welcome({ ep: 'EP1' });
    client.subscribe('a.*');
    socket().fireClose(CloseCode.abnormal);
    client.publish('a.b', bytes(1)).catch(() => {});
    clock.advance(1000);
    const s = welcome({ ep: 'EP1', rs: { n: 0 } });
    await tick();
    expect(s.sent.slice(1).map((f) => f.t)).toEqual([FrameType.subscribe, FrameType.publish]);
    expect(s.sentOf(FrameType.subscribe)).toEqual([{ t: FrameType.subscribe, r: expect.any(Number), p: 'a.*' }]);
  });

  it('replayed events reach handlers in the order they come, each once, before live ones', () => {
    const { client, socket, welcome, clock } = scriptedClient();
    const got: number[] = [];
    client.subscribe('a.*', (e) => got.push(e.data[0]!));
    welcome({ ep: 'EP1' });
    socket().receive(event(1));
    socket().fireClose(CloseCode.abnormal);
    clock.advance(1000);
    welcome({ ep: 'EP1', rs: { n: 2 } });
    socket().receive(event(2));
    socket().receive(event(3));
    socket().receive(event(4)); // live
    expect(got).toEqual([1, 2, 3, 4]);
  });

  it('a high-priority event that overtook normal ones does not move the resume position, and its replayed copy is skipped', () => {
    const { client, socket, welcome, clock } = scriptedClient();
    const got: [number, string | undefined][] = [];
    client.subscribe('a.*', (e) => got.push([e.data[0]!, e.priority]));
    welcome({ ep: 'EP1' });
    // The broker queued normal 4 and 6 behind what the socket held, then high 7 overtook them:
    // 3 arrives, then 7, and the connection drops before 4 and 6 arrive.
    socket().receive(event(3));
    socket().receive({ ...event(7), pr: 1 });
    socket().fireClose(CloseCode.abnormal);
    clock.advance(1000);
    socket().open();
    // The resume starts after 3, not after 7: 4 and 6 are still owed.
    expect(socket().sentOf(FrameType.hello)[0]!.rp).toEqual({ e: 'EP1', s: 3 });
    welcome({ ep: 'EP1', rs: { n: 4 } });
    // The replay, in stream order: 7 again (skipped: already handled), with 4, 6 and 8.
    for (const s of [4, 6]) socket().receive(event(s));
    socket().receive({ ...event(7), pr: 1 });
    socket().receive(event(8));
    socket().receive({ ...event(9), pr: 1 }); // live, high, nothing to overtake: handled once
    expect(got).toEqual([[3, undefined], [7, 'high'], [4, undefined], [6, undefined], [8, undefined], [9, 'high']]);
    socket().fireClose(CloseCode.abnormal);
    clock.advance(1000);
    socket().open();
    expect(socket().sentOf(FrameType.hello)[0]!.rp).toEqual({ e: 'EP1', s: 8 });
  });
});

describe('unsubscribing while the connection is down (a resumed stream gets its subscriptions back)', () => {
  it('a subscription dropped while down is unsubscribed after the welcome, before the subscriptions are sent again', async () => {
    const { client, socket, welcome, clock } = scriptedClient();
    welcome({ ep: 'EP1' });
    const gone = client.subscribe('a.*');
    client.subscribe('b.*');
    for (const f of socket().sentOf(FrameType.subscribe)) socket().receive({ t: FrameType.ack, r: f.r });
    socket().fireClose(CloseCode.abnormal);
    await gone.unsubscribe(); // resolves at once: nothing to wait for while down
    clock.advance(1000);
    const s = welcome({ ep: 'EP1', rs: { n: 0 } });
    await tick();
    expect(s.sent.slice(1).map((f) => [f.t, 'p' in f ? f.p : undefined])).toEqual([
      [FrameType.unsubscribe, 'a.*'],
      [FrameType.subscribe, 'b.*'],
    ]);
    // Acked: gone for good, not sent again after the next welcome.
    s.receive({ t: FrameType.ack, r: s.sentOf(FrameType.unsubscribe)[0]!.r });
    s.fireClose(CloseCode.abnormal);
    clock.advance(1000);
    const third = welcome({ ep: 'EP1', rs: { n: 0 } });
    expect(third.sent.slice(1).map((f) => f.t)).toEqual([FrameType.subscribe]);
  });

  it('an unsubscribe waiting for its ack frees its place in maxChannels at once', async () => {
    const { client, socket, welcome } = scriptedClient(); // maxChannels 3
    welcome();
    const subs = ['a.*', 'b.*', 'c.*'].map((p) => client.subscribe(p));
    for (const f of socket().sentOf(FrameType.subscribe)) socket().receive({ t: FrameType.ack, r: f.r });
    void subs[0]!.unsubscribe();
    const fourth = client.subscribe('d.*');
    expect(socket().sentOf(FrameType.subscribe).map((f) => f.p)).toEqual(['a.*', 'b.*', 'c.*', 'd.*']);
    socket().receive({ t: FrameType.ack, r: socket().sentOf(FrameType.subscribe)[3]!.r });
    await fourth.ready;
  });

  it('an unsubscribe whose ack went with the connection is sent again after the welcome', async () => {
    const { client, socket, welcome, clock } = scriptedClient();
    welcome({ ep: 'EP1' });
    const sub = client.subscribe('a.*');
    socket().receive({ t: FrameType.ack, r: socket().sentOf(FrameType.subscribe)[0]!.r });
    const unsubscribed = sub.unsubscribe();
    expect(socket().sentOf(FrameType.unsubscribe)).toHaveLength(1);
    socket().fireClose(CloseCode.abnormal);
    await unsubscribed;
    clock.advance(1000);
    const s = welcome({ ep: 'EP1', rs: { n: 0 } });
    await tick();
    expect(s.sent.slice(1)).toEqual([{ t: FrameType.unsubscribe, r: expect.any(Number), p: 'a.*' }]);
  });

  it('a pattern subscribed again while down: the old one is unsubscribed, then the new one subscribed, in that order', async () => {
    const { client, socket, welcome, clock } = scriptedClient();
    welcome({ ep: 'EP1' });
    const first = client.subscribe('a.*');
    socket().receive({ t: FrameType.ack, r: socket().sentOf(FrameType.subscribe)[0]!.r });
    socket().fireClose(CloseCode.abnormal);
    await first.unsubscribe();
    const got: number[] = [];
    const again = client.subscribe('a.*', (e) => got.push(e.data[0]!));
    clock.advance(1000);
    const s = welcome({ ep: 'EP1', rs: { n: 0 } });
    await tick();
    expect(s.sent.slice(1)).toEqual([
      { t: FrameType.unsubscribe, r: expect.any(Number), p: 'a.*' },
      { t: FrameType.subscribe, r: expect.any(Number), p: 'a.*' },
    ]);
    for (const f of s.sent.slice(1)) s.receive({ t: FrameType.ack, r: (f as { r: number }).r });
    await again.ready;
    s.receive(event(5));
    expect(got).toEqual([5]);
  });
});

describe('client.session and options.resume (a page reload)', () => {
  it('session is undefined before the first welcome, then uuid, secret, epoch and the last position', () => {
    const { client, socket, welcome } = scriptedClient();
    expect(client.session).toBeUndefined();
    welcome({ ep: 'EP1' });
    expect(client.session).toEqual({ uuid: 'uuid-1', secret: 'secret-1', epoch: 'EP1', seq: 0 });
    socket().receive(event(12));
    expect(client.session).toEqual({ uuid: 'uuid-1', secret: 'secret-1', epoch: 'EP1', seq: 12 });
  });

  it('session stays undefined with a broker that sends no epoch', () => {
    const { client, welcome } = scriptedClient();
    welcome();
    expect(client.session).toBeUndefined();
  });

  it('options.resume makes the first hello a resume of that stream, and takes the place of uuid and secret', () => {
    const { client, socket, welcome } = scriptedClient({ uuid: 'other', resume: { uuid: 'u-9', secret: 'sec-9', epoch: 'EP1', seq: 41 } });
    const seen = resumes(client);
    socket().open();
    expect(socket().sent).toEqual([{ t: FrameType.hello, v: 1, u: 'u-9', s: 'sec-9', rp: { e: 'EP1', s: 41 } }]);
    welcome({ u: 'u-9', s: 'sec-10', ep: 'EP1', rs: { n: 2 } });
    expect(seen).toEqual([{ recovered: true, replayed: 2 }]);
    expect(client.session).toEqual({ uuid: 'u-9', secret: 'sec-10', epoch: 'EP1', seq: 41 });
  });
});

describe('drain: close 4009', () => {
  it('4009 waits the named delay plus the first backoff delay\'s jitter, then backs off as usual', () => {
    // random() = 0.5: the jitter is half of initialDelay (250 ms).
    const { socket, welcome, clock, sockets } = scriptedClient();
    welcome();
    socket().fireClose(CloseCode.draining, 'draining: reconnect after 1500 ms');
    expect(clock.pending()).toEqual([1625]);
    clock.advance(1624);
    expect(sockets).toHaveLength(1);
    clock.advance(1);
    expect(sockets).toHaveLength(2);
    socket().fireClose(CloseCode.abnormal); // the next attempt fails: the backoff's second delay
    expect(clock.pending()).toEqual([250]);
  });

  it('4009 without a delay in its reason reconnects after the usual backoff', () => {
    const { socket, welcome, clock, client } = scriptedClient();
    welcome();
    socket().fireClose(CloseCode.draining, 'draining');
    expect(client.state).toBe('reconnecting');
    expect(clock.pending()).toEqual([125]);
  });
});

describe('resume against the fake broker', () => {
  const brokers: FakeBroker[] = [];
  const clients: CrierClient[] = [];
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.quit()));
    await Promise.allSettled(brokers.splice(0).map((b) => b.close()));
  });
  const broker = async (options: FakeBrokerOptions = {}): Promise<FakeBroker> => {
    const b = await startFakeBroker({ epoch: 'EP1', ...options });
    brokers.push(b);
    return b;
  };
  const client = (b: FakeBroker, options: ClientOptions = {}): CrierClient => {
    const c = connect(b.url, { WebSocket, random: () => 0, ...options });
    clients.push(c);
    return c;
  };
  const text = (c: CrierClient): string[] => {
    const got: string[] = [];
    c.subscribe('feed.*', (e) => (got.push(new TextDecoder().decode(e.data)), changed()));
    return got;
  };

  it('after a broker-side drop, the events published meanwhile arrive once, in order, then live ones; resumed says recovered', async () => {
    const b = await broker();
    const c = client(b);
    const got = text(c);
    const seen = resumes(c);
    const states = record(c).states;
    await waitFor('subscribed', () => b.connections[0]?.patterns.has('feed.*'));
    b.publish('feed.x', new TextEncoder().encode('before'));
    await waitFor('the first event', () => got.length === 1);
    // The broker drops the connection; what is published before the client is back is missed.
    b.connections[0]!.socket.terminate();
    await waitFor('the client to see the drop', () => states.some(([s]) => s === 'reconnecting'));
    for (const t of ['m1', 'm2', 'm3']) b.publish('feed.x', new TextEncoder().encode(t));
    await waitFor('the resume', () => seen.length === 1);
    b.publish('feed.y', new TextEncoder().encode('live'));
    await waitFor('every event', () => got.length === 5);
    expect(got).toEqual(['before', 'm1', 'm2', 'm3', 'live']);
    expect(seen).toEqual([{ recovered: true, replayed: 3 }]);
    expect(b.connections[1]!.frames[0]).toEqual({ t: FrameType.hello, v: 1, u: 'fake-1', s: 'secret-fake-1', rp: { e: 'EP1', s: 1 } });
  });

  it("a new client given the old one's session resumes its stream: what was missed is replayed to the patterns it subscribes", async () => {
    const b = await broker();
    const first = client(b, { reconnect: false });
    record(first); // wakes the waits on its state
    text(first);
    await waitFor('subscribed', () => b.connections[0]?.patterns.has('feed.*'));
    b.publish('feed.x', new TextEncoder().encode('seen'));
    await waitFor('the event at the first client', () => first.session?.seq === 1);
    const session = first.session!;
    b.connections[0]!.socket.terminate(); // the page went away without quit
    await waitFor('the first client closed', () => first.state === 'closed');
    b.publish('feed.x', new TextEncoder().encode('missed'));
    const second = client(b, { resume: session });
    const got = text(second);
    const seen = resumes(second);
    await waitFor('the replay', () => got.length === 1);
    expect(got).toEqual(['missed']);
    expect(seen).toEqual([{ recovered: true, replayed: 1 }]);
    expect(second.uuid).toBe(session.uuid);
  });
});
