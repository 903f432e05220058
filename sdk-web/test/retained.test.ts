// Retained events: client.history() over the history/events frames, and subscribe's rewind
// (`since`), whose events frame goes to its own subscription alone. Scripted sockets where the
// order of frames is the point; the fake broker for the bytes across a socket.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CloseCode, CrierError, ErrorCode, FrameType, encodeFrame, type EventFrame } from '@crier/protocol';
import { connect as connectCore } from '../src/client.js';
import { withFilters } from '../src/filter.js';
import { connect } from '../src/full.js';
import { withRewind } from '../src/rewind.js';
import { events } from '../src/stream.js';
import type { CrierClientFull, CrierEvent } from '../src/types.js';
import { startFakeBroker, type FakeBroker } from './fake-broker.js';
import { scriptedClient } from './scripted-client.js';
import { changed, waitFor } from './wait-for.js';

const event = (n: number, c = 'a.b'): EventFrame => ({ t: FrameType.event, c, d: new Uint8Array([n]), id: `ev-${n}`, o: n, e: 'E', ts: 1000 + n, s: n });
const asEvent = (n: number, c = 'a.b'): CrierEvent => ({ channel: c, data: new Uint8Array([n]), id: `ev-${n}`, offset: n, epoch: 'E', time: 1000 + n });
const bytesOf = (...ns: number[]): Uint8Array[] => ns.map((n) => encodeFrame(event(n)));
const numbers = (events: CrierEvent[]): number[] => events.map((e) => e.data[0]!);

describe('client.history (scripted)', () => {
  it('sends a history frame and resolves with the events as subscribers get them, the epoch, offset, complete and more', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const page = client.history('a.b', { since: { epoch: 'E', offset: 3 }, limit: 2 });
    await Promise.resolve(); // sent once ready() resolved
    const [sent] = socket().sentOf(FrameType.history);
    expect(sent).toEqual({ t: FrameType.history, r: 1, c: 'a.b', e: 'E', o: 3, n: 2 });
    socket().receive({ t: FrameType.events, r: 1, ev: bytesOf(4, 5), e: 'E', o: 9, ok: true, m: true });
    await expect(page).resolves.toEqual({ events: [asEvent(4), asEvent(5)], epoch: 'E', offset: 9, complete: true, more: true });
  });

  it('asks for everything retained without options; complete is false only when the broker says ok: false', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const all = client.history('a.b');
    const since = client.history('a.b', { since: { epoch: 'old', offset: 1 } });
    await Promise.resolve();
    expect(socket().sentOf(FrameType.history)).toEqual([
      { t: FrameType.history, r: 1, c: 'a.b' },
      { t: FrameType.history, r: 2, c: 'a.b', e: 'old', o: 1 },
    ]);
    socket().receive({ t: FrameType.events, r: 1, ev: [], e: 'E', o: 0 });
    socket().receive({ t: FrameType.events, r: 2, ev: bytesOf(1), e: 'E', o: 1, ok: false, m: false });
    await expect(all).resolves.toEqual({ events: [], epoch: 'E', offset: 0, complete: true, more: false });
    await expect(since).resolves.toMatchObject({ complete: false, more: false, events: [asEvent(1)] });
  });

  it('waits until connected before it sends', async () => {
    const { client, socket, welcome } = scriptedClient();
    const page = client.history('a.b');
    socket().open();
    await Promise.resolve();
    expect(socket().sentOf(FrameType.history)).toEqual([]);
    welcome();
    await client.ready(); // resolves after history's own wait for it
    expect(socket().sentOf(FrameType.history)).toHaveLength(1);
    socket().receive({ t: FrameType.events, r: 1, ev: [], e: 'E', o: 0 });
    await expect(page).resolves.toMatchObject({ events: [] });
  });

  it('rejects bad_channel for a pattern or a malformed name before anything is sent', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    await expect(client.history('a.*')).rejects.toMatchObject({ code: ErrorCode.badChannel });
    await expect(client.history('a..b')).rejects.toBeInstanceOf(CrierError);
    expect(socket().sentOf(FrameType.history)).toEqual([]);
  });

  it("rejects with the broker's error, timeout, disconnected, closed", async () => {
    const { client, socket, welcome, clock } = scriptedClient({ requestTimeout: 2000 });
    welcome({ ka: 0 });
    const refused = client.history('a.b');
    await Promise.resolve();
    socket().receive({ t: FrameType.error, r: 1, code: ErrorCode.forbidden, msg: 'no grant covers a.b' });
    await expect(refused).rejects.toMatchObject({ code: ErrorCode.forbidden, message: 'no grant covers a.b' });
    const late = client.history('a.b');
    await Promise.resolve();
    clock.advance(2000);
    await expect(late).rejects.toMatchObject({ code: ErrorCode.timeout });
    const dropped = client.history('a.b');
    await Promise.resolve();
    socket().fireClose(CloseCode.abnormal);
    await expect(dropped).rejects.toMatchObject({ code: ErrorCode.disconnected });
    const never = client.history('a.b'); // waits for a welcome that never comes
    await client.quit();
    await expect(never).rejects.toMatchObject({ code: ErrorCode.closed });
  });
});

/** A core client with `withRewind()` of `@crier/sdk-web/rewind` (and filters), on scripted sockets. */
const rewinding = (): ReturnType<typeof scriptedClient> => scriptedClient({}, (url, o) => withRewind(withFilters(connectCore(url, o))));

describe("subscribe's rewind (scripted)", () => {
  it('without withRewind (a core client) since is refused with bad_frame, and nothing is sent', async () => {
    const { client, socket, welcome } = scriptedClient({}, connectCore);
    welcome();
    const sub = client.subscribe('a.*', () => {}, { since: 5 });
    await expect(sub.ready).rejects.toMatchObject({ code: ErrorCode.badFrame, message: 'since needs withRewind() of @crier/sdk-web/rewind' });
    expect(socket().sentOf(FrameType.subscribe)).toEqual([]);
    client.subscribe('b.*', () => {}, { since: 0 }); // rewinds nothing: a plain subscription
    expect(socket().sentOf(FrameType.subscribe).map((f) => [f.p, f.w])).toEqual([['b.*', undefined]]);
  });

  it('sends w: N for since N, 0 for since last, none without since (or since 0)', () => {
    const { client, socket, welcome } = rewinding();
    welcome({ lim: { mc: 10, mp: 1024, bs: 100 } });
    client.subscribe('a.*', () => {}, { since: 5 });
    client.subscribe('b.*', () => {}, { since: 'last' });
    client.subscribe('c.*', { labels: ['x'] }, () => {}, { since: 2 });
    client.subscribe('d.*', () => {}, { since: 0 });
    client.subscribe('e.*', () => {});
    expect(socket().sentOf(FrameType.subscribe).map((f) => [f.p, f.w])).toEqual([
      ['a.*', 5], ['b.*', 0], ['c.*', 2], ['d.*', undefined], ['e.*', undefined],
    ]);
  });

  it("the events frame goes to that subscription's handler alone, in order, before live events; not to others that match, nor onEvent", async () => {
    const { client, socket, welcome } = rewinding();
    welcome();
    const other: number[] = [];
    const everything: number[] = [];
    client.subscribe('a.>', (e) => other.push(e.data[0]!));
    client.onEvent((e) => everything.push(e.data[0]!));
    const got: number[] = [];
    const sub = client.subscribe('a.*', (e) => got.push(e.data[0]!), { since: 3 });
    const r = socket().sentOf(FrameType.subscribe)[1]!.r;
    socket().receive({ t: FrameType.events, r, ev: bytesOf(1, 2, 3) });
    socket().receive({ t: FrameType.ack, r });
    await sub.ready;
    socket().receive(event(4));
    expect(got).toEqual([1, 2, 3, 4]);
    expect(other).toEqual([4]);
    expect(everything).toEqual([4]);
  });

  it('live events that reach the connection before the rewind are not the rewinding handle\'s (the rewind holds them); other handles of the pattern get them', () => {
    const { client, socket, welcome } = rewinding();
    welcome();
    const first: number[] = [];
    client.subscribe('a.*', (e) => first.push(e.data[0]!));
    const r1 = socket().sentOf(FrameType.subscribe)[0]!.r;
    socket().receive({ t: FrameType.ack, r: r1 });
    const second: number[] = [];
    client.subscribe('a.*', (e) => second.push(e.data[0]!), { since: 2 });
    // One subscription on the broker: the rewind asks again for it, with w.
    const subscribes = socket().sentOf(FrameType.subscribe);
    expect(subscribes.map((f) => f.w)).toEqual([undefined, 2]);
    socket().receive(event(7)); // sent before the broker read the second subscribe
    socket().receive({ t: FrameType.events, r: subscribes[1]!.r, ev: bytesOf(6, 7) });
    socket().receive({ t: FrameType.ack, r: subscribes[1]!.r });
    socket().receive(event(8));
    expect(first).toEqual([7, 8]);
    expect(second).toEqual([6, 7, 8]);
  });

  it('an iterator yields the rewind first', async () => {
    const { client, socket, welcome } = rewinding();
    welcome();
    const got: number[] = [];
    const reading = (async () => {
      for await (const e of events(client, client.subscribe('a.*', undefined, { since: 'last' }))) {
        got.push(e.data[0]!);
        if (got.length === 3) break;
      }
    })();
    const [sent] = socket().sentOf(FrameType.subscribe);
    expect(sent!.w).toBe(0);
    socket().receive({ t: FrameType.events, r: sent!.r, ev: bytesOf(1, 2) });
    socket().receive({ t: FrameType.ack, r: sent!.r });
    socket().receive(event(3));
    await reading;
    expect(got).toEqual([1, 2, 3]);
  });

  it('asked before the welcome, it goes out after it: the subscription, then its rewind; the handle gets the rewind, then live', () => {
    const { client, socket, welcome } = rewinding();
    const got: number[] = [];
    client.subscribe('a.*', (e) => got.push(e.data[0]!), { since: 2 });
    const s = welcome();
    const [plain, rewind] = s.sentOf(FrameType.subscribe);
    expect([plain, rewind]).toEqual([
      { t: FrameType.subscribe, r: expect.any(Number), p: 'a.*' },
      { t: FrameType.subscribe, r: expect.any(Number), p: 'a.*', w: 2 },
    ]);
    s.receive({ t: FrameType.ack, r: plain!.r });
    s.receive(event(5)); // live before the broker read the rewind: in it
    s.receive({ t: FrameType.events, r: rewind!.r, ev: bytesOf(4, 5) });
    s.receive({ t: FrameType.ack, r: rewind!.r });
    s.receive(event(6));
    expect(got).toEqual([4, 5, 6]);
  });

  it('is not asked again after a reconnect once it came (the stream resumes instead); one lost with the connection is asked again', () => {
    const { client, socket, welcome, clock } = rewinding();
    welcome({ ep: 'EP' });
    const done: number[] = [];
    client.subscribe('a.*', (e) => done.push(e.data[0]!), { since: 1 });
    const first = socket().sentOf(FrameType.subscribe)[0]!;
    socket().receive({ t: FrameType.events, r: first.r, ev: bytesOf(1) });
    socket().receive({ t: FrameType.ack, r: first.r });
    const lost: number[] = [];
    client.subscribe('b.*', (e) => lost.push(e.data[0]!), { since: 5 });
    socket().fireClose(CloseCode.abnormal); // before b.*'s events frame
    clock.advance(1000);
    const s = welcome({ ep: 'EP', rs: { n: 0 } });
    expect(s.sentOf(FrameType.subscribe).map((f) => [f.p, f.w])).toEqual([['a.*', undefined], ['b.*', undefined], ['b.*', 5]]);
    const again = s.sentOf(FrameType.subscribe)[2]!;
    s.receive(event(8, 'b.x')); // live, before the rewind: not the rewinding handle's yet
    s.receive({ t: FrameType.events, r: again.r, ev: [encodeFrame(event(7, 'b.x')), encodeFrame(event(8, 'b.x'))] });
    s.receive(event(9, 'b.x'));
    expect(lost).toEqual([7, 8, 9]);
    expect(done).toEqual([1]);
  });

  it('a refused rewind rejects ready and removes the subscription, as a refused subscribe does', async () => {
    const { client, socket, welcome, rec } = rewinding();
    welcome();
    const sub = client.subscribe('a.*', () => {}, { since: 5000 });
    const r = socket().sentOf(FrameType.subscribe)[0]!.r;
    socket().receive({ t: FrameType.error, r, code: ErrorCode.badFrame, msg: 'a rewind asks for at most 1000 events, not 5000' });
    await expect(sub.ready).rejects.toMatchObject({ code: ErrorCode.badFrame });
    expect(rec.errors).toEqual([]);
  });
});

describe('history and rewind against the fake broker', () => {
  const brokers: FakeBroker[] = [];
  const clients: CrierClientFull[] = [];
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.quit()));
    await Promise.allSettled(brokers.splice(0).map((b) => b.close()));
  });

  it('history pages through a channel, and a rewinding subscriber gets the retained events, then live ones', async () => {
    const b = await startFakeBroker();
    brokers.push(b);
    const c = connect(b.url, { WebSocket, random: () => 0 });
    clients.push(c);
    for (const n of [1, 2, 3]) b.publish('h.x', new Uint8Array([n]));
    b.publish('h.other', new Uint8Array([9]));
    const first = await waitFor('the first page', c.history('h.x', { limit: 2 }));
    expect(numbers(first.events)).toEqual([1, 2]);
    expect(first).toMatchObject({ epoch: 'E1', offset: 3, complete: true, more: true });
    const last = first.events.at(-1)!;
    const next = await waitFor('the next page', c.history('h.x', { since: { epoch: last.epoch, offset: last.offset } }));
    expect(numbers(next.events)).toEqual([3]);
    expect(next.more).toBe(false);

    const got: CrierEvent[] = [];
    const sub = c.subscribe('h.x', (e) => (got.push(e), changed()), { since: 2 });
    await waitFor('subscribed', sub.ready);
    b.publish('h.x', new Uint8Array([4]));
    await waitFor('the live event', () => got.length === 3);
    expect(numbers(got)).toEqual([2, 3, 4]);
  });
});
