import { afterEach, expect, it } from 'vitest';
import { FrameType, type DroppedFrame } from '@crier/protocol';
import { RawClient, cleanup, publishUntil, startBroker, waitFor } from './helpers.js';

afterEach(cleanup);

it('a paused subscriber loses events (counted, and told once it drains) while a fast one on the same channel gets all, in order', async () => {
  const b = await startBroker({ bufferSize: 64, maxBufferBytes: 1024 * 1024 });
  const [fast, slow] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url)]);
  await fast.subscribe('load.data');
  await slow.subscribe('load.>');
  slow.ws.pause(); // it stops reading: kernel buffers fill, then the broker's budget for it

  // Closed loop: a batch at a time, and the next only once the fast subscriber has it all, so
  // the fast one never holds more than a batch, whatever the machine's speed. The loop ends
  // when the paused one has been losing events for a while; the kernel's buffers decide when.
  const payload = new Uint8Array(16 * 1024).fill(7);
  const BATCH = 32;
  const MAX_BATCHES = 400; // 200 MiB: far past any socket buffer
  let published = 0;
  let batchesWhileSlow = 0;
  for (let batch = 0; batchesWhileSlow < 5; batch++) {
    if (batch === MAX_BATCHES) throw new Error(`the paused subscriber never became slow after ${published} events`);
    for (let i = 0; i < BATCH; i++) b.publish('load.data', payload);
    published += BATCH;
    await fast.waitEvents(published, 'load.data');
    if (b.stats().slowConsumers === 1) batchesWhileSlow++;
  }
  const stats = b.stats();
  expect(stats.dropped).toBeGreaterThan(0);
  expect(fast.events('load.data').map((e) => e.o)).toEqual(Array.from({ length: published }, (_, i) => i + 1));

  slow.ws.resume();
  const notice = (await slow.waitFrame('the dropped notice', (f) => f.t === FrameType.dropped, 15_000)) as DroppedFrame;
  expect(notice.n).toBe(stats.dropped);
  expect(notice.c).toEqual([['load.data', notice.n]]);
  await waitFor('the slow consumer to leave the slow state', () => b.stats().slowConsumers === 0);

  b.publish('load.end', new Uint8Array(0));
  await slow.waitEvents(1, 'load.end', 15_000);
  // Nothing vanished unaccounted: what it got plus what it was told it lost is everything.
  const received = slow.events('load.data');
  expect(received.length + notice.n).toBe(published);
  // What it got is in order, and the notice came after the last event before the gap's end.
  const offsets = received.map((e) => e.o);
  expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
  expect(b.stats().dropped).toBe(notice.n);
}, 60_000);

it('a subscriber that never reads does not delay a fast one: remote publishes keep flowing', async () => {
  const b = await startBroker({ bufferSize: 16, maxBufferBytes: 256 * 1024 });
  const [pub, fast, frozen] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url), RawClient.connect(b.url)]);
  await fast.subscribe('feed.>');
  await frozen.subscribe('feed.>');
  frozen.ws.pause();
  const send = (payload: Uint8Array): void => pub.send({ t: FrameType.publish, c: 'feed.x', d: payload });
  let n = await publishUntil(fast, send, () => b.stats().slowConsumers > 0);
  expect(b.stats().slowConsumers).toBe(1);
  // With the frozen one slow, a further burst still reaches the fast one promptly and whole.
  const payload = new Uint8Array(8 * 1024);
  for (let i = 0; i < 8; i++) pub.send({ t: FrameType.publish, c: 'feed.x', d: payload });
  n += 8;
  const got = await fast.waitEvents(n);
  expect(got.map((e) => e.o)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
}, 60_000);
