// Resume after a reconnect: a stream that drops without quit is parked for resumeWindow; a hello
// with its uuid, secret and last stream position (rp) gets its subscriptions back and every
// missed event, in stream order, once, before anything live; or `recovered: false` and why.
import { afterEach, describe, expect, it } from 'vitest';
import { CloseCode, FrameType, PROTOCOL_VERSION, decodeFrame, type EventFrame, type EventsFrame, type Frame, type WelcomeFrame } from '@crier/protocol';
import type { Clock } from '../src/clock.js';
import { systemClock } from '../src/clock.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

afterEach(cleanup);

/** The real clock, whose `now()` a test can move forward (timers stay real). */
function steppedClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return { ...systemClock, now: () => systemClock.now() + offset, advance: (ms) => void (offset += ms) };
}

/** Connects as a stream that subscribes to `patterns`, and a publisher. */
async function streamAndPublisher(url: string, patterns: string[]): Promise<{ stream: RawClient; publisher: RawClient }> {
  const stream = await RawClient.connect(url);
  for (const p of patterns) await stream.subscribe(p);
  const publisher = await RawClient.connect(url);
  return { stream, publisher };
}

async function publish(publisher: RawClient, channel: string, body: string, extra: Partial<{ l: string[]; i: string }> = {}): Promise<Frame> {
  const ack = await publisher.request({ t: FrameType.publish, c: channel, d: text(body), ...extra });
  expect(ack.t).toBe(FrameType.ack);
  return ack;
}

/** Drops the stream's socket without a close handshake, and waits until the broker parked it. */
async function drop(stream: RawClient, parked: () => number): Promise<void> {
  const before = parked();
  stream.ws.terminate();
  await waitFor('the broker to park the stream', () => parked() > before);
}

/** Opens a new socket resuming `old`'s stream from the last event it received. */
async function resume(url: string, old: RawClient, position?: { e: string; s: number }): Promise<RawClient> {
  const welcome = old.welcome!;
  const last = old.events().at(-1)?.s ?? 0;
  const next = await RawClient.open(url);
  next.send({ t: FrameType.hello, v: PROTOCOL_VERSION, u: welcome.u, s: welcome.s, rp: position ?? { e: welcome.ep!, s: last } });
  next.welcome = (await next.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
  return next;
}

const bodies = (events: EventFrame[]): string[] => events.map((e) => `${e.c}:${Buffer.from(e.d).toString()}`);

describe('resume within the window', () => {
  it('replays every missed event of a wildcard subscription, on seen and unseen channels, in order, once, then live', async () => {
    const b = await startBroker();
    const parked = (): number => b.stats().sessions.parked;
    const { stream, publisher } = await streamAndPublisher(b.url, ['user.>', 'order.created']);
    await publish(publisher, 'user.a', 'seen');
    await stream.waitEvents(1);
    await drop(stream, parked);
    await publish(publisher, 'user.a', 'm1');
    await publish(publisher, 'user.new.channel', 'm2'); // a channel that did not exist before the drop
    await publish(publisher, 'other.x', 'not subscribed');
    await publish(publisher, 'order.created', 'm3');
    await publish(publisher, 'user.a', 'm4');

    const back = await resume(b.url, stream);
    expect(back.welcome!.rs).toEqual({ n: 4 });
    expect(back.welcome!.u).toBe(stream.welcome!.u);
    await back.waitEvents(4);
    await publish(publisher, 'user.a', 'live'); // the restored subscriptions are live: no subscribe sent
    const all = await back.waitEvents(5);
    expect(bodies(all)).toEqual(['user.a:m1', 'user.new.channel:m2', 'order.created:m3', 'user.a:m4', 'user.a:live']);
    const seqs = all.map((e) => e.s!);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    // The welcome comes first, every replayed event before the live one.
    const order = back.frames.map((f) => f.t).filter((t) => t === FrameType.welcome || t === FrameType.event);
    expect(order[0]).toBe(FrameType.welcome);
    expect(b.stats().sessions).toEqual({ parked: 0, resumed: 1, notRecovered: 0 });
  });

  it('a client that saw its socket die before the broker did takes the live stream over and misses nothing', async () => {
    const b = await startBroker();
    const { stream, publisher } = await streamAndPublisher(b.url, ['a.*']);
    await publish(publisher, 'a.b', 'seen');
    await stream.waitEvents(1);
    // Stream position 0: the client says it got nothing (its socket died before 'seen' arrived).
    const back = await resume(b.url, stream, { e: stream.welcome!.ep!, s: 0 });
    expect((await stream.waitClose()).code).toBe(CloseCode.replaced);
    expect(back.welcome!.rs).toEqual({ n: 1 });
    await publish(publisher, 'a.c', 'after');
    expect(bodies(await back.waitEvents(2))).toEqual(['a.b:seen', 'a.c:after']);
  });

  it('replays each subscription from when it became live, never before', async () => {
    const b = await startBroker();
    const { stream, publisher } = await streamAndPublisher(b.url, ['x.one']);
    await publish(publisher, 'x.two', 'before the second subscription');
    await stream.subscribe('x.two');
    await drop(stream, () => b.stats().sessions.parked);
    await publish(publisher, 'x.two', 'missed');
    const back = await resume(b.url, stream, { e: stream.welcome!.ep!, s: 0 });
    expect(back.welcome!.rs).toEqual({ n: 1 });
    expect(bodies(await back.waitEvents(1))).toEqual(['x.two:missed']);
  });

  it('keeps a filtered subscription\'s filter', async () => {
    const b = await startBroker();
    const stream = await RawClient.connect(b.url);
    expect((await stream.request({ t: FrameType.subscribe, r: 0, p: 'job.*', f: { l: ['urgent'] } })).t).toBe(FrameType.ack);
    const publisher = await RawClient.connect(b.url);
    await drop(stream, () => b.stats().sessions.parked);
    await publish(publisher, 'job.a', 'routine', { l: ['low'] });
    await publish(publisher, 'job.a', 'alert', { l: ['urgent'] });
    const back = await resume(b.url, stream);
    expect(back.welcome!.rs).toEqual({ n: 1 });
    await publish(publisher, 'job.b', 'routine again', { l: ['low'] });
    await publish(publisher, 'job.b', 'alert again', { l: ['urgent'] });
    expect(bodies(await back.waitEvents(2))).toEqual(['job.a:alert', 'job.b:alert again']);
  });
});

describe('resume that cannot recover everything says why', () => {
  it('window_passed: the session is freed after resumeWindow, and nothing is restored', async () => {
    const clock = steppedClock();
    const b = await startBroker({ clock, resumeWindow: 60_000 });
    const { stream, publisher } = await streamAndPublisher(b.url, ['a.b']);
    await drop(stream, () => b.stats().sessions.parked);
    clock.advance(60_001);
    expect(b.stats().sessions.parked).toBe(0);
    const back = await resume(b.url, stream);
    expect(back.welcome!.rs).toEqual({ n: 0, why: 'window_passed' });
    await publish(publisher, 'a.b', 'not subscribed any more');
    expect(b.stats().subscriptions).toBe(0);
    expect(b.stats().sessions).toMatchObject({ resumed: 0, notRecovered: 1 });
  });

  it('broker_restarted: a position from another stream epoch', async () => {
    const b = await startBroker();
    const stream = await RawClient.connect(b.url);
    const back = await resume(b.url, stream, { e: 'another-epoch', s: 12 });
    expect(back.welcome!.rs).toEqual({ n: 0, why: 'broker_restarted' });
  });

  it('history_evicted: the newest events are replayed, and the pattern is named', async () => {
    const b = await startBroker({ historySize: 2 });
    const { stream, publisher } = await streamAndPublisher(b.url, ['log.>']);
    await drop(stream, () => b.stats().sessions.parked);
    for (let i = 1; i <= 5; i++) await publish(publisher, 'log.app', `m${i}`);
    const back = await resume(b.url, stream);
    expect(back.welcome!.rs).toEqual({ n: 2, why: 'history_evicted', f: ['log.>'] });
    expect(bodies(await back.waitEvents(2))).toEqual(['log.app:m4', 'log.app:m5']);
  });

  it('history off: recovered only when nothing was missed', async () => {
    const b = await startBroker({ historySize: 0 });
    const { stream, publisher } = await streamAndPublisher(b.url, ['a.*', 'b.*']);
    await drop(stream, () => b.stats().sessions.parked);
    await publish(publisher, 'a.x', 'lost');
    const back = await resume(b.url, stream);
    expect(back.welcome!.rs).toEqual({ n: 0, why: 'history_evicted', f: ['a.*'] });
  });

  it('quit ends the stream: nothing is parked', async () => {
    const b = await startBroker();
    const stream = await RawClient.connect(b.url);
    await stream.subscribe('a.b');
    stream.send({ t: FrameType.quit });
    await stream.waitClose();
    expect(b.stats().sessions.parked).toBe(0);
    const back = await resume(b.url, stream);
    expect(back.welcome!.rs).toEqual({ n: 0, why: 'window_passed' });
  });

  it('resumeWindow 0 parks nothing', async () => {
    const b = await startBroker({ resumeWindow: 0 });
    const stream = await RawClient.connect(b.url);
    await stream.subscribe('a.b');
    stream.ws.terminate();
    await waitFor('the broker to free the stream', () => b.stats().connections === 0);
    expect(b.stats().sessions.parked).toBe(0);
  });
});

describe('a parked stream belongs to its secret', () => {
  it('a resume with a wrong secret is refused (4002 forbidden) and the session stays for its owner', async () => {
    const b = await startBroker();
    const { stream, publisher } = await streamAndPublisher(b.url, ['a.b']);
    await drop(stream, () => b.stats().sessions.parked);
    const thief = await RawClient.open(b.url);
    thief.send({ t: FrameType.hello, v: PROTOCOL_VERSION, u: stream.welcome!.u, s: 'x'.repeat(32), rp: { e: stream.welcome!.ep!, s: 0 } });
    const closed = await thief.waitClose();
    expect(closed.code).toBe(CloseCode.helloRejected);
    expect(closed.reason).toMatch(/^forbidden: /);
    await publish(publisher, 'a.b', 'kept for the owner');
    const back = await resume(b.url, stream);
    expect(back.welcome!.rs).toEqual({ n: 1 });
  });
});

describe('rewind and history over the socket', () => {
  it('subscribe with w: the last N matching events in an events frame before the ack, then live', async () => {
    const b = await startBroker();
    const publisher = await RawClient.connect(b.url);
    for (const [c, m] of [['t.a', '1'], ['t.b', '2'], ['u.x', 'other'], ['t.a', '3']] as const) await publish(publisher, c, m);
    const late = await RawClient.connect(b.url);
    const ack = await late.request({ t: FrameType.subscribe, r: 0, p: 't.*', w: 2 });
    expect(ack.t).toBe(FrameType.ack);
    const replay = late.frames.find((f): f is EventsFrame => f.t === FrameType.events)!;
    expect(late.frames.indexOf(replay)).toBeLessThan(late.frames.indexOf(ack));
    expect(replay.ev.map((bytes) => decodeEvent(bytes))).toEqual(['t.b:2', 't.a:3']);
    const last = await late.request({ t: FrameType.subscribe, r: 0, p: 't.*', w: 0 }); // held already: rewinds all the same
    expect(last.t).toBe(FrameType.ack);
    const perChannel = late.frames.filter((f): f is EventsFrame => f.t === FrameType.events)[1]!;
    expect(perChannel.ev.map((bytes) => decodeEvent(bytes))).toEqual(['t.b:2', 't.a:3']);
    const tooMany = await late.request({ t: FrameType.subscribe, r: 0, p: 't.*', w: 1001 });
    expect(tooMany).toMatchObject({ t: FrameType.error, code: 'bad_frame' });
  });

  it('a history frame answers the retained events after a position, with the channel\'s epoch and offset', async () => {
    const b = await startBroker();
    const publisher = await RawClient.connect(b.url);
    const first = await publish(publisher, 'h.c', 'one');
    await publish(publisher, 'h.c', 'two');
    await publish(publisher, 'h.c', 'three');
    const reader = await RawClient.connect(b.url);
    reader.send({ t: FrameType.history, r: 7, c: 'h.c', e: (first as { e: string }).e, o: 1, n: 1 });
    const page = (await reader.waitFrame('events', (f) => f.t === FrameType.events)) as EventsFrame;
    expect(page).toMatchObject({ r: 7, e: (first as { e: string }).e, o: 3, ok: true, m: true });
    expect(page.ev.map((bytes) => decodeEvent(bytes))).toEqual(['h.c:two']);
    const bad = await reader.request({ t: FrameType.history, r: 0, c: 'h.*' });
    expect(bad).toMatchObject({ t: FrameType.error, code: 'bad_channel' });
  });
});

describe('idempotent publish', () => {
  it('a repeated message id is acknowledged with the first result and delivered once', async () => {
    const b = await startBroker();
    const { stream, publisher } = await streamAndPublisher(b.url, ['pay.>']);
    const first = await publish(publisher, 'pay.done', 'once', { i: 'msg-1' });
    const again = await publish(publisher, 'pay.done', 'once', { i: 'msg-1' });
    expect(again).toEqual({ ...first, r: (again as { r: number }).r });
    await publish(publisher, 'pay.done', 'marker');
    expect(bodies(await stream.waitEvents(2))).toEqual(['pay.done:once', 'pay.done:marker']);
    // Another publisher (another stream, anonymous) has its own ids.
    const other = await RawClient.connect(b.url);
    const theirs = await publish(other, 'pay.done', 'theirs', { i: 'msg-1' });
    expect((theirs as { o: number }).o).toBe(3);
    const bad = await publisher.request({ t: FrameType.publish, c: 'pay.done', d: text('x'), i: '' });
    expect(bad).toMatchObject({ t: FrameType.error, code: 'bad_frame' });
  });
});

function decodeEvent(bytes: Uint8Array): string {
  const f = decode(bytes);
  return `${f.c}:${Buffer.from(f.d).toString()}`;
}

function decode(bytes: Uint8Array): EventFrame {
  return decodeFrame(bytes) as EventFrame;
}
