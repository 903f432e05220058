// The broker-wide budget of outbound bytes (maxTotalBufferBytes, issue 9 finding 7).
import { afterEach, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FrameType } from '@crier/protocol';
import type { Ingress } from '../src/transport/ingress.js';
import type { Broker } from '../src/index.js';
import { RawClient, cleanup, publishUntil, startBroker, waitFor } from './helpers.js';

afterEach(cleanup);

const coreOf = (broker: Broker): Ingress => (broker as unknown as { ingress: Ingress }).ingress;

/** The status of a handshake: 101, or the refusal's. */
function handshake(url: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('error', () => {});
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (req, res) => {
      req.destroy();
      resolve(res.statusCode ?? 0);
    });
  });
}

it('past the budget only the slow subscriber loses events, long before its own maxBufferBytes; the count returns to 0', async () => {
  // Each connection alone may hold 4 MiB; all of them together 256 KiB.
  const budget = 256 * 1024;
  const b = await startBroker({ maxBufferBytes: 4 * 1024 * 1024, bufferSize: 100_000, maxTotalBufferBytes: budget, publishRate: 1_000_000 });
  const core = coreOf(b);
  const [pub, fast, frozen] = await Promise.all([RawClient.connect(b.url), RawClient.connect(b.url), RawClient.connect(b.url)]);
  await fast.subscribe('feed.>');
  await frozen.subscribe('feed.>');
  frozen.ws.pause(); // it stops reading: kernel buffers fill, then the broker's
  const send = (payload: Uint8Array): void => pub.send({ t: FrameType.publish, c: 'feed.x', d: payload });
  const n = await publishUntil(fast, send, () => b.stats().slowConsumers > 0);
  // Slow long before its own 4 MiB: the broker-wide budget stopped it.
  expect(core.bufferedBytes).toBeGreaterThan(0);
  expect(core.bufferedBytes).toBeLessThanOrEqual(budget + 8 * 1024 + 1024);
  const got = await fast.waitEvents(n);
  expect(got.map((e) => e.o)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  frozen.ws.terminate();
  await waitFor('the frozen connection\'s bytes to be released', () => core.bufferedBytes === 0);
  expect(await handshake(b.url)).toBe(101);
}, 60_000);

it('past the budget a new connection gets 503 too_many_connections, and one that holds nothing still gets events', async () => {
  const b = await startBroker({ maxTotalBufferBytes: 65_536 });
  const core = coreOf(b);
  const sub = await RawClient.connect(b.url);
  await sub.subscribe('a');
  core.bufferedBytes += 1_000_000; // as if others held more than the budget
  const pub = await RawClient.connect(b.url).catch(() => undefined);
  expect(pub).toBeUndefined(); // admission refused meanwhile
  expect(await handshake(b.url)).toBe(503);
  expect(core.refusals.count('too_many_connections')).toBe(2);
  core.bufferedBytes -= 1_000_000;
  const p = await RawClient.connect(b.url);
  core.bufferedBytes += 1_000_000;
  p.send({ t: FrameType.publish, c: 'a', d: new Uint8Array(10) });
  await sub.waitEvents(1);
  core.bufferedBytes -= 1_000_000;
});
