// The broker over an engine that answers later (the shape of one that sequences over the network):
// publish acks, resume, rewind and history take their asynchronous paths, and live events that
// arrive while the broker waits on the engine are held and joined once, in stream order.
import { afterEach, describe, expect, it } from 'vitest';
import {
  CloseCode, FrameType, PROTOCOL_VERSION, decodeFrame,
  type AckFrame, type EventFrame, type EventsFrame, type Frame, type WelcomeFrame,
} from '@crier/protocol';
import { systemClock } from '../src/clock.js';
import { MemoryEngine } from '../src/engine/memory-engine.js';
import type { Broker } from '../src/index.js';
import { AsyncEngine, type AsyncEngineOptions } from './engine/async-engine.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

afterEach(cleanup);

function laterEngine(options: AsyncEngineOptions = {}): AsyncEngine {
  const memory = new MemoryEngine({
    channelCacheSize: 1000, historySize: 100, historyBytes: 1 << 20, historyTtl: 300_000, historyTotalBytes: 64 << 20,
    idempotencyWindow: 120_000, idempotencyKeys: 10_000,
  }, systemClock);
  return new AsyncEngine(memory, options);
}

async function publish(publisher: RawClient, channel: string, body: string, extra: { i?: string } = {}): Promise<AckFrame> {
  const ack = await publisher.request({ t: FrameType.publish, c: channel, d: text(body), ...extra });
  expect(ack.t).toBe(FrameType.ack);
  return ack as AckFrame;
}

const bodyOf = (e: EventFrame): string => `${e.c}:${Buffer.from(e.d).toString()}`;
const bodies = (events: EventFrame[]): string[] => events.map(bodyOf);
const unpack = (frame: EventsFrame): EventFrame[] => frame.ev.map((bytes) => decodeFrame(bytes) as EventFrame);

/** The first frame answering request `r` with `type`. */
function answer<T extends Frame>(client: RawClient, type: FrameType, r: number): Promise<T> {
  return client.waitFrame(`frame type ${type} for request ${r}`, (f) => f.t === type && 'r' in f && f.r === r) as Promise<T>;
}

/**
 * A stream subscribed to `user.>` and `order.created` that saw one event, dropped without quit
 * and parked; then events it missed published: three it matches, one it does not.
 */
async function parkedWithMissed(engine: AsyncEngine): Promise<{ b: Broker; url: string; stream: RawClient; publisher: RawClient; parked: () => number }> {
  const b = await startBroker({ engine });
  const parked = (): number => b.stats().sessions.parked;
  const stream = await RawClient.connect(b.url);
  await stream.subscribe('user.>');
  await stream.subscribe('order.created');
  const publisher = await RawClient.connect(b.url);
  await publish(publisher, 'user.a', 'seen');
  await stream.waitEvents(1);
  stream.ws.terminate();
  await waitFor('the broker to park the stream', () => parked() === 1);
  await publish(publisher, 'user.a', 'm1');
  await publish(publisher, 'user.new', 'm2'); // a channel that did not exist when the stream dropped
  await publish(publisher, 'other.x', 'not subscribed');
  await publish(publisher, 'order.created', 'm3');
  return { b, url: b.url, stream, publisher, parked };
}

function resumeHello(old: RawClient): Frame {
  const welcome = old.welcome!;
  return { t: FrameType.hello, v: PROTOCOL_VERSION, u: welcome.u, s: welcome.s, rp: { e: welcome.ep!, s: old.events().at(-1)!.s! } };
}

/** Event frames in arrival order, the welcome first among them. */
function afterWelcome(client: RawClient): EventFrame[] {
  const kinds = client.frames.filter((f) => f.t === FrameType.welcome || f.t === FrameType.event).map((f) => f.t);
  expect(kinds[0]).toBe(FrameType.welcome);
  return client.events();
}

function expectStreamOrder(events: EventFrame[]): void {
  const seqs = events.map((e) => e.s!);
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
}

describe('publish over an engine that answers later', () => {
  it('acknowledges with the sequenced event\'s id, offset and epoch, and delivers in publish order', async () => {
    const engine = laterEngine();
    const b = await startBroker({ engine });
    const sub = await RawClient.connect(b.url);
    await sub.subscribe('p.*');
    const publisher = await RawClient.connect(b.url);
    const ack = await publish(publisher, 'p.a', 'first');
    const [event] = await sub.waitEvents(1);
    expect(ack).toMatchObject({ id: event!.id, o: 1, e: event!.e });
    for (let i = 0; i < 20; i++) publisher.send({ t: FrameType.publish, c: `p.${i % 3}`, d: text(String(i)) }); // one turn
    const all = await sub.waitEvents(21);
    expect(all.slice(1).map((e) => Buffer.from(e.d).toString())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    expectStreamOrder(all);
    expect(engine.calls.get('publish')).toBe(21);
  });

  it('answers a repeated message id with the first ack, delivered once', async () => {
    const b = await startBroker({ engine: laterEngine() });
    const sub = await RawClient.connect(b.url);
    await sub.subscribe('p.*');
    const publisher = await RawClient.connect(b.url);
    const first = await publish(publisher, 'p.a', 'once', { i: 'm1' });
    const again = await publish(publisher, 'p.a', 'twice', { i: 'm1' });
    expect([again.id, again.o, again.e]).toEqual([first.id, first.o, first.e]);
    await publish(publisher, 'p.a', 'after');
    expect(bodies(await sub.waitEvents(2))).toEqual(['p.a:once', 'p.a:after']);
  });
});

describe('resume over an engine that answers later', () => {
  it('replays the missed events once, in order, before live ones published in the same turn as the hello', async () => {
    const engine = laterEngine();
    const { url, stream, publisher } = await parkedWithMissed(engine);
    const back = await RawClient.open(url);
    // The hello and live publishes in one turn: the broker reads them while it waits on the engine.
    back.send(resumeHello(stream));
    publisher.send({ t: FrameType.publish, c: 'user.a', d: text('live1') });
    publisher.send({ t: FrameType.publish, c: 'order.created', d: text('live2') });
    const welcome = (await back.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
    expect(welcome.u).toBe(stream.welcome!.u);
    expect(welcome.rs?.why).toBeUndefined();
    expect(welcome.rs?.n).toBeGreaterThanOrEqual(3); // live ones sequenced before the take are replayed too
    await back.waitEvents(5);
    await publish(publisher, 'user.b', 'live3');
    await back.waitEvents(6);
    const events = afterWelcome(back);
    expect(bodies(events)).toEqual(['user.a:m1', 'user.new:m2', 'order.created:m3', 'user.a:live1', 'order.created:live2', 'user.b:live3']);
    expectStreamOrder(events);
  });

  it.each(['at-call', 'at-answer'] as const)(
    'holds live events while the take and the replay are pending, and sends each once after the replay (reads %s)',
    async (reads) => {
      const engine = laterEngine({ reads });
      const { url, stream, publisher } = await parkedWithMissed(engine);
      engine.hold('takeSession', 'replay');
      const back = await RawClient.open(url);
      back.send(resumeHello(stream));
      await waitFor('the take to be asked', () => engine.pending === 1);
      await publish(publisher, 'user.a', 'during the take'); // not live yet: replayed
      engine.release();
      await waitFor('both replays to be asked', () => engine.pending === 2);
      await publish(publisher, 'order.created', 'during the replay'); // live: held
      await publish(publisher, 'other.x', 'not subscribed');
      engine.unhold();
      const welcome = (await back.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
      // Read at the call, the replays miss what was published after them (held instead).
      expect(welcome.rs).toEqual({ n: reads === 'at-call' ? 4 : 5 });
      await back.waitEvents(5);
      await publish(publisher, 'user.b', 'after');
      await back.waitEvents(6);
      const events = afterWelcome(back);
      expect(bodies(events)).toEqual([
        'user.a:m1', 'user.new:m2', 'order.created:m3', 'user.a:during the take', 'order.created:during the replay', 'user.b:after',
      ]);
      expectStreamOrder(events);
    },
  );

  // A take answered after the socket closed: the session handed over is parked again (open(),
  // transport/frame-handlers.ts), so the next resume still gets everything.
  it('a resume whose socket dies while the take is pending leaves the stream resumable', async () => {
    const engine = laterEngine();
    const { b, url, stream, parked } = await parkedWithMissed(engine);
    engine.hold('takeSession');
    const lost = await RawClient.open(url);
    lost.send(resumeHello(stream));
    await waitFor('the take to be asked', () => engine.pending === 1);
    lost.ws.terminate();
    await waitFor('the broker to free the dropped socket', () => b.stats().connections === 1);
    engine.unhold();
    await waitFor('the take to be answered', () => engine.calls.get('takeSession') === 1);
    const back = await RawClient.open(url);
    back.send(resumeHello(stream));
    const welcome = (await back.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
    expect(welcome.rs).toEqual({ n: 3 });
    expect(bodies(afterWelcome(back))).toEqual(['user.a:m1', 'user.new:m2', 'order.created:m3']);
    expect(parked()).toBe(0);
  });

  // The connection registered by the resume gets a new secret that only its welcome carries; dying
  // before the welcome, it is parked with the secret the client resumed with still valid
  // (formerSecret), and each restored subscription keeps its floor (next test).
  it('a resume whose socket dies while the replay is pending parks the stream with what it still misses', async () => {
    const engine = laterEngine();
    const { url, stream, publisher, parked } = await parkedWithMissed(engine);
    engine.hold('replay');
    const lost = await RawClient.open(url);
    lost.send(resumeHello(stream));
    await waitFor('both replays to be asked', () => engine.pending === 2);
    lost.ws.terminate(); // the client got none of the replay: it resumes again from the same position
    await waitFor('the broker to park the stream again', () => parked() === 1);
    engine.unhold();
    await publish(publisher, 'user.a', 'm4');
    const back = await RawClient.open(url);
    back.send(resumeHello(stream));
    await waitFor('the welcome or a close', () => back.closed ?? back.frames.find((f) => f.t === FrameType.welcome), { wakeOn: [back.changed] });
    expect(back.closed).toBeUndefined();
    const welcome = back.frames.find((f) => f.t === FrameType.welcome) as WelcomeFrame;
    expect(welcome.rs).toEqual({ n: 4 });
    await back.waitEvents(4);
    expect(bodies(afterWelcome(back))).toEqual(['user.a:m1', 'user.new:m2', 'order.created:m3', 'user.a:m4']);
  });

  // A restored subscription keeps the floor it had (restore(), transport/resume.ts), so a session
  // parked again in the middle of a replay replays from where the client really is (memory engine too).
  it('a resume from inside the previous resume\'s replay gets the rest of it', async () => {
    const engine = laterEngine();
    const { url, stream, parked } = await parkedWithMissed(engine);
    const first = await RawClient.open(url);
    first.send(resumeHello(stream));
    first.welcome = (await first.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
    const replayed = await first.waitEvents(3);
    first.ws.terminate();
    await waitFor('the broker to park the stream again', () => parked() === 1);
    // The socket died with m2 and m3 still in flight: the client has the welcome and m1 only.
    const back = await RawClient.open(url);
    back.send({ t: FrameType.hello, v: PROTOCOL_VERSION, u: first.welcome.u, s: first.welcome.s, rp: { e: first.welcome.ep!, s: replayed[0]!.s! } });
    const welcome = (await back.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
    expect(welcome.rs).toEqual({ n: 2 });
    await back.waitEvents(2);
    expect(bodies(afterWelcome(back))).toEqual(['user.new:m2', 'order.created:m3']);
  });

  it('refuses a resume whose secret the engine does not match, and keeps the session parked', async () => {
    const engine = laterEngine();
    const { url, stream, parked } = await parkedWithMissed(engine);
    const thief = await RawClient.open(url);
    thief.send({ ...resumeHello(stream), s: 'not the secret' } as Frame);
    expect((await thief.waitClose()).code).toBe(CloseCode.helloRejected);
    expect(parked()).toBe(1);
    const back = await RawClient.open(url);
    back.send(resumeHello(stream));
    await back.waitEvents(3);
    expect(bodies(afterWelcome(back))).toEqual(['user.a:m1', 'user.new:m2', 'order.created:m3']);
  });
});

describe('rewind and history over an engine that answers later', () => {
  it.each(['at-call', 'at-answer'] as const)(
    'a subscribe with w answers its rewind in an events frame before the ack and live events, each event once (reads %s)',
    async (reads) => {
      const engine = laterEngine({ reads });
      const b = await startBroker({ engine });
      const publisher = await RawClient.connect(b.url);
      for (const [c, d] of [['r.a', 'a1'], ['r.b', 'b1'], ['x', 'x1'], ['r.a', 'a2']]) await publish(publisher, c!, d!);
      const sub = await RawClient.connect(b.url);
      engine.hold('rewind');
      sub.send({ t: FrameType.subscribe, r: 1, p: 'r.*', w: 2 });
      await waitFor('the rewind to be asked', () => engine.pending === 1);
      await publish(publisher, 'r.b', 'live1'); // live: held behind the rewind
      engine.unhold();
      const rewound = await answer<EventsFrame>(sub, FrameType.events, 1);
      await answer<AckFrame>(sub, FrameType.ack, 1);
      await publish(publisher, 'r.a', 'live2');
      await sub.waitEvents(reads === 'at-call' ? 2 : 1);
      // Read at the answer, the rewind's last two already hold live1.
      expect(bodies(unpack(rewound))).toEqual(reads === 'at-call' ? ['r.b:b1', 'r.a:a2'] : ['r.a:a2', 'r.b:live1']);
      expect(bodies(sub.events())).toEqual(reads === 'at-call' ? ['r.b:live1', 'r.a:live2'] : ['r.a:live2']);
      const kinds = sub.frames.map((f) => f.t).filter((t) => t !== FrameType.welcome);
      expect(kinds.indexOf(FrameType.events)).toBe(0);
      expectStreamOrder([...unpack(rewound), ...sub.events()]);
    },
  );

  // Live events are held until every pending read (rewinds, a resume's replay) answered
  // (Connection.hold/unhold): r.b's live event never comes before r.b's rewind, nor twice.
  it.each(['at-call', 'at-answer'] as const)(
    'two subscribes with w in one turn: each rewind before its subscription\'s live events, each event once (reads %s)',
    async (reads) => {
      const engine = laterEngine({ reads });
      const b = await startBroker({ engine });
      const publisher = await RawClient.connect(b.url);
      for (const [c, d] of [['r.a', 'a1'], ['r.b', 'b1']]) await publish(publisher, c!, d!);
      const sub = await RawClient.connect(b.url);
      engine.hold('rewind');
      sub.send({ t: FrameType.subscribe, r: 1, p: 'r.a', w: 5 });
      sub.send({ t: FrameType.subscribe, r: 2, p: 'r.b', w: 5 });
      await waitFor('both rewinds to be asked', () => engine.pending === 2);
      await publish(publisher, 'r.a', 'liveA');
      await publish(publisher, 'r.b', 'liveB');
      engine.unhold();
      await answer<AckFrame>(sub, FrameType.ack, 2);
      await publish(publisher, 'r.a', 'end');
      await publish(publisher, 'r.b', 'end');
      await waitFor('the last live events', () => sub.events().filter((e) => Buffer.from(e.d).toString() === 'end').length === 2, {
        wakeOn: [sub.changed],
      });
      for (const [r, channel] of [[1, 'r.a'], [2, 'r.b']] as const) {
        // What this subscription got, in arrival order: its rewind's events, then live events.
        const got: EventFrame[] = [];
        let rewindAt = -1;
        sub.frames.forEach((f, i) => {
          if (f.t === FrameType.events && f.r === r) {
            rewindAt = i;
            got.push(...unpack(f));
          } else if (f.t === FrameType.event && f.c === channel) {
            expect(rewindAt, `${channel}: a live event before its rewind`).toBeGreaterThanOrEqual(0);
            got.push(f);
          }
        });
        const short = channel.slice(2);
        expect(bodies(got)).toEqual([`${channel}:${short}1`, `${channel}:live${short.toUpperCase()}`, `${channel}:end`]);
        expectStreamOrder(got);
      }
    },
  );

  it('answers a history frame (t 14) with an events frame (t 15): from the start, after a position, paged', async () => {
    const engine = laterEngine();
    const b = await startBroker({ engine });
    const publisher = await RawClient.connect(b.url);
    const first = await publish(publisher, 'h.a', '1');
    for (const d of ['2', '3']) await publish(publisher, 'h.a', d);
    const reader = await RawClient.connect(b.url);
    reader.send({ t: FrameType.history, r: 1, c: 'h.a' });
    const all = await answer<EventsFrame>(reader, FrameType.events, 1);
    expect(bodies(unpack(all))).toEqual(['h.a:1', 'h.a:2', 'h.a:3']);
    expect(all).toMatchObject({ e: first.e, o: 3, ok: true, m: false });
    reader.send({ t: FrameType.history, r: 2, c: 'h.a', e: first.e!, o: 1, n: 1 });
    const page = await answer<EventsFrame>(reader, FrameType.events, 2);
    expect([bodies(unpack(page)), page.ok, page.m]).toEqual([['h.a:2'], true, true]);
    reader.send({ t: FrameType.history, r: 3, c: 'h.a', e: 'another-epoch', o: 1 });
    const other = await answer<EventsFrame>(reader, FrameType.events, 3);
    expect([bodies(unpack(other)), other.ok]).toEqual([['h.a:1', 'h.a:2', 'h.a:3'], false]);
    expect(engine.calls.get('history')).toBe(3);
  });
});
