// Priority lanes: towards a subscriber that stopped reading, a high-priority event overtakes the
// normal events queued for it, an ack overtakes both, and the high lane has its own bound.
import { afterEach, expect, it } from 'vitest';
import { ErrorCode, FrameType, PROTOCOL_VERSION, type DroppedFrame, type ErrorFrame, type EventFrame, type Frame, type WelcomeFrame } from '@crier/protocol';
import { RawClient, cleanup, startBroker, waitFor } from './helpers.js';

afterEach(cleanup);

const isEvent = (f: Frame): f is EventFrame => f.t === FrameType.event;

/**
 * Publishes 64 KiB normal events on feed.x, one per turn (the next once `fast` has it), until the
 * broker counts a slow consumer (the frozen subscriber): how many were published.
 */
async function publishUntilSlow(b: Awaited<ReturnType<typeof startBroker>>, pub: RawClient, fast: RawClient): Promise<number> {
  const payload = new Uint8Array(64 * 1024).fill(1);
  let normal = 0;
  while (b.stats().slowConsumers === 0) {
    if (normal === 2000) throw new Error(`the frozen subscriber never became slow after ${normal} events`);
    pub.send({ t: FrameType.publish, c: 'feed.x', d: payload });
    await fast.waitEvents(++normal, 'feed.x');
  }
  return normal;
}

it('a frozen subscriber, once it thaws, gets the ack and the alerts ahead of the normal events queued before them; the high lane drops past its own bound', async () => {
  // bufferSize 16: the high lane holds 4 events.
  const b = await startBroker({ bufferSize: 16, maxBufferBytes: 4 * 1024 * 1024 });
  const [pub, fast, frozen] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url), RawClient.connect(b.url)]);
  await fast.subscribe('feed.>');
  await frozen.subscribe('feed.>');
  frozen.ws.pause(); // it stops reading: the kernel's buffers fill, then its queue at the broker

  // One normal event per turn (the next once the fast subscriber has it), so that once the
  // frozen one's socket is full, its events wait in the broker's queue, where they can be
  // overtaken, until it holds bufferSize and starts losing them.
  const normal = await publishUntilSlow(b, pub, fast);
  const droppedNormal = b.stats().dropped;
  expect(droppedNormal).toBeGreaterThan(0);

  // The frozen client still writes: its acked publish is answered while it does not read.
  frozen.send({ t: FrameType.publish, r: 77, c: 'other.x', d: new Uint8Array(1) });
  await waitFor('the frozen client\'s publish', () => b.stats().published === normal + 1);
  // Six alerts: the lane takes 4, the last 2 are dropped (and counted).
  for (let i = 1; i <= 6; i++) pub.send({ t: FrameType.publish, c: 'feed.alert', d: new Uint8Array([i]), pr: 1 });
  const alerts = await fast.waitEvents(6, 'feed.alert');
  expect(alerts.map((e) => e.pr)).toEqual([1, 1, 1, 1, 1, 1]);
  expect(fast.events('feed.x').every((e) => e.pr === undefined)).toBe(true);

  frozen.ws.resume();
  const notice = (await frozen.waitFrame('the dropped notice', (f) => f.t === FrameType.dropped, 15_000)) as DroppedFrame;
  expect(notice.n).toBe(droppedNormal + 2);
  expect(new Map(notice.c)).toEqual(new Map([['feed.x', droppedNormal], ['feed.alert', 2]]));

  const frames = frozen.frames;
  const at = (match: (f: Frame) => boolean): number => frames.findIndex(match);
  const ack = at((f) => f.t === FrameType.ack && f.r === 77);
  const alertAt = frames.flatMap((f, i) => (isEvent(f) && f.c === 'feed.alert' ? [i] : []));
  // The first four alerts arrived, in order, and nothing else of the high lane.
  expect(alertAt.map((i) => (frames[i] as EventFrame).d[0])).toEqual([1, 2, 3, 4]);
  expect(ack).toBeGreaterThanOrEqual(0);
  expect(ack).toBeLessThan(alertAt[0]!);
  // Normal events published before the alerts and still queued at the broker came after them:
  // the alerts overtook them. Every normal event that arrived after the ack came after the alerts.
  const firstAlert = frames[alertAt[0]!] as EventFrame;
  const overtaken = frames.slice(alertAt[3]! + 1).filter((f): f is EventFrame => isEvent(f) && f.c === 'feed.x');
  expect(overtaken.length).toBeGreaterThan(0);
  for (const e of overtaken) expect(e.s!).toBeLessThan(firstAlert.s!);
  expect(frames.slice(ack, alertAt[0]).filter(isEvent)).toEqual([]);
  // Nothing unaccounted: what it got plus what it was told it lost is everything.
  const received = frozen.events('feed.x');
  expect(received.length + droppedNormal).toBe(normal);
  const offsets = received.map((e) => e.o);
  expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
  await waitFor('the slow spell to end', () => b.stats().slowConsumers === 0);
}, 60_000);

it('a pr other than 0 or 1 is bad_frame; pr 0 is a normal publish', async () => {
  const b = await startBroker();
  const [pub, sub] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url)]);
  await sub.subscribe('p.x');
  const bad = (await pub.request({ t: FrameType.publish, r: 5, c: 'p.x', d: new Uint8Array(1), pr: 2 })) as ErrorFrame;
  expect(bad.t).toBe(FrameType.error);
  expect(bad.code).toBe(ErrorCode.badFrame);
  await pub.request({ t: FrameType.publish, r: 6, c: 'p.x', d: new Uint8Array([0]), pr: 0 });
  await pub.request({ t: FrameType.publish, r: 7, c: 'p.x', d: new Uint8Array([1]), pr: 1 });
  await b.publish('p.x', new Uint8Array([2]), { priority: 'high' });
  const got = await sub.waitEvents(3, 'p.x');
  expect(got.map((e) => [e.d[0], e.pr])).toEqual([[0, undefined], [1, 1], [2, 1]]);
  await expect(b.publish('p.x', new Uint8Array(1), { priority: 'urgent' as 'high' })).rejects.toMatchObject({ code: ErrorCode.badFrame });
});

it('POST /publish/<channel>?priority=high publishes a high-priority event; another value is 400 bad_frame; /metrics counts the lane', async () => {
  const b = await startBroker();
  const sub = await RawClient.connect(b.url);
  await sub.subscribe('h.x');
  const url = (path: string): string => new URL(path, b.url.replace(/^ws/, 'http')).toString();
  const post = (path: string): Promise<Response> => fetch(url(path), { method: 'POST', body: 'x' });
  expect((await post('/publish/h.x?priority=high')).status).toBe(202);
  expect((await post('/publish/h.x?priority=normal')).status).toBe(202);
  const bad = await post('/publish/h.x?priority=urgent');
  expect(bad.status).toBe(400);
  expect(await bad.json()).toMatchObject({ code: ErrorCode.badFrame });
  const got = await sub.waitEvents(2, 'h.x');
  expect(got.map((e) => e.pr)).toEqual([1, undefined]);
  const metrics = await (await fetch(url('/metrics'))).text();
  expect(metrics).toMatch(/^crier_priority_events_queued_total 1$/m);
  expect(metrics).toMatch(/^crier_priority_events_dropped_total 0$/m);
});

it('a resume from the last normal event before an overtaking alert replays the normal events it overtook, and the alert again (which the SDK skips)', async () => {
  // History large enough to hold every event of the test: the resume must be able to recover.
  const b = await startBroker({ bufferSize: 16, maxBufferBytes: 4 * 1024 * 1024, historySize: 5000, historyBytes: 512 * 1024 * 1024 });
  const [pub, fast, frozen] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url), RawClient.connect(b.url)]);
  await fast.subscribe('feed.>');
  await frozen.subscribe('feed.>');
  frozen.ws.pause();
  await publishUntilSlow(b, pub, fast);
  pub.send({ t: FrameType.publish, c: 'feed.alert', d: new Uint8Array([1]), pr: 1 });
  await fast.waitEvents(1, 'feed.alert');
  frozen.ws.resume();
  await frozen.waitFrame('the alert', (f) => isEvent(f) && f.c === 'feed.alert', 15_000);
  const events = frozen.events();
  const alertAt = events.findIndex((e) => e.c === 'feed.alert');
  const alert = events[alertAt]!;
  // Where a client that lost its connection right after the alert resumes: the last normal event.
  const position = events[alertAt - 1]!.s!;
  const overtaken = events.slice(alertAt + 1).filter((e) => e.s! < alert.s!).map((e) => e.s!);
  expect(overtaken.length).toBeGreaterThan(0);
  expect(Math.min(...overtaken)).toBeGreaterThan(position);

  const parked = b.stats().sessions.parked;
  frozen.ws.terminate();
  await waitFor('the broker to park the stream', () => b.stats().sessions.parked > parked);
  const welcome = frozen.welcome!;
  const next = await RawClient.open(b.url);
  next.send({ t: FrameType.hello, v: PROTOCOL_VERSION, u: welcome.u, s: welcome.s, rp: { e: welcome.ep!, s: position } });
  const resumed = (await next.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
  expect(resumed.rs).toMatchObject({ n: expect.any(Number) });
  expect(resumed.rs!.why).toBeUndefined();
  const replay = await next.waitEvents(resumed.rs!.n);
  const replayed = replay.map((e) => e.s!);
  // Every overtaken normal event comes back, nothing at or below the position, and the alert
  // again (pr: 1), in stream order: the SDK skips it, having remembered its position.
  for (const s of overtaken) expect(replayed).toContain(s);
  expect(replayed.every((s) => s > position)).toBe(true);
  expect(replay.filter((e) => e.c === 'feed.alert').map((e) => [e.s, e.pr])).toEqual([[alert.s, 1]]);
  expect(replayed).toEqual([...replayed].sort((x, y) => x - y));
}, 60_000);
